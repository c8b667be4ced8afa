"""Domain services: health passes against a real loopback server, heartbeats, picks, cluster config."""

from datetime import timedelta

import pytest
from django.utils import timezone

from instances import probing, selectors, services
from instances.manager import MultiInstanceManager
from instances.models import ClusterConfig, Instance, InstanceEvent
from instances.tasks import check_instances
from seedproject.errors import InstanceUnreachable, InvalidInput, NoHealthyInstance, NotFound

pytestmark = pytest.mark.django_db


def later(seconds):
    return timezone.now() + timedelta(seconds=seconds)


def test_probe_passes_on_2xx(health_server):
    assert probing.probe(f"http://127.0.0.1:{health_server}/health", timeout=1) == probing.ProbeResult(True, "", 200)


def test_probe_does_not_follow_redirects(health_server):
    result = probing.probe(f"http://127.0.0.1:{health_server}/redirect", timeout=1)
    assert not result.ok
    assert result.status_code == 302
    assert "redirect" in result.cause


def test_probe_reports_connection_refused(closed_port):
    assert probing.probe(f"http://127.0.0.1:{closed_port}/health", timeout=1).cause == "Connection refused"


def test_register_with_verify_fails_with_the_cause(closed_port):
    with pytest.raises(InstanceUnreachable) as caught:
        services.instance_register(host="127.0.0.1", port=closed_port)
    assert caught.value.message == "Instance registration failed (实例注册失败): Connection refused"
    assert caught.value.details["cause"] == "Connection refused"


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_a_registration_holds_no_pooled_connection_while_it_probes(health_server, monkeypatch):
    from django.db import connection

    held_while_probing = []
    real_probe = probing.probe_address

    def probe_address(*args, **kwargs):
        held_while_probing.append(connection.connection is not None)
        return real_probe(*args, **kwargs)

    monkeypatch.setattr(probing, "probe_address", probe_address)
    assert Instance.objects.count() == 0  # the request's earlier queries (its token lookup) hold a connection
    instance, created = services.instance_register(host="127.0.0.1", port=health_server)
    assert created and instance.last_probe_ok is not None
    assert held_while_probing == [False]  # a slow instance cannot tie up the pool's few connections


def test_registration_records_an_event(make_instance):
    instance = make_instance(9001)
    event = InstanceEvent.objects.get(instance=instance)
    assert (event.kind, event.to_status, event.actor, event.address) == (
        "registered",
        "active",
        "api",
        "127.0.0.1:9001",
    )


def test_health_pass_with_passing_probe(health_server, make_instance, silent):
    instance = silent(make_instance(health_server))
    counts = services.instances_check_health()
    assert counts == {"checked": 1, "passed": 1, "failed": 0, "changed": 0}
    instance.refresh_from_db()
    assert instance.last_probe_ok is not None
    assert instance.status == "active"


def test_health_pass_redirect_is_a_failed_probe(health_server, make_instance, silent):
    instance = silent(make_instance(health_server, health_check_path="/redirect"))
    assert services.instances_check_health() == {"checked": 1, "passed": 0, "failed": 1, "changed": 0}
    instance.refresh_from_db()
    assert instance.last_probe_ok is None


def test_stale_instance_becomes_unhealthy_with_an_event(closed_port, make_instance):
    instance = make_instance(closed_port)
    assert services.instances_check_health()["changed"] == 0  # just registered: fresh
    counts = services.instances_check_health(now=later(31))
    assert counts == {"checked": 1, "passed": 0, "failed": 1, "changed": 1}
    instance.refresh_from_db()
    assert instance.status == "unhealthy"
    event = InstanceEvent.objects.get(instance=instance, kind="status_changed")
    assert (event.from_status, event.to_status, event.actor) == ("active", "unhealthy", "health_check")
    assert event.reason == "no heartbeat or passing probe for 30 s"
    with pytest.raises(NoHealthyInstance):
        services.instance_select()
    # A second pass does not record the change again.
    assert services.instances_check_health(now=later(62))["changed"] == 0


def test_passing_probe_keeps_an_instance_fresh_and_recovers_it(health_server, make_instance):
    instance = make_instance(health_server)
    Instance.objects.filter(pk=instance.pk).update(
        status="unhealthy", last_heartbeat=timezone.now() - timedelta(hours=1)
    )
    counts = services.instances_check_health(now=later(3600))
    assert counts["changed"] == 1
    instance.refresh_from_db()
    assert instance.status == "active"
    event = InstanceEvent.objects.get(instance=instance, kind="status_changed")
    assert (event.from_status, event.to_status, event.reason) == ("unhealthy", "active", "recovered: passing probe")


