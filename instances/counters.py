"""The shared atomic counter behind round robin, weighted picks and monitor sequence numbers."""

from django.core.cache import cache


class CacheCounter:
    """``incr`` on Django's cache: atomic in Redis (every Seed process shares it), per process in locmem."""

    def incr(self, key: str) -> int:
        try:
            return cache.incr(key)
        except ValueError:
            # Missing key: add() is a no-op if another process created it first, so no count is lost.
            cache.add(key, 0, timeout=None)
            return cache.incr(key)


counter = CacheCounter()
