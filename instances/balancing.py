"""Load-balancing strategies (pure: no Django, no ORM).

A strategy picks one candidate from a non-empty, ordered sequence of objects that have ``id``,
``weight``, ``connections`` and ``picks_since_heartbeat``. Any state that several Seed processes must
share (a rotation position) is *not* kept in the strategy: it comes from a ``Counter`` whose ``incr``
is atomic across processes (the service passes one backed by Django's cache, i.e. Redis when deployed).
"""

from __future__ import annotations

import importlib
import inspect
import math
import random
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from functools import lru_cache, reduce
from typing import Any, Protocol


class LoadBalanceStrategy(StrEnum):
    """The four built-in strategies (the seed's names); a ``str`` Enum, so members compare equal to their names."""

    ROUND_ROBIN = "round_robin"
    LEAST_CONNECTIONS = "least_connections"
    RANDOM = "random"
    WEIGHTED = "weighted"


class Counter(Protocol):
    """An atomic, shared counter: ``incr`` returns the value after adding one (first call -> 1)."""

    def incr(self, key: str) -> int: ...


class Candidate(Protocol):
    """What a strategy may look at on an instance."""

    id: Any
    weight: int
    connections: int
    picks_since_heartbeat: int


class UnknownStrategy(ValueError):
    """A strategy name that is neither built in nor configured as a custom strategy."""

    def __init__(self, name: str, valid: Sequence[str], cause: str | None = None) -> None:
        self.name = name
        self.valid = list(valid)
        message = f"Unknown load-balancing strategy {name!r}; valid: {', '.join(self.valid)}"
        if cause:
            message += f" ({cause})"
        super().__init__(message)


class RoundRobinStrategy:
    """Each candidate in turn; the position is a shared counter so every process rotates together."""

    name = LoadBalanceStrategy.ROUND_ROBIN.value

    def __init__(self, *, counter: Counter, key: str = "lb:round_robin") -> None:
        self.counter = counter
        self.key = key

    def next_ordinal(self) -> int:
        """This pick's place in the endless rotation (0, 1, 2, ...), shared by every process."""
        return self.counter.incr(self.key) - 1

    def select_instance(self, instances: Sequence[Candidate]) -> Candidate:
        return instances[rotation_index(self.next_ordinal(), len(instances))]


def rotation_index(ordinal: int, n: int) -> int:
    """The rule of every rotation: the ``ordinal``-th pick lands on position ``ordinal mod n``.

    (The service applies the same rule inside its SQL for round robin and random, where ``n`` is the
    live count of candidates: ``OFFSET ordinal % count``.)
    """
    return ordinal % n


# A smooth-WRR period longer than this many steps × weight classes is not computed as is: see
# ``bounded_weights``.
MAX_SEQUENCE_WORK = 2_000_000


