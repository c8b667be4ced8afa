"""The shared atomic counter behind round robin, weighted picks, monitor sequence numbers and throttling."""

import threading

from django.core.cache import cache


class CacheCounter:
    """``incr`` on Django's cache: atomic in Redis (every Seed process shares it), per process in locmem."""

    def incr(self, key: str, *, timeout: float | None = None, amount: int = 1) -> int:
        """Add ``amount`` to ``key`` and return the new value; a missing key starts at 0 and lives ``timeout`` s."""
        # Seed's Redis backend (seedproject.cache) does this in one round trip; Django's cache.incr
        # needs two, and two more for a missing key.
        incr_counter = getattr(cache, "incr_counter", None)
        if incr_counter is not None:
            return incr_counter(key, timeout, amount)
        try:
            return cache.incr(key, amount)
        except ValueError:
            # Missing key: add() is a no-op if another process created it first, so no count is lost.
            cache.add(key, 0, timeout=timeout)
            return cache.incr(key, amount)

    def incr_and_get(self, key: str, read_keys: list[str]) -> tuple[int, list]:
        """``incr(key)`` (no expiry) and the cached values of ``read_keys`` (None if missing), at one time.

        In Redis one round trip (a script), so the values are read the instant the count moves.
        """
        incr_and_get = getattr(cache, "incr_counter_and_get", None)
        if incr_and_get is not None:
            return incr_and_get(key, read_keys)
        value = self.incr(key)
        found = cache.get_many(read_keys)
        return value, [found.get(k) for k in read_keys]


counter = CacheCounter()


class WindowTally:
    """Hits per fixed window, counted in the shared counter, sent in batches while far below the limit.

    A courtesy rate limit needs an exact count only near its limit. While this process's best estimate
    (the shared total it last saw + its own unsent hits) is below half the limit, hits are sent
    ``BATCH`` at a time (one round trip per ``BATCH`` requests instead of one per request); from half
    the limit on, every hit is sent and the answer is the shared total. The shared total stays in the
    cache; only unsent hits (fewer than ``BATCH`` per key) live in this process, so every process can
    admit at most ``BATCH - 1`` requests more than the limit in a window.
    """

    BATCH = 10
    MAX_KEYS = 10_000  # keys are per principal and window: old windows' keys are dropped wholesale

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._keys: dict[str, list[int]] = {}  # key -> [unsent hits, last shared total seen]

    def forget(self) -> None:
        """Drop this process's unsent hits (tests, after clearing the cache)."""
        with self._lock:
            self._keys.clear()

    def hit(self, key: str, *, limit: int, timeout: float) -> int:
        """Count one hit of ``key``'s window; returns the best estimate of the window's total."""
        with self._lock:
            entry = self._keys.get(key)
            if entry is None:
                if len(self._keys) >= self.MAX_KEYS:
                    self._keys.clear()
                entry = self._keys[key] = [0, 0]
            entry[0] += 1
            unsent, shared = entry
            if unsent < self.BATCH and (shared + unsent) * 2 <= limit:
                return shared + unsent
            entry[0] = 0
        total = counter.incr(key, timeout=timeout, amount=unsent)
        with self._lock:
            entry[1] = max(entry[1], total)
            return total + entry[0]


throttle_tally = WindowTally()
