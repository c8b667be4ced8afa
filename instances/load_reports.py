"""Heartbeats' connection figures on their way to the least-loaded set, sent together a moment later.

A heartbeat sets its instance's score in the least-loaded sorted set (Redis). Sent from the request,
that is a round trip per heartbeat, and under a threaded server each blocking round trip also waits
for the GIL on its way back: it cost the heartbeat about 12 % of its rate (bench/README.md, item 12).
Instead each process collects the figures and one background thread sends them, a moment after the
first arrived, as one ``ZADD XX`` for all of them.

What this trades: a heartbeat's figure reaches least-connections picks up to
``SEED_LEAST_LOADED_REPORT_DELAY`` seconds later (the figure itself is committed in the database
before the heartbeat answers), and a process that dies loses the figures of its last moment: the
instances' next heartbeats, one interval later, send them again. Nothing is shared between processes
here: what is pending is only on its way to Redis.
"""

import logging
import os
import threading
import time
from collections.abc import Callable

from django.conf import settings

logger = logging.getLogger(__name__)


class LoadReports:
    """(member -> load) figures waiting to be sent by ``send``, one call for all, by a background thread."""

    def __init__(self, send: Callable[[dict[str, int]], None]) -> None:
        self._send = send
        self._fresh_state()
        # A forked child starts with nothing pending, no sender thread and a lock no parent thread can hold.
        os.register_at_fork(after_in_child=self._fresh_state)

    def _fresh_state(self) -> None:
        self._lock = threading.Lock()
        self._pending: dict[str, int] = {}
        self._wake = threading.Event()
        self._started = False

    def add(self, member: str, load: int) -> None:
        """Queue ``member``'s figure (a later figure for the same member replaces it) and wake the sender.

        With ``SEED_LEAST_LOADED_REPORT_DELAY`` 0 the figure is sent at once, in this thread.
        """
        with self._lock:
            self._pending[member] = load
        if settings.SEED_LEAST_LOADED_REPORT_DELAY <= 0:
            self.flush()
            return
        if not self._started:
            self._start()  # first use in this process
        self._wake.set()

    def flush(self) -> int:
        """Send what is pending now, in this thread; returns how many figures were sent."""
        with self._lock:
            pending, self._pending = self._pending, {}
        if pending:
            try:
                self._send(pending)
            except Exception:
                # The figures are dropped, not retried: each instance's next heartbeat sends a fresher one.
                logger.exception("could not send %d heartbeat figures to the least-loaded set", len(pending))
                return 0
        return len(pending)

    def _start(self) -> None:
        with self._lock:
            if self._started:
                return
            self._started = True
            threading.Thread(target=self._run, name="seed-load-reports", daemon=True).start()

    def _run(self) -> None:
        while True:
            self._wake.wait()
            # Let the figures of this moment gather, then send them together. Cleared before the flush:
            # a figure added during the flush wakes the next round.
            time.sleep(settings.SEED_LEAST_LOADED_REPORT_DELAY)
            self._wake.clear()
            self.flush()
