"""Admin: each action does what it says, through the services."""

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from instances.models import ClusterConfig, Instance, InstanceEvent

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/instances/instance/"


@pytest.fixture
def admin_client(client):
    user = get_user_model().objects.create_superuser("root", "root@example.com", "pw")
    client.force_login(user)
    return client


def act(client, action, *instances):
    return client.post(CHANGELIST, {"action": action, "_selected_action": [str(i.pk) for i in instances]}, follow=True)


def messages_of(response):
    return [str(m) for m in response.context["messages"]]


def test_changelist_and_filters_render(admin_client, make_instance):
    make_instance(9001)
    response = admin_client.get(CHANGELIST + "?status__exact=active&q=127.0.0.1")
    assert response.status_code == 200
    assert b"127.0.0.1:9001" in response.content


@pytest.mark.parametrize(("action", "status"), [("drain", "draining"), ("disable", "disabled")])
def test_drain_and_disable(admin_client, make_instance, action, status):
    a, b = make_instance(9001), make_instance(9002)
    response = act(admin_client, action, a, b)
    assert "2 instance(s)" in messages_of(response)[0]
    assert set(Instance.objects.values_list("status", flat=True)) == {status}
    assert InstanceEvent.objects.filter(kind="status_changed", actor="admin", to_status=status).count() == 2


def test_enable(admin_client, make_instance):
    instance = make_instance(9001)
    Instance.objects.filter(pk=instance.pk).update(status="disabled")
    act(admin_client, "enable", instance)
    instance.refresh_from_db()
    assert instance.status == "active"


def test_probe_now(admin_client, health_server, make_instance):
    instance = make_instance(health_server)
    Instance.objects.filter(pk=instance.pk).update(
        status="unhealthy", last_heartbeat=timezone.now() - timedelta(hours=1)
    )
    response = act(admin_client, "probe_now", instance)
    assert "Probed 1: 1 passed, 0 failed, 1 changed" in messages_of(response)[0]
    instance.refresh_from_db()
    assert instance.status == "active"
    assert instance.last_probe_ok is not None


def test_deregister(admin_client, make_instance):
    a, b = make_instance(9001), make_instance(9002)
    response = act(admin_client, "deregister", a)
    assert "1 instance(s) deregistered" in messages_of(response)[0]
    assert list(Instance.objects.values_list("pk", flat=True)) == [b.pk]
    assert InstanceEvent.objects.get(kind="deregistered").actor == "admin"


def test_bulk_delete_is_not_offered(admin_client, make_instance):
    make_instance(9001)
    assert b"delete_selected" not in admin_client.get(CHANGELIST).content


def test_change_form_saves_through_the_service(admin_client, make_instance):
    instance = make_instance(9001)
    url = f"{CHANGELIST}{instance.pk}/change/"
    assert admin_client.get(url).status_code == 200
    response = admin_client.post(url, {"status": "draining", "weight": "4", "metadata": "{}"})
    assert response.status_code == 302
    instance.refresh_from_db()
    assert (instance.status, instance.weight) == ("draining", 4)
    assert InstanceEvent.objects.get(kind="status_changed").actor == "admin"
    refused = admin_client.post(url, {"status": "unhealthy", "weight": "4", "metadata": "{}"})
    assert refused.status_code == 200  # the form comes back with an error
    instance.refresh_from_db()
    assert instance.status == "draining"


def test_events_are_read_only(admin_client, make_instance):
    make_instance(9001)
    response = admin_client.get("/admin/instances/instanceevent/")
    assert response.status_code == 200
    assert b"127.0.0.1:9001" in response.content
    event = InstanceEvent.objects.get()
    assert admin_client.post(f"/admin/instances/instanceevent/{event.pk}/delete/", {"post": "yes"}).status_code == 403
    assert InstanceEvent.objects.count() == 1


def test_cluster_config_is_editable_and_validated(admin_client):
    response = admin_client.post(
        "/admin/instances/clusterconfig/add/",
        {"load_balance_strategy": "weighted", "heartbeat_interval": "5", "instance_timeout": ""},
    )
    assert response.status_code == 302
    config = ClusterConfig.objects.get()
    assert (config.load_balance_strategy, config.heartbeat_interval, config.instance_timeout) == ("weighted", 5, None)
    url = f"/admin/instances/clusterconfig/{config.pk}/change/"
    bad = admin_client.post(
        url, {"load_balance_strategy": "fastest", "heartbeat_interval": "5", "instance_timeout": ""}
    )
    assert bad.status_code == 200
    assert b"Unknown load-balancing strategy" in bad.content
    too_short = admin_client.post(
        url, {"load_balance_strategy": "", "heartbeat_interval": "50", "instance_timeout": "40"}
    )
    assert too_short.status_code == 200
    config.refresh_from_db()
    assert config.load_balance_strategy == "weighted"


def test_rotate_token_shows_a_working_token_once_and_revoke_stops_it(admin_client, make_instance, api, settings):
    settings.SEED_ALLOW_LOCAL_ANONYMOUS = False
    instance = make_instance(9001)
    response = act(admin_client, "rotate_token", instance)
    token = messages_of(response)[0].rsplit(": ", 1)[1]
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    assert api.post(f"/api/v1/multi-instance/instances/{instance.pk}/heartbeat", {}).status_code == 200
    act(admin_client, "revoke_token", instance)
    assert api.post(f"/api/v1/multi-instance/instances/{instance.pk}/heartbeat", {}).status_code == 401
