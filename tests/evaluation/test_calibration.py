"""videolstm.evaluation.calibration: reference maps from their definitions, and the oracle through
the real pipeline (synthetic videos on disk → decode + flow → frame CNN features → a model's
attention= hook → boxes → video mAP) on square and non-square frames."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from tests.pipeline_helpers import one_torch_thread  # noqa: F401  (autouse fixture)
from videolstm.config import FeatureConfig, FlowConfig, LocalizationConfig, SyntheticConfig
from videolstm.data.datasets import load_ucf101_24
from videolstm.data.datasets.synthetic import CLASS_NAMES, generate_synthetic, video_id
from videolstm.data.frames_flow import process_video
from videolstm.data.video import probe_video
from videolstm.evaluation.calibration import (
    BASELINES,
    attention_predictor,
    box_cell_coverage,
    calibrate_localization,
    calibration_markdown,
    centre_prior_attention,
    is_calibration_metric,
    motion_energy_attention,
    oracle_attention,
    reference_attention,
    shard_columns,
    shard_motion_features,
    uniform_attention,
    video_accuracy,
)
from videolstm.evaluation.scoring import video_labels, video_scores
from videolstm.features.backbones import build_frame_cnn
from videolstm.features.extraction import process_video_features
from videolstm.inference import predict_videos
from videolstm.models import build_model
from videolstm.store.manifest import StageDir
from videolstm.training import feature_columns

# --------------------------------------------------------------------------------------------
# the maps, from their definitions


def test_a_box_that_is_exactly_one_cell_covers_that_cell_only():
    # 160 x 120 frame, 4 x 4 grid: cells are 40 px wide and 30 px high; cell (1, 2) is x 80..120, y 30..60
    coverage = box_cell_coverage(np.array([80.0, 30.0, 120.0, 60.0]), (120, 160), (4, 4))
    expected = np.zeros((4, 4))
    expected[1, 2] = 1.0
    np.testing.assert_allclose(coverage, expected)


def test_cell_coverage_is_the_overlap_area_over_the_cell_area_on_a_non_square_frame():
    # box x 20..100, y 15..45 on the 160 x 120 frame, 4 x 4 cells of 40 x 30:
    # along x: cell 0 [0,40) overlaps 20 → .5, cell 1 [40,80) → 1, cell 2 [80,120) overlaps 20 → .5
    # along y: cell 0 [0,30) overlaps 15 → .5, cell 1 [30,60) overlaps 15 → .5
    coverage = box_cell_coverage(np.array([20.0, 15.0, 100.0, 45.0]), (120, 160), (4, 4))
    expected = np.zeros((4, 4))
    expected[:2, :3] = np.outer([0.5, 0.5], [0.5, 1.0, 0.5])
    np.testing.assert_allclose(coverage, expected)
    # Σ coverage × cell area = the box's area (it lies inside the frame)
    assert (coverage * 40 * 30).sum() == pytest.approx(80 * 30)


def test_a_box_reaching_outside_the_frame_covers_only_the_frame_and_a_nan_box_nothing():
    coverage = box_cell_coverage(np.array([[-10.0, -10.0, 5.0, 10.0], [np.nan] * 4]), (20, 20), (2, 2))
    np.testing.assert_allclose(coverage[0], [[0.5, 0.0], [0.0, 0.0]])  # x: 0..5 of cell 0; y: all of cell 0
    np.testing.assert_array_equal(coverage[1], np.zeros((2, 2)))


def test_oracle_maps_sum_to_one_on_annotated_frames_and_are_empty_outside_sf_to_ef_exclusive():
    sf, ef = 2, 5  # annotated frames 2, 3, 4 (ef exclusive)
    frames = np.arange(sf, ef)
    boxes = np.tile([10.0, 10.0, 30.0, 20.0], (ef - sf, 1))
    maps = oracle_attention(7, frames, boxes, (40, 60), (4, 6))
    assert maps.shape == (7, 4, 6)
    np.testing.assert_allclose(maps.sum(axis=(1, 2)), [0, 0, 1, 1, 1, 0, 0])
    # the map is the normalised coverage: cells of 10 x 10, box x 10..30, y 10..20 → cells (1, 1), (1, 2)
    expected = np.zeros((4, 6))
    expected[1, 1:3] = 0.5
    np.testing.assert_allclose(maps[3], expected)


def test_uniform_and_centre_maps_are_distributions_with_the_centre_prior_peaked_in_the_middle():
    uniform = uniform_attention(3, (5, 7))
    np.testing.assert_allclose(uniform, 1 / 35)
    centre = centre_prior_attention(3, (5, 7), sigma=0.25)
    np.testing.assert_allclose(centre.sum(axis=(1, 2)), 1.0)
    assert np.unravel_index(np.argmax(centre[0]), (5, 7)) == (2, 3)
    np.testing.assert_allclose(centre[0], centre[0][::-1, ::-1])  # symmetric about the centre
    # from the definition: cell (i, j) ∝ exp(-((u-.5)² + (v-.5)²) / (2σ²)), u = (j+.5)/7, v = (i+.5)/5
    ratio = centre[0][2, 0] / centre[0][2, 3]
    assert ratio == pytest.approx(math.exp(-((0.5 / 7 - 0.5) ** 2) / (2 * 0.25**2)))
    with pytest.raises(ValueError, match="sigma"):
        centre_prior_attention(1, (2, 2), 0.0)


def test_motion_attention_is_each_steps_feature_energy_normalised():
    # M (T=2, C=2, 2×3): step 0 energies Σ_c M² = [[1+0, 4+0, 0+0], [0+9, 1+1, 0+0]] → / 16; step 1 all zero → uniform
    m = np.zeros((2, 2, 2, 3))
    m[0, 0] = [[1, -2, 0], [0, 1, 0]]
    m[0, 1] = [[0, 0, 0], [3, -1, 0]]
    maps = motion_energy_attention(m)
    np.testing.assert_allclose(maps[0], np.array([[1, 4, 0], [9, 2, 0]]) / 16)
    np.testing.assert_allclose(maps[1], np.full((2, 3), 1 / 6))
    with pytest.raises(ValueError, match=r"\(T, C, h, w\)"):
        motion_energy_attention(m[0])
    with pytest.raises(ValueError, match="needs the video's flow-stream maps"):
        reference_attention("motion", 2, (2, 3), LocalizationConfig())
    with pytest.raises(ValueError, match="the attention is"):
        reference_attention("motion", 2, (3, 2), LocalizationConfig(), motion_features=m)


def test_the_motion_row_scores_the_flow_features_energy_and_is_absent_without_them():
    """Flow maps whose energy is the ground-truth box's coverage make the motion row the oracle;
    flat flow maps make it uniform; no flow maps, no motion row."""
    frames, size, grid = 12, (96, 128), (7, 7)
    frames_idx = np.arange(frames)
    boxes = np.stack([np.array([10.0 + 6 * t, 20.0, 40.0 + 6 * t, 56.0]) for t in frames_idx])
    tube = type("Tube", (), {"label": 0, "frames": frames_idx, "boxes": boxes})()
    oracle = oracle_attention(frames, frames_idx, boxes, size, grid)
    focused = np.sqrt(oracle)[:, None].repeat(3, axis=1) / np.sqrt(3)  # Σ_c M² = the oracle map
    flat = np.ones((frames, 3, *grid))
    probabilities = np.tile([0.9, 0.1], (frames, 1))

    def predict(video, maps):
        return {name: probabilities for name in maps}

    def metrics_with(flow_maps):
        return calibrate_localization(
            predict,
            {"v": uniform_attention(frames, grid)},
            {"v": probabilities},
            {"v": 0},
            {"v": [tube]},
            {"v": size},
            LocalizationConfig(),
            motion_features=flow_maps,
        )

    np.testing.assert_allclose(motion_energy_attention(focused), oracle)
    with_focus = metrics_with(lambda video: focused)
    assert with_focus["loc/motion/mAP_0.2"] == with_focus["loc/oracle/mAP_0.2"] == 1.0
    assert all(with_focus[f"loc/{row}/video_accuracy"] == 1.0 for row in ("learned", *BASELINES))  # class 0 wins
    with_flat = metrics_with(lambda video: flat)
    assert with_flat["loc/motion/mAP_0.2"] == with_flat["loc/uniform/mAP_0.2"] == 0.0
    without = metrics_with(None)
    assert not any(k.startswith("loc/motion/") for k in without) and "loc/oracle/mAP_0.2" in without
    assert metrics_with(lambda video: None) == without


def test_video_accuracy_sums_the_steps_probabilities_before_the_argmax():
    # video a: step argmaxes 0, 0, 1 but the sums are (1.0, 1.4): class 1; video b: a (K,) vector
    scores = {"a": np.array([[0.6, 0.4], [0.4, 0.3], [0.0, 0.7]]), "b": np.array([0.2, 0.8])}
    assert video_accuracy(scores, {"a": 1, "b": 0}) == 0.5
    assert video_accuracy(scores, {"a": 1, "b": 1}) == 1.0
    assert math.isnan(video_accuracy({}, {}))


def test_shard_columns_reads_a_videos_columns_in_one_pass_and_omits_absent_ones(tmp_path):
    from videolstm.store import shards

    rgb, flow = np.arange(24.0).reshape(2, 3, 2, 2), -np.arange(24.0).reshape(2, 3, 2, 2)
    shards.write_shard(str(tmp_path / "a.parquet"), {"rgb_pool5": rgb, "flow_pool5": flow})
    shards.write_shard(str(tmp_path / "b.parquet"), {"rgb_pool5": rgb})
    rows = [{"video_id": "a", "shard": str(tmp_path / "a.parquet")}, {"video_id": "b", "shard": str(tmp_path / "b.parquet")}]
    read = shard_columns(rows, ["rgb_pool5", "flow_pool5", "rgb_pool5"], None)
    got = read("a")
    assert set(got) == {"rgb_pool5", "flow_pool5"}
    np.testing.assert_array_equal(got["flow_pool5"], flow)
    (tmp_path / "a.parquet").unlink()  # the same video again: served from the pass already made
    np.testing.assert_array_equal(read("a")["rgb_pool5"], rgb)
    assert set(read("b")) == {"rgb_pool5"}
    motion = shard_motion_features(rows, read=read)
    assert motion("b") is None
    with pytest.raises(FileNotFoundError):
        motion("a")  # a new pass for a, whose file is gone


def test_calibration_metric_names_and_the_report_table():
    assert is_calibration_metric("loc/oracle/mAP_0.2") and is_calibration_metric("loc/learned/frame_recall_0.5")
    assert not is_calibration_metric("loc/mAP_0.2") and not is_calibration_metric("test/accuracy/MoveLeft")
    rows = [
        {
            "variant": "videolstm",
            "stream": "rgb",
            "seed": s,
            "loc/mAP_0.2": m,
            "loc/learned/mAP_0.2": m + 0.1,
            "loc/oracle/mAP_0.2": 1.0,
            "loc/oracle_video/mAP_0.2": 0.5,
            "loc/uniform/mAP_0.2": 0.0,
            "loc/centre/mAP_0.2": 0.05,
            "loc/motion/mAP_0.2": 0.5 + m,
        }
        for s, m in enumerate((0.2, 0.4))
    ] + [{"variant": "lstm", "stream": "rgb", "seed": 0, "test/accuracy": 0.5}]
    table = calibration_markdown(rows)
    line = next(row for row in table.splitlines() if row.startswith("| videolstm"))
    assert line == ("| videolstm | rgb | 2 | 0.300 ± 0.141 | 0.400 ± 0.141 | 1.000 ± 0.000 | 0.500 ± 0.000 | 0.000 ± 0.000 | 0.050 ± 0.000 | 0.800 ± 0.141 |")
    assert "motion (given class)" in table.splitlines()[2]
    assert "lstm |" not in table.replace("videolstm", "")
    assert calibration_markdown(rows[-1:]) == ""


# --------------------------------------------------------------------------------------------
# the oracle through the real pipeline


def _features_of_synthetic_set(tmp_path, synthetic: SyntheticConfig, flow_size: tuple[int, int]):
    """Write the set, run the real decode+flow and feature extraction per video; return what
    the evaluation stage has: feature rows, annotations, frame sizes."""
    root = str(tmp_path / "set")
    generate_synthetic(root, synthetic)
    annotations = load_ucf101_24(f"{root}/annotations.pkl")
    flow = FlowConfig(method="farneback", height=flow_size[0], width=flow_size[1])
    frames_stage, feature_stage = StageDir(str(tmp_path / "ff")), StageDir(str(tmp_path / "features"))
    torch.manual_seed(0)
    stack = 2
    cnns = {
        "rgb": build_frame_cnn("small", synthetic.num_classes, 3, (4, 8, 8), 16).eval(),
        "flow": build_frame_cnn("small", synthetic.num_classes, 2 * stack, (4, 8, 8), 16).eval(),
    }
    rows, sizes = [], {}
    for label, name in enumerate(CLASS_NAMES[: synthetic.num_classes]):
        for index in range(synthetic.videos_per_class):
            vid = video_id(name, index)
            path = f"{root}/{vid}.avi"
            index_row = {"video_id": vid, "path": path, "label": label, "subset": "test", "fingerprint": vid}
            ff = process_video(index_row, "k", frames_stage, flow)
            assert ff.ok, ff.reason
            feats = process_video_features({**index_row, "shard": ff.shard}, "k", feature_stage, cnns, FeatureConfig(dtype="float32"), stack)
            assert feats.ok, feats.reason
            rows.append({"video_id": vid, "shard": feats.shard, "label": label})
            info = probe_video(path)
            sizes[vid] = (info.height, info.width)
    return rows, annotations, sizes


@pytest.mark.parametrize(
    "frame_size, flow_size",
    [((120, 160), (56, 56)), ((120, 160), (42, 56)), ((160, 120), (56, 56)), ((112, 112), (56, 56))],
    ids=["160x120", "160x120-flow42x56", "120x160-portrait", "112x112"],
)
def test_oracle_attention_localizes_at_map_02_of_at_least_0_9_through_the_real_pipeline(tmp_path, frame_size, flow_size):
    # non-square frames, ≤ 30 frames, no appearance cue, late starts (annotation sf > 0)
    synthetic = SyntheticConfig(
        num_classes=3,
        videos_per_class=3,
        frames=24,
        height=frame_size[0],
        width=frame_size[1],
        distractors=2,
        appearance_cue=0.0,
        late_start_fraction=0.5,
        seed=3,
    )
    rows, annotations, sizes = _features_of_synthetic_set(tmp_path, synthetic, flow_size)
    assert all(size == frame_size for size in sizes.values())
    oracle_rows = []
    for variant in ("alstm", "convalstm", "motion_alstm", "videolstm"):  # every attention variant's hook
        torch.manual_seed(1)
        model = build_model(variant, synthetic.num_classes, input_channels=8, input_dim=16, spatial_size=(7, 7), hidden_channels=4, lstm_hidden=8, fc_dim=8)
        x_column, flow_column = feature_columns(model.input_kind, model.needs_flow, "flow", getattr(model, "flow_kind", "maps"))
        predictions = predict_videos(model, rows, x_column, flow_column, 2, 8, whole_video=True)
        ids = predictions.video_ids
        assert all(predictions.attention[v].shape == (synthetic.frames, 7, 7) for v in ids)
        config = LocalizationConfig()
        out = tmp_path / variant
        metrics = calibrate_localization(
            attention_predictor(model, rows, x_column),
            predictions.attention,
            video_scores(predictions, ids),
            video_labels(predictions, ids),
            annotations,
            sizes,
            config,
            out_dir=out,
            motion_features=shard_motion_features(rows),
        )
        assert metrics["loc/oracle/videos"] == len(rows)
        assert metrics["loc/oracle/mAP_0.2"] >= 0.9 and metrics["loc/oracle/mAP_0.5"] >= 0.5, metrics
        assert metrics["loc/oracle/mAP_0.1"] >= metrics["loc/oracle/mAP_0.2"] >= metrics["loc/oracle/mAP_0.5"]
        oracle_rows.append({k: v for k, v in metrics.items() if k.startswith("loc/oracle") and "video_accuracy" not in k})
        # no information: a whole-frame box has IoU = the actor's share of the frame (< 0.1 here)
        assert metrics["loc/uniform/mAP_0.1"] == 0.0 and metrics["loc/uniform/frame_recall_0.5"] == 0.0
        assert set(json.loads((out / "calibration.json").read_text())) == set(metrics)
        assert {k.split("/")[1] for k in metrics} == {"learned", "oracle_video", *BASELINES}  # motion: from the shards' flow maps
        assert metrics["loc/motion/videos"] == len(rows)
    assert all(row == oracle_rows[0] for row in oracle_rows)  # the oracle ranks by a model-free score: the same for every model


def test_the_oracle_tube_spans_exactly_the_annotated_frames(tmp_path):
    from videolstm.evaluation.localization import localize_video

    synthetic = SyntheticConfig(num_classes=2, videos_per_class=3, frames=16, height=96, width=128, distractors=0, late_start_fraction=1.0, noise=0.0)
    root = str(tmp_path / "set")
    generate_synthetic(root, synthetic)
    annotations = load_ucf101_24(f"{root}/annotations.pkl")
    for tubes in annotations.values():
        tube = tubes[0]
        assert tube.frames[0] > 0  # a late start: sf > 0
        maps = oracle_attention(synthetic.frames, tube.frames, tube.boxes, (96, 128), (7, 7))
        located = localize_video(maps, (96, 128), np.eye(2)[0], LocalizationConfig(), label=1)
        np.testing.assert_array_equal(located.frames, tube.frames)
        assert located.label == 1 and located.score == 0.0
