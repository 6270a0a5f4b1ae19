"""Per-item leases (videolstm.store.lease): one holder at a time, waiters reuse, the dead are taken over.

Local folders and S3 (a real moto server, conditional ``If-None-Match: *`` writes) alike. Runs are
threads with their own holder ids (the lease is a storage protocol: threads race on storage as
processes do) and, for the killed holder, a real child process killed with SIGKILL.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter

import pytest

from tests.reliability.ledger import record
from videolstm.config import StorageConfig
from videolstm.store import storage as st
from videolstm.store.lease import Lease, LeaseRecord, LeaseTimeout, compute_once, create_exclusive, current, lease_dir, try_acquire


@pytest.fixture(params=["local", "s3"])
def root(request, tmp_path) -> tuple[str, StorageConfig | None]:
    if request.param == "local":
        return str(tmp_path), None
    storage, bucket = request.getfixturevalue("moto_s3")
    return f"s3://{bucket}", storage


def test_exclusive_create_lets_exactly_one_writer_win(root):
    base, storage = root
    uri = st.join(base, "item.lease", "000000")
    results: list[bool] = []
    barrier = threading.Barrier(8)

    def contend(i: int) -> None:
        barrier.wait()
        results.append(create_exclusive(uri, f"writer {i}".encode(), storage))

    threads = [threading.Thread(target=contend, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False] * 7 + [True]
    assert st.read_bytes(uri, storage).startswith(b"writer ")
    assert create_exclusive(uri, b"late", storage) is False
    assert st.read_bytes(uri, storage) != b"late"


def test_a_live_lease_is_refused_to_another_run_and_names_its_holder(root):
    base, storage = root
    out = st.join(base, "shards", "v1.parquet")
    mine = try_acquire(out, "run-a", ttl=30, storage=storage)
    assert isinstance(mine, Lease)
    theirs = try_acquire(out, "run-b", ttl=30, storage=storage)
    assert isinstance(theirs, LeaseRecord) and theirs.holder == "run-a" and theirs.pid == os.getpid()
    mine.release()
    again = try_acquire(out, "run-b", ttl=30, storage=storage)
    assert isinstance(again, Lease) and again.record.holder == "run-b"


def test_an_expired_lease_is_taken_over_by_exactly_one_of_many(root):
    base, storage = root
    out = st.join(base, "shards", "v2.parquet")
    dead = try_acquire(out, "dead-run", ttl=0.3, storage=storage)
    assert isinstance(dead, Lease)
    time.sleep(0.5)
    got: list[Lease | LeaseRecord] = []
    barrier = threading.Barrier(6)

    def contend(i: int) -> None:
        barrier.wait()
        got.append(try_acquire(out, f"run-{i}", ttl=30, storage=storage))

    threads = [threading.Thread(target=contend, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [g for g in got if isinstance(g, Lease)]
    assert len(winners) == 1
    assert all(g.holder == winners[0].record.holder for g in got if isinstance(g, LeaseRecord))
    assert winners[0].record.generation == 1
    assert not dead.renew() and dead.lost is not None and dead.lost.holder == winners[0].record.holder
    assert current(out, storage).holder == winners[0].record.holder


def test_a_renewed_lease_outlives_its_ttl_and_the_waiter_reuses_the_output(root):
    base, storage = root
    out = st.join(base, "shards", "v3.parquet")
    computed: list[str] = []
    waits: list[LeaseRecord] = []

    def slow() -> str:
        computed.append("a")
        time.sleep(9.0)  # more than its ttl: only renewal keeps the lease
        st.write_bytes(out, b"from a", storage)
        return "computed by a"

    first = threading.Thread(
        target=lambda: compute_once(out, lambda: st.exists(out, storage), slow, lambda: "reused", holder="run-a", storage=storage, ttl=6, poll=0.1)
    )
    first.start()
    while current(out, storage) is None:
        time.sleep(0.02)
    result = compute_once(
        out,
        lambda: st.exists(out, storage),
        lambda: computed.append("b") or "computed by b",
        lambda: st.read_bytes(out, storage).decode(),
        holder="run-b",
        storage=storage,
        ttl=6,
        poll=0.1,
        on_wait=waits.append,
    )
    first.join()
    assert computed == ["a"] and result == "from a"
    assert [w.holder for w in waits] == ["run-a"]  # told once, naming the other run
    assert current(out, storage) is None  # released


def test_two_runs_over_the_same_items_compute_each_once(root):
    base, storage = root
    items = [st.join(base, "shards", f"item{i}.parquet") for i in range(12)]
    calls: Counter[str] = Counter()
    results: dict[str, list[str]] = {}

    def run(holder: str) -> None:
        out = []
        for uri in items:

            def compute(uri=uri) -> str:
                calls[uri] += 1
                time.sleep(0.05)
                st.write_bytes(uri, holder.encode(), storage)
                return holder

            out.append(
                compute_once(
                    uri,
                    lambda uri=uri: st.exists(uri, storage),
                    compute,
                    lambda uri=uri: st.read_bytes(uri, storage).decode(),
                    holder=holder,
                    storage=storage,
                    ttl=5,
                    poll=0.05,
                )
            )
        results[holder] = out

    threads = [threading.Thread(target=run, args=(h,)) for h in ("run-a", "run-b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert calls == Counter(dict.fromkeys(items, 1))
    assert results["run-a"] == results["run-b"]  # both got every item, from whoever computed it
    assert all(current(u, storage) is None for u in items)


def test_a_waiter_gives_up_after_max_wait_naming_the_holder(tmp_path):
    out = str(tmp_path / "v.parquet")
    held = try_acquire(out, "run-busy", ttl=60)
    assert isinstance(held, Lease)
    with pytest.raises(LeaseTimeout, match="run run-busy on"):
        compute_once(out, lambda: False, lambda: "x", lambda: "y", holder="run-b", poll=0.05, max_wait=0.2)
    held.release()


def test_a_lease_released_without_output_is_taken_and_computed(tmp_path):
    """The other run failed the item (no output): the waiter computes it itself."""
    out = str(tmp_path / "v.parquet")
    held = try_acquire(out, "run-failing", ttl=60)
    threading.Timer(0.3, held.release).start()
    assert compute_once(out, lambda: os.path.exists(out), lambda: "mine", lambda: "reused", holder="run-b", poll=0.05) == "mine"


HOLDER = textwrap.dedent("""
    import sys, time
    from videolstm.store.lease import compute_once
    out = sys.argv[1]
    def hang():
        print("computing", flush=True)
        time.sleep(600)
    compute_once(out, lambda: False, hang, lambda: None, holder="run-killed", ttl=float(sys.argv[2]))
