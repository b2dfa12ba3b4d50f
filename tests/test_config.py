"""Settings: sources and their precedence, defaults, and one-line errors for bad values."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import pytest

from worker.config import (
    DEFAULT_CONFIG,
    SETTINGS,
    Secret,
    Settings,
    add_settings_arguments,
    load_settings,
    settings_markdown,
)
from worker.errors import ConfigError

NOT_SETTINGS = ("config_file", "sources", "warnings")


@pytest.fixture
def home(tmp_path: Path) -> dict[str, str]:
    """An environment holding only HOME, so the defaults do not depend on this machine."""
    assert not DEFAULT_CONFIG.exists(), "tests assume no system-wide worker.toml"
    return {"HOME": str(tmp_path / "home")}


def write_toml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "etc" / "worker.toml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def config_error(flags: dict[str, object], environ: dict[str, str]) -> str:
    with pytest.raises(ConfigError) as info:
        load_settings(flags, environ)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_defaults(home: dict[str, str]) -> None:
    """With nothing configured, every setting has its documented default."""
    settings = load_settings({}, home)
    assert settings.host == "http://localhost:8000/"
    assert settings.username == "backend"
    assert settings.password.reveal() == "foobar"
    assert settings.sources["password"] == "default"
    assert settings.processes == 1
    assert settings.spool_dir == Path(home["HOME"]) / ".local/state/mlworker/spool"
    assert settings.cache_dir == Path(home["HOME"]) / ".cache/mlworker"
    assert settings.time_limit == 600
    assert settings.memory_limit == 2 * 1024**3
    assert (settings.poll_min, settings.poll_max) == (1.0, 30.0)
    assert settings.log_format == "auto"
    assert settings.worker_id is None
    assert settings.metrics_port is None
    assert settings.config_file is None


def test_systemd_directories(home: dict[str, str]) -> None:
    """StateDirectory= and CacheDirectory= (as systemd exports them) place spool and cache."""
    environ = {**home, "STATE_DIRECTORY": "/var/lib/mlworker", "CACHE_DIRECTORY": "/var/cache/w"}
    settings = load_settings({}, environ)
    assert settings.spool_dir == Path("/var/lib/mlworker/spool")
    assert settings.cache_dir == Path("/var/cache/w")


def test_precedence_flag_env_file_default(tmp_path: Path, home: dict[str, str]) -> None:
    """A flag beats the environment, which beats the TOML file, which beats the default."""
    toml = write_toml(tmp_path, "poll_max = 40\npoll_min = 2\nprocesses = 3\n")
    environ = {**home, "MLWORKER_POLL_MAX": "50", "MLWORKER_POLL_MIN": "3"}
    settings = load_settings({"config": str(toml), "poll_max": "60", "time_limit": None}, environ)
    assert settings.poll_max == 60
    assert settings.poll_min == 3
    assert settings.processes == 3
    assert settings.time_limit == 600
    assert settings.sources["poll_max"] == "--poll-max"
    assert settings.sources["poll_min"] == "MLWORKER_POLL_MIN"
    assert settings.sources["processes"] == f"{toml}: processes"
    assert settings.sources["time_limit"] == "default"


def test_empty_environment_variable_means_unset(home: dict[str, str]) -> None:
    """`MLWORKER_HOST=` (as a unit file may leave it) falls through to the default."""
    assert load_settings({}, {**home, "MLWORKER_HOST": ""}).host == "http://localhost:8000/"


def test_config_from_environment_and_relative_paths(tmp_path: Path, home: dict[str, str]) -> None:
    """MLWORKER_CONFIG names the file; relative paths in it start from the file's directory."""
    toml = write_toml(tmp_path, 'spool_dir = "spool"\npassword_file = "secret.txt"\n')
    (toml.parent / "secret.txt").write_text("s3cret\n", encoding="utf-8")
    settings = load_settings({}, {**home, "MLWORKER_CONFIG": str(toml)})
    assert settings.spool_dir == toml.parent / "spool"
    assert settings.password.reveal() == "s3cret"
    assert settings.config_file == toml


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2G", 2 * 1024**3),
        ("512M", 512 * 1024**2),
        ("1.5GiB", int(1.5 * 1024**3)),
        ("64k", 64 * 1024),
        ("1048576", 1048576),
        ("none", None),
        ("0", None),
    ],
)
def test_memory_limit_sizes(home: dict[str, str], text: str, expected: int | None) -> None:
    """Memory limits accept bytes, K/M/G/T suffixes (powers of 1024), and none/0 for no limit."""
    settings = load_settings({}, {**home, "MLWORKER_MEMORY_LIMIT": text})
    assert settings.memory_limit == expected


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("MLWORKER_POLL_MIN", "abc", "MLWORKER_POLL_MIN='abc' is not a number"),
        ("MLWORKER_POLL_MAX", "nan", "MLWORKER_POLL_MAX='nan' is not a finite number"),
        ("MLWORKER_PROCESSES", "0", "MLWORKER_PROCESSES='0' must be at least 1"),
        ("MLWORKER_PROCESSES", "2.5", "MLWORKER_PROCESSES='2.5' is not a whole number"),
        ("MLWORKER_TIME_LIMIT", "-5", "MLWORKER_TIME_LIMIT='-5' must be greater than 0"),
        ("MLWORKER_HOST", "ftp://h/", "MLWORKER_HOST='ftp://h/' is not an http:// or https://"),
        ("MLWORKER_HOST", "http:///x", "MLWORKER_HOST='http:///x' is not an http"),
        ("MLWORKER_MEMORY_LIMIT", "lots", "MLWORKER_MEMORY_LIMIT='lots' is not a size"),
        ("MLWORKER_LOG_FORMAT", "xml", "MLWORKER_LOG_FORMAT='xml' is not one of auto, json"),
        ("MLWORKER_METRICS_PORT", "70000", "MLWORKER_METRICS_PORT='70000' is not a port"),
    ],
)
def test_bad_environment_values(home: dict[str, str], name: str, value: str, message: str) -> None:
    """A bad value is refused in one line naming the variable, the value and what is allowed."""
    assert config_error({}, {**home, name: value}).startswith(message)


