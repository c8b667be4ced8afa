"""The connection pool checks connections that sat idle, and only those (seedproject.postgresql)."""

import psycopg
import pytest
from django.db import connection

from seedproject.postgresql import base as pooled_backend

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]


def borrow_and_give_back() -> int:
    """One request's worth: borrow a pooled connection, use it, give it back; its server process id."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    connection.close()
    return pid


@pytest.fixture
def checks(monkeypatch) -> list:
    """The connections checked before a request used them (the check is an empty query)."""
    checked = []
    real_execute = psycopg.Connection.execute

    def execute(self, query, *args, **kwargs):
        if query == "":
            checked.append(self)
        return real_execute(self, query, *args, **kwargs)

    monkeypatch.setattr(psycopg.Connection, "execute", execute)
    connection.close()
    return checked


def test_connections_given_back_within_the_window_are_handed_out_unchecked(checks, monkeypatch):
    monkeypatch.setattr(pooled_backend, "CHECK_AFTER_IDLE_SECONDS", 3600)
    rounds = connection.pool.max_size + 2  # the pool hands out its oldest idle connection: cycle them all
    for _ in range(rounds):
        borrow_and_give_back()
    checks.clear()
    for _ in range(rounds):
        borrow_and_give_back()
    assert checks == []


def test_connections_idle_longer_than_the_window_are_checked(checks, monkeypatch):
    monkeypatch.setattr(pooled_backend, "CHECK_AFTER_IDLE_SECONDS", 0)
    for _ in range(3):
        borrow_and_give_back()
    assert len(checks) == 3


def test_connections_postgresql_closed_while_idle_are_replaced_not_handed_to_a_request(checks, monkeypatch):
    monkeypatch.setattr(pooled_backend, "CHECK_AFTER_IDLE_SECONDS", 0)
    before = borrow_and_give_back()
    admin_dsn = {**connection.get_connection_params(), "autocommit": True}
    admin_dsn.pop("cursor_factory", None)
    admin_dsn.pop("context", None)
    with psycopg.connect(**admin_dsn) as admin:  # every idle one, as a PostgreSQL restart would
        killed = admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid() AND state = 'idle'"
        ).fetchall()
    assert killed
    # Without the check this request would fail on a dead connection; checking only the one it was
    # handed, its retry would be handed the next dead one.
    after = borrow_and_give_back()
    assert after != before
