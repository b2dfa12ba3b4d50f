"""The worker's logs: JSON lines for journald, readable lines on a terminal.

structlog renders every event; records of the standard ``logging`` module
(urllib3, tenacity) go through the same processors and renderer. Secrets are
kept out of the logs in two ways. Where prose is written, no secret goes in:
exceptions are rendered without local variables (structlog's dict tracebacks
show them by default) and no message of ours formats a secret. Where values
are logged, a last processor replaces with ``***`` every value that *is* a
known secret, every value under a key that names one, and every argument of
a ``logging`` record that is one. A secret is never searched for inside
longer text: masking it there ("*** username or password?") would show what
it is.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, TextIO

import structlog
from structlog.processors import ExceptionRenderer
from structlog.tracebacks import ExceptionDictTransformer
from structlog.typing import EventDict, Processor, WrappedLogger

from worker.config_values import LOG_FORMATS

__all__ = ["Redactor", "configure_logging", "job_context"]

MASK = "***"
_SECRET_KEYS = ("password", "secret", "token", "credential")


class Redactor:
    """A processor that masks secrets in every value of an event, however deeply nested."""

    def __init__(self, secrets: Sequence[str]) -> None:
        self._secrets = frozenset(s for s in secrets if s)

    def __call__(self, _logger: WrappedLogger, _name: str, event_dict: EventDict) -> EventDict:
        return {key: self._clean(key, value) for key, value in event_dict.items()}

    def record_arguments(
        self, _logger: WrappedLogger, _name: str, event_dict: EventDict
    ) -> EventDict:
        """For ``logging`` records: the message again, with secret arguments masked."""
        record, args = event_dict.get("_record"), event_dict.pop("positional_args", None)
        if isinstance(record, logging.LogRecord) and args:
            masked = (
                {k: self._clean(None, v) for k, v in args.items()}
                if isinstance(args, Mapping)
                else tuple(self._clean(None, v) for v in args)
            )
            with contextlib.suppress(TypeError, ValueError, KeyError):
                event_dict["event"] = str(record.msg) % masked
        return event_dict

    def _clean(self, key: object, value: object) -> Any:
        if isinstance(key, str) and any(word in key.lower() for word in _SECRET_KEYS):
            return value if value is None or (isinstance(value, str) and not value) else MASK
        if isinstance(value, dict):
            return {k: self._clean(k, v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self._clean(None, v) for v in value]
        if isinstance(value, bool | int | float | type(None)):
            return value
        return MASK if str(value) in self._secrets else value


def configure_logging(
    fmt: str = "auto",
    stream: TextIO | None = None,
    *,
    secrets: Sequence[str] = (),
    level: int = logging.INFO,
) -> None:
    """Send structlog and ``logging`` output to ``stream`` (default: ``sys.stderr``).

    ``fmt`` "json" writes one JSON object per line, "console" readable lines,
    "auto" JSON unless the stream is a terminal. Every line has an ISO UTC
    ``timestamp`` and a ``level``; ``secrets`` (the password) never appear.
    """
    if fmt not in LOG_FORMATS:
        raise ValueError(f"log format must be one of {', '.join(LOG_FORMATS)}, not {fmt!r}")
    stream = sys.stderr if stream is None else stream
    tty = _isatty(stream)
    console = fmt == "console" or (fmt == "auto" and tty)
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    redactor = Redactor(secrets)
    final: list[Processor]
    if console:
        final = [
            structlog.processors.format_exc_info,  # a plain traceback: no locals
            redactor,
            structlog.dev.ConsoleRenderer(
                colors=tty, exception_formatter=structlog.dev.plain_traceback
            ),
        ]
    else:
        final = [
            ExceptionRenderer(ExceptionDictTransformer(show_locals=False, use_rich=False)),
            redactor,
            structlog.processors.JSONRenderer(),
        ]
    structlog.configure(
        processors=[*shared, *final],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.WriteLoggerFactory(file=stream),
        cache_logger_on_first_use=False,
    )
    _route_stdlib_logging(stream, [*shared, redactor.record_arguments], final, level)


def _route_stdlib_logging(
    stream: TextIO, shared: list[Processor], final: list[Processor], level: int
) -> None:
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[structlog.stdlib.add_logger_name, *shared],
        pass_foreign_args=True,  # for Redactor.record_arguments
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *final],
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(max(level, logging.WARNING))  # libraries are chatty at INFO


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


_JOB_KEYS = ("worker_id", "job_id", "algorithm", "dataset", "attempt")


@contextlib.contextmanager
def job_context(
    *,
    worker_id: str,
    job_id: int,
    algorithm: str | None = None,
    dataset: int | None = None,
    attempt: int | None = None,
) -> Iterator[None]:
    """Put a job's identity on every log line emitted inside the ``with`` block.

    Fields not known yet (before the job details arrive) are left out; bind
    them inside the block with ``structlog.contextvars.bind_contextvars``.
    On exit all five keys get back the values they had before the block.
    """
    saved = {k: v for k, v in structlog.contextvars.get_contextvars().items() if k in _JOB_KEYS}
    given = (worker_id, job_id, algorithm, dataset, attempt)
    structlog.contextvars.bind_contextvars(
        **{k: v for k, v in zip(_JOB_KEYS, given, strict=True) if v is not None}
    )
    try:
        yield
    finally:
        structlog.contextvars.unbind_contextvars(*_JOB_KEYS)
        structlog.contextvars.bind_contextvars(**saved)
