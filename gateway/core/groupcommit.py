"""Group commit: concurrent submissions coalesced into batches, each run as one transaction.

A caller's ``submit`` returns only when the batch holding its item has run (committed or
failed), so "committed before the channel is answered" holds for every item. While a batch
runs, new submissions queue; when it ends, they form the next batch (at most ``max_batch``). An
idle coalescer runs a lone item at once, so a quiet gateway pays no added wait; under load the
batches grow by themselves with the time a commit takes (one fsync per batch on SQLite). Up to
``parallel`` batches run at once (PostgreSQL: several connections; SQLite: one).

``run`` returns one result per item, in order: a value, or the exception of that item alone, so
one bad message never fails its batch-mates (``gateway/core/intake.py`` retries a failed batch
item by item).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

BatchRunner = Callable[[Sequence[T]], Awaitable[Sequence[R | BaseException]]]


class GroupCommit(Generic[T, R]):
    def __init__(self, run: BatchRunner[T, R], *, max_batch: int = 64, parallel: int = 1) -> None:
        if max_batch < 1 or parallel < 1:
            raise ValueError("max_batch and parallel must be at least 1")
        self._run = run
        self.max_batch = max_batch
        self.parallel = parallel
        self._queue: list[tuple[T, asyncio.Future[R]]] = []
        self._running = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self.batches = 0  # batches run (for tests and metrics)
        self.largest = 0  # the largest batch run

    @property
    def waiting(self) -> int:
        """Items queued for a batch that has not started."""
        return len(self._queue)

    async def submit(self, item: T) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue.append((item, future))
        if self._running < self.parallel:
            self._running += 1
            task = asyncio.create_task(self._drain())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return await asyncio.shield(future)

    async def _drain(self) -> None:
        try:
            await asyncio.sleep(0)  # let submissions of the same loop turn join the first batch
            while self._queue:
                batch, self._queue = self._queue[: self.max_batch], self._queue[self.max_batch :]
                self.batches += 1
                self.largest = max(self.largest, len(batch))
                try:
                    results: Sequence[R | BaseException] = await self._run([item for item, _ in batch])
                    if len(results) != len(batch):
                        raise RuntimeError(f"batch of {len(batch)} answered {len(results)} results")
                except Exception as exc:  # the runner failed as a whole: every item learns why
                    results = [exc] * len(batch)
                for (_, future), result in zip(batch, results, strict=True):
                    if future.done():
                        continue
                    if isinstance(result, BaseException):
                        future.set_exception(result)
                    else:
                        future.set_result(result)
        finally:
            self._running -= 1
