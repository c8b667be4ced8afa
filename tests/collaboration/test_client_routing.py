"""Role routing (``receiver_id: "role:<role>"``), the server side of the SDK's role sends."""

from collections import Counter

import pytest

from collaboration.models import Message
from tests.collaboration.conftest import url

pytestmark = pytest.mark.django_db


@pytest.fixture
def team(register, connect):
    """dev_001 connected to qa_1, qa_2, qa_3; qa_far exists but is not connected; des_1 has another role."""
    register("dev_001", "developer")
    for qa in ("qa_1", "qa_2", "qa_3", "qa_far"):
        register(qa, "qa_engineer")
    register("des_1", "designer")
    for other in ("qa_1", "qa_2", "qa_3", "des_1"):
        connect("dev_001", other)


def _send(api, receiver="role:qa_engineer", **extra):
    body = {"receiver_id": receiver, "message_type": "task_request", "action": "test_code", **extra}
    return api.post(url("employees/dev_001/messages"), body)


def test_default_routing_fills_the_shortest_queue_first(api, team):
    for _ in range(2):  # qa_1 already has two live messages
        assert _send(api, "qa_1").status_code == 201
    receivers = [_send(api).json()["message"]["receiver_id"] for _ in range(4)]
    # depths (2,0,0) -> qa_2 (ties: lowest id), (2,1,0) -> qa_3, (2,1,1) -> qa_2, (2,2,1) -> qa_3, (2,2,2) -> qa_1
    assert receivers == ["qa_2", "qa_3", "qa_2", "qa_3"]
    assert _send(api).json()["message"]["receiver_id"] == "qa_1"


def test_response_names_the_real_receiver_and_only_connected_active_employees_of_the_role(api, team):
    picked = Counter(_send(api).json()["message"]["receiver_id"] for _ in range(9))
    assert picked == Counter({"qa_1": 3, "qa_2": 3, "qa_3": 3})  # never qa_far (not connected), never des_1
    api.delete(url("employees/qa_3"))  # unregistered: out of the pool
    assert {_send(api).json()["message"]["receiver_id"] for _ in range(4)} == {"qa_1", "qa_2"}


def test_round_robin_and_random_are_available_per_send(api, team):
    rotation = [_send(api, routing="round_robin").json()["message"]["receiver_id"] for _ in range(6)]
    assert sorted(rotation[:3]) == ["qa_1", "qa_2", "qa_3"]
    assert rotation[3:] == rotation[:3]
    assert _send(api, routing="random").json()["message"]["receiver_id"] in {"qa_1", "qa_2", "qa_3"}


def test_no_employee_of_the_role_is_a_409_no_route(api, team):
    response = _send(api, "role:architect")
    assert response.status_code == 409
    body = response.json()
    assert body["code"] == "no_route"
    assert "architect" in body["error"]
    assert Message.objects.count() == 0


def test_unknown_sender_is_404_and_bad_role_or_strategy_is_400(api, team):
    body = {"receiver_id": "role:qa_engineer", "message_type": "notification"}
    assert api.post(url("employees/ghost/messages"), body).json()["code"] == "not_found"
    for bad in ({"receiver_id": "role:"}, {"receiver_id": "role:QA!"}, {"routing": "fastest"}, {"routing": 3}):
        response = _send(api, **bad)
        assert response.status_code == 400, bad
        assert response.json()["code"] == "invalid"
        assert set(response.json()["details"]) <= {"receiver_id", "routing"}


def test_a_retried_role_send_returns_the_original_message(api, team):
    first = _send(api, message_id="m-1").json()["message"]
    again = _send(api, message_id="m-1")
    assert again.status_code == 200
    assert again.json()["message"]["id"] == first["id"]
    assert again.json()["message"]["receiver_id"] == first["receiver_id"]
    assert Message.objects.count() == 1