def test_bad_flag_value_names_the_flag(home: dict[str, str]) -> None:
    """Flags defined by add_settings_arguments are checked like the rest, naming the flag."""
    parser = argparse.ArgumentParser()
    add_settings_arguments(parser)
    flags = vars(parser.parse_args(["--poll-min", "soon", "--processes", "2"]))
    assert config_error(flags, home) == "--poll-min='soon' is not a number"
    good = vars(parser.parse_args(["--processes", "4", "--memory-limit", "1G"]))
    settings = load_settings(good, home)
    assert (settings.processes, settings.memory_limit) == (4, 1024**3)


def test_poll_min_above_poll_max(tmp_path: Path, home: dict[str, str]) -> None:
    """poll_min greater than poll_max is refused, naming both values and their sources."""
    toml = write_toml(tmp_path, "poll_max = 2\n")
    message = config_error({"config": str(toml)}, {**home, "MLWORKER_POLL_MIN": "5"})
    assert message == (
        f"poll_min (5, from MLWORKER_POLL_MIN) is greater than poll_max (2, from {toml}: poll_max)"
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("polling = 3\n", "unknown setting 'polling'; allowed: host, username"),
        ('processes = "many"\n', "processes='many' is not a number"),
        ("[worker]\nhost = 'x'\n", "unknown setting 'worker'"),
        ("host = \n", "not valid TOML: "),
        ('password = "a"\npassword_file = "b"\n', "both password and password_file are set"),
    ],
)
def test_bad_toml(tmp_path: Path, home: dict[str, str], text: str, message: str) -> None:
    """A bad TOML file is refused in one line naming the file and the problem."""
    toml = write_toml(tmp_path, text)
    error = config_error({"config": str(toml)}, home)
    assert error.startswith(f"{toml}: ")
    assert message in error


def test_explicit_config_must_exist(tmp_path: Path, home: dict[str, str]) -> None:
    """A --config file that does not exist is an error, not a silent fallback to defaults."""
    missing = tmp_path / "nope.toml"
    message = config_error({"config": str(missing)}, home)
    assert message == f"--config: configuration file {missing} does not exist"


def test_password_sources_in_order(tmp_path: Path, home: dict[str, str]) -> None:
    """Password precedence: --password-file, MLWORKER_PASSWORD, credentials, TOML, default."""
    files = {}
    for name in ("flag", "credential", "tomlfile"):
        files[name] = tmp_path / name
        files[name].write_text(f"from-{name}\n", encoding="utf-8")
    (tmp_path / "creds").mkdir()
    (tmp_path / "creds" / "password").write_text("from-credentials", encoding="utf-8")
    toml = write_toml(tmp_path, f'password_file = "{files["tomlfile"]}"\n')
    flags: dict[str, object] = {"config": str(toml), "password_file": str(files["flag"])}
    environ = {
        **home,
        "MLWORKER_PASSWORD": "from-env",
        "CREDENTIALS_DIRECTORY": str(tmp_path / "creds"),
    }
    seen = []
    for drop in ("password_file", "MLWORKER_PASSWORD", "CREDENTIALS_DIRECTORY", "config", None):
        seen.append(load_settings(flags, environ).password.reveal())
        flags.pop(drop or "", None)
        environ.pop(drop or "", None)
    assert seen == ["from-flag", "from-env", "from-credentials", "from-tomlfile", "foobar"]


