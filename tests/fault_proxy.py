"""A fault-injecting HTTP reverse proxy on 127.0.0.1, in a thread, in front of the real server.

The daemon's end-to-end tests point ``mlworker run --host`` at the proxy. It
forwards every request to the reference server and relays the answer, and on
a seeded random fraction of requests it injects one of the transient faults a
worker meets in the field instead of forwarding:

- ``500``, ``502``, ``503``: a server error;
- ``drop``: the connection is closed without an answer;
- ``429``: "too many requests" with ``Retry-After: 1``;
- ``401``, ``302``: the two forms of an expired session (a JSON ``401``, and
  Django's redirect to ``login/?next=...``); never on ``login/`` itself, which
  a real server does not answer that way (a ``drop`` stands in there).

Which requests are faulted is random (seeded); the kinds are dealt round-robin,
so that every kind is injected once there have been as many faults as kinds.
With ``after_rate``, a fraction of the result uploads (``jobs/<id>/update/``,
``jobs/<id>/finish/`` and ``jobs/<id>/pictures/``) is forwarded and then answered
``502`` or dropped: the server has the result, the worker never hears so, and must
send it again.
Faults are never injected after forwarding a claim (``jobs/request/``): the
protocol cannot recover that job before its lease ends.

Every exchange is recorded (:class:`Exchange`), so a test can count how often
the server really saw a request, e.g. the dataset downloads.

With ``seed_only`` set, the proxy makes the server look like one that speaks
only the protocol's v1 calls: it drops the fields of the additions from claims
(``wait``, ``details``) and their traces from answers (``X-Long-Poll``, a
claim's ``details``, the details' ``dataset_info``), and answers ``jobs/<id>/finish/``
``404`` without forwarding it, as a server that does not know the address would.
"""

from __future__ import annotations

import http.client
import json
import random
import re
import select
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

from loopback_http import LoopbackHTTP

BEFORE_KINDS = ("500", "502", "503", "drop", "429", "401", "302")
AFTER_KINDS = ("502-after", "drop-after")
SESSION_KINDS = frozenset({"401", "302"})
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "content-length",
        "date",  # these two the proxy sets itself
        "server",
    }
)
RESULT_UPLOAD = re.compile(r"/jobs/\d+/(update|finish|pictures)/")
RESULT = r"/jobs/\d+/(?:update|finish)/"  # a result's delivery: v1's update, or a finish
FINISH = re.compile(r"/jobs/\d+/finish/")
CLAIM = "/jobs/request/"
JOB_DETAILS = re.compile(r"/jobs/\d+/")
V1_LESS_FIELDS = frozenset({"wait", "details"})
V1_LESS_KEYS = ("details", "dataset_info")
NO_SUCH_ADDRESS = b'{"error": "no such address"}'
UPSTREAM_TIMEOUT = 120.0


@dataclass(frozen=True)
class Exchange:
    """One request through the proxy and what became of it."""

    method: str
    path: str  # without the query string
    fault: str | None  # the kind injected, None when relayed faithfully
    forwarded: bool  # whether the server received it
    upstream_status: int | None  # the server's answer (None: not forwarded, or unreachable)
    status: int | None  # what the client got (None: the connection was dropped)


@dataclass(frozen=True)
class _Answer:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


HUNG_UP = _Answer(499, [], b"")  # the client closed its connection while the server held it


