"""Log a trained variant as an MLflow model (models-from-code pyfunc) and register it.

The model is logged *from code* (:mod:`tasks.mlflow_pyfunc`) with the checkpoint as an artifact,
so nothing is cloudpickled: loading it runs our loader, which reads the checkpoint with
``torch.load(weights_only=True)``. Registered name: ``videolstm-<dataset>-<variant>-<stream>``.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
from mlflow.models import ModelSignature
from mlflow.types import Schema, TensorSpec

from tasks.train_loop import TrainJob
from videolstm import __version__
from videolstm.store import storage as st
from videolstm.config import BenchmarkConfig

log = logging.getLogger(__name__)

PYFUNC_CODE = Path(__file__).with_name("mlflow_pyfunc.py")


def registered_name(dataset: str, variant: str, stream: str) -> str:
    return f"videolstm-{dataset}-{variant}-{stream}"


def signature_for(sample: dict[str, np.ndarray] | None, num_classes: int) -> ModelSignature | None:
    """Inputs ``x`` (and ``flow``) as float32 tensors with a free batch and time axis; output (B, K)."""
    if not sample:
        return None
    inputs = Schema([TensorSpec(np.dtype(np.float32), (-1, -1, *v.shape[2:]), name=k) for k, v in sample.items()])
    outputs = Schema([TensorSpec(np.dtype(np.float32), (-1, num_classes), name="probabilities")])
    return ModelSignature(inputs=inputs, outputs=outputs)


def log_model(job: TrainJob, run_id: str, model_uri: str, config: BenchmarkConfig, sample: dict[str, Any] | None) -> str | None:
    """Log ``model_uri`` (a videolstm checkpoint) into run ``run_id`` and register it as
    ``job.register_as`` (one version per seed, tagged with it); returns the model URI."""
    name = job.register_as
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(tmp) / "checkpoint.pt"
        local.write_bytes(st.read_bytes(model_uri, config.storage))
        with mlflow.start_run(run_id=run_id):
            info = mlflow.pyfunc.log_model(
                name="model",
                python_model=str(PYFUNC_CODE),
                artifacts={"checkpoint": str(local)},
                signature=signature_for(sample, job.spec["num_classes"]),
                registered_model_name=name,
                pip_requirements=[f"videolstm=={__version__}", "torch", "numpy"],
                await_registration_for=30,
            )
    if info.registered_model_version is not None:
        mlflow.tracking.MlflowClient().set_model_version_tag(name, str(info.registered_model_version), "seed", str(job.seed))
    log.info("logged %s as %s (registered as %s)", job.name, info.model_uri, name)
    return info.model_uri
