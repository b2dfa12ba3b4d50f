"""The ASGI application (``mlworker-server run`` serves it with gunicorn and uvicorn workers).

Django's own handler runs each request's sync parts on a thread made for that request, so
a database connection lives for one request; and it runs the middleware in async mode, which
crosses to that thread and back for each middleware hook, a dozen and more times a request.
Here every request goes through the middleware in sync mode, as under WSGI, in one crossing
to the process's one sync thread (:func:`on_sync_thread`), which keeps its connection
(``CONN_MAX_AGE``, settings). That one crossing also sends ``request_started`` and, for an
answer whose body is already in memory, closes it (``request_finished``): Django crosses
three times for those. SQLite serializes writers anyway, and nothing waits on that thread:
bodies are read on the event loop, and a view that must wait returns a
:class:`~server.held.HeldResponse`, completed on the event loop (a held claim,
:mod:`server.longpoll`) while the client is watched.
"""

import asyncio
import contextlib
import contextvars
import functools
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import IO, Any, TypeVar, cast

import django
from django.core import signals
from django.core.exceptions import RequestAborted
from django.core.handlers.asgi import ASGIHandler, get_script_prefix
from django.core.handlers.exception import response_for_exception
from django.http import FileResponse, HttpRequest
from django.http.response import HttpResponseBase
from django.urls import set_script_prefix

from server.held import HeldResponse

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "server.settings")

T = TypeVar("T")
_SYNC_THREAD = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sync")


async def on_sync_thread(function: Callable[..., T], *args: Any) -> T:
    """``function(*args)`` on the process's one sync thread, in a copy of this context.

    What asgiref's ``sync_to_async`` does for one thread, without its bookkeeping for
    nested calls between sync and async code, which no sync code here makes.
    """
    call = functools.partial(contextvars.copy_context().run, function, *args)
    return await asyncio.get_running_loop().run_in_executor(_SYNC_THREAD, call)


class OneThreadASGIHandler(ASGIHandler):
    """Django's ASGI handler with the WSGI handler's middleware chain and no thread per request."""

    def __init__(self) -> None:  # not ASGIHandler's, which builds the async chain
        self.load_middleware()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":  # as Django's, without its ThreadSensitiveContext
            raise ValueError(f"Django can only handle ASGI/HTTP connections, not {scope['type']}.")
        try:
            body_file = await self.read_body(receive)
        except RequestAborted:
            return
        try:
            request, response = await on_sync_thread(self.respond, scope, body_file)
            if isinstance(response, HeldResponse) and request is not None:
                await self.hold(request, response, receive, send)
                return
            await self.send_response(response, send)
            if not _closes_early(response):
                await on_sync_thread(response.close)
        finally:
            body_file.close()

    def respond(
        self, scope: dict[str, Any], body_file: IO[bytes]
    ) -> tuple[HttpRequest | None, HttpResponseBase]:
        """On the sync thread: what Django's ``handle`` does between reading and sending."""
        set_script_prefix(get_script_prefix(scope))
        signals.request_started.send(sender=self.__class__, scope=scope)
        request, refusal = self.create_request(scope, body_file)
        if request is None:  # a request Django cannot even build: its 400
            response: HttpResponseBase = cast(HttpResponseBase, refusal)
        else:
            response = self.get_response(request)
            response._handler_class = self.__class__  # type: ignore[attr-defined]
            if isinstance(response, FileResponse):  # as Django's: the server chunks
                response.block_size = self.chunk_size
        if _closes_early(response):
            response.close()  # its body is in memory: nothing to keep open while it is sent
        return request, response

    async def hold(
        self, request: HttpRequest, response: HeldResponse, receive: Any, send: Any
    ) -> None:
        """Complete and send a held answer, unless the client goes away first (as Django's)."""
        gone = asyncio.create_task(self.listen_for_disconnect(receive))
        sent = asyncio.create_task(self._complete(request, response, send))
        await asyncio.wait([gone, sent], return_when=asyncio.FIRST_COMPLETED)
        for task in (gone, sent):
            if task.done():
                with contextlib.suppress(RequestAborted):
                    task.result()
            else:  # a client gone cancels the wait; a sent answer ends the listening
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if sent.cancelled():
            await on_sync_thread(signals.request_finished.send, self.__class__)
        else:
            await on_sync_thread(sent.result().close)

    async def _complete(
        self, request: HttpRequest, response: HeldResponse, send: Any
    ) -> HttpResponseBase:
        answer: HttpResponseBase = response
        try:
            await response.complete()
        except Exception as error:  # as Django answers a view's: logged, handler500
            answer = await on_sync_thread(response_for_exception, request, error)
        with contextlib.suppress(asyncio.CancelledError):  # the client went away meanwhile
            await self.send_response(answer, send)
        return answer


def _closes_early(response: HttpResponseBase) -> bool:
    return not response.streaming and not isinstance(response, HeldResponse)


django.setup(set_prefix=False)  # as django.core.asgi.get_asgi_application does
application = OneThreadASGIHandler()
