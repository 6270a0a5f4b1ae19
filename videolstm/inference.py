"""Test-time inference of a trained model on feature shards (the paper's protocol).

Per video: ``num_segments`` ``segment_length``-step segments placed as the authors' test
iterator places them (:func:`videolstm.models.protocol.segment_starts`; short videos padded
with their last frame) — or, with ``placement="even"`` (a deviation: the recipe before the
authors'), evenly spaced end to end with a short video run once over the frames it has; softmax probabilities are summed over steps and averaged over segments
(:func:`videolstm.models.protocol.aggregate_video_probabilities`). Segments that start at the
same frame are computed once and counted as often as they occur. For localization, attention
variants also run once over the whole video to get one attention map per frame, (T, h, w).

The ConvNet variant is the frame CNN itself (:func:`frame_cnn_predictions`): the checkpoint's
model runs over every frame (or flow stack) of the test video and its per-frame logits go
through the same segment protocol.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from videolstm.config import StorageConfig
from videolstm.models.protocol import aggregate_video_probabilities, segment_indices, segment_starts
from videolstm.store import shards


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
        return Predictions(
            list(ids),
            self.labels[idx],
            self.probabilities[idx],
            {v: self.attention[v] for v in ids if v in self.attention},
            {v: self.step_probabilities[v] for v in ids if v in self.step_probabilities},
        )


def segment_batch(x: np.ndarray, starts: Sequence[int], length: int) -> np.ndarray:
    """x (T, ...) → (S, length, ...) stacked segments starting at ``starts`` (short ones padded with the last frame)."""
    return np.stack([x[segment_indices(x.shape[0], s, length)] for s in starts])


def unique_starts(starts: Sequence[int]) -> tuple[list[int], list[int]]:
    """(distinct starts in order, how often each occurs): repeated segments are computed once."""
    distinct = sorted(set(starts))
    return distinct, [list(starts).count(s) for s in distinct]


def placed_segments(num_frames: int, num_segments: int, segment_length: int, placement: str = "authors") -> tuple[list[int], list[int], int]:
    """(distinct starts, their counts, steps per segment) of a ``num_frames``-frame video.

    ``authors``: every segment has ``segment_length`` steps (short videos padded); ``even`` (the
    previous recipe): a video shorter than a segment is one segment of the frames it has.
    """
    starts, counts = unique_starts(segment_starts(num_frames, num_segments, segment_length, placement))
    return starts, counts, (segment_length if placement == "authors" else min(segment_length, num_frames))


def protocol_probabilities(segment_logits: torch.Tensor, counts: Sequence[int]) -> np.ndarray:
    """Logits of the distinct segments (S', L, K) counted ``counts`` times → video probabilities (K,)."""
    repeated = segment_logits.repeat_interleave(torch.as_tensor(list(counts)), dim=0)
    return aggregate_video_probabilities(repeated).numpy()


@torch.no_grad()
def predict_video(
    model: nn.Module,
    x: np.ndarray,
    flow: np.ndarray | None,
    num_segments: int,
    segment_length: int,
    whole_video: bool = False,
    placement: str = "authors",
    attention: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """One video → (probabilities (K,), attention (T, h, w) or None, step probabilities (T, K) or None).

    x: (T, C, h, w) maps or (T, D) vectors; flow: (T, C', h, w) for motion variants.
    ``whole_video`` adds one pass over all T steps for per-frame attention and probabilities.
    ``placement``: where the segments go (:func:`placed_segments`). ``attention``: (T, h, w) maps
    that replace the model's own attention at every step (the train-time oracle of issue 20).
    """
    model.eval()
    starts, counts, length = placed_segments(x.shape[0], num_segments, segment_length, placement)
    xs = torch.from_numpy(segment_batch(x, starts, length)).float()
    fs = torch.from_numpy(segment_batch(flow, starts, length)).float() if flow is not None else None
    given, whole_given = {}, {}
    if attention is not None:
        given = {"attention": torch.from_numpy(segment_batch(attention, starts, length)).float()}
        whole_given = {"attention": torch.from_numpy(np.array(attention, dtype=np.float32))[None]}
    probabilities = protocol_probabilities(model(xs, flow=fs, **given).logits, counts)  # logits (S', L, K)
    attention = steps = None
    if whole_video:
        whole = torch.from_numpy(np.array(x, dtype=np.float32))[None]  # a copy: shard arrays are read-only
        out = model(whole, flow=None if flow is None else torch.from_numpy(np.array(flow, dtype=np.float32))[None], **whole_given)
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
    placement: str = "authors",
    attention_maps: Callable[[str, np.ndarray], np.ndarray] | None = None,
) -> Predictions:
    """Predictions for feature-shard ``rows`` ({"video_id", "shard", "label"}); ``attention_maps(video_id,
    frames) → (T, h, w)`` replaces the model's attention (the train-time oracle of issue 20)."""
    ids, labels, probs, attention, steps = [], [], [], {}, {}
    columns = [x_column] + ([flow_column] if flow_column else [])
    for row in rows:
        arrays = shards.read_shard(row["shard"], columns=columns, storage=storage)
        given = None if attention_maps is None else attention_maps(str(row["video_id"]), np.arange(arrays[x_column].shape[0]))
        p, a, s = predict_video(
            model, arrays[x_column], arrays.get(flow_column) if flow_column else None, num_segments, segment_length, whole_video, placement, given
        )
        ids.append(row["video_id"])
        labels.append(int(row["label"]))
        probs.append(p)
        if a is not None:
            attention[row["video_id"]] = a
        if s is not None:
            steps[row["video_id"]] = s
    return Predictions(ids, np.asarray(labels, dtype=np.int64), np.stack(probs), attention, steps)


@torch.no_grad()
def frame_logits(model: nn.Module, inputs: np.ndarray, batch_frames: int = 64) -> torch.Tensor:
    """A frame CNN over one video's inputs (T, C, H, W) in batches → per-frame logits (T, K) float32."""
    model.eval()
    chunks = [model(torch.from_numpy(np.ascontiguousarray(inputs[i : i + batch_frames])).float()).logits for i in range(0, inputs.shape[0], batch_frames)]
    return torch.cat(chunks).float()


@torch.no_grad()
def frame_cnn_video(
    model: nn.Module,
    inputs: np.ndarray,
    num_segments: int,
    segment_length: int,
    batch_frames: int = 64,
    placement: str = "authors",
) -> np.ndarray:
    """The ConvNet variant on one video: frame-CNN inputs (T, C, H, W) → video probabilities (K,).

    Per-frame logits (:func:`frame_logits`) go through the same segment protocol as the recurrent
    variants (:func:`protocol_probabilities`).
    """
    logits = frame_logits(model, inputs, batch_frames)
    starts, counts, length = placed_segments(inputs.shape[0], num_segments, segment_length, placement)
    segments = torch.from_numpy(segment_batch(logits.numpy(), starts, length))
    return protocol_probabilities(segments, counts)


def frame_cnn_predictions(
    model: nn.Module,
    rows: Sequence[Mapping[str, Any]],
    stream: str,
    flow_stack: int,
    num_segments: int,
    segment_length: int,
    storage: StorageConfig | None = None,
    batch_frames: int = 64,
    placement: str = "authors",
) -> Predictions:
    """The ConvNet variant: a frame CNN over every frame of frames+flow shard ``rows``, then the segment protocol.

    rows: {"video_id", "shard" (a frames+flow shard), "label"}; stream "rgb" (frames) or "flow"
    (stacks of ``flow_stack`` flow fields, as the frame CNN was trained).
    """
    from videolstm.features.inputs import stream_inputs

    column = "frames" if stream == "rgb" else "flow"
    ids, labels, probs = [], [], []
    for row in rows:
        arrays = shards.read_shard(row["shard"], columns=["frames", "flow"], storage=storage)
        num_frames = arrays["frames"].shape[0]
        if column not in arrays:
            raise ValueError(f"{row['shard']} has no {column!r} column; is it a frames+flow shard?")
        inputs = stream_inputs(arrays, stream, np.arange(num_frames), flow_stack)
        probs.append(frame_cnn_video(model, inputs, num_segments, segment_length, batch_frames, placement))
        ids.append(row["video_id"])
        labels.append(int(row["label"]))
    return Predictions(ids, np.asarray(labels, dtype=np.int64), np.stack(probs))
