"""Fixtures of the instances tests: a loopback health server, a closed port, instance factories."""

import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


class _HealthHandler(BaseHTTPRequestHandler):
    """/health -> 200, /redirect -> 302 to /health, /broken -> 500."""

    def do_GET(self):
        if self.path == "/health":
            self._answer(200, b'{"ok": true}')
        elif self.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", "/health")
            self.send_header("Content-Length", "0")
            self.end_headers()
        else:
            self._answer(500, b"broken")

    def _answer(self, code, body):
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def health_server():
    """A real HTTP server on 127.0.0.1 (random port) serving /health, /redirect and /broken."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _HealthHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on (bound once to find it free, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def make_instance(db):
    """Register an instance without probing: make_instance(port, weight=1, **kwargs)."""
    from instances.services import instance_register

    def make(port: int, weight: int = 1, host: str = "127.0.0.1", **kwargs):
        instance, _ = instance_register(host=host, port=port, weight=weight, verify=False, **kwargs)
        return instance

    return make


@pytest.fixture
def silent():
    """silent(instance, seconds=15): no sign of life for that long, so a health pass probes it (defaults:
    instance_timeout 30 s, heartbeat_interval 10 s: instances silent for 10 s or more are probed)."""
    from datetime import timedelta

    from django.utils import timezone

    from instances.models import Instance

    def make_silent(instance, seconds: float = 15):
        when = timezone.now() - timedelta(seconds=seconds)
        Instance.objects.filter(pk=instance.pk).update(registered_at=when, last_heartbeat=None, last_probe_ok=None)
        return instance

    return make_silent


@pytest.fixture
def sql_picks(settings):
    """The cache as on the embedded default (locmem, per process), so least_connections counts its picks in SQL.

    With REDIS_URL this runs the SQL pick against PostgreSQL; without, against SQLite.
    """
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    from django.core.cache import cache

    assert not hasattr(cache, "least_loaded_take")
