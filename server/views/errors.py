"""JSON answers for the failures Django handles itself (CSRF, 400, 403, 404, 500)."""

from __future__ import annotations

import re

from django.core.exceptions import DisallowedHost, RequestDataTooBig, SuspiciousFileOperation
from django.http import HttpRequest, JsonResponse

from server.views.common import error_response

# An absolute file path inside a message: the server's layout is nobody else's business.
_ABSOLUTE_PATH = re.compile(r"(?<![\w.:/])/[^\s'\"()]+")


def csrf_failure(request: HttpRequest, reason: str = "") -> JsonResponse:
    """``CSRF_FAILURE_VIEW``: a POST without a valid ``X-CSRFToken`` header."""
    return error_response(
        403,
        f"CSRF check failed ({reason or 'no valid token'}): send the csrftoken cookie's "
        "value in the X-CSRFToken header",
    )


def bad_request(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    """``handler400``: unreadable bodies, too many fields; too large a body becomes ``413``.

    Django's messages for these (e.g. "Invalid boundary in multipart: None") name the
    problem, so they are passed on, but never a file path: a path that leaves its directory
    gets a sentence of its own, and any other absolute path is cut out of the message.
    """
    if isinstance(exception, RequestDataTooBig):
        return error_response(413, "request body too large")
    if isinstance(exception, DisallowedHost):
        return error_response(
            400, "this host name is not served here: add it to MLWORKER_SERVER_ALLOWED_HOSTS"
        )
    if isinstance(exception, SuspiciousFileOperation):
        return error_response(400, "bad request: the path leads outside the files served here")
    detail = _ABSOLUTE_PATH.sub("<path>", str(exception or "").strip())
    return error_response(400, f"bad request: {detail}" if detail else "bad request")


def permission_denied(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    """``handler403``."""
    return error_response(403, "permission denied")


def not_found(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    """``handler404``: unknown addresses answer JSON too."""
    return error_response(404, f"no such address: {request.path}")


def server_error(request: HttpRequest) -> JsonResponse:
    """``handler500``: a server bug (logged by Django), never the client's fault."""
    return error_response(500, "internal server error")
