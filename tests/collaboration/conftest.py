"""Fixtures of the collaboration tests: registered, connected employees and a small API helper."""

import pytest

BASE = "/api/v1/collaboration"


def url(path: str) -> str:
    return f"{BASE}/{path}"


@pytest.fixture
def register(api):
    """Register an employee through the API and return its representation."""

    def _register(employee_id: str, role: str = "developer") -> dict:
        response = api.post(url("employees/register"), {"employee_id": employee_id, "role": role})
        assert response.status_code in (200, 201), response.json()
        return response.json()["employee"]

    return _register


@pytest.fixture
def connect(api):
    """Connect two registered employees through the API."""

    def _connect(a: str, b: str) -> None:
        response = api.post(url(f"employees/{a}/connect"), {"target_employee_id": b})
        assert response.status_code in (200, 201), response.json()

    return _connect


@pytest.fixture
def pair(register, connect):
    """dev_001 (developer) and qa_001 (qa_engineer), connected."""
    register("dev_001", "developer")
    register("qa_001", "qa_engineer")
    connect("dev_001", "qa_001")
    return "dev_001", "qa_001"


@pytest.fixture
def send(api):
    """Send from ``sender`` to ``receiver`` through the API; returns the response."""

    def _send(sender: str, receiver: str, **body):
        body.setdefault("message_type", "notification")
        return api.post(url(f"employees/{sender}/messages"), {"receiver_id": receiver, **body})

    return _send


@pytest.fixture
def receive(api):
    """Receive (lease) through the API; returns the list of messages."""

    def _receive(employee_id: str, limit: int = 10) -> list[dict]:
        response = api.post(url(f"employees/{employee_id}/messages/receive"), {"limit": limit})
        assert response.status_code == 200, response.json()
        return response.json()["messages"]

    return _receive
