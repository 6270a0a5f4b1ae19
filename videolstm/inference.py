"""Test-time inference of a trained model on feature shards (the paper's protocol).

Per video: ``num_segments`` evenly spaced ``segment_length``-step segments run as one batch;
softmax probabilities are summed over steps and averaged over segments
(:func:`videolstm.models.protocol.aggregate_video_probabilities`). For localization, attention
variants also run once over the whole video to get one attention map per frame, (T, h, w).

The ConvNet variant needs no model here: its per-frame logits are stored in the feature
shards (``<stream>_logits``) and go through the same segment protocol.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from videolstm.store import shards
from videolstm.config import StorageConfig
from videolstm.models.protocol import aggregate_video_probabilities, segment_starts


@dataclass
class Predictions:
    """Video-level predictions of one model on a list of videos."""

    video_ids: list[str]
    labels: np.ndarray  # (N,) int
    probabilities: np.ndarray  # (N, K) float
    attention: dict[str, np.ndarray] = field(default_factory=dict)  # video_id → (T, h, w) float32
    step_probabilities: dict[str, np.ndarray] = field(default_factory=dict)  # video_id → (T, K)

    def subset(self, ids: Sequence[str]) -> Predictions:
        pos = {v: i for i, v in enumerate(self.video_ids)}
        idx = [pos[v] for v in ids]
        return Predictions(list(ids), self.labels[idx], self.probabilities[idx],
                           {v: self.attention[v] for v in ids if v in self.attention},
                           {v: self.step_probabilities[v] for v in ids if v in self.step_probabilities})


def segment_batch(x: np.ndarray, starts: Sequence[int], length: int) -> np.ndarray:
    """x (T, ...) → (S, min(length, T), ...) stacked segments starting at ``starts``."""
    length = min(length, x.shape[0])
    return np.stack([x[s : s + length] for s in starts])


@torch.no_grad()
def predict_video(
    model: nn.Module,
    x: np.ndarray,
    flow: np.ndarray | None,
    num_segments: int,
    segment_length: int,
    whole_video: bool = False,
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """One video → (probabilities (K,), attention (T, h, w) or None, step probabilities (T, K) or None).

    x: (T, C, h, w) maps or (T, D) vectors; flow: (T, C', h, w) for motion variants.
    ``whole_video`` adds one pass over all T steps for per-frame attention and probabilities.
    """
    model.eval()
    starts = segment_starts(x.shape[0], num_segments, segment_length)
    xs = torch.from_numpy(segment_batch(x.astype(np.float32), starts, segment_length))
    fs = torch.from_numpy(segment_batch(flow.astype(np.float32), starts, segment_length)) if flow is not None else None
    logits = model(xs, flow=fs).logits  # (S, L, K)
    probabilities = aggregate_video_probabilities(logits).numpy()
    attention = steps = None
    if whole_video:
        out = model(torch.from_numpy(x.astype(np.float32))[None], flow=None if flow is None else torch.from_numpy(flow.astype(np.float32))[None])
        steps = out.logits[0].softmax(-1).numpy()
        attention = out.attention[0].numpy().astype(np.float32) if out.attention is not None else None
    return probabilities, attention, steps


def predict_videos(
    model: nn.Module,
    rows: Sequence[Mapping[str, Any]],
    x_column: str,
    flow_column: str | None,
    num_segments: int,
    segment_length: int,
    whole_video: bool = False,
    storage: StorageConfig | None = None,
) -> Predictions:
    """Predictions for feature-shard ``rows`` ({"video_id", "shard", "label"})."""
    ids, labels, probs, attention, steps = [], [], [], {}, {}
    columns = [x_column] + ([flow_column] if flow_column else [])
    for row in rows:
        arrays = shards.read_shard(row["shard"], columns=columns, storage=storage)
        p, a, s = predict_video(model, arrays[x_column], arrays.get(flow_column) if flow_column else None,
                                num_segments, segment_length, whole_video)
        ids.append(row["video_id"])
        labels.append(int(row["label"]))
        probs.append(p)
        if a is not None:
            attention[row["video_id"]] = a
        if s is not None:
            steps[row["video_id"]] = s
    return Predictions(ids, np.asarray(labels, dtype=np.int64), np.stack(probs), attention, steps)


def convnet_predictions(
    rows: Sequence[Mapping[str, Any]], stream: str, num_segments: int, segment_length: int, storage: StorageConfig | None = None
) -> Predictions:
    """The ConvNet variant: the frame CNN's stored per-frame logits through the segment protocol."""
    column = f"{stream}_logits"
    ids, labels, probs = [], [], []
    for row in rows:
        logits = shards.read_shard(row["shard"], columns=[column], storage=storage)[column]
        starts = segment_starts(logits.shape[0], num_segments, segment_length)
        segments = torch.from_numpy(segment_batch(logits.astype(np.float32), starts, segment_length))
        probs.append(aggregate_video_probabilities(segments).numpy())
        ids.append(row["video_id"])
        labels.append(int(row["label"]))
    return Predictions(ids, np.asarray(labels, dtype=np.int64), np.stack(probs))
