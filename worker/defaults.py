"""The defaults the client, the daemon and the demo share, defined once.

The account is the seed's documented default, which the reference server's
demo creates (``server/demo.py`` makes it on the server's side).
"""

from __future__ import annotations

import os
import socket

__all__ = ["DEFAULT_PASSWORD", "DEFAULT_USERNAME", "default_worker_id"]

DEFAULT_USERNAME = "backend"
DEFAULT_PASSWORD = "foobar"  # noqa: S105 - a documented default, not a secret


def default_worker_id() -> str:
    """``<hostname>:<pid>``, the name a worker gives itself in ``X-Worker`` and logs."""
    return f"{socket.gethostname()}:{os.getpid()}"