def test_password_file_from_environment(tmp_path: Path, home: dict[str, str]) -> None:
    """MLWORKER_PASSWORD_FILE is read, dropping one trailing newline only."""
    secret = tmp_path / "pw"
    secret.write_text(" pass word \n", encoding="utf-8")
    settings = load_settings({}, {**home, "MLWORKER_PASSWORD_FILE": str(secret)})
    assert settings.password.reveal() == " pass word "
    assert settings.sources["password"] == f"MLWORKER_PASSWORD_FILE ({secret})"


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("missing", "MLWORKER_PASSWORD_FILE: cannot read password file {path}: No such file"),
        ("directory", "MLWORKER_PASSWORD_FILE: cannot read password file {path}: Is a directory"),
        ("empty", "MLWORKER_PASSWORD_FILE: password file {path} is empty"),
        ("both", "MLWORKER_PASSWORD and MLWORKER_PASSWORD_FILE are both set; set one"),
    ],
)
def test_bad_password_file(tmp_path: Path, home: dict[str, str], setup: str, message: str) -> None:
    """An unusable password source is a one-line error naming the source and the file."""
    path = tmp_path / "pw"
    environ = {**home, "MLWORKER_PASSWORD_FILE": str(path)}
    if setup == "directory":
        path.mkdir()
    elif setup == "empty":
        path.write_text("\n", encoding="utf-8")
    elif setup == "both":
        path.write_text("x", encoding="utf-8")
        environ["MLWORKER_PASSWORD"] = "y"
    assert config_error({}, environ).startswith(message.format(path=path))


def test_password_never_printed(home: dict[str, str]) -> None:
    """The settings' repr and str, and the secret's own, never show the password."""
    settings = load_settings({}, {**home, "MLWORKER_PASSWORD": "hunter2-secret"})
    assert settings.password.reveal() == "hunter2-secret"
    for text in (repr(settings), str(settings), repr(settings.password), f"{settings.password}"):
        assert "hunter2" not in text
    assert Secret("a") == Secret("a") != Secret("b")


def test_settings_are_frozen(home: dict[str, str]) -> None:
    """Settings are read once: the object cannot be changed afterwards."""
    settings: Settings = load_settings({}, home)
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.host = "http://elsewhere/"  # type: ignore[misc]


def test_one_table_makes_flags_help_and_docs() -> None:
    """Each setting's flag help names its default, unit and variable; the docs table is current."""
    parser = argparse.ArgumentParser()
    add_settings_arguments(parser)
    helps = {a.option_strings[-1]: a.help or "" for a in parser._actions if a.option_strings}
    assert [s.name for s in SETTINGS] == [
        f.name for f in dataclasses.fields(Settings) if f.name not in NOT_SETTINGS
    ]
    for setting in SETTINGS:
        text = helps[setting.flag]
        assert setting.variable in text
        assert f"default {setting.default_text}" in text
        assert setting.unit in text
    assert "in seconds; default 1; MLWORKER_POLL_MIN" in helps["--poll-min"]
    docs = (Path(__file__).parent.parent / "docs" / "configuration.md").read_text()
    assert settings_markdown() in docs, "regenerate the table with: python -m worker.config"


def test_log_level_and_verbose_flag(home: dict[str, str]) -> None:
    """--log-level takes a level name, -v means debug, and a bad level is refused in one line."""
    parser = argparse.ArgumentParser()
    add_settings_arguments(parser)
    assert load_settings({}, home).log_level == "info"
    assert load_settings(vars(parser.parse_args(["-v"])), home).log_level == "debug"
    flags = vars(parser.parse_args(["--log-level", "WARNING"]))
    assert load_settings(flags, home).log_level == "warning"
    message = config_error({}, {**home, "MLWORKER_LOG_LEVEL": "loud"})
    assert message == "MLWORKER_LOG_LEVEL='loud' is not one of debug, info, warning, error"


def test_unknown_variable_is_a_warning(home: dict[str, str]) -> None:
    """A misspelt MLWORKER_* variable is warned about with the likely name; the server's are not."""
    environ = {**home, "MLWORKER_PROCESSSES": "3", "MLWORKER_SERVER_DATA_DIR": "/srv"}
    settings = load_settings({}, {**environ, "MLWORKER_PASSWORD_FILE": "", "MLWORKER_CONFIG": ""})
    assert settings.processes == 1
    assert settings.warnings == (
        "the environment variable MLWORKER_PROCESSSES is not a setting: ignored "
        "(did you mean MLWORKER_PROCESSES?)",
    )
    assert load_settings({}, home).warnings == ()


@pytest.mark.parametrize(
    ("host", "password", "warned"),
    [
        ("http://jobs.example.org/", None, True),
        ("http://10.0.0.5:8000/", None, True),
        ("http://localhost:8000/", None, False),
        ("http://127.0.0.1:8001/", None, False),
        ("http://[::1]:8001/", None, False),
        ("http://jobs.example.org/", "s3cret", False),
    ],
)
def test_default_password_beyond_loopback_is_a_warning(
    home: dict[str, str], host: str, password: str | None, warned: bool
) -> None:
    """The published default password sent to a host that is not loopback is warned about."""
    environ = {**home, "MLWORKER_HOST": host}
    if password:
        environ["MLWORKER_PASSWORD"] = password
    warnings = load_settings({}, environ).warnings
    assert bool(warnings) == warned
    if warned:
        assert warnings[0].startswith(f"the password is the demo's published default and {host}")
        assert "foobar" not in warnings[0]


def test_secret_value_never_in_an_error(tmp_path: Path, home: dict[str, str]) -> None:
    """A password refused from the TOML file is named by its key, never shown."""
    toml = write_toml(tmp_path, "password = 12345\n")
    message = config_error({"config": str(toml)}, home)
    assert message == f"{toml}: password must be a non-empty string"
