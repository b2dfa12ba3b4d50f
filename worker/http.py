"""The session and retry layer under :mod:`worker.api`.

One :class:`Transport` per client: a ``requests.Session`` with connect/read
timeouts, the CSRF token on every POST, no automatic redirects (a redirect to
``login/`` means the session expired, so it must be seen, not followed), and
tenacity retries of transient failures. This module is the one boundary where
``requests`` exceptions and the server's error answers become the errors of
:mod:`worker.errors`; nothing above it catches a library exception.

Waits are bounded and can be cut (see :mod:`worker.cutoff`):

- Every exchange has a deadline for the *whole* answer, not only for each
  read: ``deadline`` seconds (by default the connect and read timeouts
  added). A caller that expects a long answer passes its own per call:
  ``request(..., deadline=wait + margin, timeout=(3.05, wait + margin))``
  is how a long-poll claim held open up to ``wait`` seconds is sent.
- ``interrupted`` (a callable the owner gives, e.g. "a stop signal arrived")
  is checked every tenth of a second during an exchange (every half second
  once it has run for a second, as a held long poll does) and during the
  sleeps between retries; when it says so, the exchange's sockets are shut
  down and :class:`~worker.errors.CallInterrupted` is raised, never retried.
- ``Retry-After`` is honoured up to `RETRY_AFTER_MAX` seconds.
- Answers are decoded without trusting them: JSON nested too deep for the
  parser, or numbers too long for Python, make a
  :class:`~worker.errors.BadAnswerError`, not a crash.
"""

from __future__ import annotations

import json
import math
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar
from urllib.parse import urljoin, urlsplit

import requests
import structlog
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_before_delay
from tenacity.wait import wait_random_exponential

from worker.backoff import RETRY_AFTER_MAX
from worker.cutoff import Cut, CuttableAdapter, Sockets, call_within, sleep_within
from worker.errors import (
    APIError,
    AuthenticationError,
    BadAnswerError,
    CallInterrupted,
    ConflictError,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
    TransientError,
)

__all__ = [
    "Timeout",
    "Transport",
    "encode_form",
    "json_body",
    "login_refusal",
    "normalize_url",
    "post_headers",
]

Timeout = float | tuple[float, float]
T = TypeVar("T")

BACKOFF_FIRST = 0.5  # seconds: the first retry waits a random time up to this ("full jitter")
BACKOFF_MAX = 30.0  # seconds: the backoff window stops doubling here
_TRANSIENT_STATUSES = frozenset({408, 429})
_PERMANENT: dict[int, type[APIError]] = {
    400: InvalidInputError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    413: InvalidInputError,
}
_TRANSIENT_EXCEPTIONS = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError,
)

log = structlog.get_logger()


def normalize_url(host: str, path: str) -> str:
    """Join ``host`` and ``path`` with exactly one ``/`` between them.

    A path prefix in ``host`` (``https://example.org/ml/``) is kept.
    ``normalize_url("http://h:8000/", "/a")`` is ``"http://h:8000/a"`` and
    ``normalize_url("http://h:8000", "a/b/")`` is ``"http://h:8000/a/b/"``.
    """
    return host.rstrip("/") + "/" + path.lstrip("/")


def check_host(host: str) -> str:
    """Return ``host`` if it is an absolute http(s) URL; raise ValueError naming it otherwise."""
    parts = urlsplit(host)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(
            f"host {host!r} is not a job server URL: "
            "expected http:// or https:// followed by a host name, e.g. http://localhost:8000/"
        )
    return host


def post_headers(host: str, csrf_token: str) -> dict[str, str]:
    """The headers Django's CSRF check wants on a POST to ``host``.

    ``X-CSRFToken`` always; ``Referer`` (the host's origin) only over https,
    where Django refuses a POST whose Referer is missing or foreign.
    """
    headers = {"X-CSRFToken": csrf_token}
    parts = urlsplit(host)
    if parts.scheme == "https":
        headers["Referer"] = f"https://{parts.netloc}/"
    return headers


def encode_form(fields: Mapping[str, Any]) -> dict[str, str]:
    """Encode POST fields the protocol's way, before anything is sent.

    ``None`` values are left out; booleans become ``true``/``false``; lists
    and dicts become their JSON text; numbers their JSON form. NaN and
    infinity are refused (JSON has neither), as is any other type.

    Raises:
        ValueError: a field holds NaN or infinity, or a type JSON cannot hold.
    """
    return {name: _encode_value(name, value) for name, value in fields.items() if value is not None}


