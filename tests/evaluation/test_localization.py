"""Localization from attention maps and its metrics, against hand computations and an
independent full-resolution reference."""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import pytest
from scipy import ndimage

from videolstm.config import LocalizationConfig
from videolstm.evaluation.localization import (
    Detection,
    FrameRecall,
    GroundTruthTube,
    Tube,
    attention_to_boxes,
    average_precision,
    box_iou,
    boxes_at_frames,
    frame_recall_curve,
    localize_video,
    map_key,
    smooth_boxes,
    tube_iou,
    video_map,
    video_map_at,
)

# ---------------------------------------------------------------------------------------------
# IoU
# ---------------------------------------------------------------------------------------------


def test_box_iou_uses_exclusive_corners():
    # [0,0,10,10] vs [5,5,15,15]: intersection 5*5 = 25, union 100 + 100 - 25 = 175 -> 1/7.
    # (The +1 inclusive convention would give 36 / 206 = 0.1748.)
    assert box_iou([0, 0, 10, 10], [5, 5, 15, 15]) == pytest.approx(1 / 7)
    # Boxes that only touch share no pixel.
    assert box_iou([0, 0, 10, 10], [10, 0, 20, 10]) == 0.0
    # Contained: 5*10 / 10*10 = 0.5.
    assert box_iou([0, 0, 10, 10], [0, 0, 10, 5]) == pytest.approx(0.5)


def test_box_iou_broadcasts_pairwise_and_maps_nan_to_zero():
    a = np.array([[0, 0, 10, 10], [np.nan] * 4])
    b = np.array([[0, 0, 10, 10], [5, 5, 15, 15], [20, 20, 30, 30]])
    iou = box_iou(a[:, None], b[None])
    assert iou.shape == (2, 3)
    np.testing.assert_allclose(iou, [[1.0, 1 / 7, 0.0], [0.0, 0.0, 0.0]])


def test_tube_iou_is_temporal_iou_times_mean_spatial_iou_on_shared_frames():
    # A: frames 0..9, box [0,0,10,10]; B: frames 5..14, box [0,0,10,20] (spatial IoU 100/200 = .5)
    # shared frames 5..9 (5), union 0..14 (15): temporal 1/3 -> 1/3 * 0.5 = 1/6.
    fa, fb = np.arange(10), np.arange(5, 15)
    ba = np.tile([0, 0, 10, 10], (10, 1))
    bb = np.tile([0, 0, 10, 20], (10, 1))
    assert tube_iou(fa, ba, fb, bb) == pytest.approx(1 / 6)
    assert tube_iou(fb, bb, fa, ba) == pytest.approx(1 / 6)
    # Frame sets, not ranges: {0,2,4} vs {0..4} shares 3 of 5 frames -> 3/5 with identical boxes.
    assert tube_iou(np.array([0, 2, 4]), ba[:3], np.arange(5), ba[:5]) == pytest.approx(3 / 5)
    # A NaN box on a shared frame counts as IoU 0: frames 0,1 shared, IoUs (1, 0) -> 1 * 0.5.
    bn = ba[:2].astype(float).copy()
    bn[1] = np.nan
    assert tube_iou(np.arange(2), bn, np.arange(2), ba[:2]) == pytest.approx(0.5)
    assert tube_iou(np.arange(3), ba[:3], np.arange(3, 6), ba[:3]) == 0.0


# ---------------------------------------------------------------------------------------------
# AP and video mAP
# ---------------------------------------------------------------------------------------------


