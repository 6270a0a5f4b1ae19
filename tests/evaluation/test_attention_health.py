"""videolstm.evaluation.attention_health: entropy and mass-in-box written from their definitions."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tests.pipeline_helpers import one_torch_thread  # noqa: F401  (autouse fixture)
from videolstm.evaluation.attention_health import (
    attention_health,
    box_mass,
    box_mass_chance,
    health_targets,
    normalised_entropy,
    read_health_targets,
    validation_attention_health,
    write_health_targets,
)
from videolstm.evaluation.localization import GroundTruthTube
from videolstm.models import build_model
from videolstm.store import shards
from videolstm.training import snippet_indices

# --------------------------------------------------------------------------------------------
# entropy: H(p) / log(h·w), H(p) = -Σ p log p


def test_uniform_attention_has_normalised_entropy_one_and_a_single_position_zero():
    assert normalised_entropy(np.full((7, 7), 1 / 49)) == pytest.approx(1.0)
    one_hot = np.zeros((7, 7))
    one_hot[3, 5] = 1.0
    assert normalised_entropy(one_hot) == pytest.approx(0.0)


def test_entropy_of_a_hand_computed_distribution():
    # p = (1/2, 1/4, 1/4, 0) on 2 x 2: H = 1/2 log 2 + 2 · 1/4 log 4 = 1.5 log 2; log(h·w) = log 4 = 2 log 2
    assert normalised_entropy(np.array([[0.5, 0.25], [0.25, 0.0]])) == pytest.approx(0.75)
    # two equal positions of 49: log 2 / log 49
    two = np.zeros((7, 7))
    two[0, 0] = two[6, 6] = 0.5
    assert normalised_entropy(two) == pytest.approx(math.log(2) / math.log(49))


def test_entropy_normalises_the_map_first_and_is_nan_without_mass():
    maps = np.stack([np.array([[2.0, 1.0], [1.0, 0.0]]), np.zeros((2, 2))])
    out = normalised_entropy(maps)
    assert out[0] == pytest.approx(0.75) and math.isnan(out[1])
    with pytest.raises(ValueError, match="non-negative"):
        normalised_entropy(-np.ones((2, 2)))


# --------------------------------------------------------------------------------------------
# mass in the box: Σ p_ij |cell_ij ∩ box| / |cell_ij|


def test_mass_in_box_counts_each_cell_by_the_share_of_its_area_inside_the_box():
    # 2 x 2 cells on a 100 x 200 (H x W) frame: cells of 50 x 100
    attention = np.array([[0.4, 0.1], [0.2, 0.3]])
    # box x 0..150, y 0..50: all of cell (0, 0), half of cell (0, 1) → 0.4 + 0.5 · 0.1
    assert box_mass(attention, np.array([0, 0, 150, 50]), (100, 200)) == pytest.approx(0.45)
    # the whole frame holds all the mass; a box outside the frame none
    assert box_mass(attention, np.array([0, 0, 200, 100]), (100, 200)) == pytest.approx(1.0)
    assert box_mass(attention, np.array([300, 0, 400, 50]), (100, 200)) == pytest.approx(0.0)


def test_uniform_attention_puts_the_boxs_share_of_the_frame_inside_it_the_chance_level():
    box = np.array([12.0, 30.0, 52.0, 70.0])  # 40 x 40 on 120 x 160
    uniform = np.full((7, 7), 1 / 49)
    assert box_mass(uniform, box, (120, 160)) == pytest.approx(1600 / (120 * 160))
    assert box_mass_chance(box, (120, 160)) == pytest.approx(1600 / (120 * 160))
    # in fractions of the frame, the same
    assert box_mass(uniform, box / [160, 120, 160, 120], (1, 1)) == pytest.approx(1600 / (120 * 160))


def test_mass_in_box_is_nan_without_a_box_and_broadcasts_over_steps():
    maps = np.full((3, 2, 2), 0.25)
    boxes = np.array([[0, 0, 1, 1], [np.nan] * 4, [0, 0, 0.5, 1]])
    out = box_mass(maps, boxes, (1, 1))
    assert out[0] == pytest.approx(1.0) and math.isnan(out[1]) and out[2] == pytest.approx(0.5)


# --------------------------------------------------------------------------------------------
# over videos


def test_health_averages_entropy_over_every_step_and_mass_over_steps_with_a_box():
    focused = np.zeros((4, 2, 2))
    focused[:, 0, 0] = 1.0
    uniform = np.full((2, 2, 2), 0.25)
    targets = {"a": {"frames": np.array([11, 12]), "boxes": np.tile([0.0, 0.0, 0.5, 0.5], (2, 1))}}
    metrics = attention_health({"a": focused, "b": uniform}, {"a": np.arange(10, 14), "b": np.arange(2)}, targets)
    assert metrics["val/attention_entropy"] == pytest.approx((4 * 0.0 + 2 * 1.0) / 6)
    assert metrics["val/attention_in_box"] == pytest.approx(1.0)  # frames 11, 12 of a only
    assert metrics["val/attention_in_box_chance"] == pytest.approx(0.25)
    assert set(attention_health({"b": uniform}, {"b": np.arange(2)}, {})) == {"val/attention_entropy"}


def test_targets_are_the_longest_tube_in_fractions_of_the_frame_and_round_trip_through_storage(tmp_path):
    tubes = {
        "v": [
            GroundTruthTube(0, np.arange(3, 5), np.array([[16.0, 12.0, 48.0, 60.0], [20.0, 12.0, 52.0, 60.0]])),
            GroundTruthTube(0, np.arange(0, 1), np.array([[0.0, 0.0, 1.0, 1.0]])),
        ],
        "no_size": [GroundTruthTube(0, np.arange(1), np.ones((1, 4)))],
    }
    targets = health_targets(tubes, {"v": (120, 160)})
    assert list(targets) == ["v"] and targets["v"]["frames"] == [3, 4]
    np.testing.assert_allclose(targets["v"]["boxes"][0], [0.1, 0.1, 0.3, 0.5])
    read = read_health_targets(write_health_targets(str(tmp_path / "t.json"), targets))
    np.testing.assert_array_equal(read["v"]["frames"], [3, 4])
    np.testing.assert_allclose(read["v"]["boxes"], np.array(targets["v"]["boxes"]))
    (tmp_path / "bad.json").write_text('{"v": {"frames": [1]}}')
    with pytest.raises(ValueError, match="bad.json"):
        read_health_targets(str(tmp_path / "bad.json"))


def test_validation_health_runs_the_model_on_the_centre_snippet_of_each_video(tmp_path):
    torch.manual_seed(0)
    model = build_model("convalstm", 3, input_channels=4, spatial_size=(7, 7), hidden_channels=4, fc_dim=8)
    rng = np.random.default_rng(0)
    rows = []
    for i, frames in enumerate((12, 5)):  # the second is shorter than the snippet: padded with its last frame
        uri = str(tmp_path / f"v{i}.parquet")
        shards.write_shard(uri, {"video_id": f"v{i}", "rgb_pool5": rng.standard_normal((frames, 4, 7, 7)).astype(np.float32)})
        rows.append({"video_id": f"v{i}", "shard": uri, "label": i})
    targets = {"v0": {"frames": np.arange(12), "boxes": np.tile([0.0, 0.0, 0.5, 0.5], (12, 1))}}
    model.train()
    metrics = validation_attention_health(model, rows, "rgb_pool5", None, 8, targets)
    assert model.training  # left as it was
    # the same numbers by hand: the model's maps on snippet_indices(T, 8, None)
    model.eval()
    maps, steps = {}, {}
    for row, frames in zip(rows, (12, 5)):
        idx = snippet_indices(frames, 8, None)
        x = torch.from_numpy(shards.read_shard(row["shard"])["rgb_pool5"][idx])[None]
        with torch.no_grad():
            maps[row["video_id"]] = model(x).attention[0].numpy()
        steps[row["video_id"]] = idx
    expected = attention_health(maps, steps, targets)
    assert metrics == pytest.approx(expected)
    assert 0 < metrics["val/attention_entropy"] <= 1 and 0 <= metrics["val/attention_in_box"] <= 1
    assert (
        validation_attention_health(
            build_model("convlstm", 3, input_channels=4, spatial_size=(7, 7), hidden_channels=4, fc_dim=8), rows, "rgb_pool5", None, 8, targets
        )
        == {}
    )
