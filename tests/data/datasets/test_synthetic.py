"""The synthetic action set: UCF101 files and split formats, UCF101-24 annotations, content properties."""

from __future__ import annotations

import hashlib
import io
import json
import pickle
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from videolstm.config import SyntheticConfig
from videolstm.data.datasets.synthetic import (
    CLASS_NAMES,
    generate_synthetic,
    render_video,
    split_groups,
    video_id,
)
from videolstm.data.video import decode_video

SMALL = SyntheticConfig(num_classes=5, videos_per_class=6, frames=12, height=64, width=64, distractors=3, late_start_fraction=0.34, seed=3)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> tuple[Path, object]:
    root = tmp_path_factory.mktemp("synthetic") / "ds"
    summary = generate_synthetic(str(root), SMALL)
    return root, summary


class RestrictedUnpickler(pickle.Unpickler):
    """Only the globals a numpy-2 protocol-2 pickle of int32 arrays needs (what the reader allows)."""

    ALLOWED = {
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),
    }

    def find_class(self, module, name):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed")
        return super().find_class(module, name)


def load_annotations(root: Path) -> dict:
    data = (root / "annotations.pkl").read_bytes()
    assert data[:2] == b"\x80\x02", "annotations.pkl must be pickle protocol 2"
    return RestrictedUnpickler(io.BytesIO(data)).load()


def read_lines(path: Path) -> list[str]:
    raw = path.read_bytes()
    assert raw.endswith(b"\r\n") and raw.count(b"\r\n") == raw.count(b"\n"), f"{path.name}: every line must end in CRLF"
    return raw.decode().split("\r\n")[:-1]


# ---------------------------------------------------------------------------------------------
# Files and formats


def test_files_and_split_lists_in_the_official_formats(dataset):
    root, summary = dataset
    class_ind = [line.split(" ") for line in read_lines(root / "ucfTrainTestlist" / "classInd.txt")]
    assert [(int(i), name) for i, name in class_ind] == [(i + 1, n) for i, n in enumerate(CLASS_NAMES[:5])]
    assert summary.class_names == CLASS_NAMES[:5] and summary.num_videos == 30
    label_of = {name: int(i) for i, name in class_ind}
    every_video = {f"{p.parent.name}/{p.name}" for p in root.glob("*/*.avi")}
    assert len(every_video) == 30

    test_sets = []
    for split in (1, 2, 3):
        train = [line.split(" ") for line in read_lines(root / "ucfTrainTestlist" / f"trainlist0{split}.txt")]
        test = read_lines(root / "ucfTrainTestlist" / f"testlist0{split}.txt")
        assert all(len(parts) == 2 for parts in train) and all(" " not in line for line in test)
        for path, label in train:
            cls, name = path.split("/")
            assert name.startswith(f"v_{cls}_g") and name.endswith("_c01.avi")
            assert int(label) == label_of[cls], f"{path}: label {label} but classInd says {label_of[cls]}"
        train_paths = {p for p, _ in train}
        assert train_paths.isdisjoint(test) and train_paths | set(test) == every_video
        assert summary.splits[split] == (len(train_paths), len(test))
        # groups, not single videos, are held out: each test group is absent from the train list
        test_groups = {name.split("_")[-2] for name in test}
        assert not any(p.split("_")[-2] in test_groups for p in train_paths)
        assert len(test) == 5 * round(SMALL.test_fraction * 6)
        test_sets.append(frozenset(test))
    assert len(set(test_sets)) == 3, "the three splits must hold out different groups"


def test_split_groups_cover_ucf_like_scheme():
    assert [split_groups(15, 1 / 3, k) for k in (1, 2, 3)] == [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9], [10, 11, 12, 13, 14]]
    assert split_groups(3, 0.9, 1) == [0, 1]  # always at least one training group
    with pytest.raises(ValueError, match="split must be"):
        split_groups(15, 1 / 3, 4)