class FaultProxy(LoopbackHTTP):
    """The proxy: ``url`` to point clients at, ``exchanges()`` to see what happened.

    Args:
        upstream: the real server's base URL (``http://127.0.0.1:PORT/``).
        rate: the fraction of requests answered with a fault instead of forwarding.
        after_rate: the fraction of result uploads faulted after forwarding.
        seed: seeds the choice of faulted requests.
        kinds: the faults to deal, from :data:`BEFORE_KINDS`.
    """

    def __init__(
        self,
        upstream: str,
        *,
        rate: float = 0.0,
        after_rate: float = 0.0,
        seed: int = 0,
        kinds: tuple[str, ...] = BEFORE_KINDS,
    ) -> None:
        if unknown := set(kinds) - set(BEFORE_KINDS):
            raise ValueError(f"unknown fault kinds {sorted(unknown)}; known: {BEFORE_KINDS}")
        parts = urlsplit(upstream)
        if parts.hostname is None or parts.port is None:
            raise ValueError(f"the upstream must be http://HOST:PORT/, not {upstream!r}")
        self.upstream = (parts.hostname, parts.port)
        self.rate = rate
        self.after_rate = after_rate
        self.kinds = kinds
        self.unavailable: re.Pattern[str] | None = None  # paths answered 503, never forwarded
        self.seed_only = False  # relay as a server of the v1 calls alone would answer
        self._random = random.Random(seed)
        self._random_after = random.Random(seed + 1)  # so the before-faults repeat exactly
        self._next_kind = 0
        self._next_after = 0
        self._lock = threading.Lock()
        self._exchanges: list[Exchange] = []
        server = _Server(("127.0.0.1", 0), _Handler)
        server.proxy = self
        super().__init__(server)

    def exchanges(self) -> list[Exchange]:
        """Every exchange so far, in the order they ended."""
        with self._lock:
            return list(self._exchanges)

    def injected(self) -> Counter[str]:
        """How many faults of each kind were injected."""
        return Counter(e.fault for e in self.exchanges() if e.fault is not None)

    def received(self, method: str, pattern: str) -> list[Exchange]:
        """The requests the server received whose path fully matches ``pattern``."""
        regex = re.compile(pattern)
        return [
            e
            for e in self.exchanges()
            if e.forwarded and e.method == method and regex.fullmatch(e.path)
        ]

    def results(self, job: int | None = None) -> list[Exchange]:
        """The result deliveries (``update/`` or ``finish/``) the server received (of ``job``)."""
        pattern = RESULT if job is None else RESULT.replace(r"\d+", str(job))
        return self.received("POST", pattern)

    def _record(self, exchange: Exchange) -> None:
        with self._lock:
            self._exchanges.append(exchange)

    def _fault_before(self, path: str) -> str | None:
        """The fault to answer instead of forwarding, or None."""
        if self.unavailable is not None and self.unavailable.fullmatch(path):
            return "unavailable"
        with self._lock:
            if not self.kinds or self._random.random() >= self.rate:
                return None
            kind = self.kinds[self._next_kind % len(self.kinds)]
            if kind in SESSION_KINDS and path.rstrip("/").endswith("/login"):
                return "drop"  # the kind's turn waits for a request that has a session
            self._next_kind += 1
            return kind

    def _fault_after(self, method: str, path: str) -> str | None:
        """The fault to answer after forwarding a result upload, or None."""
        if method != "POST" or not RESULT_UPLOAD.fullmatch(path):
            return None
        with self._lock:
            if self._random_after.random() >= self.after_rate:
                return None
            self._next_after += 1
            return AFTER_KINDS[self._next_after % len(AFTER_KINDS)]

    def _forward(
        self,
        method: str,
        target: str,
        headers: list[tuple[str, str]],
        body: bytes,
        client: socket.socket,
    ) -> _Answer | None:
        """The server's answer, None when it cannot be reached, HUNG_UP when the client left.

        While the server holds the request (a long poll), a client that hangs up makes
        the proxy hang up on the server too, as nginx does: the server must see the
        poll dropped, not hand a job to a connection nobody reads.
        """
        connection = http.client.HTTPConnection(*self.upstream, timeout=UPSTREAM_TIMEOUT)
        try:
            connection.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
            for name, value in headers:
                if name.lower() not in HOP_BY_HOP:
                    connection.putheader(name, value)
            connection.putheader("Content-Length", str(len(body)))
            connection.endheaders(body)
            if not _answered_before_hang_up(connection, client):
                return HUNG_UP
            response = connection.getresponse()
            relayed = [(k, v) for k, v in response.getheaders() if k.lower() not in HOP_BY_HOP]
            return _Answer(response.status, relayed, response.read())
        except OSError:
            return None
        finally:
            connection.close()


