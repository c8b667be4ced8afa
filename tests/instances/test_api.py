"""The multi-instance REST routes: every route, every error code."""

import uuid

import pytest

from instances.models import Instance, InstanceEvent

pytestmark = pytest.mark.django_db

BASE = "/api/v1/multi-instance"


def register(api, port, **body):
    return api.post(f"{BASE}/instances", {"host": "127.0.0.1", "port": port, "verify": False, **body})


def assert_error(response, status, code):
    assert response.status_code == status, response.content
    body = response.json()
    assert body["success"] is False
    assert body["code"] == code
    assert isinstance(body["error"], str) and body["error"]
    assert isinstance(body["details"], dict)
    return body


# --- register ----------------------------------------------------------------------------------


def test_register_probes_then_creates(api, health_server):
    response = api.post(
        f"{BASE}/instances",
        {"host": "127.0.0.1", "port": health_server, "weight": 2, "metadata": {"version": "1.0.0"}},
    )
    assert response.status_code == 201
    instance = response.json()["instance"]
    assert response.json()["success"] is True
    assert instance["host"] == "127.0.0.1"
    assert instance["port"] == health_server
    assert instance["url"] == f"http://127.0.0.1:{health_server}"
    assert instance["weight"] == 2
    assert instance["status"] == "active"
    assert instance["metadata"] == {"version": "1.0.0"}
    assert instance["health_check_path"] == "/health"
    assert instance["last_heartbeat"] is not None
    assert instance["last_probe_ok"] is not None
    uuid.UUID(instance["id"])


def test_register_unreachable_is_502_with_the_cause(api, closed_port):
    body = assert_error(
        api.post(f"{BASE}/instances", {"host": "127.0.0.1", "port": closed_port}), 502, "instance_unreachable"
    )
    assert "Connection refused" in body["error"]
    assert body["details"]["cause"] == "Connection refused"
    assert not Instance.objects.exists()


def test_register_failing_health_endpoint_is_502(api, health_server):
    body = assert_error(
        api.post(f"{BASE}/instances", {"host": "127.0.0.1", "port": health_server, "health_check_path": "/broken"}),
        502,
        "instance_unreachable",
    )
    assert "HTTP 500" in body["details"]["cause"]


def test_reregistration_is_idempotent(api):
    first = register(api, 9001, weight=1)
    again = register(api, 9001, weight=5, metadata={"v": 2})
    assert first.status_code == 201
    assert again.status_code == 200
    assert again.json()["instance"]["id"] == first.json()["instance"]["id"]
    assert again.json()["instance"]["weight"] == 5
    assert again.json()["instance"]["metadata"] == {"v": 2}
    assert Instance.objects.count() == 1


def test_ipv6_host_gets_a_bracketed_url(api):
    response = api.post(f"{BASE}/instances", {"host": "::1", "port": 9001, "verify": False})
    assert response.status_code == 201
    assert response.json()["instance"]["url"] == "http://[::1]:9001"


