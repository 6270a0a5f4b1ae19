"""Weakly supervised action localization from attention maps, and its evaluation.

The paper's procedure (Li et al., CVIU 2018, Sec. "action localization"): the attention map of
every step is upsampled to the frame, Gaussian smoothed and thresholded; the 8-connected
component that is largest (or, after the first frame, overlaps the previous box best) gives the
frame's box; the box coordinates are smoothed over time by locally weighted linear regression
(LOWESS); the video yields one tube for its predicted class, scored by the mean class score.
The tubes are evaluated with video mAP at spatio-temporal IoU thresholds (Table 5) and a
per-frame recall-vs-IoU curve (Fig. 5).

Conventions (used by every function here, and by :mod:`videolstm.evaluation.plots`)
-----------------------------------------------------------------------
- **Boxes** are ``(x1, y1, x2, y2)`` float pixel coordinates with **x2, y2 exclusive**: a box
  covering pixel columns ``x1 .. x2-1`` has width ``x2 - x1`` and area ``(x2-x1)*(y2-y1)``. This
  is what the UCF101-24 loader produces from ``(x, y, w, h)`` (``x2 = x + w``) and what
  ``cv2.connectedComponentsWithStats`` gives (``x2 = left + width``). A row of NaN means "no box"
  (no ground truth on that frame, or nothing found); it has IoU 0 with everything.
- **Frames** are integer indices into the video (0-based); a tube is ``frames (T,)`` plus
  ``boxes (T, 4)``, frames unique (not necessarily contiguous).
- **sigma** (:func:`attention_to_boxes`, ``LocalizationConfig.sigma``) is in **attention-cell
  units**: the Gaussian's standard deviation in frame pixels is ``sigma * H / h`` vertically and
  ``sigma * W / w`` horizontally, so the same value means the same thing for a 7x7 map on a
  112x112 synthetic frame and on a 320x240 UCF101 frame.
- **Tube IoU** (:func:`tube_iou`): temporal IoU of the two frame sets times the mean spatial IoU
  over the frames both tubes cover (Weinzaepfel et al., ICCV 2015; the same as ``iou3dt`` in the
  ACT evaluation code of Kalogeiton et al., ICCV 2017, ``ACT_utils.py``, which is used for
  UCF101-24 video mAP). For tubes without gaps the set-based temporal IoU equals ACT's
  ``(min end - max start + 1) / (max end - min start + 1)``. Unlike ACT, boxes are not ``+1``
  inclusive (see Boxes above).
- **AP** (:func:`average_precision`): all-point interpolated (PASCAL VOC 2010 and later; the
  precision envelope integrated over every recall step), not the 11-point VOC 2007 metric.
- **Matching** (:func:`video_map`): per class, detections in descending score order (stable for
  ties: input order); each is a true positive when its best spatio-temporal IoU with a
  *not yet matched* ground-truth tube of the same class in the same video is >= the threshold
  (ACT's ``videoAP`` rule), and that tube is then used up. Detections in videos without ground
  truth of their class are false positives. Classes without ground truth are left out of the
  mean (their AP is undefined); classes with ground truth but no detection have AP 0.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import cv2
import numpy as np
from scipy import ndimage
from scipy.ndimage import gaussian_filter1d
from statsmodels.nonparametric.smoothers_lowess import lowess

from videolstm.config import LocalizationConfig

__all__ = [
    "DEFAULT_IOU_THRESHOLDS",
    "DEFAULT_RECALL_THRESHOLDS",
    "Detection",
    "FrameRecall",
    "GroundTruthTube",
    "Tube",
    "attention_to_boxes",
    "average_precision",
    "box_iou",
    "boxes_at_frames",
    "frame_recall_curve",
    "attention_peaks",
    "extent_boxes",
    "localize_video",
    "localize_video_tubes",
    "step_boxes",
    "track_peaks",
    "tube_span",
    "map_key",
    "smooth_boxes",
    "tube_iou",
    "video_map",
    "video_map_at",
]

DEFAULT_IOU_THRESHOLDS: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5)
#: IoU thresholds of the per-frame recall curve (Fig. 5): 0.05, 0.10, ..., 0.95.
DEFAULT_RECALL_THRESHOLDS: np.ndarray = np.round(np.arange(1, 20) * 0.05, 2)

# LOWESS uses at least this many neighbours whatever ``frac`` says: the tricube weight of the
# farthest neighbours is 0, so with 3 a frame's fit rests on itself alone (NaN from statsmodels).
_MIN_LOWESS_NEIGHBOURS = 5


def map_key(threshold: float) -> str:
    """The metric name of video mAP at ``threshold``: ``"loc/mAP_0.2"`` (MLflow refuses "@" in names)."""
    return f"loc/mAP_{threshold:g}"


# --------------------------------------------------------------------------------------------
# Boxes from attention
# --------------------------------------------------------------------------------------------


def attention_to_boxes(attention: np.ndarray, frame_size: tuple[int, int], sigma: float, threshold: float) -> np.ndarray:
    """One box per step from attention maps (the paper's procedure).

    For every step: bilinear upsampling of the map to the frame (``cv2.resize``, pixel-centre
    aligned), Gaussian smoothing with standard deviation ``sigma`` attention cells (``sigma*H/h``
    by ``sigma*W/w`` pixels; replicated border; ``sigma=0`` skips it), threshold at
    ``threshold * max`` of that frame's smoothed map, 8-connected components
    (``cv2.connectedComponentsWithStats``, connectivity 8). The first frame with a box takes the
    component with the largest area; a later frame with several components takes the one whose
    bounding box has the highest IoU with the most recent box found (ties: larger area), and the
    largest when none overlaps it. The box is the component's bounding box.

    Args:
        attention: (T, h, w) non-negative attention weights (e.g. the softmax over positions).
        frame_size: (H, W) of the frames the boxes refer to (the ground truth's frame size).
        sigma: Gaussian standard deviation in attention cells (>= 0).
        threshold: fraction of the frame's maximum in (0, 1).

    Returns:
        (T, 4) float64 boxes ``(x1, y1, x2, y2)``, x2/y2 exclusive, in frame pixels. A row is NaN
        when the map has a non-finite value or no positive value.
    """
    att = np.asarray(attention, dtype=np.float64)
    if att.ndim != 3:
        raise ValueError(f"attention must be (T, h, w), got shape {att.shape}")
    height, width = (int(v) for v in frame_size)
    if height < 1 or width < 1:
        raise ValueError(f"frame_size must be positive (H, W), got {frame_size}")
    if sigma < 0:
        raise ValueError(f"sigma must be >= 0, got {sigma}")
    if not 0 < threshold < 1:
        raise ValueError(f"threshold must lie in (0, 1), got {threshold}")
    _, h, w = att.shape
    # Upsampling and blurring are linear and separable, so the smoothed map is
    # ``ops_y @ A @ ops_x.T`` with the two (frame x cells) operators computed once; this equals
    # upsampling each map and blurring it (tested) at a fraction of the cost on large frames.
    ops_y = _upsample_blur_operator(h, height, sigma)
    ops_x = _upsample_blur_operator(w, width, sigma)

    boxes = np.full((att.shape[0], 4), np.nan)
    previous: np.ndarray | None = None
    for t, amap in enumerate(att):
        if not np.all(np.isfinite(amap)) or amap.max() <= 0:
            continue
        smooth = ops_y @ amap @ ops_x.T
        peak = float(smooth.max())
        if not peak > 0:
            continue
        mask = (smooth >= threshold * peak).astype(np.uint8)
        count, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
        stats = stats[1:count]  # label 0 is the background
        candidates = np.column_stack(
            [
                stats[:, cv2.CC_STAT_LEFT],
                stats[:, cv2.CC_STAT_TOP],
                stats[:, cv2.CC_STAT_LEFT] + stats[:, cv2.CC_STAT_WIDTH],
                stats[:, cv2.CC_STAT_TOP] + stats[:, cv2.CC_STAT_HEIGHT],
            ]
        ).astype(np.float64)
        areas = stats[:, cv2.CC_STAT_AREA]
        choice = int(np.argmax(areas))
        if previous is not None and len(candidates) > 1:
            overlaps = box_iou(candidates, previous[None, :])
            if overlaps.max() > 0:
                choice = int(np.lexsort((areas, overlaps))[-1])  # max IoU, then max area
        boxes[t] = candidates[choice]
        previous = boxes[t]
    return boxes


def step_boxes(attention: np.ndarray, frame_size: tuple[int, int], config: LocalizationConfig) -> np.ndarray:
    """(T, 4) boxes of (T, h, w) maps by ``config.box_method``: :func:`extent_boxes` or the paper's
    :func:`attention_to_boxes`."""
    if config.box_method == "extent":
        return extent_boxes(attention, frame_size, config.extent_width, config.extent_tail)
    return attention_to_boxes(attention, frame_size, config.sigma, config.threshold)


def extent_boxes(attention: np.ndarray, frame_size: tuple[int, int], width: float = 1.0, tail: float = 0.1) -> np.ndarray:
    """One box per step from the map's mass extent, at sub-cell precision (``box_method: extent``).

    Along each axis separately, on the map's marginal m (normalised to sum 1; cells are unit
    intervals ``[j, j+1)``): the cumulative mass F at the cell boundaries ``u = 0..n`` is known
    exactly, and for a map that is a box's cell coverage (the oracle) F is a straight line between
    the box's edges, 0 before and 1 after. The box is where the least-squares line through the
    boundaries with ``tail < F(u) < 1 - tail`` reaches 0 and 1. This recovers a box that covers at
    least one cell fully exactly (two or more boundaries inside it). When one boundary is inside
    (the mass lies in two cells) the line passes through it with the slope of a box ``width``
    cells wide — the map fixes the split, not the width; when none (one cell), the box is
    ``width`` cells centred on that cell. Edges are clipped to the frame.

    Args:
        attention: (T, h, w) non-negative maps.
        frame_size: (H, W) of the frames the boxes refer to.
        width: box width in cells where the map does not fix it (> 0).
        tail: cumulative mass left out of the line fit at each end, in [0, 0.5).

    Returns:
        (T, 4) float64 ``(x1, y1, x2, y2)``, x2/y2 exclusive, frame pixels; NaN rows where a map
        has a non-finite value or no positive value.
    """
    att = np.asarray(attention, dtype=np.float64)
    if att.ndim != 3:
        raise ValueError(f"attention must be (T, h, w), got shape {att.shape}")
    height, width_px = (int(v) for v in frame_size)
    if height < 1 or width_px < 1:
        raise ValueError(f"frame_size must be positive (H, W), got {frame_size}")
    if not width > 0:
        raise ValueError(f"width must be > 0 cells, got {width}")
    if not 0 <= tail < 0.5:
        raise ValueError(f"tail must lie in [0, 0.5), got {tail}")
    steps, h, w = att.shape
    boxes = np.full((steps, 4), np.nan)
    valid = np.all(np.isfinite(att.reshape(steps, -1)), axis=1)
    valid[valid] = att[valid].reshape(int(valid.sum()), -1).clip(min=0).sum(axis=1) > 0
    if not valid.any():
        return boxes
    maps = att[valid].clip(min=0)
    x0, x1 = _axis_extent(maps.sum(axis=1), width, tail)
    y0, y1 = _axis_extent(maps.sum(axis=2), width, tail)
    boxes[valid] = np.column_stack([x0 * width_px / w, y0 * height / h, x1 * width_px / w, y1 * height / h])
    return boxes


def _axis_extent(marginal: np.ndarray, width: float, tail: float) -> tuple[np.ndarray, np.ndarray]:
    """(N, n) non-negative marginals -> the extent ``(u0, u1)`` of each in cell units, (N,) each; see
    :func:`extent_boxes`."""
    n = marginal.shape[1]
    cdf = np.concatenate([np.zeros((marginal.shape[0], 1)), np.cumsum(marginal, axis=1)], axis=1)
    cdf /= cdf[:, -1:]
    u = np.arange(n + 1, dtype=np.float64)
    eps = 1e-9
    inside = (cdf > tail + eps) & (cdf < 1 - tail - eps)
    count = inside.sum(axis=1)
    weights = inside.astype(np.float64)
    su, sf = weights @ u, (weights * cdf).sum(axis=1)
    suu, suf = weights @ (u * u), (weights * cdf * u).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        slope = (count * suf - su * sf) / (count * suu - su * su)
        intercept = (sf - slope * su) / count
    lo, hi = np.empty(len(cdf)), np.empty(len(cdf))
    line = (count >= 2) & (slope > 0)
    lo[line] = -intercept[line] / slope[line]
    hi[line] = (1 - intercept[line]) / slope[line]
    if line.any():  # the actor's width where some step fixes it: the median of those steps' widths
        width = float(np.median(hi[line] - lo[line]))
    # one boundary inside: the line through it with the slope of a box ``width`` cells wide
    one = ~line & (count >= 1)
    first = np.argmax(inside, axis=1)
    lo[one] = first[one] - cdf[one, first[one]] * width
    hi[one] = lo[one] + width
    # none: the cell holding the median, and a box ``width`` wide centred on it
    none = ~line & ~one
    cell = np.argmax(cdf[:, 1:] >= 0.5, axis=1)
    lo[none] = cell[none] + 0.5 - width / 2
    hi[none] = lo[none] + width
    return np.clip(lo, 0, n), np.clip(hi, 0, n)


def _upsample_blur_operator(cells: int, pixels: int, sigma: float) -> np.ndarray:
    """(pixels, cells) matrix: bilinear upsampling along one axis (``cv2.resize``, pixel-centre
    aligned) followed by a 1-D Gaussian of ``sigma`` cells (``sigma * pixels / cells`` pixels,
    replicated border, truncated at 4 standard deviations as ``cv2.GaussianBlur`` does)."""
    up = cv2.resize(np.eye(cells), (cells, pixels), interpolation=cv2.INTER_LINEAR)
    if sigma > 0:
        up = gaussian_filter1d(up, sigma * pixels / cells, axis=0, mode="nearest", truncate=4.0)
    return up


def smooth_boxes(boxes: np.ndarray, frac: float, frames: np.ndarray | None = None) -> np.ndarray:
    """Temporal smoothing of each box coordinate by locally weighted linear regression.

    statsmodels' ``lowess`` with ``it=0`` (plain local linear regression with tricube weights,
    no robustness iterations) is fitted per coordinate on the frames that have a box and
    evaluated at every frame. The span is ``frac`` of the valid frames, but at least 5
    neighbours (the tricube weight of the farthest neighbours is 0, so fewer would interpolate
    rather than smooth, or leave a single point). Frames before the first / after the last valid
    frame take the first / last smoothed box (no extrapolation). Very short tubes: with 2-4
    valid frames a least-squares line through them (local linear regression with an unbounded
    span); with one, its box is repeated; with none, all NaN. A smoothed box whose x2 < x1 (or
    y2 < y1), possible because local linear weights can be negative, collapses to its midpoint.

    Args:
        boxes: (T, 4) ``(x1, y1, x2, y2)``; NaN rows are frames without a box.
        frac: LOWESS span as a fraction of the valid frames, in (0, 1].
        frames: (T,) frame indices of the rows (the regression's x); default ``arange(T)``.

    Returns:
        (T, 4) float64 smoothed boxes.
    """
    boxes = np.asarray(boxes, dtype=np.float64)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"boxes must be (T, 4), got shape {boxes.shape}")
    if not 0 < frac <= 1:
        raise ValueError(f"frac must lie in (0, 1], got {frac}")
    steps = boxes.shape[0]
    x = np.arange(steps, dtype=np.float64) if frames is None else np.asarray(frames, dtype=np.float64)
    if x.shape != (steps,):
        raise ValueError(f"frames must be ({steps},), got shape {x.shape}")
    valid = np.all(np.isfinite(boxes), axis=1)
    n = int(valid.sum())
    out = np.full_like(boxes, np.nan)
    if n == 0:
        return out
    xv, yv = x[valid], boxes[valid]
    order = np.argsort(xv, kind="stable")
    xv, yv = xv[order], yv[order]
    if n == 1:
        out[:] = yv[0]
        return out
    # Evaluate inside the valid range; beyond it hold the first/last smoothed value.
    where = np.clip(x, xv[0], xv[-1])
    if n < _MIN_LOWESS_NEIGHBOURS:
        slope, intercept = np.polynomial.polynomial.polyfit(xv, yv, 1)[[1, 0]]
        out[:] = where[:, None] * slope + intercept
    else:
        span = max(frac, min(1.0, (_MIN_LOWESS_NEIGHBOURS + 0.5) / n))  # +0.5: statsmodels floors frac*n
        for c in range(4):
            out[:, c] = lowess(yv[:, c], xv, frac=span, it=0, delta=0.0, xvals=where, is_sorted=True)
    for lo, hi in ((0, 2), (1, 3)):
        flipped = out[:, hi] < out[:, lo]
        mid = 0.5 * (out[flipped, lo] + out[flipped, hi])
        out[flipped, lo] = mid
        out[flipped, hi] = mid
    return out


# --------------------------------------------------------------------------------------------
# One tube per video
# --------------------------------------------------------------------------------------------


class Detection(NamedTuple):
    """A scored tube in a video, the input of :func:`video_map` (a plain 5-tuple works too).

    ``frames``: (T,) int frame indices; ``boxes``: (T, 4) ``(x1, y1, x2, y2)``, x2/y2 exclusive.
    """

    video_id: Hashable
    label: Hashable
    score: float
    frames: np.ndarray
    boxes: np.ndarray


class GroundTruthTube(NamedTuple):
    """An annotated action tube (a plain 3-tuple, or any object with these three attributes such
    as :class:`videolstm.data.datasets.ucf101_24.Tube`, works too).

    UCF101-24: ``frames = arange(sf, ef)`` (ef exclusive) and ``boxes`` from ``(x, y, w, h)`` as
    ``(x, y, x + w, y + h)``.
    """

    label: Hashable
    frames: np.ndarray
    boxes: np.ndarray


@dataclass(frozen=True)
class Tube:
    """The localization of one video: its predicted class, score and per-frame boxes.

    Attributes:
        label: predicted class index.
        score: mean class score of ``label`` (see :func:`localize_video`).
        frames: (T,) int frame indices of the attention steps.
        boxes: (T, 4) LOWESS-smoothed boxes, x2/y2 exclusive, frame pixels (NaN: none).
        raw_boxes: (T, 4) the per-frame boxes before temporal smoothing.
    """

    label: int
    score: float
    frames: np.ndarray
    boxes: np.ndarray
    raw_boxes: np.ndarray = field(repr=False)

    def detection(self, video_id: Hashable, smoothed: bool = True) -> Detection:
        """This tube as a :class:`Detection` of ``video_id`` (raw boxes with ``smoothed=False``)."""
        return Detection(video_id, self.label, self.score, self.frames, self.boxes if smoothed else self.raw_boxes)


def localize_video(
    attention: np.ndarray,
    frame_size: tuple[int, int],
    class_scores: np.ndarray,
    config: LocalizationConfig,
    frames: np.ndarray | None = None,
    label: int | None = None,
) -> Tube:
    """Boxes from attention, smoothed over time, as one tube for the predicted (or a given) class.

    The tube's steps (``config.temporal_extent``): ``boxes`` — from the first to the last step
    whose map gives a box (a step whose map holds no positive value, e.g. an oracle map on a frame
    without ground truth, before the first or after the last box is not part of the tube; a
    softmax attention gives a box at every step, so its tube spans the whole video, the paper's
    tube); ``video`` — every step (a step without a box takes the smoothed box of its neighbours);
    ``evidence`` — the longest run of steps where the evidence ``e_t = s_t · m_t`` (``s_t``: the
    step's probability of the tube's class, constant for (K,) scores; ``m_t``: the map's total
    mass, 1 for a softmax, 0 where an oracle map is empty), Gaussian-smoothed over
    ``temporal_sigma`` steps, reaches ``temporal_threshold`` of its maximum.

    Args:
        attention: (T, h, w) attention maps, one per step (the flow-input model's).
        frame_size: (H, W) of the frames the ground truth refers to.
        class_scores: either (T, K) per-step class probabilities — the predicted class is the
            argmax of their mean over steps and the score is that mean — or (K,) video-level
            probabilities — argmax and its probability. Ties go to the lowest class index.
        config: the box method (``box_method`` and its settings), ``temporal_extent`` and its
            settings, and ``lowess_frac``.
        frames: (T,) frame index of each step; default ``arange(T)``.
        label: the tube's class instead of the argmax (its score is then that class's mean
            score): localization *given the class*, which isolates the boxes from the
            classification (used by the calibration rows, :mod:`videolstm.evaluation.calibration`).

    Returns:
        A :class:`Tube` (all steps, with NaN boxes, when no step gives a box).
    """
    attention = np.asarray(attention, dtype=np.float64)
    frame_idx, step_scores, label, score = _tube_inputs(attention, class_scores, frames, label)
    return _tube(attention, frame_size, config, frame_idx, step_scores, label, score)


def localize_video_tubes(
    attention: np.ndarray,
    frame_size: tuple[int, int],
    class_scores: np.ndarray,
    config: LocalizationConfig,
    frames: np.ndarray | None = None,
    label: int | None = None,
) -> list[Tube]:
    """Up to ``config.max_tubes`` tubes of one video, one per separate attention peak (several actors).

    Every step's map is split
    into the regions of its separate peaks (:func:`attention_peaks`: each positive cell goes to the
    nearest peak), the regions are linked over time into tracks (greedily, nearest peak to each
    track's previous peak; a peak left over starts a new track while there are fewer than
    ``max_tubes``), and each track's masked maps (zero outside its region, and at steps where it
    has no peak) go through the same boxes and temporal extent as :func:`localize_video`; the
    ``max_tubes`` tracks with the largest mean share of the attention mass over all steps are kept
    (``max_tracks`` is one more, so the dominant ones are chosen among all), each scored by the class
    score times that share, so the dominant actor's tube ranks first. With one track (one actor) or
    ``box_method: paper`` and ``max_tubes`` 1 this is ``[localize_video(...)]``; with ``max_tubes`` 1
    and several actors it is the dominant actor's tube, scored by the class score alone (the
    paper's one tube). Arguments as :func:`localize_video`.

    Returns:
        The tubes, by descending score (at least one).
    """
    attention = np.asarray(attention, dtype=np.float64)
    frame_idx, step_scores, label, score = _tube_inputs(attention, class_scores, frames, label)
    if config.max_tubes == 1 and config.box_method == "paper":  # the paper's procedure picks its component itself
        return [_tube(attention, frame_size, config, frame_idx, step_scores, label, score)]
    tracks = track_peaks(attention, config.max_tubes + 1, config.peak_dip)  # one more: the top ones are chosen
    if len(tracks) <= 1:  # one actor (or none): the whole map, as the paper's one tube
        return [_tube(attention, frame_size, config, frame_idx, step_scores, label, score)]
    total = np.nan_to_num(attention).clip(min=0).sum(axis=(1, 2))
    shares = []
    for masked in tracks:
        mass = masked.sum(axis=(1, 2))
        shares.append(float(np.mean(np.divide(mass, total, out=np.zeros_like(mass), where=total > 0))))
    top = np.argsort(-np.asarray(shares), kind="stable")[: config.max_tubes]
    if config.max_tubes == 1:  # the dominant actor's tube, scored as the paper's one tube
        return [_tube(tracks[int(top[0])], frame_size, config, frame_idx, step_scores, label, score)]
    return [_tube(tracks[int(k)], frame_size, config, frame_idx, step_scores, label, score * shares[int(k)]) for k in top]


def _tube_inputs(attention: np.ndarray, class_scores: np.ndarray, frames: np.ndarray | None, label: int | None) -> tuple[np.ndarray, np.ndarray, int, float]:
    """(frame indices (T,), per-step scores of the label (T,), label, the tube's score) after checking the shapes."""
    if attention.ndim != 3:
        raise ValueError(f"attention must be (T, h, w), got shape {attention.shape}")
    steps = attention.shape[0]
    frame_idx = np.arange(steps) if frames is None else np.asarray(frames).astype(np.int64)
    if frame_idx.shape != (steps,):
        raise ValueError(f"frames must be ({steps},), got shape {frame_idx.shape}")
    scores = np.asarray(class_scores, dtype=np.float64)
    per_step = None
    if scores.ndim == 2:
        if scores.shape[0] != steps:
            raise ValueError(f"class_scores (T, K) must have T={steps} rows, got {scores.shape}")
        per_step, scores = scores, scores.mean(axis=0)
    elif scores.ndim != 1:
        raise ValueError(f"class_scores must be (T, K) or (K,), got shape {scores.shape}")
    if label is None:
        label = int(np.argmax(scores))
    elif not 0 <= int(label) < scores.shape[0]:
        raise ValueError(f"label {label} is not one of the {scores.shape[0]} classes of class_scores")
    label = int(label)
    step_scores = per_step[:, label] if per_step is not None else np.full(steps, scores[label])
    return frame_idx, step_scores, label, float(scores[label])


def _tube(
    attention: np.ndarray,
    frame_size: tuple[int, int],
    config: LocalizationConfig,
    frame_idx: np.ndarray,
    step_scores: np.ndarray,
    label: int,
    score: float,
) -> Tube:
    raw = step_boxes(attention, frame_size, config)
    mass = np.nan_to_num(attention).clip(min=0).sum(axis=(1, 2))
    span = tube_span(np.all(np.isfinite(raw), axis=1), step_scores * mass, config)
    raw, frame_idx = raw[span], frame_idx[span]
    smoothed = smooth_boxes(raw, config.lowess_frac, frames=frame_idx)
    return Tube(label=label, score=score, frames=frame_idx, boxes=smoothed, raw_boxes=raw)


def tube_span(has_box: np.ndarray, evidence: np.ndarray, config: LocalizationConfig) -> slice:
    """The steps of a tube by ``config.temporal_extent`` (see :func:`localize_video`).

    Args:
        has_box: (T,) bool, whether the step's map gives a box.
        evidence: (T,) non-negative per-step evidence (class score x attention mass).

    Returns:
        A slice of the steps: every step when no step has a box (or, for ``evidence``, when the
        evidence is nowhere positive: then as ``boxes``).
    """
    steps = has_box.shape[0]
    found = np.flatnonzero(has_box)
    if config.temporal_extent == "video" or not found.size:
        return slice(0, steps)
    by_boxes = slice(int(found[0]), int(found[-1]) + 1)
    if config.temporal_extent == "boxes":
        return by_boxes
    e = np.nan_to_num(np.asarray(evidence, dtype=np.float64)).clip(min=0)
    if config.temporal_sigma > 0:
        e = gaussian_filter1d(e, config.temporal_sigma, mode="nearest")
    if not e.max() > 0:
        return by_boxes
    above = np.concatenate([[False], e >= config.temporal_threshold * e.max(), [False]])
    edges = np.flatnonzero(np.diff(above.astype(np.int8)))  # run starts and ends (exclusive), alternating
    starts, ends = edges[0::2], edges[1::2]
    longest = int(np.argmax(ends - starts))  # ties: the first
    return slice(int(starts[longest]), int(ends[longest]))


def attention_peaks(amap: np.ndarray, max_peaks: int, dip: float) -> list[tuple[int, int]]:
    """Up to ``max_peaks`` separate peaks of one (h, w) map, strongest first.

    A peak is a positive cell not below any of its 8 neighbours; candidates are taken by
    descending value, and one is kept when, towards every peak already kept, the map falls
    somewhere on the straight line of cells between them below ``dip`` × the lower of the two
    (a plateau or a ridge joins them: one actor).
    """
    a = np.nan_to_num(np.asarray(amap, dtype=np.float64)).clip(min=0)
    if not a.max() > 0:
        return []
    padded = np.pad(a, 1, constant_values=-np.inf)
    h, w = a.shape
    neighbours = np.stack([padded[1 + di : 1 + di + h, 1 + dj : 1 + dj + w] for di in (-1, 0, 1) for dj in (-1, 0, 1) if di or dj])
    candidates = np.argwhere((a > 0) & (a >= neighbours.max(axis=0)))
    candidates = candidates[np.argsort(-a[candidates[:, 0], candidates[:, 1]], kind="stable")]
    kept: list[tuple[int, int]] = []
    for i, j in candidates:
        separate = True
        for pi, pj in kept:
            n = max(abs(int(i) - pi), abs(int(j) - pj)) + 1
            line = a[np.rint(np.linspace(i, pi, n)).astype(int), np.rint(np.linspace(j, pj, n)).astype(int)]
            if not line.min() < dip * min(a[i, j], a[pi, pj]):
                separate = False
                break
        if separate:
            kept.append((int(i), int(j)))
            if len(kept) == max_peaks:
                break
    return kept


def _peak_regions(amap: np.ndarray, peaks: list[tuple[int, int]], cells: np.ndarray) -> np.ndarray:
    """(h, w) index of the peak each cell belongs to (-1: none): the 8-connected component of positive
    cells that holds a peak goes to it whole; a component with several peaks is split by the nearest
    peak; a component without a peak belongs to none."""
    components, _ = ndimage.label(amap > 0, structure=np.ones((3, 3), dtype=int))
    centres = np.asarray(peaks, dtype=np.float64)
    nearest = np.argmin(np.linalg.norm(cells[:, :, None, :] - centres[None, None], axis=-1), axis=-1)
    regions = np.full(amap.shape, -1)
    owners: dict[int, list[int]] = {}
    for k, (i, j) in enumerate(peaks):
        owners.setdefault(int(components[i, j]), []).append(k)
    for component, mine in owners.items():
        inside = components == component
        regions[inside] = mine[0] if len(mine) == 1 else nearest[inside]
    return regions


def track_peaks(attention: np.ndarray, max_tracks: int, dip: float) -> list[np.ndarray]:
    """(T, h, w) maps → up to ``max_tracks`` (T, h, w) masked maps, one per track of separate peaks
    (see :func:`localize_video_tubes`); a track's map is the step's map on the cells nearer to its
    peak than to the step's other peaks, zero elsewhere and at steps where it has no peak."""
    att = np.nan_to_num(np.asarray(attention, dtype=np.float64)).clip(min=0)
    steps, h, w = att.shape
    cells = np.stack(np.meshgrid(np.arange(h), np.arange(w), indexing="ij"), axis=-1).astype(np.float64)  # (h, w, 2)
    tracks: list[np.ndarray] = []
    last: list[np.ndarray] = []
    for t in range(steps):
        peaks = attention_peaks(att[t], max_tracks, dip)
        if not peaks:
            continue
        nearest = _peak_regions(att[t], peaks, cells)
        centres = np.asarray(peaks, dtype=np.float64)
        free = list(range(len(peaks)))
        pairs = sorted((float(np.linalg.norm(last[k] - centres[p])), k, p) for k in range(len(last)) for p in free)
        taken_tracks: set[int] = set()
        for _, k, p in pairs:
            if k in taken_tracks or p not in free:
                continue
            tracks[k][t] = np.where(nearest == p, att[t], 0.0)
            last[k] = centres[p]
            taken_tracks.add(k)
            free.remove(p)
        for p in free:
            if len(tracks) == max_tracks:
                break
            track = np.zeros_like(att)
            track[t] = np.where(nearest == p, att[t], 0.0)
            tracks.append(track)
            last.append(centres[p])
    return tracks


def boxes_at_frames(frames: np.ndarray, tube_frames: np.ndarray, tube_boxes: np.ndarray) -> np.ndarray:
    """A tube's boxes at the given frames: (len(frames), 4), NaN where the tube has no box.

    Use it to put ground-truth tubes on the attention steps for :func:`frame_recall_curve`
    (several GT tubes of one video: call it per tube and take, per frame, the first non-NaN).
    """
    frames = np.asarray(frames).astype(np.int64)
    tube_frames = np.asarray(tube_frames).astype(np.int64)
    tube_boxes = np.asarray(tube_boxes, dtype=np.float64).reshape(-1, 4)
    out = np.full((frames.shape[0], 4), np.nan)
    lookup = {int(f): i for i, f in enumerate(tube_frames)}
    for row, f in enumerate(frames):
        i = lookup.get(int(f))
        if i is not None:
            out[row] = tube_boxes[i]
    return out


# --------------------------------------------------------------------------------------------
# Metrics
# --------------------------------------------------------------------------------------------


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Element-wise IoU of boxes, broadcasting the leading dimensions.

    Args:
        a: (..., 4) ``(x1, y1, x2, y2)``, x2/y2 exclusive.
        b: (..., 4), broadcastable with ``a`` (pairwise: ``box_iou(a[:, None], b[None])``).

    Returns:
        (...) float64 IoU in [0, 1]. 0 where either box is NaN or the union is empty.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape[-1] != 4 or b.shape[-1] != 4:
        raise ValueError(f"boxes must end in 4 coordinates, got {a.shape} and {b.shape}")
    iw = np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0])
    ih = np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1])
    inter = np.clip(iw, 0, None) * np.clip(ih, 0, None)
    area_a = np.clip(a[..., 2] - a[..., 0], 0, None) * np.clip(a[..., 3] - a[..., 1], 0, None)
    area_b = np.clip(b[..., 2] - b[..., 0], 0, None) * np.clip(b[..., 3] - b[..., 1], 0, None)
    union = area_a + area_b - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)
    return np.nan_to_num(iou, nan=0.0)


