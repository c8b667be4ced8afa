"""Who may call what: every route and socket, as anonymous / another principal / the owner / staff.

Local anonymous mode is off here (a deployment's default); tests/settings turn it on for the rest of
the suite, where the test client stands in for `make run` on loopback.
"""

from dataclasses import dataclass
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from collaboration import services as collaboration
from instances.services import instance_register
from seedproject.asgi import application
from seedproject.security import token_hash

ENROLL = "test-enrollment-token"


@dataclass
class World:
    dev: str
    qa: str
    outsider: str
    instance_id: str
    instance_token: str
    other_instance_token: str
    message_id: str
    conversation_id: str


@pytest.fixture
def world(db, settings) -> World:
    settings.SEED_ALLOW_LOCAL_ANONYMOUS = False
    settings.SEED_ENROLLMENT_TOKEN = ENROLL
    tokens = {}
    for employee_id, role in (("dev", "developer"), ("qa", "qa_engineer"), ("outsider", "designer")):
        employee, _ = collaboration.employee_register(employee_id=employee_id, role=role)
        tokens[employee_id] = employee.new_token
    collaboration.connection_create(employee_id="dev", target_employee_id="qa")
    message, _ = collaboration.message_send(sender_id="qa", receiver_id="dev", message_type="notification")
    collaboration.messages_receive(employee_id="dev", limit=1)
    conversation = collaboration.conversation_create(
        employee_id="dev", participants=["dev", "qa"], topic="t", initial_message=None
    )
    instance, _ = instance_register(host="127.0.0.1", port=9201, verify=False)
    other, _ = instance_register(host="127.0.0.1", port=9202, verify=False)
    return World(
        dev=tokens["dev"],
        qa=tokens["qa"],
        outsider=tokens["outsider"],
        instance_id=str(instance.id),
        instance_token=instance.new_token,
        other_instance_token=other.new_token,
        message_id=str(message.id),
        conversation_id=str(conversation.id),
    )


def client_as(who: str, w: World) -> APIClient:
    client = APIClient()
    client.default_format = "json"
    bearer = {
        "owner_employee": w.dev,
        "other_employee": w.outsider,
        "owner_instance": w.instance_token,
        "other_instance": w.other_instance_token,
        "enrollment": ENROLL,
    }.get(who)
    if bearer:
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {bearer}")
    if who == "staff":
        client.force_login(User.objects.create_user("ops", is_staff=True))
    return client


MI = "/api/v1/multi-instance"
CO = "/api/v1/collaboration"
DEV = CO + "/employees/dev"

