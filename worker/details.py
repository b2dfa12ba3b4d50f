"""A claimed job's details, checked once: what the worker cannot use fails the job.

The server is trusted to hand out jobs, not to send well-formed data, and a
job's params come from a student. So the details are read into a frozen
`JobDetails` here, field by field, and anything the worker cannot use raises
`JobFailed` with a sentence for the student that names the field, what it
was and what is allowed. Nothing downstream re-checks a type.

Params are bounded before they travel: nested deeper than `MAX_PARAMS_DEPTH`
or longer than `MAX_PARAMS_BYTES` as JSON, they are refused, because a
structure hundreds of levels deep cannot be pickled to the job process (nor
logged) and no estimator takes one. A `time_limit` must be a finite number of
seconds in (0, `MAX_TIME_LIMIT`]: the reference server's own maximum, seven
days; Infinity, NaN, negatives and larger values fail the job rather than
being clamped, so that nobody's job silently runs under another limit than
the one it was given.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeGuard

__all__ = [
    "MAX_PARAMS_BYTES",
    "MAX_PARAMS_DEPTH",
    "MAX_TIME_LIMIT",
    "JobDetails",
    "JobFailed",
    "check_info",
    "parse_details",
]

MAX_PARAMS_DEPTH = 32  # levels of lists and objects inside params (params itself is level 1)
MAX_PARAMS_BYTES = 64 * 1024  # params as compact JSON
MAX_TIME_LIMIT = 7 * 24 * 3600.0  # seconds: the reference server's JOB_MAX_TIME_LIMIT
MAX_SEED = 2**32 - 1  # numpy's and scikit-learn's random_state range
_SHOWN = 60  # characters of a refused value quoted in a message


class JobFailed(Exception):
    """The job cannot run as given; the sentence goes to the student."""


@dataclass(frozen=True)
class JobDetails:
    """What the worker runs: every field checked, of the type it says."""

    job_id: int
    algorithm: str
    dataset: int
    params: Mapping[str, Any]
    seed: int | None
    time_limit: float  # seconds; the worker's default when the job names none
    attempt: int | None


def parse_details(job_id: int, raw: object, *, default_time_limit: float) -> JobDetails:
    """The job's details from the server's answer; JobFailed naming the first bad field."""
    if not isinstance(raw, Mapping):
        raise JobFailed(f"the job's details are a JSON {_json_type(raw)}, not an object")
    algorithm = raw.get("algorithm")
    if not isinstance(algorithm, str) or not algorithm.strip():
        raise JobFailed(f"the job must name an algorithm (a string), not {_show(algorithm)}")
    return JobDetails(
        job_id=job_id,
        algorithm=algorithm,
        dataset=_dataset_id(raw.get("dataset")),
        params=check_params(raw.get("params", {})),
        seed=_seed(raw.get("seed")),
        time_limit=_time_limit(raw.get("time_limit"), default_time_limit),
        attempt=_optional_int(raw.get("attempt")),
    )


def check_params(params: object) -> Mapping[str, Any]:
    """``params`` if it is a JSON object within the depth and size bounds, else JobFailed."""
    if params is None:
        return {}
    if not isinstance(params, dict):
        raise JobFailed(
            f'the job\'s params must be a JSON object such as {{"n_neighbors": 5}}, '
            f"not a JSON {_json_type(params)}"
        )
    depth = _depth(params)
    if depth > MAX_PARAMS_DEPTH:
        raise JobFailed(
            f"the job's params are nested {depth} levels deep; "
            f"at most {MAX_PARAMS_DEPTH} levels are allowed"
        )
    try:
        size = len(json.dumps(params, separators=(",", ":"), allow_nan=False).encode())
    except (TypeError, ValueError) as exc:
        raise JobFailed(f"the job's params are not plain JSON: {exc}") from None
    if size > MAX_PARAMS_BYTES:
        raise JobFailed(
            f"the job's params take {size} bytes as JSON; at most {MAX_PARAMS_BYTES} are allowed"
        )
    return params


def check_info(dataset_id: int, info: object) -> Mapping[str, Any]:
    """A dataset's info from ``GET datasets/``, which must be a JSON object."""
    if not isinstance(info, Mapping):
        raise JobFailed(
            f"the server describes dataset {dataset_id} as a JSON {_json_type(info)}, "
            "not an object with its name, task and features"
        )
    for name, allowed in _INFO_FIELDS.items():
        value = info.get(name)
        if value is not None and not allowed(value):
            raise JobFailed(
                f"the server describes dataset {dataset_id} with {name} {_show(value)}; "
                f"the {name} must be {_INFO_WORDS[name]}"
            )
    return info


def _is_names(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def _is_text(value: object) -> bool:
    return isinstance(value, str)


#: The info fields the worker reads, and what each must be when present.
_INFO_FIELDS = {
    "name": _is_text,
    "task": _is_text,
    "features": _is_names,
    "target": _is_text,
    "version": _is_text,
}
_INFO_WORDS = {
    "name": "a string",
    "task": "a string",
    "features": "a list of feature names (strings)",
    "target": "a string",
    "version": "a string",
}


def _depth(value: object) -> int:
    """Levels of nested lists and objects, counted without recursion (any depth is safe)."""
    deepest = 0
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, level)
        stack.extend((child, level + 1) for child in children)
    return deepest


def _dataset_id(value: object) -> int:
    if not _is_int(value) or value < 0:
        raise JobFailed(
            f"the job's dataset must be a dataset id (an integer >= 0), not {_show(value)}"
        )
    return value


def _seed(value: object) -> int | None:
    if value is None:
        return None
    if not _is_int(value) or not 0 <= value <= MAX_SEED:
        raise JobFailed(
            f"the job's seed must be an integer from 0 to {MAX_SEED}, not {_show(value)}"
        )
    return value


def _time_limit(value: object, default: float) -> float:
    if value is None:
        return default
    number = math.nan
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            number = float(value)
        except OverflowError:  # an int beyond any float
            number = math.inf
    if not (math.isfinite(number) and 0 < number <= MAX_TIME_LIMIT):
        raise JobFailed(
            f"the job's time_limit must be a number of seconds greater than 0 and at most "
            f"{MAX_TIME_LIMIT:.0f}, not {_show(value)}"
        )
    return number


def _optional_int(value: object) -> int | None:
    return value if _is_int(value) else None


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _json_type(value: object) -> str:
    names = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}
    return names.get(type(value), "number")


def _show(value: object) -> str:
    """A refused value as a message quotes it: short, and never deep (lists are not walked)."""
    if isinstance(value, dict | list):
        return f"a JSON {_json_type(value)}"
    try:
        text = json.dumps(value) if isinstance(value, float) else repr(value)
    except ValueError:  # an int of more digits than Python will print
        return "a number too long to print"
    return text if len(text) <= _SHOWN else text[: _SHOWN - 3] + "..."
