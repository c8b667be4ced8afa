"""Every collaboration route and every error of API.md, through the REST API."""

import uuid

import pytest

from collaboration.models import Connection, Message
from tests.collaboration.conftest import url

pytestmark = pytest.mark.django_db


def error(response, status: int, code: str) -> dict:
    body = response.json()
    assert response.status_code == status, body
    assert body["success"] is False and body["code"] == code and body["error"]
    return body


# --- employees ---------------------------------------------------------------------------------


def test_register_then_same_role_200_then_other_role_409(api):
    first = api.post(url("employees/register"), {"employee_id": "dev_001", "role": "developer"})
    assert first.status_code == 201
    employee = first.json()["employee"]
    assert set(employee) == {"employee_id", "role", "status", "registered_at", "last_seen"}
    assert employee["status"] == "active"
    again = api.post(url("employees/register"), {"employee_id": "dev_001", "role": "developer"})
    assert again.status_code == 200
    assert again.json()["employee"]["registered_at"] == employee["registered_at"]
    body = error(api.post(url("employees/register"), {"employee_id": "dev_001", "role": "designer"}), 409, "conflict")
    assert body["details"]["role"] == "developer"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"role": "developer"}, "employee_id"),
        ({"employee_id": "dev_001"}, "role"),
        ({"employee_id": "role:dev", "role": "developer"}, "employee_id"),
        ({"employee_id": "x" * 129, "role": "developer"}, "employee_id"),
        ({"employee_id": "dev_001", "role": "Not A Role"}, "role"),
        ({"employee_id": 12, "role": "developer"}, "employee_id"),
    ],
)
def test_register_invalid_fields(api, body, field):
    assert field in error(api.post(url("employees/register"), body), 400, "invalid")["details"]


def test_register_bad_json_and_non_object(api):
    bad = api.post(url("employees/register"), "{not json", content_type="application/json")
    error(bad, 400, "invalid")
    error(api.post(url("employees/register"), [1, 2], format="json"), 400, "invalid")


def test_deployment_role_list(api, settings):
    settings.SEED_EXTRA_ROLES = []  # empty: any well-formed role
    assert api.post(url("employees/register"), {"employee_id": "m0", "role": "janitor"}).status_code == 201
    settings.SEED_EXTRA_ROLES = ["ml_ops"]
    assert api.post(url("employees/register"), {"employee_id": "m1", "role": "ml_ops"}).status_code == 201
    error(api.post(url("employees/register"), {"employee_id": "m2", "role": "janitor"}), 400, "invalid")


def test_list_filter_and_paginate_employees(api, register):
    register("dev_001", "developer")
    register("dev_002", "developer")
    register("qa_001", "qa_engineer")
    body = api.get(url("employees")).json()
    assert body["success"] and body["count"] == 3
    assert [e["employee_id"] for e in body["employees"]] == ["dev_001", "dev_002", "qa_001"]
    devs = api.get(url("employees"), {"role": "developer"}).json()
    assert devs["count"] == 2
    page = api.get(url("employees"), {"limit": 1, "offset": 1}).json()
    assert [e["employee_id"] for e in page["employees"]] == ["dev_002"] and page["count"] == 3
    error(api.get(url("employees"), {"status": "sleeping"}), 400, "invalid")
    error(api.get(url("employees"), {"limit": "many"}), 400, "invalid")
    error(api.get(url("employees"), {"limit": 10**30}), 400, "invalid")


def test_get_and_unregister_and_revive(api, pair, send):
    assert api.get(url("employees/dev_001")).json()["employee"]["role"] == "developer"
    assert send("dev_001", "qa_001").status_code == 201
    gone = api.delete(url("employees/qa_001"))
    assert gone.status_code == 200 and gone.json()["employee"]["status"] == "unregistered"
    assert not Connection.objects.exists()
    assert Message.objects.filter(receiver_id="qa_001").count() == 1  # messages kept
    assert api.get(url("employees"), {"status": "unregistered"}).json()["count"] == 1
    back = api.post(url("employees/register"), {"employee_id": "qa_001", "role": "qa_engineer"})
    assert back.status_code == 200 and back.json()["employee"]["status"] == "active"


def test_unknown_employee_404_everywhere(api):
    for response in (
        api.get(url("employees/ghost")),
        api.delete(url("employees/ghost")),
        api.get(url("employees/ghost/connections")),
        api.get(url("employees/ghost/messages")),
        api.post(url("employees/ghost/messages/receive"), {}),
        api.get(url("employees/ghost/conversations")),
        api.get(url("employees/ghost/stats")),
        api.post(url("employees/ghost/messages/ack"), {"ids": [str(uuid.uuid4())]}),
    ):
        error(response, 404, "not_found")


