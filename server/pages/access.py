"""Who may open a page: a logged-in user, some only staff; refusals are pages too.

A page view raises :class:`Refused` for anything it will not show; :func:`page` renders it
as an HTML page with the status, where the protocol's views would answer JSON.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from django.contrib.auth.models import User
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse

PageView = Callable[..., HttpResponse]


class Refused(Exception):
    """A page the caller may not see, or that does not exist: a status and a sentence."""

    def __init__(self, status: int, sentence: str) -> None:
        super().__init__(sentence)
        self.status = status
        self.sentence = sentence


def refusal(request: HttpRequest, error: Refused) -> HttpResponse:
    """The refusal page for ``error``."""
    context = {"status": error.status, "sentence": error.sentence}
    return render(request, "pages/refused.html", context, status=error.status)


def viewer(request: HttpRequest) -> User:
    """The logged-in user of a view behind :func:`page`."""
    user = request.user
    if not isinstance(user, User):
        raise Refused(401, "log in first")
    return user


def page(*, staff: bool = False) -> Callable[[PageView], PageView]:
    """Send anonymous callers to the login form (then back); refuse non-staff if ``staff``."""

    def decorate(view: PageView) -> PageView:
        @functools.wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if not request.user.is_authenticated:
                query = urlencode({"next": request.get_full_path()})
                return HttpResponseRedirect(f"{reverse('pages:landing')}?{query}")
            try:
                if staff and not request.user.is_staff:
                    raise Refused(403, "this page is for teachers (staff accounts) only")
                return view(request, *args, **kwargs)
            except Refused as error:
                return refusal(request, error)

        return wrapper

    return decorate