def test_annotations_pickle_layout_and_boxes_inside_frames(dataset):
    root, _ = dataset
    annotations = load_annotations(root)
    videos = {f"{p.parent.name}/{p.stem}" for p in root.glob("*/*.avi")}
    assert set(annotations) == videos
    late = 0
    for key, entry in annotations.items():
        cls = key.split("/")[0]
        assert set(entry) == {"numf", "label", "annotations"}
        assert entry["numf"] == SMALL.frames and entry["label"] == CLASS_NAMES.index(cls)
        (tube,) = entry["annotations"]
        assert set(tube) == {"label", "sf", "ef", "boxes"} and tube["label"] == entry["label"]
        assert 0 <= tube["sf"] < tube["ef"] == entry["numf"]
        boxes = tube["boxes"]
        assert isinstance(boxes, np.ndarray) and boxes.dtype == np.int32 and boxes.shape == (tube["ef"] - tube["sf"], 4)
        x, y, w, h = boxes.T
        assert (x >= 0).all() and (y >= 0).all() and (x + w <= SMALL.width).all() and (y + h <= SMALL.height).all()
        assert (w > 0).all() and (h > 0).all()
        late += tube["sf"] > 0
    assert late == 5 * 2  # round(0.34 * 6) = 2 late videos per class


def test_the_ucf101_and_ucf101_24_readers_read_it(dataset):
    """The pipeline's own readers (UCF101 split index, UCF101-24 restricted loader) accept the set."""
    from videolstm.data.datasets import load_index, load_ucf101_24, load_ucf101_24_numf

    root, summary = dataset
    for split in (1, 2, 3):
        table = load_index("synthetic", str(root), split)
        rows = table.to_pylist()
        assert all(r["status"] == "ok" for r in rows)
        assert sum(r["subset"] == "test" for r in rows) == summary.splits[split][1]
        assert all(r["class_name"] == CLASS_NAMES[r["label"]] for r in rows)
    tubes = load_ucf101_24(str(root / "annotations.pkl"))
    assert set(load_ucf101_24_numf(str(root / "annotations.pkl")).values()) == {SMALL.frames}
    mine = load_annotations(root)
    for vid, (tube,) in tubes.items():
        raw = mine[vid]["annotations"][0]
        assert tube.label == raw["label"] and tube.frames[0] == raw["sf"] and tube.frames[-1] == raw["ef"] - 1
        x, y, w, h = raw["boxes"].T.astype(float)
        assert np.array_equal(tube.boxes, np.stack([x, y, x + w, y + h], axis=1))


def test_decoded_video_has_the_configured_count_and_size(dataset):
    root, _ = dataset
    frames = decode_video(str(root / "MoveLeft" / "v_MoveLeft_g03_c01.avi"))
    assert frames.shape == (SMALL.frames, SMALL.height, SMALL.width, 3) and frames.dtype == np.uint8
    rendered = render_video(SMALL, CLASS_NAMES.index("MoveLeft"), 2).frames
    assert np.abs(frames.astype(int) - rendered).mean() < 10  # MJPG is lossy (more so on saturated colours)


def test_boxes_sit_on_the_moving_object_in_the_decoded_video(dataset):
    """Frame differences well above the noise lie in the union of the boxes at t and t+1."""
    root, _ = dataset
    annotations = load_annotations(root)
    strong_inside, density_ratio = [], []
    for key in sorted(annotations):
        frames = decode_video(str(root / f"{key}.avi")).astype(np.float32)
        tube = annotations[key]["annotations"][0]
        for t in range(tube["sf"], tube["ef"] - 1):
            energy = np.abs(frames[t + 1] - frames[t]).mean(axis=2)
            inside = np.zeros(energy.shape, bool)
            for x, y, w, h in tube["boxes"][t - tube["sf"] : t - tube["sf"] + 2]:
                inside[y : y + h, x : x + w] = True
            strong = energy > 25  # noise std 6 per channel: |diff| averaged over RGB is ~5 sigma here
            strong_inside.append(strong[inside].sum() / max(strong.sum(), 1))
            density_ratio.append(energy[inside].mean() / energy[~inside].mean())
    # measured: medians 0.97 and 7.7 (0.0 and 0.7 with boxes shifted by 20 px); boxes cover ~15-25% of the frame
    assert np.median(strong_inside) > 0.8 and np.percentile(strong_inside, 10) > 0.6
    assert np.median(density_ratio) > 3