def tube_iou(frames_a: np.ndarray, boxes_a: np.ndarray, frames_b: np.ndarray, boxes_b: np.ndarray) -> float:
    """Spatio-temporal IoU: temporal IoU x mean spatial IoU over the frames both tubes cover.

    temporal IoU = ``|A & B| / |A | B|`` of the two frame sets; the spatial term averages
    :func:`box_iou` over ``A & B`` (a NaN box counts as IoU 0). 0 when no frame is shared.
    Equal to ACT's ``iou3dt`` (Kalogeiton et al. 2017) for tubes without gaps; see the module
    docstring.

    Args:
        frames_a, frames_b: (Ta,), (Tb,) unique integer frame indices.
        boxes_a, boxes_b: (Ta, 4), (Tb, 4) boxes, x2/y2 exclusive.
    """
    fa = np.asarray(frames_a).astype(np.int64).ravel()
    fb = np.asarray(frames_b).astype(np.int64).ravel()
    ba = np.asarray(boxes_a, dtype=np.float64).reshape(-1, 4)
    bb = np.asarray(boxes_b, dtype=np.float64).reshape(-1, 4)
    if ba.shape[0] != fa.shape[0] or bb.shape[0] != fb.shape[0]:
        raise ValueError(f"frames and boxes disagree in length: {fa.shape[0]} vs {ba.shape[0]}, {fb.shape[0]} vs {bb.shape[0]}")
    if np.unique(fa).size != fa.size or np.unique(fb).size != fb.size:
        raise ValueError("a tube lists the same frame twice")
    common, ia, ib = np.intersect1d(fa, fb, assume_unique=True, return_indices=True)
    if common.size == 0:
        return 0.0
    temporal = common.size / (fa.size + fb.size - common.size)
    spatial = float(box_iou(ba[ia], bb[ib]).mean())
    return temporal * spatial


