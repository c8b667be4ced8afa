"""The REST edge's shared pieces: the error body, the exception handler, pagination."""

import logging
import math
from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import Http404, JsonResponse
from rest_framework import exceptions, serializers
from rest_framework.parsers import JSONParser
from rest_framework.request import Request
from rest_framework.response import Response

from seedproject.errors import DomainError

logger = logging.getLogger(__name__)

# DRF exception class -> our stable code; anything not listed keeps DRF's own code.
_DRF_CODES: dict[type[exceptions.APIException], str] = {
    exceptions.ValidationError: "invalid",
    exceptions.ParseError: "invalid",
    exceptions.NotFound: "not_found",
    exceptions.NotAuthenticated: "not_authenticated",
    exceptions.AuthenticationFailed: "not_authenticated",
    exceptions.PermissionDenied: "forbidden",
    exceptions.MethodNotAllowed: "method_not_allowed",
    exceptions.UnsupportedMediaType: "unsupported_media_type",
    exceptions.NotAcceptable: "not_acceptable",
    exceptions.Throttled: "throttled",
}


class NestingSafeJSONParser(JSONParser):
    """DRF's JSON parser, but a body nested too deeply for Python's decoder is a 400, not a 500."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError as exc:
            raise exceptions.ParseError("JSON nested too deeply.") from exc


def error_body(message: str, code: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"success": False, "error": message, "code": code, "details": details or {}}


def error_response(status: int, message: str, code: str, details: dict[str, Any] | None = None) -> JsonResponse:
    """A JSON error for plain Django views and middleware (outside DRF)."""
    return JsonResponse(error_body(message, code, details), status=status, json_dumps_params={"ensure_ascii": False})


def _validation_message(details: dict[str, Any]) -> str:
    parts = []
    for field, messages in details.items():
        text = "; ".join(str(m) for m in messages) if isinstance(messages, list) else str(messages)
        parts.append(text if field == "non_field_errors" else f"{field}: {text}")
    return "Invalid input: " + " | ".join(parts) if parts else "Invalid input."


def flatten_errors(detail: Any) -> Any:
    """ErrorDetail trees -> plain lists/dicts of strings."""
    if isinstance(detail, dict):
        return {str(key): flatten_errors(value) for key, value in detail.items()}
    if isinstance(detail, list):
        return [flatten_errors(item) for item in detail]
    return str(detail)


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """Render every error as ``{success: false, error, code, details}`` with a real status."""
    if isinstance(exc, DomainError):
        return Response(error_body(exc.message, exc.code, exc.details), status=exc.status_code)
    if isinstance(exc, Http404):
        return Response(error_body("Not found.", "not_found"), status=404)
    if isinstance(exc, PermissionDenied):
        return Response(error_body("You may not do this.", "forbidden"), status=403)
    if isinstance(exc, exceptions.APIException):
        code = next((c for cls, c in _DRF_CODES.items() if isinstance(exc, cls)), None) or exc.default_code
        headers = {}
        if getattr(exc, "auth_header", None):
            headers["WWW-Authenticate"] = exc.auth_header
        if getattr(exc, "wait", None):
            headers["Retry-After"] = str(max(1, math.ceil(exc.wait)))
        if isinstance(exc, exceptions.ValidationError):
            detail = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
            details = flatten_errors(detail)
            return Response(error_body(_validation_message(details), "invalid", details), status=400)
        if isinstance(exc, exceptions.ParseError):
            return Response(error_body(f"Malformed request body: {exc.detail}", "invalid"), status=400)
        return Response(error_body(str(exc.detail), code), status=exc.status_code, headers=headers)
    logger.exception("Unhandled error in %s", context.get("view").__class__.__name__ if context else "?")
    return Response(error_body("Internal server error.", "server_error"), status=500)


def validated(serializer_class: type[serializers.Serializer], data: Any, **kwargs: Any) -> dict[str, Any]:
    """Run a serializer over request data and return its validated data (raises 400 on failure)."""
    if data is None or not isinstance(data, dict):
        raise exceptions.ValidationError({"non_field_errors": ["Expected a JSON object."]})
    serializer = serializer_class(data=data, **kwargs)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


class PageParams(serializers.Serializer):
    """``?limit=&offset=`` for every list route; the cap keeps one request cheap."""

    limit = serializers.IntegerField(min_value=1, max_value=1000, default=100)
    offset = serializers.IntegerField(min_value=0, max_value=2**31 - 1, default=0)  # larger overflows SQL


def page_params(request: Request) -> tuple[int, int]:
    params = validated(PageParams, request.query_params.dict())
    return params["limit"], params["offset"]


def json_not_found(request, exception=None) -> JsonResponse:
    return error_response(404, "Not found.", "not_found")


def json_server_error(request) -> JsonResponse:
    return error_response(500, "Internal server error.", "server_error")


# --- OpenAPI (drf-spectacular): the shapes and the security scheme every route documents ---------
# Appended section: its imports stay here, beside the only code that uses them.
from drf_spectacular.extensions import OpenApiAuthenticationExtension  # noqa: E402
from drf_spectacular.utils import OpenApiResponse  # noqa: E402


class ErrorSerializer(serializers.Serializer):
    """The error body of every route (API.md "Conventions"): ``{success: false, error, code, details}``."""

    success = serializers.BooleanField(help_text="Always false on an error.")
    error = serializers.CharField(help_text="A sentence for humans.")
    code = serializers.CharField(help_text="Stable snake_case code: invalid, not_found, not_connected, queue_full, ...")
    details = serializers.DictField(help_text="Machine-readable context; for 400 invalid: field -> list of messages.")


class SuccessSerializer(serializers.Serializer):
    """A success body that carries nothing else: ``{success: true}``."""

    success = serializers.BooleanField()


# What each status means on this API; the codes are the ones the exception handler emits.
ERROR_MEANINGS: dict[int, str] = {
    400: "invalid: validation failed (details maps field -> messages) or the JSON body is malformed.",
    401: "not_authenticated: no or an unknown bearer token.",
    403: "forbidden: the caller may not act on this resource.",
    404: "not_found: unknown instance, employee, conversation or message.",
    409: "conflict / not_connected / no_route: the request conflicts with the current state.",
    413: "payload_too_large: the body is over SEED_MAX_PAYLOAD_BYTES.",
    429: "throttled (courtesy rate limit, Retry-After set) or queue_full (the receiver's queue is full).",
    502: "instance_unreachable: the registration probe failed.",
    503: "no_healthy_instance: nothing to load-balance to.",
}


def error_responses(*statuses: int) -> dict[int, OpenApiResponse]:
    """``{status: OpenApiResponse(ErrorSerializer)}`` for ``extend_schema(responses=...)``."""
    return {status: OpenApiResponse(ErrorSerializer, description=ERROR_MEANINGS[status]) for status in statuses}


class SeedTokenScheme(OpenApiAuthenticationExtension):
    """Documents ``seedproject.auth.SeedTokenAuthentication`` as the ``bearerAuth`` security scheme."""

    target_class = "seedproject.auth.SeedTokenAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": (
                "`Authorization: Bearer <token>`. Employee tokens (`emp_…`) are returned once at employee "
                "registration and act for that employee only; instance tokens (`ins_…`) are returned once at "
                "instance registration and may heartbeat, update or deregister that instance; the cluster's "
                "`SEED_ENROLLMENT_TOKEN` may register employees and instances. Operators use a Django staff "
                "session (cookieAuth). On the embedded default, anonymous requests from loopback are accepted."
            ),
        }
