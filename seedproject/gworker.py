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
"""

import select
import threading

from django.conf import settings
from gunicorn.workers.gthread import ThreadWorker


class KeepAliveThreadWorker(ThreadWorker):
    """``gthread`` whose threads serve a kept-alive connection's next request themselves while threads are free."""

    def init_process(self) -> None:
        self._busy_lock = threading.Lock()
        self._busy = 0
        # Keep a quarter of the threads (at least one) for requests arriving on other connections.
        self._linger_limit = self.cfg.threads - max(1, self.cfg.threads // 4)
        self._linger = settings.SEED_HTTP_KEEPALIVE_LINGER
        super().init_process()

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
