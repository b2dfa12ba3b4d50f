"""Media and static files, served by the app itself: small deployments need no web server.

``django.views.static.serve`` guards against paths outside the directory; a deployment
behind nginx may serve ``MEDIA_ROOT`` and the admin's static files directly instead.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.staticfiles.views import serve as serve_static
from django.http import HttpRequest
from django.http.response import HttpResponseBase
from django.views import static

from server.views.common import api_view


@api_view(method="GET")
def media(request: HttpRequest, path: str) -> HttpResponseBase:
    """A job's picture, for logged-in users."""
    return static.serve(request, path, document_root=str(settings.MEDIA_ROOT))


def static_file(request: HttpRequest, path: str) -> HttpResponseBase:
    """The admin's CSS and scripts, found in the installed apps (no collectstatic needed)."""
    return serve_static(request, path, insecure=True)
