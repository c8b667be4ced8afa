"""Management commands of the instances app."""

import json
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from instances.models import Instance, InstanceEvent

pytestmark = pytest.mark.django_db


def run(*args):
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_register_instance_probes_and_registers(health_server):
    output = json.loads(run("register_instance", "--host", "127.0.0.1", "--port", str(health_server), "--weight", "3"))
    assert output["created"] is True
    instance = Instance.objects.get(pk=output["instance"]["id"])
    assert (instance.port, instance.weight, instance.status) == (health_server, 3, "active")
    assert InstanceEvent.objects.get(instance=instance).actor == "command"


def test_register_instance_no_verify_with_metadata():
    output = json.loads(
        run("register_instance", "--host", "10.0.0.5", "--port", "8001", "--no-verify", "--metadata", '{"v": "1"}')
    )
    assert output["instance"]["metadata"] == {"v": "1"}
    assert Instance.objects.get().host == "10.0.0.5"


def test_register_instance_unreachable_is_a_command_error(closed_port):
    with pytest.raises(CommandError, match="Connection refused"):
        run("register_instance", "--host", "127.0.0.1", "--port", str(closed_port))
    assert not Instance.objects.exists()


def test_register_instance_bad_metadata():
    with pytest.raises(CommandError, match="metadata"):
        run("register_instance", "--host", "127.0.0.1", "--port", "8001", "--no-verify", "--metadata", "{nope")
    with pytest.raises(CommandError, match="metadata"):
        run("register_instance", "--host", "127.0.0.1", "--port", "8001", "--no-verify", "--metadata", "[1]")


def test_deregister_by_id_and_by_address(make_instance):
    first = make_instance(9001)
    make_instance(9002)
    assert "127.0.0.1:9001" in run("deregister_instance", str(first.pk))
    assert "127.0.0.1:9002" in run("deregister_instance", "127.0.0.1:9002")
    assert not Instance.objects.exists()
    assert InstanceEvent.objects.filter(kind="deregistered", actor="command").count() == 2


def test_deregister_unknown_is_a_command_error():
    with pytest.raises(CommandError, match="not found"):
        run("deregister_instance", "127.0.0.1:9999")
    with pytest.raises(CommandError, match="not found"):
        run("deregister_instance", "nonsense")


def test_cluster_stats_prints_the_seed_keys(make_instance):
    make_instance(9001)
    stats = json.loads(run("cluster_stats"))
    assert stats["total_instances"] == 1
    assert stats["healthy_instances"] == 1
    assert stats["load_balance_strategy"] == "round_robin"


def test_check_instances_runs_a_pass(health_server, closed_port, make_instance, silent):
    silent(make_instance(health_server))
    stale = make_instance(closed_port)
    Instance.objects.filter(pk=stale.pk).update(last_heartbeat=timezone.now() - timedelta(minutes=5))
    assert json.loads(run("check_instances")) == {"checked": 2, "passed": 1, "failed": 1, "changed": 1}
    stale.refresh_from_db()
    assert stale.status == "unhealthy"
    assert InstanceEvent.objects.get(instance=stale, kind="status_changed").actor == "command"
