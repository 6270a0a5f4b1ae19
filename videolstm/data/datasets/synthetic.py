"""The embedded default dataset: synthetic action videos in the UCF101 layout, with GT boxes.

Each video shows one *actor* among ``distractors`` static look-alikes on a textured static
background. Actor and distractors are drawn from the same appearance distribution (textured
rectangles or ellipses of similar size and texture), so a single frame does not tell which
object is the actor: **the class is the actor's motion pattern**, and only motion shows which
object is the actor.

Appearance cue (``appearance_cue``, default 1): as in real actions, where what the actor
looks like says something about the action, each class has a colour style (a hue of its own,
bright and dark shades) that its actors wear; every distractor wears the style of a random
class. A frame therefore shows several candidate styles and cannot tell which one belongs to
the actor — motion can, which is what motion-based attention exploits. With
``appearance_cue=0`` every object has random colours and a frame carries no class information
at all. Per video, the start position, speed/amplitude, phase, colours, textures and
background are random; every frame gets independent pixel noise of std
``noise`` (triangular, i.e. near-Gaussian). The actor always stays fully inside the frame and
is never occluded: distractors are placed off its whole path (and off each other) when the frame
has room, else they may overlap it and the actor is drawn on top.

Robustness knobs (each off by default, so the embedded set is unchanged byte for byte; each
draws from its own random stream, so switching one on leaves the rest of a video as it was):

* ``moving_distractors``: that many of the distractors wander along smooth random paths
  (integrated smoothed random velocities: neither straight, nor periodic, nor in place — no
  class's pattern) over about as much of the frame as an actor covers, so that "what moves" no
  longer singles out the actor; only *how* it moves does. They are drawn under the actor.
* ``camera_jitter``: the whole view shifts every frame by an independent normal offset (std
  ``camera_jitter`` × the short side, clipped at 3 std, whole pixels): the scene is drawn on a
  canvas that much larger on every side and the actor keeps that far from the edges, so it stays
  fully visible; the annotated boxes follow the view. Every pixel then moves, not only the actor.
* ``actors: 2``: a second actor of the video's class, with its own path of the same motion pattern
  (kept off the first actor's boxes when the frame has room), drawn under the first; the
  annotation holds one tube per actor (several actors, as in 204 of UCF101-24's test videos).
* ``background_clutter``: static textured patches of object size in random colours (the
  objects' own stripes, checkerboards and blotches) cover about that share of the background.

Classes (the first ``num_classes`` of :data:`CLASS_NAMES`)::

    MoveRight, MoveLeft, MoveUp, MoveDown        straight line at constant speed
    CircleClockwise, CircleCounterClockwise      circle (clockwise as seen on screen)
    ZigZag                                       drifts down while zigzagging left-right (triangle wave)
    Bounce                                       bounces up from a floor (|sin|) with a slow sideways drift
    ShakeHorizontal, ShakeVertical               fast small sinusoidal oscillation in place
    FigureEight                                  Lissajous figure eight (x: sin θ, y: sin 2θ)
    MoveDiagonal                                 straight line along one of the four diagonals

Files written under ``root`` (the UCF101 layout, so the UCF101 reader reads it)::

    root/
      <Class>/v_<Class>_gXX_cYY.avi      MJPG, `frames` frames of height x width, 25 fps
      ucfTrainTestlist/classInd.txt      "<1-based index> <Class>\\r\\n"
      ucfTrainTestlist/trainlist0{1,2,3}.txt   "<Class>/v_<Class>_gXX_cYY.avi <1-based label>\\r\\n"
      ucfTrainTestlist/testlist0{1,2,3}.txt    "<Class>/v_<Class>_gXX_cYY.avi\\r\\n"
      annotations.pkl                    UCF101-24 layout (below), pickle protocol 2
      synthetic.json                     marker written last: config digest, config, file list

Groups and clips: video ``i`` (0-based) of a class is group ``g{i+1:02d}``, clip ``c01``.
Splits: split ``k`` (1..3) tests ``round(test_fraction * videos_per_class)`` consecutive groups
starting at group ``round((k-1) * videos_per_class / 3)`` (wrapping around), like UCF101's
group-wise splits (split 1 tests g01–g07 there), so the three splits hold out different groups
and no group is in both train and test of a split.

``annotations.pkl`` (the UCF101-24 ``pyannot.pkl`` layout)::

    {"Class/v_Class_gXX_cYY": {
        "numf": int,                       # frames in the video
        "label": int,                      # 0-based class index (classInd index - 1)
        "annotations": [{                  # one tube: the actor
            "label": int,                  # same 0-based class index
            "sf": int,                     # first annotated frame, 0-based
            "ef": int,                     # end frame, exclusive
            "boxes": np.ndarray int32 (ef - sf, 4),   # x, y, w, h in pixels, per frame
        }]}}

It holds only dicts, lists, strs, ints and int32 numpy arrays; with numpy 2 the pickle references
the globals ``numpy._core.multiarray._reconstruct``, ``numpy.ndarray``, ``numpy.dtype`` and
``_codecs.encode`` (protocol 2 stores the array bytes through it), which is what a restricted
unpickler must allow. With ``late_start_fraction > 0`` that fraction of each class's videos has
an actor that appears only at frame ``sf > 0`` (and is absent before it).
"""

