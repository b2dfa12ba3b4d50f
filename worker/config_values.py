"""Parsers of setting values, and the defaults that depend on the environment.

A parser takes a value from a flag or the environment (a string) or from
TOML (a native value) and returns it typed, or raises ValueError with the
rest of a sentence: ``<where>=<value!r> <problem>``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

__all__ = [
    "LEVELS",
    "LOG_FORMATS",
    "at_least",
    "cache_dir",
    "integer",
    "log_format",
    "log_level",
    "number",
    "path",
    "port",
    "size",
    "spool_dir",
    "text",
    "url",
]


def url(value: object) -> str:
    """An http:// or https:// URL with a host name."""
    given = text(value)
    parts = urlsplit(given)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("is not an http:// or https:// URL with a host name")
    return given


def text(value: object) -> str:
    """A non-empty string, stripped."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError("must be a non-empty string")
    return value.strip()


def number(value: object) -> float:
    """A finite number, from a number or its text."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError("is not a number")
    try:
        parsed = float(value)
    except ValueError:
        raise ValueError("is not a number") from None
    if not math.isfinite(parsed):
        raise ValueError("is not a finite number")
    return parsed


def integer(value: object) -> int:
    """A whole number (2.0 and "2" are fine, 2.5 is not)."""
    parsed = number(value)
    if not parsed.is_integer():
        raise ValueError("is not a whole number")
    return int(parsed)


def at_least(parse: Callable[[object], Any], low: float, *, above: bool = False) -> Any:
    """``parse``, then refuse values below ``low`` (or equal to it when ``above``)."""

    def check(value: object) -> Any:
        parsed = parse(value)
        if parsed < low or (above and parsed == low):
            raise ValueError(f"must be {'greater than' if above else 'at least'} {low:g}")
        return parsed

    return check


_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([KMGT]?)(?:I?B)?", re.IGNORECASE)


def size(value: object) -> int | None:
    """Bytes, or a number with K/M/G/T (powers of 1024); 0 or "none" means no limit."""
    if isinstance(value, str) and value.strip().lower() in ("none", "unlimited", "infinity"):
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        given = str(value)
    elif isinstance(value, str):
        given = value.strip()
    else:
        given = ""
    match = _SIZE.fullmatch(given)
    if match is None:
        raise ValueError('is not a size: use bytes, or a number with K, M, G or T, or "none"')
    parsed = int(float(match.group(1)) * _UNITS[match.group(2).upper()])
    return parsed or None


def path(value: object) -> Path:
    """A path; ``~`` expanded (relative ones are made absolute by the caller)."""
    return Path(text(value)).expanduser()


#: The log formats of :mod:`worker.logs`. Kept here, not there: reading the settings
#: must not import structlog, which `mlworker run` loads after it launches the forkserver.
LOG_FORMATS = ("auto", "json", "console")


def log_format(value: object) -> str:
    """One of the log formats of :mod:`worker.logs` (`LOG_FORMATS`)."""
    if value not in LOG_FORMATS:
        raise ValueError(f"is not one of {', '.join(LOG_FORMATS)}")
    return str(value)


def port(value: object) -> int | None:
    """A TCP port; 0 means off (None)."""
    parsed = integer(value)
    if not 0 <= parsed <= 65535:
        raise ValueError("is not a port number (1-65535, or 0 for off)")
    return parsed or None


def spool_dir(environ: Mapping[str, str]) -> str:
    """systemd's ``StateDirectory=``, else the XDG state directory."""
    if environ.get("STATE_DIRECTORY"):
        return str(Path(environ["STATE_DIRECTORY"].split(":")[0]) / "spool")
    return str(_xdg(environ, "XDG_STATE_HOME", ".local/state") / "mlworker" / "spool")


def cache_dir(environ: Mapping[str, str]) -> str:
    """systemd's ``CacheDirectory=``, else the XDG cache directory."""
    if environ.get("CACHE_DIRECTORY"):
        return environ["CACHE_DIRECTORY"].split(":")[0]
    return str(_xdg(environ, "XDG_CACHE_HOME", ".cache") / "mlworker")


def _xdg(environ: Mapping[str, str], name: str, fallback: str) -> Path:
    if environ.get(name):
        return Path(environ[name])
    home = environ.get("HOME")
    return (Path(home) if home else Path.home()) / fallback


LEVELS = ("debug", "info", "warning", "error")


def log_level(value: object) -> str:
    """A logging level name, in lower case."""
    if not isinstance(value, str) or value.strip().lower() not in LEVELS:
        raise ValueError(f"is not one of {', '.join(LEVELS)}")
    return value.strip().lower()
