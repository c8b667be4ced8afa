"""Operator tools: management commands, admin pages and actions, Celery tasks, events."""

import asyncio
import json
from datetime import timedelta
from io import StringIO

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.layers import get_channel_layer
from django.core.management import CommandError, call_command
from django.utils import timezone

from collaboration import events, services, tasks
from collaboration.models import Connection, Conversation, Employee, Message

pytestmark = pytest.mark.django_db


@pytest.fixture
def pair():
    services.employee_register(employee_id="dev_001", role="developer")
    services.employee_register(employee_id="qa_001", role="qa_engineer")
    services.connection_create(employee_id="dev_001", target_employee_id="qa_001")


def send(action=""):
    message, _ = services.message_send(sender_id="dev_001", receiver_id="qa_001", message_type="query", action=action)
    return message


def make_dead(message):
    Message.objects.filter(pk=message.pk).update(status="dead", delivery_count=5)


def run(*args) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


# --- commands ------------------------------------------------------------------------------------


def test_expire_messages_command(pair):
    send()
    Message.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    assert run("expire_messages").strip() == "expired=1 requeued=0 dead=0"
    assert Message.objects.get().status == "expired"


def test_collaboration_stats_command(pair):
    send()
    stats = json.loads(run("collaboration_stats"))
    assert stats["employees"]["total"] == 2 and stats["messages"]["queued"] == 1 and stats["connections"] == 1


def test_requeue_dead_command_all_receiver_and_ids(pair):
    services.employee_register(employee_id="designer_001", role="designer")
    services.connection_create(employee_id="dev_001", target_employee_id="designer_001")
    a, b = send("a"), send("b")
    other, _ = services.message_send(sender_id="dev_001", receiver_id="designer_001", message_type="query")
    for message in (a, b, other):
        make_dead(message)
    assert run("requeue_dead", str(a.pk)).strip() == "requeued=1"
    assert run("requeue_dead", "--receiver", "designer_001").strip() == "requeued=1"
    assert run("requeue_dead").strip() == "requeued=1"
    assert set(Message.objects.values_list("status", flat=True)) == {"queued"}
    assert Message.objects.get(pk=a.pk).delivery_count == 0
    with pytest.raises(CommandError):
        run("requeue_dead", "not-a-uuid")


# --- admin ---------------------------------------------------------------------------------------


def test_admin_pages_render(admin_client, pair):
    send()
    services.conversation_create(employee_id="dev_001", participants=["dev_001", "qa_001"], topic="t")
    conversation = Conversation.objects.get()
    for path in (
        "/admin/collaboration/employee/",
        "/admin/collaboration/connection/",
        "/admin/collaboration/message/?status__exact=queued&priority__exact=2",
        "/admin/collaboration/conversation/",
        f"/admin/collaboration/conversation/{conversation.pk}/change/",
        "/admin/collaboration/conversationpost/",
    ):
        assert admin_client.get(path).status_code == 200, path


def test_admin_expire_now_action(admin_client, pair):
    keep, expire = send("keep"), send("expire")
    response = admin_client.post(
        "/admin/collaboration/message/", {"action": "expire_now", "_selected_action": [str(expire.pk)]}, follow=True
    )
    assert "1 message(s) expired." in response.content.decode()
    assert Message.objects.get(pk=expire.pk).status == "expired"
    assert Message.objects.get(pk=keep.pk).status == "queued"


def test_admin_requeue_dead_action(admin_client, pair):
    dead, queued = send("dead"), send("queued")
    make_dead(dead)
    response = admin_client.post(
        "/admin/collaboration/message/",
        {"action": "requeue_dead", "_selected_action": [str(dead.pk), str(queued.pk)]},
        follow=True,
    )
    assert "1 dead message(s) requeued." in response.content.decode()
    assert Message.objects.get(pk=dead.pk).status == "queued"


def test_admin_rotate_token_shows_a_working_token_once_and_revoke_stops_it(admin_client, pair, settings):
    from rest_framework.test import APIClient

    settings.SEED_ALLOW_LOCAL_ANONYMOUS = False
    response = admin_client.post(
        "/admin/collaboration/employee/", {"action": "rotate_token", "_selected_action": ["qa_001"]}, follow=True
    )
    token = next(str(m) for m in response.context["messages"]).rsplit(": ", 1)[1]
    agent = APIClient()
    agent.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    assert agent.get("/api/v1/collaboration/employees/qa_001/stats").status_code == 200
    admin_client.post("/admin/collaboration/employee/", {"action": "revoke_token", "_selected_action": ["qa_001"]})
    assert agent.get("/api/v1/collaboration/employees/qa_001/stats").status_code == 401


