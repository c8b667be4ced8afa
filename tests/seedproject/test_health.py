"""GET /health: what the cluster's probes and a load balancer read."""

import pytest
from django.db import OperationalError

pytestmark = pytest.mark.django_db


def test_health_reports_each_dependency(client):
    response = client.get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["success"] is True and body["status"] == "ok"
    assert body["database"]["ok"] is True
    assert body["channel_layer"]["ok"] is True
    assert body["broker"]["ok"] is True


def test_health_is_503_when_the_database_is_unreachable(client, monkeypatch):
    from seedproject import views

    class BrokenCursor:
        def __enter__(self):
            raise OperationalError("connection to server at 127.0.0.1 port 5432 failed: Connection refused")

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr(views.connection, "cursor", lambda: BrokenCursor())
    response = client.get("/health")
    assert response.status_code == 503
    body = response.json()
    assert body["success"] is False and body["code"] == "unavailable"
    assert "Connection refused" in body["database"]["error"]


def test_health_needs_no_credentials_even_outside_local_mode(client, settings):
    settings.SEED_ALLOW_LOCAL_ANONYMOUS = False
    assert client.get("/health", REMOTE_ADDR="10.0.0.5").status_code == 200