def bounded_weights(weights: Sequence[int], max_work: int = MAX_SEQUENCE_WORK) -> tuple[int, ...]:
    """``weights`` divided by their gcd; if one smooth-WRR period would still cost more than ``max_work``
    (period length × distinct weights), the weights are scaled down proportionally (rounded, at least 1).

    This is the documented fallback for huge ``Σw/gcd``: the sequence stays smooth and deterministic,
    and every instance keeps at least one slot, but the proportions are those of the scaled weights
    (each within rounding of ``w/Σw``) instead of exact. With the 1..1000 weight range it only triggers
    when thousands of instances have many distinct weights.
    """
    if not weights or any(w < 1 for w in weights):
        raise ValueError("weights must be positive integers")
    divisor = reduce(math.gcd, weights)
    reduced = tuple(w // divisor for w in weights)
    total, classes = sum(reduced), len(set(reduced))
    if total * classes <= max_work:
        return reduced
    # Scaling shrinks both the period and the number of distinct weights: shrink until it fits (or until
    # every weight is 1, the floor: a plain rotation).
    target = total
    while True:
        target = max(len(reduced), int(target * 0.8))
        scaled = [max(1, round(w * target / total)) for w in reduced]
        if sum(scaled) * len(set(scaled)) <= max_work or target == len(reduced):
            divisor = reduce(math.gcd, scaled)
            return tuple(w // divisor for w in scaled)


@lru_cache(maxsize=128)
def smooth_weighted_sequence(weights: tuple[int, ...]) -> tuple[int, ...]:
    """One period of nginx's smooth weighted round robin, as indexes into ``weights``.

    Weights are divided by their gcd first, so the period is as short as possible. The sequence is
    derived data (a pure function of the weights), so memoising it is safe across processes.

    nginx's rule: every step each candidate's ``current`` grows by its weight, the largest ``current``
    (ties: the earlier candidate) is picked and loses the total. After ``t`` steps a candidate picked
    ``k`` times has ``current = t·w − total·k``. Candidates of equal weight therefore take their turns
    among themselves in index order, so they are stepped as one class (its next member, its pick
    count): a step costs O(distinct weights), not O(candidates), with exactly nginx's sequence.
    """
    if not weights or any(w < 1 for w in weights):
        raise ValueError("weights must be positive integers")
    divisor = reduce(math.gcd, weights)
    reduced = [w // divisor for w in weights]
    total = sum(reduced)
    members: dict[int, list[int]] = {}
    for index, w in enumerate(reduced):
        members.setdefault(w, []).append(index)
    class_weights = list(members)
    class_members = [members[w] for w in class_weights]
    class_sizes = [len(m) for m in class_members]
    class_picks = [0] * len(class_weights)
    classes = range(len(class_weights))
    sequence = []
    for t in range(1, total + 1):
        best, best_key = 0, None
        for c in classes:
            picks, size = class_picks[c], class_sizes[c]
            # The class's next member has the class's fewest picks (picks // size) and the lowest index.
            key = (t * class_weights[c] - total * (picks // size), -class_members[c][picks % size])
            if best_key is None or key > best_key:
                best, best_key = c, key
        picks = class_picks[best]
        sequence.append(class_members[best][picks % class_sizes[best]])
        class_picks[best] = picks + 1
    return tuple(sequence)


class WeightedStrategy:
    """Smooth weighted round robin (nginx): weights 5,1,1 give a,a,b,a,c,a,a, not five a's in a row."""

    name = LoadBalanceStrategy.WEIGHTED.value

    def __init__(self, *, counter: Counter, key: str = "lb:weighted") -> None:
        self.counter = counter
        self.key = key

    def next_ordinal(self) -> int:
        """This pick's place in the endless weighted rotation, shared by every process."""
        return self.counter.incr(self.key) - 1

    @staticmethod
    def sequence(weights: Sequence[int]) -> tuple[int, ...]:
        """One period for these weights (indexes into them), capped as ``bounded_weights`` says."""
        return smooth_weighted_sequence(bounded_weights([max(1, int(w)) for w in weights]))

    def select_instance(self, instances: Sequence[Candidate]) -> Candidate:
        sequence = self.sequence([c.weight for c in instances])
        return instances[sequence[rotation_index(self.next_ordinal(), len(sequence))]]


class LeastConnectionsStrategy:
    """Fewest reported connections plus picks handed out since that report; ties go to the earlier one."""

    name = LoadBalanceStrategy.LEAST_CONNECTIONS.value

    def __init__(self, *, counter: Counter | None = None) -> None:
        self.counter = counter

    def select_instance(self, instances: Sequence[Candidate]) -> Candidate:
        # min() keeps the first of equal keys, which is the (registered_at, id) order.
        return min(instances, key=lambda c: (c.connections or 0) + (c.picks_since_heartbeat or 0))


def least_loaded_member(registered_at: datetime, instance_id: Any) -> str:
    """An instance's name in the least-loaded sorted set: ``"<registered_at in µs since 1970, 20 digits>:<id>"``.

    A sorted set orders equal scores by member, byte by byte: these names order ties as the SQL pick does
    (``registered_at, id``; the ids' hex text sorts as their bytes). The id follows the first colon.
    """
    return f"{(registered_at - _EPOCH) // _MICROSECOND:020d}:{instance_id}"


def least_loaded_member_id(member: str) -> str:
    """The instance id in a ``least_loaded_member`` name."""
    return member.partition(":")[2]


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


class RandomStrategy:
    """A uniformly random candidate."""

    name = LoadBalanceStrategy.RANDOM.value

    def __init__(self, *, counter: Counter | None = None) -> None:
        self.counter = counter

    def random_ordinal(self) -> int:
        """A random place in an endless rotation: ``rotation_index`` of it is uniform (bias < n / 2**53)."""
        return random.randrange(2**53)

    def select_instance(self, instances: Sequence[Candidate]) -> Candidate:
        return random.choice(instances)


BUILTIN_STRATEGIES: dict[str, type] = {
    LoadBalanceStrategy.ROUND_ROBIN.value: RoundRobinStrategy,
    LoadBalanceStrategy.LEAST_CONNECTIONS.value: LeastConnectionsStrategy,
    LoadBalanceStrategy.RANDOM.value: RandomStrategy,
    LoadBalanceStrategy.WEIGHTED.value: WeightedStrategy,
}


def strategy_names(custom: Mapping[str, str] | None = None) -> list[str]:
    """Every name ``get_strategy`` accepts: the built-ins, then the configured custom ones."""
    names = list(BUILTIN_STRATEGIES)
    names += [name for name in (custom or {}) if name not in BUILTIN_STRATEGIES]
    return names


def _load_class(dotted_path: str) -> type:
    module_path, _, class_name = dotted_path.rpartition(".")
    if not module_path:
        raise ImportError(f"{dotted_path!r} is not a dotted path")
    module = importlib.import_module(module_path)
    try:
        return getattr(module, class_name)
    except AttributeError as exc:
        raise ImportError(f"module {module_path!r} has no attribute {class_name!r}") from exc


def _instantiate(cls: type, counter: Counter) -> Any:
    # The seed's custom strategies take no arguments; ours may accept the shared counter.
    try:
        parameters = inspect.signature(cls).parameters
    except (TypeError, ValueError):
        parameters = {}
    return cls(counter=counter) if "counter" in parameters else cls()


def get_strategy(name: str | LoadBalanceStrategy, *, counter: Counter, custom: Mapping[str, str] | None = None) -> Any:
    """The strategy object for ``name``; custom names map to dotted class paths (SEED_CUSTOM_STRATEGIES)."""
    key = name.value if isinstance(name, LoadBalanceStrategy) else str(name)
    custom = custom or {}
    valid = strategy_names(custom)
    if key in BUILTIN_STRATEGIES:
        return BUILTIN_STRATEGIES[key](counter=counter)
    if key in custom:
        try:
            cls = _load_class(custom[key])
        except ImportError as exc:
            raise UnknownStrategy(key, valid, cause=f"cannot load {custom[key]!r}: {exc}") from exc
        strategy = _instantiate(cls, counter)
        if not callable(getattr(strategy, "select_instance", None)):
            raise UnknownStrategy(key, valid, cause=f"{custom[key]!r} has no select_instance(self, instances)")
        return strategy
    raise UnknownStrategy(key, valid)
