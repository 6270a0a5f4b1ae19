"""The paper's claims, decided from paired comparisons over seeds.

Every seed trains every model on the same data split and features, so two variants are compared
seed by seed: for a claim "A beats B" the paired difference d_s = m(A, s) − m(B, s) of a metric m
at seed s. A claim with several comparisons (e.g. "convolution helps" = ConvLSTM vs LSTM and
ConvALSTM vs ALSTM, on RGB and flow) averages its comparisons within each seed first, so its n is
the number of seeds, not of comparisons (comparisons of one seed are not independent).

The 95 % confidence interval of the mean difference is Student's t: mean ± t_{0.975, n−1} · sd/√n.
Verdict: **reproduced** when the interval lies above 0, **not reproduced** when it lies below 0
(the data contradict the claim), **unresolved** when it contains 0 or n < 2.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

REPRODUCED, NOT_REPRODUCED, UNRESOLVED = "reproduced", "not reproduced", "unresolved"


@dataclass(frozen=True)
class Comparison:
    """``better`` is claimed to beat ``worse`` on ``metric`` (each a (variant, stream) pair)."""

    better: tuple[str, str]
    worse: tuple[str, str]
    metric: str = "test/accuracy"


@dataclass(frozen=True)
class Claim:
    key: str
    statement: str
    comparisons: tuple[Comparison, ...]


@dataclass(frozen=True)
class Interval:
    """Mean paired difference over n seeds with its 95 % CI (low, high); NaN where undefined."""

    mean: float
    low: float
    high: float
    n: int
    seeds: tuple[int, ...]

    @property
    def verdict(self) -> str:
        if self.n < 2 or math.isnan(self.low):
            return UNRESOLVED
        if self.low > 0:
            return REPRODUCED
        if self.high < 0:
            return NOT_REPRODUCED
        return UNRESOLVED


@dataclass(frozen=True)
class ClaimResult:
    claim: Claim
    overall: Interval
    parts: tuple[tuple[Comparison, Interval], ...]


def _both_streams(better: str, worse: str) -> tuple[Comparison, ...]:
    return tuple(Comparison((better, s), (worse, s)) for s in ("rgb", "flow"))


#: The paper's claims (Li et al., CVIU 2018), as paired comparisons.
PAPER_CLAIMS: tuple[Claim, ...] = (
    Claim(
        "convolution",
        "Convolution helps (Table 1): ConvLSTM > LSTM, ConvALSTM > ALSTM",
        _both_streams("convlstm", "lstm") + _both_streams("convalstm", "alstm"),
    ),
    Claim(
        "attention", "Attention helps (Table 1): ConvALSTM > ConvLSTM, ALSTM > LSTM", _both_streams("convalstm", "convlstm") + _both_streams("alstm", "lstm")
    ),
    Claim(
        "motion_attention",
        "Motion-based attention beats appearance attention (Table 2, RGB): VideoLSTM > ConvALSTM, Motion ALSTM > ALSTM",
        (Comparison(("videolstm", "rgb"), ("convalstm", "rgb")), Comparison(("motion_alstm", "rgb"), ("alstm", "rgb"))),
    ),
    Claim(
        "localization",
        "Localization from attention (Table 5, mAP@0.2): VideoLSTM ≫ ALSTM",
        (Comparison(("videolstm", "rgb"), ("alstm", "rgb"), "loc/mAP_0.2"),),
    ),
)


def confidence_interval(differences: Sequence[float], seeds: Sequence[int] = (), level: float = 0.95) -> Interval:
    """Mean of the paired ``differences`` with its two-sided Student-t interval."""
    d = np.asarray(differences, dtype=np.float64)
    n = int(d.size)
    if n == 0:
        return Interval(math.nan, math.nan, math.nan, 0, tuple(seeds))
    mean = float(d.mean())
    if n < 2:
        return Interval(mean, math.nan, math.nan, n, tuple(seeds))
    half = float(stats.t.ppf(0.5 + level / 2, n - 1) * d.std(ddof=1) / math.sqrt(n))
    return Interval(mean, mean - half, mean + half, n, tuple(seeds))


def metric_by_seed(rows: Iterable[Mapping[str, Any]], metric: str) -> dict[tuple[str, str], dict[int, float]]:
    """{(variant, stream): {seed: value}}; later rows of the same model replace earlier ones."""
    out: dict[tuple[str, str], dict[int, float]] = {}
    for row in rows:
        value = row.get(metric)
        if value is None or row.get("seed") is None:
            continue
        value = float(value)
        if math.isnan(value):
            continue
        out.setdefault((str(row["variant"]), str(row["stream"])), {})[int(row["seed"])] = value
    return out


def paired_differences(rows: Sequence[Mapping[str, Any]], comparison: Comparison) -> dict[int, float]:
    """{seed: better − worse} over the seeds where both models have the metric."""
    values = metric_by_seed(rows, comparison.metric)
    better, worse = values.get(comparison.better, {}), values.get(comparison.worse, {})
    return {s: better[s] - worse[s] for s in sorted(set(better) & set(worse))}


def evaluate_claim(rows: Sequence[Mapping[str, Any]], claim: Claim) -> ClaimResult | None:
    """The claim's overall interval (comparisons averaged within each seed) and each part's; None
    when none of its comparisons has a result (the variants were not trained)."""
    parts = []
    per_seed: dict[int, list[float]] = {}
    for comparison in claim.comparisons:
        diffs = paired_differences(rows, comparison)
        if not diffs:
            continue
        parts.append((comparison, confidence_interval(list(diffs.values()), list(diffs))))
        for seed, d in diffs.items():
            per_seed.setdefault(seed, []).append(d)
    if not parts:
        return None
    complete = sorted(s for s, ds in per_seed.items() if len(ds) == len(parts))  # seeds with every present comparison
    overall = confidence_interval([float(np.mean(per_seed[s])) for s in complete], complete)
    return ClaimResult(claim, overall, tuple(parts))


def evaluate_claims(rows: Sequence[Mapping[str, Any]], claims: Sequence[Claim] = PAPER_CLAIMS) -> list[ClaimResult]:
    return [r for c in claims if (r := evaluate_claim(rows, c)) is not None]
