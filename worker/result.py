"""A job's update, typed once: made by the loop, kept by the spool, sent by delivery.

`Result` is frozen and checked when it is made, so the spool and the wire
never look a field name up in a dict again. In the spool it is one JSON
document (`Result.document`, format `FORMAT`) with the pictures as files
beside it; `Result.from_document` reads it back, format 1 included, whose
pictures lay in a ``pictures/`` directory.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any

__all__ = ["FORMAT", "FORMATS", "MESSAGE_LIMIT", "Picture", "Result"]

FORMAT = 2  # the spool document written now
FORMATS = {1: "pictures", 2: ""}  # the formats read, and where each keeps its pictures
MESSAGE_LIMIT = 10_000  # characters the protocol allows in `message`
PICTURE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}\.png")  # never result.json
_SCORES = ("score_test", "score_validation")
_LABELS = ("labels_training", "labels_test", "labels_validation")
_EXTRAS = ("extra_scores_test", "extra_scores_validation")


@dataclass(frozen=True)
class Picture:
    """One PNG of a result: a plain file name (``regions.png``) and its bytes."""

    name: str
    png: bytes = field(repr=False)


@dataclass(frozen=True)
class Result:
    """The update a job gets: its scores, labels and pictures, or the failure's message.

    Raises ValueError, naming the job and the field, when made with fields the
    protocol does not allow (a success without labels, NaN, a bad picture name).
    """

    job_id: int
    success: bool
    message: str | None = None
    score_test: float | None = None
    score_validation: float | None = None
    labels_training: tuple[Any, ...] | None = None
    labels_test: tuple[Any, ...] | None = None
    labels_validation: tuple[Any, ...] | None = None
    extra_scores_test: Mapping[str, float] | None = None
    extra_scores_validation: Mapping[str, float] | None = None
    pictures: tuple[Picture, ...] = ()

    def __post_init__(self) -> None:
        problem = _problem(self)
        if problem is not None:
            raise ValueError(f"job {self.job_id}: {problem}")

    @classmethod
    def failure(cls, job_id: int, message: str) -> Result:
        """A failed job's update: its message, clipped to what the protocol allows."""
        return cls(job_id=job_id, success=False, message=clip(message))

    @classmethod
    def from_fields(
        cls, job_id: int, update: Mapping[str, Any], pictures: Sequence[Picture] = ()
    ) -> Result:
        """A result from the protocol's update fields (a spool document's ``fields``)."""
        unknown = set(update) - _FIELD_NAMES
        if unknown:
            raise ValueError(
                f"job {job_id}: unknown result fields {sorted(unknown)}; "
                f"allowed: {sorted(_FIELD_NAMES)}"
            )
        values = dict(update)
        for name in _LABELS:
            if isinstance(values.get(name), list):
                values[name] = tuple(values[name])
        values.setdefault("success", True)
        return cls(job_id=job_id, pictures=tuple(pictures), **values)

    def fields(self) -> dict[str, Any]:
        """The update's fields as the protocol names them; those that are None left out."""
        named = {f.name: getattr(self, f.name) for f in fields(self)}
        named.pop("job_id")
        named.pop("pictures")
        for name in _LABELS:
            if named[name] is not None:
                named[name] = list(named[name])
        return {name: value for name, value in named.items() if value is not None}

    def document(self) -> dict[str, Any]:
        """The spool's ``result.json``: format, job id, creation time, fields, picture names."""
        return {
            "format": FORMAT,
            "job_id": self.job_id,
            "created": datetime.now(UTC).isoformat(),
            "fields": self.fields(),
            "pictures": [picture.name for picture in self.pictures],
        }

    @classmethod
    def from_document(cls, document: object, read: Callable[[str], bytes]) -> Result:
        """Read a spool document back; ``read(path)`` gives a picture's bytes by relative path.

        Raises ValueError naming what is wrong (format, job id, fields, pictures).
        """
        if not isinstance(document, dict) or document.get("format") not in FORMATS:
            raise ValueError(f"result.json is not a result of format {sorted(FORMATS)}")
        job_id, update, names = (document.get(k) for k in ("job_id", "fields", "pictures"))
        if type(job_id) is not int:
            raise ValueError(f"job id {_brief(job_id)} is not an integer")
        if not isinstance(update, dict):
            raise ValueError("bad result fields: not an object")
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ValueError("'pictures' is not a list of file names")
        folder = FORMATS[document["format"]]
        bad = [n for n in names if not PICTURE_NAME.fullmatch(n)]
        if bad:
            raise ValueError(f"picture files missing or misnamed: {bad}")
        try:
            pictures = [Picture(n, read(f"{folder}/{n}" if folder else n)) for n in names]
        except OSError as exc:
            raise ValueError(f"picture files missing or misnamed: {exc}") from None
        try:
            return cls.from_fields(job_id, update, pictures)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"bad result fields: {exc}") from None


def clip(message: str) -> str:
    """``message`` cut to `MESSAGE_LIMIT` characters, marked with an ellipsis when cut."""
    if len(message) <= MESSAGE_LIMIT:
        return message
    return message[: MESSAGE_LIMIT - 1] + "…"


_FIELD_NAMES = frozenset({*_SCORES, *_LABELS, *_EXTRAS, "message", "success"})


def _problem(result: Result) -> str | None:
    """What is wrong with a result's fields, or None when the protocol allows them."""
    if not isinstance(result.success, bool):
        return f"'success' must be true or false, not {_brief(result.success)}"
    if result.success:
        missing = [n for n in (*_SCORES, *_LABELS) if getattr(result, n) is None]
        if missing:
            return f"a successful result needs {', '.join(missing)}"
    for name in _SCORES:
        value = getattr(result, name)
        if value is not None and not _is_finite_number(value):
            return f"{name!r} must be a finite number, not {_brief(value)}"
    for name in _LABELS:
        if not isinstance(getattr(result, name), tuple | None):
            return f"{name!r} must be a list"
    for name in _EXTRAS:
        if not isinstance(getattr(result, name), Mapping | None):
            return f"{name!r} must be an object"
    if not isinstance(result.message, str | None):
        return "'message' must be a string"
    names = [p.name for p in result.pictures]
    if any(not PICTURE_NAME.fullmatch(n) for n in names) or len(set(names)) != len(names):
        return (
            "picture names must be unique plain file names ending in .png "
            f"(letters, digits, '.', '_', '-'), got {names!r}"
        )
    return None


def _is_finite_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _brief(value: object) -> str:
    """A value for a message: short, and safe for values nested deep."""
    if isinstance(value, list | dict):
        return f"a JSON {'array' if isinstance(value, list) else 'object'}"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
