"""A scripted, Django-like HTTP peer on 127.0.0.1 for testing the client library.

It speaks the protocol's session rules the way Django does (a ``csrftoken``
cookie checked against ``X-CSRFToken`` on every POST and rotated at login, a
``sessionid`` cookie, ``401`` or a ``302`` to ``login/`` for a missing
session) and answers anything else from a script: standing answers per
``(method, path)`` and one-shot faults consumed in order (an error status,
a slow answer, or a dropped connection). Every request is recorded with its
arrival time, headers, cookies, form fields and uploaded files.

Paths given to :meth:`FaultServer.answer`, :meth:`FaultServer.fault` and
recorded in :class:`Seen` are relative to the server's prefix, with a leading
``/`` (``"/datasets/"``).
"""

from __future__ import annotations

import email.parser
import email.policy
import json
import secrets
import threading
import time
from collections import defaultdict, deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from loopback_http import LoopbackHTTP

DROP = "drop"  # a fault that closes the connection without answering
LOGIN_PAGE = "<html><body><form>Please enter a correct username and password.</form></body></html>"


@dataclass(frozen=True)
class Reply:
    """One scripted answer: a JSON body (or HTML for a str body), headers, cookies, a delay."""

    status: int = 200
    body: Any = field(default_factory=lambda: {"success": True})
    headers: Mapping[str, str] = field(default_factory=dict)
    cookies: Mapping[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds before answering, to outlast a client's read timeout
    raw: bytes | None = None  # a body sent as it is (JSON no encoder would write), not `body`
    trickle: float = 0.0  # seconds between bytes of the whole answer, status line included


@dataclass(frozen=True)
class Seen:
    """One request as the server received it."""

    method: str
    path: str
    headers: dict[str, str]  # keys in lower case
    cookies: dict[str, str]
    form: dict[str, str]
    files: dict[str, tuple[str, bytes]]  # field -> (filename, content) of its last file
    uploads: list[tuple[str, str, bytes]]  # every file in order: (field, filename, content)
    at: float  # time.monotonic() on arrival


Script = Reply | str


class FaultServer(LoopbackHTTP):
    """A threaded HTTP server on a free loopback port playing a Django job server.

    Args:
        users: accepted ``{username: password}``.
        prefix: the path prefix the server lives under (``"/ml/"``).
    """

    def __init__(self, users: Mapping[str, str] | None = None, prefix: str = "/") -> None:
        self.users = dict(users or {"backend": "foobar"})
        self.prefix = "/" + prefix.strip("/") + "/" if prefix.strip("/") else "/"
        self.expired_answer = 401  # or 302: what a request without a live session gets
        self.login_failure_status = 200
        self.seen: list[Seen] = []
        self.csrf_tokens: set[str] = set()
        self.sessions: set[str] = set()
        self._answers: dict[tuple[str, str], Reply] = {}
        self._faults: dict[tuple[str, str], deque[Script]] = defaultdict(deque)
        self._lock = threading.Lock()
        super().__init__(ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self)))

    def answer(self, method: str, path: str, reply: Reply) -> None:
        """Answer every ``method path`` with ``reply`` (after any faults)."""
        self._answers[method, path] = reply

    def fault(self, method: str, path: str, *scripts: Script) -> None:
        """Answer the next requests to ``method path`` with ``scripts``, in order."""
        with self._lock:
            self._faults[method, path].extend(scripts)

    def expire_sessions(self) -> None:
        """Forget every session, as an expired or flushed Django session store would."""
        self.sessions.clear()

    def calls(self, method: str | None = None, path: str | None = None) -> list[Seen]:
        """The recorded requests, optionally only those of one method and/or path."""
        with self._lock:
            return [
                s
                for s in self.seen
                if (method is None or s.method == method) and (path is None or s.path == path)
            ]

    def sequence(self) -> list[str]:
        """``"METHOD /path"`` of each recorded request, for asserting a call sequence."""
        return [f"{s.method} {s.path}" for s in self.calls()]

    def respond(self, seen: Seen) -> Script:
        """Decide the answer to one request, Django-style first, then from the script."""
        with self._lock:
            self.seen.append(seen)
            queued = self._faults[seen.method, seen.path]
            fault = queued.popleft() if queued else None
        if seen.method == "POST" and not self._csrf_ok(seen):
            return Reply(403, "<html>CSRF verification failed.</html>")
        if seen.path == "/login/":
            return self._login(seen)
        if fault is not None:
            return fault
        if seen.cookies.get("sessionid") not in self.sessions:
            return self._not_logged_in(seen)
        if (seen.method, seen.path) == ("POST", "/logout/"):
            self.sessions.discard(seen.cookies["sessionid"])
        return self._answers.get((seen.method, seen.path), Reply())

    def new_csrf_token(self) -> str:
        """Issue a token and remember it as valid."""
        token = secrets.token_hex(16)
        self.csrf_tokens.add(token)
        return token

    def _csrf_ok(self, seen: Seen) -> bool:
        cookie = seen.cookies.get("csrftoken")
        return cookie in self.csrf_tokens and seen.headers.get("x-csrftoken") == cookie

    def _login(self, seen: Seen) -> Reply:
        if seen.method == "GET":
            return Reply(200, LOGIN_PAGE)
        username, password = seen.form.get("username"), seen.form.get("password")
        if username not in self.users or self.users[username] != password:
            return Reply(self.login_failure_status, LOGIN_PAGE)
        self.csrf_tokens.discard(seen.cookies["csrftoken"])  # Django rotates it at login
        session = secrets.token_hex(16)
        self.sessions.add(session)
        cookies = {"sessionid": session, "csrftoken": self.new_csrf_token()}
        return Reply(200, {"success": True}, cookies=cookies)

    def _not_logged_in(self, seen: Seen) -> Reply:
        if self.expired_answer == 302:
            location = f"{self.prefix}login/?next={self.prefix}{seen.path.lstrip('/')}"
            return Reply(302, "<html>redirect</html>", headers={"Location": location})
        return Reply(401, {"error": "authentication required"})


