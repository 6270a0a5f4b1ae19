"""A trained model on a new video: the benchmark's stages for one file, then the paper's test protocol.

For one video (a path or URI): decode at the flow stage's size, optical flow (only when the model
reads the flow stream), the frames and flow *as the frames+flow shards hold them* (written and
read back through :mod:`videolstm.store.shards`, so JPEG storage is reproduced bit for bit), both
frame CNNs' features in the feature stage's dtype (:func:`videolstm.features.extraction.extract_stream`),
then the same inference as the evaluation stage (:func:`videolstm.inference.predict_video`,
:func:`videolstm.inference.frame_cnn_video`) and, for attention models, the same box pipeline
(:func:`videolstm.evaluation.localization.localize_video`).

Every setting comes from the :class:`~videolstm.config.BenchmarkConfig` of the run that trained the
model (the caller recovers it from MLflow), never re-typed. No Prefect, no Ray, no MLflow here.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from videolstm.config import BenchmarkConfig, StorageConfig
from videolstm.features.inputs import stream_inputs

#: Stages timed per video (``seconds`` of a :class:`VideoPrediction`).
STAGES = ("decode", "flow", "features", "model", "localize")


@dataclass
class TrainedModel:
    """A trained (variant, stream) with what it needs to run on a raw video.

    ``model``: the variant (a frame CNN for ``variant == "convnet"``); ``frame_cnns``: the seed's
    frame CNNs by stream (the ones whose features the model was trained on); ``config``: the
    settings of the run that trained it; ``class_names``: index → name.
    """

    name: str
    variant: str
    stream: str
    model: nn.Module
    frame_cnns: Mapping[str, nn.Module]
    config: BenchmarkConfig
    class_names: Sequence[str]
    uri: str = ""

    @property
    def streams(self) -> tuple[str, ...]:
        """The frame-CNN streams whose input the model reads."""
        if self.variant == "convnet":
            return (self.stream,)
        if getattr(self.model, "needs_flow", False):
            return ("rgb", "flow")
        return (self.stream,)

    @property
    def has_attention(self) -> bool:
        return self.variant != "convnet" and bool(getattr(self.model, "has_attention", False))


@dataclass
class VideoPrediction:
    """One video's result: video probabilities (K,), per-frame attention (T, h, w) and step
    probabilities (T, K) for attention models, the tube (per-frame boxes in pixels of the
    original video) and seconds per stage."""

    video: str
    probabilities: np.ndarray
    frame_size: tuple[int, int]
    attention: np.ndarray | None = None
    step_probabilities: np.ndarray | None = None
    tube: list[dict[str, float | int]] | None = None
    seconds: dict[str, float] = field(default_factory=dict)

    def top(self, class_names: Sequence[str], k: int = 5) -> list[dict[str, Any]]:
        """The ``k`` most probable classes, [{"class", "probability"}]; ties go to the lower index."""
        order = np.argsort(-self.probabilities, kind="stable")[:k]
        return [{"class": class_names[int(i)], "probability": float(self.probabilities[int(i)])} for i in order]

    def record(self, class_names: Sequence[str], model: str) -> dict[str, Any]:
        """The JSON line of this video: ``video``, ``top5``, ``tube``, ``model``, ``seconds``."""
        return {
            "video": self.video,
            "top5": self.top(class_names),
            "tube": self.tube,
            "model": model,
            "seconds": {k: round(v, 4) for k, v in self.seconds.items()},
        }


def stored_frames_flow(frames: np.ndarray, flow: np.ndarray | None, config: BenchmarkConfig) -> dict[str, np.ndarray]:
    """frames (T, H, W, 3) and flow (T−1, H, W, 2) uint8 → the arrays a frames+flow shard returns.

    The shard codec (JPEG per frame and per flow component by default) is lossy; writing one
    local shard and reading it back gives exactly what the feature stage read.
    """
    from videolstm.data.frames_flow import stored_images
    from videolstm.store import shards

    placeholder = np.zeros((max(frames.shape[0] - 1, 1), *frames.shape[1:3], 2), dtype=np.uint8)
    images = stored_images(frames, flow if flow is not None else placeholder, config.flow)
    with tempfile.TemporaryDirectory() as tmp:
        uri = str(Path(tmp) / "video.parquet")
        shards.write_shard(uri, {"video_id": "v", **images})
        arrays = shards.read_shard(uri, columns=["frames", "flow"])
    if flow is None:
        arrays.pop("flow")
    return arrays


def video_features(
    arrays: Mapping[str, np.ndarray], frame_cnns: Mapping[str, nn.Module], streams: Sequence[str], config: BenchmarkConfig
) -> dict[str, np.ndarray]:
    """The feature shard's columns ``<stream>_pool5`` (T, C, h, w), ``<stream>_fc7`` (T, D), ``<stream>_logits`` (T, K)
    of the given streams, as the feature stage computes and stores them (``features.dtype``)."""
    from videolstm.features.extraction import extract_stream

    num_frames = arrays["frames"].shape[0]
    out = {}
    for stream in streams:
        inputs = stream_inputs(arrays, stream, np.arange(num_frames), config.frame_cnn.flow_stack)
        for name, value in extract_stream(frame_cnns[stream], inputs, config.features.batch_frames, config.features.dtype).items():
            out[f"{stream}_{name}"] = value
    return out


def tube_records(frames: np.ndarray, boxes: np.ndarray) -> list[dict[str, float | int]]:
    """Tube boxes (N, 4) as (x1, y1, x2, y2) at ``frames`` → [{"frame", "x", "y", "w", "h"}] (steps without a box left out)."""
    records = []
    for frame, (x1, y1, x2, y2) in zip(np.asarray(frames), np.asarray(boxes, dtype=np.float64)):
        if np.all(np.isfinite([x1, y1, x2, y2])):
            records.append({"frame": int(frame), "x": float(x1), "y": float(y1), "w": float(x2 - x1), "h": float(y2 - y1)})
    return records


def predict_frames(trained: TrainedModel, frames: np.ndarray, frame_size: tuple[int, int], video: str = "") -> VideoPrediction:
    """Decoded frames (T, H, W, 3) uint8 at the flow stage's size → the model's prediction.

    ``frame_size``: (H, W) of the original video (the tube's pixels).
    """
    from videolstm.data.flow import video_flow
    from videolstm.evaluation.localization import localize_video
    from videolstm.inference import frame_cnn_video, predict_video
    from videolstm.training import feature_columns

    config, e = trained.config, trained.config.evaluate
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    needs_flow = "flow" in trained.streams
    if needs_flow and frames.shape[0] < 2:
        raise ValueError(f"{video}: only {frames.shape[0]} frame decoded; optical flow needs at least 2 frames")
    flow = video_flow(frames, config.flow) if needs_flow else None
    arrays = stored_frames_flow(frames, flow, config)
    seconds["flow"] = time.perf_counter() - started
    result = VideoPrediction(video, np.empty(0), frame_size, seconds=seconds)
    if trained.variant == "convnet":
        started = time.perf_counter()
        inputs = stream_inputs(arrays, trained.stream, np.arange(arrays["frames"].shape[0]), config.frame_cnn.flow_stack)
        result.probabilities = frame_cnn_video(trained.model, inputs, e.num_segments, e.segment_length, config.features.batch_frames, e.segment_placement)
        seconds["model"] = time.perf_counter() - started
        return result
    started = time.perf_counter()
    features = video_features(arrays, trained.frame_cnns, trained.streams, config)
    seconds["features"] = time.perf_counter() - started
    started = time.perf_counter()
    model = trained.model
    x_column, flow_column = feature_columns(str(model.input_kind), bool(model.needs_flow), trained.stream, str(model.flow_kind))
    probabilities, attention, steps = predict_video(
        model,
        features[x_column],
        features[flow_column] if flow_column else None,
        e.num_segments,
        e.segment_length,
        whole_video=trained.has_attention,
        placement=e.segment_placement,
    )
    result.probabilities, result.attention, result.step_probabilities = probabilities, attention, steps
    seconds["model"] = time.perf_counter() - started
    if attention is not None:
        started = time.perf_counter()
        tube = localize_video(attention, frame_size, steps if steps is not None else probabilities, e.localization, frames=np.arange(attention.shape[0]))
        result.tube = tube_records(tube.frames, tube.boxes)
        seconds["localize"] = time.perf_counter() - started
    return result


def predict_file(trained: TrainedModel, uri: str, storage: StorageConfig | None = None) -> VideoPrediction:
    """One video file or URI → :func:`predict_frames` (decoded as the flow stage decodes; ``flow.max_frames`` applies).

    Raises :class:`videolstm.data.video.VideoDecodeError` for a missing, unreadable or truncated file.
    """
    from videolstm.data.video import decode_video, probe_video

    started = time.perf_counter()
    flow = trained.config.flow
    info = probe_video(uri, storage=storage)
    frames = decode_video(uri, size=(flow.height, flow.width), max_frames=flow.max_frames, storage=storage)
    decode = time.perf_counter() - started
    result = predict_frames(trained, frames, (info.height, info.width), video=uri)
    result.seconds = {"decode": decode, **result.seconds}
    return result


def fuse_video(rgb: VideoPrediction, flow: VideoPrediction, method: str) -> VideoPrediction:
    """Two-stream fusion of one video (the evaluation's :func:`videolstm.models.protocol.fuse_probabilities`);
    the tube is the RGB model's (the attention model of a fused pair)."""
    import torch

    from videolstm.models.protocol import fuse_probabilities

    fused = fuse_probabilities(torch.from_numpy(rgb.probabilities[None]), torch.from_numpy(flow.probabilities[None]), method).numpy()[0]
    seconds = {k: rgb.seconds.get(k, 0.0) + flow.seconds.get(k, 0.0) for k in {*rgb.seconds, *flow.seconds}}
    return VideoPrediction(rgb.video, fused, rgb.frame_size, rgb.attention, rgb.step_probabilities, rgb.tube, seconds)