def test_average_precision_is_all_point_interpolated():
    # Ranked: TP FP TP FP TP with 4 positives (one never detected).
    # precision 1, 1/2, 2/3, 2/4, 3/5 at recall .25, .25, .5, .5, .75.
    # Envelope: 1 on (0, .25], 2/3 on (.25, .5], 3/5 on (.5, .75], 0 on (.75, 1].
    # AP = .25*1 + .25*2/3 + .25*3/5 = 1/4 + 1/6 + 3/20 = 17/30 (11-point VOC07 gives 6.2/11).
    scores = np.array([0.6, 0.9, 0.5, 0.8, 0.7])  # shuffled; ranks 4, 1, 5, 2, 3
    tp = np.array([False, True, True, False, True])
    assert average_precision(scores, tp, 4) == pytest.approx(17 / 30, rel=1e-12)
    assert average_precision(scores, np.zeros(5, bool), 4) == 0.0
    assert average_precision([], [], 3) == 0.0
    assert math.isnan(average_precision([0.5], [False], 0))
    with pytest.raises(ValueError, match="true positives"):
        average_precision([0.5, 0.4], [True, True], 1)


def _box_tube(box, frames):
    return np.asarray(frames), np.tile(np.asarray(box, float), (len(frames), 1))


def test_video_map_on_a_hand_case_with_a_false_positive_ranked_first():
    f10 = np.arange(10)
    gt = {
        "v1": [GroundTruthTube(0, *_box_tube([0, 0, 10, 10], f10))],
        "v2": [GroundTruthTube(0, *_box_tube([20, 20, 30, 30], f10))],
        "v3": [(1, *_box_tube([0, 0, 10, 10], f10))],  # plain tuples work too
    }
    dets = [
        Detection("v2", 0, 0.9, *_box_tube([50, 50, 60, 60], f10)),  # IoU 0: FP, ranked first
        Detection("v1", 0, 0.8, *_box_tube([0, 0, 10, 10], f10)),  # IoU 1: TP
        Detection("v2", 0, 0.7, *_box_tube([20, 20, 30, 30], np.arange(5))),  # 5/10 * 1 = 0.5
        Detection("v1", 0, 0.6, *_box_tube([0, 0, 10, 10], f10)),  # duplicate: v1 already used
        ("v3", 1, 0.5, *_box_tube([0, 0, 10, 5], f10)),  # 1 * 50/100 = 0.5
        Detection("v1", 2, 0.95, *_box_tube([0, 0, 10, 10], f10)),  # class 2 has no GT
    ]
    # IoU 0.5 (>= counts): class 0 ranks FP TP TP FP, 2 positives: precision 0, 1/2, 2/3, 1/2,
    # recall 0, .5, 1, 1 -> envelope 2/3 on (0, 1] -> AP 2/3. Class 1: TP -> 1. mAP = 5/6.
    m, per_class = video_map(dets, gt, 0.5)
    assert per_class == pytest.approx({0: 2 / 3, 1: 1.0})
    assert m == pytest.approx(5 / 6)
    # IoU 0.6: class 0 ranks FP TP FP FP -> precision 1/2 at recall 1/2 -> AP .25; class 1: 0.
    m, per_class = video_map(dets, gt, 0.6)
    assert per_class == pytest.approx({0: 0.25, 1: 0.0})
    assert m == pytest.approx(0.125)
    at = video_map_at(dets, gt, (0.2, 0.5, 0.6))
    assert at == pytest.approx({0.2: 5 / 6, 0.5: 5 / 6, 0.6: 0.125})
    assert map_key(0.2) == "loc/mAP_0.2"


def test_a_used_ground_truth_tube_leaves_the_next_best_free():
    # Two class-0 tubes in one video; both detections overlap A best, the second still matches B.
    f = np.arange(4)
    gt = {"v": [(0, *_box_tube([0, 0, 10, 10], f)), (0, *_box_tube([0, 0, 10, 16], f))]}
    # det 1 = A exactly; det 2 = [0,0,10,12]: IoU with A 100/120 = .83, with B 120/160 = .75.
    dets = [("v", 0, 0.9, *_box_tube([0, 0, 10, 10], f)), ("v", 0, 0.8, *_box_tube([0, 0, 10, 12], f))]
    m, _ = video_map(dets, gt, 0.7)
    assert m == pytest.approx(1.0)
    m, _ = video_map(dets, gt, 0.8)  # .75 < .8: second is a FP -> AP = 1 * 1/2
    assert m == pytest.approx(0.5)


