"""Serving the Django app with gunicorn and uvicorn workers, embedded (not runserver).

Each gunicorn process runs one uvicorn event loop serving Django as ASGI: a connection that
waits (a long poll held for a worker, a slow client trickling its request) costs a coroutine,
not a thread, so hundreds of them starve nobody. Sync views run in a thread per request.
The app is loaded once in the arbiter and shared by the forks.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from django.db import connections
from gunicorn.app.base import BaseApplication
from gunicorn.arbiter import Arbiter
from uvicorn.server import Server
from uvicorn_worker import UvicornWorker

from server.wakeup import close_soon


def default_workers() -> int:
    """Two to four processes, following the CPUs."""
    return min(4, max(2, os.cpu_count() or 2))


def _announce(arbiter: Any) -> None:
    """``when_ready``: one line with the URL, once the sockets listen."""
    for listener in arbiter.LISTENERS:
        print(f"mlworker-server: serving on {listener}/", flush=True)


class _Server(Server):
    """uvicorn's server, which also ends held long polls as soon as a stop is asked."""

    def handle_exit(self, sig: int, frame: Any) -> None:
        close_soon()
        super().handle_exit(sig, frame)


class AsgiWorker(UvicornWorker):
    """A gunicorn worker running uvicorn (no lifespan: Django has none)."""

    CONFIG_KWARGS: dict[str, Any] = {"loop": "asyncio", "http": "auto", "lifespan": "off"}

    async def _serve(self) -> None:
        self.config.app = self.wsgi
        server = _Server(config=self.config)
        self._install_sigquit_handler()
        await server.serve(sockets=self.sockets)
        if not server.started:
            sys.exit(Arbiter.WORKER_BOOT_ERROR)


class EmbeddedServer(BaseApplication):
    """gunicorn configured from a dict instead of its command line."""

    def __init__(self, application: Any, options: dict[str, Any]) -> None:
        self.application = application
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        return self.application


def serve(bind: str, workers: int) -> None:
    """Serve until SIGTERM or SIGINT (gunicorn then stops its workers gracefully)."""
    from server.asgi import application

    connections.close_all()  # never share a database connection with the forks
    options = {
        "bind": [bind],
        "workers": workers,
        "worker_class": f"{__name__}.AsgiWorker",
        "timeout": 120,
        "graceful_timeout": 10,
        "keepalive": 5,
        "backlog": 2048,
        "errorlog": "-",
        "loglevel": "warning",
        "proc_name": "mlworker-server",
        "when_ready": _announce,
    }
    EmbeddedServer(application, options).run()