def average_precision(scores: np.ndarray, is_true_positive: np.ndarray, num_positives: int) -> float:
    """All-point interpolated average precision (PASCAL VOC 2010+).

    Detections are ranked by descending score (stable: ties keep input order); precision is
    made monotone (each precision replaced by the maximum precision at any higher recall) and
    integrated over the recall steps; recall not reached counts as precision 0.

    Args:
        scores: (D,) detection scores.
        is_true_positive: (D,) bool, whether each detection matched a positive.
        num_positives: number of ground-truth positives (the recall denominator).

    Returns:
        AP in [0, 1]; NaN when ``num_positives`` is 0 (undefined); 0 with no detections.
    """
    scores = np.asarray(scores, dtype=np.float64).ravel()
    tp = np.asarray(is_true_positive, dtype=bool).ravel()
    if scores.shape != tp.shape:
        raise ValueError(f"scores {scores.shape} and is_true_positive {tp.shape} differ in length")
    if num_positives < 0:
        raise ValueError(f"num_positives must be >= 0, got {num_positives}")
    if tp.sum() > num_positives:
        raise ValueError(f"{int(tp.sum())} true positives but only {num_positives} positives")
    if num_positives == 0:
        return math.nan
    if scores.size == 0:
        return 0.0
    order = np.argsort(-scores, kind="stable")
    tp = tp[order]
    cum_tp = np.cumsum(tp)
    recall = cum_tp / num_positives
    precision = cum_tp / np.arange(1, tp.size + 1)
    mrec = np.concatenate([[0.0], recall, [1.0]])
    mpre = np.concatenate([[0.0], precision, [0.0]])
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    steps = np.flatnonzero(mrec[1:] != mrec[:-1])
    return float(np.sum((mrec[steps + 1] - mrec[steps]) * mpre[steps + 1]))


