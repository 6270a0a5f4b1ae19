"""Per-video feature extraction (the Ray Data part lives in ``tasks/``).

Feature shard columns (one row per video): ``video_id``, ``label``, ``subset``,
``num_frames``, and for each stream s in {rgb, flow}: ``s_pool5`` (T, C, 7, 7), ``s_fc7``
(T, D) in ``FeatureConfig.dtype``, and ``s_logits`` (T, K) float32 — the frame CNN's own
per-frame predictions, which are the paper's "ConvNet" results. The inputs of each stream are
built by :mod:`videolstm.features.inputs`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from videolstm.config import FeatureConfig, StorageConfig
from videolstm.features.inputs import STREAMS, stream_inputs
from videolstm.features.precision import autocast, to_device
from videolstm.store import shards
from videolstm.store.manifest import ItemResult, StageDir, item_key

FEATURE_COUNTS = ("num_frames",)


@torch.no_grad()
def extract_stream(model: nn.Module, inputs: np.ndarray, batch_frames: int, dtype: str, precision: str = "fp32") -> dict[str, np.ndarray]:
    """Run a frame CNN over (T, C, H, W) inputs in batches → pool5, fc7 (``dtype``), logits (float32).

    The batches go to the model's device (pinned, non-blocking and channels-last on CUDA) and run
    under ``precision``'s autocast (:mod:`videolstm.features.precision`); outputs come back as
    float32 before the storage cast, so the stored features keep ``dtype`` whatever the arithmetic.
    """
    model.eval()
    device = next(model.parameters()).device
    pool5, fc7, logits = [], [], []
    for start in range(0, inputs.shape[0], batch_frames):
        x = to_device(inputs[start : start + batch_frames], device)
        if device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(device, precision):
            out = model(x)
        pool5.append(out.pool5.float().cpu().numpy().astype(dtype))
        fc7.append(out.fc7.float().cpu().numpy().astype(dtype))
        logits.append(out.logits.float().cpu().numpy().astype(np.float32))
    return {"pool5": np.concatenate(pool5), "fc7": np.concatenate(fc7), "logits": np.concatenate(logits)}


def features_key(frames_flow_key: str, cnn_digests: Mapping[str, str], config: FeatureConfig, flow_stack: int) -> str:
    """Key of one video's features: its frames+flow key, the frame CNNs' weights and the settings."""
    precision = [config.precision] if config.precision != "fp32" else []  # fp32: the key from before the option
    return item_key("features/v2", frames_flow_key, dict(cnn_digests), config.dtype, flow_stack, *precision)


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
            **base,
            status="failed",
            reason=f"cannot read frames+flow shard {frames_row['shard']}: {exc}; re-run the flow stage",
            seconds=time.perf_counter() - started,
        )
    num_frames = arrays["frames"].shape[0]
    frame_indices = np.arange(num_frames)
    row: dict[str, Any] = {**base, "num_frames": num_frames}
    row.pop("key")
    for stream in STREAMS:
        inputs = stream_inputs(arrays, stream, frame_indices, flow_stack)
        for name, value in extract_stream(models[stream], inputs, config.batch_frames, config.dtype, config.precision).items():
            row[f"{stream}_{name}"] = value
    shard = stage.shard_uri(video_id, key)
    shards.write_shard(shard, row, storage)
    return ItemResult(**base, status="ok", shard=shard, counts={"num_frames": num_frames}, seconds=time.perf_counter() - started)
