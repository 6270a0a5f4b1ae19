"""Calibration of localization from attention: the same box pipeline fed with reference maps.

A learned model's localization (``loc/mAP_<θ>``) means little alone: is 0.2 good? Every
evaluation of an attention model therefore also scores, through the *same* model hook and the
*same* box pipeline, three reference attentions (:data:`BASELINES`):

* **oracle** — the ground-truth box of each frame rendered as an attention map at the
  feature-map resolution (:func:`oracle_attention`): what the pipeline makes of perfect
  attention. It bounds the pipeline from above; on a synthetic set it must reach
  mAP@0.2 ≥ 0.9, and less means the box pipeline (coordinates, frame sizes, rescaling, sf/ef)
  or the map's resolution loses the actor.
* **uniform** — 1/(h·w) everywhere (:func:`uniform_attention`): no information. Its box is the
  whole frame, so its IoU is the actor's share of the frame.
* **centre** — a Gaussian centre prior (:func:`centre_prior_attention`): a fixed position prior,
  what a model that learned "the action is in the middle" would score.
* **motion** — the energy of the flow stream's pool5 maps M_t (the motion layer's input),
  Σ_c M_{t,c}², normalised over positions (:func:`motion_energy_attention`): what attention
  that simply followed the motion features would score. It tells a learned attention that
  *could not* find the actor (the features do not single it out: motion ≈ uniform) from one
  that *did not* (motion ≫ learned). Present when the features hold the flow maps.

* **oracle_video** — the oracle's maps with the tube over the whole video (``temporal_extent:
  video``): the oracle *without* temporal extent, beside the oracle row's tube over the steps the
  configured ``temporal_extent`` keeps (the annotated frames, where the oracle map is not empty).

The oracle rows rank their tubes by a score that does not depend on the model (every tube scores
1, ties in the videos' order; :func:`model_free_scores`): they measure the boxes, not the
classifier, and are identical across the models of one run.

Each map goes through the model's ``attention=`` hook (the model returns the maps it used and
its class probabilities under them) and then :func:`localize_video` exactly as the learned
attention does. The rows are scored **given the class** (each tube takes its video's true label,
scored by the model's probability of it), so they measure localization alone; the learned
attention is scored the same way as ``loc/learned/…`` beside the paper's ``loc/…`` (the
predicted class), so the rows compare like with like:

    loc/learned/mAP_<θ>   loc/oracle/mAP_<θ>   loc/oracle_video/mAP_<θ>   loc/uniform/mAP_<θ>   loc/centre/mAP_<θ>
    loc/motion/mAP_<θ>
    (and .../frame_recall_0.5, .../frame_recall_0.5_smoothed, .../videos for each)

Each row also gives ``loc/<row>/video_accuracy``: the share of videos whose class, from the
probabilities summed over the steps of the whole-video run under that attention, is right. It
asks whether the trained classifier would *gain* from attention on the actor (oracle above
learned) — a classifier that does not gain has no reason to learn to localize.

A frame without a ground-truth box gets an all-zero oracle map, so the oracle's tube spans the
annotated frames only (see :func:`videolstm.evaluation.localization.localize_video`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from videolstm.config import LocalizationConfig
from videolstm.evaluation.localization import boxes_at_frames

__all__ = [
    "BASELINES",
    "CALIBRATION_ROWS",
    "box_cell_coverage",
    "calibrate_localization",
    "calibrate_predictions",
    "calibration_markdown",
    "attention_predictor",
    "centre_prior_attention",
    "is_calibration_metric",
    "mean_sd",
    "model_free_scores",
    "motion_energy_attention",
    "oracle_attention",
    "reference_attention",
    "shard_columns",
    "shard_motion_features",
    "uniform_attention",
    "video_accuracy",
]

#: The reference attentions, in the order the report shows them.
BASELINES: tuple[str, ...] = ("oracle", "uniform", "centre", "motion")
#: The flow stream's maps column of a feature shard (the motion baseline's input).
MOTION_FEATURES_COLUMN = "flow_pool5"
#: The oracle's maps with the tube over the whole video (no temporal extent): calibrates ``temporal_extent``.
WHOLE_VIDEO_ORACLE = "oracle_video"
#: Every row of the calibration, given the class: the learned attention and the baselines.
CALIBRATION_ROWS: tuple[str, ...] = ("learned", "oracle", WHOLE_VIDEO_ORACLE, *BASELINES[1:])

#: Runs the model with injected maps: (video id, {row: maps (T, h, w)}) → {row: (T, K) probabilities}.
AttentionPredictor = Callable[[str, Mapping[str, np.ndarray]], Mapping[str, np.ndarray]]


# --------------------------------------------------------------------------------------------
# Reference maps


def box_cell_coverage(boxes: np.ndarray, frame_size: tuple[float, float], grid: tuple[int, int]) -> np.ndarray:
    """The fraction of each attention cell's area that lies inside a box.

    The (h, w) cells partition the frame: cell (i, j) is the pixel rectangle
    ``[j·W/w, (j+1)·W/w) × [i·H/h, (i+1)·H/h)`` (continuous coordinates, the same ones as the
    boxes). The coverage of cell (i, j) is ``|cell ∩ box| / |cell|`` in [0, 1]; it separates
    into (overlap along y) × (overlap along x).

    Args:
        boxes: (..., 4) ``(x1, y1, x2, y2)`` in frame pixels, x2/y2 exclusive; a NaN box covers nothing.
        frame_size: (H, W) of the frame the boxes refer to (any positive scale: (1, 1) for
            normalised boxes).
        grid: (h, w) attention cells.

    Returns:
        (..., h, w) float64 coverage.
    """
    boxes = np.asarray(boxes, dtype=np.float64)
    if boxes.shape[-1:] != (4,):
        raise ValueError(f"boxes must end in 4 coordinates (x1, y1, x2, y2), got shape {boxes.shape}")
    height, width = (float(v) for v in frame_size)
    h, w = (int(v) for v in grid)
    if height <= 0 or width <= 0 or h < 1 or w < 1:
        raise ValueError(f"frame_size and grid must be positive, got {frame_size} and {grid}")
    ys = np.arange(h + 1) * (height / h)
    xs = np.arange(w + 1) * (width / w)

    def overlap(lo: np.ndarray, hi: np.ndarray, edges: np.ndarray, cell: float) -> np.ndarray:
        inside = np.minimum(edges[1:], hi[..., None]) - np.maximum(edges[:-1], lo[..., None])
        return np.nan_to_num(np.clip(inside, 0.0, None) / cell, nan=0.0)

    oy = overlap(boxes[..., 1], boxes[..., 3], ys, height / h)  # (..., h)
    ox = overlap(boxes[..., 0], boxes[..., 2], xs, width / w)  # (..., w)
    return oy[..., :, None] * ox[..., None, :]


def oracle_attention(
    num_steps: int,
    tube_frames: np.ndarray,
    tube_boxes: np.ndarray,
    frame_size: tuple[int, int],
    grid: tuple[int, int],
) -> np.ndarray:
    """Ground-truth boxes rendered as attention maps at the feature-map resolution.

    Step t's map is the box's :func:`box_cell_coverage` of frame t, normalised to sum to 1
    (attention is a distribution over positions). A step without a box (before ``sf``, from
    ``ef`` on — ef exclusive — or a degenerate box) gets an all-zero map: no attention, no box.

    Args:
        num_steps: T, steps = video frames 0..T-1.
        tube_frames: (N,) frame indices of the ground-truth tube (``arange(sf, ef)``).
        tube_boxes: (N, 4) its boxes, x2/y2 exclusive, frame pixels.
        frame_size: (H, W) of the frames the boxes refer to.
        grid: (h, w) of the attention maps.

    Returns:
        (T, h, w) float64 maps.
    """
    boxes = boxes_at_frames(np.arange(num_steps), tube_frames, tube_boxes)
    coverage = box_cell_coverage(boxes, frame_size, grid)
    total = coverage.sum(axis=(1, 2), keepdims=True)
    return np.divide(coverage, total, out=np.zeros_like(coverage), where=total > 0)


def uniform_attention(num_steps: int, grid: tuple[int, int]) -> np.ndarray:
    """(T, h, w) maps of 1/(h·w): attention that carries no information."""
    h, w = (int(v) for v in grid)
    return np.full((num_steps, h, w), 1.0 / (h * w))


def centre_prior_attention(num_steps: int, grid: tuple[int, int], sigma: float) -> np.ndarray:
    """(T, h, w) maps of a Gaussian centre prior, the same at every step.

    Cell (i, j) has its centre at ``u = (j + ½)/w``, ``v = (i + ½)/h`` in frame-relative
    coordinates; its weight is ``exp(−((u − ½)² + (v − ½)²) / (2σ²))``, normalised to sum 1.
    ``sigma`` is a fraction of the frame's width (along x) and height (along y), so the prior
    has the frame's proportions.
    """
    if not sigma > 0:
        raise ValueError(f"sigma must be > 0, got {sigma}")
    h, w = (int(v) for v in grid)
    v = (np.arange(h) + 0.5) / h - 0.5
    u = (np.arange(w) + 0.5) / w - 0.5
    weights = np.exp(-(v[:, None] ** 2 + u[None, :] ** 2) / (2 * sigma**2))
    return np.broadcast_to(weights / weights.sum(), (num_steps, h, w)).copy()


def motion_energy_attention(motion_features: np.ndarray) -> np.ndarray:
    """Attention that follows the motion features: each step's energy map, normalised.

    ``E_{t,i,j} = Σ_c M_{t,c,i,j}²`` and ``A_t = E_t / Σ_{i,j} E_{t,i,j}``; a step without any
    energy (all-zero features) gets uniform attention (no information).

    Args:
        motion_features: (T, C, h, w) flow-stream maps M (pool5 of the flow frame CNN).

    Returns:
        (T, h, w) float64 maps, each summing to 1.
    """
    m = np.asarray(motion_features, dtype=np.float64)
    if m.ndim != 4:
        raise ValueError(f"motion features must be (T, C, h, w) maps, got shape {m.shape}")
    energy = np.square(m).sum(axis=1)
    total = energy.sum(axis=(1, 2), keepdims=True)
    uniform = np.full_like(energy, 1.0 / (energy.shape[1] * energy.shape[2]))
    return np.where(total > 0, energy / np.where(total > 0, total, 1.0), uniform)


def reference_attention(
    name: str,
    num_steps: int,
    grid: tuple[int, int],
    config: LocalizationConfig,
    ground_truth: Sequence[Any] = (),
    frame_size: tuple[int, int] | None = None,
    motion_features: np.ndarray | None = None,
) -> np.ndarray:
    """The (T, h, w) maps of baseline ``name`` (one of :data:`BASELINES`) for one video.

    The oracle renders every ground-truth tube of the video (each tube's :func:`oracle_attention`,
    summed and normalised per step: one actor's map is its own oracle map) and needs
    ``ground_truth`` and ``frame_size``; the motion baseline needs
    the video's (T, C, h, w) ``motion_features`` at the attention grid.
    """
    if name == "motion":
        if motion_features is None:
            raise ValueError("the motion baseline needs the video's flow-stream maps (motion_features)")
        maps = motion_energy_attention(motion_features)
        if maps.shape != (num_steps, *grid):
            raise ValueError(f"the flow maps give {maps.shape[1:]} maps over {maps.shape[0]} steps; the attention is {tuple(grid)} over {num_steps}")
        return maps
    if name == "uniform":
        return uniform_attention(num_steps, grid)
    if name == "centre":
        return centre_prior_attention(num_steps, grid, config.centre_prior_sigma)
    if name == "oracle":
        if not ground_truth or frame_size is None:
            raise ValueError("the oracle attention needs the video's ground-truth tubes and frame size")
        maps = np.asarray(sum(oracle_attention(num_steps, np.asarray(t.frames), np.asarray(t.boxes), frame_size, grid) for t in ground_truth))
        total = maps.sum(axis=(1, 2), keepdims=True)
        return np.divide(maps, total, out=np.zeros_like(maps), where=total > 0)
    raise ValueError(f"unknown baseline {name!r}; expected one of {BASELINES}")


# --------------------------------------------------------------------------------------------
# Scoring


def calibrate_localization(
    predict: AttentionPredictor,
    learned_attention: Mapping[str, np.ndarray],
    learned_scores: Mapping[str, np.ndarray],
    labels: Mapping[str, int],
    ground_truth: Mapping[str, Sequence[Any]],
    frame_sizes: Mapping[str, tuple[int, int]],
    config: LocalizationConfig,
    out_dir: Path | None = None,
    motion_features: Callable[[str], np.ndarray | None] | None = None,
) -> dict[str, float]:
    """The calibration rows' metrics (module docstring), all given the class.

    Args:
        predict: runs the model with injected maps, see :data:`AttentionPredictor` (e.g.
            :func:`attention_predictor`).
        learned_attention: video → the model's own (T, h, w) maps (the videos to score: those
            with ground truth).
        learned_scores: video → its (T, K) per-step (or (K,)) class probabilities under them.
        labels: video → its label in the model's class list.
        ground_truth: video → its annotation tubes.
        frame_sizes: video → (H, W) of its frames.
        config: the box pipeline's settings.
        out_dir: when given, ``calibration.json`` (the metrics) is written there.
        motion_features: video → its (T, C, h, w) flow-stream maps, or None when it has none;
            without it (or for no video) the motion row is left out.

    Returns:
        ``loc/<row>/<metric>`` for every row of :data:`CALIBRATION_ROWS` (motion: when it could be made).
    """
    from videolstm.evaluation.scoring import localization_metrics

    videos = [v for v in learned_attention if ground_truth.get(v)]
    if not videos:
        return {}
    attention: dict[str, dict[str, np.ndarray]] = {"learned": {v: learned_attention[v] for v in videos}}
    scores: dict[str, dict[str, np.ndarray]] = {"learned": {v: learned_scores[v] for v in videos}}
    for name in BASELINES:
        attention[name], scores[name] = {}, {}
    for video in videos:
        steps, h, w = np.asarray(learned_attention[video]).shape
        flow_maps = motion_features(video) if motion_features is not None else None
        names = [n for n in BASELINES if n != "motion" or flow_maps is not None]
        maps = {name: reference_attention(name, steps, (h, w), config, ground_truth[video], frame_sizes[video], flow_maps) for name in names}
        probabilities = predict(video, maps)
        for name in names:
            attention[name][video] = maps[name]
            scores[name][video] = np.asarray(probabilities[name])
    if attention["motion"] and len(attention["motion"]) != len(videos):
        raise ValueError(f"flow maps for {len(attention['motion'])} of {len(videos)} videos: the motion row needs all or none")
    attention[WHOLE_VIDEO_ORACLE], scores[WHOLE_VIDEO_ORACLE] = attention["oracle"], scores["oracle"]
    metrics: dict[str, float] = {}
    for row in CALIBRATION_ROWS:
        if not attention[row]:
            continue
        row_config = config.model_copy(update={"temporal_extent": "video"}) if row == WHOLE_VIDEO_ORACLE else config
        # the oracle rows rank their tubes by a score that does not depend on the model (they measure the boxes):
        # the true class at every step, so every oracle tube scores 1 and ties keep the videos' order
        ranking = scores[row] if row not in ("oracle", WHOLE_VIDEO_ORACLE) else model_free_scores(scores[row], labels)
        row_metrics, _, _ = localization_metrics(attention[row], ranking, labels, ground_truth, frame_sizes, row_config, prefix=f"loc/{row}/", given_class=True)
        metrics.update(row_metrics)
        metrics[f"loc/{row}/video_accuracy"] = video_accuracy(scores[row], labels)
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "calibration.json").write_text(json.dumps(metrics, indent=2))
    return metrics


def model_free_scores(scores: Mapping[str, np.ndarray], labels: Mapping[str, int]) -> dict[str, np.ndarray]:
    """Per video, one-hot (T, K) (or (K,)) probabilities of its label, shaped as its ``scores``: a
    ranking of the oracle's tubes (all score 1, ties in the videos' order) that is the same for every model."""
    out = {}
    for video, p in scores.items():
        shape = np.shape(p)
        out[video] = np.broadcast_to(np.eye(shape[-1])[labels[video]], shape).copy()
    return out


def video_accuracy(scores: Mapping[str, np.ndarray], labels: Mapping[str, int]) -> float:
    """Share of videos whose argmax of the probabilities summed over steps ((T, K) or (K,)) is their label."""
    if not scores:
        return math.nan
    right = [int(np.argmax(np.asarray(p, dtype=np.float64).reshape(-1, np.shape(p)[-1]).sum(axis=0)) == labels[v]) for v, p in scores.items()]
    return float(np.mean(right))


def calibrate_predictions(
    model: Any,
    rows: Sequence[Mapping[str, Any]],
    x_column: str,
    predictions: Any,
    ground_truth: Mapping[str, Sequence[Any]],
    frame_sizes: Mapping[str, tuple[int, int]],
    config: LocalizationConfig,
    out_dir: Path | None = None,
    storage: Any = None,
) -> dict[str, float]:
    """:func:`calibrate_localization` of a model's test predictions (the evaluation's one call).

    ``predictions``: :class:`videolstm.inference.Predictions` with the whole-video attention;
    ``rows``: the feature rows it was computed from (``video_id``, ``shard``); ``x_column``: the
    model's input column.
    """
    from videolstm.evaluation.scoring import video_labels, video_scores

    videos = [v for v in predictions.video_ids if v in predictions.attention and ground_truth.get(v)]
    read = shard_columns(rows, [x_column, MOTION_FEATURES_COLUMN], storage)  # each shard opened once
    return calibrate_localization(
        attention_predictor(model, rows, x_column, storage, read),
        {v: predictions.attention[v] for v in videos},
        video_scores(predictions, videos),
        video_labels(predictions, videos),
        ground_truth,
        frame_sizes,
        config,
        out_dir,
        motion_features=shard_motion_features(rows, storage, read),
    )


def shard_columns(rows: Sequence[Mapping[str, Any]], columns: Sequence[str], storage: Any = None) -> Callable[[str], dict[str, np.ndarray]]:
    """video → ``{column: (T, ...) array}`` of the ``columns`` its feature shard holds (``rows``:
    ``video_id``, ``shard``), read in one pass. The last video's columns are kept, so the
    calibration's two readers of a video (its motion maps, then the model's input) open its shard once."""
    from videolstm.store import shards

    shard_of = {row["video_id"]: row["shard"] for row in rows}
    wanted = list(dict.fromkeys(columns))
    last: dict[str, Any] = {}

    def from_reader(reader: Any) -> dict[str, np.ndarray]:
        present = [c for c in wanted if c in reader.names]
        return {k: np.asarray(v) for k, v in reader.read(present).items()} if present else {}

    def read(video: str) -> dict[str, np.ndarray]:
        if last.get("video") != video:
            last.update(video=video, columns=shards.read_with(shard_of[video], storage, from_reader))
        return last["columns"]

    return read


def shard_motion_features(
    rows: Sequence[Mapping[str, Any]], storage: Any = None, read: Callable[[str], Mapping[str, np.ndarray]] | None = None
) -> Callable[[str], np.ndarray | None]:
    """video → its flow-stream maps (T, C, h, w) from its feature shard (``rows``: ``video_id``,
    ``shard``), or None when the shard holds no :data:`MOTION_FEATURES_COLUMN`. ``read``: a
    :func:`shard_columns` reader to share (default: one of its own)."""
    read = read or shard_columns(rows, [MOTION_FEATURES_COLUMN], storage)
    return lambda video: read(video).get(MOTION_FEATURES_COLUMN)


def attention_predictor(
    model: Any,
    rows: Sequence[Mapping[str, Any]],
    x_column: str,
    storage: Any = None,
    read: Callable[[str], Mapping[str, np.ndarray]] | None = None,
) -> AttentionPredictor:
    """An :data:`AttentionPredictor` running ``model`` on the feature shards of ``rows``.

    For a video it reads the ``x_column`` features (T, C, h, w) of its shard (``rows``:
    ``video_id``, ``shard``) once and runs ``model(x, attention=maps)`` on all the given maps as
    one batch (no flow: with injected maps the motion variants do not run their motion layer),
    in eval mode without gradients. Returns per-step softmax probabilities (T, K) per map.
    ``read``: a :func:`shard_columns` reader holding ``x_column`` to share (default: its own).
    """
    import torch

    read = read or shard_columns(rows, [x_column], storage)

    def predict(video: str, maps: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        x = read(video)[x_column]
        names = list(maps)
        xs = torch.from_numpy(np.array(x, dtype=np.float32))[None].expand(len(names), *x.shape)
        given = torch.from_numpy(np.stack([np.asarray(maps[n], dtype=np.float32) for n in names]))
        model.eval()
        with torch.no_grad():
            out = model(xs, attention=given)
        if out.attention is None or not torch.equal(out.attention, given):
            raise ValueError(f"{type(model).__name__} did not use the injected attention maps (its attention= hook)")
        probabilities = out.logits.softmax(-1).numpy()
        return {n: probabilities[i] for i, n in enumerate(names)}

    return predict


def is_calibration_metric(key: str) -> bool:
    """Whether a metric name is one of the calibration rows' (``loc/<row>/...``)."""
    parts = key.split("/")
    return len(parts) == 3 and parts[0] == "loc" and parts[1] in CALIBRATION_ROWS


