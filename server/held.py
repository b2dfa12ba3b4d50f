"""Answers finished on the event loop: how a sync view waits without holding a thread.

Views are sync and run, with the middleware, on the process's one sync thread
(:mod:`server.asgi`). A view that may have to wait (a claim held until a job comes) returns
a :class:`HeldResponse` instead of blocking that thread; the handler then awaits
:meth:`~HeldResponse.complete` on the event loop, which costs a coroutine, and sends the
answer once it is complete: status, headers and body are sent together, as for any other.
"""

from __future__ import annotations

from django.http import HttpResponse


class HeldResponse(HttpResponse):
    """An answer whose body is decided after the middleware ran, on the event loop.

    The middleware has seen it (headers, cookies) as it is returned, with an empty body:
    none of ours reads a body. :meth:`complete` may set a new body and status, and
    ``Content-Length`` follows.
    """

    async def complete(self) -> None:
        """Wait for what the answer says, then set it with :meth:`answer`."""
        raise NotImplementedError

    def answer(self, body: HttpResponse) -> None:
        """Take ``body``'s status and content as this answer's."""
        self.status_code = body.status_code
        self.content = body.content
        if self.has_header("Content-Length"):
            self["Content-Length"] = str(len(self.content))
