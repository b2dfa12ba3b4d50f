"""The ASGI application (``mlworker-server run`` serves it with gunicorn and uvicorn workers).

Django's own handler runs each request's sync parts on a thread made for that request, so
a database connection lives for one request; and it runs the middleware in async mode, which
crosses to that thread and back for each middleware hook, a dozen and more times a request.
Here every request goes through the middleware in sync mode, as under WSGI, in one crossing
to asgiref's one sync thread of the process, which keeps its connection (``CONN_MAX_AGE``,
settings). SQLite serializes writers anyway, and nothing waits on that thread: bodies are
read on the event loop, and a view that must wait returns a :class:`~server.held.HeldResponse`,
completed on the event loop (a held claim, :mod:`server.longpoll`).
"""

import os
from typing import Any

import django
from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIHandler
from django.core.handlers.exception import response_for_exception
from django.http import HttpRequest
from django.http.response import HttpResponseBase

from server.held import HeldResponse

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "server.settings")


class OneThreadASGIHandler(ASGIHandler):
    """Django's ASGI handler with the WSGI handler's middleware chain and no thread per request."""

    def __init__(self) -> None:  # not ASGIHandler's, which builds the async chain
        self.load_middleware()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":  # as Django's, without its ThreadSensitiveContext
            raise ValueError(f"Django can only handle ASGI/HTTP connections, not {scope['type']}.")
        await self.handle(scope, receive, send)

    async def get_response_async(self, request: HttpRequest) -> HttpResponseBase:
        response = await sync_to_async(self.get_response)(request)
        if isinstance(response, HeldResponse):
            try:
                await response.complete()
            except Exception as error:  # as Django answers a view's: logged, handler500
                return await sync_to_async(response_for_exception)(request, error)
        return response


django.setup(set_prefix=False)  # as django.core.asgi.get_asgi_application does
application = OneThreadASGIHandler()
