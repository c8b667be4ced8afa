"""A cluster-wide leader lock, so exactly one Celery beat schedules periodic work.

The lock lives with the shared state, and dies with its holder:
- PostgreSQL: a session-level advisory lock on a dedicated connection. If the holding process dies,
  PostgreSQL closes the session and the lock is free for the next candidate at once.
- SQLite (embedded default, one machine): ``flock`` on a file beside the database; the kernel drops it
  when the holding process exits.
"""

import fcntl
import logging
import os
from pathlib import Path
from typing import Protocol

from django.conf import settings
from django.db import connection

logger = logging.getLogger(__name__)

# Any fixed 64-bit number; it only has to be the same in every Seed process of a cluster.
BEAT_LOCK_KEY = 0x5EED_BEA7


class LeaderLock(Protocol):
    def try_acquire(self) -> bool: ...
    def still_held(self) -> bool: ...
    def release(self) -> None: ...


class PostgresAdvisoryLock:
    """``pg_try_advisory_lock`` on a connection of its own (Django's may be recycled at any time)."""

    def __init__(self, key: int = BEAT_LOCK_KEY) -> None:
        self.key = key
        self._conn = None

    def _connect(self):
        import psycopg

        params = connection.get_connection_params()
        params.pop("cursor_factory", None)
        params.pop("context", None)
        return psycopg.connect(**params, autocommit=True, connect_timeout=5)

    def try_acquire(self) -> bool:
        if self._conn is None or self._conn.closed:
            self._conn = self._connect()
        acquired = self._conn.execute("SELECT pg_try_advisory_lock(%s)", [self.key]).fetchone()[0]
        return bool(acquired)

    def still_held(self) -> bool:
        # A session-level advisory lock lasts as long as its session: a live session still holds it.
        try:
            self._conn.execute("SELECT 1").fetchone()
        except Exception:  # noqa: BLE001 - a broken connection means the lock is gone
            return False
        return True

    def release(self) -> None:
        if self._conn is not None and not self._conn.closed:
            self._conn.close()


class FileLock:
    """``flock`` on a file under the data directory (one machine, any number of processes)."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or Path(settings.DATA_DIR) / "beat.lock"
        self._fd: int | None = None

    def try_acquire(self) -> bool:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd
        return True

    def still_held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def beat_lock() -> LeaderLock:
    """The lock that fits the configured database."""
    if connection.vendor == "postgresql":
        return PostgresAdvisoryLock()
    return FileLock()


def run_beat_when_leader(*, retry_interval: float = 2.0, watch_interval: float = 5.0) -> None:
    """Stand by until this process holds the beat lock, then run Celery beat in-process.

    A standby takes over within ``retry_interval`` of the leader's death. If the lock is lost while
    beat runs (the database connection broke), the process exits at once rather than risk two beats.
    """
    import threading
    import time

    from celery.apps.beat import Beat

    from seedproject.celery import app

    lock = beat_lock()
    announced = False
    while True:
        try:
            if lock.try_acquire():
                break
        except Exception as exc:  # noqa: BLE001 - the database may be briefly unreachable; keep standing by
            logger.warning("beat lock: cannot ask for the lock yet: %s", exc)
        if not announced:
            logger.info("beat lock held by another Seed process; standing by")
            announced = True
        time.sleep(retry_interval)
    logger.info("beat lock acquired (pid %s): this process schedules the cluster's periodic tasks", os.getpid())

    def watch() -> None:
        while True:
            time.sleep(watch_interval)
            if not lock.still_held():
                logger.error("beat lock lost; exiting so that only one beat runs")
                os._exit(3)

    threading.Thread(target=watch, name="beat-lock-watch", daemon=True).start()
    Beat(app=app, scheduler="celery.beat:Scheduler", loglevel="INFO", max_interval=5).run()