from __future__ import annotations

import colorsys
import io
import json
import math
import pickle
from collections.abc import Callable
from dataclasses import dataclass, field

import cv2
import numpy as np

from videolstm.config import StorageConfig, SyntheticConfig
from videolstm.data.video import write_video
from videolstm.store.storage import exists, get_fs, join, read_text, remove, write_bytes, write_text

__all__ = [
    "CLASS_NAMES",
    "SyntheticSummary",
    "SyntheticVideo",
    "generate_synthetic",
    "render_video",
    "video_id",
    "split_groups",
]

CLASS_NAMES: tuple[str, ...] = (
    "MoveRight",
    "MoveLeft",
    "MoveUp",
    "MoveDown",
    "CircleClockwise",
    "CircleCounterClockwise",
    "ZigZag",
    "Bounce",
    "ShakeHorizontal",
    "ShakeVertical",
    "FigureEight",
    "MoveDiagonal",
)

FPS = 25
CODEC = "MJPG"
SPLIT_DIR = "ucfTrainTestlist"
MARKER = "synthetic.json"
ANNOTATIONS = "annotations.pkl"
_FORMAT_VERSION = 1
_TRIANGULAR_STD = math.sqrt(2 * (256**2 - 1) / 12)  # std of the sum of two uniform bytes


@dataclass(frozen=True)
class SyntheticSummary:
    """What :func:`generate_synthetic` produced (or found already complete).

    ``splits`` maps split number (1..3) to ``(train videos, test videos)``; ``generated`` is
    False when an existing complete dataset with the same config digest was reused.
    """

    root: str
    class_names: tuple[str, ...]
    num_videos: int
    videos_per_class: int
    frames: int
    height: int
    width: int
    splits: dict[int, tuple[int, int]]
    digest: str
    generated: bool


@dataclass
class SyntheticVideo:
    """One rendered video before encoding.

    ``frames``: uint8 ``(T, H, W, 3)`` RGB. ``boxes``: int32 ``(T - sf, 4)`` actor boxes x, y, w, h
    for frames ``sf..T-1``. ``distractor_boxes``: int32 ``(D - M, 4)`` of the static distractors
    (in the unshaken view: the camera shift moves them too). ``moving_boxes``: int32 ``(M, T, 4)``
    of the ``M = moving_distractors`` wandering ones, as seen in each frame. ``camera_shift``:
    int32 ``(T, 2)`` the view's offset (dx, dy) per frame (zeros without ``camera_jitter``); an
    object at x in the scene appears at x − dx. ``other_actor_boxes``: int32 ``(T - sf, 4)`` of the
    second actor with ``actors: 2`` (same frames as ``boxes``), else ``(0, 4)``.
    """

    class_index: int
    video_index: int
    frames: np.ndarray
    boxes: np.ndarray
    sf: int
    distractor_boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.int32))
    moving_boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 0, 4), np.int32))
    camera_shift: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), np.int32))
    other_actor_boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.int32))


def video_id(class_name: str, video_index: int) -> str:
    """``Class/v_Class_gXX_c01`` for 0-based ``video_index`` (group ``video_index + 1``)."""
    return f"{class_name}/v_{class_name}_g{video_index + 1:02d}_c01"


