"""The sweep file, the arms' configurations and the paired statistics, from their definitions."""

from __future__ import annotations

import json
import math

import pytest

from videolstm.config import BenchmarkConfig, ConfigError, load_config
from videolstm.evaluation.sweep import (
    arm_config,
    load_sweep,
    metric_values,
    paired_difference,
    summary,
    sweep_html,
    sweep_markdown,
    sweep_metrics,
    sweep_results,
)

SPEC = {
    "name": "recipe-ablation",
    "seeds": [0, 1, 2],
    "baseline": "faithful",
    "base": {"train.variants": ["convalstm", "videolstm"]},
    "arms": {"faithful": {}, "torch-init": {"train.model.init": "torch"}, "fast": {"train.lr": 0.002, "train.epochs": 3}},
}


def rows(values: dict[tuple[str, str], dict[int, float]], metric: str = "test/accuracy") -> list[dict]:
    return [{"variant": v, "stream": s, "seed": seed, metric: x} for (v, s), by_seed in values.items() for seed, x in by_seed.items()]


def test_arm_config_applies_base_then_arm_overrides_then_the_sweeps_seeds_and_name():
    sweep = load_sweep(SPEC)
    config = load_config({"train": {"seeds": [7], "epochs": 5}})
    fast = arm_config(config, sweep, "fast")
    assert fast.train.seeds == [0, 1, 2]
    assert fast.name == "recipe-ablation-fast"
    assert fast.train.variants == ["convalstm", "videolstm"]
    assert (fast.train.lr, fast.train.epochs) == (0.002, 3)
    baseline = arm_config(config, sweep, "faithful")
    assert baseline.train.epochs == 5 and baseline.train.lr == config.train.lr
    assert arm_config(config, sweep, "torch-init").train.model.init == "torch"
    assert config.train.seeds == [7]  # the caller's config is not changed


@pytest.mark.parametrize(
    "change, words",
    [
        ({"baseline": "nope"}, "baseline 'nope' is not one of the arms"),
        ({"seeds": [1, 1]}, "seeds must be distinct"),
        ({"seeds": []}, "seeds"),
        ({"name": "../etc"}, "sweep name"),
        ({"name": "a/b"}, "sweep name"),
        ({"arms": {"faithful": {}, "x/y": {}}}, "arm name"),
        ({"arms": {"faithful": {"train.seeds": [3]}}}, "train.seeds is set by the sweep itself"),
        ({"arms": {"faithful": {"name": "x"}}}, "name is set by the sweep itself"),
        ({"arms": {"faithful": {"train..lr": 1}}}, "not a dotted config key"),
        ({"metrics": ["accuracy"]}, "<variant>.<stream>/<metric>"),
        ({"arm": {}}, "unknown key"),
    ],
)
def test_a_malformed_sweep_is_refused_naming_the_problem(change, words):
    with pytest.raises(ConfigError) as err:
        load_sweep({**SPEC, **change})
    assert words in str(err.value)


def test_an_arm_whose_overrides_do_not_validate_is_refused_naming_the_arm_and_the_key():
    sweep = load_sweep({**SPEC, "arms": {"faithful": {}, "bad": {"train.epochs": 0}, "typo": {"train.epochz": 1}}})
    with pytest.raises(ConfigError, match=r"arm 'bad'.*train\.epochs"):
        arm_config(BenchmarkConfig(), sweep, "bad")
    with pytest.raises(ConfigError, match=r"arm 'typo'.*epochz"):
        arm_config(BenchmarkConfig(), sweep, "typo")


