"""Training and test protocol of the paper, as pure functions.

* Training: one random ``length``-frame snippet per video per epoch (:func:`random_snippet_start`).
* Test: ``num_segments`` ``segment_length``-frame segments per video placed as the authors'
  iterator places them (:func:`segment_starts`, short videos padded with their last frame,
  :func:`segment_indices`); class probabilities are summed over the steps of a segment and
  averaged over the segments (:func:`aggregate_video_probabilities`).
* Two-stream fusion: product of the RGB and flow probabilities, renormalised
  (:func:`fuse_probabilities`).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

FUSIONS: tuple[str, ...] = ("product", "mean")
#: Where test segments go: ``authors`` (their test iterator) | ``even`` (the recipe before it, a deviation).
SEGMENT_PLACEMENTS: tuple[str, ...] = ("authors", "even")


def segment_starts(num_frames: int, num_segments: int = 25, segment_length: int = 30, placement: str = "authors") -> list[int]:
    """First frame of each of the ``num_segments`` test segments, as the authors' test iterator
    (``placement="authors"``) or evenly spaced end to end (``"even"``, :func:`even_segment_starts`).

    ``sparnn/iterators/video_data_ts_iterator.py`` (test mode): for a video of L ≥ ℓ frames,
    avg = ⌊(L − ℓ + 1) / S⌋ and segment j starts at ⌊avg/2 + j·avg⌋, j = 0 … S − 1. Starts can
    repeat (avg = 0 when L < ℓ + S − 1: every segment starts at 0) — the authors count such a
    segment S times and so does :func:`aggregate_video_probabilities`. A video shorter than ℓ
    has S segments at 0, each padded to ℓ frames with its last frame
    (:func:`segment_indices`).

    Examples: (300, 25, 30) → [5, 15, …, 245]; (100, 3, 30) → [11, 34, 57]; (20, 25, 30) → [0] * 25.
    """
    if num_frames < 1 or num_segments < 1 or segment_length < 1:
        raise ValueError(f"segment_starts needs num_frames, num_segments and segment_length >= 1, got {num_frames}, {num_segments}, {segment_length}")
    if placement == "even":
        return even_segment_starts(num_frames, num_segments, segment_length)
    if placement != "authors":
        raise ValueError(f"unknown segment placement {placement!r}; expected one of {SEGMENT_PLACEMENTS}")
    if num_frames < segment_length:
        return [0] * num_segments
    avg = (num_frames - segment_length + 1) // num_segments
    return [int(avg / 2 + j * avg) for j in range(num_segments)]


def even_segment_starts(num_frames: int, num_segments: int, segment_length: int) -> list[int]:
    """Evenly spaced test segments, ascending — the recipe before the authors' iterator (a deviation).

    * The first segment starts at 0 and the last at ``num_frames - segment_length`` (the
      segments cover the video end to end); start s_i = round(i·(num_frames − L)/(S − 1)),
      halves rounded up, i = 0 … S − 1. ``num_segments == 1``: the centred segment,
      round((num_frames − L)/2).
    * Fewer possible starts than segments (num_frames − L + 1 < S): every start 0 … num_frames − L
      once, so no segment is counted twice.
    * A video not longer than one segment (num_frames ≤ L): ``[0]``, one segment (padded with the
      last frame by :func:`segment_indices`).

    Examples: (100, 3, 30) → [0, 35, 70]; (34, 25, 30) → [0, 1, 2, 3, 4]; (20, 25, 30) → [0].
    """
    span = num_frames - segment_length  # the last possible start
    if span <= 0:
        return [0]
    if span + 1 <= num_segments:
        return list(range(span + 1))
    if num_segments == 1:
        return [(span + 1) // 2]
    denominator = num_segments - 1
    return [(2 * i * span + denominator) // (2 * denominator) for i in range(num_segments)]


def segment_indices(num_frames: int, start: int, segment_length: int) -> np.ndarray:
    """(segment_length,) frame indices of the segment at ``start``: past the last frame, the last frame again."""
    if num_frames < 1 or not 0 <= start < num_frames:
        raise ValueError(f"segment start {start} is outside a video of {num_frames} frames")
    return np.minimum(np.arange(start, start + segment_length), num_frames - 1)


def random_snippet_start(num_frames: int, length: int, generator: Any = None) -> int:
    """Start of a random training snippet: uniform over 0 … max(0, num_frames − length).

    generator: a ``torch.Generator``, a ``numpy.random.Generator``, a ``random.Random`` or None
    (torch's global generator). A video shorter than ``length`` gives 0 (the model then runs
    over the frames there are).
    """
    if num_frames < 1 or length < 1:
        raise ValueError(f"random_snippet_start needs num_frames and length >= 1, got {num_frames}, {length}")
    high = max(0, num_frames - length)
    if isinstance(generator, np.random.Generator):
        return int(generator.integers(0, high + 1))
    if isinstance(generator, random.Random):
        return generator.randint(0, high)
    if generator is None or isinstance(generator, torch.Generator):
        return int(torch.randint(high + 1, (1,), generator=generator).item())
    raise ValueError(f"generator must be a torch.Generator, numpy.random.Generator, random.Random or None, got {type(generator).__name__}")


def aggregate_video_probabilities(logits_per_segment: Tensor | Sequence[Tensor]) -> Tensor:
    """Video-level class probabilities from per-step logits of its test segments.

    logits_per_segment: (S, T, K) for one video, (V, S, T, K) for V videos, or a sequence of
    S tensors (T_s, K) (segments of different lengths, e.g. a short video).
    Returns (K,) or (V, K): softmax over K at every step, summed over the steps of each
    segment, averaged over the segments, then divided by its sum so each video's vector sums
    to 1 (with equal-length segments that division is by T: the mean per-step probability).
    """
    if isinstance(logits_per_segment, Tensor):
        logits = logits_per_segment
        if logits.dim() not in (3, 4):
            raise ValueError(f"aggregate_video_probabilities expects logits of shape (S, T, K) or (V, S, T, K), got {tuple(logits.shape)}")
        summed = torch.softmax(logits.float(), dim=-1).sum(dim=-2)  # (..., S, K)
        video = summed.mean(dim=-2)
    else:
        segments = list(logits_per_segment)
        if not segments or any(not isinstance(s, Tensor) or s.dim() != 2 for s in segments):
            raise ValueError("aggregate_video_probabilities expects a non-empty sequence of (T_s, K) tensors")
        video = torch.stack([torch.softmax(s.float(), dim=-1).sum(dim=0) for s in segments]).mean(dim=0)
    return video / video.sum(dim=-1, keepdim=True)


def fuse_probabilities(p_rgb: Tensor, p_flow: Tensor, method: str = "product") -> Tensor:
    """Two-stream fusion of class probabilities.

    p_rgb, p_flow: (..., K), the same shape, each row a probability vector. Returns (..., K):

    * "product": p_rgb · p_flow, renormalised to sum to 1 per row (the paper). Computed in
      float64 log space so tiny probabilities do not underflow; a row whose product is all
      zero (the two streams give disjoint support) falls back to the mean of that row.
    * "mean": (p_rgb + p_flow) / 2.

    Array-likes are accepted; the result is a tensor of p_rgb's floating dtype.
    """
    if method not in FUSIONS:
        raise ValueError(f"fusion method must be one of {FUSIONS}, got {method!r}")
    a, b = _as_tensor(p_rgb), _as_tensor(p_flow)
    if a.shape != b.shape or a.dim() < 1:
        raise ValueError(f"fuse_probabilities expects two (..., K) tensors of the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    dtype = a.dtype if a.is_floating_point() else torch.get_default_dtype()
    a64, b64 = a.double(), b.double()
    mean = (a64 + b64) / 2
    if method == "mean":
        return mean.to(dtype)
    log_product = torch.log(a64) + torch.log(b64)
    empty = torch.isneginf(log_product).all(dim=-1, keepdim=True)
    fused = torch.softmax(log_product.masked_fill(empty, 0.0), dim=-1)
    return torch.where(empty, mean, fused).to(dtype)


def _as_tensor(values: Any) -> Tensor:
    """A tensor view of ``values``; read-only arrays (e.g. from Arrow) are copied, not aliased."""
    if isinstance(values, Tensor):
        return values
    array = np.asarray(values)
    return torch.from_numpy(array if array.flags.writeable else array.copy())
