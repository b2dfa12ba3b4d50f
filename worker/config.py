"""The worker's settings, read once into a frozen object.

Each setting comes from the first place that gives it: a command-line flag,
the environment (``MLWORKER_<NAME>``), the TOML file (``--config``, else
``$MLWORKER_CONFIG``, else ``/etc/mlworker/worker.toml`` when it exists), or
the default. TOML keys are the setting names below, at the top level.

=================  ==================================  ==============================
setting            default                             notes
=================  ==================================  ==============================
host               http://localhost:8000/              http or https URL of the server
username           backend                             the protocol's default account
password           foobar                              see below; never on the command line
processes          1                                   worker processes (supervisor)
spool_dir          $STATE_DIRECTORY/spool, else        results waiting for the server
                   $XDG_STATE_HOME/mlworker/spool
cache_dir          $CACHE_DIRECTORY, else              datasets
                   $XDG_CACHE_HOME/mlworker
time_limit         600                                 seconds per job unless the job says
memory_limit       2G                                  bytes, or K/M/G/T (powers of 1024);
                                                       0 or "none": no limit
poll_min/poll_max  1 / 30                              idle backoff bounds, seconds
long_poll          30                                  s a claim may wait on the server; 0: off
log_format         auto                                auto, json or console
startup_jitter     5                                   random delay before the first poll, s
request_timeout    60                                  seconds to wait for an answer
worker_id          (none: the worker uses host:pid)    the name sent in ``X-Worker``
metrics_port       (none: off)                         Prometheus port on 127.0.0.1
=================  ==================================  ==============================

The password comes from the first of: ``--password-file``;
``MLWORKER_PASSWORD`` or ``MLWORKER_PASSWORD_FILE`` (not both);
``$CREDENTIALS_DIRECTORY/password`` (systemd's ``LoadCredential=``); the TOML
``password`` or ``password_file`` (not both; a relative file is relative to
the TOML file); else ``foobar``, the protocol's default worker account, so
that a worker against the demo server needs no configuration. It is held in
a :class:`Secret`, whose ``repr`` and ``str`` are ``***``.

Anything invalid raises :class:`ConfigError` with one line naming the value,
where it came from and what is allowed (the CLI exits 78 on it).
"""

from __future__ import annotations

import argparse
import math
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

from worker.errors import ConfigError
from worker.logs import FORMATS

__all__ = ["DEFAULT_CONFIG", "Secret", "Settings", "add_settings_arguments", "load_settings"]

DEFAULT_CONFIG = Path("/etc/mlworker/worker.toml")
ENV_PREFIX = "MLWORKER_"