def test_heartbeat_recovers_an_unhealthy_instance(closed_port, make_instance):
    instance = make_instance(closed_port)
    services.instances_check_health(now=later(31))
    recovered = services.instance_heartbeat(instance_id=instance.pk, connections=3)
    assert recovered.status == "active"
    assert recovered.connections == 3
    assert services.instance_select()[0].pk == instance.pk


@pytest.mark.parametrize("status", ["draining", "disabled"])
def test_operator_statuses_are_not_probed_or_changed(closed_port, make_instance, status):
    instance = make_instance(closed_port)
    services.instance_update(instance_id=instance.pk, status=status)
    assert services.instances_check_health(now=later(3600))["checked"] == 0
    instance.refresh_from_db()
    assert instance.status == status


def test_heartbeat_is_one_statement(make_instance, django_assert_num_queries):
    # Was two (UPDATE, then a SELECT to read the row back); now one UPDATE … RETURNING.
    instance = make_instance(9001)
    with django_assert_num_queries(1) as captured:
        beat = services.instance_heartbeat(instance_id=instance.pk, cpu_usage=1.0, memory_usage=2.0, connections=3)
    assert captured.captured_queries[0]["sql"].startswith("UPDATE")
    assert (beat.pk, beat.host, beat.port, beat.status) == (instance.pk, "127.0.0.1", 9001, "active")
    assert (beat.cpu_usage, beat.memory_usage, beat.connections, beat.picks_since_heartbeat) == (1.0, 2.0, 3, 0)
    assert beat.metadata == {} and beat.last_heartbeat > instance.last_heartbeat
    instance.refresh_from_db()
    assert (instance.cpu_usage, instance.connections, instance.last_heartbeat) == (1.0, 3, beat.last_heartbeat)


def test_heartbeat_resets_picks(make_instance):
    a, b = make_instance(9001).pk, make_instance(9002).pk
    picks = [services.instance_select(strategy="least_connections")[0].pk for _ in range(4)]
    assert picks == [a, b, a, b]
    assert services.instance_heartbeat(instance_id=a, connections=0).picks_since_heartbeat == 0
    # a counts as 0 again (b has 2 picks): a, a, then a wins the tie at 2, then b.
    picks = [services.instance_select(strategy="least_connections")[0].pk for _ in range(4)]
    assert picks == [a, a, a, b]


def test_heartbeat_resets_the_picks_counted_in_the_row_in_sql(make_instance, sql_picks):
    instance = make_instance(9001)
    services.instance_select(strategy="least_connections")
    services.instance_select(strategy="least_connections")
    instance.refresh_from_db()
    assert instance.picks_since_heartbeat == 2
    assert services.instance_heartbeat(instance_id=instance.pk).picks_since_heartbeat == 0


def test_heartbeat_unknown_is_not_found():
    with pytest.raises(NotFound):
        services.instance_heartbeat(instance_id="0b7f7f3e-0000-4000-8000-000000000000")
    with pytest.raises(NotFound):
        services.instance_heartbeat(instance_id="garbage")


def test_select_is_one_query_by_primary_key_once_the_process_knows_the_registry(
    make_instance, django_assert_num_queries
):
    make_instance(9001)
    make_instance(9002)
    services.instance_select(strategy="round_robin")  # loads this process's copy of the active ids
    with django_assert_num_queries(1) as captured:
        services.instance_select(strategy="round_robin")
    sql = captured.captured_queries[0]["sql"].upper()
    assert "OFFSET" not in sql and "COUNT(" not in sql  # no walk to a position: it grew with the registry


def test_health_pass_publishes_one_update(closed_port, make_instance, django_capture_on_commit_callbacks):
    make_instance(closed_port)
    make_instance(closed_port + 1 if closed_port < 65535 else closed_port - 1)
    with django_capture_on_commit_callbacks() as callbacks:
        services.instances_check_health(now=later(31))
    publishes = [c for c in callbacks if c.__name__ == "_send_cluster_update"]
    assert len(publishes) == 1


def test_config_timeout_changes_what_is_stale(closed_port, make_instance):
    instance = make_instance(closed_port)
    services.cluster_config_update(instance_timeout=120)
    assert services.instances_check_health(now=later(60))["changed"] == 0
    services.cluster_config_update(reset=["instance_timeout"])
    assert services.instances_check_health(now=later(60))["changed"] == 1
    instance.refresh_from_db()
    assert instance.status == "unhealthy"


def test_config_heartbeat_interval_drives_the_beat_schedule():
    assert selectors.heartbeat_interval_seconds() == 10.0
    services.cluster_config_update(heartbeat_interval=3)
    assert selectors.heartbeat_interval_seconds() == 3.0
    assert ClusterConfig.objects.count() == 1