def test_sweep_file_is_read_safely(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("name: s\nseeds: [0]\nbaseline: a\narms:\n  a: &x {train.lr: 0.1}\n  b: *x\n")
    with pytest.raises(ConfigError, match="alias"):
        load_sweep(path)
    path.write_text("name: s\nseeds: [0, 1]\nbaseline: a\narms: {a: {}, b: {train.lr: 0.01}}\n")
    assert load_sweep(path).arm_names() == ["a", "b"]


def test_paired_difference_matches_a_hand_computation():
    # d = (0.1, 0.2, 0.0): mean 0.1, sd 0.1; t(0.975, 2) = 4.302653 (tables); half = 4.302653 * 0.1 / sqrt(3)
    arm = {0: 0.5, 1: 0.7, 2: 0.6, 3: 0.9}  # seed 3 has no baseline: left out
    base = {0: 0.4, 1: 0.5, 2: 0.6, 4: 0.1}
    interval = paired_difference(arm, base)
    half = 4.302653 * 0.1 / math.sqrt(3)
    assert interval.n == 3 and interval.seeds == (0, 1, 2)
    assert interval.mean == pytest.approx(0.1)
    assert interval.low == pytest.approx(0.1 - half, abs=1e-6)
    assert interval.high == pytest.approx(0.1 + half, abs=1e-6)
    assert interval.verdict == "unresolved"
    assert paired_difference({0: 0.5, 1: 0.6, 2: 0.7}, {0: 0.3, 1: 0.41, 2: 0.49}).verdict == "reproduced"  # arm higher
    assert paired_difference({0: 0.3, 1: 0.41, 2: 0.49}, {0: 0.5, 1: 0.6, 2: 0.7}).verdict == "not reproduced"
    # identical results on every seed: a zero-width interval at 0 is not "higher"
    assert paired_difference({0: 1.0, 1: 1.0}, {0: 1.0, 1: 1.0}).verdict == "unresolved"


def test_summary_is_mean_and_sample_sd_over_seeds():
    s = summary({0: 0.2, 1: 0.4, 2: 0.9})
    assert s["n"] == 3 and s["mean"] == pytest.approx(0.5)
    assert s["sd"] == pytest.approx(math.sqrt(((0.3) ** 2 + (0.1) ** 2 + (0.4) ** 2) / 2))
    assert math.isnan(summary({0: 0.2})["sd"])


def test_metric_values_key_models_by_variant_stream_and_skip_missing_values():
    got = metric_values(
        [
            {"variant": "videolstm", "stream": "rgb", "seed": 0, "test/accuracy": 0.5, "loc/mAP_0.2": float("nan"), "name": "x"},
            {"variant": "videolstm", "stream": "rgb", "seed": 0, "test/accuracy": 0.75},  # a re-run replaces
            {"variant": "convalstm", "stream": "fused", "seed": 1, "test/accuracy": None},
            {"variant": "lstm", "stream": "rgb", "test/accuracy": 0.1},  # no seed: not a replicate
        ]
    )
    assert got == {"videolstm.rgb/test/accuracy": {0: 0.75}}


def test_results_compare_every_arm_with_the_baseline_and_keep_a_failed_arm_listed():
    sweep = load_sweep({**SPEC, "arms": {**SPEC["arms"], "broken": {"train.lr": 1.0}}})
    base = rows({("videolstm", "rgb"): {0: 0.4, 1: 0.5, 2: 0.6}, ("convalstm", "rgb"): {0: 0.3, 1: 0.3, 2: 0.3}})
    torch_init = rows({("videolstm", "rgb"): {0: 0.5, 1: 0.7, 2: 0.6}, ("convalstm", "rgb"): {0: 0.2, 1: 0.2}})
    failed = [{"arm": "broken", "seed": None, "reason": "ValueError: boom"}, {"arm": "torch-init", "seed": 2, "reason": "NaN loss"}]
    results = sweep_results(sweep, {"faithful": base, "torch-init": torch_init, "fast": base}, failed)
    assert results["metrics"] == ["convalstm.rgb/test/accuracy", "videolstm.rgb/test/accuracy"]
    assert "differences" not in results["arms"]["faithful"]
    d = results["arms"]["torch-init"]["differences"]["videolstm.rgb/test/accuracy"]
    assert d["n"] == 3 and d["mean"] == pytest.approx(0.1)
    c = results["arms"]["torch-init"]["differences"]["convalstm.rgb/test/accuracy"]
    assert c["n"] == 2 and c["mean"] == pytest.approx(-0.1) and c["verdict"] == "not reproduced"
    assert results["arms"]["fast"]["differences"]["videolstm.rgb/test/accuracy"]["mean"] == 0
    assert results["arms"]["broken"] == {
        "overrides": {"train.variants": ["convalstm", "videolstm"], "train.lr": 1.0},
        "metrics": {},
        "differences": {},
        "finished": False,
    }
    assert results["failed"] == failed
    text = sweep_markdown(results)
    assert "arm `broken`, every seed: ValueError: boom" in text and "arm `torch-init`, seed 2: NaN loss" in text
    assert "+10.0 [" in text  # torch-init's videolstm difference in points
    assert "<td" in sweep_html(results) and "boom" in sweep_html(results)
    flat = sweep_metrics(results)
    assert flat["torch-init/videolstm.rgb/test/accuracy/diff"] == pytest.approx(0.1)
    assert flat["faithful/videolstm.rgb/test/accuracy/mean"] == pytest.approx(0.5)
    json.dumps(flat, allow_nan=False)


def test_named_metrics_restrict_the_comparison():
    sweep = load_sweep({**SPEC, "metrics": ["videolstm.rgb/test/accuracy"]})
    base = rows({("videolstm", "rgb"): {0: 0.4, 1: 0.5}, ("convalstm", "rgb"): {0: 0.3, 1: 0.3}})
    results = sweep_results(sweep, {"faithful": base, "torch-init": base, "fast": base})
    assert results["metrics"] == ["videolstm.rgb/test/accuracy"]
    assert list(results["arms"]["fast"]["metrics"]) == ["videolstm.rgb/test/accuracy"]


def test_a_subset_of_arms_keeps_the_baseline_and_the_files_order():
    sweep = load_sweep(SPEC)
    assert sweep.subset(["fast"]).arm_names() == ["faithful", "fast"]
    assert sweep.subset(["fast", "torch-init"]).arm_names() == ["faithful", "torch-init", "fast"]
    with pytest.raises(ConfigError, match="no arm"):
        sweep.subset(["nope"])
