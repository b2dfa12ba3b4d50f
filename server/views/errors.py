"""JSON answers for the failures Django handles itself (CSRF, 400, 403, 404, 500)."""

from __future__ import annotations

from django.core.exceptions import DisallowedHost, RequestDataTooBig
from django.http import HttpRequest, JsonResponse

from server.views.common import error_response


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
    problem without revealing anything, so they are passed on.
    """
    if isinstance(exception, RequestDataTooBig):
        return error_response(413, "request body too large")
    if isinstance(exception, DisallowedHost):
        return error_response(
            400, "this host name is not served here: add it to MLWORKER_SERVER_ALLOWED_HOSTS"
        )
    detail = str(exception or "").strip()
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