# --- tasks ---------------------------------------------------------------------------------------


def test_expire_messages_task(pair):
    send()
    Message.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    assert tasks.expire_messages.delay() is not None  # eager in tests
    assert Message.objects.get().status == "expired"


def test_prune_connections_task(pair, settings):
    settings.SEED_CONNECTION_STALE_SECONDS = 60
    Employee.objects.filter(pk="qa_001").update(last_seen=timezone.now() - timedelta(minutes=5))
    tasks.prune_connections.delay()
    assert not Connection.objects.exists()


def test_beat_schedule_names_the_tasks(settings):
    names = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert {"collaboration.tasks.expire_messages", "collaboration.tasks.prune_connections"} <= names
    from seedproject.celery import app

    app.loader.import_default_modules()
    assert "collaboration.tasks.expire_messages" in app.tasks


# --- events --------------------------------------------------------------------------------------


def test_events_are_sent_only_after_commit(pair, django_capture_on_commit_callbacks):
    group = events.employee_group("qa_001")

    def send_and_commit():
        with django_capture_on_commit_callbacks(execute=True) as callbacks:
            message = send("hello")
        assert len(callbacks) == 1  # the message + two employee updates: one callback, one "who watches" query
        return message

    async def scenario():
        # One event loop for every layer call: channels-redis keeps its connections per loop.
        layer = get_channel_layer()
        channel = await layer.new_channel()
        await layer.group_add(group, channel)
        try:
            message = await sync_to_async(send_and_commit)()
            frames = [await asyncio.wait_for(layer.receive(channel), 5) for _ in range(2)]
        finally:
            await layer.group_discard(group, channel)
        return message, frames

    message, (first, second) = async_to_sync(scenario)()
    assert first["type"] == "message" and first["message"]["id"] == str(message.pk)
    assert second["type"] == "employee_update" and second["stats"]["message_stats"]["queued"] == 1
    assert second["seq"] == first["seq"] + 1


def test_a_send_asks_once_who_watches_its_three_events(pair, monkeypatch, django_capture_on_commit_callbacks):
    asked = []
    real = events._watched
    monkeypatch.setattr(events, "_watched", lambda layer, groups: asked.append(groups) or real(layer, groups))
    with django_capture_on_commit_callbacks(execute=True):
        send("hello")
    assert asked == [[events.employee_group("qa_001"), events.employee_group("dev_001")]]


def test_watched_names_exactly_the_groups_with_a_member():
    groups = [events.employee_group(e) for e in ("w_a", "w_b", "w_c")]

    async def scenario():
        layer = get_channel_layer()
        answers = [events._watched(layer, groups)]  # nobody
        channel = await layer.new_channel()
        await layer.group_add(groups[1], channel)
        try:
            answers.append(events._watched(layer, groups))  # some
            for group in (groups[0], groups[2]):
                await layer.group_add(group, channel)
            answers.append(events._watched(layer, groups))  # all
        finally:
            for group in groups:
                await layer.group_discard(group, channel)
        return answers

    assert async_to_sync(scenario)() == [set(), {groups[1]}, set(groups)]


def test_one_failing_event_does_not_stop_the_others(pair, monkeypatch, django_capture_on_commit_callbacks):
    real_update = events._employee_update

    def update(employee_id):
        if employee_id == "qa_001":
            raise RuntimeError("stats unavailable")
        return real_update(employee_id)

    monkeypatch.setattr(events, "_employee_update", update)

    async def scenario():
        layer = get_channel_layer()
        channels = {}
        for employee_id in ("qa_001", "dev_001"):
            channels[employee_id] = await layer.new_channel()
            await layer.group_add(events.employee_group(employee_id), channels[employee_id])
        try:

            def send_and_commit():
                with django_capture_on_commit_callbacks(execute=True):
                    send("hello")

            await sync_to_async(send_and_commit)()
            to_receiver = await asyncio.wait_for(layer.receive(channels["qa_001"]), 5)
            to_sender = await asyncio.wait_for(layer.receive(channels["dev_001"]), 5)
        finally:
            for employee_id, channel in channels.items():
                await layer.group_discard(events.employee_group(employee_id), channel)
        return to_receiver, to_sender

    to_receiver, to_sender = async_to_sync(scenario)()
    assert to_receiver["type"] == "message"
    assert to_sender["type"] == "employee_update" and to_sender["stats"]["employee_id"] == "dev_001"


def test_long_employee_ids_get_a_valid_group_name():
    short = events.employee_group("dev_001")
    assert short == "employee.dev_001"
    long_name = events.employee_group("x" * 128)
    assert len(long_name) < 100 and long_name != events.employee_group("x" * 127 + "y")