def _encode_value(name: str, value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        value = dict(value)
    elif isinstance(value, Sequence) and not isinstance(value, bytes | bytearray):
        value = list(value)
    if isinstance(value, bool | int | float | list | dict):
        try:
            return json.dumps(value, allow_nan=False)
        except ValueError:
            raise ValueError(
                f"field {name!r} holds NaN or infinity, which JSON cannot carry: "
                "send finite numbers only"
            ) from None
        except TypeError as exc:
            raise ValueError(f"field {name!r} cannot be sent as JSON: {exc}") from None
    raise ValueError(
        f"field {name!r} is a {type(value).__name__}; allowed: "
        "str, int, float, bool, None, list, dict"
    )


def json_body(response: requests.Response, kind: type[T]) -> T:
    """The decoded JSON of a successful answer, which must be a ``kind`` (dict or list).

    Raises:
        APIError: the body is not JSON, or not a JSON ``kind``.
    """
    try:
        body = json.loads(response.content)
    except RecursionError:
        raise BadAnswerError(
            f"{_call_of(response)} answered {response.status_code} with JSON nested too deeply "
            "to read",
            response.status_code,
        ) from None
    except ValueError as exc:  # not JSON, or a number of more digits than Python reads
        raise BadAnswerError(
            f"{_call_of(response)} answered {response.status_code} with a body that is not "
            f"JSON it can read ({str(exc)[:80]}): {response.text[:80]!r}",
            response.status_code,
        ) from None
    if not isinstance(body, kind):
        raise BadAnswerError(
            f"{_call_of(response)} answered a JSON {type(body).__name__} "
            f"where a {kind.__name__} was expected",
            response.status_code,
        )
    return body


def login_refusal(response: requests.Response) -> str | None:
    """Why an answer to ``POST login/`` is a refusal, or None when it is a success.

    Success is ``200 {"success": true}`` that sets the ``sessionid`` cookie;
    the reason never echoes what was sent.
    """
    if _says_success(response):
        return None if "sessionid" in response.cookies else "the server set no sessionid cookie"
    if "html" in response.headers.get("Content-Type", ""):
        return "wrong username or password (the server answered its login page again)"
    return 'the server did not answer {"success": true}'


def _says_success(response: requests.Response) -> bool:
    if response.status_code != 200:
        return False
    body = _decoded(response)
    return isinstance(body, dict) and body.get("success") is True


def _decoded(response: requests.Response) -> object:
    """The body's JSON, or None when it is not JSON the parser can read."""
    try:
        return json.loads(response.content)
    except (ValueError, RecursionError):
        return None


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (seconds or an HTTP date), or None.

    The value is the server's; waits planned from it are capped at `RETRY_AFTER_MAX`.
    """
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError):
            return None
    return max(0.0, seconds) if math.isfinite(seconds) else None


def is_login_redirect(response: requests.Response) -> bool:
    """True for a redirect to the login page, which is how Django says "session expired"."""
    if not response.is_redirect:
        return False
    target = urljoin(response.url, response.headers.get("Location", ""))
    return urlsplit(target).path.rstrip("/").rsplit("/", 1)[-1] == "login"


def error_for(response: requests.Response) -> APIError:
    """The error of our tree that an unsuccessful answer stands for."""
    call, status = _call_of(response), response.status_code
    if is_login_redirect(response):
        return AuthenticationError(f"{call} was redirected to the login page", status)
    if response.is_redirect:
        location = response.headers.get("Location", "")
        return APIError(
            f"{call} answered {status}, a redirect to {location!r}: "
            "check the host URL (http or https, path prefix)",
            status,
        )
    sentence, fields = _server_sentence(response)
    message = f"{call} answered {status}: {sentence}"
    if status in _TRANSIENT_STATUSES or status >= 500:
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        return TransientError(message, status, retry_after)
    cls = _PERMANENT.get(status, APIError)
    if cls is InvalidInputError:
        return InvalidInputError(message, status, fields)
    return cls(message, status)


def _server_sentence(response: requests.Response) -> tuple[str, dict[str, str]]:
    """The server's ``error`` sentence and ``fields``, or the reason phrase for non-JSON bodies."""
    body = _decoded(response)
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        raw_fields = body.get("fields")
        fields = raw_fields if isinstance(raw_fields, dict) else {}
        return body["error"], {str(key): str(value) for key, value in fields.items()}
    return response.reason or "no reason given", {}


def _call_of(response: requests.Response) -> str:
    return _call(response.request.method or "", response.request.url or "")


def _call(method: str, url: str) -> str:
    """How messages name a call: ``POST /jobs/17/update/``."""
    return f"{method} {urlsplit(url).path}"


def _wait(retry_state: RetryCallState) -> float:
    """Wait what the server asked for (Retry-After), else full-jitter exponential backoff."""
    outcome = retry_state.outcome
    error = outcome.exception() if outcome is not None else None
    if isinstance(error, TransientError) and error.retry_after is not None:
        return min(error.retry_after, RETRY_AFTER_MAX)
    return _backoff(retry_state)


_backoff = wait_random_exponential(multiplier=BACKOFF_FIRST, max=BACKOFF_MAX)


def _retryable(error: BaseException) -> bool:
    """Transient failures are retried; a call cut short by its caller is not."""
    return isinstance(error, TransientError) and not isinstance(error, CallInterrupted)


@dataclass(frozen=True)
class _Limits:
    """One call's bounds: the whole exchange's deadline, and per connect/read timeouts."""

    deadline: float
    timeout: Timeout


def _total(timeout: Timeout) -> float:
    return sum(timeout) if isinstance(timeout, tuple) else 2 * timeout


def _never() -> bool:
    return False


def _log_retry(retry_state: RetryCallState) -> None:
    outcome = retry_state.outcome
    error = outcome.exception() if outcome is not None else None
    log.warning(
        "call failed, retrying",
        error=str(error),
        attempt=retry_state.attempt_number,
        wait=round(retry_state.upcoming_sleep, 3),
    )


def _session_for(host: str) -> requests.Session:
    """A session with the environment's proxy and CA bundle settings for ``host``, read once.

    requests reads them again on every call (``HTTPS_PROXY``, ``NO_PROXY``,
    ``REQUESTS_CA_BUNDLE``...), a scan of the whole environment that took a
    fifth of its CPU per call (0.37 of 1.8 ms); a worker talks to one host,
    and its environment does not change while it runs. Not trusting the
    environment afterwards also keeps a stray ``~/.netrc`` from adding basic
    auth headers: the worker logs in with its form.
    """
    session = requests.Session()
    settings = session.merge_environment_settings(host, {}, None, None, None)
    session.proxies.update(settings["proxies"])
    session.verify = settings["verify"]
    session.trust_env = False
    return session


class Transport:
    """HTTP to one job server: session, CSRF, timeouts, retries, error translation.

    Args:
        host: the server's base URL (may carry a path prefix).
        timeout: seconds to connect and to read an answer, as ``requests`` takes them.
        retry_for: seconds during which transient failures of one call are
            retried; the next attempt is given up when it would start later
            than that after the first. 0 means no retry.
        deadline: seconds one exchange may take in all; by default the
            connect and read timeouts added.
        interrupted: says when to cut a call short (checked every tenth of
            a second while waiting); by default never.
    """

    def __init__(
        self,
        host: str,
        *,
        timeout: Timeout,
        retry_for: float,
        deadline: float | None = None,
        interrupted: Callable[[], bool] | None = None,
    ) -> None:
        if not retry_for >= 0:
            raise ValueError(f"retry_for must be a number of seconds >= 0, got {retry_for!r}")
        self.host = check_host(host)
        self.timeout = timeout
        self.retry_for = retry_for
        self.deadline = deadline if deadline is not None else _total(timeout)
        self.interrupted: Callable[[], bool] = interrupted or _never
        self.session = _session_for(self.host)
        self._sockets = Sockets()
        for scheme in ("http://", "https://"):
            self.session.mount(scheme, CuttableAdapter(self._sockets))

    def url(self, path: str) -> str:
        """The absolute URL of ``path`` on this server."""
        return normalize_url(self.host, path)

    def csrf_token(self) -> str | None:
        """The current ``csrftoken`` cookie, read afresh (Django rotates it at login)."""
        tokens = [c.value for c in self.session.cookies if c.name == "csrftoken" and c.value]
        return tokens[-1] if tokens else None

    def request(
        self,
        method: str,
        path: str,
        *,
        data: Mapping[str, str] | None = None,
        files: Mapping[str, tuple[str, bytes, str]] | None = None,
        headers: Mapping[str, str] | None = None,
        check: bool = True,
        deadline: float | None = None,
        timeout: Timeout | None = None,
    ) -> requests.Response:
        """Send one call, retrying transient failures for up to ``retry_for`` seconds.

        Args:
            method: ``GET`` or ``POST``.
            path: relative to the host.
            data: form fields, already encoded (see :func:`encode_form`).
            files: multipart files, ``{field: (filename, content, content type)}``.
            headers: extra headers.
            check: raise the typed error of any unsuccessful answer; when False,
                only transient answers raise and the rest are returned (login).
            deadline: seconds this call's exchange may take in all (default:
                the transport's); each retry gets as long again.
            timeout: this call's connect and read timeouts (default: the transport's).

        Raises:
            CallInterrupted: ``interrupted()`` said so while waiting.
            TransientError: still failing when ``retry_for`` ran out.
            APIError: a permanent failure (a subclass names which).
        """
        limits = _Limits(
            deadline if deadline is not None else self.deadline,
            timeout if timeout is not None else self.timeout,
        )
        retrying = Retrying(
            retry=retry_if_exception(_retryable),
            wait=_wait,
            stop=stop_before_delay(self.retry_for),
            before_sleep=_log_retry,
            sleep=self._sleep,
            reraise=True,
        )
        return retrying(self._send_once, method, path, data, files, headers or {}, check, limits)

    def close(self) -> None:
        """Close the pooled connections."""
        self.session.close()

    def _send_once(
        self,
        method: str,
        path: str,
        data: Mapping[str, str] | None,
        files: Mapping[str, tuple[str, bytes, str]] | None,
        headers: Mapping[str, str],
        check: bool,
        limits: _Limits,
    ) -> requests.Response:
        all_headers = dict(headers)
        if method == "POST":
            all_headers.update(post_headers(self.host, self._ensure_csrf_token()))
        response = self._http(method, path, limits, data=data, files=files, headers=all_headers)
        if response.status_code < 300:
            return response
        error = error_for(response)
        if check or isinstance(error, TransientError):
            raise error
        return response

    def _ensure_csrf_token(self) -> str:
        """The CSRF token, fetched with ``GET login/`` when the session has none yet."""
        token = self.csrf_token()
        if token is not None:
            return token
        response = self._http("GET", "login/", _Limits(self.deadline, self.timeout))
        if response.status_code >= 300:
            raise error_for(response)
        token = self.csrf_token()
        if token is None:
            raise APIError(
                f"GET login/ set no csrftoken cookie: is {self.host} a job server?",
                response.status_code,
            )
        return token

    def _sleep(self, seconds: float) -> None:
        """The wait between retries, cut short by ``interrupted()``."""
        try:
            sleep_within(seconds, self.interrupted)
        except Cut:
            raise CallInterrupted("stopped waiting to retry: the worker is stopping") from None

    def _http(self, method: str, path: str, limits: _Limits, **kwargs: Any) -> requests.Response:
        """One HTTP exchange; the only place ``requests`` exceptions are caught."""
        url = self.url(path)
        call = _call(method, url)

        def exchange() -> requests.Response:
            return self.session.request(
                method, url, timeout=limits.timeout, allow_redirects=False, **kwargs
            )

        try:
            return call_within(
                exchange,
                seconds=limits.deadline,
                interrupted=self.interrupted,
                cut=self._sockets.cut,
            )
        except Cut as cut:
            if cut.interrupted:
                raise CallInterrupted(f"{call} cut short: the worker is stopping") from None
            raise TransientError(
                f"{call} got no complete answer within {limits.deadline:g} seconds"
            ) from None
        except requests.exceptions.SSLError as exc:
            raise APIError(f"{call} failed: TLS error: {exc}") from exc
        except (requests.ConnectionError, requests.ConnectTimeout) as exc:
            raise TransientError(f"cannot reach {self.host}: {_network_reason(exc)}") from exc
        except _TRANSIENT_EXCEPTIONS as exc:
            raise TransientError(f"{call} failed: {type(exc).__name__}: {exc}") from exc
        except requests.RequestException as exc:
            raise APIError(f"{call} failed: {type(exc).__name__}: {exc}") from exc


_REASONS: tuple[tuple[type[BaseException], str], ...] = (
    (ConnectionRefusedError, "connection refused"),
    (socket.gaierror, "host name not found"),
    (ConnectionResetError, "connection reset"),
    (TimeoutError, "connection timed out"),
    (requests.ConnectTimeout, "connection timed out"),
)


def _network_reason(exc: BaseException) -> str:
    """Why a connection failed, in a few words, from the chain requests and urllib3 build."""
    chain: BaseException | None = exc
    for _ in range(8):
        if chain is None:
            break
        for kind, reason in _REASONS:
            if isinstance(chain, kind):
                return reason
        inner = chain.args[0] if chain.args and isinstance(chain.args[0], BaseException) else None
        chain = getattr(chain, "reason", None) or chain.__cause__ or inner or chain.__context__
    return f"connection failed ({type(exc).__name__})"