# route: (method, path, body, principals allowed besides staff)
ANY = {"owner_employee", "other_employee", "owner_instance", "other_instance", "enrollment"}
NEW_INSTANCE = {"host": "127.0.0.1", "port": 9203, "verify": False}
NEW_EMPLOYEE = {"employee_id": "new_1", "role": "developer"}
SEND = {"receiver_id": "qa", "message_type": "notification"}
CONVERSATION = {"participants": ["dev", "qa"], "topic": "x"}
POST = {"sender_id": "dev", "content": "hi"}
ROUTES: dict[str, tuple[str, str, Any, set[str]]] = {
    "register instance": ("post", MI + "/instances", NEW_INSTANCE, {"enrollment"}),
    "list instances": ("get", MI + "/instances", None, ANY),
    "read instance": ("get", MI + "/instances/{instance_id}", None, ANY),
    "update instance": ("patch", MI + "/instances/{instance_id}", {"weight": 3}, {"owner_instance"}),
    "deregister instance": ("delete", MI + "/instances/{instance_id}", None, {"owner_instance"}),
    "heartbeat": ("post", MI + "/instances/{instance_id}/heartbeat", {"connections": 1}, {"owner_instance"}),
    "loadbalance": ("get", MI + "/instances/loadbalance", None, ANY),
    "cluster stats": ("get", MI + "/cluster/stats", None, ANY),
    "read cluster config": ("get", MI + "/cluster/config", None, ANY),
    "change cluster config": ("put", MI + "/cluster/config", {"heartbeat_interval": 5}, set()),
    "register employee": ("post", CO + "/employees/register", NEW_EMPLOYEE, {"enrollment"}),
    "list employees": ("get", CO + "/employees", None, ANY),
    "read employee": ("get", DEV, None, ANY),
    "unregister employee": ("delete", DEV, None, {"owner_employee"}),
    "connect": ("post", DEV + "/connect", {"target_employee_id": "outsider"}, {"owner_employee"}),
    "list connections": ("get", DEV + "/connections", None, {"owner_employee"}),
    "drop connection": ("delete", DEV + "/connections/qa", None, {"owner_employee"}),
    "send": ("post", DEV + "/messages", SEND, {"owner_employee"}),
    "inbox": ("get", DEV + "/messages", None, {"owner_employee"}),
    "receive": ("post", DEV + "/messages/receive", {"limit": 1}, {"owner_employee"}),
    "ack": ("post", DEV + "/messages/{message_id}/ack", {}, {"owner_employee"}),
    "ack batch": ("post", DEV + "/messages/ack", {"ids": ["{message_id}"]}, {"owner_employee"}),
    "create conversation": ("post", DEV + "/conversations", CONVERSATION, {"owner_employee"}),
    "my conversations": ("get", DEV + "/conversations", None, {"owner_employee"}),
    "conversation history": ("get", CO + "/conversations/{conversation_id}/messages", None, {"owner_employee"}),
    "post to conversation": ("post", CO + "/conversations/{conversation_id}/messages", POST, {"owner_employee"}),
    "employee stats": ("get", DEV + "/stats", None, {"owner_employee"}),
    "system stats": ("get", CO + "/system/stats", None, ANY),
}  # fmt: skip
PRINCIPALS = [
    "anonymous",
    "owner_employee",
    "other_employee",
    "owner_instance",
    "other_instance",
    "enrollment",
    "staff",
]


def _fill(value: Any, w: World) -> Any:
    if isinstance(value, str):
        return value.format(instance_id=w.instance_id, message_id=w.message_id, conversation_id=w.conversation_id)
    if isinstance(value, list):
        return [_fill(v, w) for v in value]
    if isinstance(value, dict):
        return {k: _fill(v, w) for k, v in value.items()}
    return value


@pytest.mark.parametrize("who", PRINCIPALS)
@pytest.mark.parametrize("route", list(ROUTES))
def test_route_access(route: str, who: str, world: World) -> None:
    method, path, body, allowed = ROUTES[route]
    client = client_as(who, world)
    response = getattr(client, method)(_fill(path, world), _fill(body, world), format="json")
    payload = response.json()
    if who == "anonymous":
        assert (response.status_code, payload["code"]) == (401, "not_authenticated"), payload
    elif who == "staff" or who in allowed:
        assert response.status_code in (200, 201), (response.status_code, payload)
        assert payload["success"] is True
    else:
        assert (response.status_code, payload["code"]) == (403, "forbidden"), payload
    if response.status_code >= 400:
        assert set(payload) == {"success", "error", "code", "details"}  # no data leaks out with a refusal


def test_a_bad_token_is_401_even_from_loopback(world: World, settings) -> None:
    settings.SEED_ALLOW_LOCAL_ANONYMOUS = True
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Bearer emp_not-a-real-token")
    response = client.get(CO + "/employees")
    assert (response.status_code, response.json()["code"]) == (401, "not_authenticated")
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_credentials_of_another_scheme_are_401_not_anonymous(world: World, settings) -> None:
    settings.SEED_ALLOW_LOCAL_ANONYMOUS = True
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Basic ZGV2OnB3")
    response = client.get("/api/v1/collaboration/employees/dev/stats")
    assert (response.status_code, response.json()["code"]) == (401, "not_authenticated")


def test_local_anonymous_mode_admits_loopback_only(world: World, settings) -> None:
    settings.SEED_ALLOW_LOCAL_ANONYMOUS = True
    assert APIClient(REMOTE_ADDR="127.0.0.1").get(DEV + "/stats").status_code == 200
    assert APIClient(REMOTE_ADDR="::1").get(DEV + "/stats").status_code == 200
    remote = APIClient(REMOTE_ADDR="192.168.1.20").get(DEV + "/stats")
    assert remote.status_code == 401


