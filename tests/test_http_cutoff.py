"""worker.http against a trickling or stalling peer: whole-call deadlines, interruption, caps.

The peer is `tests/fault_server.py` on 127.0.0.1; one-shot faults answer
without a session, so no login is needed.
"""

from __future__ import annotations

import threading
import time

import pytest
from fault_server import FaultServer, Reply
from structlog.testing import capture_logs

from worker.backoff import RETRY_AFTER_MAX
from worker.errors import BadAnswerError, CallInterrupted, TransientError
from worker.http import Transport, json_body, parse_retry_after


def test_a_trickled_answer_meets_the_whole_call_deadline() -> None:
    """Each byte comes well within the read timeout, yet the call ends at its deadline."""
    with FaultServer() as server:
        server.fault("GET", "/datasets/", Reply(trickle=0.2))
        transport = Transport(server.url, timeout=(1.0, 5.0), retry_for=0, deadline=1.0)
        started = time.monotonic()
        with pytest.raises(TransientError, match="no complete answer within 1 seconds"):
            transport.request("GET", "datasets/")
        assert time.monotonic() - started < 4.0  # the answer alone would take 20 s


def test_a_caller_may_give_one_call_a_longer_deadline() -> None:
    """The deadline given to one call (a long poll's) replaces the transport's."""
    with FaultServer() as server:
        server.fault("GET", "/datasets/", Reply(body={}, trickle=0.01))
        server.fault("GET", "/datasets/", Reply(body={}, trickle=0.01))
        transport = Transport(server.url, timeout=(1.0, 5.0), retry_for=0, deadline=0.3)
        with pytest.raises(TransientError):
            transport.request("GET", "datasets/")
        answer = transport.request("GET", "datasets/", deadline=30.0, timeout=(1.0, 30.0))
        assert json_body(answer, dict) == {}


def test_interruption_cuts_a_call_in_flight() -> None:
    """``interrupted()`` turning true cuts a stalled call within a fraction of a second."""
    stop = threading.Event()
    with FaultServer() as server:
        server.fault("GET", "/datasets/", Reply(trickle=5.0))
        transport = Transport(server.url, timeout=(1.0, 60.0), retry_for=0, interrupted=stop.is_set)
        threading.Timer(0.3, stop.set).start()
        started = time.monotonic()
        with pytest.raises(CallInterrupted):
            transport.request("GET", "datasets/")
        assert time.monotonic() - started < 3.0


def test_interruption_cuts_the_sleep_between_retries() -> None:
    """A retry due in 200 s (Retry-After) is abandoned as soon as ``interrupted()`` says so."""
    stop = threading.Event()
    with FaultServer() as server:
        busy = Reply(503, {"error": "busy"}, headers={"Retry-After": "200"})
        server.fault("GET", "/datasets/", busy)
        transport = Transport(
            server.url, timeout=(1.0, 5.0), retry_for=600, interrupted=stop.is_set
        )
        threading.Timer(0.3, stop.set).start()
        started = time.monotonic()
        with pytest.raises(CallInterrupted):
            transport.request("GET", "datasets/")
        assert time.monotonic() - started < 3.0
        assert len(server.calls("GET", "/datasets/")) == 1


def test_a_retry_after_of_years_plans_a_wait_of_at_most_the_ceiling() -> None:
    """``Retry-After: 99999999`` within a long retry budget: the planned sleep is capped."""
    with FaultServer() as server:
        busy = Reply(503, {"error": "busy"}, headers={"Retry-After": "99999999"})
        server.fault("GET", "/datasets/", busy)
        with capture_logs() as logs:
            transport = Transport(
                server.url,
                timeout=(1.0, 5.0),
                retry_for=10**9,
                interrupted=lambda: any(e["event"] == "call failed, retrying" for e in logs),
            )
            with pytest.raises(CallInterrupted):
                transport.request("GET", "datasets/")
    (retry,) = [e for e in logs if e["event"] == "call failed, retrying"]
    assert retry["wait"] == RETRY_AFTER_MAX
    assert parse_retry_after("99999999") == 99999999.0  # the server's own value stays readable


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        (b'{"a": ' + b"9" * 5000 + b"}", "not JSON it can read"),
        (b"<html>", "not JSON it can read"),
    ],
)
def test_answers_that_cannot_be_parsed_are_bad_answers(raw: bytes, words: str) -> None:
    """Deep JSON and numbers too long for Python raise BadAnswerError, not a crash."""
    with FaultServer() as server:
        server.fault("GET", "/datasets/", Reply(raw=raw))
        transport = Transport(server.url, timeout=(1.0, 5.0), retry_for=0)
        with pytest.raises(BadAnswerError, match=words):
            json_body(transport.request("GET", "datasets/"), dict)