def test_unknown_route_is_json_404(api):
    error(api.get(url("nothing/here")), 404, "not_found")
    error(api.get(url("conversations/not-a-uuid/messages")), 404, "not_found")


# --- connections -------------------------------------------------------------------------------


def test_connect_is_bidirectional_and_idempotent(api, register):
    register("dev_001")
    register("qa_001", "qa_engineer")
    created = api.post(url("employees/dev_001/connect"), {"target_employee_id": "qa_001"})
    assert created.status_code == 201
    assert created.json()["connection"]["target_employee_id"] == "qa_001"
    assert api.post(url("employees/qa_001/connect"), {"target_employee_id": "dev_001"}).status_code == 200
    listed = api.get(url("employees/qa_001/connections")).json()
    assert listed["count"] == 1 and listed["connections"][0]["target_employee_id"] == "dev_001"


def test_connect_errors(api, register):
    register("dev_001")
    error(api.post(url("employees/dev_001/connect"), {"target_employee_id": "ghost"}), 404, "not_found")
    error(api.post(url("employees/ghost/connect"), {"target_employee_id": "dev_001"}), 404, "not_found")
    error(api.post(url("employees/dev_001/connect"), {"target_employee_id": "dev_001"}), 400, "invalid")
    error(api.post(url("employees/dev_001/connect"), {}), 400, "invalid")


def test_drop_connection(api, pair, send):
    assert api.delete(url("employees/qa_001/connections/dev_001")).status_code == 200
    assert api.get(url("employees/dev_001/connections")).json()["count"] == 0
    error(api.delete(url("employees/qa_001/connections/dev_001")), 404, "not_found")
    error(send("dev_001", "qa_001"), 409, "not_connected")


# --- sending -----------------------------------------------------------------------------------


def test_send_returns_201_with_the_flat_message(pair, send):
    response = send(
        "dev_001", "qa_001", message_type="task_request", action="test_code",
        data={"file_path": "src/main.py"}, priority=3, ttl_seconds=300, correlation_id="c-1",
    )  # fmt: skip
    assert response.status_code == 201
    message = response.json()["message"]
    for key in ("id", "sender_id", "receiver_id", "message_type", "action", "data", "priority", "status",
                "created_at", "expires_at", "delivery_count", "correlation_id", "conversation_id",
                "message_id", "lease_expires_at"):  # fmt: skip
        assert key in message
    assert message["status"] == "queued" and message["priority"] == 3 and message["correlation_id"] == "c-1"
    assert Message.objects.get(pk=message["id"]).data == {"file_path": "src/main.py"}  # persisted before 201


def test_send_defaults(pair, send):
    message = send("dev_001", "qa_001").json()["message"]
    assert message["priority"] == 2
    stored = Message.objects.get(pk=message["id"])
    assert (stored.expires_at - stored.created_at).total_seconds() == 300


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"priority": 0}, "priority"),
        ({"priority": 5}, "priority"),
        ({"priority": "x"}, "priority"),
        ({"priority": "3"}, "priority"),
        ({"priority": True}, "priority"),
        ({"message_type": "teleport"}, "message_type"),
        ({"ttl_seconds": 0}, "ttl_seconds"),
        ({"ttl_seconds": 7 * 24 * 3600 + 1}, "ttl_seconds"),
        ({"ttl_seconds": 10**40}, "ttl_seconds"),
        ({"ttl_seconds": "soon"}, "ttl_seconds"),
        ({"receiver_id": None}, "receiver_id"),
        ({"data": [1, 2]}, "data"),
        ({"action": "a" * 129}, "action"),
        ({"conversation_id": "nope"}, "conversation_id"),
    ],
)
def test_send_invalid_fields(pair, send, body, field):
    assert field in error(send("dev_001", "qa_001", **body), 400, "invalid")["details"]


def test_send_missing_receiver_and_bad_json(api, pair):
    body = error(api.post(url("employees/dev_001/messages"), {"message_type": "query"}), 400, "invalid")
    assert "receiver_id" in body["details"]
    error(api.post(url("employees/dev_001/messages"), "{", content_type="application/json"), 400, "invalid")


def test_extra_message_types_from_settings(pair, send, settings):
    error(send("dev_001", "qa_001", message_type="deploy_request"), 400, "invalid")
    settings.SEED_EXTRA_MESSAGE_TYPES = ["deploy_request"]
    assert send("dev_001", "qa_001", message_type="deploy_request").status_code == 201


