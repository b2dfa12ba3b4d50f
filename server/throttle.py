"""Login throttling: django-axes counts failures; this module says who the client is and
how a throttled login is answered.

django-axes keeps failed attempts in the database, so all server processes share them, and
refuses a login once an account, or an address, has failed ``AXES_FAILURE_LIMIT`` times
within the cool-off. A correct login is answered as the protocol says (``{"success":
true}``); a throttled one, even with the right password, gets ``429`` with ``Retry-After``.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from server.views.common import error_response


def client_address(request: HttpRequest) -> str:
    """The client's address: the peer, or behind our HTTPS proxy the address it appended.

    Only the last ``X-Forwarded-For`` entry is the proxy's own; earlier ones are whatever the
    client sent, so they are never trusted.
    """
    if settings.BEHIND_HTTPS_PROXY:
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
        last = forwarded.rpartition(",")[2].strip()
        if last:
            return last
    return str(request.META.get("REMOTE_ADDR", ""))


def retry_after_seconds() -> int:
    """Seconds until a throttled account or address may try again: the whole cool-off."""
    return max(1, int(settings.AXES_COOLOFF_TIME.total_seconds()))


def lockout_response(
    request: HttpRequest, original_response: HttpResponse | None, credentials: Any = None
) -> HttpResponse:
    """``AXES_LOCKOUT_CALLABLE``: the protocol's error shape, ``429`` and ``Retry-After``."""
    seconds = retry_after_seconds()
    answer = error_response(
        429,
        f"too many failed logins for this account or from this address: try again in "
        f"{seconds} s (trying earlier starts the wait again)",
        {"username": f"login refused for {seconds} s"},
    )
    answer["Retry-After"] = str(seconds)
    return answer
