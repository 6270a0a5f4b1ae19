"""videolstm.loader: ordered parallel batches, deterministic per-batch randomness, wait time."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from videolstm.loader import WaitClock, parallel_batches, seeded_items, wait_metrics


@pytest.mark.parametrize("workers", [0, 1, 3])
def test_batches_come_in_order_whatever_the_workers(workers):
    def build(i):
        time.sleep(0.002 * ((7 * i) % 5))  # finish out of order
        return i * i

    assert list(parallel_batches(build, range(20), workers=workers, depth=4)) == [i * i for i in range(20)]


def test_several_batches_are_built_at_once():
    running, peak, lock = [0], [0], threading.Lock()

    def build(i):
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.02)
        with lock:
            running[0] -= 1
        return i

    assert list(parallel_batches(build, range(8), workers=4, depth=4)) == list(range(8))
    assert peak[0] >= 2


def test_at_most_depth_batches_are_built_ahead():
    started = []
    gen = parallel_batches(lambda i: started.append(i) or i, range(100), workers=2, depth=3)
    assert next(gen) == 0
    time.sleep(0.05)
    assert len(started) <= 4  # the one consumed + depth in flight
    gen.close()


def test_an_error_is_raised_at_its_batch():
    def build(i):
        if i == 3:
            raise RuntimeError("shard 3 is corrupt")
        return i

    got = []
    with pytest.raises(RuntimeError, match="shard 3"):
        for b in parallel_batches(build, range(10), workers=2, depth=2):
            got.append(b)
    assert got == [0, 1, 2]


def test_per_batch_generators_do_not_depend_on_the_workers():
    def draws(workers):
        items = seeded_items(range(6), np.random.default_rng(5))
        return list(parallel_batches(lambda item: item[1].integers(0, 1000, 3).tolist(), items, workers=workers, depth=3))

    assert draws(0) == draws(1) == draws(4)
    assert len({tuple(d) for d in draws(2)}) == 6
    assert list(seeded_items([1], None)) == [(1, None)]


def test_wait_clock_counts_the_time_spent_waiting_for_batches():
    def slow():
        for i in range(3):
            time.sleep(0.03)
            yield i

    clock = WaitClock(slow())
    assert list(clock) == [0, 1, 2] and clock.batches == 3
    assert 0.08 <= clock.wait_seconds < 0.5
    metrics = wait_metrics(clock, epoch_seconds=clock.wait_seconds * 2)
    assert metrics["train/data_wait_fraction"] == pytest.approx(0.5)
    assert wait_metrics(WaitClock([]), 0.0)["train/data_wait_fraction"] == 0.0


def test_building_starts_before_the_first_batch_is_asked_for():
    started = threading.Event()
    batches = parallel_batches(lambda i: started.set() or i, range(3), workers=1, depth=2)
    assert started.wait(timeout=5)  # the next epoch's batches build while this one validates
    assert list(batches) == [0, 1, 2]


def test_closing_early_stops_the_threads():
    batches = parallel_batches(lambda i: time.sleep(0.01) or i, range(100), workers=2, depth=4)
    assert next(batches) == 0
    batches.close()
    assert not any(t.name.startswith("batches") for t in threading.enumerate())
