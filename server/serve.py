"""Serving the Django app with gunicorn, embedded (a production server, not runserver).

gthread workers keep HTTP connections alive between a worker's requests, which keeps the
per-job overhead low; the app is loaded once in the arbiter and shared by the forks.
"""

from __future__ import annotations

import os
from typing import Any

from django.db import connections
from gunicorn.app.base import BaseApplication


def default_workers() -> int:
    """Two to four processes, following the CPUs."""
    return min(4, max(2, os.cpu_count() or 2))


def _announce(arbiter: Any) -> None:
    """``when_ready``: one line with the URL, once the sockets listen."""
    for listener in arbiter.LISTENERS:
        print(f"mlworker-server: serving on {listener}/", flush=True)


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
    from server.wsgi import application

    connections.close_all()  # never share a database connection with the forks
    options = {
        "bind": [bind],
        "workers": workers,
        "worker_class": "gthread",
        "threads": 4,
        "timeout": 120,
        "graceful_timeout": 10,
        "keepalive": 5,
        "errorlog": "-",
        "loglevel": "warning",
        "proc_name": "mlworker-server",
        "when_ready": _announce,
    }
    EmbeddedServer(application, options).run()
