"""Django's Redis cache backend, minus two per-call costs that every hot request paid.

- Django's ``RedisCacheClient.get_client`` builds a new ``redis.Redis`` for every cache call, and with
  redis-py 8 that constructor fills a table of ~170 response callbacks (≈ 0.1 ms each time). A
  ``redis.Redis`` only borrows a connection from its pool per command, so one per pool serves every
  thread: it is built once here.
- ``cache.incr`` is two round trips (``EXISTS`` then ``INCRBY``), and a missing key costs two more
  (``SET NX``, then ``INCRBY`` again). ``incr_counter`` is one round trip; see its docstring.
  ``incr_counter_and_get`` also reads other keys in that round trip (a pick's position and the
  registry version).
- The least-connections pick keeps each active instance's load in a sorted set: ``least_loaded_take``
  (one script call per pick), ``least_loaded_rebuild`` and ``least_loaded_report`` (a heartbeat).
"""

import math
from collections.abc import Mapping
from typing import NamedTuple

from django.core.cache.backends.redis import RedisCache as DjangoRedisCache
from django.core.cache.backends.redis import RedisCacheClient as DjangoRedisCacheClient


class LeastLoaded(NamedTuple):
    """What ``least_loaded_take`` found: ``outcome`` is "taken", "none" (every member excluded) or "rebuild"."""

    outcome: str
    member: str | None  # the member taken ("taken" only)
    version: object  # the registry version now (deserialized), None when the key is missing
    version_raw: bytes  # the same as stored (b"" when missing): a rebuild records it as its built-at version


class RedisCacheClient(DjangoRedisCacheClient):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._clients: dict[int, object] = {}
        self._scripts: dict[tuple[int, str], object] = {}

    def get_client(self, key=None, *, write=False):
        index = self._get_connection_pool_index(write)
        client = self._clients.get(index)
        if client is None:
            # Racing threads may each build one; the last one stored wins and the others are dropped.
            pool = self._pools.get(index) or self._get_connection_pool(write)
            client = self._clients[index] = self._client(connection_pool=pool)
        return client

    def _script(self, client, source: str):
        """The Lua ``source`` registered with ``client``, once per client.

        redis-py's ``Script`` sends ``EVALSHA`` and loads the script on ``NOSCRIPT`` (e.g. after a Redis
        restart), so each call is one round trip.
        """
        key = (id(client), source)
        script = self._scripts.get(key)
        if script is None:
            script = self._scripts[key] = client.register_script(source)
        return script

    def incr_counter(self, key: str, timeout: int | None, amount: int = 1) -> int:
        """``INCRBY key amount``; a missing key starts at 0 and, with a ``timeout``, expires that many seconds later.

        With a timeout it is one ``EVALSHA`` of ``INCR_WITH_EXPIRY``: one round trip, and atomic, so a
        key can never be left without its expiry (``INCR`` then ``EXPIRE`` as two commands could, and a
        ``MULTI``/``EXEC`` pipeline costs twice the client time of a script call).
        """
        client = self.get_client(key, write=True)
        if timeout is None:
            return client.incrby(key, amount)
        return self._script(client, INCR_WITH_EXPIRY)(keys=[key], args=[timeout, amount])

    def incr_counter_and_get(self, key: str, read_keys: list[str]) -> tuple[int, list]:
        """``INCR key`` (no expiry) and ``GET`` of each of ``read_keys``, in one round trip (a script)."""
        client = self.get_client(key, write=True)
        value, *raw = self._script(client, INCR_AND_GET)(keys=[key, *read_keys])
        return value, [None if item is None else self._serializer.loads(item) for item in raw]

    def least_loaded_take(self, set_key: str, built_at_key: str, version_key: str, excluded: list[str]) -> LeastLoaded:
        """The lowest-scored member of ``set_key`` whose id is not in ``excluded``, its score raised by one.

        One ``EVALSHA`` of ``LEAST_LOADED_TAKE``. Nothing is taken when the set was built at another
        registry version than ``version_key`` holds now, or is missing: the answer is then a rebuild.
        """
        client = self.get_client(set_key, write=True)
        take = self._script(client, LEAST_LOADED_TAKE)
        outcome, version_raw, *taken = take(keys=[set_key, built_at_key, version_key], args=excluded)
        version = self._serializer.loads(version_raw) if version_raw else None
        return LeastLoaded(outcome.decode(), taken[0].decode() if taken else None, version, version_raw)

    def least_loaded_rebuild(
        self, set_key: str, built_at_key: str, version_raw: bytes, loads: list[tuple[str, int]]
    ) -> None:
        """Replace ``set_key`` by the members of ``loads`` ((member, load) pairs), built at ``version_raw``.

        One ``EVALSHA`` of ``LEAST_LOADED_REBUILD``, atomic: a member already in the set keeps its score
        (heartbeats and picks keep those exact), a new one takes its ``load``; members not in ``loads``
        go. ``built_at_key`` is set to ``version_raw``, the raw bytes ``least_loaded_take`` returned.
        """
        client = self.get_client(set_key, write=True)
        args: list = [version_raw]
        for member, load in loads:
            args += (load, member)
        self._script(client, LEAST_LOADED_REBUILD)(keys=[set_key, built_at_key], args=args)

    def least_loaded_report(self, set_key: str, loads: Mapping[str, int]) -> None:
        """``ZADD set_key XX load member …``: each member's score becomes its load; nobody new is added."""
        self.get_client(set_key, write=True).zadd(set_key, dict(loads), xx=True)


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