@dataclass(frozen=True)
class _AnnotatedTube:  # the shape of videolstm.data.datasets.ucf101_24.Tube
    label: int
    frames: np.ndarray
    boxes: np.ndarray


def test_video_map_accepts_tube_objects_with_label_frames_boxes():
    f = np.arange(5)
    gt = {"v": [_AnnotatedTube(2, *_box_tube([0, 0, 10, 10], f))]}
    hit = Tube(label=2, score=0.9, frames=f, boxes=_box_tube([0, 0, 10, 10], f)[1], raw_boxes=np.zeros((5, 4)))
    miss = Tube(label=2, score=0.8, frames=f, boxes=_box_tube([0, 0, 10, 5], f)[1], raw_boxes=np.zeros((5, 4)))
    # Smoothed boxes: IoU 1 then a duplicate (FP) -> AP 1. Raw (all-zero) boxes: IoU 0 -> AP 0.
    assert video_map([hit.detection("v"), miss.detection("v")], gt, 0.5) == (1.0, {2: 1.0})
    assert video_map([hit.detection("v", smoothed=False)], gt, 0.5) == (0.0, {2: 0.0})


def test_video_map_without_ground_truth_is_nan_and_missing_detections_give_zero():
    assert math.isnan(video_map([("v", 0, 1.0, np.arange(2), np.zeros((2, 4)))], {}, 0.5)[0])
    gt = {"v": [(3, np.arange(2), np.tile([0, 0, 4, 4], (2, 1)))]}
    assert video_map([], gt, 0.5) == (0.0, {3: 0.0})


# ---------------------------------------------------------------------------------------------
# Per-frame recall
# ---------------------------------------------------------------------------------------------


def test_frame_recall_counts_gt_frames_and_sums_over_videos():
    gt = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [np.nan] * 4, [0, 0, 10, 10]])
    pred = np.array([[0, 0, 10, 10], [5, 5, 15, 15], [0, 0, 5, 5], [np.nan] * 4])
    # IoUs on the 3 GT frames: 1, 1/7 = .143, miss (NaN prediction) -> at .1: 2, at .5: 1.
    curve = frame_recall_curve(pred, gt, [0.1, 0.5])
    np.testing.assert_array_equal(curve.hits, [2, 1])
    assert curve.num_frames == 3
    np.testing.assert_allclose(curve.recall, [2 / 3, 1 / 3])
    both = frame_recall_curve([pred, pred], [gt, gt], [0.1, 0.5])
    np.testing.assert_array_equal(both.hits, [4, 2])
    assert both.num_frames == 6
    with pytest.raises(ValueError, match="different thresholds"):
        curve + frame_recall_curve(pred, gt, [0.2, 0.5])
    assert np.isnan(FrameRecall(np.array([0.5]), np.array([0]), 0).recall).all()
    summed = curve + curve
    np.testing.assert_array_equal(summed.hits, both.hits)
    assert summed.num_frames == both.num_frames


def test_boxes_at_frames_aligns_a_tube_to_the_attention_steps():
    out = boxes_at_frames(np.array([0, 2, 4]), np.array([2, 3, 4]), np.array([[1, 1, 2, 2], [3, 3, 4, 4], [5, 5, 6, 6]]))
    assert np.isnan(out[0]).all()
    np.testing.assert_array_equal(out[1:], [[1, 1, 2, 2], [5, 5, 6, 6]])


# ---------------------------------------------------------------------------------------------
# Boxes from attention
# ---------------------------------------------------------------------------------------------


def _blob(h: int, w: int, cy: float, cx: float, s: float) -> np.ndarray:
    """Gaussian bump on an (h, w) attention grid; centre in cell coordinates."""
    y, x = np.mgrid[0:h, 0:w]
    return np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (2 * s * s))


