"""Frame-CNN inputs and per-video feature extraction (the Ray Data part lives in ``tasks/``).

Inputs per stream, for frame t of a video with T frames:

* RGB: the frame, (3, H, W) float32, normalised with ImageNet mean/std.
* Flow: a stack of L consecutive quantised flow fields starting at t, (2L, H, W) float32,
  ``(q − 127.5) / 127.5 · FLOW_INPUT_GAIN`` (with the default bound of 20 that is the
  displacement in pixels), channels ordered x₀, y₀, x₁, y₁, …. The gain matters: actors move
  about 1 px per frame, and on the [−1, 1] scale the flow CNN learned 2–3× slower (measured on
  the synthetic set: 30 % vs 61 % test frame accuracy after 10 epochs). A video has T−1 flow
  fields; the stack index is clamped to the last field, so the flow stream also has T steps
  and step t of both streams refers to the same frame (the motion variants need that).

Feature shard columns (one row per video): ``video_id``, ``label``, ``subset``,
``num_frames``, and for each stream s in {rgb, flow}: ``s_pool5`` (T, C, 7, 7), ``s_fc7``
(T, D) in ``FeatureConfig.dtype``, and ``s_logits`` (T, K) float32 — the frame CNN's own
per-frame predictions, which are the paper's "ConvNet" results.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from videolstm import shards
from videolstm.backbones import RGB_MEAN, RGB_STD
from videolstm.config import FeatureConfig, StorageConfig
from videolstm.manifest import ItemResult, StageDir, item_key

STREAMS = ("rgb", "flow")
FEATURE_COUNTS = ("num_frames",)

#: Scale of the flow CNN input: ±GAIN at the quantisation bound (pixels for the default bound 20).
FLOW_INPUT_GAIN = 20.0

_MEAN = np.asarray(RGB_MEAN, dtype=np.float32).reshape(1, 3, 1, 1)
_STD = np.asarray(RGB_STD, dtype=np.float32).reshape(1, 3, 1, 1)


def rgb_inputs(frames: np.ndarray) -> np.ndarray:
    """frames (N, H, W, 3) uint8 → (N, 3, H, W) float32, ImageNet-normalised."""
    x = frames.astype(np.float32).transpose(0, 3, 1, 2) / 255.0
    return (x - _MEAN) / _STD


def flow_stack_indices(frame_indices: np.ndarray, num_flow: int, stack: int) -> np.ndarray:
    """(N,) frame indices → (N, stack) flow-field indices, clamped to [0, num_flow − 1]."""
    if num_flow < 1:
        raise ValueError("a flow stack needs at least one flow field (a video of at least 2 frames)")
    idx = np.asarray(frame_indices)[:, None] + np.arange(stack)[None, :]
    return np.clip(idx, 0, num_flow - 1)


def flow_inputs(flow: np.ndarray, frame_indices: np.ndarray, stack: int) -> np.ndarray:
    """flow (T−1, H, W, 2) uint8 → (N, 2·stack, H, W) float32 in [−GAIN, GAIN] for the given frames."""
    idx = flow_stack_indices(frame_indices, flow.shape[0], stack)  # (N, L)
    stacked = flow[idx]  # (N, L, H, W, 2)
    n, length, h, w, _ = stacked.shape
    x = stacked.transpose(0, 1, 4, 2, 3).reshape(n, 2 * length, h, w).astype(np.float32)
    return (x - 127.5) * (FLOW_INPUT_GAIN / 127.5)


def stream_inputs(arrays: Mapping[str, np.ndarray], stream: str, frame_indices: np.ndarray, stack: int) -> np.ndarray:
    """Frame-CNN inputs of ``stream`` for the given frames of one frames+flow shard."""
    if stream == "rgb":
        return rgb_inputs(arrays["frames"][frame_indices])
    if stream == "flow":
        return flow_inputs(arrays["flow"], frame_indices, stack)
    raise ValueError(f"unknown stream {stream!r}; expected one of {STREAMS}")


def stream_in_channels(stream: str, stack: int) -> int:
    return 3 if stream == "rgb" else 2 * stack


@torch.no_grad()
def extract_stream(model: nn.Module, inputs: np.ndarray, batch_frames: int, dtype: str) -> dict[str, np.ndarray]:
    """Run a frame CNN over (T, C, H, W) inputs in batches → pool5, fc7 (``dtype``), logits (float32)."""
    model.eval()
    pool5, fc7, logits = [], [], []
    for start in range(0, inputs.shape[0], batch_frames):
        out = model(torch.from_numpy(np.ascontiguousarray(inputs[start : start + batch_frames])))
        pool5.append(out.pool5.numpy().astype(dtype))
        fc7.append(out.fc7.numpy().astype(dtype))
        logits.append(out.logits.numpy().astype(np.float32))
    return {"pool5": np.concatenate(pool5), "fc7": np.concatenate(fc7), "logits": np.concatenate(logits)}


def features_key(frames_flow_key: str, cnn_digests: Mapping[str, str], config: FeatureConfig, flow_stack: int) -> str:
    """Key of one video's features: its frames+flow key, the frame CNNs' weights and the settings."""
    return item_key("features/v1", frames_flow_key, dict(cnn_digests), config.dtype, flow_stack)


def process_video_features(
    frames_row: Mapping[str, Any],
    key: str,
    stage: StageDir,
    models: Mapping[str, nn.Module],
    config: FeatureConfig,
    flow_stack: int,
    storage: StorageConfig | None = None,
) -> ItemResult:
    """Extract both streams' features of one video (a frames+flow manifest row) into a shard."""
    started = time.perf_counter()
    video_id = frames_row["video_id"]
    base = {"video_id": video_id, "key": key, "label": int(frames_row["label"]), "subset": frames_row["subset"]}
    try:
        arrays = shards.read_shard(frames_row["shard"], columns=["frames", "flow"], storage=storage)
    except (OSError, ValueError) as exc:
        return ItemResult(
            **base, status="failed", reason=f"cannot read frames+flow shard {frames_row['shard']}: {exc}; re-run the flow stage",
            seconds=time.perf_counter() - started,
        )
    num_frames = arrays["frames"].shape[0]
    frame_indices = np.arange(num_frames)
    row: dict[str, Any] = {**base, "num_frames": num_frames}
    row.pop("key")
    for stream in STREAMS:
        inputs = stream_inputs(arrays, stream, frame_indices, flow_stack)
        for name, value in extract_stream(models[stream], inputs, config.batch_frames, config.dtype).items():
            row[f"{stream}_{name}"] = value
    shard = stage.shard_uri(video_id, key)
    shards.write_shard(shard, row, storage)
    return ItemResult(
        **base, status="ok", shard=shard, counts={"num_frames": num_frames}, seconds=time.perf_counter() - started
    )
