"""`videolstm sweep` end to end: arms on one storage root share every stage they do not change,
each arm's benchmark run is nested under the sweep run, a failed arm is listed and the rest completes."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml
from mlflow.tracking import MlflowClient

from tests.integration.tiny import tiny_config
from tests.reliability.conftest import REPO, cli_env

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def swept(tmp_path_factory: pytest.TempPathFactory):
    base = tmp_path_factory.mktemp("sweep")
    root = base / "store"
    config = tiny_config(str(root))
    config["train"].update({"variants": ["lstm"], "seeds": [0]})
    config_path = base / "config.yaml"
    config_path.write_text(yaml.safe_dump(config))
    sweep_path = base / "sweep.yaml"
    sweep_path.write_text(
        yaml.safe_dump(
            {
                "name": "tiny-sweep",
                "seeds": [0, 1],
                "baseline": "base",
                "arms": {
                    "base": {},
                    "lower-lr": {"train.lr": 0.0005},  # a train-only change: no upstream stage recomputed
                    "broken": {"train.snippet_length": 0},  # does not validate: listed as failed, the others finish
                },
            }
        )
    )
    command = [sys.executable, "-m", "flows.cli", "sweep", "--config", str(config_path), "--sweep", str(sweep_path)]
    proc = subprocess.run(command, cwd=REPO, env=cli_env(base / "prefect"), capture_output=True, text=True, timeout=1200)
    return root, proc


def test_sweep_writes_its_comparison_and_lists_the_failed_arm(swept):
    root, proc = swept
    assert proc.returncode == 1, proc.stdout[-4000:] + proc.stderr[-4000:]  # an arm failed as a whole
    out = root / "sweeps" / "tiny-sweep"
    results = json.loads((out / "sweep.json").read_text())
    assert results["baseline"] == "base" and results["seeds"] == [0, 1]
    assert "lstm.rgb/test/accuracy" in results["metrics"] and "convnet.fused/test/accuracy" in results["metrics"]
    assert results["arms"]["base"]["metrics"]["lstm.rgb/test/accuracy"]["n"] == 2
    diff = results["arms"]["lower-lr"]["differences"]["lstm.rgb/test/accuracy"]
    assert diff["n"] == 2 and set(diff) == {"mean", "low", "high", "n", "verdict"}
    assert [f["arm"] for f in results["failed"]] == ["broken"]
    assert "snippet_length" in results["failed"][0]["reason"]
    assert results["arms"]["broken"]["finished"] is False
    assert (out / "sweep.md").read_text().startswith("# Sweep `tiny-sweep`")
    assert "<table>" in (out / "sweep.html").read_text()
    # progress per arm on the console
    assert "▸ arm 1/3 base (baseline)" in proc.stdout and "✓ arm lower-lr in" in proc.stdout and "✗ arm broken" in proc.stdout


def test_an_arm_that_changes_only_training_reuses_every_upstream_stage(swept):
    root, _ = swept
    for stage in ("frames_flow", "frame_cnn", "features"):  # one lineage folder each: shared by both arms
        assert len([p for p in (root / stage).iterdir() if p.is_dir()]) == 1, stage
    assert len([p for p in (root / "train").iterdir() if p.is_dir()]) == 2
    from videolstm.store.manifest import read_manifest

    (features,) = [p for p in (root / "features").iterdir() if p.is_dir()]
    seed_dirs = sorted(p for p in features.glob("s[0-9]*") if p.is_dir())
    assert [p.name for p in seed_dirs] == ["s0", "s1"]
    for seed_dir in seed_dirs:  # each video's features computed once, by the first arm
        keys = [r.key for r in read_manifest(str(seed_dir / "manifest.parquet"))]
        assert len(keys) == len(set(keys))
    stage = json.loads((features / "stage.json").read_text())
    assert stage["computed"] in (0, stage["ok"])  # written by the first arm (all computed) or re-run by the second (none)


def test_each_arms_benchmark_run_is_nested_under_the_sweep_run(swept):
    root, _ = swept
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{root / 'mlflow.db'}")
    client = MlflowClient()
    experiment = client.get_experiment_by_name("tiny")
    (sweep_run,) = client.search_runs([experiment.experiment_id], "tags.`videolstm.kind` = 'sweep'")
    arms = client.search_runs([experiment.experiment_id], f"tags.`mlflow.parentRunId` = '{sweep_run.info.run_id}'")
    assert sorted(r.data.tags["arm"] for r in arms) == ["base", "lower-lr"]
    assert all(r.data.tags["sweep"] == "tiny-sweep" for r in arms)
    assert "lower-lr/lstm.rgb/test/accuracy/diff" in sweep_run.data.metrics
    artifacts = {a.path for a in client.list_artifacts(sweep_run.info.run_id, "sweep")}
    assert artifacts == {"sweep/sweep.json", "sweep/sweep.md", "sweep/sweep.html"}
