"""Database connection helpers shared by the apps."""

from django.db import connection


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
