"""The REST edge's shared pieces: the error body, the exception handler, pagination."""

import logging
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
        if getattr(exc, "wait", None):
            headers["Retry-After"] = str(int(exc.wait))
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
    offset = serializers.IntegerField(min_value=0, default=0)


def page_params(request: Request) -> tuple[int, int]:
    params = validated(PageParams, request.query_params.dict())
    return params["limit"], params["offset"]


def json_not_found(request, exception=None) -> JsonResponse:
    return error_response(404, "Not found.", "not_found")


def json_server_error(request) -> JsonResponse:
    return error_response(500, "Internal server error.", "server_error")
