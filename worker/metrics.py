"""Optional Prometheus metrics, served on loopback (off unless `metrics_port` is set).

- ``mlworker_jobs_total{algorithm, outcome}`` (counter): jobs finished; the
  outcome is ``success`` or the failure's kind (``error``, ``exception``,
  ``crashed``, ``timeout``, ``memory``, ``cancelled``, and for a job refused
  before running ``invalid`` or ``dataset``; its algorithm is ``unknown``
  when the job's details named none the worker could read).
- ``mlworker_job_seconds{algorithm}`` (histogram): seconds per job, from
  claim to spooled result.
- ``mlworker_spool_results`` (gauge): results waiting in the spool.
- ``mlworker_server_errors_total`` (counter): server calls that failed after
  their retries.

With several processes the supervisor serves the sum of its workers' reports.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from worker.config import Settings
from worker.errors import ConfigError
from worker.outbox import count_waiting
from worker.reporting import Event, JobFinished, NullReporter, Reporter, ServerError

JOB_SECONDS_BUCKETS = (0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800)


class Metrics:
    """A `Reporter` that counts what it is told, for Prometheus."""

    def __init__(self, registry: Any, spool_dir: Path) -> None:
        from prometheus_client import Counter, Gauge, Histogram

        self._jobs = Counter(
            "mlworker_jobs",
            "Jobs finished, by algorithm and outcome.",
            ["algorithm", "outcome"],
            registry=registry,
        )
        self._seconds = Histogram(
            "mlworker_job_seconds",
            "Seconds per job, from claim to spooled result.",
            ["algorithm"],
            buckets=JOB_SECONDS_BUCKETS,
            registry=registry,
        )
        self._server_errors = Counter(
            "mlworker_server_errors",
            "Calls to the server that failed after their retries.",
            registry=registry,
        )
        spool = Gauge(
            "mlworker_spool_results",
            "Results waiting in the spool for the server.",
            registry=registry,
        )
        spool.set_function(lambda: count_waiting(spool_dir))  # reads; never creates the spool

    def report(self, event: Event) -> None:
        """Count finished jobs (and their seconds) and failed server calls."""
        match event:
            case JobFinished(algorithm, outcome, seconds):
                self._jobs.labels(algorithm, outcome).inc()
                self._seconds.labels(algorithm).observe(seconds)
            case ServerError():
                self._server_errors.inc()


def start_metrics(settings: Settings) -> Reporter:
    """Serve metrics on 127.0.0.1:`metrics_port`; a reporter that ignores all when it is unset.

    Raises ConfigError when the port is set but the `metrics` extra is not installed.
    """
    if settings.metrics_port is None:
        return NullReporter()
    try:
        from prometheus_client import CollectorRegistry, start_http_server
    except ImportError:
        raise ConfigError(
            f"metrics_port is set ({settings.metrics_port}, from "
            f"{settings.sources.get('metrics_port', 'the settings')}) but prometheus-client "
            "is not installed: pip install 'mlworker[metrics]', or unset metrics_port"
        ) from None

    registry = CollectorRegistry()
    metrics = Metrics(registry, settings.spool_dir)
    start_http_server(settings.metrics_port, addr="127.0.0.1", registry=registry)
    return metrics
