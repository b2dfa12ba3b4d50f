"""The errors of the algorithms package: one tree, every message a sentence.

::

    AlgorithmError                 a job cannot run as asked; str(e) says what to change
    ├── UnknownAlgorithmError      the name is not registered; lists the available names
    ├── DuplicateAlgorithmError    a second algorithm under a name already taken
    ├── InvalidParamsError         a hyper-parameter is unknown, refused or out of range
    └── DatasetError               the points cannot become arrays (names point, feature, set)

The worker turns an ``AlgorithmError`` into a failed job whose message is
``str(e)``, so each message is written for the student who submitted the job,
not for the operator: it names what was wrong and what is allowed.
"""

from __future__ import annotations

__all__ = [
    "AlgorithmError",
    "DatasetError",
    "DuplicateAlgorithmError",
    "InvalidParamsError",
    "UnknownAlgorithmError",
]


class AlgorithmError(Exception):
    """A job cannot run as asked; the message is a sentence a student can act on."""


class UnknownAlgorithmError(AlgorithmError):
    """The algorithm name is not in the registry; the message lists the available names."""


class DuplicateAlgorithmError(AlgorithmError):
    """A second algorithm was registered under a name that is already taken."""


class InvalidParamsError(AlgorithmError):
    """A hyper-parameter is unknown, refused or invalid; names it and what is allowed."""


class DatasetError(AlgorithmError):
    """The dataset's points cannot become arrays; the message names the point, feature or set."""
