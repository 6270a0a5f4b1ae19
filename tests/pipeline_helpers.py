"""Small real inputs shared by the stage tests (extraction, features, training, inference).

Import the fixture ``one_torch_thread`` into a test module to make it autouse there.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import torch

from videolstm.data.video import write_video


@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    """Tiny tensors on 2 shared cores: one intra-op thread avoids OpenMP spin-waits (10x faster)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def moving_square_frames(frames: int = 6, size: int = 56, seed: int = 0) -> np.ndarray:
    """uint8 (T, size, size, 3): a textured square moving right by 3 px per frame on a textured background."""
    rng = np.random.default_rng(seed)
    background = rng.integers(40, 90, (size, size, 3), dtype=np.uint8)
    square = rng.integers(150, 250, (16, 16, 3), dtype=np.uint8)
    video = np.repeat(background[None], frames, axis=0)
    for t in range(frames):
        x = 4 + 3 * t
        video[t, 20:36, x : x + 16] = square
    return video


def write_moving_square(uri: str, frames: int = 6, size: int = 56, storage=None) -> np.ndarray:
    """Write the moving-square video as a real MJPG file; returns the frames written."""
    video = moving_square_frames(frames, size)
    write_video(uri, video, storage=storage)
    return video
