"""Attention health: is the attention focused, and on the actor? Measured while training.

Two numbers per epoch on the validation videos, so that a collapse to uniform attention, or a
map parked on a fixed spot, shows in the training curves rather than after the evaluation:

* **normalised entropy** (:func:`normalised_entropy`): for a map a over the h·w positions,
  ``H(a) / log(h·w)`` with ``H(a) = −Σ_i p_i log p_i``, ``p = a / Σ a``, ``0·log 0 = 0``. It is 1 for
  the uniform map and 0 for all mass on one position; the metric is its mean over every step of
  every validation video.
* **mass in the box** (:func:`box_mass`): the share of the attention mass inside the frame's
  ground-truth box, the map being read as a density that is constant inside each cell (cell
  (i, j) covers ``[j·W/w, (j+1)·W/w) × [i·H/h, (i+1)·H/h)`` of the frame), so
  ``Σ_ij p_ij · |cell_ij ∩ box| / |cell_ij|``. Uniform attention puts the box's share of the frame
  there (:func:`box_mass_chance`, logged beside it as the chance level); the metric is the mean
  over the steps whose frame has a box.

MLflow names (per epoch, prefix ``val/``): ``val/attention_entropy``, ``val/attention_in_box``,
``val/attention_in_box_chance``. The validation videos are run on the same centre snippet as
the validation accuracy (:func:`videolstm.training.snippet_indices` without a generator).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from videolstm.evaluation.calibration import box_cell_coverage
from videolstm.evaluation.localization import boxes_at_frames

__all__ = [
    "attention_health",
    "box_mass",
    "box_mass_chance",
    "health_targets",
    "normalised_entropy",
    "read_health_targets",
    "validation_attention_health",
    "write_health_targets",
]


def normalised_entropy(attention: np.ndarray) -> np.ndarray:
    """``H(p) / log(h·w)`` of each map, ``p = a / Σ a`` over the last two axes (module docstring).

    Args:
        attention: (..., h, w) non-negative maps (h·w ≥ 2).

    Returns:
        (...) in [0, 1]; NaN for a map without positive mass.
    """
    a = np.asarray(attention, dtype=np.float64)
    if a.ndim < 2 or a.shape[-1] * a.shape[-2] < 2:
        raise ValueError(f"attention must be (..., h, w) with h·w >= 2 positions, got shape {a.shape}")
    if (a < 0).any():
        raise ValueError("attention must be non-negative")
    total = a.sum(axis=(-2, -1), keepdims=True)
    p = np.divide(a, total, out=np.zeros_like(a), where=total > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, -p * np.log(np.where(p > 0, p, 1.0)), 0.0)
    entropy = terms.sum(axis=(-2, -1)) / math.log(a.shape[-1] * a.shape[-2])
    return np.where(total[..., 0, 0] > 0, entropy, np.nan)


def box_mass(attention: np.ndarray, boxes: np.ndarray, frame_size: tuple[float, float]) -> np.ndarray:
    """The share of each map's mass inside its box (module docstring).

    Args:
        attention: (..., h, w) non-negative maps.
        boxes: (..., 4) ``(x1, y1, x2, y2)``, x2/y2 exclusive, in the frame's coordinates; NaN: no box.
        frame_size: (H, W) of the frame (``(1, 1)`` for boxes in fractions of the frame).

    Returns:
        (...) in [0, 1]; NaN where the box is NaN or the map has no positive mass.
    """
    a = np.asarray(attention, dtype=np.float64)
    boxes = np.asarray(boxes, dtype=np.float64)
    coverage = box_cell_coverage(boxes, frame_size, a.shape[-2:])
    total = a.sum(axis=(-2, -1))
    inside = (a * coverage).sum(axis=(-2, -1))
    valid = np.all(np.isfinite(boxes), axis=-1) & (total > 0)
    return np.where(valid, inside / np.where(total > 0, total, 1.0), np.nan)


def box_mass_chance(boxes: np.ndarray, frame_size: tuple[float, float]) -> np.ndarray:
    """The box's share of the frame (the :func:`box_mass` of uniform attention): (..., 4) → (...)."""
    boxes = np.asarray(boxes, dtype=np.float64)
    height, width = (float(v) for v in frame_size)
    w = np.clip(np.minimum(boxes[..., 2], width) - np.maximum(boxes[..., 0], 0.0), 0.0, None)
    h = np.clip(np.minimum(boxes[..., 3], height) - np.maximum(boxes[..., 1], 0.0), 0.0, None)
    return np.where(np.all(np.isfinite(boxes), axis=-1), w * h / (width * height), np.nan)


# --------------------------------------------------------------------------------------------
# Targets: the ground truth of the validation videos, in fractions of the frame


