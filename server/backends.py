"""The login backend: Django's ``ModelBackend``, reading each request's user by prepared SQL.

Every logged-in request reads its user (``get_user``). Through the ORM that costs about
0.3 ms of CPU, most of a cheap request's own work, so here the read is a prepared query
(:mod:`server.prepared`) giving the same user; logins are checked by Django's code.

Django's own ``ModelBackend`` stays listed after this one (settings), for sessions made
before this one was: a session names the backend that logged it in. So that a wrong
password is never hashed twice, this backend ends the chain when it refuses a login
(``PermissionDenied``): Django's, next, would refuse it the same way, and Django then
reports the failure as for any refused login (``user_login_failed``, which django-axes
counts).
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import backends
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest

from server.prepared import Prepared

_FIELDS = tuple(field.attname for field in User._meta.concrete_fields)
_USER = Prepared(lambda pk: User.objects.filter(pk=pk).order_by().values_list(*_FIELDS), int)


class ModelBackend(backends.ModelBackend):
    """Django's ``ModelBackend``; the user of a session read by prepared SQL."""

    def authenticate(
        self,
        request: HttpRequest | None,
        username: str | None = None,
        password: str | None = None,
        **kwargs: Any,
    ) -> User | None:
        user = super().authenticate(request, username, password, **kwargs)
        if user is None:
            raise PermissionDenied  # Django's ModelBackend, next, would say None again
        return user

    def get_user(self, user_id: Any) -> User | None:
        row = _USER.first(user_id)
        if row is None:
            return None
        user = User.from_db(_USER.alias, _FIELDS, row)
        return user if self.user_can_authenticate(user) else None
