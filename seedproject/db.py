"""Database connection helpers shared by the apps."""

from collections.abc import Iterator
from contextlib import contextmanager

from django.db import connection


def batch_possible() -> bool:
    """Whether a transaction may go to PostgreSQL as one batch of statements (``BEGIN; …; COMMIT``).

    It needs autocommit (the batch brings its own BEGIN/COMMIT, which must not end a caller's
    transaction) and client-side parameter binding (Django's default with psycopg 3; server-side
    binding refuses several statements in one execute). Elsewhere the step-by-step path runs.
    """
    return (
        connection.vendor == "postgresql"
        and not connection.in_atomic_block
        and not connection.settings_dict.get("OPTIONS", {}).get("server_side_binding")
    )


@contextmanager
def one_batch() -> Iterator:
    """A cursor for one ``BEGIN; …; COMMIT`` batch; a failing statement's open transaction is rolled back."""
    try:
        with connection.cursor() as cursor:
            yield cursor
    except Exception:
        if connection.connection is not None and connection.connection.info.transaction_status:
            connection.connection.rollback()
        raise


def fetch_not_durable(sql: str, params: list) -> list[tuple]:
    """Run one write ``sql`` in its own transaction that commits without waiting for the WAL flush.

    For writes whose loss in a PostgreSQL crash is harmless (a heartbeat, replaced by the next one; a TTL
    sweep batch, swept again by the next pass): ``SET LOCAL synchronous_commit TO OFF`` skips the fsync
    wait, in one round trip, and can lose the last fraction of a second of such writes, never
    consistency. Needs ``batch_possible()``; returns the statement's rows.
    """
    with one_batch() as cursor:
        cursor.execute(f"BEGIN; SET LOCAL synchronous_commit TO OFF; {sql}; COMMIT", params)
        cursor.nextset()  # BEGIN's and SET's statuses come first
        cursor.nextset()
        return cursor.fetchall()


def release_connection_while_waiting() -> None:
    """Give this thread's pooled connection back before a wait that needs no database (a long poll's sleep).

    With the connection pool (SEED_DB_POOL_SIZE) a server has a few connections per process for dozens of
    request threads: a long poll that kept its connection through 30 s of sleeps would starve the others.
    Closing a pooled connection returns it to the pool, and the next query borrows one again. Without a
    pool (one persistent connection per thread) closing would cost a reconnect per poll: nothing to do.
    """
    if connection.in_atomic_block or connection.connection is None:
        return
    if connection.settings_dict.get("OPTIONS", {}).get("pool"):
        connection.close()
