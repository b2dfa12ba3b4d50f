"""Job results as the protocol shows them to a user: its own answer, never a copy of its rules.

Pages that list jobs (the jobs list, a round's leaderboard) go through
:func:`shown_result`, which returns exactly what ``GET jobs/<id>/result/`` answers the
same user; a job's own page asks that view itself. Whatever the server hides from a
student there (a round's validation scores while it is open, ...) is hidden on every
page too, and a change to that rule in ``server.wire`` reaches the pages untouched.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User

from server.models import Job
from server.wire import job_result


def shown_result(job: Job, user: User) -> dict[str, Any]:
    """``job``'s result as the protocol shows it to ``user`` (``job.round`` preloaded)."""
    return job_result(job, staff=user.is_staff)
