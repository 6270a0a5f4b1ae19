"""Score one model's predictions: classification metrics, localization, and the files to look at.

Everything is written into ``out_dir`` (a local folder) so the caller can upload it anywhere and
log it to MLflow as one artifact folder:

    confusion_matrix.png / .csv, per_class_accuracy.csv, predictions.csv
    localization_curves.png, localization.json, tubes.json (attention variants with ground truth)
    overlays/<video>.png, <video>.gif and <video>.avi      (attention strips and short videos)

Metric names are the same for every run so the MLflow compare view lines runs up:
``test/accuracy``, ``test/mean_class_accuracy``, ``test/accuracy/<class>``, ``loc/mAP_<θ>``,
``loc/frame_recall_0.5`` (raw and ``_smoothed``), ``loc/videos``.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from videolstm.config import LocalizationConfig
from videolstm.evaluation.localization import (
    FrameRecall,
    GroundTruthTube,
    boxes_at_frames,
    frame_recall_curve,
    localize_video_tubes,
    video_map_at,
)
from videolstm.evaluation.metrics import classification_report, csv_text
from videolstm.evaluation.plots import plot_attention_strip, plot_confusion_matrix, plot_localization_curves, write_attention_video
from videolstm.inference import Predictions
from videolstm.store.manifest import safe_name
from videolstm.store.safepath import under_root


def score_classification(predictions: Predictions, class_names: Sequence[str], out_dir: Path, title: str) -> dict[str, float]:
    """Top-1, mean class accuracy and per-class accuracy; writes the confusion matrix and CSVs."""
    out_dir.mkdir(parents=True, exist_ok=True)
    result = classification_report(predictions.probabilities, predictions.labels, list(class_names))
    plot_confusion_matrix(result.confusion, list(class_names), out_dir / "confusion_matrix.png", title=f"{title}: top-1 {result.accuracy:.1%}")
    result.confusion_to_csv(out_dir / "confusion_matrix.csv")
    result.per_class_to_csv(out_dir / "per_class_accuracy.csv")
    with open(out_dir / "predictions.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["video_id", "label", "predicted", "confidence", *(csv_text(n) for n in class_names)])
        for vid, label, probs in zip(predictions.video_ids, predictions.labels, predictions.probabilities):
            writer.writerow([csv_text(vid), int(label), int(np.argmax(probs)), f"{np.max(probs):.4f}", *[f"{p:.5f}" for p in probs]])
    metrics = result.metrics(prefix="test/")
    metrics.update({f"test/accuracy/{name}": acc for name, acc in result.per_class_accuracy.items()})
    return metrics


def ground_truth_for(annotations: Mapping[str, list[Any]], video_ids: Sequence[str]) -> dict[str, list[Any]]:
    """The annotation tubes of the given videos (videos without tubes are left out)."""
    return {v: annotations[v] for v in video_ids if annotations.get(v)}


def score_localization(
    predictions: Predictions,
    ground_truth: Mapping[str, list[Any]],
    frame_sizes: Mapping[str, tuple[int, int]],
    config: LocalizationConfig,
    out_dir: Path,
    title: str,
) -> tuple[dict[str, float], dict[str, Any], dict[str, FrameRecall]]:
    """Video mAP at the configured IoUs and per-frame recall curves (raw and LOWESS-smoothed).

    Uses the whole-video attention (T, h, w) of every video with ground truth; frame t of the
    attention is frame t of the video. A tube counts as the action of its video's label in
    ``predictions`` (annotation files such as UCF101-24 number their classes differently).
    Returns (metrics, tubes by video, curves).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    videos = [v for v in predictions.video_ids if v in ground_truth and v in predictions.attention]
    if not videos:
        return {}, {}, {}
    labels = video_labels(predictions, videos)
    metrics, tubes, curves = localization_metrics(
        {v: predictions.attention[v] for v in videos},
        video_scores(predictions, videos),
        labels,
        ground_truth,
        frame_sizes,
        config,
    )
    in_model_labels = {v: [GroundTruthTube(labels[v], t.frames, t.boxes) for t in ground_truth[v]] for v in videos}
    write_tubes(out_dir / "tubes.json", [tubes[v].detection(v, smoothed=True) for v in videos], in_model_labels, tubes)
    plot_localization_curves(
        {"attention boxes": curve_points(curves["raw"]), "LOWESS-smoothed": curve_points(curves["smoothed"])},
        out_dir / "localization_curves.png",
        title=f"{title}: per-frame recall vs IoU",
    )
    (out_dir / "localization.json").write_text(
        json.dumps(
            {
                "metrics": metrics,
                "recall_curves": {k: {"iou": c.thresholds.tolist(), "recall": c.recall.tolist()} for k, c in curves.items()},
            },
            indent=2,
        )
    )
    return metrics, tubes, curves