class Secret:
    """A string that prints as ``***``, so it never leaks into logs or tracebacks."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The secret itself, for the one place that needs it (the login)."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    def __str__(self) -> str:
        return "***"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True)
class Settings:
    """Everything the worker is configured with; ``sources`` says where each value came from."""

    host: str
    username: str
    password: Secret
    processes: int
    spool_dir: Path
    cache_dir: Path
    time_limit: float
    memory_limit: int | None
    poll_min: float
    poll_max: float
    long_poll: float
    log_format: str
    startup_jitter: float
    request_timeout: float
    worker_id: str | None
    metrics_port: int | None
    config_file: Path | None
    sources: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)


# --- parsers: a value from a flag, the environment (str) or TOML (native) -> typed value.
# They raise ValueError with the rest of a sentence: "<where>=<value!r> <problem>".


def _url(value: object) -> str:
    text = _text(value)
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("is not an http:// or https:// URL with a host name")
    return text


def _text(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError("must be a non-empty string")
    return value.strip()


def _number(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError("is not a number")
    try:
        number = float(value)
    except ValueError:
        raise ValueError("is not a number") from None
    if not math.isfinite(number):
        raise ValueError("is not a finite number")
    return number


def _integer(value: object) -> int:
    number = _number(value)
    if not number.is_integer():
        raise ValueError("is not a whole number")
    return int(number)


def _at_least(parse: Callable[[object], Any], low: float, *, above: bool = False) -> Any:
    def check(value: object) -> Any:
        number = parse(value)
        if number < low or (above and number == low):
            raise ValueError(f"must be {'greater than' if above else 'at least'} {low:g}")
        return number

    return check


_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([KMGT]?)(?:I?B)?", re.IGNORECASE)


def _size(value: object) -> int | None:
    if isinstance(value, str) and value.strip().lower() in ("none", "unlimited", "infinity"):
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        text = str(value)
    elif isinstance(value, str):
        text = value.strip()
    else:
        text = ""
    match = _SIZE.fullmatch(text)
    if match is None:
        raise ValueError('is not a size: use bytes, or a number with K, M, G or T, or "none"')
    size = int(float(match.group(1)) * _UNITS[match.group(2).upper()])
    return size or None


def _path(value: object) -> Path:
    return Path(_text(value)).expanduser()


def _log_format(value: object) -> str:
    if value not in FORMATS:
        raise ValueError(f"is not one of {', '.join(FORMATS)}")
    return str(value)


def _port(value: object) -> int | None:
    port = _integer(value)
    if not 0 <= port <= 65535:
        raise ValueError("is not a port number (1-65535, or 0 for off)")
    return port or None


def _state_dir(environ: Mapping[str, str]) -> Path:
    if environ.get("STATE_DIRECTORY"):
        return Path(environ["STATE_DIRECTORY"].split(":")[0]) / "spool"
    return _xdg(environ, "XDG_STATE_HOME", ".local/state") / "mlworker" / "spool"


def _cache_dir(environ: Mapping[str, str]) -> Path:
    if environ.get("CACHE_DIRECTORY"):
        return Path(environ["CACHE_DIRECTORY"].split(":")[0])
    return _xdg(environ, "XDG_CACHE_HOME", ".cache") / "mlworker"


def _xdg(environ: Mapping[str, str], name: str, fallback: str) -> Path:
    if environ.get(name):
        return Path(environ[name])
    home = environ.get("HOME")
    return (Path(home) if home else Path.home()) / fallback


def _constant(value: object) -> Callable[[Mapping[str, str]], object]:
    return lambda _environ: value


# name -> (parser, default from the environment)
_SETTINGS: dict[str, tuple[Callable[[object], Any], Callable[[Mapping[str, str]], object]]] = {
    "host": (_url, _constant("http://localhost:8000/")),
    "username": (_text, _constant("backend")),
    "processes": (_at_least(_integer, 1), _constant(1)),
    "spool_dir": (_path, _state_dir),
    "cache_dir": (_path, _cache_dir),
    "time_limit": (_at_least(_number, 0, above=True), _constant(600.0)),
    "memory_limit": (_size, _constant(2 * 1024**3)),
    "poll_min": (_at_least(_number, 0, above=True), _constant(1.0)),
    "poll_max": (_at_least(_number, 0, above=True), _constant(30.0)),
    "long_poll": (_at_least(_number, 0), _constant(30.0)),
    "log_format": (_log_format, _constant("auto")),
    "startup_jitter": (_at_least(_number, 0), _constant(5.0)),
    "request_timeout": (_at_least(_number, 0, above=True), _constant(60.0)),
    "worker_id": (_text, _constant(None)),
    "metrics_port": (_port, _constant(None)),
}
_TOML_ONLY = ("password", "password_file")


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def add_settings_arguments(parser: argparse.ArgumentParser) -> None:
    """Add one flag per setting (``--poll-min`` ...) plus ``--config`` and ``--password-file``.

    Values stay strings here; :func:`load_settings` checks them with the
    environment's and the file's, so every bad value gets the same exit 78.
    """
    group = parser.add_argument_group("settings (flags override MLWORKER_* and the TOML file)")
    group.add_argument("--config", metavar="FILE", help=f"TOML file (default {DEFAULT_CONFIG})")
    group.add_argument("--password-file", metavar="FILE", help="file holding the password")
    for name in _SETTINGS:
        group.add_argument(_flag(name), dest=name, metavar=name.upper(), help=f"{name} setting")


def load_settings(flags: Mapping[str, object], environ: Mapping[str, str] = os.environ) -> Settings:
    """Read the settings once: flags, then environment, then TOML file, then defaults.

    ``flags`` maps setting names (and ``config``, ``password_file``) to the
    parsed command-line values, None meaning not given; other keys are
    ignored. Raises ConfigError with one line saying what is wrong and where.
    """
    env = {k: v for k, v in environ.items() if v != ""}  # Name= in a unit file means unset
    config_file, table = _read_config(flags, env)
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for name, (parse, default) in _SETTINGS.items():
        given = _lookup(name, flags, env, table, config_file)
        if given is None:
            values[name], sources[name] = default(env), "default"
            continue
        raw, where, base = given
        try:
            values[name] = parse(raw)
        except ValueError as exc:
            raise ConfigError(f"{where}={raw!r} {exc}") from None
        if isinstance(values[name], Path):
            values[name] = (base or Path.cwd()) / values[name]
        sources[name] = where
    password, sources["password"] = _password(flags, env, table, config_file)
    if values["poll_min"] > values["poll_max"]:
        raise ConfigError(
            f"poll_min ({values['poll_min']:g}, from {sources['poll_min']}) is greater than "
            f"poll_max ({values['poll_max']:g}, from {sources['poll_max']})"
        )
    return Settings(
        **values,
        password=password,
        config_file=config_file,
        sources=MappingProxyType(sources),
    )


def _lookup(
    name: str,
    flags: Mapping[str, object],
    env: Mapping[str, str],
    table: Mapping[str, object],
    config_file: Path | None,
) -> tuple[object, str, Path | None] | None:
    """The raw value, where it came from, and the directory relative paths start from."""
    if flags.get(name) is not None:
        return flags[name], _flag(name), None
    if ENV_PREFIX + name.upper() in env:
        return env[ENV_PREFIX + name.upper()], ENV_PREFIX + name.upper(), None
    if name in table and config_file is not None:
        return table[name], f"{config_file}: {name}", config_file.parent
    return None


def _read_config(
    flags: Mapping[str, object], env: Mapping[str, str]
) -> tuple[Path | None, Mapping[str, object]]:
    """The TOML file's path and top-level table; ({}) when no file is configured or found."""
    if flags.get("config") is not None:
        path, where = Path(str(flags["config"])).expanduser(), "--config"
    elif "MLWORKER_CONFIG" in env:
        path, where = Path(env["MLWORKER_CONFIG"]).expanduser(), "MLWORKER_CONFIG"
    elif DEFAULT_CONFIG.exists():
        path, where = DEFAULT_CONFIG, "the default configuration file"
    else:
        return None, {}
    try:
        table = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{where}: configuration file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{where}: cannot read configuration file {path}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    unknown = sorted(set(table) - set(_SETTINGS) - set(_TOML_ONLY))
    if unknown:
        allowed = ", ".join([*_SETTINGS, *_TOML_ONLY])
        raise ConfigError(f"{path}: unknown setting {unknown[0]!r}; allowed: {allowed}")
    return path.absolute(), table


