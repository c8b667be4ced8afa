"""How messages are stored on PostgreSQL: where a status change writes, and which plans the queue's reads get.

Marker ``services``: PostgreSQL-only properties (the table's fill factor, partial indexes, the planner's
choices on stale statistics). Each test builds enough rows that the wrong layout or plan would show.
"""

import json
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from collaboration import services
from collaboration.models import Message

pytestmark = [pytest.mark.services, pytest.mark.django_db]


def _messages(receivers: list[str], per_receiver: int, **fields) -> None:
    now = timezone.now()
    Message.objects.bulk_create(
        (
            Message(
                sender_id="boss",
                receiver_id=receiver,
                message_type="notification",
                action="bench",
                data={"file_path": "src/module.py", "n": n},
                created_at=now,
                expires_at=now + timedelta(hours=1),
                **fields,
            )
            for receiver in receivers
            for n in range(per_receiver)
        ),
        batch_size=2000,
    )


def _employees(*ids: str) -> None:
    for employee_id in ids:
        services.employee_register(employee_id=employee_id, role="developer")


def _heap_page(message_id) -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT (ctid::text::point)[0] FROM collaboration_message WHERE id = %s", [message_id])
        return int(cursor.fetchone()[0])


def _plan(sql: str, params: list | None = None) -> list[dict]:
    """Every node of the plan PostgreSQL chooses for ``sql`` (EXPLAIN, nothing is run)."""
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
        (raw,) = cursor.fetchone()
    root = (json.loads(raw) if isinstance(raw, str) else raw)[0]["Plan"]
    nodes, todo = [], [root]
    while todo:
        node = todo.pop()
        nodes.append(node)
        todo.extend(node.get("Plans", []))
    return nodes


def _message_scans(nodes: list[dict]) -> list[dict]:
    return [n for n in nodes if n.get("Relation Name") == "collaboration_message" or "Index Name" in n]


def test_a_status_change_keeps_the_message_on_its_page():
    # With every page packed full, a message's new row version (expired, leased, acked) must move to another
    # page: two heap pages written and a row-lock record for the move. The table keeps room on each page.
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE collaboration_message")  # fresh pages (undone with the test's transaction)
    _employees("boss", "qa_001")
    _messages(["qa_001"], 300)
    with connection.cursor() as cursor:
        cursor.execute("SELECT id FROM collaboration_message WHERE (ctid::text::point)[0] = 0 ORDER BY ctid")
        first_page = [row[0] for row in cursor.fetchall()]
    assert Message.objects.count() > 2 * len(first_page)  # page 0 was filled as far as new rows may fill it
    target = first_page[len(first_page) // 2]
    Message.objects.filter(pk=target).update(expires_at=timezone.now() - timedelta(seconds=1))
    # That UPDATE already wrote one new version of the row; the sweep writes the next.
    page_before_sweep = _heap_page(target)
    assert services.messages_expire() == {"expired": 1, "requeued": 0, "dead": 0}
    assert Message.objects.get(pk=target).status == "expired"
    assert page_before_sweep == 0
    assert _heap_page(target) == 0


def test_a_sends_room_count_reads_only_its_receivers_messages_on_stale_statistics():
    # Statistics taken while every message had expired say nothing lives past now; then the messages got
    # fresh TTLs. The room count (receiver, live, expires_at > now) must still go by the receiver, not
    # count every receiver's live messages on each send (what a partial index on expires_at alone drew it to).
    receivers = [f"r{i:02d}" for i in range(50)]
    _employees("boss", *receivers)
    _messages(receivers, 400)
    Message.objects.update(expires_at=timezone.now() - timedelta(minutes=10))
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE collaboration_message")
    Message.objects.update(expires_at=timezone.now() + timedelta(hours=1))
    message = Message(receiver_id="r07", created_at=timezone.now())
    condition, params = services._room_sql(message, 1000)

    scans = _message_scans(_plan(f"SELECT {condition}", params))

    assert scans, "the room count reads no messages?"
    for scan in scans:
        assert scan["Node Type"] != "Seq Scan", scan
        assert "receiver_id" in scan.get("Index Cond", ""), scan


def test_the_sweep_reads_only_live_messages_not_the_history():
    # A long history of acked messages and a few live ones: each sweep pass must find what is due from the
    # live messages' index entries, never by reading the history.
    receivers = [f"r{i:02d}" for i in range(20)]
    _employees("boss", *receivers)
    _messages(receivers, 1000, status="acked", delivery_count=1)
    _messages(receivers, 10)
    Message.objects.filter(status="queued", data__n__lt=3).update(expires_at=timezone.now() - timedelta(seconds=1))
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE collaboration_message")
    with CaptureQueriesContext(connection) as captured:
        assert services.messages_expire()["expired"] == 60
    expiry = captured.captured_queries[0]["sql"]  # the first batch of the TTL pass, as it was sent

    scans = _message_scans(_plan(expiry))

    assert {s["Index Name"] for s in scans if "Index Name" in s} == {"collab_msg_ttl_live"}
    allowed = {"ModifyTable", "Tid Scan", "Bitmap Heap Scan", "Bitmap Index Scan", "Index Scan"}
    assert {s["Node Type"] for s in scans} <= allowed