def video_scores(predictions: Predictions, videos: Sequence[str]) -> dict[str, np.ndarray]:
    """Per video, the per-step class probabilities (T, K) when known, else the video's (K,)."""
    pos = {v: i for i, v in enumerate(predictions.video_ids)}
    return {v: predictions.step_probabilities.get(v, predictions.probabilities[pos[v]]) for v in videos}


def video_labels(predictions: Predictions, videos: Sequence[str]) -> dict[str, int]:
    """Per video, its label in the model's class list."""
    pos = {v: i for i, v in enumerate(predictions.video_ids)}
    return {v: int(predictions.labels[pos[v]]) for v in videos}


def localization_metrics(
    attention: Mapping[str, np.ndarray],
    class_scores: Mapping[str, np.ndarray],
    labels: Mapping[str, int],
    ground_truth: Mapping[str, Sequence[Any]],
    frame_sizes: Mapping[str, tuple[int, int]],
    config: LocalizationConfig,
    prefix: str = "loc/",
    given_class: bool = False,
) -> tuple[dict[str, float], dict[str, Any], dict[str, FrameRecall]]:
    """The localization metrics of attention maps (the pure part of :func:`score_localization`).

    Args:
        attention: video → (T, h, w) maps; step t is frame t of the video.
        class_scores: video → (T, K) per-step or (K,) video-level class probabilities.
        labels: video → its label in the model's class list (the class every tube of the video
            is matched as).
        ground_truth: video → its annotation tubes (``label``, ``frames``, ``boxes``).
        frame_sizes: video → (H, W) of the frames the boxes refer to.
        config: the box pipeline's settings and the mAP thresholds.
        prefix: of the metric names (``loc/`` → ``loc/mAP_0.2``).
        given_class: each tube takes its video's label (and that class's score) instead of the
            predicted class: localization alone, independent of the classification.

    Returns:
        (``{prefix}mAP_<θ>``, ``{prefix}videos``, ``{prefix}frame_recall_0.5`` and
        ``..._smoothed``), tubes by video, and the summed recall curves ``raw`` / ``smoothed``
        (per ground-truth frame of the longest tube of each video; frames outside a tube are misses).
    """
    videos = list(attention)
    detections: list[Any] = []
    tubes: dict[str, Any] = {}
    raw_curve, smooth_curve = None, None
    for video in videos:
        maps = attention[video]
        frames = np.arange(maps.shape[0])
        video_tubes = localize_video_tubes(maps, frame_sizes[video], class_scores[video], config, frames=frames, label=labels[video] if given_class else None)
        tube = tubes[video] = video_tubes[0]  # the recall curves and overlays follow the top tube
        detections.extend(t.detection(video, smoothed=True) for t in video_tubes)
        gt_tube = max(ground_truth[video], key=lambda t: len(t.frames))
        gt_boxes = boxes_at_frames(frames, np.asarray(gt_tube.frames), np.asarray(gt_tube.boxes))
        raw = frame_recall_curve(boxes_at_frames(frames, tube.frames, tube.raw_boxes), gt_boxes)
        smooth = frame_recall_curve(boxes_at_frames(frames, tube.frames, tube.boxes), gt_boxes)
        raw_curve = raw if raw_curve is None else raw_curve + raw
        smooth_curve = smooth if smooth_curve is None else smooth_curve + smooth
    # A tube's own label counts the annotation's classes (UCF101-24: 0..23), the detections' the
    # model's (UCF101: 0..100). Every tube of a video is that video's action, so match in the
    # model's label space: the video's label in ``labels``.
    in_model_labels: dict[Hashable, Sequence[Any]] = {v: [GroundTruthTube(int(labels[v]), t.frames, t.boxes) for t in ground_truth[v]] for v in videos}
    map_at = video_map_at(detections, in_model_labels, tuple(config.iou_thresholds))
    metrics = {f"{prefix}mAP_{t:g}": float(m) for t, m in map_at.items()}
    metrics[f"{prefix}videos"] = float(len(videos))
    assert raw_curve is not None and smooth_curve is not None, "localization_metrics needs at least one video"
    curves = {"raw": raw_curve, "smoothed": smooth_curve}
    for name, curve in curves.items():
        at = int(np.argmin(np.abs(curve.thresholds - 0.5)))
        metrics[f"{prefix}frame_recall_0.5{'' if name == 'raw' else '_smoothed'}"] = float(curve.recall[at])
    return metrics, tubes, curves