def test_without_noise_all_change_is_the_actor_and_distractors_are_static():
    config = SMALL.model_copy(update={"noise": 0.0, "frames": 16})
    for class_index in range(config.num_classes):
        for video_index in range(config.videos_per_class):
            video = render_video(config, class_index, video_index)
            frames = video.frames.astype(np.int16)
            actor_area = np.zeros(frames.shape[1:3], bool)
            for x, y, w, h in video.boxes:
                actor_area[y : y + h, x : x + w] = True
            changed = np.abs(np.diff(frames, axis=0)).max(axis=(0, 3)) > 0
            assert not (changed & ~actor_area).any(), "something outside the actor's path changed"
            assert changed.any(), "the actor must move"
            # before the actor appears nothing changes at all
            assert (np.diff(frames[: video.sf], axis=0) == 0).all()
            # distractors (away from the actor's path) are pixel-identical in every frame
            for x, y, w, h in video.distractor_boxes:
                patch = frames[:, y : y + h, x : x + w]
                if not actor_area[y : y + h, x : x + w].any():
                    assert (patch == patch[0]).all()
            assert len(video.distractor_boxes) == config.distractors


def test_motion_patterns_follow_their_class():
    config = SyntheticConfig(num_classes=12, videos_per_class=4, frames=24, height=64, width=80, noise=0)

    def centres(name, video_index):
        boxes = render_video(config, CLASS_NAMES.index(name), video_index).boxes.astype(float)
        return boxes[:, 0] + boxes[:, 2] / 2, boxes[:, 1] + boxes[:, 3] / 2

    def signed_turn(cx, cy):  # > 0: clockwise on screen (image y points down)
        dx, dy = cx - cx.mean(), cy - cy.mean()
        return float(np.sum(dx[:-1] * np.diff(cy) - dy[:-1] * np.diff(cx)))

    for v in range(4):
        cx, cy = centres("MoveRight", v)
        assert (np.diff(cx) >= 0).all() and cx[-1] - cx[0] > 10 and np.ptp(cy) == 0
        cx, cy = centres("MoveUp", v)
        assert (np.diff(cy) <= 0).all() and cy[0] - cy[-1] > 10 and np.ptp(cx) == 0
        assert signed_turn(*centres("CircleClockwise", v)) > 0
        assert signed_turn(*centres("CircleCounterClockwise", v)) < 0
        cx, cy = centres("ShakeHorizontal", v)
        assert np.ptp(cy) == 0 and np.sum(np.diff(np.sign(np.diff(cx))) != 0) >= 4  # several reversals
        cx, cy = centres("ZigZag", v)
        assert cy[-1] > cy[0] and np.sum(np.diff(np.sign(np.diff(cx))) != 0) >= 2


def test_every_class_keeps_the_actor_inside_the_frame_in_small_frames():
    config = SyntheticConfig(num_classes=12, videos_per_class=5, frames=40, height=32, width=48, actor_size=0.4, noise=0)
    for class_index in range(12):
        for video_index in range(5):
            video = render_video(config, class_index, video_index)
            x, y, w, h = video.boxes.T
            assert (x >= 0).all() and (y >= 0).all() and (x + w <= 48).all() and (y + h <= 32).all()
            assert len(np.unique(video.boxes[:, :2], axis=0)) > 1