def test_moving_gaussian_blob_gives_boxes_around_the_blob():
    # 14x14 map on a 112x112 frame: 8 px cells; a cell centre c lies at pixel (c + 0.5) * 8.
    # Blob std 1 cell = 8 px, smoothing sigma 0.5 cell = 4 px, bilinear upsampling adds a
    # triangle kernel of variance 8^2/6. Thresholding a Gaussian of std S at half its peak gives a
    # half-width sqrt(2 ln 2) S = 1.1774 * sqrt(64 + 16 + 10.67) = 11.2 px.
    cells, frame, steps = 14, 112, 10
    cx = np.linspace(3.0, 10.0, steps)
    cy = np.linspace(5.0, 8.0, steps)
    attention = np.stack([_blob(cells, cells, y, x, 1.0) for y, x in zip(cy, cx, strict=True)])
    attention /= attention.sum(axis=(1, 2), keepdims=True)  # a softmax over positions
    boxes = attention_to_boxes(attention, (frame, frame), sigma=0.5, threshold=0.5)
    assert boxes.shape == (steps, 4)
    centre_x = (boxes[:, 0] + boxes[:, 2]) / 2
    centre_y = (boxes[:, 1] + boxes[:, 3]) / 2
    np.testing.assert_allclose(centre_x, (cx + 0.5) * 8, atol=1.0)
    np.testing.assert_allclose(centre_y, (cy + 0.5) * 8, atol=1.0)
    half = 1.1774 * math.sqrt(8**2 + 4**2 + 8**2 / 6)
    np.testing.assert_allclose((boxes[:, 2] - boxes[:, 0]) / 2, half, atol=1.0)
    np.testing.assert_allclose((boxes[:, 3] - boxes[:, 1]) / 2, half, atol=1.0)


def test_sigma_is_in_attention_cells_so_box_scales_with_the_frame():
    attention = _blob(7, 7, 3, 3, 0.8)[None]
    small = attention_to_boxes(attention, (112, 112), sigma=0.5, threshold=0.5)[0]
    large = attention_to_boxes(attention, (224, 336), sigma=0.5, threshold=0.5)[0]
    np.testing.assert_allclose(large, small * [3, 2, 3, 2], atol=2.0)


def _reference_box(amap: np.ndarray, size: tuple[int, int], sigma: float, threshold: float) -> np.ndarray:
    """Upsample, blur at full resolution with scipy, label with scipy, take the largest."""
    (height, width), (h, w) = size, amap.shape
    up = cv2.resize(amap, (width, height), interpolation=cv2.INTER_LINEAR)
    smooth = ndimage.gaussian_filter(up, (sigma * height / h, sigma * width / w), mode="nearest", truncate=4.0)
    mask = smooth >= threshold * smooth.max()
    labels, count = ndimage.label(mask, structure=np.ones((3, 3)))
    largest = int(np.argmax(ndimage.sum(mask, labels, range(1, count + 1)))) + 1
    rows, cols = ndimage.find_objects(labels)[largest - 1]
    return np.array([cols.start, rows.start, cols.stop, rows.stop], float)


@pytest.mark.parametrize("sigma", [0.0, 0.5, 1.0, 2.0])
def test_boxes_equal_an_independent_full_resolution_computation(sigma):
    rng = np.random.default_rng(7)
    for _ in range(8):
        logits = rng.normal(size=(7, 7)) * 2
        amap = np.exp(logits) / np.exp(logits).sum()
        got = attention_to_boxes(amap[None], (240, 320), sigma=sigma, threshold=0.5)[0]
        np.testing.assert_array_equal(got, _reference_box(amap, (240, 320), sigma, 0.5))


def test_two_blobs_previous_box_wins_over_the_larger_component():
    # Blob A (left) starts largest and fades in size; blob B (right) grows past it from step 3.
    steps = 6
    size_a = np.linspace(1.3, 0.8, steps)
    size_b = np.linspace(0.8, 1.6, steps)
    attention = np.stack([_blob(14, 14, 7, 3, a) + _blob(14, 14, 7, 10, b) for a, b in zip(size_a, size_b, strict=True)])
    boxes = attention_to_boxes(attention, (112, 112), sigma=0.0, threshold=0.5)
    centre_x = (boxes[:, 0] + boxes[:, 2]) / 2
    np.testing.assert_allclose(centre_x, 3.5 * 8, atol=1.0)  # stays on A in every frame
    # Control: the last frame alone (no previous box) takes the larger component, B.
    alone = attention_to_boxes(attention[-1:], (112, 112), sigma=0.0, threshold=0.5)[0]
    assert (alone[0] + alone[2]) / 2 == pytest.approx(10.5 * 8, abs=1.0)


