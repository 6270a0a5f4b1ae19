"""A small pipeline against a real ``mlflow server`` on 127.0.0.1, and every logged figure recomputed.

The tracking server is what a cluster uses (``mlflow.tracking_uri: http://...``); everything is
read back through it: runs, metrics, artifacts (proxied by the server) and registered models.
Each logged number is recomputed from the artifacts the run holds: accuracy and per-class
accuracy from ``predictions.csv``, fused probabilities from the two streams' predictions, video
mAP from ``tubes.json``.
"""

from __future__ import annotations

import csv
from pathlib import Path

import mlflow
import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from tests.servers import start_mlflow_server

pytestmark = pytest.mark.integration


def _predictions(path: Path) -> dict[str, tuple[int, int, np.ndarray]]:
    """{video: (label, predicted, probabilities)} from a predictions.csv."""
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    return {r[0]: (int(r[1]), int(r[2]), np.array([float(p) for p in r[4:]])) for r in rows[1:]}


@pytest.fixture(scope="module")
def served(tiny_pipeline, tmp_path_factory):
    """The tiny pipeline's later stages, tracked by a real MLflow server."""
    from tasks.evaluate import run_evaluate
    from tasks.report import run_report, start_benchmark_run
    from tasks.train import run_finetune, run_train

    store = tmp_path_factory.mktemp("mlflow-server")
    with start_mlflow_server(store, log_path=store / "server.log") as server:
        config = tiny_pipeline.config(
            train={"variants": ["lstm", "convalstm", "videolstm"], "streams": ["rgb", "flow"], "epochs": 1},
            mlflow={"tracking_uri": server.url, "experiment": "served"},
        )
        parent = start_benchmark_run(config)
        trained = run_train(config, tiny_pipeline.features, parent)
        finetuned = run_finetune(config, tiny_pipeline.features, trained, parent)
        evaluated = run_evaluate(
            config, tiny_pipeline.index, tiny_pipeline.frames_flow, tiny_pipeline.features, tiny_pipeline.frame_cnn, trained, finetuned, parent
        )
        report = run_report(config, [tiny_pipeline.index, trained, finetuned, evaluated], parent)
        mlflow.set_tracking_uri(server.url)
        yield config, server, evaluated, report, store
        mlflow.set_tracking_uri(None)


def _runs(config) -> dict[str, mlflow.entities.Run]:
    client = MlflowClient()
    experiment = client.get_experiment_by_name(config.mlflow.experiment)
    return {r.info.run_name: r for r in client.search_runs([experiment.experiment_id], max_results=500)}


def test_runs_metrics_artifacts_and_models_are_read_back_through_the_server(served):
    config, server, evaluated, report, store = served
    assert MlflowClient().tracking_uri == server.url
    runs = _runs(config)
    expected = {
        "lstm-rgb-s0",
        "lstm-flow-s0",
        "convalstm-rgb-s0",
        "convalstm-flow-s0",
        "videolstm-rgb-s0",
        "lstm-fused-s0",
        "convalstm-fused-s0",
        "videolstm-fused-s0",
        "tiny",
    }
    assert expected <= set(runs), sorted(runs)
    parent = runs["tiny"].info.run_id
    for name in expected - {"tiny"}:
        run = runs[name]
        assert run.info.status == "FINISHED" and run.data.tags["mlflow.parentRunId"] == parent
        assert "test/accuracy" in run.data.metrics
    # artifacts live on the server's artifact store, uploaded and downloaded through its proxy
    assert runs["tiny"].info.artifact_uri.startswith("mlflow-artifacts:")
    comparison = Path(mlflow.artifacts.download_artifacts(run_id=parent, artifact_path="report/comparison.md"))
    assert "Table 1" in comparison.read_text() and "Claims of the paper" in comparison.read_text()
    assert any((store / "artifacts").rglob("comparison.md"))
    # registered models through the server, one version per model with its seed
    client = MlflowClient()
    for name in ("videolstm-synthetic-lstm-rgb", "videolstm-synthetic-videolstm-rgb"):
        versions = client.search_model_versions(f"name = '{name}'")
        assert versions and all(v.tags.get("seed") == "0" for v in versions)
    model = mlflow.pyfunc.load_model("models:/videolstm-synthetic-lstm-rgb/latest")
    assert model.metadata.signature is not None


