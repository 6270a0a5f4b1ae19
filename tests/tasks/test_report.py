"""The report names every model the run should have and says why each missing one is missing."""

from __future__ import annotations

from tasks.report import expected_models, missing_models, parent_metrics
from videolstm.config import load_config
from videolstm.store.lineage import StageResult


def test_expected_models_are_the_matrix_times_the_seeds_with_the_papers_fused_pairs():
    config = load_config({"train": {"variants": ["lstm", "videolstm"], "seeds": [0, 1]}})
    names = expected_models(config)
    for seed in (0, 1):
        assert {
            f"convnet-rgb-s{seed}",
            f"convnet-flow-s{seed}",
            f"lstm-rgb-s{seed}",
            f"lstm-flow-s{seed}",
            f"videolstm-rgb-s{seed}",
            f"lstm-fused-s{seed}",
            f"convnet-fused-s{seed}",
        } <= set(names)
    assert "videolstm-fused-s0" not in names  # its partner (ConvALSTM flow) is not in this matrix


def test_a_failed_seed_is_listed_with_its_reason_and_an_absent_one_says_so():
    config = load_config({"train": {"variants": ["lstm"], "streams": ["rgb"], "seeds": [0, 1]}})
    rows = [
        {"name": n, "variant": n.split("-")[0], "stream": n.split("-")[1], "seed": int(n[-1]), "test/accuracy": 0.5}
        for n in ("convnet-rgb-s0", "convnet-flow-s0", "convnet-fused-s0", "lstm-rgb-s0", "convnet-rgb-s1", "convnet-flow-s1", "convnet-fused-s1")
    ]
    trained = StageResult(stage="train", uri="x", lineage="l", content="c", failures=[("lstm-rgb-s1", "FloatingPointError: loss nan")])
    assert missing_models(config, rows, [trained]) == [("lstm-rgb-s1", "FloatingPointError: loss nan")]
    missing = missing_models(config, rows[:-1], [trained])
    assert ("convnet-fused-s1", "no result (a model it depends on failed, or its stage did not run)") in missing


def test_parent_run_metrics_are_means_over_the_seeds():
    rows = [{"variant": "lstm", "stream": "rgb", "seed": s, "test/accuracy": a, "loc/mAP_0.2": m} for s, a, m in ((0, 0.5, 0.1), (1, 0.7, 0.3))]
    assert parent_metrics(rows) == {"lstm.rgb/test/accuracy": 0.6, "lstm.rgb/loc/mAP_0.2": 0.2}
