"""The ASGI application (``mlworker-server run`` serves it with gunicorn and uvicorn workers).

Django's own handler runs each request's sync parts on a thread made for that request, so
a database connection lives for one request; and it runs the middleware in async mode, which
crosses to that thread and back for each middleware hook, a dozen and more times a request.
Here a request to a sync view goes through the middleware in sync mode, as under WSGI:
one crossing, to asgiref's one sync thread of the process, which keeps its connection
(``CONN_MAX_AGE``, settings). SQLite serializes writers anyway, and nothing waits on that
thread: bodies are read, and long polls (the one async view) held, on the event loop.
"""

import os
from typing import Any

import django
from asgiref.sync import iscoroutinefunction, sync_to_async
from django.core.handlers.asgi import ASGIHandler
from django.core.handlers.base import BaseHandler
from django.http import HttpRequest
from django.http.response import HttpResponseBase
from django.urls import Resolver404, get_resolver

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "server.settings")


class OneThreadASGIHandler(ASGIHandler):
    """Django's ASGI handler: no thread per request, and sync views behind sync middleware."""

    def __init__(self) -> None:
        super().__init__()  # the middleware in async mode, for async views
        self._sync = BaseHandler()
        self._sync.load_middleware()  # in sync mode, for the others

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":  # as Django's, without its ThreadSensitiveContext
            raise ValueError(f"Django can only handle ASGI/HTTP connections, not {scope['type']}.")
        await self.handle(scope, receive, send)

    async def get_response_async(self, request: HttpRequest) -> HttpResponseBase:
        if _async_view(request):
            return await super().get_response_async(request)
        return await sync_to_async(self._sync.get_response)(request)


def _async_view(request: HttpRequest) -> bool:
    """Whether the request's address names an async view (no address: a sync 404)."""
    try:
        match = get_resolver().resolve(request.path_info)
    except Resolver404:
        return False
    return iscoroutinefunction(match.func)


django.setup(set_prefix=False)  # as django.core.asgi.get_asgi_application does
application = OneThreadASGIHandler()