def test_unhealthy_instance_that_reregisters_is_active_again(api):
    instance_id = register(api, 9001).json()["instance"]["id"]
    Instance.objects.filter(pk=instance_id).update(status="unhealthy")
    assert register(api, 9001).json()["instance"]["status"] == "active"
    event = InstanceEvent.objects.filter(instance_id=instance_id, kind="status_changed").get()
    assert (event.from_status, event.to_status) == ("unhealthy", "active")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"port": 8000}, "host"),
        ({"host": "127.0.0.1"}, "port"),
        ({"host": "127.0.0.1", "port": 0}, "port"),
        ({"host": "127.0.0.1", "port": 65536}, "port"),
        ({"host": "127.0.0.1", "port": "abc"}, "port"),
        ({"host": "127.0.0.1", "port": 10**40}, "port"),
        ({"host": "127.0.0.1", "port": True}, "port"),
        ({"host": "127.0.0.1", "port": 80.5}, "port"),
        ({"host": "127.0.0.1", "port": 8000, "weight": 0}, "weight"),
        ({"host": "127.0.0.1", "port": 8000, "weight": 1001}, "weight"),
        ({"host": "127.0.0.1", "port": 8000, "metadata": [1, 2]}, "metadata"),
        ({"host": "127.0.0.1", "port": 8000, "metadata": "x"}, "metadata"),
        ({"host": "evil.com/path?", "port": 8000}, "host"),
        ({"host": "user@host", "port": 8000}, "host"),
        ({"host": ["a"], "port": 8000}, "host"),
        ({"host": "::::zz", "port": 8000}, "host"),
        ({"host": "a" * 300, "port": 8000}, "host"),
        ({"host": "127.0.0.1", "port": 8000, "health_check_path": "health"}, "health_check_path"),
        ({"host": "127.0.0.1", "port": 8000, "health_check_path": "/a b"}, "health_check_path"),
        ({"host": "127.0.0.1", "port": 8000, "verify": "maybe"}, "verify"),
    ],
)
def test_register_invalid_fields(api, body, field):
    result = assert_error(api.post(f"{BASE}/instances", body), 400, "invalid")
    assert field in result["details"]
    assert not Instance.objects.exists()


def test_register_bad_json_is_400(api):
    response = api.post(f"{BASE}/instances", "{not json", content_type="application/json")
    assert_error(response, 400, "invalid")


def test_register_non_object_body_is_400(api):
    assert_error(api.post(f"{BASE}/instances", [1, 2]), 400, "invalid")


# --- list / read / update / delete -------------------------------------------------------------


def test_list_with_status_filter_and_paging(api):
    ids = [register(api, 9001 + i).json()["instance"]["id"] for i in range(3)]
    api.patch(f"{BASE}/instances/{ids[1]}", {"status": "draining"})
    everything = api.get(f"{BASE}/instances").json()
    assert everything["success"] is True
    assert everything["count"] == 3
    assert [i["id"] for i in everything["instances"]] == ids
    draining = api.get(f"{BASE}/instances?status=draining").json()
    assert [i["id"] for i in draining["instances"]] == [ids[1]]
    assert draining["count"] == 1
    page = api.get(f"{BASE}/instances?limit=1&offset=1").json()
    assert [i["id"] for i in page["instances"]] == [ids[1]]
    assert page["count"] == 3


@pytest.mark.parametrize("query", ["status=sleeping", "limit=0", "limit=x", "offset=-1", "limit=100000"])
def test_list_bad_query_is_400(api, query):
    assert_error(api.get(f"{BASE}/instances?{query}"), 400, "invalid")


def test_list_offset_past_sql_integers_is_400_not_500(api):
    # Found by .ci/fuzz: an offset over 2**63 overflowed SQLite's integers (500).
    register(api, 9001)
    assert_error(api.get(f"{BASE}/instances?offset={10**20}"), 400, "invalid")
    assert api.get(f"{BASE}/instances?offset={2**31 - 1}").json()["instances"] == []


def test_read_one(api):
    instance_id = register(api, 9001).json()["instance"]["id"]
    body = api.get(f"{BASE}/instances/{instance_id}").json()
    assert body["success"] is True
    assert body["instance"]["id"] == instance_id
    expected = {"id", "host", "port", "url", "weight", "status", "metadata", "health_check_path"}
    expected |= {"cpu_usage", "memory_usage", "connections", "registered_at", "last_heartbeat"}
    assert expected <= set(body["instance"])


@pytest.mark.parametrize("method", ["get", "patch", "delete"])
def test_unknown_and_malformed_ids_are_404(api, method):
    assert_error(getattr(api, method)(f"{BASE}/instances/{uuid.uuid4()}"), 404, "not_found")
    assert_error(getattr(api, method)(f"{BASE}/instances/not-a-uuid"), 404, "not_found")


