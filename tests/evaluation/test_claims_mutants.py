"""Claims' verdicts at their edges (issue 26: tests that fail when the code is wrong).

The definition (``videolstm/evaluation/claims.py``): a claim "A beats B" is **reproduced** only
when the whole 95 % interval of the paired differences lies *above* 0, **not reproduced** only
when it lies *below* 0, **unresolved** otherwise. Two models that score the same on every seed
have differences all 0 and the interval [0, 0]: that is neither above nor below 0.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from videolstm.evaluation.claims import (
    NOT_REPRODUCED,
    PAPER_CLAIMS,
    REPRODUCED,
    UNRESOLVED,
    Claim,
    Comparison,
    Interval,
    confidence_interval,
    evaluate_claim,
    metric_by_seed,
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


@pytest.mark.parametrize(
    ("low", "high", "verdict"),
    [
        (0.0, 0.0, UNRESOLVED),  # touches 0 on both sides
        (0.0, 1.0, UNRESOLVED),  # [0, 1] contains 0: not strictly above
        (-1.0, 0.0, UNRESOLVED),  # [-1, 0] contains 0: not strictly below
        (1e-12, 1.0, REPRODUCED),  # strictly above 0, however little
        (-1.0, -1e-12, NOT_REPRODUCED),  # strictly below 0
        (-1.0, 1.0, UNRESOLVED),
    ],
)
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


T_975_DF1 = 12.706204736174707  # Student's t, 97.5th percentile, 1 degree of freedom (tables)


def test_two_seeds_already_give_an_interval():
    """n = 2: mean ± t_{0.975,1}·sd/√2; d = (1, 3): sd = √2, so the half-width is t itself."""
    iv = confidence_interval([1.0, 3.0], [4, 9])
    assert (iv.mean, iv.n, iv.seeds) == (2.0, 2, (4, 9))
    assert iv.low == pytest.approx(2.0 - T_975_DF1) and iv.high == pytest.approx(2.0 + T_975_DF1)


def test_one_seed_keeps_its_difference_as_the_mean_without_bounds():
    iv = confidence_interval([0.25], [7])
    assert (iv.mean, iv.n, iv.seeds) == (0.25, 1, (7,))
    assert math.isnan(iv.low) and math.isnan(iv.high)


def test_no_seed_gives_an_undefined_interval():
    iv = confidence_interval([], [])
    assert (iv.n, iv.seeds) == (0, ())
    assert math.isnan(iv.mean) and math.isnan(iv.low) and math.isnan(iv.high)


def test_the_interval_carries_its_seeds():
    assert confidence_interval([0.1, 0.2, 0.4], [3, 1, 2]).seeds == (3, 1, 2)


def test_the_mean_is_the_exact_mean_of_the_differences_given_in_single_precision():
    """1e8 + 1 − 1e8 in float32 arithmetic loses the 1; the mean of (1e8, 1, −1e8) is 1/3."""
    d = np.array([1e8, 1.0, -1e8], dtype=np.float32)
    assert confidence_interval(d, [0, 1, 2]).mean == pytest.approx(1 / 3, rel=1e-9)


def test_paper_claims_compare_each_pair_on_both_streams():
    """Table 1: convolution (ConvLSTM > LSTM, ConvALSTM > ALSTM) and attention (ConvALSTM >
    ConvLSTM, ALSTM > LSTM), each on the RGB and on the flow stream, accuracy."""
    claims = {c.key: c for c in PAPER_CLAIMS}

    def pairs(key):
        return {(c.better, c.worse, c.metric) for c in claims[key].comparisons}

    acc = "test/accuracy"
    assert pairs("convolution") == {((b, s), (w, s), acc) for b, w in (("convlstm", "lstm"), ("convalstm", "alstm")) for s in ("rgb", "flow")}
    assert pairs("attention") == {((b, s), (w, s), acc) for b, w in (("convalstm", "convlstm"), ("alstm", "lstm")) for s in ("rgb", "flow")}
    assert len(claims["convolution"].comparisons) == len(claims["attention"].comparisons) == 4


def test_rows_without_the_metric_or_a_seed_or_with_nan_are_skipped_and_the_rest_kept():
    rows = [
        {"variant": "alstm", "stream": "rgb", "seed": 0},  # no metric
        {"variant": "alstm", "stream": "rgb", "seed": None, "test/accuracy": 0.9},  # no seed
        {"variant": "alstm", "stream": "rgb", "test/accuracy": 0.8},  # no seed key
        {"variant": "alstm", "stream": "rgb", "seed": 1, "test/accuracy": float("nan")},
        {"variant": "alstm", "stream": "rgb", "seed": 2, "test/accuracy": 0.7},
        {"variant": "lstm", "stream": "rgb", "seed": 2, "test/accuracy": 0.5},
    ]
    assert metric_by_seed(rows, "test/accuracy") == {("alstm", "rgb"): {2: 0.7}, ("lstm", "rgb"): {2: 0.5}}


def test_a_claim_skips_an_untrained_comparison_and_keeps_the_later_ones():
    claim = Claim(
        "c",
        "two comparisons, the first never trained",
        (
            Comparison(("videolstm", "rgb"), ("convalstm", "rgb")),
            Comparison(("alstm", "rgb"), ("lstm", "rgb")),
        ),
    )
    result = evaluate_claim(_rows([0.9, 0.8, 0.85], [0.5, 0.55, 0.45]), claim)
    assert result is not None and len(result.parts) == 1
    assert result.parts[0][0].better == ("alstm", "rgb")
    assert result.parts[0][1].seeds == (0, 1, 2)
    assert result.overall.seeds == (0, 1, 2)
    assert result.overall.mean == pytest.approx((0.4 + 0.25 + 0.4) / 3)
