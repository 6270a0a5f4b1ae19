"""videolstm.evaluation.scoring: classification files and metrics, localization from attention, overlays."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from videolstm.config import LocalizationConfig
from videolstm.data.video import decode_video
from videolstm.evaluation.localization import GroundTruthTube, box_iou
from videolstm.evaluation.metrics import classification_report
from videolstm.evaluation.scoring import (
    ground_truth_for,
    overlay_videos,
    render_overlays,
    score_classification,
    score_localization,
)
from videolstm.inference import Predictions

CLASSES = ["MoveRight", "MoveLeft", "ZigZag"]


def _classification_predictions() -> Predictions:
    rng = np.random.default_rng(0)
    probabilities = rng.dirichlet(np.ones(3), size=7)
    labels = np.array([0, 0, 0, 1, 1, 0, 1])  # class 2 has no test video
    return Predictions([f"v{i}" for i in range(7)], labels, probabilities)


def _read_csv(path) -> list[list[str]]:
    with open(path, newline="") as fh:
        return list(csv.reader(fh))


def test_classification_metrics_match_the_evaluation_report_and_files_are_written(tmp_path):
    predictions = _classification_predictions()
    metrics = score_classification(predictions, CLASSES, tmp_path / "out", "lstm-rgb")
    report = classification_report(predictions.probabilities, predictions.labels, CLASSES)
    assert metrics == {
        "test/accuracy": report.accuracy,
        "test/mean_class_accuracy": report.mean_class_accuracy,
        "test/accuracy/MoveRight": report.per_class_accuracy["MoveRight"],
        "test/accuracy/MoveLeft": report.per_class_accuracy["MoveLeft"],
    }
    out = tmp_path / "out"
    for name in ("confusion_matrix.png", "confusion_matrix.csv", "per_class_accuracy.csv", "predictions.csv"):
        assert (out / name).stat().st_size > 0
    assert (out / "confusion_matrix.png").read_bytes()[:4] == b"\x89PNG"
    confusion = _read_csv(out / "confusion_matrix.csv")
    assert confusion[0] == ["true\\predicted", *CLASSES]
    np.testing.assert_array_equal(np.array([r[1:] for r in confusion[1:]], dtype=int), report.confusion)


def test_predictions_csv_has_one_row_per_video_with_the_argmax(tmp_path):
    predictions = _classification_predictions()
    score_classification(predictions, CLASSES, tmp_path, "x")
    rows = _read_csv(tmp_path / "predictions.csv")
    assert rows[0] == ["video_id", "label", "predicted", "confidence", *CLASSES]
    assert len(rows) == 1 + 7
    for row, vid, label, probs in zip(rows[1:], predictions.video_ids, predictions.labels, predictions.probabilities):
        assert row[0] == vid and int(row[1]) == label and int(row[2]) == int(np.argmax(probs))
        assert float(row[3]) == pytest.approx(probs.max(), abs=1e-4)
        np.testing.assert_allclose([float(p) for p in row[4:]], probs, atol=1e-5)


# ----------------------------------------------------------------------------------------
# localization: attention placed by hand on a known ground-truth box

FRAME = (56, 56)  # 7 x 7 attention cells of 8 x 8 pixels
T = 10


def _attention_on_cells(rows: slice, cols: slice) -> np.ndarray:
    amap = np.zeros((T, 7, 7), np.float32)
    amap[:, rows, cols] = 1.0
    return amap / amap.sum(axis=(1, 2), keepdims=True)


def _ground_truth() -> dict[str, list[GroundTruthTube]]:
    # video a (class 0): cells rows 1-3, cols 2-4 → pixels x 16..40, y 8..32 (x2, y2 exclusive)
    # video b (class 1): cells rows 3-5, cols 1-3 → pixels x 8..32, y 24..48
    frames = np.arange(T)
    return {
        "a": [GroundTruthTube(0, frames, np.tile([16.0, 8.0, 40.0, 32.0], (T, 1)))],
        "b": [GroundTruthTube(1, frames, np.tile([8.0, 24.0, 32.0, 48.0], (T, 1)))],
    }


def _localization_predictions(shift: int) -> Predictions:
    attention = {
        "a": _attention_on_cells(slice(1 + shift, 4 + shift), slice(2 + shift, 5 + shift)),
        "b": _attention_on_cells(slice(3 - shift, 6 - shift), slice(1 + shift, 4 + shift)),
    }
    steps = {"a": np.tile([0.8, 0.1, 0.1], (T, 1)), "b": np.tile([0.2, 0.7, 0.1], (T, 1))}  # right classes
    probabilities = np.array([[0.8, 0.1, 0.1], [0.2, 0.7, 0.1]])
    return Predictions(["a", "b"], np.array([0, 1]), probabilities, attention, steps)


def test_attention_exactly_on_the_ground_truth_localizes_with_map_one(tmp_path):
    config = LocalizationConfig()
    metrics, tubes, curves = score_localization(
        _localization_predictions(shift=0), _ground_truth(), {"a": FRAME, "b": FRAME}, config, tmp_path, "videolstm-flow"
    )
    assert metrics["loc/mAP_0.5"] == 1.0 and metrics["loc/mAP_0.1"] == 1.0
    assert set(metrics) == {
        "loc/mAP_0.1",
        "loc/mAP_0.2",
        "loc/mAP_0.3",
        "loc/mAP_0.4",
        "loc/mAP_0.5",
        "loc/videos",
        "loc/frame_recall_0.5",
        "loc/frame_recall_0.5_smoothed",
    }
    assert metrics["loc/videos"] == 2.0
    assert metrics["loc/frame_recall_0.5"] == 1.0 and metrics["loc/frame_recall_0.5_smoothed"] == 1.0
    assert tubes["a"].label == 0 and tubes["b"].label == 1
    assert tubes["a"].score == pytest.approx(0.8)
    ious = box_iou(tubes["a"].boxes, _ground_truth()["a"][0].boxes)
    assert ious.min() > 0.7
    assert curves["raw"].num_frames == 2 * T
    saved = json.loads((tmp_path / "localization.json").read_text())
    assert saved["metrics"] == metrics
    assert set(saved["recall_curves"]) == {"raw", "smoothed"}
    assert (tmp_path / "localization_curves.png").read_bytes()[:4] == b"\x89PNG"


def test_shifted_attention_scores_lower(tmp_path):
    config = LocalizationConfig()
    sizes = {"a": FRAME, "b": FRAME}
    exact, _, _ = score_localization(_localization_predictions(0), _ground_truth(), sizes, config, tmp_path / "0", "x")
    shifted, _, _ = score_localization(_localization_predictions(1), _ground_truth(), sizes, config, tmp_path / "1", "x")
    far, _, _ = score_localization(_localization_predictions(2), _ground_truth(), sizes, config, tmp_path / "2", "x")
    assert shifted["loc/mAP_0.5"] < exact["loc/mAP_0.5"]
    assert shifted["loc/frame_recall_0.5"] < exact["loc/frame_recall_0.5"]
    assert shifted["loc/mAP_0.1"] == 1.0  # one cell off still overlaps: found at a loose threshold
    assert far["loc/mAP_0.1"] < shifted["loc/mAP_0.1"]


def test_a_wrongly_classified_video_is_not_a_true_positive(tmp_path):
    predictions = _localization_predictions(0)
    wrong = {**predictions.step_probabilities, "b": np.tile([0.1, 0.2, 0.7], (T, 1))}  # b predicted as class 2
    predictions = Predictions(predictions.video_ids, predictions.labels, predictions.probabilities, predictions.attention, wrong)
    metrics, tubes, _ = score_localization(predictions, _ground_truth(), {"a": FRAME, "b": FRAME}, LocalizationConfig(), tmp_path, "x")
    assert tubes["b"].label == 2
    assert metrics["loc/mAP_0.5"] == pytest.approx(0.5)  # class 0 AP 1, class 1 AP 0


@pytest.mark.parametrize(("confidence_good", "confidence_bad", "expected"), [(0.9, 0.6, 0.5), (0.6, 0.9, 0.25)])
def test_tubes_are_ranked_by_their_mean_class_score(tmp_path, confidence_good, confidence_bad, expected):
    """Two class-0 videos: one well localized, one not. AP = 1·½ when the good tube ranks first,
    ½·½ when the bad one is more confident (precision ½ at the good tube's recall)."""
    gt = _ground_truth()["a"]
    good = _attention_on_cells(slice(1, 4), slice(2, 5))
    bad = _attention_on_cells(slice(4, 7), slice(4, 7))
    steps = {"good": np.tile([confidence_good, 1 - confidence_good, 0], (T, 1)), "bad": np.tile([confidence_bad, 1 - confidence_bad, 0], (T, 1))}
    predictions = Predictions(["bad", "good"], np.array([0, 0]), np.array([[1.0, 0, 0], [1.0, 0, 0]]), {"good": good, "bad": bad}, steps)
    metrics, tubes, _ = score_localization(predictions, {"good": gt, "bad": gt}, {"good": FRAME, "bad": FRAME}, LocalizationConfig(), tmp_path, "x")
    assert tubes["good"].score == pytest.approx(confidence_good)
    assert metrics["loc/mAP_0.5"] == pytest.approx(expected)


def test_tubes_numbered_in_the_annotation_class_list_match_the_model_classes(tmp_path):
    """UCF101-24 numbers its 24 classes 0..23; the model numbers UCF101's 101 classes."""
    renumbered = {v: [GroundTruthTube(label, t.frames, t.boxes) for t in tubes] for (v, tubes), label in zip(_ground_truth().items(), (17, 4))}
    metrics, _, _ = score_localization(_localization_predictions(0), renumbered, {"a": FRAME, "b": FRAME}, LocalizationConfig(), tmp_path, "x")
    assert metrics["loc/mAP_0.5"] == 1.0


def test_videos_without_ground_truth_or_attention_are_left_out(tmp_path):
    predictions = _localization_predictions(0)
    only_a = {"a": _ground_truth()["a"]}
    metrics, tubes, _ = score_localization(predictions, only_a, {"a": FRAME}, LocalizationConfig(), tmp_path, "x")
    assert metrics["loc/videos"] == 1.0 and set(tubes) == {"a"}
    no_attention = Predictions(["a"], np.array([0]), np.array([[1.0, 0, 0]]))
    assert score_localization(no_attention, _ground_truth(), {"a": FRAME}, LocalizationConfig(), tmp_path / "n", "x") == ({}, {}, {})


def test_ground_truth_for_keeps_videos_with_tubes_only():
    annotations = {"a": [1], "b": [], "c": [2]}
    assert ground_truth_for(annotations, ["a", "b", "d"]) == {"a": [1]}


def test_overlay_videos_picks_the_first_videos_of_each_class_in_id_order():
    ids = ["c/3", "a/2", "a/1", "b/1", "c/1"]
    labels = [1, 0, 0, 2, 1]
    assert overlay_videos(ids, labels, per_class=1) == ["a/1", "c/1", "b/1"]
    assert overlay_videos(ids, labels, per_class=2) == ["a/1", "a/2", "c/1", "c/3", "b/1"]
    assert overlay_videos(ids, labels, per_class=0) == []


def test_render_overlays_writes_a_strip_and_a_playable_video_per_attended_video(tmp_path):
    predictions = _localization_predictions(0)
    _, tubes, _ = score_localization(predictions, _ground_truth(), {"a": FRAME, "b": FRAME}, LocalizationConfig(), tmp_path, "x")
    frames = np.random.default_rng(0).integers(0, 256, (T, *FRAME, 3), dtype=np.uint8)
    video_frames = {"Cls/a": frames, "missing-attention": frames}
    renamed = Predictions(["Cls/a"], predictions.labels[:1], predictions.probabilities[:1], {"Cls/a": predictions.attention["a"]})
    written = render_overlays(video_frames, renamed, {"Cls/a": tubes["a"]}, {"Cls/a": _ground_truth()["a"]}, CLASSES, tmp_path / "overlays")
    assert [p.name for p in written] == ["Cls__a.png", "Cls__a.gif", "Cls__a.avi"]
    assert written[0].read_bytes()[:4] == b"\x89PNG"
    assert written[1].read_bytes()[:6] == b"GIF89a"  # plays in a browser (MLflow's artifact viewer)
    assert decode_video(str(written[2])).shape[0] == T


def test_ground_truth_frames_outside_a_shorter_tube_count_as_misses_in_the_frame_recall(tmp_path):
    predictions = _localization_predictions(shift=0)
    predictions.attention["a"][:3] = 0.0  # no attention, so no box, on the first 3 of 10 frames
    metrics, tubes, curves = score_localization(predictions, _ground_truth(), {"a": FRAME, "b": FRAME}, LocalizationConfig(), tmp_path, "x")
    assert tubes["a"].frames.tolist() == list(range(3, T))
    assert curves["raw"].num_frames == 2 * T
    assert metrics["loc/frame_recall_0.5"] == pytest.approx((2 * T - 3) / (2 * T))
    assert metrics["loc/mAP_0.5"] == 1.0  # temporal IoU 0.7 × spatial IoU > 0.7


def test_map_is_computed_on_the_smoothed_tubes_not_the_raw_boxes(tmp_path):
    """Attention on the box except every fourth frame: the raw boxes are exact on 16 of 20 frames,
    the LOWESS-smoothed ones are pulled towards the outliers. The metrics are the smoothed tubes'."""
    from videolstm.evaluation.localization import video_map_at
    from videolstm.evaluation.scoring import read_tubes

    steps = 20
    amap = np.zeros((steps, 7, 7), np.float32)
    for t in range(steps):
        if t % 4 == 3:
            amap[t, 5:7, 5:7] = 1.0  # an outlier frame: the far corner
        else:
            amap[t, 1:4, 2:5] = 1.0  # on the ground-truth box
    amap /= amap.sum(axis=(1, 2), keepdims=True)
    frames = np.arange(steps)
    gt = {"a": [GroundTruthTube(0, frames, np.tile([16.0, 8.0, 40.0, 32.0], (steps, 1)))]}
    predictions = Predictions(["a"], np.array([0]), np.array([[0.9, 0.1]]), {"a": amap}, {"a": np.tile([0.9, 0.1], (steps, 1))})
    thresholds = (0.1, 0.2, 0.3, 0.4, 0.5)
    metrics, tubes, _ = score_localization(predictions, gt, {"a": FRAME}, LocalizationConfig(), tmp_path, "x")
    raw = video_map_at([tubes["a"].detection("a", smoothed=False)], gt, thresholds)
    smoothed = video_map_at([tubes["a"].detection("a", smoothed=True)], gt, thresholds)
    assert raw != smoothed  # the two differ on this video ...
    assert {t: metrics[f"loc/mAP_{t:g}"] for t in thresholds} == smoothed  # ... and the metrics are the smoothed ones
    # the saved tubes reproduce the metrics, and hold the raw boxes too
    saved, saved_gt, saved_raw = read_tubes(tmp_path / "tubes.json")
    assert video_map_at(saved, saved_gt, thresholds) == smoothed
    assert video_map_at(saved_raw, saved_gt, thresholds) == raw
