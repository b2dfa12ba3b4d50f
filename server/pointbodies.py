"""The JSON of a dataset's points, encoded once per version and kept, within a bound.

Every worker downloads each dataset it meets once (then keeps it by id and version), so
a fleet asks for the same points once per worker: for a 500-point, 64-feature dataset
that was 55 ms of server CPU each time (the rows' JSON read back, reordered, encoded
again). A dataset's version changes whenever any of its points, or its columns, do
(:meth:`server.models.Dataset.refresh_version`), so a body kept under the version never
goes stale; a dataset without a version yet is encoded each time.

Kept per server process, the most recently asked first, at most `MAX_BYTES` in all; a
body larger than `MAX_BODY` is never kept (it would push out everything else).
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from server.models import Dataset
from server.views.common import json_response
from server.wire import point_dicts

__all__ = ["MAX_BODY", "MAX_BYTES", "points_body"]

MAX_BYTES = 64 * 2**20
MAX_BODY = 16 * 2**20

_Key = tuple[int, str, bool]  # dataset id, version, test and validation labels hidden


class _Kept:
    """Bodies by key, the least recently asked dropped first beyond `MAX_BYTES`."""

    def __init__(self) -> None:
        self._bodies: OrderedDict[_Key, bytes] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: _Key) -> bytes | None:
        with self._lock:
            body = self._bodies.get(key)
            if body is not None:
                self._bodies.move_to_end(key)
            return body

    def put(self, key: _Key, body: bytes) -> None:
        with self._lock:
            if key in self._bodies:
                return
            self._bodies[key] = body
            self._bytes += len(body)
            while self._bytes > MAX_BYTES:
                _, dropped = self._bodies.popitem(last=False)
                self._bytes -= len(dropped)


_kept = _Kept()


def points_body(dataset: Dataset, *, hide_labels: bool) -> bytes:
    """The JSON list of ``dataset``'s points as :func:`server.wire.point_dicts` gives them."""
    key = (dataset.pk, dataset.version, hide_labels)
    body = _kept.get(key)
    if body is None:
        body = json_response(list(point_dicts(dataset, hide_labels=hide_labels))).content
        if dataset.version and len(body) <= MAX_BODY:
            _kept.put(key, body)
    return body
