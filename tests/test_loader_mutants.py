"""Per-batch random generators that do not depend on worker scheduling (issue 26).

The promise (``videolstm/loader.py``): "Randomness stays deterministic whatever the number of
workers: ``seeded_items`` gives each batch its own generator, spawned from the epoch's in batch
order, before any worker runs." So batch i's draws are those of the i-th child spawned from the
epoch's generator, whichever thread builds it and in whatever order the threads draw.
"""

from __future__ import annotations

import re
import threading
import time

import numpy as np
import pytest

from videolstm.loader import parallel_batches, seeded_items

BATCHES = 6


def _slow_first(item: tuple[int, np.random.Generator]) -> list[int]:
    """Draw after a delay that shrinks with the batch index: later batches draw first."""
    index, rng = item
    time.sleep(0.04 * (BATCHES - index))
    return rng.integers(0, 1_000_000, 4).tolist()


def test_batch_i_draws_from_the_i_th_generator_spawned_from_the_epochs():
    expected = [child.integers(0, 1_000_000, 4).tolist() for child in np.random.default_rng(11).spawn(BATCHES)]
    items = seeded_items(range(BATCHES), np.random.default_rng(11))
    assert [rng.integers(0, 1_000_000, 4).tolist() for _, rng in items] == expected


def test_draws_do_not_depend_on_which_thread_draws_first():
    """Six workers start every batch at once; the last batch draws first, the first last."""
    sequential = list(parallel_batches(_slow_first, seeded_items(range(BATCHES), np.random.default_rng(3)), workers=0))
    order: list[int] = []
    lock = threading.Lock()

    def build(item):
        out = _slow_first(item)
        with lock:
            order.append(item[0])
        return out

    threaded = list(parallel_batches(build, seeded_items(range(BATCHES), np.random.default_rng(3)), workers=BATCHES, depth=BATCHES))
    assert order != sorted(order)  # the threads really did draw out of order
    assert threaded == sequential


def test_each_batch_gets_a_generator_of_its_own():
    gens = [rng for _, rng in seeded_items(range(4), np.random.default_rng(0))]
    assert len({id(g) for g in gens}) == 4
    first = [g.integers(0, 1_000_000) for g in gens]
    assert len(set(first)) == 4  # independent streams, not one stream continued


def test_the_epochs_generator_is_spawned_from_not_drawn_from():
    """Spawning children leaves the parent's own stream where it was (SeedSequence children)."""
    parent = np.random.default_rng(9)
    list(seeded_items(range(3), parent))
    assert parent.integers(0, 1_000_000) == np.random.default_rng(9).integers(0, 1_000_000)


def test_by_default_two_threads_build_and_four_batches_are_in_flight():
    """``parallel_batches(build, items)``: workers=2 threads, depth=4 batches ahead of the consumer."""
    release = threading.Event()
    started: list[int] = []
    pulled: list[int] = []
    lock = threading.Lock()

    def source():
        for i in range(10):
            pulled.append(i)
            yield i

    def build(i):
        with lock:
            started.append(i)
        release.wait(5)
        return i

    batches = parallel_batches(build, source())
    try:
        deadline = time.monotonic() + 10
        while len(started) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.2)  # a third thread, if there were one, would start now
        assert sorted(started) == [0, 1]  # two threads, both busy
        assert pulled == [0, 1, 2, 3]  # four batches submitted, the fifth not yet
    finally:
        release.set()
        assert list(batches) == list(range(10))


def test_the_threads_are_named_batches():
    names = list(parallel_batches(lambda _: threading.current_thread().name, range(3), workers=2, depth=2))
    assert all(name.startswith("batches_") for name in names), names


@pytest.mark.parametrize(("workers", "depth"), [(-1, 4), (2, 0), (-1, 0)])
def test_negative_workers_or_no_depth_are_refused(workers, depth):
    message = f"parallel_batches needs workers >= 0 and depth >= 1, got workers={workers}, depth={depth}"
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        parallel_batches(lambda i: i, range(3), workers=workers, depth=depth)


def test_a_depth_of_one_builds_one_batch_ahead():
    assert list(parallel_batches(lambda i: i * 2, range(5), workers=1, depth=1)) == [0, 2, 4, 6, 8]