def test_patch_weight_metadata_status(api):
    instance_id = register(api, 9001).json()["instance"]["id"]
    response = api.patch(f"{BASE}/instances/{instance_id}", {"weight": 7, "metadata": {"a": 1}, "status": "disabled"})
    assert response.status_code == 200
    instance = response.json()["instance"]
    assert (instance["weight"], instance["metadata"], instance["status"]) == (7, {"a": 1}, "disabled")
    event = InstanceEvent.objects.get(instance_id=instance_id, kind="status_changed")
    assert (event.from_status, event.to_status, event.actor) == ("active", "disabled", "api")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"status": "unhealthy"}, "status"),
        ({"status": "gone"}, "status"),
        ({"weight": -1}, "weight"),
        ({"metadata": 3}, "metadata"),
    ],
)
def test_patch_invalid(api, body, field):
    instance_id = register(api, 9001).json()["instance"]["id"]
    assert field in assert_error(api.patch(f"{BASE}/instances/{instance_id}", body), 400, "invalid")["details"]


def test_delete_deregisters_and_keeps_history(api):
    instance_id = register(api, 9001).json()["instance"]["id"]
    response = api.delete(f"{BASE}/instances/{instance_id}")
    assert response.status_code == 200
    assert response.json()["success"] is True
    assert_error(api.get(f"{BASE}/instances/{instance_id}"), 404, "not_found")
    kinds = set(InstanceEvent.objects.filter(address="127.0.0.1:9001").values_list("kind", flat=True))
    assert kinds == {"registered", "deregistered"}
    assert_error(api.delete(f"{BASE}/instances/{instance_id}"), 404, "not_found")


def test_method_not_allowed_is_json(api):
    assert_error(api.put(f"{BASE}/instances", {}), 405, "method_not_allowed")


# --- heartbeat ---------------------------------------------------------------------------------


def test_heartbeat_stores_figures(api):
    instance_id = register(api, 9001).json()["instance"]["id"]
    response = api.post(
        f"{BASE}/instances/{instance_id}/heartbeat", {"cpu_usage": 12.5, "memory_usage": 40, "connections": 7}
    )
    assert response.status_code == 200
    instance = response.json()["instance"]
    assert (instance["cpu_usage"], instance["memory_usage"], instance["connections"]) == (12.5, 40.0, 7)


def test_heartbeat_with_empty_body(api):
    instance_id = register(api, 9001).json()["instance"]["id"]
    assert api.post(f"{BASE}/instances/{instance_id}/heartbeat").status_code == 200


def test_heartbeat_recovers_an_unhealthy_instance(api):
    instance_id = register(api, 9001).json()["instance"]["id"]
    Instance.objects.filter(pk=instance_id).update(status="unhealthy")
    assert_error(api.get(f"{BASE}/instances/loadbalance"), 503, "no_healthy_instance")
    assert api.post(f"{BASE}/instances/{instance_id}/heartbeat", {}).json()["instance"]["status"] == "active"
    assert api.get(f"{BASE}/instances/loadbalance").json()["instance"]["id"] == instance_id
    event = InstanceEvent.objects.get(instance_id=instance_id, kind="status_changed")
    assert (event.from_status, event.to_status, event.actor) == ("unhealthy", "active", "heartbeat")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"cpu_usage": 101}, "cpu_usage"),
        ({"cpu_usage": -0.1}, "cpu_usage"),
        ({"cpu_usage": "NaN"}, "cpu_usage"),
        ({"cpu_usage": "Infinity"}, "cpu_usage"),
        ({"memory_usage": "lots"}, "memory_usage"),
        ({"memory_usage": False}, "memory_usage"),  # found by .ci/fuzz: was stored as 0.0
        ({"cpu_usage": True}, "cpu_usage"),
        ({"connections": -1}, "connections"),
        ({"connections": 1.5}, "connections"),
        ({"connections": 10**30}, "connections"),
    ],
)
def test_heartbeat_invalid(api, body, field):
    instance_id = register(api, 9001).json()["instance"]["id"]
    assert field in assert_error(api.post(f"{BASE}/instances/{instance_id}/heartbeat", body), 400, "invalid")["details"]


def test_heartbeat_unknown_instance_is_404(api):
    assert_error(api.post(f"{BASE}/instances/{uuid.uuid4()}/heartbeat", {}), 404, "not_found")
    assert_error(api.post(f"{BASE}/instances/nope/heartbeat", {}), 404, "not_found")


