"""The worker's one error tree.

Everything the client library and the daemon raise on purpose is a
:class:`MLWorkerError`. Errors from ``requests`` and from the server's answers
are translated into this tree at one place (``worker/http.py``), so callers
never catch a library's exceptions::

    MLWorkerError(Exception)
    ├── ConfigError                 invalid worker configuration (the daemon exits 78)
    └── APIError(message, status)   the server or the network refused a call
        ├── AuthenticationError     login failed, or 401 again after logging in again
        ├── PermissionDeniedError   403: admin rights required, or CSRF refused
        ├── NotFoundError           404: unknown id
        ├── ConflictError           409: the call does not fit the object's state
        ├── InvalidInputError       400 / 413: bad fields; ``.fields`` names them
        ├── BadAnswerError          a success whose body the client cannot use
        │                           (not JSON, nested too deep, the wrong shape)
        └── TransientError          connection error, timeout, 5xx, 408, 429:
            │                       retrying later may succeed; ``.retry_after``
            └── CallInterrupted     cut short by the caller (the worker is stopping)

The split that matters to a caller is transient (retry later) against
permanent (every other :class:`APIError`: retrying the same call cannot help).
"""

from __future__ import annotations

__all__ = [
    "APIError",
    "AuthenticationError",
    "BadAnswerError",
    "CallInterrupted",
    "ConfigError",
    "ConflictError",
    "InvalidInputError",
    "MLWorkerError",
    "NotFoundError",
    "PermissionDeniedError",
    "TransientError",
]


class MLWorkerError(Exception):
    """Base of every error the worker raises on purpose."""


class ConfigError(MLWorkerError):
    """The worker's configuration is invalid; the message names the setting."""


class APIError(MLWorkerError):
    """A call to the job server failed.

    Args:
        message: a sentence saying which call failed and why (the server's own
            sentence when it sent one).
        status: the HTTP status of the answer, or ``None`` when there was no
            answer (connection refused, timeout).
    """

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message, status)
        self.message = message
        self.status = status

    def __str__(self) -> str:
        return self.message


class AuthenticationError(APIError):
    """The login was refused, or the session was refused again after a new login."""


class PermissionDeniedError(APIError):
    """The server answered 403: the account lacks admin rights, or CSRF failed."""


class NotFoundError(APIError):
    """The server answered 404: the id in the call is unknown."""


class ConflictError(APIError):
    """The server answered 409: the call does not fit the object's current state."""


class InvalidInputError(APIError):
    """The server answered 400 or 413: the call's fields were refused.

    Args:
        message: the server's sentence, with the call that failed.
        status: 400, or 413 for an upload that is too large.
        fields: the server's message for each refused field (may be empty).
    """

    def __init__(
        self, message: str, status: int | None = 400, fields: dict[str, str] | None = None
    ) -> None:
        super().__init__(message, status)
        self.fields: dict[str, str] = dict(fields or {})
        self.args = (message, status, self.fields)


class BadAnswerError(APIError):
    """The server answered success with a body the client cannot use.

    Asking again would get the same answer, so it is permanent; the worker
    fails the job it was fetching for, with this sentence.
    """


class TransientError(APIError):
    """The server or the network failed in a way that retrying later may fix.

    Args:
        message: what failed (connection refused, timeout, the server's answer).
        status: 5xx, 408 or 429, or ``None`` when there was no answer.
        retry_after: the seconds the server asked the client to wait
            (``Retry-After``), or ``None``.
    """

    def __init__(
        self, message: str, status: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message, status)
        self.retry_after = retry_after
        self.args = (message, status, retry_after)


class CallInterrupted(TransientError):
    """The caller cut the call short (a stop signal arrived): not retried."""