def _password(
    flags: Mapping[str, object],
    env: Mapping[str, str],
    table: Mapping[str, object],
    config_file: Path | None,
) -> tuple[Secret, str]:
    """The password and a description of where it came from (never the password)."""
    if flags.get("password_file") is not None:
        return _password_file(str(flags["password_file"]), "--password-file")
    if "MLWORKER_PASSWORD" in env and "MLWORKER_PASSWORD_FILE" in env:
        raise ConfigError("MLWORKER_PASSWORD and MLWORKER_PASSWORD_FILE are both set; set one")
    if "MLWORKER_PASSWORD" in env:
        return Secret(env["MLWORKER_PASSWORD"]), "MLWORKER_PASSWORD"
    if "MLWORKER_PASSWORD_FILE" in env:
        return _password_file(env["MLWORKER_PASSWORD_FILE"], "MLWORKER_PASSWORD_FILE")
    credential = Path(env.get("CREDENTIALS_DIRECTORY", "")) / "password"
    if "CREDENTIALS_DIRECTORY" in env and credential.exists():
        return _password_file(str(credential), "CREDENTIALS_DIRECTORY")
    if "password" in table and "password_file" in table:
        raise ConfigError(f"{config_file}: both password and password_file are set; set one")
    if "password" in table:
        if not isinstance(table["password"], str) or not table["password"]:
            raise ConfigError(f"{config_file}: password must be a non-empty string")
        return Secret(table["password"]), f"{config_file}: password"
    if "password_file" in table:
        where = f"{config_file}: password_file"
        try:
            path = _path(table["password_file"])
        except ValueError as exc:
            raise ConfigError(f"{where}={table['password_file']!r} {exc}") from None
        return _password_file(str(config_file.parent / path if config_file else path), where)
    return Secret("foobar"), "default"


def _password_file(name: str, where: str) -> tuple[Secret, str]:
    path = Path(name).expanduser()
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(f"{where}: cannot read password file {path}: {reason}") from None
    password = text.removesuffix("\n").removesuffix("\r")
    if not password:
        raise ConfigError(f"{where}: password file {path} is empty")
    return Secret(password), f"{where} ({path})"
