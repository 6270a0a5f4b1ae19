"""The figures are real, readable files that show what they claim (checked on pixels here; the
PNGs of these synthetic examples were also opened and looked at when this was written)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from videolstm.evaluation.localization import attention_to_boxes, frame_recall_curve, smooth_boxes
from videolstm.evaluation.plots import (
    plot_attention_strip,
    plot_confusion_matrix,
    plot_localization_curves,
    plot_training_curves,
    plot_variant_comparison,
    write_attention_video,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def synthetic_clip(steps: int = 12, size: int = 112, cells: int = 7, seed: int = 0):
    """A bright square moving right over a noisy grey frame, attention on it, GT = the square,
    prediction = the boxes from that attention. Returns frames, attention, gt, pred."""
    rng = np.random.default_rng(seed)
    frames = np.clip(rng.normal(110, 12, size=(steps, size, size, 3)), 0, 255).astype(np.uint8)
    side = size // 5
    xs = np.linspace(8, size - side - 8, steps).round().astype(int)
    y0 = size // 2 - side // 2
    gt = np.zeros((steps, 4))
    attention = np.zeros((steps, cells, cells))
    yy, xx = np.mgrid[0:cells, 0:cells]
    for t, x0 in enumerate(xs):
        frames[t, y0 : y0 + side, x0 : x0 + side] = (230, 190, 60)
        gt[t] = (x0, y0, x0 + side, y0 + side)
        cy, cx = (y0 + side / 2) / size * cells - 0.5, (x0 + side / 2) / size * cells - 0.5
        logits = -((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * 0.7**2) * 3
        attention[t] = np.exp(logits) / np.exp(logits).sum()
    pred = attention_to_boxes(attention, (size, size), sigma=0.5, threshold=0.5)
    return frames, attention, gt, pred


def _read_png(path) -> np.ndarray:
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert image is not None
    return image


def _sensible(image: np.ndarray, min_side: int = 250, max_side: int = 4000) -> None:
    h, w = image.shape[:2]
    assert min_side <= h <= max_side and min_side <= w <= max_side, (h, w)
    assert image.std() > 10  # not a blank canvas


def _pixels_like(image_bgr: np.ndarray, rgb: tuple[int, int, int], tol: int = 40) -> int:
    target = np.array(rgb[::-1])
    return int((np.abs(image_bgr.astype(int) - target).max(axis=-1) <= tol).sum())


def test_confusion_matrix_png(tmp_path):
    cm = np.array([[8, 1, 1], [0, 9, 1], [2, 0, 8]])
    path = plot_confusion_matrix(cm, ["walk", "run", "jump"], tmp_path / "cm.png", title="Confusion")
    assert path == tmp_path / "cm.png"
    image = _read_png(path)
    _sensible(image)
    assert _pixels_like(image, (8, 48, 107)) > 500  # dark blue diagonal cells (Blues at 0.8-0.9)
    with pytest.raises(ValueError):
        plot_confusion_matrix(cm, ["a", "b"], tmp_path / "bad.png")


def test_confusion_matrix_scales_to_many_classes(tmp_path):
    k = 24
    cm = np.diag(np.full(k, 5)) + np.random.default_rng(0).integers(0, 2, size=(k, k))
    image = _read_png(plot_confusion_matrix(cm, [f"class_{i:02d}" for i in range(k)], tmp_path / "cm24.png"))
    _sensible(image, min_side=800)


def test_attention_strip_draws_both_boxes_and_a_colour_bar(tmp_path):
    frames, attention, gt, pred = synthetic_clip()
    path = plot_attention_strip(frames, attention, gt, pred, tmp_path / "strip.png", num_frames=6, title="strip")
    image = _read_png(path)
    _sensible(image, min_side=200)
    assert image.shape[1] > 2.5 * image.shape[0]  # a strip: much wider than tall
    assert _pixels_like(image, (0, 192, 0), tol=30) > 200  # green GT edges
    assert _pixels_like(image, (224, 0, 0), tol=30) > 200  # red predicted edges
    # Without boxes there is no green or red at all (the jet overlay has neither pure colour).
    bare = _read_png(plot_attention_strip(frames, attention, None, None, tmp_path / "bare.png", num_frames=6))
    assert _pixels_like(bare, (0, 192, 0), tol=30) < 20


def test_attention_video_round_trips_through_opencv(tmp_path):
    frames, attention, gt, pred = synthetic_clip(steps=10, size=56)
    for name in ("overlay.avi", "overlay.mp4"):
        path = write_attention_video(frames, attention, gt, pred, tmp_path / name, fps=5)
        capture = cv2.VideoCapture(str(path))
        decoded = []
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            decoded.append(frame)
        capture.release()
        assert len(decoded) == 10
        # 56 px upscaled x4 to a legible size, and the colour bar to the right
        assert decoded[0].shape[0] == 224 and 224 + 32 <= decoded[0].shape[1] <= 224 + 160
        bar = decoded[0][:, 224:].astype(int)
        column = bar[20:-20, 8]  # inside the gradient: red at the top (max), blue at the bottom (0)
        assert column[0][2] > 150 and column[0][0] < 100 and column[-1][0] > 100 and column[-1][2] < 80, (column[0], column[-1])
        # The GT box's left edge (x1 * 4) is green in the decoded frame.
        x1, y1, x2, y2 = (gt[3] * 4).astype(int)
        edge = decoded[3][y1 + 4 : y2 - 4, x1 : x1 + 3].reshape(-1, 3).mean(axis=0)  # BGR
        assert edge[1] > 120 and edge[1] > edge[0] + 40 and edge[1] > edge[2] + 40, edge
    with pytest.raises(ValueError, match="avi"):
        write_attention_video(frames, attention, gt, pred, tmp_path / "x.mkv")


def test_attention_gif_is_an_animated_gif_a_browser_plays_with_every_frame_and_the_gt_box(tmp_path):
    from PIL import Image

    frames, attention, gt, pred = synthetic_clip(steps=10, size=56)
    path = write_attention_video(frames, attention, gt, pred, tmp_path / "overlay.gif", fps=5)
    assert path.read_bytes()[:6] == b"GIF89a"  # the animated variant browsers play
    with Image.open(path) as gif:
        assert gif.n_frames == 10 and gif.info["loop"] == 0 and gif.info["duration"] == 200  # 5 fps, looping
        gif.seek(3)
        frame = np.asarray(gif.convert("RGB"))
    assert frame.shape[0] == 224 and frame.shape[1] > 224  # the frame, then the colour bar
    x1, y1, x2, y2 = (gt[3] * 4).astype(int)
    edge = frame[y1 + 4 : y2 - 4, x1 : x1 + 3].reshape(-1, 3).mean(axis=0)  # RGB
    assert edge[1] > 120 and edge[1] > edge[0] + 40 and edge[1] > edge[2] + 40, edge


def test_a_collapse_to_uniform_attention_fills_the_frame_at_the_uniform_mark_of_the_colour_bar(tmp_path):
    frames, attention, gt, pred = synthetic_clip(steps=4, size=56)
    uniform = np.full_like(attention, 1 / 49)
    path = write_attention_video(frames, uniform, None, None, tmp_path / "uniform.avi", fps=5)
    capture = cv2.VideoCapture(str(path))
    ok, frame = capture.read()
    capture.release()
    assert ok
    # the scale runs 0 .. the map's max, so a uniform map is at the top of the bar: red everywhere
    # (over the frame's grey: the overlay's opacity at the max is 0.7)
    overlay = frame[40:200, 40:200].reshape(-1, 3).mean(axis=0)  # BGR
    assert overlay[2] > overlay[0] + 60, overlay
    # the strip's colour bar marks the uniform level
    _sensible(_read_png(plot_attention_strip(frames, uniform, None, None, tmp_path / "uniform.png", num_frames=4)), min_side=150)


def test_localization_curves_png(tmp_path):
    frames, attention, gt, raw = synthetic_clip(steps=30)
    jittered = raw.copy()
    jittered[::4] += 9  # every 4th box off by 9 px
    curves = {
        "without smoothing": frame_recall_curve(jittered, gt),
        "with LOWESS smoothing": frame_recall_curve(smooth_boxes(jittered, 0.3), gt),
    }
    # The values are plain (thresholds, recall) pairs or FrameRecall objects.
    curves["tuple form"] = (curves["without smoothing"].thresholds, curves["without smoothing"].recall * 0.9)
    image = _read_png(plot_localization_curves(curves, tmp_path / "recall.png"))
    _sensible(image)


def _rows():
    rows = []
    rng = np.random.default_rng(1)
    for v, base in [("convnet", 0.6), ("lstm", 0.65), ("alstm", 0.68), ("convlstm", 0.7), ("convalstm", 0.72), ("videolstm", 0.76)]:
        for s, bonus in [("rgb", 0.0), ("flow", 0.04), ("fused", 0.09)]:
            for seed in range(3 if v == "videolstm" else 1):
                rows.append({"variant": v, "stream": s, "seed": seed, "test/accuracy": base + bonus + rng.normal(0, 0.01)})
    rows.append({"variant": "motion_alstm", "stream": "rgb", "seed": 0, "test/accuracy": 0.71})
    return rows


def test_variant_comparison_png(tmp_path):
    image = _read_png(plot_variant_comparison(_rows(), tmp_path / "variants.png"))
    _sensible(image)
    assert _pixels_like(image, (0x4C, 0x72, 0xB0), tol=10) > 500  # RGB bars
    assert _pixels_like(image, (0x55, 0xA8, 0x68), tol=10) > 500  # fused bars


def test_training_curves_png_from_columns_or_records(tmp_path):
    history = {
        "epoch": [1, 2, 3, 4, 5],
        "train/loss": [2.0, 1.4, 1.0, 0.8, 0.7],
        "val/loss": [2.1, 1.6, 1.3, 1.2, 1.2],
        "train/accuracy": [0.2, 0.45, 0.6, 0.7, 0.75],
        "val/accuracy": [0.18, 0.4, 0.5, 0.55, 0.56],
    }
    _sensible(_read_png(plot_training_curves(history, tmp_path / "train.png")))
    records = [{k: v[i] for k, v in history.items()} for i in range(5)]
    del records[0]["val/loss"]  # a missing value is a gap
    _sensible(_read_png(plot_training_curves(records, tmp_path / "train_records.png")))
    with pytest.raises(ValueError, match="loss or accuracy"):
        plot_training_curves({"epoch": [1], "lr": [0.1]}, tmp_path / "none.png")