def _handler_for(server: FaultServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, so drops hit pooled connections too

        def do_GET(self) -> None:
            self._serve()

        def do_POST(self) -> None:
            self._serve()

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: the test reads ``server.seen`` instead."""

        def _serve(self) -> None:
            seen = self._record()
            if seen is None:
                self._send(Reply(404, {"error": f"not under {server.prefix}"}), {})
                return
            script = server.respond(seen)
            if script == DROP:
                self.close_connection = True
                return
            assert isinstance(script, Reply)
            time.sleep(script.delay)  # the peer being slow, not the test waiting
            self._send(script, seen.cookies)

        def _record(self) -> Seen | None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            path = urlsplit(self.path).path
            if not path.startswith(server.prefix):
                return None
            cookies = {k: m.value for k, m in SimpleCookie(self.headers.get("Cookie", "")).items()}
            form, uploads = _parse_body(self.headers.get("Content-Type", ""), body)
            return Seen(
                method=self.command,
                path="/" + path[len(server.prefix) :],
                headers={k.lower(): v for k, v in self.headers.items()},
                cookies=cookies,
                form=form,
                files={field: (name, content) for field, name, content in uploads},
                uploads=uploads,
                at=time.monotonic(),
            )

        def _send(self, reply: Reply, cookies: dict[str, str]) -> None:
            is_text = isinstance(reply.body, str) and reply.raw is None
            body = reply.raw if reply.raw is not None else _encoded(reply.body)
            if reply.trickle:
                self._trickle(reply, body)
                return
            self.send_response(reply.status)
            self.send_header("Content-Type", "text/html" if is_text else "application/json")
            self.send_header("Content-Length", str(len(body)))
            for name, value in reply.headers.items():
                self.send_header(name, value)
            for name, value in _cookies_to_set(reply, cookies).items():
                self.send_header("Set-Cookie", f"{name}={value}; Path=/")
            self.end_headers()
            self.wfile.write(body)

        def _trickle(self, reply: Reply, body: bytes) -> None:
            """Answer one byte at a time, `reply.trickle` seconds apart, until the peer leaves."""
            head = f"HTTP/1.1 {reply.status} Trickle\r\nContent-Type: application/json\r\n"
            head += f"Content-Length: {len(body)}\r\n\r\n"
            self.close_connection = True
            for byte in head.encode() + body:
                try:
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()
                except OSError:
                    return
                time.sleep(reply.trickle)  # the peer being slow, not the test waiting

    def _cookies_to_set(reply: Reply, cookies: dict[str, str]) -> dict[str, str]:
        """Cookies of the answer; a client without a valid CSRF token gets one, as Django does."""
        to_set = dict(reply.cookies)
        if "csrftoken" not in to_set and cookies.get("csrftoken") not in server.csrf_tokens:
            to_set["csrftoken"] = server.new_csrf_token()
        return to_set

    return Handler


Uploads = list[tuple[str, str, bytes]]


def _encoded(body: Any) -> bytes:
    return (body if isinstance(body, str) else json.dumps(body)).encode()


def _parse_body(content_type: str, body: bytes) -> tuple[dict[str, str], Uploads]:
    """Form fields and uploaded files (in order) of a urlencoded or multipart body."""
    if content_type.startswith("application/x-www-form-urlencoded"):
        return dict(parse_qsl(body.decode(), keep_blank_values=True)), []
    if not content_type.startswith("multipart/form-data"):
        return {}, []
    head = f"Content-Type: {content_type}\r\n\r\n".encode()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    form: dict[str, str] = {}
    uploads: Uploads = []
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        assert isinstance(name, str)
        assert isinstance(payload, bytes)
        filename = part.get_filename()
        if filename is None:
            form[name] = payload.decode()
        else:
            uploads.append((name, filename, payload))
    return form, uploads
