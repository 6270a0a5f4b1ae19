"""Per-batch random generators that do not depend on worker scheduling (issue 26).

The promise (``videolstm/loader.py``): "Randomness stays deterministic whatever the number of
workers: ``seeded_items`` gives each batch its own generator, spawned from the epoch's in batch
order, before any worker runs." So batch i's draws are those of the i-th child spawned from the
epoch's generator, whichever thread builds it and in whatever order the threads draw.
"""

from __future__ import annotations

import threading
import time

import numpy as np

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
