"""SSRF: registrations and health probes only reach SEED_PROBE_ALLOWED_NETWORKS, checked before connecting.

No test here connects anywhere but loopback: refusals are shown with a loopback address that the
configured networks exclude, on a server that counts every connection it gets.
"""

import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.utils import timezone

from instances import probing
from instances.models import Instance
from instances.services import instance_register, instances_check_health
from seedproject.security import address_allowed, parse_networks

DEFAULT_NETWORKS = parse_networks(
    ["127.0.0.0/8", "::1/128", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"]
)


class CountingHandler(BaseHTTPRequestHandler):
    seen: list

    def do_GET(self) -> None:
        self.seen.append(self.headers.get("Host"))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def counting_server():
    handler = type("Handler", (CountingHandler,), {"seen": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1], handler.seen
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(
    ("address", "allowed"),
    [
        ("127.0.0.1", True),
        ("::1", True),
        ("10.1.2.3", True),
        ("192.168.0.9", True),
        ("::ffff:127.0.0.1", True),
        ("8.8.8.8", False),
        ("169.254.169.254", False),  # cloud metadata endpoints stay out of reach
        ("2001:db8::1", False),
    ],
)
def test_the_rule_itself(address, allowed):
    assert address_allowed(address, DEFAULT_NETWORKS) is allowed


@pytest.mark.django_db
@pytest.mark.parametrize("verify", [True, False])
def test_registering_an_excluded_address_is_a_400_and_never_connects(api, settings, counting_server, verify):
    port, seen = counting_server
    settings.SEED_PROBE_ALLOWED_NETWORKS = ["127.0.0.2/32"]  # loopback, but not 127.0.0.1
    response = api.post("/api/v1/multi-instance/instances", {"host": "127.0.0.1", "port": port, "verify": verify})
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid" and "SEED_PROBE_ALLOWED_NETWORKS" in body["details"]["host"][0]
    assert seen == []
    assert not Instance.objects.exists()


@pytest.mark.django_db
def test_every_health_probe_checks_the_rule_again(settings, counting_server):
    port, seen = counting_server
    instance_register(host="127.0.0.1", port=port, verify=True)
    assert len(seen) == 1
    settings.SEED_PROBE_ALLOWED_NETWORKS = ["127.0.0.2/32"]  # the operator narrows the rule
    result = instances_check_health(now=timezone.now() + timedelta(seconds=15))  # its probe is due again
    assert result["failed"] == 1
    assert len(seen) == 1  # no second connection


@pytest.mark.django_db
def test_a_probe_connects_to_the_checked_address_and_names_the_host(counting_server):
    port, seen = counting_server
    assert probing.probe_address("localhost", port, "/health", timeout=1).ok
    assert seen == [f"localhost:{port}"]
