"""gunicorn's threaded worker, without a hand-off through the main thread between keep-alive requests.

gunicorn's ``gthread`` worker serves one request per hand-off: when a response is sent, the worker
thread passes the connection back to the main thread (a pipe write), which registers it with its
poller; when the client's next request arrives the main thread takes it out again and queues it for
a worker thread. Each request on a kept-alive connection therefore costs two thread hand-offs (each a
wait for the GIL behind busy request threads) and four system calls before it is even read: a
quarter of the GIL-holding samples of a send (bench/README.md, items 10 and 12).

Here a worker thread that has just answered waits a moment on the same connection (``poll``, without
the GIL) and serves the next request itself when it comes in time. It only does so while threads are
plentiful (no request waits for a thread, and at least a quarter of the threads are free), so a
lingering thread never keeps a new request waiting, and a client that stays quiet longer than the
linger goes back to the poller as before.

The workers also share new connections out evenly. All of them poll the one listening socket, and the
kernel wakes whichever it likes: with a few kept-alive clients (SDK agents, a proxy's upstream pool, the
bench's four) all the connections often landed in one worker, which then served them on one core behind
one GIL while the other idled; a pick's p50 was 3.7-4.9 ms that way against 1.9-2.5 ms split (bench/
README.md, item 13). Each worker writes its open connections into memory shared with its siblings
(``ConnectionShares``) and polls the listener only while it has no more than the least loaded of them;
one that stands back re-checks every 10 ms, so a connection never waits long for a taker.
"""

import mmap
import multiprocessing
import os
import select
import struct
import threading
import time

from django.conf import settings
from gunicorn.workers.gthread import ThreadWorker


class ConnectionShares:
    """Every worker's open connections, in memory shared by the workers of one gunicorn master.

    A table of slots (pid, open connections, when written on ``time.monotonic``'s clock, which all
    processes of a machine share). A worker claims a free slot as it starts (one whose process is gone or
    that was released) and writes its figure on every turn of its main loop, at least once a second (the
    loop's poll timeout), so a slot not written for ``STALE_AFTER`` seconds belongs to a worker that died
    or hangs, and is left out: no worker stands back for one that cannot accept.
    """

    SLOT = struct.Struct("qqd")  # pid, open connections, written at
    STALE_AFTER = 2.0

    def __init__(self, table: mmap.mmap, slot: int, pid: int) -> None:
        self._table, self._slot, self._pid = table, slot, pid
        self._slots = len(table) // self.SLOT.size

    @classmethod
    def new_table(cls, slots: int = 64) -> tuple[mmap.mmap, object]:
        """Anonymous shared memory and its lock: made before the fork, the forked workers share them."""
        return mmap.mmap(-1, slots * cls.SLOT.size), multiprocessing.Lock()

    @classmethod
    def claim(cls, table: mmap.mmap, lock, pid: int) -> "ConnectionShares":
        # A worker killed while holding the lock must not stop the next one from starting.
        locked = lock.acquire(timeout=1.0)
        try:
            for slot in range(len(table) // cls.SLOT.size):
                owner, _, _ = cls.SLOT.unpack_from(table, slot * cls.SLOT.size)
                if owner == 0 or not _alive(owner):
                    cls.SLOT.pack_into(table, slot * cls.SLOT.size, pid, 0, time.monotonic())
                    return cls(table, slot, pid)
        finally:
            if locked:
                lock.release()
        return cls(table, -1, pid)  # no slot left: this worker accepts as gunicorn's would, and counts for none

    def publish(self, connections: int) -> None:
        if self._slot >= 0:
            self.SLOT.pack_into(self._table, self._slot * self.SLOT.size, self._pid, connections, time.monotonic())

    def release(self) -> None:
        if self._slot >= 0:
            self.SLOT.pack_into(self._table, self._slot * self.SLOT.size, 0, 0, 0.0)

    def least_loaded(self, connections: int) -> bool:
        """Whether no live sibling has fewer open connections than ``connections``."""
        fresh_after = time.monotonic() - self.STALE_AFTER
        for slot in range(self._slots):
            if slot == self._slot:
                continue
            owner, theirs, written = self.SLOT.unpack_from(self._table, slot * self.SLOT.size)
            if owner and written >= fresh_after and theirs < connections:
                return False
        return True


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# Made on import, which happens in gunicorn's master when it loads the worker class: before the fork.
_SHARES_TABLE, _SHARES_LOCK = ConnectionShares.new_table()
# How often a worker that stands back from accepting looks again (its poll timeout meanwhile).
RECHECK_SECONDS = 0.01


class KeepAliveThreadWorker(ThreadWorker):
    """``gthread`` whose threads serve a kept-alive connection's next request themselves while threads are
    free, and whose workers share new connections out evenly."""

    def init_process(self) -> None:
        self._busy_lock = threading.Lock()
        self._busy = 0
        # Keep a quarter of the threads (at least one) for requests arriving on other connections.
        self._linger_limit = self.cfg.threads - max(1, self.cfg.threads // 4)
        self._linger = settings.SEED_HTTP_KEEPALIVE_LINGER
        self._shares = ConnectionShares.claim(_SHARES_TABLE, _SHARES_LOCK, os.getpid())
        self._standing_back = False
        super().init_process()  # runs the worker: returns when it stops

    def run(self) -> None:
        try:
            super().run()
        finally:
            self._shares.release()

    def set_accept_enabled(self, enabled: bool) -> None:
        # gunicorn's loop asks for accepting again on every turn while this worker stands back.
        self._standing_back = enabled and self.alive and not self._shares.least_loaded(self.nr_conns)
        if not self._standing_back:
            super().set_accept_enabled(enabled)

    def wait_for_and_dispatch_events(self, timeout: float) -> None:
        self._shares.publish(self.nr_conns)
        if self._accepting and self.alive and not self._shares.least_loaded(self.nr_conns):
            super().set_accept_enabled(False)  # a sibling with fewer connections takes the next one
            self._standing_back = True
        if self._standing_back and self.alive:
            timeout = min(timeout, RECHECK_SECONDS)
        super().wait_for_and_dispatch_events(timeout)

    def handle(self, conn):
        with self._busy_lock:
            self._busy += 1
        try:
            keep = super().handle(conn)
            while keep is True and self._may_linger() and _next_request_arrives(conn, self._linger):
                keep = super().handle(conn)
            return keep
        finally:
            with self._busy_lock:
                self._busy -= 1

    def _may_linger(self) -> bool:
        if self._linger <= 0 or not self.alive or self._busy > self._linger_limit:
            return False
        # Requests queued for a thread right now (the executor's queue; approximate, which is enough).
        return self.tpool._work_queue.qsize() == 0


def _next_request_arrives(conn, linger: float) -> bool:
    """Whether the connection has (or gets within ``linger`` seconds) bytes of a next request."""
    if conn.parser.unreader.buf.getvalue():
        return True  # a body drain read ahead into the next request
    poller = select.poll()
    poller.register(conn.sock.fileno(), select.POLLIN)
    try:
        return bool(poller.poll(linger * 1000))
    except OSError:
        return False
