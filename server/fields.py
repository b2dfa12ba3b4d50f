"""Form fields for the protocol's encodings: JSON text in form fields and ``true``/``false``.

JSON is parsed strictly: ``NaN``, ``Infinity`` and numbers too large for a float are
refused, because the protocol promises finite numbers everywhere; so are strings holding a
NUL or an unpaired surrogate, which no database we support can store as JSON. Its size and
nesting are bounded, because a deeply nested value that Python's JSON decoder accepts still
overflows the stack of whoever later pickles or walks it recursively (a worker).
"""

from __future__ import annotations

import json
import math
from typing import Any

from django import forms
from django.core.exceptions import ValidationError

DEFAULT_MAX_DEPTH = 32
TRUE_TEXTS = frozenset({"true", "1"})
FALSE_TEXTS = frozenset({"false", "0"})


def _reject_constant(text: str) -> float:
    raise ValueError(f"{text} is not allowed: numbers must be finite")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is too large: numbers must be finite")
    return value


def _text_problem(value: Any) -> str | None:
    """What makes a decoded JSON value unstorable: a NUL or an unpaired surrogate in a string.

    Both are valid JSON escapes (``\\u0000``, ``\\ud800``) but not text: PostgreSQL's
    ``jsonb`` refuses them, and an unpaired surrogate is not even UTF-8. The walk is
    iterative, so deep nesting the decoder accepted cannot overflow the stack here.
    """
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
        elif isinstance(item, str):
            if "\x00" in item:
                return "a NUL character (\\u0000)"
            if not item.isascii():
                try:
                    item.encode("utf-8")
                except UnicodeEncodeError:
                    return "an unpaired surrogate (\\ud800 to \\udfff)"
    return None


def nesting_depth(value: Any) -> int:
    """How deeply lists and objects nest in ``value`` (a scalar is 0, ``[1]`` is 1); iterative."""
    deepest = 0
    pending = [(value, 0)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict):
            item = list(item.values())
        if isinstance(item, list):
            deepest = max(deepest, depth + 1)
            pending.extend((child, depth + 1) for child in item)
    return deepest


def parse_json(text: str) -> Any:
    """Parse JSON text, refusing NaN, infinities and strings that are not text.

    Raises ``ValueError`` naming the problem.
    """
    value = json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float)
    problem = _text_problem(value)
    if problem:
        raise ValueError(f"strings must not contain {problem}")
    return value


def is_number(value: object) -> bool:
    """True for ints and finite floats (not booleans, which JSON keeps apart)."""
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and math.isfinite(value))


class JSONTextField(forms.Field):
    """A form field holding JSON text that must decode to ``expected`` (list or dict).

    ``max_bytes`` bounds the UTF-8 text, ``max_depth`` the nesting (the outer list or object
    is depth 1); both are named in the error.
    """

    def __init__(
        self,
        expected: type,
        *,
        what: str,
        max_bytes: int | None = None,
        max_depth: int = DEFAULT_MAX_DEPTH,
        **kwargs: Any,
    ) -> None:
        self.expected = expected
        self.what = what
        self.max_bytes = max_bytes
        self.max_depth = max_depth
        kwargs.setdefault("required", False)
        super().__init__(**kwargs)

    def to_python(self, value: Any) -> Any:
        if value in self.empty_values:
            return None
        if isinstance(value, self.expected):
            return value
        text = str(value)
        size = len(text.encode("utf-8", "surrogatepass"))
        if self.max_bytes is not None and size > self.max_bytes:
            raise ValidationError(
                f"is {size:,} bytes of JSON text; at most {self.max_bytes:,} bytes allowed"
            )
        too_deep = f"must be {self.what} nested at most {self.max_depth} deep"
        try:
            decoded = parse_json(text)
        except RecursionError:
            raise ValidationError(f"{too_deep} (lists and objects within one another)") from None
        except ValueError as error:
            raise ValidationError(f"must be {self.what} in JSON text ({error})") from error
        if not isinstance(decoded, self.expected):
            kind = type(decoded).__name__
            raise ValidationError(f"must be {self.what} in JSON text, not a JSON {kind}")
        depth = nesting_depth(decoded)
        if depth > self.max_depth:
            raise ValidationError(f"{too_deep}, not {depth} (lists and objects within one another)")
        return decoded


class BooleanTextField(forms.Field):
    """``true`` or ``false`` (any case; ``1``/``0`` too); empty means ``default``."""

    def __init__(self, *, default: bool, **kwargs: Any) -> None:
        self.default = default
        kwargs.setdefault("required", False)
        super().__init__(**kwargs)

    def to_python(self, value: Any) -> bool:
        if value in self.empty_values:
            return self.default
        text = str(value).strip().lower()
        if text in TRUE_TEXTS:
            return True
        if text in FALSE_TEXTS:
            return False
        raise ValidationError(f"must be true or false, not {str(value)[:40]!r}")


def float_field(low: float, high: float) -> forms.FloatField:
    """An optional float in ``[low, high]`` (Django refuses NaN and infinities)."""
    allowed = f"must be a finite number from {low:g} to {high:g}"
    messages = {"invalid": allowed, "min_value": allowed, "max_value": allowed}
    return forms.FloatField(required=False, min_value=low, max_value=high, error_messages=messages)


def int_field(low: int, high: int, *, required: bool) -> forms.IntegerField:
    """An integer in ``[low, high]`` with a message that says so."""
    allowed = f"must be a whole number from {low} to {high}"
    messages = {
        "invalid": allowed,
        "min_value": allowed,
        "max_value": allowed,
        "required": f"is required ({allowed[5:]})",
    }
    return forms.IntegerField(
        required=required, min_value=low, max_value=high, error_messages=messages
    )
