"""Throughput and memory of the decode+flow stage (a script, not a test).

All in one run, on the same synthetic videos (the embedded default's frame size and TV-L1
settings unless overridden):

* **loop**: a plain single-process loop over the videos with OpenCV's default threading
  (``videolstm.data.frames_flow.process_video``, the same per-video work the stage does);
* **ray-1 / ray-2**: the Ray Data stage (``tasks.frames_flow.compute_frames_flow``) with 1 and 2
  single-threaded actors — the figure that predicts a cluster is ray-2 / ray-1 (per-core scaling).
  Each is timed on N and on 2N videos: "as run" is N pairs / t(N) (start-up included),
  "steady" is N pairs / (t(2N) − t(N)) (the actor pool's fixed start-up cancels out);
* **peak memory** of the stage (driver + Ray worker processes, sampled every 0.1 s) for N and
  2N videos: flat when the stage streams.

Each configuration runs ``--repeats`` times into a fresh output folder; pairs/s are medians.
Ray's start-up is excluded (one ``ray.init`` for the whole script); the actor pool's start-up
is included, since every stage run pays it.

    .venv/bin/python benchmarks/flow_stage.py                 # N = 24 videos (~5 min)
    .venv/bin/python benchmarks/flow_stage.py --videos 8 --repeats 1
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psutil

from videolstm.config import FlowConfig, StorageConfig, SyntheticConfig
from videolstm.data.datasets import load_index
from videolstm.data.datasets.synthetic import generate_synthetic
from videolstm.data.frames_flow import frames_flow_key, process_video
from videolstm.store.manifest import StageDir


class PeakMemory:
    """Peak summed RSS of this process and its Ray worker processes, sampled in a thread."""

    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> int:
        total = psutil.Process().memory_info().rss
        for proc in psutil.process_iter(["name", "cmdline"]):
            try:
                cmd = " ".join(proc.info["cmdline"] or [])
                if cmd.startswith("ray::") or "default_worker.py" in cmd:
                    total += proc.memory_info().rss
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._sample())
            time.sleep(0.1)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def rows_for(root: str, videos: int, flow: FlowConfig) -> list[dict]:
    table = load_index("synthetic", root, 1)
    rows = sorted(table.to_pylist(), key=lambda r: r["video_id"])[:videos]
    return [{**r, "key": frames_flow_key(r, flow)} for r in rows]


def run_loop(rows: list[dict], flow: FlowConfig, out: str) -> float:
    from videolstm.data.flow import set_threads

    previous = set_threads(-1)  # OpenCV's default threading
    stage = StageDir(out)
    started = time.perf_counter()
    results = [process_video(r, r["key"], stage, flow, StorageConfig()) for r in rows]
    elapsed = time.perf_counter() - started
    set_threads(previous)
    assert all(r.ok for r in results), [r.reason for r in results if not r.ok]
    return elapsed


def run_ray(rows: list[dict], flow: FlowConfig, out: str, workers: int) -> tuple[float, int]:
    from tasks.frames_flow import compute_frames_flow

    stage = StageDir(out)
    with PeakMemory() as memory:
        started = time.perf_counter()
        results = compute_frames_flow(rows, stage, flow.model_copy(update={"workers": workers, "threads_per_worker": 1}), StorageConfig(), workers)
        elapsed = time.perf_counter() - started
    assert len(results) == len(rows) and all(r.ok for r in results), [r.reason for r in results if not r.ok]
    return elapsed, memory.peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=int, default=24, help="N (the memory check also runs 2N)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--method", default="tvl1")
    args = parser.parse_args()
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray

    flow = FlowConfig(method=args.method)
    synthetic = SyntheticConfig(videos_per_class=max(3, -(-2 * args.videos // 8)))
    with tempfile.TemporaryDirectory() as tmp:
        root = str(Path(tmp) / "synthetic")
        generate_synthetic(root, synthetic)
        rows_n, rows_2n = rows_for(root, args.videos, flow), rows_for(root, 2 * args.videos, flow)
        pairs = sum(synthetic.frames - 1 for _ in rows_n)
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, _node_ip_address="127.0.0.1")
        ray.data.DataContext.get_current().enable_progress_bars = False
        as_run: dict[str, list[float]] = {"loop": [], "ray-1": [], "ray-2": []}
        steady: dict[str, list[float]] = {"ray-1": [], "ray-2": []}
        memory: dict[int, list[int]] = {len(rows_n): [], len(rows_2n): []}
        for repeat in range(args.repeats):
            as_run["loop"].append(pairs / run_loop(rows_n, flow, f"{tmp}/loop-{repeat}"))
            for workers in (1, 2):
                t_n, peak_n = run_ray(rows_n, flow, f"{tmp}/ray{workers}-{repeat}", workers)
                t_2n, peak_2n = run_ray(rows_2n, flow, f"{tmp}/ray{workers}-2n-{repeat}", workers)
                as_run[f"ray-{workers}"].append(pairs / t_n)
                steady[f"ray-{workers}"].append(pairs / (t_2n - t_n))
                if workers == 2:
                    memory[len(rows_n)].append(peak_n)
                    memory[len(rows_2n)].append(peak_2n)
            print(
                f"repeat {repeat + 1}: as run "
                + ", ".join(f"{k} {v[-1]:.1f}" for k, v in as_run.items())
                + "; steady "
                + ", ".join(f"{k} {v[-1]:.1f}" for k, v in steady.items())
                + " pairs/s",
                flush=True,
            )
        ray.shutdown()

    run = {k: statistics.median(v) for k, v in as_run.items()}
    rate = {k: statistics.median(v) for k, v in steady.items()}
    print(
        f"\nflow stage, N = {args.videos} videos × {synthetic.frames - 1} pairs = {pairs} pairs, "
        f"{args.method} at {flow.height}×{flow.width}, median of {args.repeats}\n"
    )
    print("| configuration | pairs/s as run (N) | vs loop | pairs/s steady (2N − N) |")
    print("|---|---:|---:|---:|")
    print(f"| plain loop, OpenCV default threads | {run['loop']:.1f} | 1.00 | {run['loop']:.1f} |")
    for workers in (1, 2):
        key = f"ray-{workers}"
        print(f"| Ray Data, {workers} single-threaded actor{'s' if workers > 1 else ''} | {run[key]:.1f} | {run[key] / run['loop']:.2f} | {rate[key]:.1f} |")
    print(f"\nper-core scaling, 2 vs 1 actor (steady): {rate['ray-2'] / rate['ray-1']:.2f}× (goal ≥ 1.8); as run: {run['ray-2'] / run['ray-1']:.2f}×")
    print(f"Ray Data, 2 actors vs the loop: {run['ray-2'] / run['loop']:.2f}× as run, {rate['ray-2'] / run['loop']:.2f}× steady (goal ≥ 1.1)")
    n, n2 = len(rows_n), len(rows_2n)
    m1, m2 = statistics.median(memory[n]) / 2**20, statistics.median(memory[n2]) / 2**20
    print(f"peak memory (driver + Ray workers): {n} videos {m1:.0f} MiB, {n2} videos {m2:.0f} MiB, ratio {m2 / m1:.2f} (goal: flat)")


if __name__ == "__main__":
    main()