def health_targets(ground_truth: Mapping[str, Sequence[Any]], frame_sizes: Mapping[str, tuple[int, int]]) -> dict[str, dict[str, list]]:
    """``{video: {"frames": [...], "boxes": [[x1, y1, x2, y2], ...]}}`` with boxes in fractions
    of the frame (so that no frame size is needed later), from each video's longest tube.

    Args:
        ground_truth: video → its annotation tubes (``frames``, ``boxes`` in pixels).
        frame_sizes: video → (H, W) of its frames; videos without a size are left out.
    """
    out = {}
    for video, tubes in ground_truth.items():
        if not tubes or video not in frame_sizes:
            continue
        tube = max(tubes, key=lambda t: len(t.frames))
        height, width = frame_sizes[video]
        boxes = np.asarray(tube.boxes, dtype=np.float64) / np.array([width, height, width, height], dtype=np.float64)
        out[video] = {"frames": [int(f) for f in tube.frames], "boxes": boxes.round(6).tolist()}
    return out


def write_health_targets(uri: str, targets: Mapping[str, Any], storage: Any = None) -> str:
    """Write :func:`health_targets` as JSON to ``uri``; returns ``uri``."""
    from videolstm.store.storage import write_text

    write_text(uri, json.dumps(targets, sort_keys=True), storage)
    return uri


def read_health_targets(uri: str, storage: Any = None) -> dict[str, dict[str, np.ndarray]]:
    """Read targets written by :func:`write_health_targets`: video → frames (N,), boxes (N, 4)."""
    from videolstm.store.storage import read_text

    try:
        raw = json.loads(read_text(uri, storage))
        return {
            str(v): {"frames": np.asarray(t["frames"], dtype=np.int64).reshape(-1), "boxes": np.asarray(t["boxes"], dtype=np.float64).reshape(-1, 4)}
            for v, t in raw.items()
        }
    except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ValueError(f"{uri} is not an attention-health target file ({type(exc).__name__}: {exc}); delete it and re-run the training stage") from exc


# --------------------------------------------------------------------------------------------
# Metrics over videos


def attention_health(
    attention: Mapping[str, np.ndarray],
    frames: Mapping[str, np.ndarray],
    targets: Mapping[str, Mapping[str, np.ndarray]],
    prefix: str = "val/",
) -> dict[str, float]:
    """The attention-health metrics of a set of videos.

    Args:
        attention: video → (L, h, w) maps of the steps run.
        frames: video → (L,) the video frame of each step.
        targets: video → {"frames": (N,), "boxes": (N, 4) in fractions of the frame}; videos
            without a target count for the entropy only.
        prefix: of the metric names.

    Returns:
        ``{prefix}attention_entropy`` (mean over every step), and, when some step's frame has
        a box, ``{prefix}attention_in_box`` and ``{prefix}attention_in_box_chance`` (means over
        those steps). Empty when there is no step.
    """
    entropies, inside, chance = [], [], []
    for video, maps in attention.items():
        maps = np.asarray(maps, dtype=np.float64)
        entropies.append(normalised_entropy(maps))
        target = targets.get(video)
        if target is None:
            continue
        boxes = boxes_at_frames(np.asarray(frames[video]), target["frames"], target["boxes"])
        has_box = np.all(np.isfinite(boxes), axis=1)
        inside.append(box_mass(maps[has_box], boxes[has_box], (1.0, 1.0)))
        chance.append(box_mass_chance(boxes[has_box], (1.0, 1.0)))
    metrics: dict[str, float] = {}
    entropy = np.concatenate(entropies) if entropies else np.zeros(0)
    if np.isfinite(entropy).any():
        metrics[f"{prefix}attention_entropy"] = float(np.nanmean(entropy))
    mass = np.concatenate(inside) if inside else np.zeros(0)
    if np.isfinite(mass).any():
        metrics[f"{prefix}attention_in_box"] = float(np.nanmean(mass))
        metrics[f"{prefix}attention_in_box_chance"] = float(np.nanmean(np.concatenate(chance)))
    return metrics


def validation_attention_health(
    model: Any,
    rows: Sequence[Mapping[str, Any]],
    x_column: str,
    flow_column: str | None,
    length: int,
    targets: Mapping[str, Mapping[str, np.ndarray]],
    storage: Any = None,
    prefix: str = "val/",
) -> dict[str, float]:
    """:func:`attention_health` of ``model`` on the centre snippet of each validation video.

    ``rows``: ``video_id``, ``shard`` (feature shards); the snippet is the one the validation
    accuracy uses (``snippet_indices(T, length, None)``). Runs in eval mode without gradients,
    one video at a time on the model's device. Returns {} for a model without attention.
    """
    import torch

    from videolstm.store import shards
    from videolstm.training import snippet_indices

    if not getattr(model, "has_attention", False):
        return {}
    columns = [x_column] + ([flow_column] if flow_column else [])
    device = next(model.parameters()).device
    attention, frames = {}, {}
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for row in rows:
                arrays = shards.read_shard(row["shard"], columns=columns, storage=storage)
                idx = snippet_indices(arrays[x_column].shape[0], length, None)
                x = torch.from_numpy(np.asarray(arrays[x_column][idx], dtype=np.float32))[None].to(device)
                flow = torch.from_numpy(np.asarray(arrays[flow_column][idx], dtype=np.float32))[None].to(device) if flow_column else None
                out = model(x, flow=flow)
                attention[row["video_id"]] = out.attention[0].cpu().numpy()
                frames[row["video_id"]] = idx
    finally:
        model.train(was_training)
    return attention_health(attention, frames, targets, prefix)
