"""The paper's claims from paired comparisons over seeds: intervals computed by hand here."""

from __future__ import annotations

import math

import pytest

from videolstm.evaluation.claims import (
    NOT_REPRODUCED,
    PAPER_CLAIMS,
    REPRODUCED,
    UNRESOLVED,
    Claim,
    Comparison,
    confidence_interval,
    evaluate_claim,
    evaluate_claims,
    paired_differences,
)

T_975_DF2 = 4.302652729911275  # Student's t, 97.5th percentile, 2 degrees of freedom (tables)


def test_interval_of_three_differences_equals_the_hand_computation():
    iv = confidence_interval([1.0, 2.0, 3.0], [0, 1, 2])
    half = T_975_DF2 * 1.0 / math.sqrt(3)  # sd = 1
    assert (iv.mean, iv.n) == (2.0, 3)
    assert iv.low == pytest.approx(2.0 - half) and iv.high == pytest.approx(2.0 + half)
    assert iv.verdict == UNRESOLVED  # [-0.48, 4.48] contains 0


@pytest.mark.parametrize(
    ("diffs", "verdict"),
    [
        ([2.0, 2.1, 1.9], REPRODUCED),  # 2 ± 0.25
        ([-2.0, -2.1, -1.9], NOT_REPRODUCED),
        ([0.5, -0.5, 0.1], UNRESOLVED),
        ([5.0], UNRESOLVED),  # one seed: no interval
        ([], UNRESOLVED),
    ],
)
def test_verdict_follows_the_interval(diffs, verdict):
    assert confidence_interval(diffs).verdict == verdict


def _row(variant, stream, seed, acc, **extra):
    return {"variant": variant, "stream": stream, "seed": seed, "test/accuracy": acc, **extra}


def test_paired_differences_use_only_seeds_where_both_models_finished():
    rows = [
        _row("convlstm", "rgb", 0, 0.6),
        _row("convlstm", "rgb", 1, 0.7),
        _row("convlstm", "rgb", 2, 0.8),
        _row("lstm", "rgb", 0, 0.5),
        _row("lstm", "rgb", 2, 0.4),
    ]  # lstm seed 1 failed
    diffs = paired_differences(rows, Comparison(("convlstm", "rgb"), ("lstm", "rgb")))
    assert diffs == pytest.approx({0: 0.1, 2: 0.4})


def test_a_claim_averages_its_comparisons_within_each_seed_before_the_interval():
    claim = Claim("c", "A beats B", (Comparison(("a", "rgb"), ("b", "rgb")), Comparison(("a", "flow"), ("b", "flow"))))
    rows = []
    for seed, (rgb, flow) in enumerate([(0.10, 0.30), (0.20, 0.20), (0.05, 0.35)]):  # per-seed means: 0.2, 0.2, 0.2
        rows += [_row("a", "rgb", seed, 0.5 + rgb), _row("b", "rgb", seed, 0.5), _row("a", "flow", seed, 0.5 + flow), _row("b", "flow", seed, 0.5)]
    result = evaluate_claim(rows, claim)
    assert result.overall.n == 3 and result.overall.mean == pytest.approx(0.2)
    assert result.overall.low == pytest.approx(0.2) and result.overall.verdict == REPRODUCED  # no spread across seeds
    assert [p.n for _, p in result.parts] == [3, 3]
    # rgb alone: 0.10, 0.20, 0.05 → mean 0.117, sd 0.076, half-width 4.303 · 0.076 / √3 = 0.190 → contains 0
    rgb = result.parts[0][1]
    assert rgb.mean == pytest.approx(0.35 / 3) and rgb.low == pytest.approx(0.35 / 3 - T_975_DF2 * 0.0763763 / math.sqrt(3), rel=1e-4)
    assert rgb.verdict == UNRESOLVED


def test_paper_claims_cover_the_four_statements_and_skip_untrained_ones():
    assert [c.key for c in PAPER_CLAIMS] == ["convolution", "attention", "motion_attention", "localization"]
    loc = PAPER_CLAIMS[-1].comparisons[0]
    assert (loc.better, loc.worse, loc.metric) == (("videolstm", "rgb"), ("alstm", "rgb"), "loc/mAP_0.2")
    rows = [_row("videolstm", "rgb", s, 0.8, **{"loc/mAP_0.2": 0.3 + 0.01 * s}) for s in range(3)]
    rows += [_row("alstm", "rgb", s, 0.5, **{"loc/mAP_0.2": 0.05}) for s in range(3)]
    assert [r.claim.key for r in evaluate_claims(rows)] == ["localization"]  # the others lack their variants
    loc_result = next(r for r in evaluate_claims(rows) if r.claim.key == "localization")
    assert loc_result.overall.verdict == REPRODUCED and loc_result.overall.mean == pytest.approx(0.26)
