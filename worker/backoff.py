"""Waits that grow while nothing happens: exponential, with full jitter; and their ceiling."""

from __future__ import annotations

import random

#: Seconds: the longest wait a server's ``Retry-After`` can ask of the worker, whether
#: between the retries of one call or between probes of a server that is away.
RETRY_AFTER_MAX = 300.0


class Backoff:
    """Exponential backoff with full jitter between `low` and `high` seconds.

    Each `next()` draws uniformly from [low, min(high, low * 2**n)], so a
    fleet restarted together spreads out instead of polling in step (the
    "full jitter" of the AWS architecture blog); `reset()` after real work.
    """

    def __init__(self, low: float, high: float) -> None:
        if not 0 < low <= high:
            raise ValueError(f"need 0 < low <= high, got low={low}, high={high}")
        self.low = low
        self.high = high
        self._failures = 0

    def next(self) -> float:
        """The next wait, in seconds."""
        ceiling = min(self.high, self.low * 2.0 ** min(self._failures, 62))
        self._failures += 1
        return random.uniform(self.low, ceiling)  # noqa: S311 - jitter, not cryptography

    def reset(self) -> None:
        """Back to the shortest wait (after a job, or once the server answers)."""
        self._failures = 0
