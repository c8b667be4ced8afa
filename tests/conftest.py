"""Fixtures shared by the whole suite.

Service-backed tests (marker ``services``) need the real PostgreSQL and Redis named by
``DATABASE_URL`` / ``REDIS_URL``. Without them they are skipped with a reason that ``make test``
prints; with ``SEED_REQUIRE_SERVICES=1`` (set by ``.ci/run``) a missing service fails them instead.
"""

import os
import socket
from urllib.parse import urlparse

import pytest
import redis.connection
from channels.testing import WebsocketCommunicator
from rest_framework.test import APIClient

_communicator_init = WebsocketCommunicator.__init__


def _communicator_from_loopback(self, *args, **kwargs) -> None:
    """Test sockets come from 127.0.0.1 unless a test says otherwise, as Django's test client's requests do."""
    _communicator_init(self, *args, **kwargs)
    self.scope.setdefault("client", ["127.0.0.1", 50000])


WebsocketCommunicator.__init__ = _communicator_from_loopback


def _reachable(url: str) -> bool:
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or 0), timeout=1):
            return True
    except OSError:
        return False


def services_missing() -> str | None:
    """Why the real services cannot be used, or None when they can."""
    database_url = os.environ.get("DATABASE_URL", "")
    redis_url = os.environ.get("REDIS_URL", "")
    if not database_url.startswith(("postgres://", "postgresql://")):
        return "needs PostgreSQL: set DATABASE_URL=postgres://..."
    if not redis_url.startswith("redis://"):
        return "needs Redis: set REDIS_URL=redis://..."
    for name, url in (("PostgreSQL", database_url), ("Redis", redis_url)):
        if not _reachable(url):
            return f"needs {name}: nothing answers at {urlparse(url).netloc}"
    return None


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("services") is None:
        return
    reason = services_missing()
    if reason is None:
        return
    if os.environ.get("SEED_REQUIRE_SERVICES") == "1":
        pytest.fail(f"service-backed test cannot run: {reason}", pytrace=False)
    pytest.skip(f"service-backed: {reason}")


@pytest.fixture
def api() -> APIClient:
    """A DRF test client that speaks JSON."""
    client = APIClient()
    client.default_format = "json"
    return client


@pytest.fixture
def redis_round_trips(monkeypatch):
    """Every request written to a Redis socket (a pipeline is one)."""
    sent = []
    original = redis.connection.AbstractConnection.send_packed_command

    def counting(self, command, check_health=True):
        sent.append(command)
        return original(self, command, check_health)

    monkeypatch.setattr(redis.connection.AbstractConnection, "send_packed_command", counting)
    return sent


@pytest.fixture(autouse=True)
def _fresh_cache() -> None:
    """Shared counters (round robin, picks) live in the cache; each test starts from zero."""
    from django.core.cache import cache

    from instances.services import forget_registry_copies
    from seedproject.counters import throttle_tally

    cache.clear()
    # The registry version restarts with the cache: a copy taken at the same number in an earlier
    # test would look current. Unsent throttle hits belong to the cleared windows.
    forget_registry_copies()
    throttle_tally.forget()


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    """Say plainly which service-backed tests did not run, and how to run them."""
    skipped = [
        report
        for report in terminalreporter.stats.get("skipped", [])
        if "service-backed" in str(getattr(report, "longrepr", ""))
    ]
    if skipped:
        terminalreporter.write_sep("-", f"{len(skipped)} service-backed test(s) skipped")
        for report in skipped:
            terminalreporter.write_line(f"  skipped: {report.nodeid}")
        terminalreporter.write_line(
            "  run them with DATABASE_URL=postgres://... REDIS_URL=redis://... make test (see README)"
        )