def test_largest_component_is_taken_when_none_overlaps_the_previous_box_and_gaps_keep_it():
    first = _blob(14, 14, 2, 2, 0.8)  # top-left
    empty = np.zeros((14, 14))  # no attention at all: NaN row, the previous box is kept
    later = _blob(14, 14, 11, 3, 0.7) + _blob(14, 14, 11, 10, 1.2)  # bottom: right is larger
    still = _blob(14, 14, 11, 3, 1.3) + _blob(14, 14, 11, 10, 0.9)  # left grows larger
    boxes = attention_to_boxes(np.stack([first, empty, later, still]), (112, 112), 0.0, 0.5)
    assert np.isnan(boxes[1]).all()
    assert (boxes[2, 0] + boxes[2, 2]) / 2 == pytest.approx(10.5 * 8, abs=1.0)
    assert (boxes[3, 0] + boxes[3, 2]) / 2 == pytest.approx(10.5 * 8, abs=1.0)  # tracked


# ---------------------------------------------------------------------------------------------
# Temporal smoothing
# ---------------------------------------------------------------------------------------------


def _linear_boxes(steps: int) -> np.ndarray:
    t = np.arange(steps, dtype=float)
    return np.column_stack([20 + 2 * t, 30 + t, 40 + 2 * t, 60 + t])


def test_lowess_removes_a_single_frame_jitter_and_keeps_the_trend():
    clean = _linear_boxes(30)
    noisy = clean.copy()
    noisy[15] += 20.0
    smoothed = smooth_boxes(noisy, frac=0.3)
    # The jump shrinks to less than a third ...
    assert np.abs(smoothed[15] - clean[15]).max() < 20 / 3
    # ... and frames whose 9-frame window (0.3 * 30) gives frame 15 zero tricube weight
    # (|t - 15| >= 4) are exactly on the line: local linear regression reproduces a line.
    far = np.abs(np.arange(30) - 15) >= 4
    np.testing.assert_allclose(smoothed[far], clean[far], atol=1e-9)


def test_lowess_fits_valid_frames_and_fills_nan_rows():
    clean = _linear_boxes(20)
    holes = clean.copy()
    holes[[0, 1, 10]] = np.nan
    smoothed = smooth_boxes(holes, frac=0.3)
    np.testing.assert_allclose(smoothed[10], clean[10], atol=1e-9)  # interior gap: on the line
    np.testing.assert_allclose(smoothed[[0, 1]], clean[[2, 2]], atol=1e-9)  # held, not extrapolated


def test_lowess_on_very_short_tubes():
    assert np.isnan(smooth_boxes(np.full((4, 4), np.nan), 0.3)).all()
    one = np.full((3, 4), np.nan)
    one[1] = [1, 2, 3, 4]
    np.testing.assert_allclose(smooth_boxes(one, 0.3), np.tile([1, 2, 3, 4], (3, 1)))
    two = np.array([[0, 0, 10, 10], [np.nan] * 4, [10, 10, 20, 20]], float)
    np.testing.assert_allclose(smooth_boxes(two, 0.3)[1], [5, 5, 15, 15])
    # 3 frames: least-squares line. [0, 6, 0] in x1 -> mean 2, slope 0 -> 2 everywhere.
    three = _linear_boxes(3)
    np.testing.assert_allclose(smooth_boxes(three, 0.3), three, atol=1e-9)
    bump = np.array([[0, 0, 10, 10], [6, 0, 10, 10], [0, 0, 10, 10]], float)
    np.testing.assert_allclose(smooth_boxes(bump, 0.3)[:, 0], [2, 2, 2])
    # 5 frames, frac 0.3 (1.5 points) -> 5 neighbours; no NaN anywhere.
    five = _linear_boxes(5)
    five[2] += 4
    assert np.isfinite(smooth_boxes(five, 0.3)).all()


