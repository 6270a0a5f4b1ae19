"""videolstm.attention_guidance: the train-time oracle's maps and the motion prior (issue 20), by hand."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from tests.pipeline_helpers import one_torch_thread  # noqa: F401 (autouse fixture)
from videolstm.attention_guidance import (
    box_targets,
    dump_box_targets,
    oracle_lookup,
    oracle_maps,
    parse_box_targets,
)


def test_oracle_maps_render_the_box_as_cell_coverage_and_steps_without_a_box_as_uniform():
    """A 2×2 grid over the unit frame. Frame 1: box x∈[0, 0.5), y∈[0, 1) covers the left cells
    fully → (0.5, 0; 0.5, 0). Frame 2: x∈[0, 0.25), y∈[0, 0.5) covers half of the top-left cell
    only → (1, 0; 0, 0). Frame 0 (before the tube) and frame 3 (after it): uniform 1/4."""
    tube = {"frames": np.array([1, 2]), "boxes": np.array([[0.0, 0.0, 0.5, 1.0], [0.0, 0.0, 0.25, 0.5]])}
    maps = oracle_maps(np.array([0, 1, 2, 3]), [tube], (2, 2))
    assert maps.dtype == np.float32 and maps.shape == (4, 2, 2)
    np.testing.assert_allclose(maps[0], np.full((2, 2), 0.25))
    np.testing.assert_allclose(maps[1], [[0.5, 0.0], [0.5, 0.0]])
    np.testing.assert_allclose(maps[2], [[1.0, 0.0], [0.0, 0.0]])
    np.testing.assert_allclose(maps[3], np.full((2, 2), 0.25))


def test_oracle_maps_of_two_actors_sum_their_coverage_and_a_video_without_targets_is_uniform():
    """Two tubes at frame 0: the top-left cell (area 1/4 of the frame) and the whole right half
    (2 cells): coverage 1 + 1 + 1 = 3 cells → 1/3 each."""
    a = {"frames": [0], "boxes": [[0.0, 0.0, 0.5, 0.5]]}
    b = {"frames": [0], "boxes": [[0.5, 0.0, 1.0, 1.0]]}
    np.testing.assert_allclose(oracle_maps(np.array([0]), [a, b], (2, 2))[0], [[1 / 3, 1 / 3], [0.0, 1 / 3]], rtol=1e-6)
    lookup = oracle_lookup({"C/v1": [a]}, (2, 2))
    np.testing.assert_allclose(lookup("C/v1", np.array([0]))[0], [[1.0, 0.0], [0.0, 0.0]])
    np.testing.assert_allclose(lookup("C/unannotated", np.array([0, 5])), np.full((2, 2, 2), 0.25))


def test_box_targets_keep_every_tube_in_fractions_of_the_frame_and_round_trip():
    tubes = [SimpleNamespace(frames=np.array([3, 4]), boxes=np.array([[10, 20, 30, 40], [12, 20, 32, 40]])),
             SimpleNamespace(frames=np.array([0]), boxes=np.array([[0, 0, 160, 120]]))]
    targets = box_targets({"C/v": tubes, "C/no-size": tubes, "C/empty": []}, {"C/v": (120, 160), "C/empty": (120, 160)})
    assert set(targets) == {"C/v"}
    assert targets["C/v"][0]["frames"] == [3, 4]  # (x1, y1, x2, y2) / (W, H, W, H), W = 160, H = 120
    np.testing.assert_allclose(targets["C/v"][0]["boxes"], [[0.0625, 1 / 6, 0.1875, 1 / 3], [0.075, 1 / 6, 0.2, 1 / 3]], atol=1e-6)
    assert targets["C/v"][1]["boxes"] == [[0.0, 0.0, 1.0, 1.0]]
    back = parse_box_targets(dump_box_targets(targets))
    np.testing.assert_array_equal(back["C/v"][0]["frames"], [3, 4])
    assert back["C/v"][0]["boxes"].shape == (2, 4)
    with pytest.raises(ValueError, match="bad.json is not an oracle box-target file"):
        parse_box_targets('{"C/v": [{"frames": [1, 2], "boxes": [[0, 0, 1, 1]]}]}', "bad.json")