def test_send_unknown_parties_and_not_connected(pair, send, register):
    error(send("ghost", "qa_001"), 404, "not_found")
    error(send("dev_001", "ghost"), 404, "not_found")
    register("designer_001", "designer")
    body = error(send("dev_001", "designer_001"), 409, "not_connected")
    assert "员工未连接" in body["error"]


def test_queue_full_is_429_and_stores_nothing(pair, send, settings):
    settings.SEED_MESSAGE_QUEUE_MAX_SIZE = 2
    assert send("dev_001", "qa_001").status_code == 201
    assert send("dev_001", "qa_001").status_code == 201
    body = error(send("dev_001", "qa_001", action="third"), 429, "queue_full")
    assert "消息队列已满" in body["error"]
    assert not Message.objects.filter(action="third").exists()


def test_idempotent_send(pair, send):
    first = send("dev_001", "qa_001", message_id="m-1", action="once")
    again = send("dev_001", "qa_001", message_id="m-1", action="once")
    assert first.status_code == 201 and again.status_code == 200
    assert again.json()["message"]["id"] == first.json()["message"]["id"]
    assert again.json()["message"]["message_id"] == "m-1"
    assert Message.objects.filter(action="once").count() == 1


# --- receiving, inbox, ack ----------------------------------------------------------------------


def test_receive_leases_and_empty_list_when_nothing_is_due(api, pair, send, receive):
    assert receive("qa_001") == []
    send("dev_001", "qa_001", priority=1, action="low")
    send("dev_001", "qa_001", priority=4, action="urgent")
    messages = receive("qa_001", limit=1)
    assert [m["action"] for m in messages] == ["urgent"]
    assert messages[0]["status"] == "leased" and messages[0]["delivery_count"] == 1
    assert messages[0]["lease_expires_at"]
    assert [m["action"] for m in receive("qa_001")] == ["low"]
    assert receive("qa_001") == []


def test_receive_with_empty_body_and_short_wait(api, pair, send):
    assert api.post(url("employees/qa_001/messages/receive")).json() == {"success": True, "messages": []}
    response = api.post(url("employees/qa_001/messages/receive"), {"wait": 0.05})
    assert response.status_code == 200 and response.json()["messages"] == []


@pytest.mark.parametrize("body", [{"limit": 0}, {"limit": 101}, {"limit": "x"}, {"wait": -1}, {"wait": 31},
                                  {"wait": "1"}, {"limit": 1.5}])  # fmt: skip
def test_receive_invalid(api, pair, body):
    error(api.post(url("employees/qa_001/messages/receive"), body), 400, "invalid")


def test_inbox_lists_without_side_effects(api, pair, send, receive):
    send("dev_001", "qa_001", action="a")
    send("dev_001", "qa_001", action="b")
    for _ in range(2):
        body = api.get(url("employees/qa_001/messages")).json()
        assert body["count"] == 2 and {m["status"] for m in body["messages"]} == {"queued"}
    assert len(receive("qa_001", limit=1)) == 1
    assert api.get(url("employees/qa_001/messages"), {"status": "leased"}).json()["count"] == 1
    assert api.get(url("employees/qa_001/messages"), {"limit": 1}).json()["count"] == 2
    error(api.get(url("employees/qa_001/messages"), {"status": "lost"}), 400, "invalid")


def test_ack_single_and_idempotent(api, pair, send, receive):
    send("dev_001", "qa_001")
    mid = receive("qa_001")[0]["id"]
    first = api.post(url(f"employees/qa_001/messages/{mid}/ack"))
    assert first.status_code == 200 and first.json()["message"]["status"] == "acked"
    assert api.post(url(f"employees/qa_001/messages/{mid}/ack")).status_code == 200
    assert receive("qa_001") == []


def test_ack_errors(api, pair, send, receive):
    mid = send("dev_001", "qa_001").json()["message"]["id"]
    error(api.post(url(f"employees/qa_001/messages/{uuid.uuid4()}/ack")), 404, "not_found")
    error(api.post(url(f"employees/dev_001/messages/{mid}/ack")), 404, "not_found")  # not the receiver
    error(api.post(url(f"employees/qa_001/messages/{mid}/ack")), 409, "conflict")  # queued, never received
    error(api.post(url("employees/qa_001/messages/not-a-uuid/ack")), 404, "not_found")


