"""Training throughput on Ray Train with 1 and 2 workers on CPU (a script, not a test).

Writes feature shards of the embedded default's sizes (random pool5 maps; throughput does not
depend on the values), then fits one variant with ``TorchTrainer`` (the pipeline's own
``tasks.train.run_jobs``, one job on one trainer) with 1 worker × 2 threads and with 2 workers ×
1 thread (DDP over gloo), in the same run. Start-up (worker group, dataset split) is paid by every fit, so the
steady-state rate is measured as the difference between a ``--epochs`` fit and a 1-epoch fit:

    samples/s = videos × (epochs − 1) / (t(epochs) − t(1))

    .venv/bin/python benchmarks/train_scaling.py                       # convalstm, 80 videos
    .venv/bin/python benchmarks/train_scaling.py --variant lstm --epochs 6
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

import numpy as np

from videolstm.config import load_config
from videolstm.store import shards
from videolstm.store.lineage import StageResult
from videolstm.store.manifest import ItemResult, StageDir, write_manifest


def write_features(root: str, videos: int, frames: int, channels: int, fc_dim: int, classes: int) -> StageResult:
    rng = np.random.default_rng(0)
    stage = StageDir(f"{root}/features")
    items = []
    for i in range(videos):
        vid = f"C{i % classes}/v_{i:04d}"
        row = {"video_id": vid, "label": i % classes, "subset": "train", "num_frames": frames}
        for s in ("rgb", "flow"):
            row[f"{s}_pool5"] = rng.standard_normal((frames, channels, 7, 7)).astype(np.float16)
            row[f"{s}_fc7"] = rng.standard_normal((frames, fc_dim)).astype(np.float16)
            row[f"{s}_logits"] = rng.standard_normal((frames, classes)).astype(np.float32)
        uri = stage.shard_uri(vid, "bench")
        shards.write_shard(uri, row)
        items.append(ItemResult(video_id=vid, status="ok", key="bench", label=i % classes, subset="train", shard=uri, counts={"num_frames": frames}))
    manifest = write_manifest(stage.manifest_uri, items)
    return StageResult(
        stage="features",
        uri=stage.uri,
        manifest_uri=manifest,
        lineage="bench",
        content="bench",
        ok=videos,
        extra={
            "feature_sizes": {"channels": channels, "spatial_size": [7, 7], "fc7_dim": fc_dim},
            "num_classes": classes,
            "manifests": {"0": manifest},
            "contents": {"0": "bench"},
        },
    )


def bench_config(root: str, tag: str, **train):
    """A configuration writing under ``root/tag`` with the training options given."""
    return load_config(
        {
            "storage": {"root": f"{root}/{tag}"},
            "mlflow": {"experiment": "bench"},
            "train": {"streams": ["rgb"], "seeds": [0], "keep_checkpoints": 1, "val_fraction": 0.0, **train},
        }
    )


def fit_seconds(features: StageResult, root: str, variant: str, workers: int, threads: int, epochs: int, tag: str) -> float:
    from tasks.train import run_jobs, sequence_job

    config = bench_config(
        root, tag, variants=[variant], epochs=epochs, workers=workers, cpus_per_worker=threads, lr=1e-3 + sum(map(ord, tag)) * 1e-9
    )  # a distinct run key per fit
    job = sequence_job(config, variant, "rgb", 0, features, None, register=False)
    started = time.perf_counter()
    outcomes, _ = run_jobs(config, [job], "train")
    assert "error" not in outcomes[job.name], outcomes[job.name]
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variant", default="convalstm")
    parser.add_argument("--videos", type=int, default=80)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "0.2")
    import ray

    defaults = load_config()
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
        rates: dict[str, list[float]] = {"1 worker × 2 threads": [], "2 workers × 1 thread (DDP, gloo)": []}
        for repeat in range(args.repeats):
            for label, (workers, threads) in zip(rates, ((1, 2), (2, 1))):
                short = fit_seconds(features, tmp, args.variant, workers, threads, 1, f"w{workers}-e1-r{repeat}")
                long = fit_seconds(features, tmp, args.variant, workers, threads, args.epochs, f"w{workers}-e{args.epochs}-r{repeat}")
                rate = args.videos * (args.epochs - 1) / (long - short)
                rates[label].append(rate)
                print(f"repeat {repeat + 1}, {label}: 1 epoch {short:.1f} s, {args.epochs} epochs {long:.1f} s → {rate:.1f} samples/s", flush=True)
        ray.shutdown()
    base = statistics.median(next(iter(rates.values())))
    print(f"\n{args.variant}, {args.videos} videos × 30-frame snippets, embedded sizes, median of {args.repeats}\n")
    print("| workers | samples/s | ratio |\n|---|---:|---:|")
    for label, values in rates.items():
        print(f"| {label} | {statistics.median(values):.1f} | {statistics.median(values) / base:.2f} |")


if __name__ == "__main__":
    main()
