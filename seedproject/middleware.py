"""Request-level guards that must run before any body is read."""

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from seedproject.api import error_response


class PayloadLimitMiddleware:
    """Refuse bodies over SEED_MAX_PAYLOAD_BYTES with 413 before they are parsed."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        limit = settings.SEED_MAX_PAYLOAD_BYTES
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return error_response(400, "Content-Length is not a number.", "invalid")
        if length > limit:
            return error_response(
                413,
                f"Request body is {length} bytes; the limit is {limit} bytes.",
                "payload_too_large",
                {"limit": limit, "received": length},
            )
        return self.get_response(request)