def _as_detection(item: Any) -> Detection:
    """A :class:`Detection` from itself, a 5-tuple, or any object with its attribute names."""
    if isinstance(item, Detection):
        return item
    if all(hasattr(item, name) for name in Detection._fields):
        return Detection(*(getattr(item, name) for name in Detection._fields))
    return Detection(*item)


def _as_gt(item: Any) -> GroundTruthTube:
    """A :class:`GroundTruthTube` from itself, a 3-tuple, or any object with ``label``,
    ``frames`` and ``boxes`` attributes (e.g. :class:`videolstm.data.datasets.ucf101_24.Tube`)."""
    if isinstance(item, GroundTruthTube):
        return item
    if all(hasattr(item, name) for name in GroundTruthTube._fields):
        return GroundTruthTube(*(getattr(item, name) for name in GroundTruthTube._fields))
    return GroundTruthTube(*item)


def _sorted_labels(labels: Iterable[Hashable]) -> list[Hashable]:
    labels = list(set(labels))
    try:
        return sorted(labels)  # type: ignore[type-var]  # comparable labels sort as themselves, others by str below
    except TypeError:
        return sorted(labels, key=str)


@dataclass
class _ClassCandidates:
    scores: np.ndarray  # (D,) descending
    overlaps: list[np.ndarray]  # per detection: IoU with each GT tube of the class in its video
    videos: list[Hashable]
    num_positives: int


