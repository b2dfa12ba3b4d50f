"""Validation of the protocol's POST bodies, one Django form per endpoint.

Each error names the field and says what is allowed; views turn an invalid form into a
``400`` with ``fields`` (see ``server.views.common.valid_form``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django import forms
from django.conf import settings

from server.fields import BooleanTextField, JSONTextField, float_field, int_field, is_number
from server.models import SETS

ALGORITHM_RULE = "1 to 64 characters from a-z, 0-9, '_', '.' and '-'"
MAX_ID = 2**63 - 1


class SubmitForm(forms.Form):
    """``jobs/submit/``: what to run, on which dataset, in which round."""

    algorithm = forms.RegexField(
        r"^[a-z0-9_.-]{1,64}\Z",
        strip=False,
        error_messages={
            "required": f"is required ({ALGORITHM_RULE})",
            "invalid": f"must be {ALGORITHM_RULE}",
        },
    )
    dataset = int_field(1, MAX_ID, required=True)
    params = JSONTextField(
        dict,
        what="an object",
        max_bytes=settings.JOB_PARAMS_MAX_BYTES,
        max_depth=settings.JOB_PARAMS_MAX_DEPTH,
    )
    round = int_field(1, MAX_ID, required=False)
    time_limit = int_field(1, settings.JOB_MAX_TIME_LIMIT, required=False)

    def clean_params(self) -> dict[str, Any]:
        params: dict[str, Any] | None = self.cleaned_data.get("params")
        return {} if params is None else params


class GroupAddForm(forms.Form):
    """``groups/add/``: a new group's name and whether anyone may join it."""

    name = forms.CharField(
        max_length=64,
        error_messages={
            "required": "is required (1 to 64 characters)",
            "max_length": "must be at most 64 characters",
        },
    )
    public = BooleanTextField(default=True)


class GroupJoinForm(forms.Form):
    """``groups/join/``: the name of the group to join."""

    group_name = forms.CharField(max_length=64, error_messages={"required": "is required"})


def _label_problem(label: object) -> str | None:
    if label is None or isinstance(label, str) or is_number(label):
        return None
    return f"{type(label).__name__} {label!r}"[:80]


class UpdateForm(forms.Form):
    """``jobs/<id>/update/``: a worker's result, checked against the dataset's set sizes."""

    success = BooleanTextField(default=True)
    score_test = float_field(0.0, 1.0)
    score_validation = float_field(0.0, 1.0)
    labels_training = JSONTextField(list, what="a list")
    labels_test = JSONTextField(list, what="a list")
    labels_validation = JSONTextField(list, what="a list")
    extra_scores_test = JSONTextField(dict, what="an object of numbers")
    extra_scores_validation = JSONTextField(dict, what="an object of numbers")
    message = forms.CharField(
        required=False,
        strip=False,
        max_length=10_000,
        error_messages={"max_length": "must be at most 10,000 characters"},
    )

    def __init__(self, data: Mapping[str, Any], *, set_sizes: Mapping[str, int]) -> None:
        super().__init__(data)
        self.set_sizes = set_sizes

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        success = data.get("success", True)
        for name in ("score_test", "score_validation"):
            if success and name in data and data[name] is None:
                self.add_error(name, "is required when success is true (a number from 0 to 1)")
        for set_name in SETS:
            self._check_labels(data, set_name, required=success)
        for name in ("extra_scores_test", "extra_scores_validation"):
            self._check_extra_scores(data, name)
        return data

    def _check_labels(self, data: dict[str, Any], set_name: str, *, required: bool) -> None:
        name = f"labels_{set_name}"
        if name not in data:
            return
        labels = data[name]
        size = self.set_sizes.get(set_name, 0)
        if labels is None:
            if required:
                self.add_error(name, f"is required when success is true ({size} labels)")
            return
        if len(labels) != size:
            self.add_error(
                name, f"has {len(labels)} labels but the {set_name} set has {size} points"
            )
            return
        for index, label in enumerate(labels):
            problem = _label_problem(label)
            if problem:
                self.add_error(
                    name, f"item {index} is {problem}: a label is a number, a string or null"
                )
                return

    def _check_extra_scores(self, data: dict[str, Any], name: str) -> None:
        scores = data.get(name)
        for key, value in (scores or {}).items():
            if not is_number(value):
                self.add_error(name, f"{key!r} is {value!r}: each extra score must be a number")
                return