def test_every_logged_accuracy_equals_a_recomputation_from_the_runs_predictions(served):
    config, *_ = served
    runs = _runs(config)
    checked = 0
    for name, run in runs.items():
        if name == "tiny" or "test/accuracy" not in run.data.metrics:
            continue
        path = Path(mlflow.artifacts.download_artifacts(run_id=run.info.run_id, artifact_path="evaluation/predictions.csv"))
        rows = _predictions(path)
        labels = np.array([label for label, _, _ in rows.values()])
        predicted = np.array([p for _, p, _ in rows.values()])
        assert predicted.tolist() == [int(np.argmax(p)) for _, _, p in rows.values()]
        correct = labels == predicted
        metrics = run.data.metrics
        assert metrics["test/accuracy"] == pytest.approx(correct.mean(), abs=1e-12), name
        per_class = {c: correct[labels == c].mean() for c in np.unique(labels)}
        assert metrics["test/mean_class_accuracy"] == pytest.approx(np.mean(list(per_class.values())), abs=1e-12), name
        class_names = config_class_names(served)
        for c, acc in per_class.items():
            assert metrics[f"test/accuracy/{class_names[c]}"] == pytest.approx(acc, abs=1e-12), name
        checked += 1
    assert checked >= 8


def config_class_names(served) -> list[str]:
    _, _, evaluated, _, _ = served
    from videolstm.store.lineage import load_stage_result

    return list(load_stage_result(served[0], "index").extra["class_names"])


def test_each_fused_run_is_the_product_of_its_papers_partners_predictions(served):
    config, *_ = served
    runs = _runs(config)
    partners = {
        "lstm-fused-s0": ("lstm-rgb-s0", "lstm-flow-s0"),
        "convalstm-fused-s0": ("convalstm-rgb-s0", "convalstm-flow-s0"),
        "videolstm-fused-s0": ("videolstm-rgb-s0", "convalstm-flow-s0"),
        "convnet-fused-s0": ("convnet-rgb-s0", "convnet-flow-s0"),
    }
    for fused, (rgb, flow) in partners.items():
        run = runs[fused]
        assert run.data.tags["fused_from"] == f"{rgb}+{flow}" and run.data.params["flow_model"] == flow
        files = {
            n: _predictions(Path(mlflow.artifacts.download_artifacts(run_id=runs[n].info.run_id, artifact_path="evaluation/predictions.csv")))
            for n in (fused, rgb, flow)
        }
        assert set(files[fused]) == set(files[rgb]) == set(files[flow])
        for video, (label, _, probs) in files[fused].items():
            product = files[rgb][video][2] * files[flow][video][2]  # matched by video id
            np.testing.assert_allclose(probs, product / product.sum(), atol=2e-4)  # CSV keeps 5 decimals
            assert label == files[rgb][video][0]


def test_every_logged_video_map_equals_a_recomputation_from_the_saved_tubes(served):
    from videolstm.evaluation.localization import video_map_at
    from videolstm.evaluation.scoring import read_tubes

    config, *_ = served
    runs = _runs(config)
    thresholds = tuple(config.evaluate.localization.iou_thresholds)
    checked = 0
    for name in ("convalstm-rgb-s0", "convalstm-flow-s0", "videolstm-rgb-s0"):
        run = runs[name]
        tubes = Path(mlflow.artifacts.download_artifacts(run_id=run.info.run_id, artifact_path="evaluation/tubes.json"))
        detections, ground_truth, _ = read_tubes(tubes)
        recomputed = video_map_at(detections, ground_truth, thresholds)
        for t, value in recomputed.items():
            assert run.data.metrics[f"loc/mAP_{t:g}"] == pytest.approx(value, abs=1e-12), (name, t)
        checked += 1
    assert checked == 3