# The least-connections pick. KEYS: the sorted set (member "<registration order>:<instance id>", see
# instances.balancing.least_loaded_member; score: connections + picks since the last heartbeat), the
# registry version it was built at, the registry version now. ARGV: the excluded ids. The versions are
# compared as raw bytes: the built-at one is stored as the very bytes this script returned, so no
# (de)serialization can make equal versions differ. Equal scores go by member: registration order.
# Reply: {outcome, raw version now, member taken}.
LEAST_LOADED_TAKE = """
local version = redis.call('GET', KEYS[3]) or ''
if redis.call('GET', KEYS[2]) ~= version or redis.call('EXISTS', KEYS[1]) == 0 then
    return {'rebuild', version}
end
local excluded = {}
for i = 1, #ARGV do
    excluded[ARGV[i]] = true
end
-- At most #ARGV members are excluded: the first #ARGV + 1 hold a candidate if the set has one.
local members = redis.call('ZRANGE', KEYS[1], 0, #ARGV)
for i = 1, #members do
    local member = members[i]
    if not excluded[string.sub(member, string.find(member, ':', 1, true) + 1)] then
        redis.call('ZINCRBY', KEYS[1], 1, member)
        return {'taken', version, member}
    end
end
return {'none', version}
"""


# Replace the set atomically. KEYS: the sorted set, its built-at version. ARGV: the built-at version
# (raw), then load, member pairs. A member already in the set keeps its score: heartbeats and picks
# update the set directly, so it is the truth for the members it has; a new member takes the database's
# load. ZADD goes in chunks: Lua's unpack() is limited to a few thousand values.
LEAST_LOADED_REBUILD = """
local args = {}
for i = 2, #ARGV, 2 do
    local member = ARGV[i + 1]
    args[#args + 1] = redis.call('ZSCORE', KEYS[1], member) or ARGV[i]
    args[#args + 1] = member
end
redis.call('DEL', KEYS[1])
for first = 1, #args, 2000 do
    redis.call('ZADD', KEYS[1], unpack(args, first, math.min(first + 1999, #args)))
end
redis.call('SET', KEYS[2], ARGV[1])
return #args / 2
"""


class RedisCache(DjangoRedisCache):
    """Django's ``RedisCache`` with one ``redis.Redis`` per pool, ``incr_counter`` and the least-loaded sorted set."""

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

    def least_loaded_take(self, key: str, built_at_key: str, version_key: str, excluded: list[str]) -> LeastLoaded:
        """The least-loaded member of the sorted set ``key`` not in ``excluded``, its pick counted: one round trip.

        A rebuild is asked for (``outcome`` "rebuild") when ``built_at_key`` differs from ``version_key``
        (the registry version) or the set is missing (a Redis restart, an eviction).
        """
        keys = [self.make_and_validate_key(k) for k in (key, built_at_key, version_key)]
        return self._cache.least_loaded_take(*keys, excluded)

    def least_loaded_rebuild(
        self, key: str, built_at_key: str, version_raw: bytes, loads: list[tuple[str, int]]
    ) -> None:
        """Replace the sorted set ``key`` by ``loads`` (existing members keep their score), built at ``version_raw``."""
        self._cache.least_loaded_rebuild(
            self.make_and_validate_key(key), self.make_and_validate_key(built_at_key), version_raw, loads
        )

    def least_loaded_report(self, key: str, loads: Mapping[str, int]) -> None:
        """Set each member's score in the sorted set ``key`` to its load if it is there (heartbeats): one round trip."""
        self._cache.least_loaded_report(self.make_and_validate_key(key), loads)