def test_tokens_are_stored_hashed_shown_once_and_rotatable(world: World) -> None:
    from collaboration.models import Employee

    stored = Employee.objects.get(pk="dev").token_hash
    assert stored == token_hash(world.dev) and world.dev not in stored
    enrolled = client_as("enrollment", world)
    again = enrolled.post(CO + "/employees/register", {"employee_id": "dev", "role": "developer"})
    assert again.status_code == 200 and "token" not in again.json()  # other replicas keep working
    rotated = enrolled.post(
        CO + "/employees/register", {"employee_id": "dev", "role": "developer", "rotate_token": True}
    )
    new_token = rotated.json()["token"]
    old = client_as("owner_employee", world).get(DEV + "/stats")
    assert old.status_code == 401
    fresh = APIClient()
    fresh.credentials(HTTP_AUTHORIZATION=f"Bearer {new_token}")
    assert fresh.get(DEV + "/stats").status_code == 200


def test_registration_returns_the_new_token_once(world: World) -> None:
    enrolled = client_as("enrollment", world)
    created = enrolled.post(CO + "/employees/register", {"employee_id": "n2", "role": "developer"})
    assert created.status_code == 201 and created.json()["token"].startswith("emp_")
    instance = enrolled.post(MI + "/instances", {"host": "127.0.0.1", "port": 9299, "verify": False})
    assert instance.status_code == 201 and instance.json()["token"].startswith("ins_")


def test_revoked_employee_token_stops_working(world: World) -> None:
    collaboration.employee_token_revoke(employee_id="dev")
    assert client_as("owner_employee", world).get(DEV + "/stats").status_code == 401


# --- sockets --------------------------------------------------------------------------------------------


async def _socket(path: str, *, client: str = "10.9.8.7", user: Any = None) -> tuple[bool, int | None]:
    communicator = WebsocketCommunicator(application, path, headers=[(b"host", b"localhost")])
    communicator.scope["client"] = [client, 40000]
    if user is not None:
        communicator.scope["user"] = user
    connected, _ = await communicator.connect()
    if not connected:
        return False, None
    first = await communicator.receive_output(timeout=5)
    await communicator.disconnect()
    if first["type"] == "websocket.close":
        return False, first.get("code")
    return True, None


SOCKETS = {
    "cluster monitor": ("/api/v1/multi-instance/monitor", ANY),
    "employee monitor": (DEV + "/monitor", {"owner_employee"}),
    "operators' monitor": ("/api/v1/collaboration/monitor", set()),
}


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("who", PRINCIPALS)
@pytest.mark.parametrize("socket_name", list(SOCKETS))
def test_socket_access(socket_name: str, who: str, world: World) -> None:
    path, allowed = SOCKETS[socket_name]
    tokens = {
        "owner_employee": world.dev,
        "other_employee": world.outsider,
        "owner_instance": world.instance_token,
        "other_instance": world.other_instance_token,
        "enrollment": ENROLL,
    }
    user = User.objects.create_user("ops", is_staff=True) if who == "staff" else None
    query = f"?token={tokens[who]}" if who in tokens else ""
    opened, code = async_to_sync(_socket)(path + query, user=user)
    if who == "anonymous":
        assert (opened, code) == (False, 4401)
    elif who == "staff" or who in allowed:
        assert opened, code
    else:
        assert (opened, code) == (False, 4403)


@pytest.mark.django_db(transaction=True)
def test_socket_accepts_the_authorization_header_and_refuses_a_bad_token(world: World) -> None:
    async def open_with(headers: list) -> tuple[bool, int | None]:
        communicator = WebsocketCommunicator(application, DEV + "/monitor", headers)
        communicator.scope["client"] = ["10.9.8.7", 40000]
        await communicator.connect()
        first = await communicator.receive_output(timeout=5)
        await communicator.disconnect()
        return first["type"] != "websocket.close", first.get("code")

    assert async_to_sync(open_with)([(b"authorization", f"Bearer {world.dev}".encode())])[0] is True
    assert async_to_sync(open_with)([(b"authorization", b"Bearer emp_forged")]) == (False, 4401)
