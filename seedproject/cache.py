"""Django's Redis cache backend, minus two per-call costs that every hot request paid.

- Django's ``RedisCacheClient.get_client`` builds a new ``redis.Redis`` for every cache call, and with
  redis-py 8 that constructor fills a table of ~170 response callbacks (≈ 0.1 ms each time). A
  ``redis.Redis`` only borrows a connection from its pool per command, so one per pool serves every
  thread: it is built once here.
- ``cache.incr`` is two round trips (``EXISTS`` then ``INCRBY``), and a missing key costs two more
  (``SET NX``, then ``INCRBY`` again). ``incr_counter`` is one round trip; see its docstring.
  ``incr_counter_and_get`` also reads other keys in that round trip (a pick's position and the
  registry version).
"""

import math

from django.core.cache.backends.redis import RedisCache as DjangoRedisCache
from django.core.cache.backends.redis import RedisCacheClient as DjangoRedisCacheClient


class RedisCacheClient(DjangoRedisCacheClient):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._clients: dict[int, object] = {}
        self._incr_scripts: dict[int, object] = {}
        self._incr_and_get_scripts: dict[int, object] = {}

    def get_client(self, key=None, *, write=False):
        index = self._get_connection_pool_index(write)
        client = self._clients.get(index)
        if client is None:
            # Racing threads may each build one; the last one stored wins and the others are dropped.
            pool = self._pools.get(index) or self._get_connection_pool(write)
            client = self._clients[index] = self._client(connection_pool=pool)
        return client

    def incr_counter(self, key: str, timeout: int | None, amount: int = 1) -> int:
        """``INCRBY key amount``; a missing key starts at 0 and, with a ``timeout``, expires that many seconds later.

        With a timeout it is one ``EVALSHA`` of ``INCR_WITH_EXPIRY``: one round trip, and atomic, so a
        key can never be left without its expiry (``INCR`` then ``EXPIRE`` as two commands could, and a
        ``MULTI``/``EXEC`` pipeline costs twice the client time of a script call).
        """
        client = self.get_client(key, write=True)
        if timeout is None:
            return client.incrby(key, amount)
        script = self._incr_scripts.get(id(client))
        if script is None:
            # redis-py's Script sends EVALSHA and loads the script on NOSCRIPT (e.g. after a Redis restart).
            script = self._incr_scripts[id(client)] = client.register_script(INCR_WITH_EXPIRY)
        return script(keys=[key], args=[timeout, amount])

    def incr_counter_and_get(self, key: str, read_keys: list[str]) -> tuple[int, list]:
        """``INCR key`` (no expiry) and ``GET`` of each of ``read_keys``, in one round trip (a script)."""
        client = self.get_client(key, write=True)
        script = self._incr_and_get_scripts.get(id(client))
        if script is None:
            script = self._incr_and_get_scripts[id(client)] = client.register_script(INCR_AND_GET)
        value, *raw = script(keys=[key, *read_keys])
        return value, [None if item is None else self._serializer.loads(item) for item in raw]


# The counter's rule in Redis: count, and give the key its lifetime when this increment created it.
INCR_WITH_EXPIRY = """
local amount = tonumber(ARGV[2])
local value = redis.call('INCRBY', KEYS[1], amount)
if value == amount then
    redis.call('EXPIRE', KEYS[1], ARGV[1])
end
return value
"""


# Count, and read other keys in the same round trip (a missing key reads as nil).
INCR_AND_GET = """
local reply = {redis.call('INCR', KEYS[1])}
for i = 2, #KEYS do
    reply[i] = redis.call('GET', KEYS[i])
end
return reply
"""


class RedisCache(DjangoRedisCache):
    """``django.core.cache.backends.redis.RedisCache`` with one ``redis.Redis`` per pool and ``incr_counter``."""

    def __init__(self, server, params) -> None:
        super().__init__(server, params)
        self._class = RedisCacheClient

    def incr_counter(self, key: str, timeout: float | None = None, amount: int = 1) -> int:
        """Add ``amount`` to ``key`` (a missing key starts at 0, lives ``timeout`` s; None: forever), one round trip."""
        key = self.make_and_validate_key(key)
        # Redis expiries are whole seconds: round up, so a counter never lives shorter than asked.
        return self._cache.incr_counter(key, None if timeout is None else max(1, math.ceil(timeout)), amount)

    def incr_counter_and_get(self, key: str, read_keys: list[str]) -> tuple[int, list]:
        """Add one to ``key`` (missing: starts at 0, never expires) and read ``read_keys``: one round trip."""
        keys = [self.make_and_validate_key(k) for k in [key, *read_keys]]
        return self._cache.incr_counter_and_get(keys[0], keys[1:])
