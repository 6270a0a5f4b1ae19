"""Test protocol (segments, aggregation, fusion) and the training snippet, against hand computations."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
import torch

from videolstm.models.protocol import (
    aggregate_video_probabilities,
    fuse_probabilities,
    random_snippet_start,
    segment_indices,
    segment_starts,
)


@pytest.mark.parametrize(
    ("num_frames", "num_segments", "length", "want"),
    [
        # the authors' test iterator: avg = (L - 30 + 1) // S, start_j = int(avg / 2 + j * avg)
        (100, 3, 30, [11, 34, 57]),  # avg 71 // 3 = 23: 11.5 → 11, 34.5 → 34, 57.5 → 57
        (130, 5, 30, [10, 30, 50, 70, 90]),  # avg 101 // 5 = 20
        (101, 3, 30, [12, 36, 60]),  # avg 72 // 3 = 24
        (54, 25, 30, list(range(25))),  # avg 1: 0.5 + j → j; the last segment ends at frame 54
        (34, 25, 30, [0] * 25),  # avg 5 // 25 = 0: every segment at 0, counted 25 times
        (30, 25, 30, [0] * 25),
        (20, 25, 30, [0] * 25),  # shorter than a segment: padded with its last frame
        (1, 25, 30, [0] * 25),
        (100, 1, 30, [35]),  # avg 71: int(35.5)
        (99, 1, 30, [35]),  # avg 70
    ],
)
def test_segment_starts_hand_cases(num_frames: int, num_segments: int, length: int, want: list[int]) -> None:
    assert segment_starts(num_frames, num_segments, length) == want


@pytest.mark.parametrize(
    ("num_frames", "num_segments", "length", "want"),
    [
        # evenly spaced (the recipe before the authors'): s_i = round(i·(T − L)/(S − 1)), halves up
        (100, 3, 30, [0, 35, 70]),  # span 70: 0, 35, 70
        (101, 3, 30, [0, 36, 71]),  # span 71: 35.5 → 36
        (36, 25, 30, [0, 1, 2, 3, 4, 5, 6]),  # 7 possible starts < 25 segments: each once (the embedded set)
        (30, 25, 30, [0]),
        (20, 25, 30, [0]),  # shorter than a segment: one segment
        (101, 1, 30, [36]),  # one segment: centred, round(71/2) = 35.5 → 36
        (100, 1, 30, [35]),
    ],
)
def test_even_segment_starts_hand_cases(num_frames: int, num_segments: int, length: int, want: list[int]) -> None:
    assert segment_starts(num_frames, num_segments, length, placement="even") == want


def test_even_segments_of_a_300_frame_video_span_it_end_to_end() -> None:
    starts = segment_starts(300, 25, 30, placement="even")  # span 270, step 11.25
    assert starts == [math.floor(i * 270 / 24 + 0.5) for i in range(25)]
    assert starts[:4] == [0, 11, 23, 34] and starts[-1] == 270


def test_segment_starts_rejects_an_unknown_placement() -> None:
    with pytest.raises(ValueError, match="unknown segment placement 'random'"):
        segment_starts(100, 3, 30, placement="random")


def test_segment_starts_paper_defaults_for_a_300_frame_video() -> None:
    starts = segment_starts(300)  # 25 segments of 30 frames: avg = 271 // 25 = 10
    assert starts == [5 + 10 * j for j in range(25)]
    assert all(s + 30 <= 300 for s in starts)


def test_segment_indices_pad_a_short_video_with_its_last_frame() -> None:
    np.testing.assert_array_equal(segment_indices(4, 0, 6), [0, 1, 2, 3, 3, 3])
    np.testing.assert_array_equal(segment_indices(40, 5, 3), [5, 6, 7])
    with pytest.raises(ValueError, match="outside"):
        segment_indices(4, 4, 2)


def test_segment_starts_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="segment_starts"):
        segment_starts(0)
    with pytest.raises(ValueError, match="segment_starts"):
        segment_starts(10, 0)


def test_aggregation_sums_over_steps_averages_over_segments_and_normalises() -> None:
    # two segments of two steps, K = 2; softmax of (0, ln 3) = (1/4, 3/4), of (0, 0) = (1/2, 1/2)
    ln3 = math.log(3.0)
    logits = torch.tensor(
        [
            [[0.0, ln3], [0.0, 0.0]],  # segment 1: sums to (3/4, 5/4)
            [[ln3, 0.0], [ln3, 0.0]],  # segment 2: (3/4, 1/4) twice → (3/2, 1/2)
        ]
    )
    # mean over segments: (9/8, 7/8); normalised (sum 2): (9/16, 7/16)
    got = aggregate_video_probabilities(logits)
    assert torch.allclose(got, torch.tensor([9 / 16, 7 / 16]))
    batched = aggregate_video_probabilities(torch.stack([logits, logits.flip(-1)]))
    assert torch.allclose(batched, torch.tensor([[9 / 16, 7 / 16], [7 / 16, 9 / 16]]))


def test_aggregation_of_segments_of_different_lengths() -> None:
    ln3 = math.log(3.0)
    long = torch.tensor([[0.0, ln3], [0.0, ln3], [0.0, ln3]])  # sums (3/4, 9/4)
    short = torch.tensor([[ln3, 0.0]])  # (3/4, 1/4)
    # mean (3/4, 5/4), sum 2 → (3/8, 5/8)
    got = aggregate_video_probabilities([long, short])
    assert torch.allclose(got, torch.tensor([3 / 8, 5 / 8]))
    with pytest.raises(ValueError):
        aggregate_video_probabilities(torch.zeros(3, 4))


def test_product_fusion_is_renormalised() -> None:
    rgb = torch.tensor([[0.5, 0.3, 0.2], [0.1, 0.1, 0.8]])
    flow = torch.tensor([[0.2, 0.6, 0.2], [0.5, 0.25, 0.25]])
    # row 1: (0.10, 0.18, 0.04) / 0.32; row 2: (0.05, 0.025, 0.2) / 0.275
    want = torch.tensor([[0.10, 0.18, 0.04], [0.05, 0.025, 0.2]])
    want = want / want.sum(dim=1, keepdim=True)
    got = fuse_probabilities(rgb, flow)
    assert torch.allclose(got, want, atol=1e-7)
    assert got.dtype == torch.float32
    assert torch.allclose(fuse_probabilities(rgb, flow, method="mean"), (rgb + flow) / 2)
    # numpy in works too (the evaluation stage holds arrays)
    assert torch.allclose(fuse_probabilities(rgb.numpy(), flow.numpy()), want, atol=1e-7)


def test_product_fusion_survives_underflow_and_disjoint_support() -> None:
    tiny = torch.tensor([1e-30, 2e-30, 0.0])  # float32 product underflows to 0 …
    other = torch.tensor([1e-30, 1e-30, 1.0])
    got = fuse_probabilities(tiny, other)
    assert torch.allclose(got, torch.tensor([1 / 3, 2 / 3, 0.0]))  # … log space does not
    disjoint = fuse_probabilities(torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0]))
    assert torch.allclose(disjoint, torch.tensor([0.5, 0.5]))  # falls back to the mean


def test_fusion_rejects_bad_inputs() -> None:
    with pytest.raises(ValueError, match="product"):
        fuse_probabilities(torch.ones(3) / 3, torch.ones(3) / 3, method="max")
    with pytest.raises(ValueError, match="same shape"):
        fuse_probabilities(torch.ones(3) / 3, torch.ones(4) / 4)


@pytest.mark.parametrize(
    "make_generator",
    [lambda: torch.Generator().manual_seed(0), lambda: np.random.default_rng(0), lambda: random.Random(0)],
)
def test_random_snippet_start_is_uniform_over_the_valid_starts(make_generator) -> None:
    generator = make_generator()
    starts = [random_snippet_start(40, 30, generator) for _ in range(600)]
    assert set(starts) == set(range(11))  # 0 … 40 - 30, every one reachable
    again = make_generator()
    assert [random_snippet_start(40, 30, again) for _ in range(600)] == starts  # reproducible
    assert random_snippet_start(20, 30, make_generator()) == 0  # short video: from the start
    assert random_snippet_start(30, 30, make_generator()) == 0
    with pytest.raises(ValueError):
        random_snippet_start(40, 30, "seed")
