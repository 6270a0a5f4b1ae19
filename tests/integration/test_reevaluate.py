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
from videolstm.models.restore import build_from_spec, restore_model
from videolstm.store.checkpoint import ModelSpec, checkpoint_state, load_checkpoint, save_checkpoint
from videolstm.store.manifest import read_manifest
from videolstm.training import frame_batch, frame_forward, make_optimizer, sequence_forward, snippet_batch

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def prefect_server():
    """Prefect's test harness: a temporary server for these flow runs, stopped when they end."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


NAME = "videolstm-synthetic-convlstm-rgb"
CONVNET = "videolstm-synthetic-convnet-rgb"


def _register(model: torch.nn.Module, spec: ModelSpec, experiment_id: str, name: str, job: str) -> str:
    """Log ``model`` as a new version of ``name`` (models-from-code pyfunc, as the pipeline does)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "checkpoint.pt")
        save_checkpoint(path, checkpoint_state(1, model, spec, extra={"job": job, "seed": "0", "stream": "rgb"}))
        with mlflow.start_run(experiment_id=experiment_id, run_name="reevaluate-test-model"):
            info = mlflow.pyfunc.log_model(
                name="model", python_model=str(PYFUNC_CODE), artifacts={"checkpoint": path}, registered_model_name=name, pip_requirements=["videolstm"]
            )
    MlflowClient().set_model_version_tag(name, info.registered_model_version, "seed", "0")
    return info.registered_model_version


def _fit(model: torch.nn.Module, batches, forward, steps: int = 200) -> float:
    optimizer = make_optimizer("adam", model.parameters(), 1e-2)
    for step in range(steps):
        loss, _ = forward(model, batches(step), torch.device("cpu"))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return loss.item()


def _negate_classifier(classifier: torch.nn.Linear) -> None:
    """The next version predicts the opposite class of two (its classifier negated)."""
    with torch.no_grad():
        classifier.weight.neg_()
        classifier.bias.neg_()


def test_reevaluate_passes_stable_models_and_fails_naming_regressed_ones(tiny_pipeline, prefect_server):
    """A recurrent model and a ConvNet (frame CNN, loaded from its checkpoint) that fit the test
    videos re-evaluate at 100 %; their next versions, classifiers negated, are flagged."""
    from flows.reevaluate import reevaluate

    config = tiny_pipeline.config(evaluate={"regression_threshold": 0.1})
    experiment_id = tracking.setup(config)
    test_rows = [
        {"video_id": r.video_id, "shard": r.shard, "label": r.label}
        for r in read_manifest(tiny_pipeline.features.extra["manifests"]["0"])
        if r.ok and r.subset == "test"
    ]
    assert len({r["label"] for r in test_rows}) == 2
    # A ConvLSTM on the pool5 maps that fits the test videos (trained on them): 100 %. (The tiny
    # frame CNN's fc7 vectors of the two videos differ by ~0.1 %, too little for a small LSTM.)
    sizes = tiny_pipeline.features.extra["feature_sizes"]
    spec = ModelSpec(
        "convlstm", 2, {"input_channels": sizes["channels"], "spatial_size": tuple(sizes["spatial_size"]), "hidden_channels": 4, "fc_dim": 8, "dropout": 0.0}
    )
    torch.manual_seed(0)
    model = build_from_spec(spec)
    length = config.evaluate.segment_length
    loss = _fit(model, lambda step: snippet_batch(test_rows, "rgb_pool5", None, length, np.random.default_rng(step)), sequence_forward)
    assert loss < 0.1, f"the reference model did not fit the two test videos (loss {loss:.3f})"
    _register(model, spec, experiment_id, NAME, "convlstm-rgb-s0")
    # The RGB frame CNN of the pipeline, fitted to the test videos' frames the same way.
    frame_rows = [
        {"video_id": r.video_id, "shard": r.shard, "label": r.label}
        for r in read_manifest(tiny_pipeline.frames_flow.manifest_uri)
        if r.ok and r.subset == "test"
    ]
    cnn_item = next(r for r in read_manifest(tiny_pipeline.frame_cnn.manifest_uri) if r.video_id == "convnet-rgb-s0")
    cnn, cnn_spec = restore_model(load_checkpoint(cnn_item.shard))
    cnn.train()
    cnn_loss = _fit(cnn, lambda step: frame_batch(frame_rows, "rgb", 8, 2, np.random.default_rng(step)), frame_forward, steps=150)
    assert cnn_loss < 0.1, f"the frame CNN did not fit the test frames (loss {cnn_loss:.3f})"
    cnn.eval()
    _register(cnn, cnn_spec, experiment_id, CONVNET, "convnet-rgb-s0")

    first = reevaluate(config, return_state=True)
    assert first.is_completed(), first.message
    client = MlflowClient()
    for name in (NAME, CONVNET):
        assert float(client.get_registered_model(name).tags["videolstm.last_accuracy"]) == 1.0, name

    _negate_classifier(model.readout.classifier)
    version = _register(model, spec, experiment_id, NAME, "convlstm-rgb-s0")
    _negate_classifier(cnn.head[-1])
    cnn_version = _register(cnn, cnn_spec, experiment_id, CONVNET, "convnet-rgb-s0")
    second = reevaluate(config, return_state=True)
    assert second.is_failed()
    for name, v in ((NAME, version), (CONVNET, cnn_version)):
        assert name in second.message and f"{name} v{v} accuracy dropped 1.000" in second.message, second.message
        tags = client.get_model_version(name, v).tags
        assert tags["videolstm.regression"] == "true" and np.isclose(float(tags["videolstm.regression_drop"]), 1.0)
    # the stable models of the same run were not flagged (the end-to-end ``…-video`` models take videos:
    # the re-evaluation reads stored features and leaves them out)
    others = [m.name for m in client.search_registered_models() if m.name not in (NAME, CONVNET) and not m.name.endswith("-video")]
    assert others
    for name in others:
        latest = max(client.search_model_versions(f"name = '{name}'"), key=lambda v: int(v.version))
        assert client.get_model_version(name, latest.version).tags.get("videolstm.regression") == "false"
