"""Batches built in parallel ahead of the training step, and the time the step waits for them.

A feature or frames shard is read with pyarrow and decoded with OpenCV, which both release the
GIL, so a small thread pool builds several batches at once in one process (no pickling, no
start-up). :func:`parallel_batches` keeps ``depth`` batches in flight on ``workers`` threads and
yields them in order; :class:`WaitClock` measures how long the consumer (the training step)
waited for each one, so an epoch's time splits into waiting-for-data and compute.

Randomness stays deterministic whatever the number of workers: :func:`seeded_items` gives each
batch its own generator, spawned from the epoch's in batch order, before any worker runs.
"""

from __future__ import annotations

import contextlib
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Generic, TypeVar

import numpy as np

T = TypeVar("T")
B = TypeVar("B")


def seeded_items(items: Iterable[T], rng: np.random.Generator | None) -> Iterator[tuple[T, np.random.Generator | None]]:
    """(item, its own generator spawned from ``rng`` in order) — or (item, None) without ``rng``."""
    for item in items:
        yield item, (rng.spawn(1)[0] if rng is not None else None)


class ParallelBatches(Iterator[B]):
    """``build(item)`` of every item, in order, built on ``workers`` threads with up to ``depth``
    batches ahead of the consumer (``workers`` 0: built in the consumer's thread, nothing ahead).

    Building starts when the object is created, so creating the next epoch's batches before
    validating and checkpointing this one hides the pipeline's fill. An error raised by
    ``build`` is re-raised at that batch's position; :meth:`close` cancels what has not started.
    """

    def __init__(self, build: Callable[[T], B], items: Iterable[T], workers: int = 2, depth: int = 4):
        if workers < 0 or depth < 1:
            raise ValueError(f"parallel_batches needs workers >= 0 and depth >= 1, got workers={workers}, depth={depth}")
        self._build = build
        self._source = iter(items)
        self._depth = depth
        self._pending: deque[Future] = deque()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="batches") if workers else None
        self._fill()

    def _fill(self) -> None:
        if self._pool is None:
            return
        while len(self._pending) < self._depth:
            item = next(self._source, _END)
            if item is _END:
                return
            self._pending.append(self._pool.submit(self._build, item))

    def __iter__(self) -> ParallelBatches[B]:
        return self

    def __next__(self) -> B:
        if self._pool is None:
            item = next(self._source, _END)
            if item is _END:
                raise StopIteration
            return self._build(item)
        if not self._pending:
            self.close()
            raise StopIteration
        future = self._pending.popleft()
        with contextlib.ExitStack() as on_error:  # a failed batch stops the threads, then propagates
            on_error.callback(self.close)
            batch = future.result()
            on_error.pop_all()
        self._fill()
        return batch

    def close(self) -> None:
        """Cancel the batches not yet started and stop the threads."""
        for future in self._pending:
            future.cancel()
        self._pending.clear()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)


def parallel_batches(build: Callable[[T], B], items: Iterable[T], workers: int = 2, depth: int = 4) -> ParallelBatches[B]:
    """:class:`ParallelBatches` of ``build`` over ``items`` (see there)."""
    return ParallelBatches(build, items, workers, depth)


_END: Any = object()


class WaitClock(Generic[B]):
    """An iterator over ``items`` that adds up the seconds its consumer waited in ``next``."""

    def __init__(self, items: Iterable[B]):
        self._items = iter(items)
        self.wait_seconds = 0.0
        self.batches = 0

    def __iter__(self) -> WaitClock[B]:
        return self

    def __next__(self) -> B:
        started = time.perf_counter()
        try:
            item = next(self._items)
        finally:
            self.wait_seconds += time.perf_counter() - started
        self.batches += 1
        return item


def wait_metrics(clock: WaitClock, epoch_seconds: float, prefix: str = "train") -> dict[str, float]:
    """``<prefix>/data_wait_fraction`` (waiting for batches / the epoch's step time), the seconds
    waited and the epoch's seconds."""
    return {
        f"{prefix}/data_wait_fraction": clock.wait_seconds / epoch_seconds if epoch_seconds > 0 else 0.0,
        f"{prefix}/data_wait_seconds": clock.wait_seconds,
        f"{prefix}/epoch_seconds": epoch_seconds,
    }