def _candidates(detections: Iterable[Any], ground_truth: Mapping[Hashable, Sequence[Any]]) -> dict[Hashable, _ClassCandidates]:
    """Spatio-temporal IoUs of every detection with the same-class GT tubes of its video."""
    gt = {vid: [_as_gt(t) for t in tubes] for vid, tubes in ground_truth.items()}
    dets = [_as_detection(d) for d in detections]
    out: dict[Hashable, _ClassCandidates] = {}
    for label in _sorted_labels(t.label for tubes in gt.values() for t in tubes):
        mine = [d for d in dets if d.label == label]
        order = np.argsort(-np.array([float(d.score) for d in mine], dtype=np.float64), kind="stable")
        mine = [mine[i] for i in order]
        overlaps = []
        for d in mine:
            tubes = [t for t in gt.get(d.video_id, ()) if t.label == label]
            overlaps.append(np.array([tube_iou(d.frames, d.boxes, t.frames, t.boxes) for t in tubes]))
        out[label] = _ClassCandidates(
            scores=np.array([float(d.score) for d in mine], dtype=np.float64),
            overlaps=overlaps,
            videos=[d.video_id for d in mine],
            num_positives=sum(t.label == label for tubes in gt.values() for t in tubes),
        )
    return out


def _class_ap(cand: _ClassCandidates, iou_threshold: float) -> float:
    used: dict[Hashable, np.ndarray] = {}
    tp = np.zeros(cand.scores.size, dtype=bool)
    for i, (video, ious) in enumerate(zip(cand.videos, cand.overlaps, strict=True)):
        if ious.size == 0:
            continue
        taken = used.setdefault(video, np.zeros(ious.size, dtype=bool))
        free = np.where(taken, -1.0, ious)
        best = int(np.argmax(free))
        if free[best] >= iou_threshold:
            tp[i] = True
            taken[best] = True
    return average_precision(cand.scores, tp, cand.num_positives)


