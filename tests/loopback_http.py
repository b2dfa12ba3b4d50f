"""A threaded HTTP server on a free 127.0.0.1 port, served for the length of a `with` block.

The test peers (`fault_server.FaultServer`, `fault_proxy.FaultProxy`) differ in what
they answer, not in how they start and stop: this is that shared part.
"""

from __future__ import annotations

import threading
from http.server import ThreadingHTTPServer
from types import TracebackType
from typing import Self


class LoopbackHTTP:
    """Owns `server` (bound to 127.0.0.1) and the thread that serves it."""

    prefix = "/"  # the path the peer lives under; part of `url`

    def __init__(self, server: ThreadingHTTPServer) -> None:
        server.daemon_threads = True
        self._httpd = server
        self._thread = threading.Thread(
            target=server.serve_forever, args=(0.05,), name=type(self).__name__, daemon=True
        )

    @property
    def url(self) -> str:
        """The base URL a client uses as its host."""
        return f"http://127.0.0.1:{self._httpd.server_address[1]}{self.prefix}"

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(10)
