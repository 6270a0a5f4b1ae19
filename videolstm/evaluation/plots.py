"""Figures a person looks at: PNGs (matplotlib, Agg canvas) and overlay videos (OpenCV, GIF via Pillow).

Every function writes one local file and returns its path; the Prefect tasks log them to MLflow.
Figures are built on ``matplotlib.figure.Figure`` with an explicit Agg canvas, never through
``pyplot``: no global state, no GUI backend, nothing to close, safe in Ray workers.

Conventions: frames are RGB ``uint8`` (T, H, W, 3) (convert OpenCV's BGR first); boxes are
``(x1, y1, x2, y2)`` in frame pixels with x2/y2 exclusive and NaN rows for "no box"
(:mod:`videolstm.evaluation.localization`); ground truth is drawn green, predictions red.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle

from videolstm.data.video import write_video
from videolstm.evaluation.report import STREAMS, VARIANT_NAMES, aggregate, display_name

__all__ = [
    "plot_attention_strip",
    "plot_confusion_matrix",
    "plot_localization_curves",
    "plot_training_curves",
    "plot_variant_comparison",
    "write_attention_video",
]

GT_COLOUR = "#00c000"
PRED_COLOUR = "#e00000"
_STREAM_COLOURS = {"rgb": "#4c72b0", "flow": "#dd8452", "fused": "#55a868"}
_DPI = 100


def _new_figure(width: float, height: float, layout: Literal["constrained", "compressed", "tight"] | None = None) -> Figure:
    fig = Figure(figsize=(width, height), dpi=_DPI, layout=layout)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=_DPI, bbox_inches="tight")
    return path


def plot_confusion_matrix(cm: np.ndarray, class_names: Sequence[str], path: str | Path, title: str = "Confusion matrix") -> Path:
    """Confusion matrix as a heat map.

    Args:
        cm: (K, K) counts, rows = true class, columns = predicted class.
        class_names: K names.
        path: output PNG.
        title: figure title; the top-1 accuracy (trace / total) is appended.

    Colour is the row-normalised fraction (so classes with different support compare), the
    number in a cell is the count (written when K <= 30).
    """
    cm = np.asarray(cm)
    k = cm.shape[0]
    if cm.shape != (k, k) or len(class_names) != k:
        raise ValueError(f"cm must be (K, K) with K = {len(class_names)} class names, got {cm.shape}")
    rows = cm.sum(axis=1, keepdims=True)
    fraction = np.divide(cm, rows, out=np.zeros(cm.shape, dtype=float), where=rows > 0)
    side = max(5.0, 0.42 * k + 2.5)
    fig = _new_figure(side + 1.2, side)
    ax = fig.add_subplot()
    image = ax.imshow(fraction, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="fraction of the true class")
    ax.set_xticks(range(k), labels=list(class_names), rotation=60 if k > 6 else 30, ha="right", rotation_mode="anchor")
    ax.set_yticks(range(k), labels=list(class_names))
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    total = cm.sum()
    accuracy = f" (top-1 {100 * np.trace(cm) / total:.1f}%, {int(total)} videos)" if total else ""
    ax.set_title(title + accuracy)
    if k <= 30:
        size = 9 if k <= 12 else 7
        for i in range(k):
            for j in range(k):
                if cm[i, j]:
                    colour = "white" if fraction[i, j] > 0.55 else "black"
                    ax.text(j, i, f"{int(cm[i, j])}", ha="center", va="center", fontsize=size, color=colour)
    return _save(fig, path)


def _upsample(attention: np.ndarray, height: int, width: int) -> np.ndarray:
    """(T, h, w) -> (T, H, W), bilinear as in :func:`videolstm.evaluation.localization.attention_to_boxes`."""
    size = (width, height)
    return np.stack([cv2.resize(a.astype(np.float32), size, interpolation=cv2.INTER_LINEAR) for a in attention])


def _check_video_inputs(frames: np.ndarray, attention: np.ndarray, *boxes: np.ndarray | None) -> None:
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be (T, H, W, 3) RGB, got shape {frames.shape}")
    if attention.ndim != 3 or attention.shape[0] != frames.shape[0]:
        raise ValueError(f"attention must be (T, h, w) with T = {frames.shape[0]}, got shape {attention.shape}")
    for b in boxes:
        if b is not None and b.shape != (frames.shape[0], 4):
            raise ValueError(f"boxes must be (T, 4) with T = {frames.shape[0]}, got shape {b.shape}")


def _as_boxes(boxes: Any) -> np.ndarray | None:
    return None if boxes is None else np.asarray(boxes, dtype=np.float64)


def plot_attention_strip(
    frames: np.ndarray,
    attention: np.ndarray,
    gt_boxes: np.ndarray | None,
    pred_boxes: np.ndarray | None,
    path: str | Path,
    num_frames: int = 8,
    title: str | None = None,
    frame_indices: Sequence[int] | None = None,
) -> Path:
    """A strip of evenly spaced frames with the attention map overlaid and the boxes drawn.

    Args:
        frames: (T, H, W, 3) uint8 RGB.
        attention: (T, h, w) attention weights; upsampled bilinearly to the frame and drawn with
            one colour scale for the whole strip (0 .. the largest weight shown), with a colour bar
            marking the uniform level 1/(h·w): a map collapsed to uniform is all at that mark.
        gt_boxes: (T, 4) ground-truth boxes (green; NaN rows skipped) or None.
        pred_boxes: (T, 4) predicted boxes (red) or None.
        path: output PNG.
        num_frames: frames shown (at most T), evenly spaced from the first to the last.
        title: figure title.
        frame_indices: (T,) video frame numbers used in the panel titles; default 0..T-1.
    """
    frames = np.asarray(frames)
    attention = np.asarray(attention, dtype=np.float64)
    gt, pred = _as_boxes(gt_boxes), _as_boxes(pred_boxes)
    _check_video_inputs(frames, attention, gt, pred)
    steps, height, width = frames.shape[:3]
    shown = np.unique(np.linspace(0, steps - 1, max(1, min(num_frames, steps))).round().astype(int))
    labels = np.arange(steps) if frame_indices is None else np.asarray(frame_indices)
    heat = _upsample(attention[shown], height, width)
    vmax = float(heat.max()) if heat.max() > 0 else 1.0
    norm = Normalize(vmin=0.0, vmax=vmax)
    cmap = colormaps["jet"]
    panel = 2.3
    aspect = height / width
    fig = _new_figure(panel * len(shown) + 1.2, panel * aspect + 1.1, layout="constrained")
    axes = fig.subplots(1, len(shown), squeeze=False)[0]
    for ax, t, heat_t in zip(axes, shown, heat, strict=True):
        ax.imshow(frames[t])
        # Opacity grows with the weight, so the frame stays visible where attention is low.
        overlay = cmap(norm(heat_t))
        overlay[..., 3] = 0.15 + 0.55 * norm(heat_t)
        ax.imshow(overlay)
        for boxes, colour in ((gt, GT_COLOUR), (pred, PRED_COLOUR)):
            if boxes is not None and np.all(np.isfinite(boxes[t])):
                x1, y1, x2, y2 = boxes[t]
                # Pixel i spans [i - 0.5, i + 0.5] in imshow coordinates.
                ax.add_patch(Rectangle((x1 - 0.5, y1 - 0.5), x2 - x1, y2 - y1, fill=False, edgecolor=colour, linewidth=2))
        ax.set_title(f"frame {labels[t]}", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    bar = fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=list(axes), shrink=0.9, aspect=15, label="attention weight")
    uniform = 1.0 / (attention.shape[1] * attention.shape[2])
    if uniform <= vmax:  # where a collapse to uniform attention would sit: the whole map at this level
        bar.ax.axhline(uniform, color="white", linewidth=2)
        bar.ax.axhline(uniform, color="black", linewidth=1, linestyle="--")
        bar.ax.text(1.0, uniform, " uniform", transform=bar.ax.get_yaxis_transform(), va="center", ha="left", fontsize=7, clip_on=False)
    handles = []
    if gt is not None:
        handles.append(Line2D([], [], color=GT_COLOUR, linewidth=2, label="ground truth"))
    if pred is not None:
        handles.append(Line2D([], [], color=PRED_COLOUR, linewidth=2, label="predicted"))
    if handles:
        fig.legend(handles=handles, loc="outside lower center", ncol=len(handles), frameon=False)
    if title:
        fig.suptitle(title)
    return _save(fig, path)


_FOURCC = {".avi": "MJPG", ".mp4": "mp4v"}
VIDEO_SUFFIXES = (".avi", ".mp4", ".gif")


def write_attention_video(
    frames: np.ndarray,
    attention: np.ndarray,
    gt_boxes: np.ndarray | None,
    pred_boxes: np.ndarray | None,
    path: str | Path,
    fps: float = 8.0,
    scale: int | None = None,
) -> Path:
    """An overlay video: attention heat map (jet, one scale for the video), GT box green,
    predicted red, a small legend in the corner, and a colour bar to the right of the frame
    (0 at the bottom, the video's largest weight at the top, a black mark at the uniform level
    1/(h·w), so a map collapsed to uniform shows as the whole frame at that mark).

    Args:
        frames: (T, H, W, 3) uint8 RGB.
        attention: (T, h, w) attention weights.
        gt_boxes, pred_boxes: (T, 4) boxes or None (NaN rows skipped).
        path: ``.avi`` (MJPG) or ``.mp4`` (mp4v) — the codecs OpenCV writes here (not avc1, so
            browsers cannot play them) — or ``.gif``: an animated GIF (Pillow, looping, one
            256-colour palette per frame) that browsers and MLflow's artifact viewer show inline.
        fps: frames per second.
        scale: integer upscaling of the frames (nearest); default: the smallest that makes the
            short side at least 224 pixels, so that the boxes and the legend are legible. The
            video is ``W·scale`` plus the colour bar's width (a multiple of 8) wide.

    Raises:
        ValueError: unknown extension. RuntimeError: the writer could not be opened or wrote nothing.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in VIDEO_SUFFIXES:
        raise ValueError(f"video path must end in .avi (MJPG), .mp4 (mp4v) or .gif (animated GIF), got {path.name}")
    images = _overlay_images(frames, attention, gt_boxes, pred_boxes, scale)
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".gif":
        _write_gif(images, path, fps)
    else:
        write_video(str(path), np.stack([image[..., ::-1] for image in images]), fps, codec=_FOURCC[suffix])  # BGR → RGB
    if not path.is_file() or path.stat().st_size == 0:
        raise RuntimeError(f"nothing was written to {path}")
    return path


