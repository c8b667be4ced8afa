"""The shared atomic counter behind round robin, weighted picks, monitor sequence numbers and throttling."""

from django.core.cache import cache


class CacheCounter:
    """``incr`` on Django's cache: atomic in Redis (every Seed process shares it), per process in locmem."""

    def incr(self, key: str, *, timeout: float | None = None) -> int:
        """Add one to ``key`` and return the new value; a missing key starts at 0 and lives ``timeout`` s."""
        # Seed's Redis backend (seedproject.cache) does this in one round trip; Django's cache.incr
        # needs two, and two more for a missing key.
        incr_counter = getattr(cache, "incr_counter", None)
        if incr_counter is not None:
            return incr_counter(key, timeout)
        try:
            return cache.incr(key)
        except ValueError:
            # Missing key: add() is a no-op if another process created it first, so no count is lost.
            cache.add(key, 0, timeout=timeout)
            return cache.incr(key)


counter = CacheCounter()
