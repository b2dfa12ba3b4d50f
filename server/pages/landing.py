"""The landing page with its login form, and logging out; Django's own auth and sessions.

``login/`` keeps answering API clients ``{"success": true}``; people log in here and are
sent on to their own page (or back to the page that asked them to log in).
"""

from __future__ import annotations

from django.contrib import auth
from django.contrib.auth.forms import AuthenticationForm
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_http_methods, require_POST


def _next_page(request: HttpRequest) -> str:
    """Where to go after logging in: a ``next`` on this site, else the user's own page."""
    wanted = request.POST.get("next") or request.GET.get("next") or ""
    if wanted and url_has_allowed_host_and_scheme(
        wanted, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return wanted
    return reverse("pages:home")


@require_http_methods(["GET", "POST"])
def landing(request: HttpRequest) -> HttpResponse:
    """What the platform is, and the login form (a logged-in visitor goes to their page)."""
    if request.method == "GET" and request.user.is_authenticated:
        return HttpResponseRedirect(_next_page(request))
    form = AuthenticationForm(request, data=request.POST if request.method == "POST" else None)
    if form.is_valid():
        auth.login(request, form.get_user())
        return HttpResponseRedirect(_next_page(request))
    next_page = request.POST.get("next") or request.GET.get("next") or ""
    return render(request, "pages/landing.html", {"form": form, "next": next_page})


@require_POST
def logout(request: HttpRequest) -> HttpResponse:
    """End the session and go back to the landing page."""
    auth.logout(request)
    return HttpResponseRedirect(reverse("pages:landing"))
