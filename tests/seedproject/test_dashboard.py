"""The operators' dashboard pages: who may see them, and what they show."""

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import User

from collaboration import services as collaboration
from instances.services import instance_register
from seedproject.asgi import application

pytestmark = pytest.mark.django_db


@pytest.fixture
def cluster_with_data():
    instance_register(host="127.0.0.1", port=9101, weight=3, verify=False)
    collaboration.employee_register(employee_id="dev_001", role="developer")
    collaboration.employee_register(employee_id="qa_001", role="qa_engineer")
    collaboration.connection_create(employee_id="dev_001", target_employee_id="qa_001")
    collaboration.message_send(
        sender_id="dev_001", receiver_id="qa_001", message_type="task_request", action="test_code", priority=4
    )


def test_loopback_operator_sees_the_cluster_page_in_local_anonymous_mode(client, settings, cluster_with_data):
    settings.SEED_ALLOW_LOCAL_ANONYMOUS = True
    response = client.get("/dashboard/", REMOTE_ADDR="127.0.0.1")
    assert response.status_code == 200
    page = response.content.decode()
    assert "http://127.0.0.1:9101" in page
    assert 'data-status="active"' in page
    assert "/api/v1/multi-instance/monitor" in page  # it goes live from the monitor socket


def test_employees_page_shows_queue_depth_by_priority_and_recent_messages(client, settings, cluster_with_data):
    settings.SEED_ALLOW_LOCAL_ANONYMOUS = True
    page = client.get("/dashboard/employees/", REMOTE_ADDR="127.0.0.1").content.decode()
    assert 'data-employee-id="qa_001"' in page
    row = page[page.index('data-employee-id="qa_001"') :].split("</tr>")[0]
    assert "<td>1</td><td>0</td><td>0</td><td>0</td>" in row  # one urgent message waiting
    assert "test_code" in page


@pytest.mark.parametrize("path", ["/dashboard/", "/dashboard/employees/"])
def test_anonymous_visitors_are_sent_to_log_in_outside_local_mode(client, settings, path):
    settings.SEED_ALLOW_LOCAL_ANONYMOUS = False
    response = client.get(path, REMOTE_ADDR="127.0.0.1")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_a_remote_address_is_never_local_anonymous(client, settings):
    settings.SEED_ALLOW_LOCAL_ANONYMOUS = True
    response = client.get("/dashboard/", REMOTE_ADDR="10.1.2.3")
    assert response.status_code == 302


def test_staff_see_the_dashboard_anywhere_and_other_users_do_not(client, settings):
    settings.SEED_ALLOW_LOCAL_ANONYMOUS = False
    user = User.objects.create_user("ops", password="pw", is_staff=False)
    client.force_login(user)
    assert client.get("/dashboard/", REMOTE_ADDR="10.1.2.3").status_code == 302
    user.is_staff = True
    user.save()
    assert client.get("/dashboard/", REMOTE_ADDR="10.1.2.3").status_code == 200


async def _overview_frame() -> dict:
    communicator = WebsocketCommunicator(application, "/api/v1/collaboration/monitor")
    connected, _ = await communicator.connect()
    assert connected
    frame = await communicator.receive_json_from(timeout=5)
    await communicator.disconnect()
    return frame


@pytest.mark.django_db(transaction=True)
def test_the_collaboration_monitor_sends_the_operators_overview(cluster_with_data):
    frame = async_to_sync(_overview_frame)()
    assert frame["type"] == "collaboration_update"
    depth = {e["employee_id"]: e["queue_depth"] for e in frame["employees"]}
    assert depth["qa_001"] == {"1": 0, "2": 0, "3": 0, "4": 1}
    assert [m["action"] for m in frame["messages"]] == ["test_code"]
    assert frame["stats"]["employees"]["total"] == 2
