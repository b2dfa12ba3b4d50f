"""What a student may see: the one place the hiding rules live (the API and pages use it).

- Test and validation labels are never shown to students (only staff, which workers are).
- A job's validation scores are hidden from students while a round on the job's dataset is
  open, however the job was submitted: the same job sent outside the round, on the round's
  dataset, must not reveal the score the round keeps hidden. Closing the dataset's last open
  round reveals them.
- Submitting on a dataset with an open round needs one of its open rounds joined.
"""

from __future__ import annotations

from django.contrib.auth.models import User
from django.db.models import QuerySet

from server.models import Job, Round

HIDDEN_SETS = frozenset({"test", "validation"})


def labels_hidden(set_name: str, *, staff: bool) -> bool:
    """Whether the labels of ``set_name`` points are hidden from this viewer."""
    return not staff and set_name in HIDDEN_SETS


def open_rounds(dataset_id: int) -> QuerySet[Round]:
    """The open rounds on a dataset: while there is one, its validation scores are secret."""
    return Round.objects.filter(dataset_id=dataset_id, open=True)


def validation_hidden(job: Job, *, staff: bool) -> bool:
    """Whether ``job``'s validation scores (and extra validation scores) are hidden.

    Staff see everything; a student sees them once no round on the job's dataset is open.
    """
    if staff:
        return False
    if job.round is not None and job.round.open:
        return True
    return open_rounds(job.dataset_id).exists()


def may_submit_on(user: User, dataset_id: int) -> bool:
    """Whether ``user`` may submit on the dataset: staff, or no open round, or one joined."""
    if user.is_staff:
        return True
    rounds = open_rounds(dataset_id)
    return not rounds.exists() or rounds.filter(participants__pk=user.pk).exists()