# ---------------------------------------------------------------------------------------------
# One tube per video
# ---------------------------------------------------------------------------------------------


def test_localize_video_scores_the_predicted_class_by_its_mean_score():
    steps = 12
    attention = np.stack([_blob(7, 7, 3, 1 + 0.4 * t, 0.8) for t in range(steps)])
    per_step = np.tile([0.2, 0.5, 0.3], (steps, 1))
    per_step[:4] = [0.6, 0.3, 0.1]  # class 0 wins early, class 1 on average: (4*.3 + 8*.5)/12
    config = LocalizationConfig(sigma=0.5, threshold=0.5, lowess_frac=0.5)
    frames = np.arange(steps) * 3 + 1
    tube = localize_video(attention, (112, 112), per_step, config, frames=frames)
    assert tube.label == 1
    assert tube.score == pytest.approx((4 * 0.3 + 8 * 0.5) / 12)
    np.testing.assert_array_equal(tube.frames, frames)
    assert tube.boxes.shape == tube.raw_boxes.shape == (steps, 4)
    assert np.isfinite(tube.boxes).all()
    # Boxes follow the blob to the right: cell 1 -> cell 5.4, i.e. pixel 24 -> 94.
    centre = (tube.boxes[:, 0] + tube.boxes[:, 2]) / 2
    assert centre[0] < 35 and centre[-1] > 85
    video_level = localize_video(attention, (112, 112), np.array([0.1, 0.2, 0.7]), config)
    assert (video_level.label, video_level.score) == (2, pytest.approx(0.7))
    det = tube.detection("v_x")
    assert det.video_id == "v_x" and det.label == 1 and det.boxes is tube.boxes
    assert tube.detection("v_x", smoothed=False).boxes is tube.raw_boxes


def test_a_tube_leaves_out_the_leading_and_trailing_steps_whose_maps_give_no_box():
    steps = 10
    attention = np.stack([_blob(7, 7, 3, 3, 0.8) for _ in range(steps)])
    attention[:3] = 0.0  # e.g. an oracle map before the annotation's sf
    attention[8:] = 0.0  # ... and from its ef (exclusive) on
    attention[5] = 0.0  # a gap inside the tube stays part of it (LOWESS fills it)
    frames = np.arange(steps) + 100
    tube = localize_video(attention, (112, 112), np.array([0.3, 0.7]), LocalizationConfig(), frames=frames)
    np.testing.assert_array_equal(tube.frames, np.arange(103, 108))
    assert tube.raw_boxes.shape == tube.boxes.shape == (5, 4)
    assert np.isnan(tube.raw_boxes[2]).all() and np.isfinite(tube.boxes).all()
    empty = localize_video(np.zeros((4, 7, 7)), (112, 112), np.array([0.3, 0.7]), LocalizationConfig())
    assert empty.frames.tolist() == [0, 1, 2, 3] and np.isnan(empty.boxes).all()


def test_a_given_label_takes_the_tube_and_is_scored_by_its_own_mean_score():
    attention = np.stack([_blob(7, 7, 3, 3, 0.8) for _ in range(4)])
    per_step = np.tile([0.6, 0.3, 0.1], (4, 1))
    per_step[0] = [0.2, 0.3, 0.5]
    tube = localize_video(attention, (112, 112), per_step, LocalizationConfig(), label=2)
    assert tube.label == 2 and tube.score == pytest.approx((0.5 + 3 * 0.1) / 4)
    predicted = localize_video(attention, (112, 112), per_step, LocalizationConfig())
    np.testing.assert_array_equal(predicted.boxes, tube.boxes)  # the class does not move the boxes
    with pytest.raises(ValueError, match="label 3"):
        localize_video(attention, (112, 112), per_step, LocalizationConfig(), label=3)