def split_groups(videos_per_class: int, test_fraction: float, split: int) -> list[int]:
    """0-based group indices held out for testing in ``split`` (1..3); see the module docstring."""
    if split not in (1, 2, 3):
        raise ValueError(f"split must be 1, 2 or 3, got {split}")
    n = videos_per_class
    n_test = min(max(1, round(test_fraction * n)), n - 1)
    start = round((split - 1) * n / 3)
    return sorted((start + j) % n for j in range(n_test))


def _late_videos(videos_per_class: int, fraction: float) -> set[int]:
    """Exactly ``round(fraction * n)`` video indices, spread evenly over the groups."""
    return {i for i in range(videos_per_class) if math.floor((i + 1) * fraction + 1e-9) > math.floor(i * fraction + 1e-9)}


# --------------------------------------------------------------------------------------------
# Appearance


def _smooth_noise(rng: np.random.Generator, height: int, width: int, cell: int) -> np.ndarray:
    """float32 (height, width) smooth random field in [0, 1] (bicubic upsampled coarse noise)."""
    coarse = rng.random((max(2, height // cell + 2), max(2, width // cell + 2)), dtype=np.float32)
    field_ = cv2.resize(coarse, (width + 2 * cell, height + 2 * cell), interpolation=cv2.INTER_CUBIC)
    field_ = field_[cell : cell + height, cell : cell + width]
    lo, hi = float(field_.min()), float(field_.max())
    return (field_ - lo) / max(hi - lo, 1e-6)


def _random_colour(rng: np.random.Generator) -> np.ndarray:
    return rng.uniform(25, 230, size=3).astype(np.float32)


def _background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """float32 (H, W, 3): two random colours blended by a smooth field, plus fine texture."""
    c1, c2 = _random_colour(rng), _random_colour(rng)
    blend = _smooth_noise(rng, height, width, cell=max(4, min(height, width) // 4))[..., None]
    fine = (_smooth_noise(rng, height, width, cell=2) - 0.5)[..., None] * rng.uniform(20, 45)
    return c1 * blend + c2 * (1 - blend) + fine


def _style_colours(rng: np.random.Generator, style: int, num_styles: int) -> tuple[np.ndarray, np.ndarray]:
    """The two colours of class style ``style``: a bright and a dark shade of the style's hue.

    Hues are spread evenly over the colour wheel (jittered by ±15 % of the spacing), so the
    styles of different classes are distinguishable but not identical from video to video.
    """
    hue = ((style + rng.uniform(-0.15, 0.15)) / num_styles) % 1.0
    bright = colorsys.hsv_to_rgb(hue, rng.uniform(0.7, 0.95), rng.uniform(0.8, 0.95))
    dark = colorsys.hsv_to_rgb(hue, rng.uniform(0.7, 0.95), rng.uniform(0.25, 0.4))
    return np.asarray(bright, np.float32) * 255, np.asarray(dark, np.float32) * 255


def _sprite(rng: np.random.Generator, base: int, colours: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """A textured object: (float32 (h, w, 3) colours, bool (h, w) mask).

    Actor and distractors both come from here, so they share one appearance distribution.
    ``colours``: the object's two colours (a class style); random colours when None.
    """
    h = max(3, int(round(base * rng.uniform(0.85, 1.15))))
    w = max(3, int(round(base * rng.uniform(0.85, 1.15))))
    c1, c2 = colours if colours is not None else (_random_colour(rng), _random_colour(rng))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    kind = rng.integers(3)
    if kind == 0:  # stripes at a random angle
        angle = rng.uniform(0, np.pi)
        period = rng.uniform(3, max(4.0, base / 2))
        pattern = (np.sin(2 * np.pi * (xx * np.cos(angle) + yy * np.sin(angle)) / period) > 0).astype(np.float32)
    elif kind == 1:  # checkerboard
        cell = int(rng.integers(2, max(3, base // 3) + 1))
        pattern = (((xx // cell) + (yy // cell)) % 2).astype(np.float32)
    else:  # blotches
        pattern = (_smooth_noise(rng, h, w, cell=max(2, base // 4)) > 0.5).astype(np.float32)
    texture = c1 * pattern[..., None] + c2 * (1 - pattern[..., None])
    if rng.random() < 0.5:
        mask = np.ones((h, w), dtype=bool)
    else:  # ellipse filling the box
        cy, cx = (h - 1) / 2, (w - 1) / 2
        mask = ((yy - cy) / (h / 2)) ** 2 + ((xx - cx) / (w / 2)) ** 2 <= 1.0
        mask[h // 2, :] = True  # the box is tight: the ellipse touches all four sides
        mask[:, w // 2] = True
    return texture, mask


def _paste(canvas: np.ndarray, sprite: tuple[np.ndarray, np.ndarray], x: int, y: int) -> None:
    colours, mask = sprite
    h, w = mask.shape
    region = canvas[y : y + h, x : x + w]
    region[mask] = colours[mask]


# --------------------------------------------------------------------------------------------
# Motion: each returns float offsets (dx, dy) of shape (n,), relative and not yet placed.

Trajectory = Callable[[np.random.Generator, int, float, float], tuple[np.ndarray, np.ndarray]]


def _line(direction: tuple[int, int]) -> Trajectory:
    def path(rng: np.random.Generator, n: int, free_w: float, free_h: float):
        span = rng.uniform(0.5, 0.95)
        t = np.linspace(0.0, 1.0, n)
        return direction[0] * span * free_w * t, direction[1] * span * free_h * t

    return path


def _circle(sign: int) -> Trajectory:
    def path(rng, n, free_w, free_h):
        radius = rng.uniform(0.3, 0.45) * min(free_w, free_h)
        theta = rng.uniform(0, 2 * np.pi) + sign * 2 * np.pi * rng.uniform(0.8, 1.3) * np.linspace(0, 1, n)
        # image y points down, so increasing theta runs clockwise on screen
        return radius * np.cos(theta), radius * np.sin(theta)

    return path


def _triangle(phase: np.ndarray) -> np.ndarray:
    """Triangle wave in [0, 1] with period 1."""
    frac = np.mod(phase, 1.0)
    return 1 - 2 * np.abs(frac - 0.5)


def _zigzag(rng, n, free_w, free_h):
    t = np.linspace(0, 1, n)
    periods = rng.uniform(2.0, 3.0)
    dx = rng.uniform(0.4, 0.8) * free_w * _triangle(periods * t + rng.uniform(0, 1))
    dy = rng.uniform(0.5, 0.9) * free_h * t
    return dx, dy


def _bounce(rng, n, free_w, free_h):
    t = np.linspace(0, 1, n)
    bounces = rng.uniform(1.5, 2.5)
    dy = -rng.uniform(0.5, 0.9) * free_h * np.abs(np.sin(np.pi * bounces * t + rng.uniform(0, np.pi)))
    dx = rng.uniform(-0.3, 0.3) * free_w * t
    return dx, dy


def _shake(axis: int) -> Trajectory:
    def path(rng, n, free_w, free_h):
        period = rng.uniform(4.0, 7.0)
        amplitude = rng.uniform(0.12, 0.25) * (free_w if axis == 0 else free_h)
        wave = amplitude * np.sin(2 * np.pi * np.arange(n) / period + rng.uniform(0, 2 * np.pi))
        still = np.zeros(n)
        return (wave, still) if axis == 0 else (still, wave)

    return path


def _figure_eight(rng, n, free_w, free_h):
    theta = rng.uniform(0, 2 * np.pi) + 2 * np.pi * rng.uniform(0.8, 1.2) * np.linspace(0, 1, n)
    return rng.uniform(0.3, 0.45) * free_w * np.sin(theta), rng.uniform(0.2, 0.4) * free_h * np.sin(2 * theta)


def _diagonal(rng, n, free_w, free_h):
    sx, sy = (1, -1)[rng.integers(2)], (1, -1)[rng.integers(2)]
    span = rng.uniform(0.5, 0.95) * min(free_w, free_h)
    t = np.linspace(0, 1, n)
    return sx * span * t, sy * span * t


TRAJECTORIES: dict[str, Trajectory] = {
    "MoveRight": _line((1, 0)),
    "MoveLeft": _line((-1, 0)),
    "MoveUp": _line((0, -1)),
    "MoveDown": _line((0, 1)),
    "CircleClockwise": _circle(+1),
    "CircleCounterClockwise": _circle(-1),
    "ZigZag": _zigzag,
    "Bounce": _bounce,
    "ShakeHorizontal": _shake(0),
    "ShakeVertical": _shake(1),
    "FigureEight": _figure_eight,
    "MoveDiagonal": _diagonal,
}


def _place(rng: np.random.Generator, dx: np.ndarray, dy: np.ndarray, free_w: int, free_h: int) -> np.ndarray:
    """Translate offsets to a random start so every top-left lies in [0, free]; int (n, 2)."""
    placed = []
    for offsets, free in ((dx, free_w), (dy, free_h)):
        lo, hi = float(offsets.min()), float(offsets.max())
        if hi - lo > free:  # cannot happen with the amplitudes above; keep the contract anyway
            offsets = (offsets - lo) * (free / (hi - lo)) + lo
            hi = lo + free
        start = rng.uniform(-lo, free - hi)
        placed.append(np.clip(np.rint(offsets + start), 0, free))
    return np.stack(placed, axis=1).astype(np.int32)


def _wander(rng: np.random.Generator, n: int, free_w: float, free_h: float) -> tuple[np.ndarray, np.ndarray]:
    """A moving distractor's path: smooth random velocities integrated (no class's pattern: not
    periodic, not straight), its extent a random 30-80 % of the free space, like the actors'."""
    velocity = rng.standard_normal((n + 2, 2))
    kernel = np.exp(-0.5 * (np.arange(-6, 7) / max(1.0, n / 10)) ** 2)
    velocity = np.stack([np.convolve(velocity[:, k], kernel / kernel.sum(), mode="same") for k in range(2)], axis=1)[1:-1]
    offsets = np.cumsum(velocity, axis=0)
    offsets -= offsets[0]
    extent = np.maximum(np.ptp(offsets, axis=0), 1e-6)
    span = rng.uniform(0.3, 0.8)
    scale = span * min(free_w / extent[0], free_h / extent[1]) if min(free_w, free_h) > 0 else 0.0
    return offsets[:, 0] * scale, offsets[:, 1] * scale


def _jitter_margin(config: SyntheticConfig, actor_w: int, actor_h: int) -> int:
    """The largest camera shift in pixels (3 std of ``camera_jitter``); 0 without shake."""
    if config.camera_jitter <= 0:
        return 0
    margin = int(math.ceil(3 * config.camera_jitter * min(config.height, config.width)))
    if config.width - actor_w - 2 * margin < 0 or config.height - actor_h - 2 * margin < 0:
        raise ValueError(
            f"camera_jitter {config.camera_jitter} shakes the view by up to {margin} px, too much for a "
            f"{actor_w}x{actor_h} actor in a {config.width}x{config.height} frame; lower camera_jitter or actor_size"
        )
    return margin


def _camera_shifts(rng: np.random.Generator, n: int, std: float, margin: int) -> np.ndarray:
    """int32 (n, 2) per-frame view offsets: independent normal shifts of ``std`` px, clipped to ±margin."""
    return np.clip(np.rint(rng.normal(0.0, std, size=(n, 2))), -margin, margin).astype(np.int32)


def _clutter(rng: np.random.Generator, canvas: np.ndarray, base: int, share: float) -> None:
    """Paste static textured patches of object size in random colours on ``canvas`` (in place)
    until about ``share`` of its area is covered (patches may overlap)."""
    height, width = canvas.shape[:2]
    covered = np.zeros((height, width), dtype=bool)
    for _ in range(10_000):  # bounded; the coverage target ends it long before
        if covered.mean() >= share:
            break
        sprite = _sprite(rng, max(3, int(round(base * rng.uniform(0.6, 1.6)))))
        h, w = sprite[1].shape
        if h > height or w > width:
            continue
        x, y = int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1))
        _paste(canvas, sprite, x, y)
        covered[y : y + h, x : x + w] |= sprite[1]


def _second_actor(
    rng: np.random.Generator,
    config: SyntheticConfig,
    name: str,
    base: int,
    sf: int,
    first: np.ndarray,
    margin: int,
    style_class: int | None,
) -> tuple[tuple[np.ndarray, np.ndarray], np.ndarray]:
    """A second actor of the same class: (sprite, int32 (T - sf, 4) boxes x, y, w, h in the unshaken view).

    Its own path of the class's motion pattern; up to 100 placements are tried for one whose box
    overlaps the first actor's at no frame (the last one is kept when the frame has no room).
    """
    colours = _style_colours(rng, style_class, config.num_classes) if style_class is not None else None
    sprite = _sprite(rng, base, colours)
    ah, aw = sprite[1].shape
    free_w, free_h = config.width - aw - 2 * margin, config.height - ah - 2 * margin
    for _ in range(100):
        dx, dy = TRAJECTORIES[name](rng, config.frames - sf, float(free_w), float(free_h))
        xy = _place(rng, dx, dy, free_w, free_h) + margin
        path = np.column_stack([xy, np.full(len(xy), aw), np.full(len(xy), ah)]).astype(np.int32)
        if not any(_overlaps(path[t], first[t : t + 1]) for t in range(len(path))):
            break
    return sprite, path


def _overlaps(box: np.ndarray, others: np.ndarray, margin: int = 1) -> bool:
    if len(others) == 0:
        return False
    x, y, w, h = box
    ox, oy, ow, oh = others[:, 0], others[:, 1], others[:, 2], others[:, 3]
    return bool(np.any((x < ox + ow + margin) & (ox < x + w + margin) & (y < oy + oh + margin) & (oy < y + h + margin)))


def render_video(config: SyntheticConfig, class_index: int, video_index: int) -> SyntheticVideo:
    """Render video ``video_index`` of class ``class_index`` (deterministic given ``config.seed``).

    Returns frames ``uint8 (frames, height, width, 3)`` RGB and the actor's boxes.
    """
    if not 0 <= class_index < config.num_classes:
        raise ValueError(f"class_index {class_index} out of range for {config.num_classes} classes")
    name = CLASS_NAMES[class_index]
    rng = np.random.default_rng([config.seed, class_index, video_index])
    height, width, n_frames = config.height, config.width, config.frames
    base = max(4, int(round(config.actor_size * min(height, width))))

    sf = 0
    if video_index in _late_videos(config.videos_per_class, config.late_start_fraction):
        sf = int(rng.integers(max(1, n_frames // 6), max(2, n_frames // 3) + 1))

    styled = config.appearance_cue > 0
    style_rng = np.random.default_rng([config.seed, class_index, video_index, 2])

    def style(actor_class: int | None) -> tuple[np.ndarray, np.ndarray] | None:
        """Colours of a class style (the actor's class, or a random class for a distractor)."""
        if not styled:
            return None
        if actor_class is None or style_rng.random() >= config.appearance_cue:
            actor_class = int(style_rng.integers(config.num_classes))
        return _style_colours(style_rng, actor_class, config.num_classes)

    actor = _sprite(rng, base, style(class_index))
    ah, aw = actor[1].shape
    # Camera shake: the view moves by up to ``margin`` pixels, so the scene is drawn on a canvas
    # ``margin`` larger on every side and the actor keeps ``margin`` away from the frame's edges
    # (it stays fully inside every shaken frame). margin = 0 without shake: the original canvas.
    margin = _jitter_margin(config, aw, ah)
    free_w, free_h = width - aw - 2 * margin, height - ah - 2 * margin
    dx, dy = TRAJECTORIES[name](rng, n_frames - sf, float(free_w), float(free_h))
    xy = _place(rng, dx, dy, free_w, free_h) + margin
    path = np.column_stack([xy, np.full(len(xy), aw), np.full(len(xy), ah)]).astype(np.int32)  # unshaken view

    second: tuple[tuple[np.ndarray, np.ndarray], np.ndarray] | None = None
    if config.actors == 2:  # its own random stream: the rest of the video is drawn as with one actor
        second = _second_actor(
            np.random.default_rng([config.seed, class_index, video_index, 6]), config, name, base, sf, path, margin, class_index if styled else None
        )

    static = _background(rng, height + 2 * margin, width + 2 * margin)
    if config.background_clutter > 0:
        _clutter(np.random.default_rng([config.seed, class_index, video_index, 3]), static, base, config.background_clutter)
    distractor_boxes: list[list[int]] = []
    movers: list[tuple[tuple[np.ndarray, np.ndarray], np.ndarray]] = []  # (sprite, (T, 2) top-left per frame)
    wander_rng = np.random.default_rng([config.seed, class_index, video_index, 4])
    for index in range(config.distractors):
        sprite = _sprite(rng, base, style(None))
        h, w = sprite[1].shape
        placed_box = None
        for attempt in range(200):
            box = np.array([rng.integers(0, width - w + 1), rng.integers(0, height - h + 1), w, h])
            taken = np.array(distractor_boxes, dtype=np.int64).reshape(-1, 4)
            # first try to keep clear of the actor's whole path, then only of other distractors
            if not _overlaps(box, taken) and (attempt >= 100 or not _overlaps(box, path)):
                placed_box = box
                break
        if placed_box is None:
            placed_box = box  # crowded frame: overlapping is allowed, the actor is drawn on top
        distractor_boxes.append([int(v) for v in placed_box])
        if index < config.moving_distractors:  # wanders instead (its placement draws keep the others' places)
            ox, oy = _wander(wander_rng, n_frames, float(width - w), float(height - h))
            movers.append((sprite, _place(wander_rng, ox, oy, width - w, height - h)))
        else:
            _paste(static, sprite, int(placed_box[0]) + margin, int(placed_box[1]) + margin)

    canvas = np.repeat(static.astype(np.float32)[None], n_frames, axis=0)
    for t in range(n_frames):
        for sprite, track in movers:
            _paste(canvas[t], sprite, int(track[t, 0]) + margin, int(track[t, 1]) + margin)
        if t >= sf:
            if second is not None:  # under the first actor
                x, y = second[1][t - sf, :2]
                _paste(canvas[t], second[0], int(x) + margin, int(y) + margin)
            x, y = path[t - sf, :2]
            _paste(canvas[t], actor, int(x) + margin, int(y) + margin)
    shift = np.zeros((n_frames, 2), np.int32)
    if margin:
        shift = _camera_shifts(np.random.default_rng([config.seed, class_index, video_index, 5]), n_frames, config.camera_jitter * min(height, width), margin)
        canvas = np.stack([canvas[t, margin + dy_ : margin + dy_ + height, margin + dx_ : margin + dx_ + width] for t, (dx_, dy_) in enumerate(shift)])
    boxes = path.copy()
    boxes[:, :2] -= shift[sf:]  # where the shaken view shows the actor
    other = np.zeros((0, 4), np.int32)
    if second is not None:
        other = second[1].copy()
        other[:, :2] -= shift[sf:]
    moving_boxes = np.array(
        [np.column_stack([track - shift, np.tile(sprite[1].shape[::-1], (n_frames, 1))]) for sprite, track in movers],
        dtype=np.int32,
    ).reshape(len(movers), n_frames, 4)
    if config.noise > 0:
        noise_rng = np.random.default_rng([config.seed, class_index, video_index, 1])
        # triangular noise (sum of two uniform bytes): near-Gaussian, std exactly config.noise,
        # and 3x cheaper to draw than normal variates
        pair = noise_rng.integers(0, 256, size=(2, *canvas.shape), dtype=np.uint8)
        noise = pair[0].astype(np.float32)
        noise += pair[1]
        noise -= np.float32(255.0)
        noise *= np.float32(config.noise / _TRIANGULAR_STD)
        canvas += noise
    np.rint(canvas, out=canvas)
    np.clip(canvas, 0, 255, out=canvas)
    frames = canvas.astype(np.uint8)
    static_boxes = np.array(distractor_boxes[config.moving_distractors :], dtype=np.int32).reshape(-1, 4)
    return SyntheticVideo(
        class_index=class_index,
        video_index=video_index,
        frames=frames,
        boxes=boxes,
        sf=sf,
        distractor_boxes=static_boxes,
        moving_boxes=moving_boxes,
        camera_shift=shift,
        other_actor_boxes=other,
    )


# --------------------------------------------------------------------------------------------
# The dataset on storage


def _split_files(config: SyntheticConfig, class_names: tuple[str, ...]) -> dict[str, str]:
    """Relative path → text of classInd.txt and the six split lists (CRLF line endings)."""
    files = {f"{SPLIT_DIR}/classInd.txt": "".join(f"{i + 1} {name}\r\n" for i, name in enumerate(class_names))}
    for split in (1, 2, 3):
        test_groups = set(split_groups(config.videos_per_class, config.test_fraction, split))
        train_lines, test_lines = [], []
        for label, name in enumerate(class_names):
            for index in range(config.videos_per_class):
                path = f"{video_id(name, index)}.avi"
                if index in test_groups:
                    test_lines.append(f"{path}\r\n")
                else:
                    train_lines.append(f"{path} {label + 1}\r\n")
        files[f"{SPLIT_DIR}/trainlist0{split}.txt"] = "".join(train_lines)
        files[f"{SPLIT_DIR}/testlist0{split}.txt"] = "".join(test_lines)
    return files


def _summary(root_uri: str, config: SyntheticConfig, generated: bool) -> SyntheticSummary:
    class_names = CLASS_NAMES[: config.num_classes]
    splits = {}
    for split in (1, 2, 3):
        n_test = len(split_groups(config.videos_per_class, config.test_fraction, split)) * config.num_classes
        splits[split] = (config.num_classes * config.videos_per_class - n_test, n_test)
    return SyntheticSummary(
        root=root_uri,
        class_names=class_names,
        num_videos=config.num_classes * config.videos_per_class,
        videos_per_class=config.videos_per_class,
        frames=config.frames,
        height=config.height,
        width=config.width,
        splits=splits,
        digest=config.digest(),
        generated=generated,
    )


def _read_marker(root_uri: str, storage: StorageConfig | None) -> dict | None:
    marker_uri = join(root_uri, MARKER)
    if not exists(marker_uri, storage):
        return None
    try:
        marker = json.loads(read_text(marker_uri, storage))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{marker_uri} is not valid JSON ({exc}); delete it to regenerate the synthetic dataset in {root_uri}") from exc
    if not isinstance(marker, dict):
        raise ValueError(f"{marker_uri} must hold a JSON object; delete it to regenerate the dataset")
    return marker


def _all_present(root_uri: str, files: list[str], storage: StorageConfig | None) -> bool:
    fs, path = get_fs(root_uri, storage)
    fs.invalidate_cache(path)  # s3fs caches listings per process; another process may have written
    prefix = path.rstrip("/") + "/"
    present = {p[len(prefix) :] for p in fs.find(path) if p.startswith(prefix)}
    return set(files) <= present


def generate_synthetic(root_uri: str, config: SyntheticConfig, storage: StorageConfig | None = None) -> SyntheticSummary:
    """Write the synthetic action dataset under ``root_uri`` (layout in the module docstring).

    Idempotent: when ``root_uri/synthetic.json`` (written last) holds ``config.digest()`` and every
    file it lists is present, nothing is written and the summary has ``generated=False``. With a
    different digest the previous marker is removed first, files of the old dataset that the new
    one does not rewrite are deleted, and everything is written again.

    Returns:
        :class:`SyntheticSummary` with the counts, class names and root URI.
    """
    digest = config.digest()
    marker = _read_marker(root_uri, storage)
    if marker is not None and marker.get("digest") == digest and marker.get("format") == _FORMAT_VERSION:
        if _all_present(root_uri, list(marker.get("files", [])), storage):
            return _summary(root_uri, config, generated=False)

    class_names = CLASS_NAMES[: config.num_classes]
    video_paths = [f"{video_id(name, i)}.avi" for name in class_names for i in range(config.videos_per_class)]
    split_texts = _split_files(config, class_names)
    new_files = [*video_paths, *split_texts, ANNOTATIONS, MARKER]

    if marker is not None:
        remove(join(root_uri, MARKER), storage)
        for stale in sorted(set(marker.get("files", [])) - set(new_files)):
            if isinstance(stale, str) and ".." not in stale.split("/") and not stale.startswith("/"):
                remove(join(root_uri, stale), storage)  # only our own relative paths under root

    annotations: dict[str, dict] = {}
    for label, name in enumerate(class_names):
        for index in range(config.videos_per_class):
            video = render_video(config, label, index)
            key = video_id(name, index)
            write_video(join(root_uri, f"{key}.avi"), video.frames, fps=FPS, codec=CODEC, storage=storage)
            annotations[key] = {
                "numf": int(config.frames),
                "label": int(label),
                "annotations": [
                    {
                        "label": int(label),
                        "sf": int(video.sf),
                        "ef": int(config.frames),
                        "boxes": np.ascontiguousarray(boxes, dtype=np.int32),
                    }
                    for boxes in (video.boxes, video.other_actor_boxes)
                    if len(boxes)
                ],
            }
    for relative, text in split_texts.items():
        write_text(join(root_uri, relative), text, storage)
    buffer = io.BytesIO()
    pickle.dump(annotations, buffer, protocol=2)
    write_bytes(join(root_uri, ANNOTATIONS), buffer.getvalue(), storage)

    summary = _summary(root_uri, config, generated=True)
    write_text(
        join(root_uri, MARKER),
        json.dumps(
            {
                "format": _FORMAT_VERSION,
                "digest": digest,
                "config": config.model_dump(mode="json"),
                "class_names": list(class_names),
                "splits": {str(k): list(v) for k, v in summary.splits.items()},
                "files": new_files[:-1],
            },
            indent=1,
        ),
        storage,
    )
    return summary