def write_tubes(path: Path, detections: Sequence[Any], ground_truth: Mapping[str, list[Any]], tubes: Mapping[str, Any]) -> None:
    """The tubes mAP was computed on (smoothed boxes), their raw boxes and the ground truth, as JSON.

    ``{"detections": [{"video", "label", "score", "frames", "boxes", "raw_boxes"}],
    "ground_truth": {video: [{"label", "frames", "boxes"}]}}``; boxes (x1, y1, x2, y2), NaN → null.
    """

    def boxes(array: np.ndarray) -> list[list[float | None]]:
        return [[None if not np.isfinite(v) else float(v) for v in row] for row in np.asarray(array, dtype=np.float64)]

    data = {
        "detections": [
            {
                "video": d.video_id,
                "label": int(d.label),
                "score": float(d.score),
                "frames": [int(f) for f in d.frames],
                "boxes": boxes(d.boxes),
                "raw_boxes": boxes(tubes[d.video_id].raw_boxes),
            }
            for d in detections
        ],
        "ground_truth": {
            v: [{"label": int(t.label), "frames": [int(f) for f in t.frames], "boxes": boxes(t.boxes)} for t in gts] for v, gts in ground_truth.items()
        },
    }
    path.write_text(json.dumps(data))


def read_tubes(path: Path) -> tuple[list[Any], dict[str, list[Any]], list[Any]]:
    """(smoothed detections, ground truth, raw detections) from :func:`write_tubes`' JSON."""
    from videolstm.evaluation.localization import Detection

    def boxes(rows: list) -> np.ndarray:
        return np.asarray([[np.nan if v is None else v for v in row] for row in rows], dtype=np.float64).reshape(-1, 4)

    data = json.loads(Path(path).read_text())
    smoothed = [Detection(d["video"], d["label"], d["score"], np.asarray(d["frames"]), boxes(d["boxes"])) for d in data["detections"]]
    raw = [Detection(d["video"], d["label"], d["score"], np.asarray(d["frames"]), boxes(d["raw_boxes"])) for d in data["detections"]]
    gt = {v: [GroundTruthTube(t["label"], np.asarray(t["frames"]), boxes(t["boxes"])) for t in tubes] for v, tubes in data["ground_truth"].items()}
    return smoothed, gt, raw


def curve_points(curve: FrameRecall) -> tuple[np.ndarray, np.ndarray]:
    return curve.thresholds, curve.recall


#: Overlay video formats: GIF plays in a browser (MLflow shows it inline); AVI for video players.
OVERLAY_VIDEO_SUFFIXES = (".gif", ".avi")


def render_overlays(
    video_frames: Mapping[str, np.ndarray],
    predictions: Predictions,
    tubes: Mapping[str, Any],
    ground_truth: Mapping[str, list[Any]],
    class_names: Sequence[str],
    out_dir: Path,
    fps: float = 8.0,
) -> list[Path]:
    """Attention strip (PNG) and short video with GT (green) and predicted (red) boxes, as an
    animated GIF (plays in browsers and inline in MLflow's artifact viewer) and as AVI (MJPG)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    pos = {v: i for i, v in enumerate(predictions.video_ids)}
    written = []
    for video, frames in video_frames.items():
        attention = predictions.attention.get(video)
        if attention is None:
            continue
        t = min(len(frames), attention.shape[0])
        frames, attention = frames[:t], attention[:t]
        gt = ground_truth.get(video)
        gt_boxes = None
        if gt:
            tube = max(gt, key=lambda g: len(g.frames))
            gt_boxes = boxes_at_frames(np.arange(t), np.asarray(tube.frames), np.asarray(tube.boxes))
        pred_boxes = None
        if video in tubes:  # a tube may span part of the video (steps without a box are left out)
            pred_boxes = boxes_at_frames(np.arange(t), tubes[video].frames, tubes[video].boxes)
        probs = predictions.probabilities[pos[video]]
        label = class_names[int(predictions.labels[pos[video]])]
        guess = class_names[int(np.argmax(probs))]
        stem = safe_name(video)  # a video id from a split file: never a path as it is
        title = f"{video}: true {label}, predicted {guess} ({np.max(probs):.0%})"
        png = Path(under_root(str(out_dir), [f"{stem}.png"], f"attention strip of video {video!r}"))
        written.append(plot_attention_strip(frames, attention, gt_boxes, pred_boxes, png, title=title))
        for suffix in OVERLAY_VIDEO_SUFFIXES:
            video_path = Path(under_root(str(out_dir), [f"{stem}{suffix}"], f"attention video of video {video!r}"))
            written.append(write_attention_video(frames, attention, gt_boxes, pred_boxes, video_path, fps=fps))
    return written


def overlay_videos(video_ids: Sequence[str], labels: Sequence[int], per_class: int) -> list[str]:
    """The first ``per_class`` video ids of each label (in id order)."""
    chosen: dict[int, list[str]] = {}
    for vid, label in sorted(zip(video_ids, labels)):
        bucket = chosen.setdefault(int(label), [])
        if len(bucket) < per_class:
            bucket.append(vid)
    return [v for label in sorted(chosen) for v in chosen[label]]
