"""The oracle baseline renders every ground-truth tube of the video (issue 26).

Issue 26 found that the oracle could take the video's *first* tube instead of the longest one
unnoticed. Since issue 21 the promise of ``reference_attention("oracle", ...)`` is: every tube
of the video is rendered — each tube's own oracle map (its box's cell coverage, normalised),
summed and normalised per step, so a step with one actor shows that actor's map and a step with
two splits the attention between them. Checked with two tubes of different lengths in both orders:
whichever comes first, every tube's frames are attended and the maps are the same.
"""

from __future__ import annotations

import numpy as np
import pytest

from videolstm.config import LocalizationConfig
from videolstm.data.datasets.ucf101_24 import Tube
from videolstm.evaluation.calibration import reference_attention

FRAMES, SIZE, GRID = 20, (64, 64), (4, 4)  # each grid cell is 16×16 pixels


def _tube(first: int, last: int, box: tuple[float, float, float, float]) -> Tube:
    frames = np.arange(first, last)
    return Tube(label=0, frames=frames, boxes=np.tile(np.asarray(box, dtype=np.float64), (len(frames), 1)))


SHORT = _tube(0, 8, (0.0, 0.0, 16.0, 16.0))  # frames 0..7, the top-left cell
LONG = _tube(6, 18, (48.0, 48.0, 64.0, 64.0))  # frames 6..17, the bottom-right cell


def _oracle(tubes):
    return reference_attention("oracle", FRAMES, GRID, LocalizationConfig(), ground_truth=tubes, frame_size=SIZE)


@pytest.mark.parametrize("tubes", [(SHORT, LONG), (LONG, SHORT)], ids=["short-first", "long-first"])
def test_the_oracle_renders_every_tube_whatever_its_position(tubes):
    maps = _oracle(tubes)
    assert maps.shape == (FRAMES, *GRID)
    attended = np.flatnonzero(maps.sum(axis=(1, 2)) > 0)
    np.testing.assert_array_equal(attended, np.arange(0, 18))  # the union of both tubes' frames
    np.testing.assert_allclose(maps[0:6, 0, 0], 1.0)  # only the short tube: all its mass in its cell
    np.testing.assert_allclose(maps[8:18, 3, 3], 1.0)  # only the long tube
    np.testing.assert_allclose(maps[6:8, 0, 0], 0.5)  # both: the attention split between the actors
    np.testing.assert_allclose(maps[6:8, 3, 3], 0.5)
    np.testing.assert_allclose(maps[attended].sum(axis=(1, 2)), 1.0)  # a distribution per attended step


def test_the_order_of_the_tubes_does_not_matter():
    np.testing.assert_array_equal(_oracle((SHORT, LONG)), _oracle((LONG, SHORT)))


def test_one_tube_gives_its_own_oracle_map():
    maps = _oracle((LONG,))
    np.testing.assert_array_equal(np.flatnonzero(maps.sum(axis=(1, 2)) > 0), LONG.frames)
    np.testing.assert_allclose(maps[LONG.frames, 3, 3], 1.0)
