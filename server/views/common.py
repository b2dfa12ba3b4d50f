"""What every API view shares: JSON answers, the protocol's error shape, access checks.

Views raise :class:`ClientError` for anything the client did wrong; :func:`api_view` turns it
into ``{"error": sentence, "fields": {...}}`` with the right status, so no bad input can
surface as a 500.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from django import forms
from django.contrib.auth.models import User
from django.core.exceptions import ObjectDoesNotExist
from django.db import models
from django.http import HttpRequest, JsonResponse
from django.http.response import HttpResponseBase

View = Callable[..., HttpResponseBase]
M = TypeVar("M", bound=models.Model)

ADMIN_REQUIRED = "admin rights required"


class ClientError(Exception):
    """A request the server refuses: status, a sentence, and the offending fields."""

    def __init__(self, status: int, message: str, fields: Mapping[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.fields = dict(fields or {})


def json_response(data: Any, status: int = 200) -> JsonResponse:
    """Answer JSON; NaN or infinity in an answer is a server bug, so it fails loudly."""
    return JsonResponse(data, status=status, safe=False, json_dumps_params={"allow_nan": False})


def error_response(
    status: int, message: str, fields: Mapping[str, str] | None = None
) -> JsonResponse:
    """The protocol's error answer."""
    body: dict[str, Any] = {"error": message}
    if fields:
        body["fields"] = dict(fields)
    return json_response(body, status=status)


def form_error(form: forms.Form) -> ClientError:
    """A 400 naming every invalid field of a bound, invalid form (first one in the sentence)."""
    fields = {
        name: " ".join(str(message) for message in messages)
        for name, messages in form.errors.items()
    }
    name, sentence = next(iter(fields.items()))
    prefix = "invalid input" if name == "__all__" else f"invalid {name}"
    return ClientError(400, f"{prefix}: {sentence}", fields)


def valid_form(form: forms.Form) -> dict[str, Any]:
    """The cleaned data of ``form``, or a :class:`ClientError` naming what is wrong."""
    if not form.is_valid():
        raise form_error(form)
    return form.cleaned_data


def get_or_404(
    rows: models.Manager[M] | models.QuerySet[M], pk: int, what: str, field: str | None = None
) -> M:
    """The row with id ``pk``, or a ``404`` "no <what> with id <pk>" naming ``field``, if any."""
    try:
        return rows.get(pk=pk)  # unordered, unlike first(): less for the ORM to build
    except ObjectDoesNotExist:
        fields = {field: f"unknown {what}"} if field else None
        raise ClientError(404, f"no {what} with id {pk}", fields) from None


def user_of(request: HttpRequest) -> User:
    """The logged-in caller (views behind :func:`api_view` always have one)."""
    user = request.user
    if not isinstance(user, User):
        raise ClientError(401, "authentication required: log in first")
    return user


def api_view(*, method: str, staff: bool = False) -> Callable[[View], View]:
    """Check the method and the caller's rights, and answer client errors as JSON.

    Unauthenticated callers get ``401`` (the protocol allows it instead of a redirect to
    ``login/``, and it is unambiguous for scripts); non-staff callers of admin endpoints
    get ``403 {"error": "admin rights required"}``.
    """

    def decorate(view: View) -> View:
        @functools.wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
            if request.method != method:
                answer = error_response(405, f"this address only answers {method} requests")
                answer["Allow"] = method
                return answer
            if not request.user.is_authenticated:
                return error_response(401, "authentication required: log in first")
            if staff and not request.user.is_staff:
                return error_response(403, ADMIN_REQUIRED)
            try:
                return view(request, *args, **kwargs)
            except ClientError as error:
                return error_response(error.status, error.message, error.fields)

        return wrapper

    return decorate
