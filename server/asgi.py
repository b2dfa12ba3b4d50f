"""The ASGI application (``mlworker-server run`` serves it with gunicorn and uvicorn workers).

Django's own handler runs each request's sync parts (middleware, sync views) on a thread
made for that request, so a database connection lives for one request: a thread and a new
connection per request. Here they all run on asgiref's one sync thread of the process,
which keeps its connection (``CONN_MAX_AGE``, settings): SQLite serializes writers anyway,
and nothing waits on that thread (bodies are read and long polls held on the event loop).
"""

import os
from typing import Any

import django
from django.core.handlers.asgi import ASGIHandler

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "server.settings")


class OneThreadASGIHandler(ASGIHandler):
    """Django's ASGI handler without a thread per request (no ``ThreadSensitiveContext``)."""

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            raise ValueError(f"Django can only handle ASGI/HTTP connections, not {scope['type']}.")
        await self.handle(scope, receive, send)


django.setup(set_prefix=False)  # as django.core.asgi.get_asgi_application does
application = OneThreadASGIHandler()
