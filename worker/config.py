"""The worker's settings: defined once, read once into a frozen object.

Each setting is one field of :class:`Settings` declared with :func:`_row`:
its type, parser, default, unit, help and whether it is secret. Everything
else is generated from those rows: the command-line flags and their
``--help`` (:func:`add_settings_arguments`), the environment variables
(``MLWORKER_<NAME>``), the TOML keys (the names, at the top level), the
table in ``docs/configuration.md`` (``python -m worker.config`` prints it)
and the precedence chain. Adding a setting is adding one row.

A setting comes from the first place that gives it: its flag, its variable,
the TOML file (``--config``, else ``$MLWORKER_CONFIG``, else
``/etc/mlworker/worker.toml`` when it exists), else its default. A secret
setting (the password) is never a flag value; its chain is: ``--<name>-file``;
``MLWORKER_<NAME>`` or ``MLWORKER_<NAME>_FILE`` (not both);
``$CREDENTIALS_DIRECTORY/<name>`` (systemd's ``LoadCredential=``); the TOML
``<name>`` or ``<name>_file`` (not both; a relative file is relative to the
TOML file); else its default. The password's default is the demo server's
worker account, so a worker against the demo needs no configuration; it is
held in a :class:`Secret`, whose ``repr`` and ``str`` are ``***``.

Anything invalid raises :class:`ConfigError` with one line naming the value,
where it came from and what is allowed (the CLI exits 78 on it). What is
valid but probably a mistake (an unknown ``MLWORKER_*`` variable, the default
password sent to a host that is not loopback) is listed in
``Settings.warnings`` for the command to log.
"""

from __future__ import annotations

import argparse
import difflib
import ipaddress
import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

from worker import config_values as v
from worker.defaults import DEFAULT_PASSWORD, DEFAULT_USERNAME
from worker.errors import ConfigError

__all__ = [
    "DEFAULT_CONFIG",
    "SETTINGS",
    "Secret",
    "Setting",
    "Settings",
    "add_settings_arguments",
    "load_settings",
    "settings_markdown",
]

DEFAULT_CONFIG = Path("/etc/mlworker/worker.toml")
ENV_PREFIX = "MLWORKER_"
_OTHER_VARIABLES = ("MLWORKER_CONFIG",)  # read here, but not settings
_NOT_OURS = "MLWORKER_SERVER_"  # the reference server's variables
_DEFAULT = "default"  # the source of a value nobody set


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


def _secret(value: object) -> Secret:
    if not isinstance(value, str) or not value:
        raise ValueError("must be a non-empty string")
    return Secret(value)


@dataclass(frozen=True)
class Setting:
    """One row of the settings table; ``name`` is the field's, the rest is :func:`_row`'s."""

    name: str
    parse: Callable[[object], Any]
    default: object  # a raw value, None for "none", or a function of the environment
    help: str
    unit: str = ""
    metavar: str = "VALUE"
    shown: str | None = None  # the default as people read it, when not the raw value
    secret: bool = False

    @property
    def variable(self) -> str:
        """The environment variable: ``MLWORKER_POLL_MIN``."""
        return ENV_PREFIX + self.name.upper()

    @property
    def flag(self) -> str:
        """The flag: ``--poll-min``; a secret's names the file holding it."""
        return "--" + self.name.replace("_", "-") + ("-file" if self.secret else "")

    @property
    def default_text(self) -> str:
        """The default as help and docs print it."""
        return self.shown if self.shown is not None else str(self.default)

    def describe(self) -> str:
        """The flag's help: what, unit, default and variable."""
        unit = f"in {self.unit}; " if self.unit else ""
        variable = f"{self.variable} or {self.variable}_FILE" if self.secret else self.variable
        return f"{self.help} ({unit}default {self.default_text}; {variable})"


def _row(
    parse: Callable[[object], Any],
    default: object,
    help: str,
    **more: Any,
) -> Any:
    """A field of :class:`Settings` carrying its row of the table."""
    return field(metadata={"setting": Setting("", parse, default, help, **more)})


_SECONDS = {"unit": "seconds", "metavar": "SECONDS"}
_POSITIVE = v.at_least(v.number, 0, above=True)


