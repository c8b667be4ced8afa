"""Hostile or oversized input gets a clear 4xx, never a 500, and nothing accepted is lost."""

import pytest
from django.core.cache import cache

pytestmark = pytest.mark.django_db


def test_a_body_over_the_payload_limit_is_413_before_it_is_parsed(api, settings):
    settings.SEED_MAX_PAYLOAD_BYTES = 1024
    response = api.post(
        "/api/v1/collaboration/employees/register",
        data='{"employee_id": "x", "role": "developer", "pad": "' + "a" * 2000 + '"}',
        content_type="application/json",
    )
    assert response.status_code == 413
    assert response.json() == {
        "success": False,
        "error": "Request body is 2052 bytes; the limit is 1024 bytes.",
        "code": "payload_too_large",
        "details": {"limit": 1024, "received": 2052},
    }


def test_instance_metadata_is_bounded(api, settings):
    settings.SEED_MAX_METADATA_BYTES = 100
    body = {"host": "127.0.0.1", "port": 9301, "verify": False, "metadata": {"blob": "x" * 200}}
    response = api.post("/api/v1/multi-instance/instances", body)
    assert response.status_code == 400
    assert "metadata" in response.json()["details"]


def test_deeply_nested_json_is_a_400(api):
    body = "[" * 5000 + "]" * 5000
    response = api.post("/api/v1/multi-instance/instances", data=body, content_type="application/json")
    assert response.status_code == 400 and response.json()["code"] == "invalid"


def test_pagination_is_capped(api):
    response = api.get("/api/v1/multi-instance/instances?limit=100000")
    assert response.status_code == 400 and "limit" in response.json()["details"]


def test_requests_over_the_courtesy_rate_get_429_throttled_with_retry_after(api, settings):
    settings.SEED_THROTTLE_RATE = "3/min"
    cache.clear()
    statuses = [api.get("/api/v1/multi-instance/cluster/stats").status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    refused = api.get("/api/v1/multi-instance/cluster/stats")
    assert refused.json()["code"] == "throttled"
    assert int(refused["Retry-After"]) > 0