def test_a_single_frame_does_not_reveal_the_class():
    """Colour statistics of one frame are independent of the class (one-way ANOVA, nearest centroid)."""
    config = SyntheticConfig(num_classes=8, videos_per_class=20, frames=8, height=48, width=48)
    features, labels = [], []
    for class_index in range(8):
        for video_index in range(20):
            frame = render_video(config, class_index, video_index).frames[0].reshape(-1, 3).astype(float)
            features.append(np.concatenate([frame.mean(0), frame.std(0)]))
            labels.append(class_index)
    features, labels = np.array(features), np.array(labels)
    for channel in range(3):
        p_value = stats.f_oneway(*[features[labels == c, channel] for c in range(8)]).pvalue
        assert p_value > 0.001, f"mean colour of channel {channel} differs between classes (p={p_value:.2g})"
    # leave-one-out nearest class centroid on standardized features: no better than chance (1/8)
    z = (features - features.mean(0)) / features.std(0)
    correct = 0
    for i in range(len(z)):
        keep = np.arange(len(z)) != i
        centroids = np.stack([z[keep & (labels == c)].mean(0) for c in range(8)])
        correct += int(np.argmin(((centroids - z[i]) ** 2).sum(1)) == labels[i])
    assert correct / len(z) < 0.25


def test_actor_and_distractors_share_one_appearance_distribution():
    config = SyntheticConfig(num_classes=4, videos_per_class=25, frames=8, height=64, width=64, noise=0)
    actor_sizes, distractor_sizes = [], []
    for class_index in range(4):
        for video_index in range(25):
            video = render_video(config, class_index, video_index)
            actor_sizes.append(video.boxes[0, 2:])
            distractor_sizes.extend(video.distractor_boxes[:, 2:])
    actor_sizes, distractor_sizes = np.array(actor_sizes), np.array(distractor_sizes)
    for dim in range(2):
        assert stats.ks_2samp(actor_sizes[:, dim], distractor_sizes[:, dim]).pvalue > 0.001


# ---------------------------------------------------------------------------------------------
# Determinism and idempotence


def tree_digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


def test_generation_is_deterministic_and_depends_on_the_seed(tmp_path):
    config = SMALL.model_copy(update={"num_classes": 2, "videos_per_class": 3})
    generate_synthetic(str(tmp_path / "a"), config)
    generate_synthetic(str(tmp_path / "b"), config)
    first, second = tree_digest(tmp_path / "a"), tree_digest(tmp_path / "b")
    assert first == second and len(first) == 2 * 3 + 7 + 2
    other = render_video(config.model_copy(update={"seed": 4}), 0, 0).frames
    assert not np.array_equal(other, render_video(config, 0, 0).frames)


def test_existing_dataset_is_reused_and_a_new_config_replaces_it(tmp_path):
    root = tmp_path / "ds"
    config = SMALL.model_copy(update={"num_classes": 3, "videos_per_class": 3})
    assert generate_synthetic(str(root), config).generated
    marker = json.loads((root / "synthetic.json").read_text())
    assert marker["digest"] == config.digest()
    before = {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}
    again = generate_synthetic(f"file://{root}", config)
    assert not again.generated and again.num_videos == 9
    assert before == {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}

    # an incomplete dataset (a video deleted) is regenerated
    (root / "MoveLeft" / "v_MoveLeft_g02_c01.avi").unlink()
    assert generate_synthetic(str(root), config).generated
    assert (root / "MoveLeft" / "v_MoveLeft_g02_c01.avi").is_file()

    # a different config: rewritten, and files of the old dataset that no longer belong are removed
    smaller = config.model_copy(update={"num_classes": 2})
    summary = generate_synthetic(str(root), smaller)
    assert summary.generated and summary.class_names == CLASS_NAMES[:2]
    assert not list((root / "MoveUp").glob("*.avi"))
    assert len(list(root.glob("*/*.avi"))) == 6
    assert json.loads((root / "synthetic.json").read_text())["digest"] == smaller.digest()


def test_generates_through_a_remote_filesystem():
    import fsspec

    root = "memory://videolstm-test-synthetic/ds"
    config = SMALL.model_copy(update={"num_classes": 2, "videos_per_class": 3, "frames": 8})
    try:
        assert generate_synthetic(root, config).generated
        frames = decode_video(f"{root}/MoveRight/v_MoveRight_g01_c01.avi")
        assert frames.shape == (8, 64, 64, 3)
        assert not generate_synthetic(root, config).generated
    finally:
        fsspec.filesystem("memory").rm("/videolstm-test-synthetic", recursive=True)