def test_ack_batch(api, pair, send, receive):
    for i in range(3):
        send("dev_001", "qa_001", action=f"m{i}")
    ids = [m["id"] for m in receive("qa_001")]
    response = api.post(url("employees/qa_001/messages/ack"), {"ids": ids})
    assert response.status_code == 200 and response.json()["count"] == 3
    assert Message.objects.filter(status="acked").count() == 3
    assert api.post(url("employees/qa_001/messages/ack"), {"ids": ids}).status_code == 200
    body = error(api.post(url("employees/qa_001/messages/ack"), {"ids": [ids[0], str(uuid.uuid4())]}), 404, "not_found")
    assert len(body["details"]["ids"]) == 1
    error(api.post(url("employees/qa_001/messages/ack"), {"ids": []}), 400, "invalid")
    error(api.post(url("employees/qa_001/messages/ack"), {"ids": ["x"]}), 400, "invalid")
    error(api.post(url("employees/qa_001/messages/ack"), {}), 400, "invalid")


# --- conversations -----------------------------------------------------------------------------


@pytest.fixture
def trio(pair, register):
    register("designer_001", "designer")
    return "dev_001", "qa_001", "designer_001"


def create_conversation(api, creator="dev_001", **body):
    body.setdefault("participants", ["dev_001", "qa_001", "designer_001"])
    body.setdefault("topic", "新功能开发讨论")
    return api.post(url(f"employees/{creator}/conversations"), body)


def test_create_and_list_conversations(api, trio, receive):
    response = create_conversation(api, initial_message={"content": "开始讨论新的用户界面功能"})
    assert response.status_code == 201
    conversation = response.json()["conversation"]
    assert conversation["participants"] == ["dev_001", "qa_001", "designer_001"]
    assert conversation["created_by"] == "dev_001" and conversation["topic"] == "新功能开发讨论"
    for member in ("qa_001", "designer_001"):
        [delivered] = receive(member)
        assert delivered["message_type"] == "conversation"
        assert delivered["conversation_id"] == conversation["id"]
        assert delivered["data"] == {"content": "开始讨论新的用户界面功能"}
    assert receive("dev_001") == []
    mine = api.get(url("employees/designer_001/conversations")).json()
    assert mine["count"] == 1 and mine["conversations"][0]["id"] == conversation["id"]


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"participants": ["qa_001", "designer_001"]}, 400, "invalid"),  # creator missing
        ({"participants": ["dev_001", "dev_001"]}, 400, "invalid"),  # < 2 distinct
        ({"participants": ["dev_001"]}, 400, "invalid"),
        ({"participants": "dev_001"}, 400, "invalid"),
        ({"participants": ["dev_001", "ghost"]}, 404, "not_found"),
        ({"participants": ["dev_001", *[f"e{i}" for i in range(100)]]}, 400, "invalid"),  # over the cap
        ({"initial_message": 5}, 400, "invalid"),
    ],
)
def test_create_conversation_errors(api, trio, body, status, code):
    error(create_conversation(api, **body), status, code)


def test_post_history_and_membership(api, trio, receive):
    cid = create_conversation(api, initial_message={"content": "first"}).json()["conversation"]["id"]
    posted = api.post(url(f"conversations/{cid}/messages"), {"sender_id": "qa_001", "content": "second"})
    assert posted.status_code == 201
    api.post(url(f"conversations/{cid}/messages"), {"sender_id": "designer_001", "data": {"mock": "v2"}})
    history = api.get(url(f"conversations/{cid}/messages")).json()
    assert history["count"] == 3
    assert [(p["sender_id"], p["data"]) for p in history["messages"]] == [
        ("dev_001", {"content": "first"}),
        ("qa_001", {"content": "second"}),
        ("designer_001", {"mock": "v2"}),
    ]
    assert [m["data"] for m in receive("dev_001")] == [{"content": "second"}, {"mock": "v2"}]
    api.post(url("employees/register"), {"employee_id": "outsider", "role": "manager"})
    error(api.post(url(f"conversations/{cid}/messages"), {"sender_id": "outsider", "content": "hi"}), 403, "forbidden")
    error(api.post(url(f"conversations/{cid}/messages"), {"sender_id": "ghost", "content": "hi"}), 404, "not_found")
    error(api.post(url(f"conversations/{cid}/messages"), {"sender_id": "qa_001"}), 400, "invalid")
    error(api.post(url(f"conversations/{cid}/messages"), {"sender_id": "qa_001", "data": [1]}), 400, "invalid")
    error(api.post(url(f"conversations/{cid}/messages"), {"sender_id": "qa_001", "content": "x", "priority": 7}),
          400, "invalid")  # fmt: skip
    error(api.get(url(f"conversations/{uuid.uuid4()}/messages")), 404, "not_found")
    error(api.post(url(f"conversations/{uuid.uuid4()}/messages"), {"sender_id": "qa_001", "content": "x"}),
          404, "not_found")  # fmt: skip