def _answered_before_hang_up(connection: http.client.HTTPConnection, client: socket.socket) -> bool:
    """Wait for the server's answer; False as soon as the client closes its connection."""
    upstream = connection.sock
    end = time.monotonic() + UPSTREAM_TIMEOUT
    while time.monotonic() < end:
        readable, _, _ = select.select([upstream, client], [], [], 0.5)
        if upstream in readable:
            return True
        if client in readable:  # a hang-up, or the client's next request: stop watching
            return bool(client.recv(1, socket.MSG_PEEK))
    return True  # getresponse() then times out as before


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # idle keep-alive connections must not hold up the shutdown
    proxy: FaultProxy


def _fault_answer(kind: str, path: str) -> _Answer:
    """The answer a fault of ``kind`` gives instead of the server's."""
    json_type = ("Content-Type", "application/json")
    if kind == "429":
        return _Answer(429, [json_type, ("Retry-After", "1")], b'{"error": "slow down"}')
    if kind == "401":
        return _Answer(401, [json_type], b'{"error": "authentication required"}')
    if kind == "302":
        location = "/login/?next=" + quote(path)
        return _Answer(302, [("Location", location), ("Content-Type", "text/html")], b"")
    if kind == "unavailable":
        return _Answer(503, [json_type], b'{"error": "down for maintenance"}')
    return _Answer(int(kind[:3]), [json_type], b'{"error": "injected server error"}')


def _as_v1(path: str, answer: _Answer) -> _Answer:
    """``answer`` without what the protocol's additions put in it."""
    headers = [(name, value) for name, value in answer.headers if name.lower() != "x-long-poll"]
    body = answer.body
    if answer.status == 200 and (path == CLAIM or JOB_DETAILS.fullmatch(path)):
        data = json.loads(body)
        for key in V1_LESS_KEYS:
            data.pop(key, None)
        body = json.dumps(data).encode()
    return _Answer(answer.status, headers, body)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the real server does
    timeout = 60  # an idle client connection is closed after this

    server: _Server

    def do_GET(self) -> None:
        """Relay, or fault."""
        self._relay()

    def do_POST(self) -> None:
        """Relay, or fault."""
        self._relay()

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the exchanges are recorded instead."""

    def _relay(self) -> None:
        proxy = self.server.proxy
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        path = urlsplit(self.path).path
        fault = proxy._fault_before(path)
        if fault is not None:
            self._answer_fault(fault, path, forwarded=False, upstream_status=None)
            return
        if proxy.seed_only and FINISH.fullmatch(path):
            self._send(_Answer(404, [("Content-Type", "application/json")], NO_SUCH_ADDRESS))
            proxy._record(Exchange(self.command, path, None, False, None, 404))
            return
        if proxy.seed_only and path == CLAIM:
            kept = [field for field in parse_qsl(body.decode()) if field[0] not in V1_LESS_FIELDS]
            body = urlencode(kept).encode()
        answer = proxy._forward(
            self.command, self.path, list(self.headers.items()), body, self.connection
        )
        if answer is HUNG_UP:  # nobody to answer; the server saw the hang-up too
            self.close_connection = True
            proxy._record(Exchange(self.command, path, None, True, None, None))
            return
        if answer is not None and proxy.seed_only:
            answer = _as_v1(path, answer)
        if answer is None:  # the server is down: what a gateway says
            self._send(_Answer(502, [], b"upstream unreachable"))
            proxy._record(Exchange(self.command, path, None, False, None, 502))
            return
        fault = proxy._fault_after(self.command, path)
        if fault is not None:
            self._answer_fault(fault, path, forwarded=True, upstream_status=answer.status)
            return
        self._send(answer)
        proxy._record(Exchange(self.command, path, None, True, answer.status, answer.status))

    def _answer_fault(
        self, fault: str, path: str, *, forwarded: bool, upstream_status: int | None
    ) -> None:
        status: int | None = None
        if fault.startswith("drop"):
            self.close_connection = True
        else:
            answer = _fault_answer(fault.removesuffix("-after"), path)
            self._send(answer)
            status = answer.status
        self.server.proxy._record(
            Exchange(self.command, path, fault, forwarded, upstream_status, status)
        )

    def _send(self, answer: _Answer) -> None:
        self.send_response(answer.status)
        for name, value in answer.headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(answer.body)))
        self.end_headers()
        self.wfile.write(answer.body)
        self.wfile.flush()
