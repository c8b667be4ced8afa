"""The agent's local inbox: a bounded buffer between the receiver loop and the handlers."""

from __future__ import annotations

import asyncio
from typing import Generic, TypeVar

T = TypeVar("T")


class InboxBuffer(Generic[T]):
    """A bounded FIFO (the seed's ``MessageQueue(max_size=1000)`` on the agent side).

    The receiver leases at most ``free`` messages, so a slow agent never holds more leases than it can
    work through; what it has not leased stays in its server-side queue, where other servers see it.
    """

    def __init__(self, max_size: int = 1000) -> None:
        if max_size < 1:
            raise ValueError("max_size must be at least 1")
        self.max_size = max_size
        self._queue: asyncio.Queue[T] = asyncio.Queue(maxsize=max_size)

    def __len__(self) -> int:
        return self._queue.qsize()

    @property
    def free(self) -> int:
        """How many more items fit."""
        return self.max_size - self._queue.qsize()

    def put_nowait(self, item: T) -> None:
        """Add an item; raises ``asyncio.QueueFull`` when the buffer is full."""
        self._queue.put_nowait(item)

    async def put(self, item: T) -> None:
        """Add an item, waiting for room."""
        await self._queue.put(item)

    async def get(self) -> T:
        """The oldest item, waiting for one."""
        return await self._queue.get()

    def task_done(self) -> None:
        """Mark one item handled (room is what the receiver looks at; this keeps ``join`` working)."""
        self._queue.task_done()

    async def join(self) -> None:
        """Wait until every item put so far is handled."""
        await self._queue.join()