# --------------------------------------------------------------------------------------------
# The report's rows


def mean_sd(values: Sequence[float]) -> str:
    """``"0.412 ± 0.031"`` (sample sd) over the finite values; one value alone; ``"—"`` for none."""
    finite = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if not finite:
        return "—"
    if len(finite) == 1:
        return f"{finite[0]:.3f}"
    return f"{np.mean(finite):.3f} ± {np.std(finite, ddof=1):.3f}"


def calibration_markdown(rows: Sequence[Mapping[str, Any]], threshold: float = 0.2) -> str:
    """The calibration table for the report: one line per (variant, stream), mean ± sd over seeds.

    Args:
        rows: result rows (``variant``, ``stream``, ``seed``, metric names → values; one row per
            seed), as ``tasks.evaluate`` returns them. Rows without calibration metrics are left
            out; a later row of the same (variant, stream, seed) replaces an earlier one.
        threshold: the IoU of the mAP shown.

    Returns:
        A Markdown table: model | stream | n | learned (predicted class) | learned | oracle |
        uniform | centre | motion, or "" when no row has calibration metrics. The ``learned (predicted
        class)`` column is the paper's ``loc/mAP_<θ>``; the other four are given the class.
    """
    key = f"mAP_{threshold:g}"
    latest: dict[Any, Mapping[str, Any]] = {}  # a later row of the same (variant, stream, seed) replaces an earlier one
    for i, row in enumerate(rows):
        if f"loc/oracle/{key}" in row:
            seed = row.get("seed")
            latest[(str(row.get("variant")), str(row.get("stream")), str(seed)) if seed is not None else ("#", i)] = row
    cells: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for row in latest.values():
        cells.setdefault((str(row.get("variant", "?")), str(row.get("stream", "?"))), []).append(row)
    if not cells:
        return ""
    columns = [f"loc/{key}", *(f"loc/{r}/{key}" for r in CALIBRATION_ROWS)]
    header = ["model", "stream", "n", "learned (predicted class)", *(f"{r} (given class)" for r in CALIBRATION_ROWS)]
    lines = [
        f"Localization calibration, video mAP@{threshold:g} (mean ± sd over seeds): the learned attention between "
        "no information (uniform), a position prior (centre) and perfect attention (oracle); motion = attention "
        "that followed the flow features' energy (what the motion input alone points at); oracle_video = the oracle's maps "
        "with the tube over the whole video (no temporal extent); the oracle rows rank their tubes by a model-free score",
        "",
        "| " + " | ".join(header) + " |",
        "|:---|:---|---:|" + "---:|" * len(columns),
    ]
    for (variant, stream), group in sorted(cells.items()):
        values = [mean_sd([r.get(c, math.nan) for r in group]) for c in columns]
        lines.append(f"| {variant} | {stream} | {len(group)} | " + " | ".join(values) + " |")
    return "\n".join(lines) + "\n"
