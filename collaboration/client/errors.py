"""Errors the SDK raises: API answers, unreachable clusters and request timeouts."""

from __future__ import annotations

from typing import Any


class SeedClientError(Exception):
    """Base of every error the SDK raises on purpose."""


class SeedAPIError(SeedClientError):
    """The server answered ``{"success": false, ...}``: ``status``, ``code``, ``error`` and ``details`` say why."""

    def __init__(self, status: int, code: str, error: str, details: dict[str, Any] | None = None) -> None:
        self.status = status
        self.code = code
        self.error = error
        self.details = details or {}
        super().__init__(f"{status} {code}: {error}")


class SeedUnavailable(SeedClientError, ConnectionError):
    """No Seed server could be reached (every known URL and every load-balanced instance failed)."""


class RequestTimeout(SeedClientError, TimeoutError):
    """``request()`` got no ``task_response`` with its correlation id in time."""

    def __init__(self, receiver: str, action: str, correlation_id: str, timeout: float) -> None:
        self.receiver = receiver
        self.action = action
        self.correlation_id = correlation_id
        self.timeout = timeout
        super().__init__(
            f"No task_response to {action!r} from {receiver!r} within {timeout:g} s (correlation_id={correlation_id})."
        )