def video_map(
    detections: Iterable[Detection | tuple],
    ground_truth: Mapping[Hashable, Sequence[GroundTruthTube | tuple]],
    iou_threshold: float,
) -> tuple[float, dict[Hashable, float]]:
    """Video mAP at one spatio-temporal IoU threshold.

    Args:
        detections: ``(video_id, label, score, frames (T,), boxes (T, 4))`` items.
        ground_truth: ``video_id -> [(label, frames (T,), boxes (T, 4)), ...]`` — what
            :func:`videolstm.data.datasets.ucf101_24.load_ucf101_24` returns.
        iou_threshold: a detection is a true positive at IoU >= this.

    Returns:
        ``(mAP, {label: AP})`` over the classes that have ground truth (sorted labels); mAP is
        NaN when no class has any. See the module docstring for the matching rule.
    """
    per_class = {label: _class_ap(c, iou_threshold) for label, c in _candidates(detections, ground_truth).items()}
    mean = float(np.mean(list(per_class.values()))) if per_class else math.nan
    return mean, per_class


def video_map_at(
    detections: Iterable[Detection | tuple],
    ground_truth: Mapping[Hashable, Sequence[GroundTruthTube | tuple]],
    thresholds: Sequence[float] = DEFAULT_IOU_THRESHOLDS,
) -> dict[float, float]:
    """Video mAP at each threshold, ``{threshold: mAP}`` (IoUs are computed once).

    ``{map_key(t): v for t, v in result.items()}`` gives the metric names the report reads.
    """
    cands = _candidates(list(detections), ground_truth)
    out = {}
    for thr in thresholds:
        aps = [_class_ap(c, thr) for c in cands.values()]
        out[float(thr)] = float(np.mean(aps)) if aps else math.nan
    return out