@dataclass(frozen=True)
class Settings:
    """Everything the worker is configured with; ``sources`` says where each value came from."""

    host: str = _row(v.url, "http://localhost:8000/", "the job server", metavar="URL")
    username: str = _row(
        v.text, DEFAULT_USERNAME, "the worker account on the server", metavar="NAME"
    )
    password: Secret = _row(
        _secret,
        DEFAULT_PASSWORD,
        "file holding the worker account's password",
        metavar="FILE",
        shown=f"{DEFAULT_PASSWORD}, the demo server's worker account",
        secret=True,
    )
    processes: int = _row(
        v.at_least(v.integer, 1), 1, "worker processes, one job at a time each", metavar="N"
    )
    spool_dir: Path = _row(
        v.path,
        v.spool_dir,
        "results waiting for the server",
        metavar="DIR",
        shown="$STATE_DIRECTORY/spool, else $XDG_STATE_HOME/mlworker/spool",
    )
    cache_dir: Path = _row(
        v.path,
        v.cache_dir,
        "downloaded datasets",
        metavar="DIR",
        shown="$CACHE_DIRECTORY, else $XDG_CACHE_HOME/mlworker",
    )
    time_limit: float = _row(_POSITIVE, 600, "a job's time unless it sets one", **_SECONDS)
    memory_limit: int | None = _row(
        v.size,
        "2G",
        "a job's memory; 0 or none: no limit",
        unit="bytes, or with K, M, G or T: powers of 1024",
        metavar="SIZE",
    )
    jobs_per_process: int = _row(
        v.at_least(v.integer, 1), 100, "jobs one job process runs before a fresh one takes over",
        metavar="N",
    )  # fmt: skip
    poll_min: float = _row(_POSITIVE, 1, "shortest wait between polls while idle", **_SECONDS)
    poll_max: float = _row(_POSITIVE, 30, "longest wait between polls while idle", **_SECONDS)
    long_poll: float = _row(
        v.at_least(v.number, 0), 30, "a job request the server may hold open; 0: off", **_SECONDS
    )
    log_format: str = _row(
        v.log_format, "auto", "json, console, or auto: json unless a terminal", metavar="FORMAT"
    )
    log_level: str = _row(
        v.log_level, "info", "least severe level logged: debug, info, warning or error",
        metavar="LEVEL",
    )  # fmt: skip
    startup_jitter: float = _row(
        v.at_least(v.number, 0), 5, "random delay before the first poll", **_SECONDS
    )
    request_timeout: float = _row(_POSITIVE, 60, "wait for one answer", **_SECONDS)
    worker_id: str | None = _row(
        v.text, None, "the name sent in X-Worker", metavar="NAME", shown="host:pid"
    )
    metrics_port: int | None = _row(
        v.port, None, "Prometheus metrics on this 127.0.0.1 port; 0: off", metavar="PORT",
        shown="off",
    )  # fmt: skip
    worker_timeout: float = _row(
        v.at_least(v.number, 10),
        120,
        "a worker process silent this long is killed and restarted (with --processes)",
        **_SECONDS,
    )
    config_file: Path | None = None
    sources: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)
    warnings: tuple[str, ...] = field(default=(), repr=False, compare=False)


SETTINGS: tuple[Setting, ...] = tuple(
    replace(f.metadata["setting"], name=f.name) for f in fields(Settings) if f.metadata
)
_BY_NAME = {setting.name: setting for setting in SETTINGS}


def add_settings_arguments(parser: argparse.ArgumentParser) -> None:
    """Add one flag per setting (``--poll-min`` ...), ``--config``, and ``-v``.

    Values stay strings here; :func:`load_settings` checks them with the
    environment's and the file's, so every bad value gets the same exit 78.
    """
    group = parser.add_argument_group(
        "settings (a flag beats its MLWORKER_* variable, which beats the TOML file)"
    )
    group.add_argument(
        "--config",
        metavar="FILE",
        help=f"TOML file of settings (default {DEFAULT_CONFIG} if it exists; MLWORKER_CONFIG)",
    )
    for setting in SETTINGS:
        dest = f"{setting.name}_file" if setting.secret else setting.name
        help_text = setting.describe().replace("%", "%%")
        group.add_argument(setting.flag, dest=dest, metavar=setting.metavar, help=help_text)
    group.add_argument(
        "-v",
        dest="log_level",
        action="store_const",
        const="debug",
        help="the same as --log-level debug",
    )


def settings_markdown() -> str:
    """The settings as a Markdown table, for docs/configuration.md."""
    lines = [
        "| TOML key | flag | variable | default | unit | what |",
        "|---|---|---|---|---|---|",
    ]
    for s in SETTINGS:
        toml = f"`{s.name}` or `{s.name}_file`" if s.secret else f"`{s.name}`"
        variable = f"`{s.variable}` or `{s.variable}_FILE`" if s.secret else f"`{s.variable}`"
        lines.append(
            f"| {toml} | `{s.flag} {s.metavar}` | {variable} | {s.default_text} | {s.unit} "
            f"| {s.help} |"
        )
    return "\n".join(lines) + "\n"


def load_settings(flags: Mapping[str, object], environ: Mapping[str, str] = os.environ) -> Settings:
    """Read the settings once: flags, then environment, then TOML file, then defaults.

    ``flags`` maps setting names (and ``config``, ``password_file``) to the
    parsed command-line values, None meaning not given; other keys are
    ignored. Raises ConfigError with one line saying what is wrong and where.
    """
    env = {k: val for k, val in environ.items() if val != ""}  # Name= in a unit means unset
    config_file, table = _read_config(flags, env)
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for setting in SETTINGS:
        values[setting.name], sources[setting.name] = _value(
            setting, flags, env, table, config_file
        )
    if values["poll_min"] > values["poll_max"]:
        raise ConfigError(
            f"poll_min ({values['poll_min']:g}, from {sources['poll_min']}) is greater than "
            f"poll_max ({values['poll_max']:g}, from {sources['poll_max']})"
        )
    return Settings(
        **values,
        config_file=config_file,
        sources=MappingProxyType(sources),
        warnings=(*_unknown_variables(env), *_default_password_abroad(values, sources)),
    )


