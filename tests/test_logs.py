"""Logs: JSON lines off a terminal, console lines on one, job context, no secrets ever."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import structlog

from worker.logs import configure_logging, job_context

SECRET = "hunter2-Xy9"


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """Undo the global logging set-up each test makes."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()
    root.handlers, root.level = handlers, level


def json_lines(text: str) -> list[dict[str, Any]]:
    lines = text.splitlines()
    assert lines
    return [json.loads(line) for line in lines]


def login(password: str) -> None:
    """Fail the way a client could, with the password in a local variable."""
    attempt = {"user": "backend", "password": password}
    raise RuntimeError(f"login refused for {attempt['user']}")


def test_json_when_stderr_is_not_a_terminal() -> None:
    """A worker whose stderr is a pipe (journald) writes one JSON object per line, ISO UTC."""
    code = (
        "import structlog, logging; from worker.logs import configure_logging;"
        "configure_logging(); structlog.get_logger().info('ready', jobs=3);"
        "logging.getLogger('urllib3').warning('retrying %s', 'x')"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    first, second = json_lines(done.stderr)
    assert (first["event"], first["jobs"], first["level"]) == ("ready", 3, "info")
    assert first["timestamp"].endswith("Z")
    assert datetime.fromisoformat(first["timestamp"]).utcoffset() is not None
    assert (second["event"], second["logger"], second["level"]) == (
        "retrying x",
        "urllib3",
        "warning",
    )


def test_console_on_a_terminal() -> None:
    """On a real terminal (a pty) the lines are readable text, not JSON."""
    master, slave = os.openpty()
    with os.fdopen(slave, "w", buffering=1) as tty:
        configure_logging("auto", tty)
        structlog.get_logger().info("ready", jobs=3)
    text = os.read(master, 65536).decode()
    os.close(master)
    assert "ready" in text
    assert "jobs" in text
    assert not text.lstrip().startswith("{")


@pytest.mark.parametrize(("fmt", "is_json"), [("json", True), ("console", False)])
def test_explicit_format_wins(fmt: str, is_json: bool) -> None:
    """log_format json or console is obeyed whatever the stream is."""
    stream = io.StringIO()
    configure_logging(fmt, stream)
    structlog.get_logger().info("hello")
    assert stream.getvalue().startswith("{") is is_json


def test_unknown_format_refused() -> None:
    """An unknown format names the allowed ones."""
    with pytest.raises(ValueError, match="one of auto, json, console, not 'xml'"):
        configure_logging("xml", io.StringIO())


@pytest.mark.parametrize("fmt", ["json", "console"])
def test_password_never_logged(fmt: str) -> None:
    """The password never appears: not in values, keys, stdlib arguments, nor tracebacks."""
    stream = io.StringIO()
    configure_logging(fmt, stream, secrets=[SECRET])
    log = structlog.get_logger()
    try:
        login(SECRET)
    except RuntimeError:
        log.exception("login failed", detail={"tried": [SECRET, (1, SECRET)]}, password=SECRET)
    log.info("settings", token="abc", config=Path(SECRET), given=SECRET)
    logging.getLogger("requests").error("auth with %s as %s", "backend", SECRET)
    text = stream.getvalue()
    assert SECRET not in text
    assert "abc" not in text
    assert text.count("***") >= 7
    assert "RuntimeError" in text
    assert "login refused" in text
    assert "auth with backend as ***" in text


@pytest.mark.parametrize("fmt", ["json", "console"])
def test_masking_never_marks_a_password_inside_prose(fmt: str) -> None:
    """With the password "wrong", the sentence "wrong username or password" is logged intact."""
    stream = io.StringIO()
    configure_logging(fmt, stream, secrets=["wrong"])
    refusal = "could not log in to http://127.0.0.1:8001/ as 'backend': wrong username or password"
    structlog.get_logger().error("cannot start", reason=refusal, tried="wrong")
    logging.getLogger("urllib3").warning("the %s answer", "wrong")
    text = stream.getvalue()
    assert refusal in text
    assert "the *** answer" in text
    assert "*** username" not in text


def test_tracebacks_have_no_local_variables() -> None:
    """JSON tracebacks list frames without local variables (structlog's default shows them)."""
    stream = io.StringIO()
    configure_logging("json", stream)  # no secrets given: only locals could leak it
    try:
        login(SECRET)
    except RuntimeError:
        structlog.get_logger().exception("login failed")
    (line,) = json_lines(stream.getvalue())
    frames = line["exception"][0]["frames"]
    assert [f["name"] for f in frames][-1] == "login"
    assert all("locals" not in frame for frame in frames)


def test_job_context_on_every_line() -> None:
    """Inside job_context every line, stdlib ones too, carries the job's identity; after, none."""
    stream = io.StringIO()
    configure_logging("json", stream)
    log = structlog.get_logger()
    with job_context(worker_id="lab1:42", job_id=17):
        log.info("claimed")
        structlog.contextvars.bind_contextvars(algorithm="knn", dataset=3, attempt=1)
        log.info("running")
        logging.getLogger("urllib3").warning("slow answer")
        log.info("done", outcome="success")
    log.info("idle")
    *job_lines, idle = json_lines(stream.getvalue())
    assert job_lines[0]["worker_id"] == "lab1:42"
    assert job_lines[0]["job_id"] == 17
    for line in job_lines[1:]:
        identity = {k: line[k] for k in ("worker_id", "job_id", "algorithm", "dataset", "attempt")}
        assert identity == {
            "worker_id": "lab1:42",
            "job_id": 17,
            "algorithm": "knn",
            "dataset": 3,
            "attempt": 1,
        }
    assert not {"worker_id", "job_id", "algorithm", "dataset", "attempt"} & set(idle)