def test_conversation_post_is_all_or_nothing_when_a_queue_is_full(api, trio, send, settings):
    cid = create_conversation(api).json()["conversation"]["id"]
    settings.SEED_MESSAGE_QUEUE_MAX_SIZE = 1
    assert send("dev_001", "qa_001").status_code == 201  # qa_001's queue is now full
    error(api.post(url(f"conversations/{cid}/messages"), {"sender_id": "dev_001", "content": "x"}), 429, "queue_full")
    assert not Message.objects.filter(message_type="conversation").exists()
    assert api.get(url(f"conversations/{cid}/messages")).json()["count"] == 0


def test_create_with_initial_message_to_a_full_queue_creates_nothing(api, trio, send, settings):
    settings.SEED_MESSAGE_QUEUE_MAX_SIZE = 1
    send("dev_001", "qa_001")
    error(create_conversation(api, initial_message={"content": "x"}), 429, "queue_full")
    assert api.get(url("employees/dev_001/conversations")).json()["count"] == 0


def test_send_within_a_conversation_needs_both_members(api, trio, send, register, connect):
    cid = create_conversation(api, participants=["dev_001", "designer_001"]).json()["conversation"]["id"]
    error(send("dev_001", "qa_001", conversation_id=cid), 403, "forbidden")
    connect("dev_001", "designer_001")
    message = send("dev_001", "designer_001", conversation_id=cid).json()["message"]
    assert message["conversation_id"] == cid
    error(send("dev_001", "qa_001", conversation_id=str(uuid.uuid4())), 404, "not_found")


# --- stats -------------------------------------------------------------------------------------


def test_employee_stats(api, pair, send, receive):
    send("dev_001", "qa_001", priority=4)
    send("dev_001", "qa_001", priority=1)
    send("dev_001", "qa_001", priority=1)
    mid = receive("qa_001", limit=1)[0]["id"]
    api.post(url(f"employees/qa_001/messages/{mid}/ack"))
    stats = api.get(url("employees/qa_001/stats")).json()["stats"]
    assert stats["employee_id"] == "qa_001" and stats["role"] == "qa_engineer" and stats["status"] == "active"
    assert stats["connections"] == 1 and stats["conversations"] == 0
    assert stats["queue_depth"] == {"1": 2, "2": 0, "3": 0, "4": 0}
    ms = stats["message_stats"]
    assert (ms["sent"], ms["received"], ms["acked"], ms["queued"], ms["expired"], ms["dead"]) == (0, 1, 1, 2, 0, 0)
    assert api.get(url("employees/dev_001/stats")).json()["stats"]["message_stats"]["sent"] == 3


def test_system_stats(api, pair, send, register):
    register("designer_001", "designer")
    api.delete(url("employees/designer_001"))
    send("dev_001", "qa_001")
    stats = api.get(url("system/stats")).json()["stats"]
    assert stats["employees"]["total"] == 3 and stats["employees"]["active"] == 2
    assert stats["employees"]["unregistered"] == 1
    assert stats["employees"]["by_role"] == {"developer": 1, "qa_engineer": 1, "designer": 1}
    assert stats["messages"]["total"] == 1 and stats["messages"]["queued"] == 1
    assert stats["connections"] == 1 and stats["conversations"] == 0


def test_stats_query_counts_stay_small(api, pair, send, django_assert_max_num_queries):
    for _ in range(5):
        send("dev_001", "qa_001")
    with django_assert_max_num_queries(6):
        api.get(url("employees/qa_001/stats"))
    with django_assert_max_num_queries(6):
        api.get(url("system/stats"))


def test_method_not_allowed_is_json(api):
    error(api.get(url("employees/register")), 405, "method_not_allowed")


@pytest.mark.parametrize("route", ["employees", "employees/dev_001/messages", "employees/dev_001/conversations"])
def test_offset_past_sql_integers_is_400_not_500(api, route):
    # Found by .ci/fuzz: an offset over 2**63 overflowed SQLite's integers (500).
    api.post(url("employees/register"), {"employee_id": "dev_001", "role": "developer"})
    error(api.get(url(route), {"offset": 10**20}), 400, "invalid")
