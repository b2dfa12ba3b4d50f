"""``login/`` and ``logout/`` with Django's own authentication form and sessions."""

from __future__ import annotations

from django.contrib import auth
from django.contrib.auth.forms import AuthenticationForm
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.csrf import ensure_csrf_cookie
from django.views.decorators.http import require_http_methods

from server.views.common import api_view, json_response


@require_http_methods(["GET", "POST"])
@ensure_csrf_cookie
def login(request: HttpRequest) -> HttpResponse:
    """GET: the login page (sets ``csrftoken``). POST: ``{"success": true}`` or the page again.

    A failed login answers the HTML page with status 200, as Django's own login view does;
    clients recognise failure by the missing ``{"success": true}``.
    """
    form = AuthenticationForm(request, data=request.POST if request.method == "POST" else None)
    if form.is_valid():
        auth.login(request, form.get_user())
        return json_response({"success": True})
    return render(request, "server/login.html", {"form": form})


@api_view(method="POST")
def logout(request: HttpRequest) -> HttpResponse:
    """End the session."""
    auth.logout(request)
    return json_response({"success": True})
