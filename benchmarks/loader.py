"""Snippet loader throughput at paper sizes, local disk and S3 (a script, not a test).

Writes feature shards of the cluster configuration's sizes — per video ``--frames`` steps of
``rgb_pool5``/``flow_pool5`` (512×7×7 float16, ReLU-sparse like VGG-16's pool5), ``*_fc7`` (4096
float16) and ``*_logits`` (101 float32) — then measures, in the same run:

* the memory-copy limit: copying one snippet's bytes (30×512×7×7 float16 = 1.5 MB), as clips/s;
* the pre-issue-14 access pattern: the whole video's column read, then 30 steps cut from it;
* ``snippet_batch`` (only the row groups holding the snippet) in batches of ``--batch`` clips,
  built by :func:`videolstm.loader.parallel_batches` on 0 (the consumer's thread), 2, 4, … threads;
* the same from S3 (a moto server on 127.0.0.1 started by this script, as tests/ start it).

Every figure is the median of ``--repeats`` timed passes (each pass reads ``--batches``
batches of random snippets). "Local disk" reads come from the page cache (the shards were just
written); the S3 figures go through HTTP to moto on this machine. A clip is the float16 batch the
GPU would receive; converting it to float32 in torch is timed separately.

    .venv/bin/python benchmarks/loader.py                       # local + S3
    .venv/bin/python benchmarks/loader.py --no-s3 --videos 16
    .venv/bin/python benchmarks/loader.py --embedded            # embedded training's data-wait fraction
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import torch

from videolstm.config import StorageConfig
from videolstm.loader import parallel_batches, seeded_items
from videolstm.store import shards
from videolstm.training import batches_of, snippet_batch, snippet_indices

CHANNELS, SPATIAL, FC7, CLASSES = 512, 7, 4096, 101


def feature_row(rng: np.random.Generator, frames: int, index: int) -> dict:
    row = {"video_id": f"C{index % CLASSES}/v_{index:04d}", "label": index % CLASSES, "subset": "train", "num_frames": frames}
    for stream in ("rgb", "flow"):
        row[f"{stream}_pool5"] = np.maximum(rng.standard_normal((frames, CHANNELS, SPATIAL, SPATIAL), dtype=np.float32), 0).astype(np.float16)
        row[f"{stream}_fc7"] = np.maximum(rng.standard_normal((frames, FC7), dtype=np.float32), 0).astype(np.float16)
        row[f"{stream}_logits"] = rng.standard_normal((frames, CLASSES), dtype=np.float32)
    return row


def write_videos(root: str, videos: int, frames: int, storage: StorageConfig | None, chunk_steps: int) -> tuple[list[dict], int]:
    rng = np.random.default_rng(0)
    rows, total = [], 0
    template = feature_row(rng, frames, 0)
    for i in range(videos):
        # the same arrays rolled per video: writing 180 random pool5 maps per video costs more than reading them
        row = {**template, "video_id": f"C{i % CLASSES}/v_{i:04d}", "label": i % CLASSES}
        for name, value in template.items():
            if isinstance(value, np.ndarray):
                row[name] = np.roll(value, i, axis=0)
        uri = f"{root}/v_{i:04d}.parquet"
        total += shards.write_shard(uri, row, storage, chunk_steps=chunk_steps)
        rows.append({"video_id": row["video_id"], "shard": uri, "label": row["label"]})
    return rows, total


def median_rate(fn, repeats: int, clips_per_call: int) -> tuple[float, list[float]]:
    fn()  # warm-up (footers cached, pools started)
    rates = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        rates.append(clips_per_call / (time.perf_counter() - started))
    return statistics.median(rates), rates


def copy_limit(length: int, repeats: int) -> float:
    src = np.ones((length, CHANNELS, SPATIAL, SPATIAL), dtype=np.float16)
    dst = np.empty_like(src)
    n = 200

    def run():
        for _ in range(n):
            np.copyto(dst, src)

    return median_rate(run, repeats, n)[0]


def whole_read_rate(rows: list[dict], column: str, length: int, storage, repeats: int, clips: int) -> float:
    rng = np.random.default_rng(1)

    def run():
        for i in range(clips):
            arrays = shards.read_shard(rows[i % len(rows)]["shard"], columns=[column], storage=storage)
            idx = snippet_indices(arrays[column].shape[0], length, rng)
            arrays[column][idx].copy()

    return median_rate(run, repeats, clips)[0]


def loader_rate(rows, column, flow_column, length, batch, batches, workers, depth, storage, repeats) -> float:
    epoch_rows = [rows[i % len(rows)] for i in range(batch * batches)]

    def run():
        rng = np.random.default_rng(2)
        items = seeded_items(batches_of(epoch_rows, batch, rng), rng)
        build = lambda item: snippet_batch(item[0], column, flow_column, length, item[1], storage, dtype=None)  # noqa: E731
        for out in parallel_batches(build, items, workers=workers, depth=depth):
            assert out["x"].shape == (batch, length, CHANNELS, SPATIAL, SPATIAL) and out["x"].dtype == np.float16

    return median_rate(run, repeats, batch * batches)[0]


def torch_convert_rate(batch: int, length: int, repeats: int) -> tuple[float, float]:
    x = np.ones((batch, length, CHANNELS, SPATIAL, SPATIAL), dtype=np.float16)
    n = 10

    def in_torch():
        for _ in range(n):
            torch.as_tensor(x).to(torch.float32)

    def in_numpy():
        for _ in range(n):
            x.astype(np.float32)

    return median_rate(in_torch, repeats, n * batch)[0], median_rate(in_numpy, repeats, n * batch)[0]


def embedded_wait(workers_list: list[int], videos: int, repeats: int) -> None:
    """Embedded training's time waiting for data: ConvALSTM at the embedded sizes (pool5 64×7×7,
    36 frames, hidden 32, FC 256, batch 16, one torch thread as a Ray Train worker has) trained
    with the pipeline's own train_epoch over parallel_batches, the wait measured by WaitClock."""
    from videolstm.config import load_config
    from videolstm.loader import WaitClock, wait_metrics
    from videolstm.models import build_model
    from videolstm.training import make_optimizer, sequence_forward, train_epoch

    torch.set_num_threads(1)
    sizes = load_config(None).train.model
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory(prefix="loader-embedded-") as tmp:
        rows = []
        for i in range(videos):
            row = {
                "video_id": f"v{i}",
                "label": i % 8,
                "subset": "train",
                "num_frames": 36,
                "rgb_pool5": np.maximum(rng.standard_normal((36, 64, 7, 7), dtype=np.float32), 0).astype(np.float16),
                "rgb_fc7": rng.standard_normal((36, 256), dtype=np.float32).astype(np.float16),
            }
            uri = f"{tmp}/v{i}.parquet"
            shards.write_shard(uri, row)
            rows.append({"video_id": row["video_id"], "shard": uri, "label": row["label"]})
        for workers in workers_list:
            torch.manual_seed(0)
            model = build_model("convalstm", 8, input_channels=64, hidden_channels=sizes.hidden_channels, fc_dim=sizes.fc_dim)
            optimizer = make_optimizer("rmsprop", model.parameters(), 1e-3)
            fractions, seconds = [], []
            for epoch in range(repeats + 1):
                epoch_rng = np.random.default_rng([0, epoch])
                items = seeded_items(batches_of(rows, 16, epoch_rng), epoch_rng)
                build = lambda item: snippet_batch(item[0], "rgb_pool5", None, 30, item[1], None, dtype=None)  # noqa: E731
                clock = WaitClock(parallel_batches(build, items, workers=workers, depth=max(2, 2 * workers)))
                started = time.perf_counter()
                train_epoch(model, clock, optimizer, sequence_forward)
                metrics = wait_metrics(clock, time.perf_counter() - started)
                if epoch > 0:  # the first epoch warms the footer cache and the allocator
                    fractions.append(metrics["train/data_wait_fraction"])
                    seconds.append(metrics["train/epoch_seconds"])
            print(
                f"  embedded ConvALSTM, {videos} videos, loader_workers {workers}: data_wait_fraction "
                f"{statistics.median(fractions):.3f} (median of {repeats} epochs, {statistics.median(seconds):.2f} s/epoch)",
                flush=True,
            )