def _value(
    setting: Setting,
    flags: Mapping[str, object],
    env: Mapping[str, str],
    table: Mapping[str, object],
    config_file: Path | None,
) -> tuple[Any, str]:
    """One setting's typed value and where it came from."""
    lookup = _secret_lookup if setting.secret else _lookup
    given = lookup(setting, flags, env, table, config_file)
    if given is None:
        raw = setting.default(env) if callable(setting.default) else setting.default
        return (None if raw is None else setting.parse(raw)), _DEFAULT
    raw, where, base = given
    try:
        value = setting.parse(raw)
    except ValueError as exc:
        shown = "" if setting.secret else f"={raw!r}"
        raise ConfigError(f"{where}{shown} {exc}") from None
    if isinstance(value, Path):
        value = (base or Path.cwd()) / value
    return value, where


_Given = tuple[object, str, Path | None] | None  # raw value, where, base of relative paths


def _lookup(
    setting: Setting,
    flags: Mapping[str, object],
    env: Mapping[str, str],
    table: Mapping[str, object],
    config_file: Path | None,
) -> _Given:
    if flags.get(setting.name) is not None:
        return flags[setting.name], setting.flag, None
    if setting.variable in env:
        return env[setting.variable], setting.variable, None
    if setting.name in table and config_file is not None:
        return table[setting.name], f"{config_file}: {setting.name}", config_file.parent
    return None


def _secret_lookup(
    setting: Setting,
    flags: Mapping[str, object],
    env: Mapping[str, str],
    table: Mapping[str, object],
    config_file: Path | None,
) -> _Given:
    """A secret's chain: flag file, variable or its _FILE, credential, TOML value or file."""
    name, var, key = setting.name, setting.variable, f"{setting.name}_file"
    if flags.get(key) is not None:
        return _read_secret(name, Path(str(flags[key])), setting.flag)
    if var in env and f"{var}_FILE" in env:
        raise ConfigError(f"{var} and {var}_FILE are both set; set one")
    if var in env:
        return env[var], var, None
    if f"{var}_FILE" in env:
        return _read_secret(name, Path(env[f"{var}_FILE"]), f"{var}_FILE")
    credential = Path(env.get("CREDENTIALS_DIRECTORY", "")) / name
    if "CREDENTIALS_DIRECTORY" in env and credential.exists():
        return _read_secret(name, credential, "CREDENTIALS_DIRECTORY")
    if name in table and key in table:
        raise ConfigError(f"{config_file}: both {name} and {key} are set; set one")
    if name in table:
        return table[name], f"{config_file}: {name}", None
    if key in table and config_file is not None:
        where = f"{config_file}: {key}"
        try:
            path = v.path(table[key])
        except ValueError as exc:
            raise ConfigError(f"{where}={table[key]!r} {exc}") from None
        return _read_secret(name, config_file.parent / path, where)
    return None


def _read_secret(name: str, path: Path, where: str) -> _Given:
    path = path.expanduser()
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(f"{where}: cannot read {name} file {path}: {reason}") from None
    secret = text.removesuffix("\n").removesuffix("\r")
    if not secret:
        raise ConfigError(f"{where}: {name} file {path} is empty")
    return secret, f"{where} ({path})", None


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
    keys = [s.name for s in SETTINGS] + [f"{s.name}_file" for s in SETTINGS if s.secret]
    unknown = sorted(set(table) - set(keys))
    if unknown:
        raise ConfigError(f"{path}: unknown setting {unknown[0]!r}; allowed: {', '.join(keys)}")
    return path.absolute(), table


def _unknown_variables(env: Mapping[str, str]) -> list[str]:
    """A warning per MLWORKER_* variable that no setting reads (a misspelt name, say)."""
    known = [s.variable for s in SETTINGS] + [f"{s.variable}_FILE" for s in SETTINGS if s.secret]
    known += _OTHER_VARIABLES
    warnings = []
    for name in sorted(env):
        if name.startswith(ENV_PREFIX) and not name.startswith(_NOT_OURS) and name not in known:
            close = difflib.get_close_matches(name, known, n=1)
            hint = f"did you mean {close[0]}?" if close else "see mlworker run --help"
            warnings.append(f"the environment variable {name} is not a setting: ignored ({hint})")
    return warnings


def _default_password_abroad(values: Mapping[str, Any], sources: Mapping[str, str]) -> list[str]:
    """A warning when the published default password would be sent beyond this machine."""
    if sources["password"] != _DEFAULT or _is_loopback(values["host"]):
        return []
    return [
        f"the password is the demo's published default and {values['host']} is not this "
        f"machine: set it with {_BY_NAME['password'].flag}, MLWORKER_PASSWORD_FILE or "
        "password_file"
    ]


def _is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


if __name__ == "__main__":
    print(settings_markdown(), end="")
