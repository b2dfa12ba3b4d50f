"""Media and static files, served by the app itself: small deployments need no web server.

``django.views.static.serve`` guards against paths outside the directory; a deployment
behind nginx may serve ``MEDIA_ROOT`` and the admin's static files directly instead.
"""

from __future__ import annotations

import re

from django.conf import settings
from django.contrib.staticfiles.views import serve as serve_static
from django.http import HttpRequest
from django.http.response import HttpResponseBase
from django.views import static

from server.models import Job
from server.views.common import ClientError, api_view, user_of

_JOB_FILE = re.compile(r"jobs/(\d+)/[^/]+")


@api_view(method="GET")
def media(request: HttpRequest, path: str) -> HttpResponseBase:
    """A job's picture, for the job's owner and admins: whoever may see its result."""
    user = user_of(request)
    if not user.is_staff:
        match = _JOB_FILE.fullmatch(path)
        if match is None or not Job.objects.filter(pk=int(match[1]), owner=user).exists():
            raise ClientError(403, "only the job's owner or an admin may see its pictures")
    return static.serve(request, path, document_root=str(settings.MEDIA_ROOT))


def static_file(request: HttpRequest, path: str) -> HttpResponseBase:
    """The admin's CSS and scripts, found in the installed apps (no collectstatic needed)."""
    return serve_static(request, path, insecure=True)
