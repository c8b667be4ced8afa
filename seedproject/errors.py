"""Domain errors: what a service raises when a request cannot be honoured.

Pure Python (no Django, no DRF). Each error carries the stable machine code and the HTTP status
that API.md assigns to it; the API edge renders them as ``{success: false, error, code, details}``.
"""

from typing import Any


class DomainError(Exception):
    """Base of every error a service raises on purpose."""

    status_code = 400
    code = "invalid"
    default_message = "The request is invalid."

    def __init__(self, message: str | None = None, *, details: dict[str, Any] | None = None) -> None:
        self.message = message or self.default_message
        self.details = details or {}
        super().__init__(self.message)


class InvalidInput(DomainError):
    """Validation that needs the database (or a rule) failed; ``details`` maps field -> messages."""


class Forbidden(DomainError):
    status_code = 403
    code = "forbidden"
    default_message = "You may not do this."


class NotFound(DomainError):
    status_code = 404
    code = "not_found"
    default_message = "Not found."


class Conflict(DomainError):
    status_code = 409
    code = "conflict"
    default_message = "The request conflicts with the current state."


class NotConnected(DomainError):
    status_code = 409
    code = "not_connected"
    default_message = "Employees are not connected (员工未连接): connect them before sending."


class QueueFull(DomainError):
    status_code = 429
    code = "queue_full"
    default_message = "The receiver's message queue is full (消息队列已满)."


class InstanceUnreachable(DomainError):
    status_code = 502
    code = "instance_unreachable"
    default_message = "Instance registration failed: the instance is unreachable."


class NoHealthyInstance(DomainError):
    status_code = 503
    code = "no_healthy_instance"
    default_message = "No healthy instance is available (当前没有可用的健康实例)."


def invalid(field: str, message: str) -> InvalidInput:
    """Shortcut for a one-field validation error."""
    return InvalidInput(f"{field}: {message}", details={field: [message]})