def _overlay_images(
    frames: np.ndarray, attention: np.ndarray, gt_boxes: np.ndarray | None, pred_boxes: np.ndarray | None, scale: int | None
) -> list[np.ndarray]:
    """The overlay frames as BGR uint8 images, (H·scale, W·scale + colour bar, 3) each (see :func:`write_attention_video`)."""
    frames = np.asarray(frames)
    attention = np.asarray(attention, dtype=np.float64)
    gt, pred = _as_boxes(gt_boxes), _as_boxes(pred_boxes)
    _check_video_inputs(frames, attention, gt, pred)
    steps, height, width = frames.shape[:3]
    if scale is None:
        scale = max(1, math.ceil(224 / min(height, width)))
    out_h, out_w = height * scale, width * scale
    heat = _upsample(attention, out_h, out_w)
    vmax = float(heat.max()) if heat.max() > 0 else 1.0
    thickness = max(1, scale // 2)
    font = 0.5 * max(1.0, out_h / 224)
    text_width = max(1, round(out_h / 224))
    line = int(22 * font / 0.5)
    bar = _colour_bar(out_h, vmax, 1.0 / (attention.shape[1] * attention.shape[2]), font, text_width, line)
    images = []
    for t in range(steps):
        bgr = cv2.cvtColor(np.ascontiguousarray(frames[t], dtype=np.uint8), cv2.COLOR_RGB2BGR)
        bgr = cv2.resize(bgr, (out_w, out_h), interpolation=cv2.INTER_NEAREST).astype(np.float32)
        level = np.clip(heat[t] / vmax, 0.0, 1.0)
        colour_map = cv2.applyColorMap((level * 255).astype(np.uint8), cv2.COLORMAP_JET).astype(np.float32)
        # Opacity grows with the weight, as in the strip: the frame stays visible elsewhere.
        alpha = (0.15 + 0.55 * level)[..., None]
        image = np.ascontiguousarray(((1 - alpha) * bgr + alpha * colour_map).round().astype(np.uint8))
        for boxes, colour in ((gt, (0, 200, 0)), (pred, (0, 0, 230))):
            if boxes is not None and np.all(np.isfinite(boxes[t])):
                x1, y1, x2, y2 = (boxes[t] * scale).round().astype(int)
                cv2.rectangle(image, (x1, y1), (x2 - 1, y2 - 1), colour, thickness)
        entries = [("ground truth", (0, 200, 0))] if gt is not None else []
        entries += [("predicted", (0, 0, 230))] if pred is not None else []
        if entries:
            (w_text, _), _ = cv2.getTextSize("ground truth", cv2.FONT_HERSHEY_SIMPLEX, font, text_width)
            cv2.rectangle(image, (0, 0), (w_text + 10, line * len(entries) + 8), (255, 255, 255), -1)
            for i, (text, colour) in enumerate(entries):
                origin = (5, line * (i + 1))
                cv2.putText(image, text, origin, cv2.FONT_HERSHEY_SIMPLEX, font, colour, text_width, cv2.LINE_AA)
        images.append(np.ascontiguousarray(np.concatenate([image, bar], axis=1)))
    return images


def _write_gif(images: list[np.ndarray], path: Path, fps: float) -> None:
    from PIL import Image

    frames = [Image.fromarray(cv2.cvtColor(image, cv2.COLOR_BGR2RGB)).quantize(colors=256) for image in images]
    # GIF delays are in hundredths of a second: round to what the format can say.
    duration = max(20, int(round(100 / fps)) * 10)
    frames[0].save(path, format="GIF", save_all=True, append_images=frames[1:], duration=duration, loop=0)


def _colour_bar(height: int, vmax: float, uniform: float, font: float, text_width: int, line: int) -> np.ndarray:
    """(height, width) BGR uint8 panel: a vertical jet bar from 0 (bottom) to ``vmax`` (top), its
    two values written beside it, and a black mark labelled "unif." at ``uniform`` (when <= vmax)."""
    labels = [f"{vmax:.3g}", "0", "unif."]
    text = max(cv2.getTextSize(t, cv2.FONT_HERSHEY_SIMPLEX, font, text_width)[0][0] for t in labels)
    gradient_w = max(10, line // 2)
    width = -(-(gradient_w + text + 14) // 8) * 8  # a multiple of 8: every codec takes it
    panel = np.full((height, width, 3), 255, np.uint8)
    top, bottom = line // 2 + 2, height - line // 2 - 2
    levels = np.linspace(1.0, 0.0, bottom - top)[:, None]
    panel[top:bottom, 4 : 4 + gradient_w] = cv2.applyColorMap((levels * 255).astype(np.uint8), cv2.COLORMAP_JET)
    x_text = 8 + gradient_w
    cv2.putText(panel, labels[0], (x_text, top + line // 3), cv2.FONT_HERSHEY_SIMPLEX, font, (0, 0, 0), text_width, cv2.LINE_AA)
    cv2.putText(panel, labels[1], (x_text, bottom + line // 3), cv2.FONT_HERSHEY_SIMPLEX, font, (0, 0, 0), text_width, cv2.LINE_AA)
    if 0 < uniform <= vmax:
        y = int(round(bottom - 1 - (uniform / vmax) * (bottom - top - 1)))
        cv2.line(panel, (2, y), (6 + gradient_w, y), (0, 0, 0), max(1, text_width))
        if top + line < y < bottom - line:  # the label only where it does not cover the others
            cv2.putText(panel, labels[2], (x_text, y + line // 3), cv2.FONT_HERSHEY_SIMPLEX, font, (0, 0, 0), text_width, cv2.LINE_AA)
    return panel


def plot_localization_curves(curves: Mapping[str, Any], path: str | Path, title: str = "Per-frame localization recall") -> Path:
    """Recall vs IoU threshold, one line per entry (e.g. with / without temporal smoothing).

    Args:
        curves: ``{label: (thresholds (M,), recall (M,))}``; a
            :class:`videolstm.evaluation.localization.FrameRecall` works as a value too.
        path: output PNG.
    """
    fig = _new_figure(6.0, 4.5)
    ax = fig.add_subplot()
    markers = "os^Dv<>p"
    for i, (label, curve) in enumerate(curves.items()):
        if hasattr(curve, "recall") and hasattr(curve, "thresholds"):
            thresholds, recall = curve.thresholds, curve.recall
        else:
            thresholds, recall = curve
        marker = markers[i % len(markers)]
        ax.plot(np.asarray(thresholds), np.asarray(recall), marker=marker, markersize=4, label=str(label))
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("IoU threshold")
    ax.set_ylabel("recall (fraction of ground-truth frames)")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    if curves:
        ax.legend()
    return _save(fig, path)


def plot_variant_comparison(
    rows: Sequence[Mapping[str, Any]],
    path: str | Path,
    metric: str = "test/accuracy",
    title: str | None = None,
) -> Path:
    """Grouped bars: one group per variant (paper order), one bar per stream (RGB / Flow / Fused).

    Args:
        rows: result rows as for :func:`videolstm.evaluation.report.comparison_markdown`.
        path: output PNG.
        metric: the row key plotted; accuracies are shown in percent.

    Bar height is the mean over seeds, the error bar the sample std (only where there are
    several seeds), the number above a bar its mean. Missing cells have no bar.
    """
    cells = aggregate(rows, metric)
    variants = [v for v in VARIANT_NAMES if any((v, s) in cells for s, _ in STREAMS)]
    variants += sorted({v for v, _ in cells} - set(VARIANT_NAMES))
    percent = "accuracy" in metric
    scale = 100.0 if percent else 1.0
    fig = _new_figure(max(6.0, 1.3 * len(variants) + 2.0), 4.8)
    ax = fig.add_subplot()
    width = 0.8 / len(STREAMS)
    several = False
    for j, (stream, label) in enumerate(STREAMS):
        xs, means, stds = [], [], []
        for i, v in enumerate(variants):
            cell = cells.get((v, stream))
            if cell is None:
                continue
            xs.append(i + (j - (len(STREAMS) - 1) / 2) * width)
            means.append(cell.mean * scale)
            stds.append(cell.std * scale if cell.n > 1 else np.nan)
            several |= cell.n > 1
        if not xs:
            continue
        ax.bar(xs, means, width * 0.95, label=label, color=_STREAM_COLOURS.get(stream))
        err = np.asarray(stds)
        keep = np.isfinite(err)
        if keep.any():
            ax.errorbar(
                np.asarray(xs)[keep],
                np.asarray(means)[keep],
                yerr=err[keep],
                fmt="none",
                ecolor="black",
                capsize=3,
                linewidth=1,
            )
        for x, m, s in zip(xs, means, stds, strict=True):
            top = m + (s if np.isfinite(s) else 0.0)
            ax.text(x, top, f"{m:.1f}" if percent else f"{m:.3f}", ha="center", va="bottom", fontsize=7)
    ax.set_xticks(range(len(variants)), labels=[display_name(v) for v in variants])
    ax.set_ylabel("top-1 accuracy (%)" if metric == "test/accuracy" else metric + (" (%)" if percent else ""))
    if percent:
        ax.set_ylim(0, 105)
    ax.set_xlim(-0.6, max(len(variants) - 0.4, 0.6))
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(title="stream", loc="upper left", ncol=len(STREAMS), frameon=False)
    default = "Variants by stream" + (" (mean ± std over seeds)" if several else "")
    ax.set_title(title or default)
    return _save(fig, path)


def _history_columns(history: Any) -> dict[str, np.ndarray]:
    if isinstance(history, Mapping):
        return {str(k): np.asarray(v, dtype=np.float64) for k, v in history.items()}
    records = list(history)
    keys = sorted({k for r in records for k in r})
    return {str(k): np.array([r.get(k, np.nan) for r in records], dtype=np.float64) for k in keys}


def plot_training_curves(history: Any, path: str | Path, title: str = "Training") -> Path:
    """Loss and accuracy per epoch.

    Args:
        history: ``{"epoch": [...], "train/loss": [...], "val/accuracy": [...], ...}`` (columns)
            or ``[{"epoch": 1, "train/loss": ...}, ...]`` (one record per epoch). Keys holding
            "loss" go to the left panel, keys holding "acc" to the right one; NaN / missing
            values are skipped (the line joins the epochs that have one). The x axis is
            ``epoch`` when present, else 1, 2, ...
        path: output PNG.

    Raises:
        ValueError: when no key holds "loss" or "acc".
    """
    columns = _history_columns(history)
    epochs = columns.pop("epoch", None)
    length = max((len(v) for v in columns.values()), default=0)
    if epochs is None:
        epochs = np.arange(1, length + 1, dtype=np.float64)
    groups = [
        ("loss", sorted(k for k in columns if "loss" in k.lower())),
        ("accuracy", sorted(k for k in columns if "acc" in k.lower())),
    ]
    groups = [(name, keys) for name, keys in groups if keys]
    if not groups:
        raise ValueError(f"history has no loss or accuracy series (keys: {sorted(columns)})")
    fig = _new_figure(5.0 * len(groups), 4.0, layout="constrained")
    axes = fig.subplots(1, len(groups), squeeze=False)[0]
    for ax, (name, keys) in zip(axes, groups, strict=True):
        for key in keys:
            values = columns[key]
            x = epochs[: len(values)]
            keep = np.isfinite(values)  # e.g. validation every few epochs: join the points
            ax.plot(x[keep], values[keep], marker="o", markersize=3, label=key)
        ax.set_xlabel("epoch")
        ax.set_ylabel(name)
        ax.set_title(name)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
        finite = np.concatenate([columns[k][np.isfinite(columns[k])] for k in keys])
        if name == "accuracy" and finite.size and finite.max() <= 1.0:
            ax.set_ylim(0, 1.02)
    fig.suptitle(title)
    return _save(fig, path)