@dataclass(frozen=True)
class FrameRecall:
    """Per-frame recall vs IoU threshold (Fig. 5), as counts so that videos can be summed.

    Attributes:
        thresholds: (M,) IoU thresholds.
        hits: (M,) int number of ground-truth frames whose predicted box has IoU >= threshold.
        num_frames: number of ground-truth frames (frames with a GT box).
    """

    thresholds: np.ndarray
    hits: np.ndarray
    num_frames: int

    @property
    def recall(self) -> np.ndarray:
        """(M,) hits / num_frames; NaN when there are no ground-truth frames."""
        if self.num_frames == 0:
            return np.full(self.thresholds.shape, np.nan)
        return self.hits / self.num_frames

    def __add__(self, other: FrameRecall) -> FrameRecall:
        if not np.array_equal(self.thresholds, other.thresholds):
            raise ValueError("cannot add recall curves computed at different thresholds")
        return FrameRecall(self.thresholds, self.hits + other.hits, self.num_frames + other.num_frames)


def frame_recall_curve(
    pred_boxes: np.ndarray | Sequence[np.ndarray],
    gt_boxes: np.ndarray | Sequence[np.ndarray],
    thresholds: Sequence[float] | np.ndarray = DEFAULT_RECALL_THRESHOLDS,
) -> FrameRecall:
    """Fraction of ground-truth frames whose predicted box reaches each IoU threshold.

    Args:
        pred_boxes: (T, 4) predicted boxes (NaN: none, a miss), or a list of such arrays, one
            per video.
        gt_boxes: (T, 4) ground-truth boxes aligned with ``pred_boxes`` (NaN where the frame
            has no ground truth; such frames are not counted), or a matching list.
        thresholds: (M,) IoU thresholds; a frame counts at threshold t when IoU >= t.

    Returns:
        A :class:`FrameRecall` (``.recall`` is the curve; ``+`` sums over videos).
    """
    thr = np.asarray(thresholds, dtype=np.float64).ravel()
    if isinstance(pred_boxes, np.ndarray) and pred_boxes.ndim == 2:
        pred_list, gt_list = [pred_boxes], [np.asarray(gt_boxes)]
    else:
        pred_list, gt_list = list(pred_boxes), list(gt_boxes)
    if len(pred_list) != len(gt_list):
        raise ValueError(f"{len(pred_list)} predicted box arrays but {len(gt_list)} ground-truth arrays")
    hits = np.zeros(thr.size, dtype=np.int64)
    total = 0
    for pred, gt in zip(pred_list, gt_list, strict=True):
        pred = np.asarray(pred, dtype=np.float64).reshape(-1, 4)
        gt = np.asarray(gt, dtype=np.float64).reshape(-1, 4)
        if pred.shape != gt.shape:
            raise ValueError(f"predicted {pred.shape} and ground-truth {gt.shape} boxes are not aligned")
        has_gt = np.all(np.isfinite(gt), axis=1)
        ious = box_iou(pred[has_gt], gt[has_gt])
        hits += (ious[None, :] >= thr[:, None]).sum(axis=1)
        total += int(has_gt.sum())
    return FrameRecall(thresholds=thr, hits=hits, num_frames=total)