# --- load balance ------------------------------------------------------------------------------


def test_loadbalance_answer_has_url_at_both_levels(api):
    instance_id = register(api, 9001, weight=2).json()["instance"]["id"]
    body = api.get(f"{BASE}/instances/loadbalance").json()
    assert body["success"] is True
    assert body["url"] == "http://127.0.0.1:9001"
    assert body["instance"]["url"] == "http://127.0.0.1:9001"
    assert body["instance"]["id"] == instance_id
    assert (body["instance"]["status"], body["instance"]["weight"]) == ("active", 2)
    assert body["strategy"] == "round_robin"


def test_loadbalance_round_robin_rotates(api):
    ports = [register(api, 9001 + i).json()["instance"]["port"] for i in range(3)]
    chosen = [api.get(f"{BASE}/instances/loadbalance").json()["instance"]["port"] for _ in range(6)]
    assert chosen == ports * 2


def test_loadbalance_weighted_is_smooth(api):
    for port, weight in ((9001, 5), (9002, 1), (9003, 1)):
        register(api, port, weight=weight)
    chosen = [api.get(f"{BASE}/instances/loadbalance?strategy=weighted").json()["instance"]["port"] for _ in range(7)]
    assert chosen == [9001, 9001, 9002, 9001, 9003, 9001, 9001]


def test_loadbalance_least_connections_spreads_picks(api):
    a = register(api, 9001).json()["instance"]["id"]
    b = register(api, 9002).json()["instance"]["id"]
    api.post(f"{BASE}/instances/{a}/heartbeat", {"connections": 2})
    api.post(f"{BASE}/instances/{b}/heartbeat", {"connections": 0})
    chosen = [
        api.get(f"{BASE}/instances/loadbalance?strategy=least_connections").json()["instance"]["port"] for _ in range(6)
    ]
    assert chosen[:2] == [9002, 9002]
    assert chosen.count(9001) == 2 and chosen.count(9002) == 4
    # A heartbeat resets the picks: the reported figure counts again.
    api.post(f"{BASE}/instances/{b}/heartbeat", {"connections": 50})
    assert api.get(f"{BASE}/instances/loadbalance?strategy=least_connections").json()["instance"]["port"] == 9001


@pytest.mark.parametrize("status", ["unhealthy", "draining", "disabled"])
def test_failover_never_picks_an_ineligible_instance(api, status):
    bad = register(api, 9001).json()["instance"]["id"]
    register(api, 9002)
    Instance.objects.filter(pk=bad).update(status=status)
    for strategy in ("round_robin", "least_connections", "random", "weighted"):
        for _ in range(5):
            body = api.get(f"{BASE}/instances/loadbalance?strategy={strategy}").json()
            assert body["instance"]["port"] == 9002


def test_loadbalance_exclude(api):
    a = register(api, 9001).json()["instance"]["id"]
    b = register(api, 9002).json()["instance"]["id"]
    for _ in range(4):
        assert api.get(f"{BASE}/instances/loadbalance?exclude={a}").json()["instance"]["id"] == b
    body = assert_error(api.get(f"{BASE}/instances/loadbalance?exclude={a},{b}"), 503, "no_healthy_instance")
    assert "当前没有可用的健康实例" in body["error"]


def test_loadbalance_with_nothing_registered_is_503(api):
    assert_error(api.get(f"{BASE}/instances/loadbalance"), 503, "no_healthy_instance")


@pytest.mark.parametrize(("query", "field"), [("strategy=fastest", "strategy"), ("exclude=not-a-uuid", "exclude")])
def test_loadbalance_bad_query_is_400(api, query, field):
    register(api, 9001)
    body = assert_error(api.get(f"{BASE}/instances/loadbalance?{query}"), 400, "invalid")
    assert field in body["details"]
    if field == "strategy":
        assert "round_robin" in body["error"]


# --- cluster -----------------------------------------------------------------------------------


