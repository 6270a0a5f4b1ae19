"""Where the training stage's time goes: trainer start-up versus training, before and after
trainers took jobs from a queue (a script, not a test).

Writes feature shards of the embedded default's sizes (random values), then trains the same
set of models — the embedded matrix of one seed: LSTM, ALSTM, ConvLSTM, ConvALSTM on RGB and
flow, Motion ALSTM — in the same run, two ways, with as many trainers at once as the machine
fits (two here):

* one trainer per model (how the pipeline trained until this change): jobs two at a time, each
  pair paying two ``TorchTrainer`` start-ups;
* one queue (now): two trainers take the models from a shared queue until it is empty.

For each it prints the wall time, the seconds the models trained (Σ of each job's own time) and
the rest, the trainers' start-up and shutdown: Σ trainer wall − Σ job time.

    .venv/bin/python benchmarks/train_startup.py                  # 9 models, 10 epochs, 96 videos
    .venv/bin/python benchmarks/train_startup.py --epochs 2 --repeats 1
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.train_scaling import bench_config, write_features
from videolstm.config import load_config

MATRIX = [
    ("lstm", "rgb"),
    ("lstm", "flow"),
    ("alstm", "rgb"),
    ("alstm", "flow"),
    ("convlstm", "rgb"),
    ("convlstm", "flow"),
    ("convalstm", "rgb"),
    ("convalstm", "flow"),
    ("motion_alstm", "rgb"),
]


def jobs_for(features, root: str, tag: str, epochs: int):
    from tasks.train import sequence_job

    config = bench_config(root, tag, variants=sorted({v for v, _ in MATRIX}), streams=["rgb", "flow"], epochs=epochs)
    return config, [sequence_job(config, v, s, 0, features, None, register=False) for v, s in MATRIX]


def one_trainer_per_model(features, root: str, tag: str, epochs: int) -> dict[str, float]:
    from tasks.train import run_jobs

    config, jobs = jobs_for(features, root, tag, epochs)
    started, job_seconds, fit_seconds = time.perf_counter(), 0.0, 0.0
    for i in range(0, len(jobs), 2):  # two trainers at once, one model each
        outcomes, timing = run_jobs(config, jobs[i : i + 2], "train")
        job_seconds += timing["job_seconds"]
        fit_seconds += sum(timing["fit_seconds"])
        assert not any("error" in o for o in outcomes.values()), outcomes
    return {"wall": time.perf_counter() - started, "jobs": job_seconds, "overhead": fit_seconds - job_seconds}


def one_queue(features, root: str, tag: str, epochs: int) -> dict[str, float]:
    from tasks.train import run_jobs

    config, jobs = jobs_for(features, root, tag, epochs)
    started = time.perf_counter()
    outcomes, timing = run_jobs(config, jobs, "train")
    assert not any("error" in o for o in outcomes.values()), outcomes
    return {"wall": time.perf_counter() - started, "jobs": timing["job_seconds"], "overhead": timing["startup_seconds"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=int, default=96)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "0.2")
    import ray

    defaults = load_config()
    results: dict[str, list[dict[str, float]]] = {"one trainer per model (before)": [], "one queue, 2 trainers (now)": []}
    with tempfile.TemporaryDirectory() as tmp:
        features = write_features(
            tmp,
            args.videos,
            defaults.dataset.synthetic.frames,
            defaults.frame_cnn.channels[-1],
            defaults.frame_cnn.fc_dim,
            defaults.dataset.synthetic.num_classes,
        )
        ray.init(address="local", num_cpus=2, _node_ip_address="127.0.0.1", dashboard_host="127.0.0.1", log_to_driver=False)
        for repeat in range(args.repeats):
            for (label, runs), fn in zip(results.items(), (one_trainer_per_model, one_queue)):
                r = fn(features, tmp, f"{label[:8]}-{repeat}", args.epochs)
                runs.append(r)
                print(
                    f"repeat {repeat + 1}, {label}: wall {r['wall']:.1f} s, models {r['jobs']:.1f} s, start-up and shutdown {r['overhead']:.1f} s", flush=True
                )
        ray.shutdown()
    print(f"\n{len(MATRIX)} models × {args.epochs} epochs, {args.videos} videos, embedded sizes, 2 trainers at once, median of {args.repeats}\n")
    print("| how | wall (s) | models training, Σ (s) | trainer start-up + shutdown, Σ (s) | share of trainer time |")
    print("|---|---:|---:|---:|---:|")
    for label, runs in results.items():
        wall, jobs, over = (statistics.median(r[k] for r in runs) for k in ("wall", "jobs", "overhead"))
        print(f"| {label} | {wall:.1f} | {jobs:.1f} | {over:.1f} | {over / (jobs + over):.0%} |")


if __name__ == "__main__":
    main()