class MotoServer:
    """``moto_server`` of this venv on a free port of 127.0.0.1 (as tests/servers.py starts it)."""

    def __enter__(self) -> str:
        import socket

        exe = Path(sys.executable).parent / "moto_server"
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.proc = subprocess.Popen([str(exe), "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        url = f"http://127.0.0.1:{port}"
        deadline = time.time() + 20
        while True:
            try:
                with urllib.request.urlopen(url + "/", timeout=1):
                    return url
            except OSError:
                if time.time() > deadline or self.proc.poll() is not None:
                    self.proc.kill()
                    raise RuntimeError(f"moto_server on {url} did not start") from None
                time.sleep(0.05)

    def __exit__(self, *exc) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


def measure(label: str, rows, storage, args, worker_counts) -> dict[str, float]:
    column = "rgb_pool5"
    out = {}
    out["whole video read + slice"] = whole_read_rate(rows, column, args.length, storage, args.repeats, clips=max(8, args.batch))
    for workers in worker_counts:
        out[f"snippet_batch, {workers} threads"] = loader_rate(
            rows, column, None, args.length, args.batch, args.batches, workers, max(2, 2 * workers), storage, args.repeats
        )
    w = worker_counts[-1]
    out[f"snippet_batch rgb+flow pool5 (motion variants), {w} threads"] = loader_rate(
        rows, column, "flow_pool5", args.length, args.batch, args.batches, w, max(2, 2 * w), storage, args.repeats
    )
    for name, rate in out.items():
        print(f"  {label:5s} {name:58s} {rate:9.1f} clips/s", flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--videos", type=int, default=16)
    parser.add_argument("--frames", type=int, default=180, help="steps per video (UCF101's mean is ~186)")
    parser.add_argument("--length", type=int, default=30)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--batches", type=int, default=8, help="batches per timed pass")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--chunk-steps", type=int, default=shards.CHUNK_STEPS)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2, 4])
    parser.add_argument("--s3-workers", type=int, nargs="+", default=[4, 8, 16])
    parser.add_argument("--no-s3", action="store_true")
    parser.add_argument("--embedded", action="store_true", help="only the embedded training's data-wait fraction")
    args = parser.parse_args()
    if args.embedded:
        embedded_wait([0, 2], videos=96, repeats=args.repeats)
        return

    print(
        f"paper-size clips: {args.length}×{CHANNELS}×{SPATIAL}×{SPATIAL} float16, batch {args.batch}; "
        f"{args.videos} videos × {args.frames} steps; chunk_steps {args.chunk_steps}; medians of {args.repeats} passes; "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    limit = copy_limit(args.length, args.repeats)
    print(f"  memory-copy limit (one snippet's {args.length * CHANNELS * SPATIAL * SPATIAL * 2 / 1e6:.2f} MB): {limit:,.0f} clips/s", flush=True)
    torch_rate, numpy_rate = torch_convert_rate(args.batch, args.length, args.repeats)
    print(f"  float16 → float32 of a clip: torch {torch_rate:,.0f} clips/s, numpy {numpy_rate:,.0f} clips/s", flush=True)
    with tempfile.TemporaryDirectory(prefix="loader-bench-") as tmp:
        rows, size = write_videos(tmp, args.videos, args.frames, None, args.chunk_steps)
        per_frame = size / args.videos / args.frames / 2 / 1e3
        print(f"  feature shard: {size / args.videos / 1e6:.2f} MB per video ({per_frame:.1f} KB per frame per stream, all columns)", flush=True)
        measure("local", rows, None, args, args.workers)
    if args.no_s3:
        return
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        os.environ.setdefault(key, value)
    with MotoServer() as endpoint:
        import s3fs

        storage = StorageConfig(root="s3://bench", endpoint_url=endpoint)
        s3fs.S3FileSystem(client_kwargs={"endpoint_url": endpoint}).mkdir("bench")
        rows, _ = write_videos("s3://bench/features", args.videos, args.frames, storage, args.chunk_steps)
        print(f"  S3 = moto_server at {endpoint}", flush=True)
        measure("s3", rows, storage, args, args.s3_workers)


if __name__ == "__main__":
    main()