def test_cluster_stats_has_exactly_the_seed_keys_first(api):
    a = register(api, 9001).json()["instance"]["id"]
    b = register(api, 9002).json()["instance"]["id"]
    c = register(api, 9003).json()["instance"]["id"]
    api.post(f"{BASE}/instances/{a}/heartbeat", {"cpu_usage": 40, "memory_usage": 60, "connections": 100})
    api.post(f"{BASE}/instances/{b}/heartbeat", {"cpu_usage": 50.4, "memory_usage": 77.4, "connections": 50})
    api.post(f"{BASE}/instances/{c}/heartbeat", {"cpu_usage": 99, "memory_usage": 99, "connections": 999})
    Instance.objects.filter(pk=c).update(status="unhealthy")
    body = api.get(f"{BASE}/cluster/stats").json()
    assert body["success"] is True
    stats = body["cluster_stats"]
    seed_keys = [
        "total_instances",
        "healthy_instances",
        "unhealthy_instances",
        "total_connections",
        "avg_cpu_usage",
        "avg_memory_usage",
        "load_balance_strategy",
    ]
    assert list(stats)[:7] == seed_keys
    assert stats["total_instances"] == 3
    assert stats["healthy_instances"] == 2
    assert stats["unhealthy_instances"] == 1
    assert stats["total_connections"] == 150  # the unhealthy one's stale figures do not count
    assert stats["avg_cpu_usage"] == 45.2
    assert stats["avg_memory_usage"] == 68.7
    assert stats["load_balance_strategy"] == "round_robin"


def test_cluster_config_get_and_put(api):
    body = api.get(f"{BASE}/cluster/config").json()
    assert body["success"] is True
    assert body["config"]["load_balance_strategy"] == "round_robin"
    assert body["config"]["heartbeat_interval"] == 10
    assert body["config"]["instance_timeout"] == 30
    assert body["config"]["sources"]["heartbeat_interval"] == "settings"
    response = api.put(f"{BASE}/cluster/config", {"load_balance_strategy": "weighted", "heartbeat_interval": 5})
    assert response.status_code == 200
    config = response.json()["config"]
    assert (config["load_balance_strategy"], config["heartbeat_interval"], config["instance_timeout"]) == (
        "weighted",
        5,
        30,
    )
    assert config["sources"]["heartbeat_interval"] == "config"
    assert api.get(f"{BASE}/cluster/stats").json()["cluster_stats"]["load_balance_strategy"] == "weighted"
    register(api, 9001)
    assert api.get(f"{BASE}/instances/loadbalance").json()["strategy"] == "weighted"
    reset = api.put(f"{BASE}/cluster/config", {"heartbeat_interval": None}).json()["config"]
    assert (reset["heartbeat_interval"], reset["sources"]["heartbeat_interval"]) == (10, "settings")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"load_balance_strategy": "fastest"}, "load_balance_strategy"),
        ({"heartbeat_interval": 0}, "heartbeat_interval"),
        ({"heartbeat_interval": "x"}, "heartbeat_interval"),
        ({"instance_timeout": 10**20}, "instance_timeout"),
        ({"instance_timeout": 5}, "instance_timeout"),
        ({"heartbeat_interval": 40}, "instance_timeout"),
    ],
)
def test_cluster_config_invalid(api, body, field):
    assert field in assert_error(api.put(f"{BASE}/cluster/config", body), 400, "invalid")["details"]
    assert api.get(f"{BASE}/cluster/config").json()["config"]["sources"] == {
        "load_balance_strategy": "settings",
        "heartbeat_interval": "settings",
        "instance_timeout": "settings",
    }


def test_cluster_config_bad_json(api):
    assert_error(api.put(f"{BASE}/cluster/config", "nope", content_type="application/json"), 400, "invalid")


def test_deeply_nested_json_is_400_not_500(api):
    body = '{"host": "127.0.0.1", "port": 9001, "verify": false, "metadata": ' + '{"a":' * 5000 + "1" + "}" * 5001
    assert_error(api.post(f"{BASE}/instances", body, content_type="application/json"), 400, "invalid")
    assert not Instance.objects.exists()
