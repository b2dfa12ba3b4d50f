"""Running a protocol view for a page, so a form obeys every rule the API enforces.

The submit form and the join buttons post to pages that hand the same request to the
protocol's own view (``jobs/submit/``, ``groups/join/``, ``rounds/<id>/join/``) and read
its JSON answer: no rule about who may submit where is written twice.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from django.http import HttpRequest
from django.http.response import HttpResponseBase

View = Callable[..., HttpResponseBase]


class ProtocolRefusal(Exception):
    """The protocol view refused the request: its status, sentence and field errors."""

    def __init__(self, status: int, sentence: str, fields: dict[str, str]) -> None:
        super().__init__(sentence)
        self.status = status
        self.sentence = sentence
        self.fields = fields


def call(view: View, request: HttpRequest, *args: Any) -> Any:
    """``view(request, *args)``'s JSON answer, or :class:`ProtocolRefusal` for an error."""
    response = view(request, *args)
    body = json.loads(getattr(response, "content", b"null"))
    if response.status_code >= 400:
        error = body if isinstance(body, dict) else {}
        raise ProtocolRefusal(
            response.status_code,
            str(error.get("error", "refused")),
            dict(error.get("fields", {})),
        )
    return body
