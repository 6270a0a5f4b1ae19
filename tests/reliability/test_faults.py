"""Faults survived: a Ray Data worker killed mid-stage, the benchmark process killed midway and
re-run. (The training-worker kill is tests/integration/test_training.py::
test_killed_training_worker_resumes_from_its_checkpoint; the ledger counts it when it runs.)"""

from __future__ import annotations

import os
import re
import signal
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.reliability import ledger
from tests.reliability.conftest import flow_shards, mlflow_runs

pytestmark = pytest.mark.reliability

#: The process title of a Ray Data task of the flow stage while it runs.
FLOW_WORKER_TITLE = "MapBatches(frames_flow_batch)"


def _kill_flow_worker_once_a_shard_exists(shards: Path, killed: list[int], timeout: float = 240) -> None:
    """SIGKILL the process running a flow task after a first shard was written (so it is mid-stage)."""
    import psutil
    import ray  # noqa: F401  (puts Ray's vendored psutil on the path)

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if shards.is_dir() and any(shards.glob("*.parquet")):
            for proc in psutil.process_iter(["cmdline"]):
                try:
                    if FLOW_WORKER_TITLE in " ".join(proc.info["cmdline"] or []):
                        os.kill(proc.pid, signal.SIGKILL)
                        killed.append(proc.pid)
                        return
                except (psutil.NoSuchProcess, psutil.AccessDenied, ProcessLookupError):
                    continue
        time.sleep(0.05)


def test_killed_flow_worker_loses_and_duplicates_no_video(local_ray, tmp_path):
    from tasks.dataset import run_dataset
    from tasks.frames_flow import run_frames_flow
    from videolstm.config import load_config
    from videolstm.data.datasets import read_index
    from videolstm.store import shards as shard_io
    from videolstm.store.lineage import stage_uri
    from videolstm.store.manifest import read_manifest

    # TV-L1 with OpenCV's default settings at 80x80: slow enough (~1 s a video) to kill mid-stage.
    config = load_config(
        {
            "name": "flow-kill",
            "storage": {"root": str(tmp_path / "store")},
            "dataset": {"kind": "synthetic", "synthetic": {"num_classes": 2, "videos_per_class": 3, "frames": 8, "height": 80, "width": 80, "distractors": 1}},
            "flow": {
                "method": "tvl1",
                "height": 80,
                "width": 80,
                "workers": 1,
                "tvl1_warps": 5,
                "tvl1_scales": 5,
                "tvl1_scale_step": 0.8,
                "tvl1_inner_iterations": 30,
                "tvl1_outer_iterations": 10,
            },
            "ray": {"num_cpus": 2},
        }
    )
    index = run_dataset(config)
    expected = set(read_index(index.manifest_uri).column("video_id").to_pylist())
    assert len(expected) == 6
    shards_dir = Path(stage_uri(config, "frames_flow")) / "shards"
    killed: list[int] = []
    killer = threading.Thread(target=_kill_flow_worker_once_a_shard_exists, args=(shards_dir, killed), daemon=True)
    killer.start()
    result = run_frames_flow(config, index)
    killer.join(timeout=5)
    assert killed, "the test did not manage to kill a flow task's worker"
    rows = read_manifest(result.manifest_uri)
    counts = Counter(r.video_id for r in rows)
    lost = len(expected - set(counts)) + sum(n - 1 for n in counts.values())
    ledger.record("flow stage, Ray Data flow worker SIGKILLed", faults=1, runs=1, lost=lost)
    assert set(counts) == expected and all(n == 1 for n in counts.values()), counts
    assert all(r.ok for r in rows), [(r.video_id, r.reason) for r in rows if not r.ok]
    on_storage = sorted(shards_dir.glob("*.parquet"))
    assert sorted(Path(r.shard) for r in rows) == on_storage  # one shard per video, nothing extra
    for r in rows:  # every shard is whole: it reads back with the frame and flow counts of its row
        arrays = shard_io.read_shard(r.shard, columns=["video_id", "frames", "flow"])
        assert arrays["video_id"] == r.video_id
        assert arrays["frames"].shape[0] == r.counts["num_frames"] == 8
        assert arrays["flow"].shape[0] == r.counts["num_flow"] == 7


