"""Attention from outside the model, for the recipe ablation (issue 20): ground-truth maps and a motion prior.

Two arms of the ablation replace or steer the attention of the attention variants (ALSTM, Motion
ALSTM, ConvALSTM, VideoLSTM), all of which accept ``model(x, flow, attention=(B, T, h, w))``:

* **train-time oracle** (``train.attention_source: oracle``): during training *and* evaluation the
  model's attention is replaced by the ground-truth boxes rendered at the feature-map resolution
  (:func:`oracle_maps`) — the ceiling attention can reach on a set. A step without a box (before
  the actor appears, after it leaves) and a video without annotations get uniform maps (1/(h·w)
  everywhere: no information, the attended input is the plain mean).
* **motion prior** (``train.motion_prior_weight``, an extension beyond the paper): a weakly
  supervised loss term ``w · Σ_t KL(P_t ‖ A_t)`` pulling the attention A_t toward the normalised
  energy P_t of the flow stream's pool5 maps (:func:`motion_prior_maps`, the same definition as
  :func:`videolstm.evaluation.calibration.motion_energy_attention`). No boxes are used.

Boxes travel between the driver and the trainers as fractions of the frame (no frame size needed
later): ``{video: [{"frames": [...], "boxes": [[x1, y1, x2, y2], ...]}, ...]}``, every tube of a video.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from videolstm.evaluation.calibration import box_cell_coverage
from videolstm.evaluation.localization import boxes_at_frames

#: Where the attention variants' attention comes from: the model's own (the paper) | the ground truth.
ATTENTION_SOURCES: tuple[str, ...] = ("learned", "oracle")

#: video → its tubes, each {"frames": (N,) int, "boxes": (N, 4) in fractions of the frame}.
BoxTargets = dict[str, list[dict[str, np.ndarray]]]


# --------------------------------------------------------------------------------------------
# the train-time oracle


def box_targets(ground_truth: Mapping[str, Sequence[Any]], frame_sizes: Mapping[str, tuple[int, int]]) -> dict[str, list[dict]]:
    """Every tube of every video with a frame size, boxes in fractions of the frame (JSON-ready).

    Args:
        ground_truth: video → its annotation tubes (``frames``, ``boxes`` in pixels, x2/y2 exclusive).
        frame_sizes: video → (H, W) of its frames; videos without a size are left out.
    """
    out: dict[str, list[dict]] = {}
    for video, tubes in ground_truth.items():
        if not tubes or video not in frame_sizes:
            continue
        height, width = frame_sizes[video]
        scale = np.array([width, height, width, height], dtype=np.float64)
        out[video] = [
            {
                "frames": [int(f) for f in np.asarray(t.frames).reshape(-1)],
                "boxes": (np.asarray(t.boxes, dtype=np.float64).reshape(-1, 4) / scale).round(6).tolist(),
            }
            for t in tubes
        ]
    return out


def dump_box_targets(targets: Mapping[str, Any]) -> str:
    """:func:`box_targets` as JSON text."""
    return json.dumps(targets, sort_keys=True)


def parse_box_targets(text: str, origin: str = "box targets") -> BoxTargets:
    """Read :func:`dump_box_targets`' text back: video → tubes of int frames and (N, 4) float boxes.

    Raises ValueError naming ``origin`` when the text is not such a file.
    """
    try:
        raw = json.loads(text)
        out: BoxTargets = {}
        for video, tubes in raw.items():
            parsed = []
            for tube in tubes:
                frames = np.asarray(tube["frames"], dtype=np.int64).reshape(-1)
                boxes = np.asarray(tube["boxes"], dtype=np.float64).reshape(-1, 4)
                if frames.shape[0] != boxes.shape[0]:
                    raise ValueError(f"{video}: {frames.shape[0]} frames but {boxes.shape[0]} boxes")
                parsed.append({"frames": frames, "boxes": boxes})
            out[str(video)] = parsed
        return out
    except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ValueError(f"{origin} is not an oracle box-target file ({type(exc).__name__}: {exc}); delete it and re-run the stage") from exc


def oracle_maps(frames: np.ndarray, tubes: Sequence[Mapping[str, np.ndarray]], grid: tuple[int, int]) -> np.ndarray:
    """The ground truth at the feature-map resolution for the steps at video ``frames``.

    Step t's map is Σ over the video's tubes of the coverage of each cell by the tube's box at
    frame ``frames[t]`` (:func:`~videolstm.evaluation.calibration.box_cell_coverage`, boxes in
    fractions of the frame), normalised to sum to 1; a step where no tube has a box is uniform.

    Args:
        frames: (L,) video frame of each step.
        tubes: the video's tubes, {"frames": (N,), "boxes": (N, 4) fractions} (empty: every step uniform).
        grid: (h, w) of the attention maps.

    Returns:
        (L, h, w) float32 maps, each summing to 1.
    """
    frames = np.asarray(frames, dtype=np.int64).reshape(-1)
    h, w = (int(v) for v in grid)
    total = np.zeros((frames.shape[0], h, w), dtype=np.float64)
    for tube in tubes:
        boxes = boxes_at_frames(frames, np.asarray(tube["frames"]), np.asarray(tube["boxes"]))
        total += box_cell_coverage(boxes, (1.0, 1.0), (h, w))
    mass = total.sum(axis=(1, 2), keepdims=True)
    maps = np.where(mass > 0, total / np.where(mass > 0, mass, 1.0), 1.0 / (h * w))
    return maps.astype(np.float32)


def oracle_lookup(targets: Mapping[str, Sequence[Mapping[str, np.ndarray]]], grid: tuple[int, int]) -> Callable[[str, np.ndarray], np.ndarray]:
    """``maps(video_id, frames) → (L, h, w)``: :func:`oracle_maps` of the video (uniform maps for a video without targets)."""
    grid = (int(grid[0]), int(grid[1]))

    def maps(video_id: str, frames: np.ndarray) -> np.ndarray:
        return oracle_maps(frames, targets.get(video_id, ()), grid)

    return maps


# --------------------------------------------------------------------------------------------
# the motion prior


def motion_prior_maps(flow_maps: Tensor) -> Tensor:
    """P_t: the normalised energy of the flow stream's maps, per step.

    ``E_{t,i,j} = Σ_c M_{t,c,i,j}²``, ``P_t = E_t / Σ_{i,j} E_{t,i,j}``; a step without energy
    (all-zero maps) is uniform — :func:`~videolstm.evaluation.calibration.motion_energy_attention`
    in torch, over a batch.

    Args:
        flow_maps: (B, T, C, h, w) flow-stream pool5 maps.

    Returns:
        (B, T, h, w) maps summing to 1 per step (no gradient flows to ``flow_maps``: they are data).
    """
    if flow_maps.dim() != 5:
        raise ValueError(f"the motion prior needs flow maps of shape (B, T, C, h, w), got {tuple(flow_maps.shape)}")
    energy = flow_maps.detach().float().square().sum(dim=2)
    total = energy.sum(dim=(2, 3), keepdim=True)
    uniform = torch.full_like(energy, 1.0 / (energy.shape[2] * energy.shape[3]))
    return torch.where(total > 0, energy / torch.where(total > 0, total, torch.ones_like(total)), uniform)


def attention_kl(prior: Tensor, attention: Tensor, eps: float = 1e-12) -> Tensor:
    """Σ_t KL(P_t ‖ A_t) = Σ_t Σ_{ij} P log(P / A), averaged over the batch (a scalar).

    Terms with P = 0 contribute 0; A is floored at ``eps`` inside the log (a softmax never reaches 0,
    the floor only guards float underflow).

    Args:
        prior: (B, T, h, w) P, each step summing to 1.
        attention: (B, T, h, w) A, each step summing to 1.
    """
    if prior.shape != attention.shape:
        raise ValueError(f"prior {tuple(prior.shape)} and attention {tuple(attention.shape)} differ in shape")
    p = prior.to(attention.dtype)
    terms = torch.where(p > 0, p * (torch.log(p.clamp_min(eps)) - torch.log(attention.clamp_min(eps))), torch.zeros_like(p))
    return terms.sum(dim=(1, 2, 3)).mean()
