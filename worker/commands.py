"""`mlworker run` and `mlworker check`: the daemon's own sub-commands.

Both read the settings once (flags, environment, TOML, defaults) and exit 78
(EX_CONFIG) with one line on stderr when they are invalid, so systemd's
`RestartPreventExitStatus=78` stops a unit that cannot work as configured.
What is valid but probably a mistake is logged (`run`) or printed (`check`)
as a warning. `check` exits 69 (EX_UNAVAILABLE) when the server cannot be
reached.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Any

from worker.config import Settings, add_settings_arguments, load_settings
from worker.errors import APIError, AuthenticationError, ConfigError
from worker.threads import pin_threads


def add_run(subparsers: Any) -> None:
    """Register `mlworker run`."""
    parser = subparsers.add_parser(
        "run",
        help="claim and run jobs until stopped",
        description="Claim jobs from the server, run them isolated, deliver every result. "
        "The first SIGTERM/SIGINT finishes the running job; a second aborts it.",
    )
    parser.add_argument(
        "--burst", action="store_true", help="exit 0 once no job is left and all is delivered"
    )
    add_settings_arguments(parser)
    parser.set_defaults(handler=run)


def add_check(subparsers: Any) -> None:
    """Register `mlworker check`."""
    parser = subparsers.add_parser(
        "check",
        help="validate the configuration, log in and list the algorithms",
        description="Validate the configuration, log in to the server and list the algorithms.",
    )
    add_settings_arguments(parser)
    parser.set_defaults(handler=check)


def read_settings(args: argparse.Namespace) -> Settings | None:
    """The settings, or None after printing the one-line reason they are invalid."""
    try:
        return load_settings(vars(args))
    except ConfigError as exc:
        print(f"mlworker: invalid configuration: {exc}", file=sys.stderr)
        return None


def _configure_logging(settings: Settings, *, warn: bool = True) -> None:
    """Logging as configured, then (``warn``) the configuration's warnings as its first lines."""
    import structlog  # not at the top: `run` launches its job forkserver first

    from worker.logs import configure_logging

    level = logging.getLevelNamesMapping()[settings.log_level.upper()]
    configure_logging(settings.log_format, secrets=[settings.password.reveal()], level=level)
    for warning in settings.warnings if warn else ():
        structlog.get_logger(__name__).warning("configuration warning", problem=warning)


def run(args: argparse.Namespace) -> int:
    """`mlworker run`: one worker process, or a supervisor of several."""
    settings = read_settings(args)
    if settings is None:
        return os.EX_CONFIG
    pin_threads(os.environ)  # before anything imports numpy
    from worker.jobforkserver import JobForkServer

    # First: the job forkserver's imports (2 s of scikit-learn) overlap the rest of the
    # start and the login. It is this process's: the worker, or the supervisor, stops it.
    forkserver = JobForkServer()
    forkserver.ensure_running()
    _configure_logging(settings)
    if settings.processes > 1:
        from worker.supervisor import supervise

        return supervise(settings, forkserver, burst=args.burst)
    from worker.daemon import run_worker
    from worker.lifecycle import Shutdown
    from worker.metrics import start_metrics
    from worker.reporting import NotifyReporter, Tee
    from worker.sdnotify import Notifier

    try:
        metrics = start_metrics(settings)
    except ConfigError as exc:
        print(f"mlworker: invalid configuration: {exc}", file=sys.stderr)
        return os.EX_CONFIG
    shutdown = Shutdown()
    shutdown.install()
    reporter = Tee(NotifyReporter(Notifier.from_environ()), metrics)
    return run_worker(
        settings, shutdown=shutdown, reporter=reporter, burst=args.burst, forkserver=forkserver
    )


def check(args: argparse.Namespace) -> int:
    """`mlworker check`: 0 when the configuration is valid and the server takes the login."""
    settings = read_settings(args)
    if settings is None:
        return os.EX_CONFIG
    _configure_logging(settings, warn=False)
    from algorithms.catalog import default_registry
    from worker.api import API

    print(f"configuration: ok ({settings.config_file or 'no file'})")
    for name, where in sorted(settings.sources.items()):
        print(f"  {name} from {where}")
    for warning in settings.warnings:
        print(f"warning: {warning}")
    try:
        API(settings.username, settings.password.reveal(), settings.host, retry_for=0).close()
    except AuthenticationError as exc:
        print(f"login: refused: {exc}")
        return os.EX_CONFIG
    except APIError as exc:  # unreachable, or not a job server
        print(f"login: {exc}")
        return os.EX_UNAVAILABLE
    print(f"login: ok as {settings.username!r} at {settings.host}")
    registry = default_registry()
    names = sorted(algorithm.name for algorithm in registry)
    print(f"algorithms ({len(names)}): {', '.join(names)}")
    for report in registry.reports:
        print(f"plugin skipped: {report}")
    return 0