def test_default_config_generates_the_documented_embedded_set(tmp_path):
    defaults = SyntheticConfig()
    summary = generate_synthetic(str(tmp_path / "default"), defaults)
    assert summary.num_videos == defaults.num_classes * defaults.videos_per_class
    assert summary.frames == defaults.frames and (summary.height, summary.width) == (defaults.height, defaults.width)


def _hue_of_box(frame: np.ndarray, box) -> float:
    """Hue (0..1) of the most saturated quarter of the pixels inside box (x, y, w, h)."""
    import colorsys

    x, y, w, h = (int(v) for v in box)
    pixels = frame[y : y + h, x : x + w].reshape(-1, 3).astype(float) / 255
    hsv = np.array([colorsys.rgb_to_hsv(*p) for p in pixels])
    top = hsv[np.argsort(hsv[:, 1])[-max(1, len(hsv) // 4) :]]
    angles = 2 * np.pi * top[:, 0]
    return float(np.mod(np.arctan2(np.sin(angles).mean(), np.cos(angles).mean()) / (2 * np.pi), 1.0))


def _hue_distance(a: float, b: float) -> float:
    d = abs(a - b) % 1.0
    return min(d, 1 - d)


def test_actor_wears_its_class_style_while_distractors_wear_random_classes_styles():
    config = SyntheticConfig(num_classes=8, videos_per_class=6, frames=8, noise=0.0, distractors=3, appearance_cue=1.0)
    actor_errors, distractor_classes = [], []
    for class_index in range(8):
        for video in range(6):
            v = render_video(config, class_index, video)
            actor_errors.append(_hue_distance(_hue_of_box(v.frames[0], v.boxes[0]), class_index / 8))
            for box in v.distractor_boxes:
                hue = _hue_of_box(v.frames[0], box)
                distractor_classes.append(int(np.argmin([_hue_distance(hue, k / 8) for k in range(8)])))
    # the actor's hue sits within the style jitter (±0.15 of the 1/8 spacing) of its class hue
    assert np.percentile(actor_errors, 90) < 0.5 / 8
    # distractors carry every class's style, so a frame offers several candidate classes
    counts = np.bincount(distractor_classes, minlength=8)
    assert counts.min() >= 5 and counts.max() <= 4 * counts.min(), counts


def test_without_appearance_cue_the_actor_colour_does_not_follow_its_class():
    config = SyntheticConfig(num_classes=8, videos_per_class=6, frames=8, noise=0.0, appearance_cue=0.0)
    errors = [_hue_distance(_hue_of_box(render_video(config, k, i).frames[0], render_video(config, k, i).boxes[0]), k / 8) for k in range(8) for i in range(6)]
    assert np.median(errors) > 1 / 16  # no better than random hues (median distance 1/4)


# ---------------------------------------------------------------------------------------------
# The robustness knobs (issue 13): each a config field whose default is the embedded set


def _content_digest(config: SyntheticConfig, videos) -> str:
    h = hashlib.sha256()
    for k in range(config.num_classes):
        for i in videos:
            v = render_video(config, k, i)
            for a in (v.frames, v.boxes, np.int64(v.sf), v.distractor_boxes):
                h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def test_the_embedded_default_set_is_unchanged_byte_for_byte_by_the_new_knobs():
    # digests of the rendered frames, boxes, sf and distractor boxes, taken before the knobs existed (main 3a28e76)
    defaults = SyntheticConfig()
    assert defaults.digest() == "56d139a50666"  # so its dataset folder (keyed by the digest) is reused too
    assert _content_digest(defaults, (0, 9, 17)) == "92685fdcc26adf0be867833b6c091e1ddbe7453d125595b49db077935fcdf709"
    other = SyntheticConfig(
        late_start_fraction=0.5, appearance_cue=0.5, height=96, width=128, frames=12, videos_per_class=4, num_classes=12, distractors=2, noise=3
    )
    assert _content_digest(other, range(4)) == "bcace0eedcf4d57d8b1daabba402b69d069aab5ded65ee0cf560d0c33d1c54b6"
    # a knob away from its default is part of the digest
    digests = {SyntheticConfig(**knob).digest() for knob in ({}, {"moving_distractors": 1}, {"camera_jitter": 0.01}, {"background_clutter": 0.2})}
    assert len(digests) == 4


def test_knob_values_that_cannot_be_rendered_are_refused_with_the_fix():
    with pytest.raises(ValueError, match="moving_distractors .* must not exceed distractors"):
        SyntheticConfig(distractors=1, moving_distractors=2)
    # within the config's bounds (camera_jitter <= 0.05, actor_size < 0.6) a frame always has room; beyond them
    # (a config built without validation) the renderer says what to lower
    too_shaky = SyntheticConfig().model_construct(**{**SyntheticConfig().model_dump(), "height": 32, "width": 32, "actor_size": 0.5, "camera_jitter": 0.2})
    with pytest.raises(ValueError, match="lower camera_jitter or actor_size"):
        render_video(too_shaky, 0, 0)


def test_moving_distractors_wander_while_the_static_ones_keep_their_places():
    base = SyntheticConfig(num_classes=4, videos_per_class=3, frames=24, height=72, width=96, distractors=3, noise=0.0)
    moving = base.model_copy(update={"moving_distractors": 2})
    for class_index in range(4):
        for video_index in range(3):
            still, video = render_video(base, class_index, video_index), render_video(moving, class_index, video_index)
            np.testing.assert_array_equal(video.boxes, still.boxes)  # the actor is the same
            np.testing.assert_array_equal(video.distractor_boxes, still.distractor_boxes[2:])  # so are the static ones
            assert video.moving_boxes.shape == (2, 24, 4)
            frames = video.frames.astype(np.int16)
            area = np.zeros(frames.shape[1:3], bool)  # every pixel the actor or a mover ever covers
            for x, y, w, h in np.concatenate([video.boxes, video.moving_boxes.reshape(-1, 4)]):
                area[y : y + h, x : x + w] = True
            changed = np.abs(np.diff(frames, axis=0)).max(axis=(0, 3)) > 0
            assert not (changed & ~area).any(), "only the actor and the moving distractors change"
            for track in video.moving_boxes:
                x, y, w, h = track.T
                assert (x >= 0).all() and (y >= 0).all() and (x + w <= 96).all() and (y + h <= 72).all()
                extent = max(np.ptp(x) / (96 - w[0]), np.ptp(y) / (72 - h[0]))
                assert 0.25 <= extent <= 0.85  # they move about as far as the actors do
                # no class pattern: the path is neither a straight line nor an oscillation in place
                step = np.diff(track[:, :2].astype(float), axis=0)
                assert np.linalg.matrix_rank(track[:, :2] - track[0, :2]) == 2 or np.ptp(x) == 0 or np.ptp(y) == 0
                assert np.abs(step).max() <= 0.5 * max(96, 72)


def test_camera_jitter_shifts_the_whole_view_and_the_boxes_follow_the_actor():
    config = SyntheticConfig(
        num_classes=3, videos_per_class=3, frames=20, height=90, width=120, distractors=2, noise=0.0, camera_jitter=0.02, late_start_fraction=0.5
    )
    std = 0.02 * 90
    shifts = []
    for class_index in range(3):
        for video_index in range(2):
            video = render_video(config, class_index, video_index)
            frames, shift, sf = video.frames.astype(np.int16), video.camera_shift, video.sf
            shifts.append(shift)
            x, y, w, h = video.boxes.T
            assert (x >= 0).all() and (y >= 0).all() and (x + w <= 120).all() and (y + h <= 90).all()
            # the actor's middle row (always inside its mask) reads the same wherever the box says it is
            rows = [frames[t, y[t - sf] + h[0] // 2, x[t - sf] : x[t - sf] + w[0]] for t in range(sf, 20)]
            assert all((row == rows[0]).all() for row in rows)
            # away from the actor the frame is frame 0 moved by the change of view (the scene itself is still)
            for t in range(1, 20):
                dx, dy = shift[t] - shift[0]
                actor_t = np.zeros((90, 120), bool)
                actor_0 = np.zeros((90, 120), bool)
                if t >= sf:
                    actor_t[y[t - sf] : y[t - sf] + h[0], x[t - sf] : x[t - sf] + w[0]] = True
                if sf == 0:
                    actor_0[y[0] : y[0] + h[0], x[0] : x[0] + w[0]] = True
                ys, xs = np.mgrid[0:90, 0:120]
                src_y, src_x = ys + dy, xs + dx
                ok = (src_y >= 0) & (src_y < 90) & (src_x >= 0) & (src_x < 120) & ~actor_t
                ok &= ~actor_0[np.clip(src_y, 0, 89), np.clip(src_x, 0, 119)]
                assert (frames[t][ok] == frames[0][src_y[ok], src_x[ok]]).all()
    shifts = np.concatenate(shifts).astype(float)
    assert 0.6 * std < shifts.std() < 1.4 * std and np.abs(shifts).max() <= np.ceil(3 * std)


def test_background_clutter_covers_about_its_share_of_the_background():
    base = SyntheticConfig(num_classes=2, videos_per_class=3, frames=8, height=96, width=128, distractors=2, noise=0.0)
    for share in (0.2, 0.5):
        cluttered = base.model_copy(update={"background_clutter": share})
        for class_index in range(2):
            for video_index in range(3):
                plain, busy = render_video(base, class_index, video_index), render_video(cluttered, class_index, video_index)
                np.testing.assert_array_equal(busy.boxes, plain.boxes)  # everything else as without clutter
                objects = np.zeros((96, 128), bool)
                for x, y, w, h in np.concatenate([busy.boxes, busy.distractor_boxes]):
                    objects[y : y + h, x : x + w] = True
                changed = (busy.frames[0] != plain.frames[0]).any(axis=-1) & ~objects
                covered = changed.sum() / (~objects).sum()
                # patches are drawn until `share` of the canvas is covered (a patch of colour equal to the
                # background it covers would not count as changed; the last patch overshoots a little)
                assert share - 0.1 < covered < share + 0.15, (share, covered)


def test_two_actors_of_one_class_each_get_a_tube_and_the_default_set_keeps_its_digest(tmp_path):
    assert SyntheticConfig(actors=1).digest() == "56d139a50666"  # the default leaves the embedded set's folder
    assert SyntheticConfig(actors=2).digest() != SyntheticConfig().digest()
    one = SyntheticConfig(num_classes=2, videos_per_class=3, frames=12, height=96, width=128, distractors=1, noise=0.0, late_start_fraction=0.5)
    two = one.model_copy(update={"actors": 2})
    for video_index in range(3):
        a, b = render_video(one, 1, video_index), render_video(two, 1, video_index)
        np.testing.assert_array_equal(a.boxes, b.boxes)  # the first actor is where it was
        assert a.sf == b.sf and b.other_actor_boxes.shape == b.boxes.shape and a.other_actor_boxes.shape == (0, 4)
        for t in range(len(b.boxes)):  # kept apart: no frame where the two boxes overlap
            (x1, y1, w1, h1), (x2, y2, w2, h2) = b.boxes[t], b.other_actor_boxes[t]
            assert x1 + w1 <= x2 or x2 + w2 <= x1 or y1 + h1 <= y2 or y2 + h2 <= y1
        # without noise, the pixels that differ from the one-actor video lie in the second actor's boxes only
        differ = np.any(a.frames != b.frames, axis=-1)
        inside = np.zeros_like(differ)
        for t, (x, y, w, h) in enumerate(b.other_actor_boxes):
            inside[b.sf + t, y : y + h, x : x + w] = True
        assert differ.any() and not (differ & ~inside).any()
        # the same motion pattern: MoveLeft (class 1) moves both actors left
        assert b.other_actor_boxes[-1, 0] < b.other_actor_boxes[0, 0]
    generate_synthetic(str(tmp_path), two)
    annotations = pickle.loads((tmp_path / "annotations.pkl").read_bytes())
    entry = annotations[video_id(CLASS_NAMES[0], 0)]
    assert [t["label"] for t in entry["annotations"]] == [0, 0] and len({t["boxes"].tobytes() for t in entry["annotations"]}) == 2
