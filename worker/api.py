"""The job server's Python client: the original platform's documented API.

Scripts written against the original ``API`` class run unchanged: the names,
argument names, defaults and return shapes are the seed's. What is new is
underneath (``worker/http.py``): timeouts, CSRF on every POST, a new login
when the session expired, retries of transient failures, and one typed error
tree (``worker/errors.py``). Reference and examples: ``docs/client-api.md``.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
import structlog
from requests.adapters import BaseAdapter

from worker.defaults import DEFAULT_PASSWORD, DEFAULT_USERNAME, default_worker_id
from worker.errors import (
    APIError,
    AuthenticationError,
    BadAnswerError,
    ConflictError,
    InvalidInputError,
)
from worker.http import Timeout, Transport, encode_form, json_body, login_refusal, normalize_url

__all__ = ["API", "Claim", "normalize_url"]

LONG_POLL_HEADER = "X-Long-Poll"
# seconds before a server that lacked ``jobs/<id>/finish/`` is offered it again (an upgrade)
FINISH_ASK_AGAIN = 3600.0
# what a server that does not know an address answers it (Django: 404; others: 405 or 501)
UNKNOWN_ADDRESS = frozenset({404, 405, 501})
FINISH_MAX_PICTURES = 16  # the protocol lets a server refuse more in one finish

log = structlog.get_logger()

PathLike = str | os.PathLike[str]
PictureField = tuple[str, tuple[str, bytes, str]]  # ("picture", (file name, PNG, type)) of a form


class API:
    """A logged-in session with a job server.

    Args:
        username: the account to log in with (the worker account by default).
        password: its password; it appears in no message and no ``repr``.
        host: the server's base URL; a path prefix (``https://example.org/ml/``) is kept.
        timeout: seconds to connect and to read an answer, as ``(connect, read)``
            or one number for both.
        retry_for: seconds during which transient failures of one call
            (connection errors, timeouts, 5xx, 408, 429) are retried with
            exponential backoff and jitter, waiting what ``Retry-After`` asks;
            0 means no retry.
        worker_id: sent as ``X-Worker`` by :meth:`request_job`; by default
            ``<hostname>:<pid>``.
        interrupted: called every tenth of a second while a call waits (for
            an answer, or to retry; every half second once an answer has
            been awaited for a second); when it returns True the call is cut
            short with :class:`~worker.errors.CallInterrupted`. Each exchange
            also has a deadline for the whole answer (see ``worker/http.py``).
        login_now: log in here, as the seed's client does; ``False`` waits
            for the first call (which then raises what the login would).
        adapter: the ``requests`` transport adapter to send through instead
            of real HTTP (``worker.testing.MockAdapter`` in tests).
        session_of: a logged-in client of the same account whose session
            (its cookies) this one shares instead of logging in, as a process
            forked after that login may: no password check on the server
            until the session expires, then a login of its own.

    Raises:
        AuthenticationError: the server refused the login.
        TransientError: the server could not be reached within ``retry_for``.
        ValueError: ``host`` is not an http(s) URL.

    Every call below may also raise :class:`~worker.errors.TransientError`
    (still failing after ``retry_for`` seconds) and
    :class:`~worker.errors.AuthenticationError` (the session expired and a new
    login was refused), and the calls marked *(admin)*
    :class:`~worker.errors.PermissionDeniedError` for an account without admin
    rights, besides the errors they list.
    """

    normalize_url = staticmethod(normalize_url)

    def __init__(
        self,
        username: str = DEFAULT_USERNAME,
        password: str = DEFAULT_PASSWORD,
        host: str = "http://localhost:8000/",
        *,
        timeout: Timeout = (3.05, 60.0),
        retry_for: float = 60.0,
        worker_id: str | None = None,
        interrupted: Callable[[], bool] | None = None,
        login_now: bool = True,
        adapter: BaseAdapter | None = None,
        session_of: API | None = None,
    ) -> None:
        self.host = host
        self.username = username
        self._password = password
        self.worker_id = worker_id
        self._transport = Transport(
            host, timeout=timeout, retry_for=retry_for, interrupted=interrupted
        )
        if adapter is not None:
            for prefix in ("http://", "https://"):
                self._transport.session.mount(prefix, adapter)
        self._may_login_again = False
        self._login_due = not login_now
        self._finish_lacking_since: float | None = None  # when jobs/<id>/finish/ was unknown
        if session_of is not None:
            self._transport.session.cookies.update(session_of._transport.session.cookies)
            self._may_login_again, self._login_due = True, False
        elif login_now:
            self._authenticate()

    def __repr__(self) -> str:
        return f"API(username={self.username!r}, host={self.host!r})"

    def close(self) -> None:
        """Close the HTTP connections (the server-side session stays valid)."""
        self._transport.close()

    def login(self, username: str, password: str) -> bool | str:
        """Log in (``POST login/``); later calls and new logins use these credentials.

        Args:
            username: the account name.
            password: its password.

        Returns:
            ``True`` on success, else the text (usually HTML) of the server's answer.
        """
        refusal, response = self._login(username, password)
        if refusal is not None:
            return response.text
        self.username, self._password = username, password
        self._may_login_again, self._login_due = True, False
        return True

    def logout(self) -> dict[str, Any]:
        """Log out (``POST logout/``); calls after this are not logged in again silently.

        Returns:
            The answer, ``{"success": True}``.
        """
        answer = self._post("logout/")
        self._may_login_again = self._login_due = False
        return answer

    def load(self, path: str, raw: bool = False, **kwargs: Any) -> Any:
        """Call any endpoint: ``GET path``, or ``POST path`` with ``kwargs`` as form fields.

        Args:
            path: relative to the host, e.g. ``"datasets/"``.
            raw: return the body text instead of decoding it as JSON.
            **kwargs: form fields; when given, the call is a POST (with the CSRF
                token). Lists and dicts are sent as JSON text, booleans as
                ``true``/``false``; ``None`` values are left out.

        Returns:
            The decoded JSON answer, or the body text when ``raw``.

        Raises:
            ValueError: a field holds NaN, infinity or a type JSON cannot hold.
            APIError: the server refused the call (a subclass names why).
        """
        data = encode_form(kwargs) if kwargs else None
        response = self._send("POST" if kwargs else "GET", path, data=data)
        return response.text if raw else json_body(response, object)

    def get_groups(self) -> dict[str, dict[str, Any]]:
        """List the public groups and the user's own (admins see all): ``GET groups/``.

        Returns:
            ``{name: {"public": bool, "members": int, "member": bool}}``.
        """
        return self._get("groups/")

    def add_group(self, name: str, public: bool = True) -> dict[str, Any]:
        """Create a group (admin): ``POST groups/add/``.

        Args:
            name: the new group's name (at most 64 characters).
            public: whether anyone may join it.

        Returns:
            The answer, ``{"success": True, "name": name}``.

        Raises:
            ConflictError: a group of that name exists.
        """
        return self._post("groups/add/", {"name": name, "public": public})

    def join_group(self, group_name: str) -> dict[str, Any]:
        """Join a public group: ``POST groups/join/``.

        Args:
            group_name: the group's name.

        Returns:
            The answer, ``{"success": True}``.

        Raises:
            NotFoundError: no group has that name.
            PermissionDeniedError: the group is not public.
        """
        return self._post("groups/join/", {"group_name": group_name})

    def get_rounds(self) -> dict[int, dict[str, Any]]:
        """List the rounds: ``GET rounds/``.

        Returns:
            ``{round_id: {"name": str, "dataset": int, "open": bool, "joined": bool}}``.
        """
        return _int_keys(self._get("rounds/"))

    def join_round(self, round_id: int) -> dict[str, Any]:
        """Join a round: ``POST rounds/<id>/join/``.

        Args:
            round_id: the round's id.

        Returns:
            The answer, ``{"success": True}``.

        Raises:
            NotFoundError: no round has that id.
            ConflictError: the round is closed.
        """
        return self._post(f"rounds/{round_id}/join/")

    def get_datasets(self) -> dict[int, dict[str, Any]]:
        """List the datasets: ``GET datasets/``.

        Returns:
            ``{dataset_id: info}``; info has ``name``, ``description``, ``task``,
            ``features``, ``target``, ``version`` and ``points`` (count per set).
        """
        return _int_keys(self._get("datasets/"))

    def get_points(self, dataset_id: int) -> list[dict[str, Any]]:
        """Fetch a dataset's points, sorted by id: ``GET datasets/<id>/points/``.

        Args:
            dataset_id: the dataset's id.

        Returns:
            Point dicts ``{"id": 17, <feature>: float, ..., <target>: label,
            "set": "training"}``; test and validation labels are ``None`` for
            non-admins.

        Raises:
            NotFoundError: no dataset has that id.
        """
        return json_body(self._send("GET", f"datasets/{dataset_id}/points/"), list)

    def submit_job(
        self,
        algorithm: str,
        dataset_id: int,
        params: Mapping[str, Any] | None = None,
        round_id: int | None = None,
        time_limit: int | None = None,
    ) -> int:
        """Submit a job: ``POST jobs/submit/``.

        Args:
            algorithm: an algorithm name of the workers' registry, e.g. ``"knn"``.
            dataset_id: the dataset to run it on.
            params: its hyper-parameters (``{}`` when ``None``).
            round_id: the round the job counts for (the user must have joined it).
            time_limit: seconds the job may run (admins only; the worker's
                default when ``None``).

        Returns:
            The new job's id.

        Raises:
            InvalidInputError: a field was refused; ``.fields`` names it.
            NotFoundError: the dataset or round does not exist.
            PermissionDeniedError: a ``time_limit`` from a non-admin, or a round not joined.
        """
        fields = {
            "algorithm": algorithm,
            "dataset": dataset_id,
            "params": params or {},
            "round": round_id,
            "time_limit": time_limit,
        }
        job_id = _job_id(self._post("jobs/submit/", fields))
        if job_id is None:
            raise APIError("POST jobs/submit/ answered no job id")
        return job_id

    def get_job_result(self, job_id: int) -> dict[str, Any]:
        """Fetch a job's status and result: ``GET jobs/<id>/result/``.

        Args:
            job_id: the job's id.

        Returns:
            ``{"id", "status", "algorithm", "dataset", "attempt", "score_test",
            "score_validation", "extra_scores_test", "message", "pictures", ...}``;
            validation scores are ``None`` for the owner until the round closes.

        Raises:
            NotFoundError: no job has that id.
            PermissionDeniedError: the job is someone else's.
        """
        return self._get(f"jobs/{job_id}/result/")

    def request_job(self, wait: float | None = None) -> int | None:
        """Claim the oldest pending job (admin): ``POST jobs/request/``.

        The claim is a lease: a job not updated within its time limit plus the
        server's grace goes back to pending. Sends ``X-Worker: <worker_id>``.

        Args:
            wait: ask the server to hold the request up to this many seconds
                until a job comes (a long poll); a server that does not hold
                claims answers at once. See :meth:`claim_job`.

        Returns:
            The claimed job's id, or ``None`` when no job is pending.

        """
        return self.claim_job(wait).job

    def claim_job(self, wait: float | None = None, *, details: bool = False) -> Claim:
        """Claim a job like :meth:`request_job`, saying what else the server did.

        With ``wait``, the read timeout of this one call is ``wait`` plus the
        client's own read timeout, so a held request is not mistaken for a
        dead one. With ``details``, a server that can answers the claimed job's
        details with the claim (what :meth:`get_job_details` returns).

        Returns:
            A :class:`Claim`: the job id (or ``None``), the seconds the server
            granted to hold the request (``None`` from a server that does not
            hold claims), and the job's details (``None`` when not given).
        """
        worker = self.worker_id or default_worker_id()
        fields = {"wait": None if wait is None else round(wait, 3), "details": details or None}
        response = self._send(
            "POST",
            "jobs/request/",
            data=encode_form(fields),
            headers={"X-Worker": worker},
            timeout=None if wait is None else self._long_poll_timeout(wait),
            deadline=None if wait is None else sum(self._long_poll_timeout(wait)),
        )
        body = json_body(response, dict)
        job = _job_id(body)
        given = body.get("details")
        same_job = isinstance(given, dict) and job is not None and given.get("id") == job
        return Claim(job, _granted(response), given if same_job else None)

    def _long_poll_timeout(self, wait: float) -> tuple[float, float]:
        connect, read = _pair(self._transport.timeout)
        return connect, wait + read

    def get_job_details(self, job_id: int) -> dict[str, Any]:
        """Fetch what a worker needs to run a job (admin): ``GET jobs/<id>/``.

        Args:
            job_id: the job's id.

        Returns:
            ``{"id", "algorithm", "dataset", "params", "time_limit", "seed", "attempt"}``
            (``time_limit`` and ``seed`` may be missing).

        Raises:
            NotFoundError: no job has that id.
        """
        return self._get(f"jobs/{job_id}/")

    def add_job_picture(self, job_id: int, filename: PathLike) -> dict[str, Any]:
        """Upload a PNG picture of a running job's result (admin): ``POST jobs/<id>/pictures/``.

        Args:
            job_id: the job's id.
            filename: the PNG file (at most 5 MiB); the server keeps one copy
                of the same bytes per job.

        Returns:
            The answer, ``{"success": True}`` (with ``"duplicate": True`` for a copy).

        Raises:
            OSError: the file cannot be read.
            ConflictError: the job is not running.
            InvalidInputError: not a PNG, or too large (status 413).
            NotFoundError: no job has that id.
        """
        return self._upload_picture(job_id, _picture_file(filename))

    def _upload_picture(self, job_id: int, picture: PictureField) -> dict[str, Any]:
        return json_body(self._send("POST", f"jobs/{job_id}/pictures/", files=[picture]), dict)

    def update_job_details(
        self,
        job_id: int,
        score_test: float | None,
        score_validation: float | None,
        labels_training: Sequence[Any] | None,
        labels_test: Sequence[Any] | None,
        labels_validation: Sequence[Any] | None,
        extra_scores_test: Mapping[str, float] | None = None,
        extra_scores_validation: Mapping[str, float] | None = None,
        message: str | None = None,
        success: bool = True,
        pictures: Iterable[PathLike | tuple[str, bytes]] | None = None,
    ) -> dict[str, Any]:
        """Deliver a job's result (admin): with its pictures in one request where the server can.

        The fields are checked and the pictures read before anything is sent.
        A server that offers ``POST jobs/<id>/finish/`` (see the protocol's
        additions) gets the result and its pictures in that one request; any
        other gets each picture with :meth:`add_job_picture`, then ``POST
        jobs/<id>/update/``. A picture the server refuses (409 job not running,
        400/413 not a valid PNG) is logged and left out, because the result's
        own answer is what counts. Sending the same result again is safe: the
        server answers it as a duplicate.

        Args:
            job_id: the job's id.
            score_test: the main score on the test set, in [0, 1].
            score_validation: the main score on the validation set, in [0, 1].
            labels_training: one predicted label per training point, in id order.
            labels_test: the same for the test set.
            labels_validation: the same for the validation set.
            extra_scores_test: more scores, ``{name: number}``.
            extra_scores_validation: the same for the validation set.
            message: words for the student (at most 10,000 characters).
            success: ``False`` for a failed job; scores and labels may then be
                ``None`` (fields that are ``None`` are not sent).
            pictures: PNG files to attach: paths, or ``(file name, PNG bytes)``
                pairs for pictures held in memory.

        Returns:
            ``{"success": True}``, or ``{"success": True, "duplicate": True}``
            when the server already had this very result.

        Raises:
            ValueError: a score is NaN or infinite (nothing was sent).
            OSError: a picture cannot be read.
            InvalidInputError: a field was refused; ``.fields`` names it.
            ConflictError: the job is pending, or finished with a different result.
            NotFoundError: no job has that id.
        """
        data = encode_form(
            {
                "score_test": score_test,
                "score_validation": score_validation,
                "labels_training": labels_training,
                "labels_test": labels_test,
                "labels_validation": labels_validation,
                "extra_scores_test": extra_scores_test,
                "extra_scores_validation": extra_scores_validation,
                "message": message,
                "success": success,
            }
        )
        files = [_picture_file(picture) for picture in pictures or ()]
        if not files or len(files) > FINISH_MAX_PICTURES or not self._finish_offered():
            return self._update_v1(job_id, data, files)
        try:
            answer = json_body(
                self._send("POST", f"jobs/{job_id}/finish/", data=data, files=files), dict
            )
        except APIError as exc:
            if exc.status not in UNKNOWN_ADDRESS:
                raise
            answer = self._update_v1(job_id, data, files)  # raises NotFoundError for no such job
            log.info("the server has no jobs/<id>/finish/: pictures go one by one", job=job_id)
            self._finish_lacking_since = time.monotonic()
            return answer
        for refused in answer.pop("refused", None) or ():
            log.warning("picture refused, the result was taken", job=job_id, refused=refused)
        return answer

    def _finish_offered(self) -> bool:
        """Whether to try ``jobs/<id>/finish/``: unless it was unknown within the last hour."""
        lacking = self._finish_lacking_since
        return lacking is None or time.monotonic() - lacking > FINISH_ASK_AGAIN

    def _update_v1(
        self, job_id: int, data: dict[str, str], files: list[PictureField]
    ) -> dict[str, Any]:
        """The protocol's v1 calls: each picture (refusals logged and skipped), then the update."""
        for picture in files:
            try:
                self._upload_picture(job_id, picture)
            except (ConflictError, InvalidInputError) as exc:
                _field, (name, _png, _type) = picture
                log.warning(
                    "picture refused, sending the update anyway",
                    job=job_id,
                    picture=name,
                    error=str(exc),
                )
        return json_body(self._send("POST", f"jobs/{job_id}/update/", data=data), dict)

    def _get(self, path: str) -> dict[str, Any]:
        return json_body(self._send("GET", path), dict)

    def _post(
        self,
        path: str,
        fields: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        data = encode_form(fields or {})
        return json_body(self._send("POST", path, data=data, headers=headers), dict)

    def _send(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """One call; when the session expired (401, or 302 to login/), log in again once."""
        if self._login_due:
            self._authenticate()
        try:
            return self._transport.request(method, path, **kwargs)
        except AuthenticationError:
            if not self._may_login_again:
                raise
        log.info("session expired, logging in again", call=f"{method} {path}", user=self.username)
        self._transport.session.cookies.clear()  # a fresh CSRF token too, should it die with it
        self._authenticate()
        try:
            return self._transport.request(method, path, **kwargs)
        except AuthenticationError as exc:
            raise AuthenticationError(
                f"{exc.message} (right after logging in again as {self.username!r})", exc.status
            ) from None

    def _login(self, username: str, password: str) -> tuple[str | None, requests.Response]:
        """POST the credentials; return why the answer is a refusal (None: accepted)."""
        response = self._transport.request(
            "POST", "login/", data={"username": username, "password": password}, check=False
        )
        return login_refusal(response), response

    def _authenticate(self) -> None:
        """Log in with the stored credentials or raise an AuthenticationError saying why."""
        refusal, response = self._login(self.username, self._password)
        if refusal is not None:
            raise AuthenticationError(
                f"could not log in to {self.host} as {self.username!r}: {refusal}"
                + ("" if response.status_code == 200 else f" (status {response.status_code})"),
                response.status_code,
            )
        self._may_login_again, self._login_due = True, False


@dataclass(frozen=True)
class Claim:
    """The answer to a claim: the job (or ``None``), the wait granted, the job's details."""

    job: int | None
    held: float | None  # seconds the server may hold a claim; None: it answers at once
    details: dict[str, Any] | None = None  # as get_job_details; None: not sent with the claim


def _granted(response: requests.Response) -> float | None:
    """The ``X-Long-Poll`` header: seconds the server granted, or None when it holds nothing."""
    value = response.headers.get(LONG_POLL_HEADER)
    try:
        held = float(value) if value is not None else None
    except ValueError:
        return None
    return held if held is not None and math.isfinite(held) and held > 0 else None


def _picture_file(picture: PathLike | tuple[str, bytes]) -> PictureField:
    """A picture as a multipart ``picture`` field: a path is read now (OSError if it cannot be)."""
    if isinstance(picture, tuple):
        name, png = picture
    else:
        path = Path(picture)
        name, png = path.name, path.read_bytes()
    return "picture", (name, png, "image/png")


def _pair(timeout: Timeout) -> tuple[float, float]:
    return timeout if isinstance(timeout, tuple) else (timeout, timeout)


def _int_keys(answer: dict[str, Any]) -> dict[int, Any]:
    """The protocol sends ids as string keys; the seed's API returns int keys."""
    try:
        return {int(key): value for key, value in answer.items()}
    except ValueError:
        raise BadAnswerError(
            f"the server answered keys that are not ids: {list(answer)[:5]}"
        ) from None


def _job_id(answer: dict[str, Any]) -> int | None:
    """The ``job`` of an answer: an id, or ``None`` for ``{"job": null}``."""
    job = answer.get("job")
    if job is None and "job" in answer:
        return None
    if isinstance(job, int) and not isinstance(job, bool):
        return job
    raise BadAnswerError(f"the server answered {_brief(answer)} where {{'job': <id>}} was expected")


def _brief(value: object) -> str:
    """A short text of a decoded answer for a message (its repr could be huge or deep)."""
    try:
        text = repr(value)
    except (RecursionError, ValueError):
        return f"a {type(value).__name__} too deep or long to print"
    return text if len(text) <= 200 else text[:197] + "..."
