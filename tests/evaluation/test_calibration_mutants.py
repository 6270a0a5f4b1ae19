"""The oracle baseline renders the video's longest ground-truth tube (issue 26).

``reference_attention("oracle", ...)``'s promise: it renders the *longest* tube — the one the
frame recall is measured against — not whichever tube comes first in the annotation. Checked
with two non-overlapping tubes in both orders: the oracle's maps are non-zero exactly on the
long tube's frames and put all their mass inside its boxes.
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


SHORT = _tube(0, 4, (0.0, 0.0, 16.0, 16.0))  # frames 0..3, top-left cell
LONG = _tube(6, 18, (48.0, 48.0, 64.0, 64.0))  # frames 6..17, bottom-right cell


@pytest.mark.parametrize("tubes", [(SHORT, LONG), (LONG, SHORT)], ids=["short-first", "long-first"])
def test_the_oracle_renders_the_longest_tube_whatever_its_position(tubes):
    maps = reference_attention("oracle", FRAMES, GRID, LocalizationConfig(), ground_truth=tubes, frame_size=SIZE)
    assert maps.shape == (FRAMES, *GRID)
    attended = np.flatnonzero(maps.sum(axis=(1, 2)) > 0)
    np.testing.assert_array_equal(attended, LONG.frames)
    np.testing.assert_allclose(maps[LONG.frames, 3, 3], 1.0)  # all the mass in the long tube's cell
    assert maps[:, 0, 0].sum() == 0.0  # nothing where only the short tube is
