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

    def select_instance(self, instances: Sequence[Candidate]) -> Candidate:
        position = self.counter.incr(self.key) - 1
        return instances[position % len(instances)]


@lru_cache(maxsize=128)
def smooth_weighted_sequence(weights: tuple[int, ...]) -> tuple[int, ...]:
    """One period of nginx's smooth weighted round robin, as indexes into ``weights``.

    Weights are divided by their gcd first, so the period is as short as possible. The sequence is
    derived data (a pure function of the weights), so memoising it is safe across processes.
    """
    if not weights or any(w < 1 for w in weights):
        raise ValueError("weights must be positive integers")
    divisor = reduce(math.gcd, weights)
    reduced = [w // divisor for w in weights]
    total = sum(reduced)
    current = [0] * len(reduced)
    sequence = []
    for _ in range(total):
        for i, w in enumerate(reduced):
            current[i] += w
        # max() returns the first maximum, so ties go to the earlier candidate: deterministic.
        best = max(range(len(current)), key=current.__getitem__)
        current[best] -= total
        sequence.append(best)
    return tuple(sequence)


class WeightedStrategy:
    """Smooth weighted round robin (nginx): weights 5,1,1 give a,a,b,a,c,a,a, not five a's in a row."""

    name = LoadBalanceStrategy.WEIGHTED.value

    def __init__(self, *, counter: Counter, key: str = "lb:weighted") -> None:
        self.counter = counter
        self.key = key

    def select_instance(self, instances: Sequence[Candidate]) -> Candidate:
        sequence = smooth_weighted_sequence(tuple(max(1, int(c.weight)) for c in instances))
        position = self.counter.incr(self.key) - 1
        return instances[sequence[position % len(sequence)]]


class LeastConnectionsStrategy:
    """Fewest reported connections plus picks handed out since that report; ties go to the earlier one."""

    name = LoadBalanceStrategy.LEAST_CONNECTIONS.value

    def __init__(self, *, counter: Counter | None = None) -> None:
        self.counter = counter

    def select_instance(self, instances: Sequence[Candidate]) -> Candidate:
        # min() keeps the first of equal keys, which is the (registered_at, id) order.
        return min(instances, key=lambda c: (c.connections or 0) + (c.picks_since_heartbeat or 0))


class RandomStrategy:
    """A uniformly random candidate."""

    name = LoadBalanceStrategy.RANDOM.value

    def __init__(self, *, counter: Counter | None = None) -> None:
        self.counter = counter

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
