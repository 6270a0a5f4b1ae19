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
)
from videolstm.data.video import decode_video

SMALL = SyntheticConfig(
    num_classes=5, videos_per_class=6, frames=12, height=64, width=64, distractors=3, late_start_fraction=0.34, seed=3
)


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
    for video_id, (tube,) in tubes.items():
        raw = mine[video_id]["annotations"][0]
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
            changed = (np.abs(np.diff(frames, axis=0)).max(axis=(0, 3)) > 0)
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
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


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
    errors = [_hue_distance(_hue_of_box(render_video(config, k, i).frames[0], render_video(config, k, i).boxes[0]), k / 8)
              for k in range(8) for i in range(6)]
    assert np.median(errors) > 1 / 16  # no better than random hues (median distance 1/4)
