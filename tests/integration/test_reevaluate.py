"""The re-evaluation flow: latest registered versions evaluated, a regression flagged loudly."""

from __future__ import annotations

import tempfile
from pathlib import Path

import mlflow
import numpy as np
import pytest
import torch
from mlflow.tracking import MlflowClient

from tasks import tracking
from tasks.mlflow_model import PYFUNC_CODE
from videolstm.store.checkpoint import ModelSpec, checkpoint_state, save_checkpoint
from videolstm.store.manifest import read_manifest
from videolstm.training import make_optimizer, sequence_forward, snippet_batch

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def prefect_server():
    """Prefect's test harness: a temporary server for these flow runs, stopped when they end."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield

NAME = "videolstm-synthetic-convlstm-rgb"


def _register(model: torch.nn.Module, spec: ModelSpec, experiment_id: str) -> str:
    """Log ``model`` as a new version of NAME (models-from-code pyfunc, as the pipeline does)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "checkpoint.pt")
        save_checkpoint(path, checkpoint_state(1, model, spec, extra={"job": "convlstm-rgb"}))
        with mlflow.start_run(experiment_id=experiment_id, run_name="reevaluate-test-model"):
            info = mlflow.pyfunc.log_model(name="model", python_model=str(PYFUNC_CODE), artifacts={"checkpoint": path},
                                           registered_model_name=NAME, pip_requirements=["videolstm"])
    return info.registered_model_version


def test_reevaluate_passes_a_stable_model_and_fails_naming_a_regressed_one(tiny_pipeline, prefect_server):
    from flows.reevaluate import reevaluate

    config = tiny_pipeline.config(evaluate={"regression_threshold": 0.1})
    experiment_id = tracking.setup(config)
    test_rows = [{"video_id": r.video_id, "shard": r.shard, "label": r.label}
                 for r in read_manifest(tiny_pipeline.features.manifest_uri) if r.ok and r.subset == "test"]
    assert len({r["label"] for r in test_rows}) == 2
    # A model that fits the test videos exactly (trained on them): its re-evaluation is 100 %.
    # ConvLSTM on the pool5 maps: the tiny frame CNN's fc7 vectors of the two videos differ by
    # ~0.1 %, too little for a small LSTM to separate; the maps keep where the actor is.
    sizes = tiny_pipeline.features.extra["feature_sizes"]
    spec = ModelSpec("convlstm", 2, {"input_channels": sizes["channels"], "spatial_size": tuple(sizes["spatial_size"]),
                                     "hidden_channels": 4, "fc_dim": 8, "dropout": 0.0})
    torch.manual_seed(0)
    model = spec.build()
    optimizer = make_optimizer("adam", model.parameters(), 1e-2)
    for step in range(200):
        batch = snippet_batch(test_rows, "rgb_pool5", None, config.evaluate.segment_length, np.random.default_rng(step))
        loss, _ = sequence_forward(model, batch, torch.device("cpu"))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.1, f"the reference model did not fit the two test videos (loss {loss.item():.3f})"
    _register(model, spec, experiment_id)
    first = reevaluate(config, return_state=True)
    assert first.is_completed(), first.message
    client = MlflowClient()
    assert float(client.get_registered_model(NAME).tags["videolstm.last_accuracy"]) == 1.0

    # The next version predicts the opposite class (its readout negated): accuracy drops to 0.
    with torch.no_grad():
        model.readout.classifier.weight.neg_()
        model.readout.classifier.bias.neg_()
    version = _register(model, spec, experiment_id)
    second = reevaluate(config, return_state=True)
    assert second.is_failed()
    assert NAME in second.message and f"v{version}" in second.message and "dropped 1.000" in second.message, second.message
    tags = client.get_model_version(NAME, version).tags
    assert tags["videolstm.regression"] == "true" and np.isclose(float(tags["videolstm.regression_drop"]), 1.0)
    # the stable models of the same run were not flagged
    others = [m.name for m in client.search_registered_models() if m.name != NAME]
    for name in others:
        latest = max(client.search_model_versions(f"name = '{name}'"), key=lambda v: int(v.version))
        assert client.get_model_version(name, latest.version).tags.get("videolstm.regression") == "false"
