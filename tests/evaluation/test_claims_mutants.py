"""Claims' verdicts at their edges (issue 26: tests that fail when the code is wrong).

The definition (``videolstm/evaluation/claims.py``): a claim "A beats B" is **reproduced** only
when the whole 95 % interval of the paired differences lies *above* 0, **not reproduced** only
when it lies *below* 0, **unresolved** otherwise. Two models that score the same on every seed
have differences all 0 and the interval [0, 0]: that is neither above nor below 0.
"""

from __future__ import annotations

import math

import pytest

from videolstm.evaluation.claims import (
    NOT_REPRODUCED,
    REPRODUCED,
    UNRESOLVED,
    Claim,
    Comparison,
    Interval,
    confidence_interval,
    evaluate_claim,
)

CLAIM = Claim("attention", "ALSTM beats LSTM", (Comparison(("alstm", "rgb"), ("lstm", "rgb")),))


def _rows(better: list[float], worse: list[float]) -> list[dict]:
    rows = [{"variant": "alstm", "stream": "rgb", "seed": s, "test/accuracy": v} for s, v in enumerate(better)]
    rows += [{"variant": "lstm", "stream": "rgb", "seed": s, "test/accuracy": v} for s, v in enumerate(worse)]
    return rows


def test_identical_results_on_every_seed_are_unresolved_not_reproduced():
    """Both models at 100 % on every seed (an easy set): no evidence that either is better."""
    result = evaluate_claim(_rows([1.0, 1.0, 1.0], [1.0, 1.0, 1.0]), CLAIM)
    assert result is not None
    assert (result.overall.low, result.overall.high) == (0.0, 0.0)
    assert result.overall.verdict == UNRESOLVED
    assert result.parts[0][1].verdict == UNRESOLVED


@pytest.mark.parametrize(("low", "high", "verdict"), [
    (0.0, 0.0, UNRESOLVED),  # touches 0 on both sides
    (0.0, 1.0, UNRESOLVED),  # [0, 1] contains 0: not strictly above
    (-1.0, 0.0, UNRESOLVED),  # [-1, 0] contains 0: not strictly below
    (1e-12, 1.0, REPRODUCED),  # strictly above 0, however little
    (-1.0, -1e-12, NOT_REPRODUCED),  # strictly below 0
    (-1.0, 1.0, UNRESOLVED),
])
def test_verdict_needs_the_interval_strictly_on_one_side_of_zero(low, high, verdict):
    assert Interval((low + high) / 2, low, high, 3, (0, 1, 2)).verdict == verdict


@pytest.mark.parametrize("n", [0, 1])
def test_fewer_than_two_seeds_are_unresolved_whatever_the_bounds(n):
    assert Interval(5.0, 4.0, 6.0, n, tuple(range(n))).verdict == UNRESOLVED
    assert Interval(-5.0, -6.0, -4.0, n, tuple(range(n))).verdict == UNRESOLVED


def test_an_undefined_interval_is_unresolved():
    assert Interval(1.0, math.nan, math.nan, 3, (0, 1, 2)).verdict == UNRESOLVED


def test_the_interval_widens_with_the_confidence_level():
    """A 99 % interval contains the 95 % one (same mean, larger t quantile)."""
    d = [0.1, 0.3, 0.2, 0.25]
    i95, i99 = confidence_interval(d, level=0.95), confidence_interval(d, level=0.99)
    assert i99.mean == i95.mean
    assert i99.low < i95.low < i95.high < i99.high
