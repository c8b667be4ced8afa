"""Django's PostgreSQL backend, checking a pooled connection only when it sat idle.

Django's ``CONN_HEALTH_CHECKS`` has psycopg's pool check every connection it hands out: an empty query, one
more round trip to PostgreSQL per request (a sixth of a load-balancing pick's CPU). A connection given back
less than CHECK_AFTER_IDLE_SECONDS ago was working then, so it is handed out unchecked, as pgbouncer
(``server_check_delay``) and HikariCP (``aliveBypassWindowMs``) do; one idle for longer is checked. Give this
backend ``CONN_HEALTH_CHECKS = False`` (the pool then checks nothing itself).

When a check fails, PostgreSQL closed the connection, and after a restart it closed every idle one: the
pool's own check loop would back off (1 s, 2 s, 4 s, ...) over each dead connection in turn and give up
after its timeout. Here the dead connection goes back to be dropped, every other idle connection is checked
at once (``pool.check()``, which replaces the dead ones), and the request takes a live one.
"""

import time

import psycopg
from django.db.backends.postgresql import base

CHECK_AFTER_IDLE_SECONDS = 1.0


class DatabaseWrapper(base.DatabaseWrapper):
    def get_new_connection(self, conn_params):
        connection = super().get_new_connection(conn_params)
        if not self.pool:
            return connection
        returned_at = getattr(connection, "seed_returned_at", None)
        if returned_at is not None and time.monotonic() - returned_at < CHECK_AFTER_IDLE_SECONDS:
            return connection
        try:
            connection.execute("")
        except psycopg.Error:
            self.pool.putconn(connection)  # broken: the pool drops it
            self.pool.check()  # drops every other dead idle connection now
            connection = super().get_new_connection(conn_params)
        return connection

    def _close(self):
        if self.connection is not None and self.pool:
            self.connection.seed_returned_at = time.monotonic()
        return super()._close()