def test_config_strategy_changes_the_default_pick(make_instance):
    make_instance(9001)
    services.cluster_config_update(load_balance_strategy="least_connections")
    assert services.instance_select()[1] == "least_connections"


def test_config_rejects_a_timeout_not_above_the_interval():
    with pytest.raises(InvalidInput) as caught:
        services.cluster_config_update(heartbeat_interval=30, instance_timeout=30)
    assert "instance_timeout" in caught.value.details
    assert selectors.cluster_config_get()["heartbeat_interval"] == 10


def test_update_refuses_unhealthy_status(make_instance):
    instance = make_instance(9001)
    with pytest.raises(InvalidInput):
        services.instance_update(instance_id=instance.pk, status="unhealthy")


def test_check_instances_task_runs_one_pass(health_server, make_instance, silent):
    silent(make_instance(health_server))
    assert check_instances.delay().get() == {"checked": 1, "passed": 1, "failed": 0, "changed": 0}


def test_manager_is_a_thin_entry_point(health_server):
    manager = MultiInstanceManager(heartbeat_interval=5, instance_timeout=20, load_balance_strategy="weighted")
    instance = manager.register_instance("127.0.0.1", health_server, weight=2)
    assert manager.heartbeat(instance.pk, cpu_usage=10.0).cpu_usage == 10.0
    assert manager.get_instance().pk == instance.pk
    assert manager.select()[1] == "weighted"
    assert manager.cluster_stats()["healthy_instances"] == 1
    assert manager.check_instances()["checked"] == 0  # it just heartbeated: nothing to probe
    config = manager.save_config()
    assert (config["load_balance_strategy"], config["heartbeat_interval"], config["instance_timeout"]) == (
        "weighted",
        5,
        20,
    )
    manager.deregister_instance(instance.pk)
    assert manager.cluster_stats()["total_instances"] == 0


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_a_heartbeat_commits_without_waiting_for_the_disk_but_only_on_its_own(make_instance):
    from django.db import connection, transaction
    from django.test.utils import CaptureQueriesContext

    instance = make_instance(9001)
    with CaptureQueriesContext(connection) as own:
        services.instance_heartbeat(instance_id=instance.pk, cpu_usage=12.5)
    (statement,) = [q["sql"] for q in own.captured_queries if "UPDATE" in q["sql"]]
    assert statement.startswith("BEGIN; SET LOCAL synchronous_commit TO OFF; UPDATE")
    assert Instance.objects.get(pk=instance.pk).cpu_usage == 12.5  # committed
    with connection.cursor() as cursor:  # and the setting did not outlive that transaction
        cursor.execute("SHOW synchronous_commit")
        assert cursor.fetchone()[0] == "on"

    # Inside a caller's transaction it is a plain statement of that transaction, rolled back with it.
    with pytest.raises(RuntimeError), transaction.atomic(), CaptureQueriesContext(connection) as inside:
        services.instance_heartbeat(instance_id=instance.pk, cpu_usage=99.0)
        raise RuntimeError("caller fails")
    assert not any("synchronous_commit" in q["sql"] for q in inside.captured_queries)
    assert Instance.objects.get(pk=instance.pk).cpu_usage == 12.5


def test_a_health_pass_probes_only_instances_whose_sign_of_life_could_go_stale(
    closed_port, health_server, make_instance, silent
):
    heartbeating = make_instance(health_server)
    services.instance_heartbeat(instance_id=heartbeating.pk)
    quiet = silent(make_instance(health_server, host="localhost"), seconds=12)
    gone = silent(make_instance(closed_port), seconds=40)
    Instance.objects.filter(pk=gone.pk).update(status="unhealthy")
    probed = []
    original = probing.probe_many

    def recording(targets, **kwargs):
        probed.extend(port for _, port, _ in targets)
        return original(targets, **kwargs)

    import unittest.mock

    with unittest.mock.patch.object(probing, "probe_many", recording):
        counts = services.instances_check_health()
    # quiet: silent 12 s, due (30 - 2 x 10 = 10 s); gone: unhealthy, probed for its way back; the
    # heartbeating one could not go stale before the next passes and is left alone.
    assert sorted(probed) == sorted([quiet.port, gone.port])
    assert counts == {"checked": 2, "passed": 1, "failed": 1, "changed": 0}


def test_probe_due_age_leaves_one_interval_of_margin():
    from instances.health import probe_due_age

    assert probe_due_age(30, 10) == 10
    assert probe_due_age(25, 15) == 0  # timeout under two intervals: every pass probes, as before
