"""How gunicorn workers share new connections out: ConnectionShares over one table, as forked workers see it."""

import os
import subprocess
import sys
import time

from seedproject.gworker import ConnectionShares


def _table():
    return ConnectionShares.new_table(slots=4)


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_worker_stands_back_only_while_a_sibling_holds_fewer_connections():
    table, lock = _table()
    first = ConnectionShares.claim(table, lock, os.getpid())
    second = ConnectionShares.claim(table, lock, os.getpid())
    first.publish(3)
    second.publish(2)

    assert not first.least_loaded(3)
    assert second.least_loaded(2)
    second.publish(3)
    assert first.least_loaded(3)  # equal: both accept, whichever the kernel wakes takes it
    assert second.least_loaded(3)


def test_a_worker_alone_always_accepts():
    table, lock = _table()
    alone = ConnectionShares.claim(table, lock, os.getpid())
    alone.publish(500)
    assert alone.least_loaded(500)


def test_a_sibling_that_stopped_writing_is_not_waited_for(monkeypatch):
    table, lock = _table()
    busy = ConnectionShares.claim(table, lock, os.getpid())
    hung = ConnectionShares.claim(table, lock, os.getpid())
    busy.publish(10)
    hung.publish(0)
    assert not busy.least_loaded(10)

    later = time.monotonic() + ConnectionShares.STALE_AFTER + 1
    monkeypatch.setattr("seedproject.gworker.time.monotonic", lambda: later)
    busy.publish(10)  # busy's loop goes on writing; hung's figure is now older than STALE_AFTER
    assert busy.least_loaded(10)


def test_a_stopped_or_dead_workers_slot_goes_to_the_next_worker_and_no_longer_counts():
    table, lock = _table()
    stopped = ConnectionShares.claim(table, lock, os.getpid())
    stopped.publish(0)
    stopped.release()
    worker = ConnectionShares.claim(table, lock, os.getpid())
    worker.publish(5)
    assert worker.least_loaded(5)  # the released slot's 0 is nobody's

    # A killed worker cannot release: its slot is taken over once its process is gone.
    ConnectionShares.SLOT.pack_into(table, 1 * ConnectionShares.SLOT.size, _dead_pid(), 0, 0.0)
    ConnectionShares.SLOT.pack_into(table, 2 * ConnectionShares.SLOT.size, os.getppid(), 1, time.monotonic())
    replacement = ConnectionShares.claim(table, lock, os.getpid())
    assert replacement._slot == 1
    assert not worker.least_loaded(5)  # the live sibling in slot 2 (fresh, one connection)
    assert ConnectionShares.claim(table, lock, os.getpid())._slot == 3
    assert ConnectionShares.claim(table, lock, os.getpid())._slot == -1  # full: counts for none