def test_killed_benchmark_reruns_to_completion_without_recomputing_finished_work(bad_benchmark):
    b = bad_benchmark
    assert b.killed_returncode == -signal.SIGKILL
    assert b.rerun_returncode == 0, b.rerun_output[-4000:]
    assert "VideoLSTM benchmark finished." in b.rerun_output
    # frames+flow had finished before the kill: its shards are reused, not rewritten
    assert b.flow_shards_before, "the killed run had not finished frames+flow"
    assert flow_shards(b.store) == b.flow_shards_before
    reused = re.search(r"flow +\d+ videos: (\d+) to compute, (\d+) reused", b.rerun_output)  # the stage's start line
    assert reused and int(reused[2]) == len(b.dataset.good), reused and reused[0]
    assert int(reused[1]) == 2  # only the two undecodable videos are tried again (their input may be fixed)
    features = {r.video_id: r for r in _manifest(b, "features")}
    lost = len(set(b.dataset.good) - {v.removeprefix("s0/") for v, r in features.items() if r.ok})  # items are "s<seed>/<video>"
    ledger.record(f"benchmark process group SIGKILLed ({b.orphans_after_kill} orphan processes left), re-run", faults=1, runs=1, lost=lost)
    assert lost == 0


def test_rerun_continues_the_mlflow_runs_of_the_killed_run_instead_of_duplicating_them(bad_benchmark):
    b = bad_benchmark
    assert b.rerun_returncode == 0, b.rerun_output[-4000:]
    runs = mlflow_runs(b.store / "mlflow.db")
    names = Counter(name for name, _, _ in runs)
    assert names and all(n == 1 for n in names.values()), names
    assert {name for name, _, _ in runs} >= {"reliability", "convnet-rgb-s0", "convnet-flow-s0", "lstm-rgb-s0"}
    assert all(status == "FINISHED" for _, _, status in runs), runs
    after = {name: run_id for name, run_id, _ in runs}
    assert b.runs_before_rerun and "reliability" in b.runs_before_rerun
    for name, run_id in b.runs_before_rerun.items():  # every run the killed run opened was continued
        assert after[name] == run_id


def test_stage_cache_key_never_matches_a_result_for_a_missing_output(tmp_path):
    """A cached stage result may only be reused while the stage's output is on storage."""
    from dataclasses import replace

    from flows.full_benchmark import stage_cache_key
    from videolstm.config import load_config
    from videolstm.store.lineage import stage_result, stage_uri
    from videolstm.store.manifest import ItemResult

    config = load_config({"storage": {"root": str(tmp_path)}})
    key = stage_cache_key("frames_flow")
    absent = {key(None, {"config": config}) for _ in range(3)}
    assert len(absent) == 3  # a deleted (or never written) output can never hit an old cache entry
    folder = stage_uri(config, "frames_flow")
    manifest = f"{folder}/manifest.parquet"
    Path(manifest).parent.mkdir(parents=True, exist_ok=True)
    Path(manifest).write_bytes(b"x")
    item = ItemResult(video_id="a/v_a_g01_c01", label=0, subset="train", status="ok", shard="s", key="k1")
    stage_result("frames_flow", folder, manifest, "lineage", [item], 1.0, 1)
    first = key(None, {"config": config})
    assert first == key(None, {"config": config})  # the same output: the cached result is reused
    # The output deleted and rebuilt by other code (another shard format): other items, another key,
    # so the result cached for the first output cannot be returned for the second.
    stage_result("frames_flow", folder, manifest, "lineage", [replace(item, key="k2")], 1.0, 1)
    assert key(None, {"config": config}) != first


def _manifest(b, stage):
    from videolstm.store.manifest import read_manifest

    return read_manifest(b.stage(stage).manifest_uri)
