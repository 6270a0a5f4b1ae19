"""What the MLflow UI is given: the experiment's kind, the parent run's key metrics, the runs URL."""

from __future__ import annotations

import mlflow

from tasks import tracking
from tasks.report import parent_metrics
from videolstm.config import load_config


def test_the_parent_run_gets_each_models_accuracy_and_map_at_0_2_and_nothing_else():
    rows = [
        {"variant": "videolstm", "stream": "rgb", "test/accuracy": 0.6875, "loc/mAP_0.2": 0.33, "loc/mAP_0.1": 0.4},
        {"variant": "lstm", "stream": "fused", "test/accuracy": 0.58},  # no localization for this one
    ]
    assert parent_metrics(rows) == {"videolstm.rgb/test/accuracy": 0.6875, "videolstm.rgb/loc/mAP_0.2": 0.33, "lstm.fused/test/accuracy": 0.58}


def test_experiments_are_tagged_as_model_training_including_ones_made_before(tmp_path):
    config = load_config({"storage": {"root": str(tmp_path)}, "mlflow": {"experiment": "kind"}})
    mlflow.set_tracking_uri(tracking.tracking_uri(config))
    old = mlflow.MlflowClient().create_experiment("older")  # as an earlier version created it: no kind
    experiment_id = tracking.setup(config)
    older = tracking.setup(config.model_copy(update={"mlflow": config.mlflow.model_copy(update={"experiment": "older"})}))
    assert older == old
    for eid in (experiment_id, older):
        assert mlflow.MlflowClient().get_experiment(eid).tags[tracking.EXPERIMENT_KIND_TAG] == "custom_model_development"


def test_the_printed_link_selects_model_training_and_the_runs_page():
    assert tracking.experiment_url("http://127.0.0.1:5000/", "3") == ("http://127.0.0.1:5000/#/experiments/3/runs?workflowType=machine_learning")