""")


def test_a_holder_killed_mid_item_is_taken_over_after_its_lease_expires(tmp_path):
    out = str(tmp_path / "shards" / "v.parquet")
    ttl = 1.5
    child = subprocess.Popen([sys.executable, "-c", HOLDER, out, str(ttl)], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "computing"
        time.sleep(ttl)  # it has renewed at least once: alive, the lease is live
        assert current(out).holder == "run-killed" and current(out).live()
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    killed_at = time.time()
    expires = current(out).expires
    waited: list[LeaseRecord] = []
    result = compute_once(out, lambda: os.path.exists(out), lambda: "taken over", lambda: "reused", holder="run-next", ttl=ttl, poll=0.1, on_wait=waited.append)
    assert result == "taken over"
    assert [w.holder for w in waited] == ["run-killed"]
    assert time.time() >= expires and expires - killed_at <= ttl + 0.5  # waited for the expiry, no longer than one ttl
    assert not st.local_path(lease_dir(out)).exists()  # released, folder gone
    record("a lease holder SIGKILLed mid-item, taken over after its lease expired", faults=1, runs=1, lost=0)


RUN_OVER_ITEMS = textwrap.dedent("""
    import sys, time
    from videolstm.config import StorageConfig
    from videolstm.store import storage as st
    from videolstm.store.lease import compute_once
    base, endpoint, holder, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    storage = StorageConfig(root=base, endpoint_url=endpoint) if endpoint else None
    for i in range(n):
        out = st.join(base, "shards", f"item{i}.bin")
        def compute(out=out):
            print(f"computed {out}", flush=True)  # one line per compute call
            time.sleep(0.1)
            st.write_bytes(out, holder.encode(), storage)
            return holder
        got = compute_once(out, lambda out=out: st.exists(out, storage), compute,
                           lambda out=out: st.read_bytes(out, storage).decode(), holder=holder, storage=storage, ttl=20, poll=0.1)
        print(f"item{i} from {got}", flush=True)
""")


def test_two_processes_over_the_same_items_compute_each_once(root):
    """Two real processes (as two runs on one root) over the same items: each item computed by one of them, both finish."""
    base, storage = root
    endpoint = storage.endpoint_url if storage else ""
    n = 10
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", RUN_OVER_ITEMS, base, endpoint or "", f"run-{i}", str(n)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for i in range(2)
    ]
    outs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1][-2000:] for o in outs]
    computed = Counter(line.split(" ", 1)[1] for out, _ in outs for line in out.splitlines() if line.startswith("computed "))
    assert sorted(computed.values()) == [1] * n  # every item computed exactly once over both processes
    for out, _ in outs:  # and each process has every item, from whichever process computed it
        assert sorted(line.split(" from ")[0] for line in out.splitlines() if " from " in line) == sorted(f"item{i}" for i in range(n))
    record(f"two processes over {n} items on one {'S3' if storage else 'local'} root", runs=2, lost=sum(computed.values()) - n)
