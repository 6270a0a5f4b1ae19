"""Log a trained variant as an MLflow model (models-from-code pyfunc) and register it.

The model is logged *from code* (:mod:`tasks.mlflow_pyfunc`) with the checkpoint as an artifact,
so nothing is cloudpickled: loading it runs our loader, which reads the checkpoint with
``torch.load(weights_only=True)``. Registered name: ``videolstm-<dataset>-<variant>-<stream>``.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any, Protocol

import mlflow
import numpy as np
from mlflow.models import ModelSignature
from mlflow.types import Schema, TensorSpec

from videolstm import __version__
from videolstm.config import BenchmarkConfig
from videolstm.store import storage as st

log = logging.getLogger(__name__)

PYFUNC_CODE = Path(__file__).with_name("mlflow_pyfunc.py")


class TrainedModel(Protocol):
    """What logging a trained model needs of its training job (a :class:`tasks.train_loop.TrainJob`
    has it); named here so this module does not import the training loop, which imports it."""

    name: str
    variant: str
    stream: str
    seed: int
    spec: dict[str, Any]
    register_as: str | None
    run_key: str


def registered_name(dataset: str, variant: str, stream: str) -> str:
    return f"videolstm-{dataset}-{variant}-{stream}"


#: Model-version tag holding the run key (lineage) of the training run that registered it.
RUN_KEY_TAG = "videolstm.run_key"


def registered_version(name: str, run_key: str) -> str | None:
    """The version of registered model ``name`` registered from ``run_key``, or None."""
    from mlflow.exceptions import MlflowException

    client = mlflow.tracking.MlflowClient()
    try:
        found = client.search_model_versions(f"name = '{name}' and tags.`{RUN_KEY_TAG}` = '{run_key}'", max_results=1)
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return None
        raise
    return str(found[0].version) if found else None


def signature_for(sample: dict[str, np.ndarray] | None, num_classes: int) -> ModelSignature | None:
    """Inputs ``x`` (and ``flow``) as float32 tensors with a free batch and time axis; output (B, K)."""
    if not sample:
        return None
    inputs = Schema([TensorSpec(np.dtype(np.float32), (-1, -1, *v.shape[2:]), name=k) for k, v in sample.items()])
    outputs = Schema([TensorSpec(np.dtype(np.float32), (-1, num_classes), name="probabilities")])
    return ModelSignature(inputs=inputs, outputs=outputs)


def log_model(job: TrainedModel, run_id: str, model_uri: str, config: BenchmarkConfig, sample: dict[str, Any] | None, always_log: bool = False) -> str | None:
    """Log ``model_uri`` (a videolstm checkpoint) into run ``run_id`` and register it as
    ``job.register_as`` (one version per seed, tagged with it); returns the model URI.

    Once per lineage: a version already registered from the job's run key (tag
    :data:`RUN_KEY_TAG`) means another run (or an earlier one) logged it; nothing is logged again
    and None is returned — unless ``always_log`` (a run of another experiment that reuses the
    model): then the run gets the model and the registry keeps its one version."""
    name = job.register_as
    if name and registered_version(name, job.run_key) is not None:
        log.info("%s: %s already has a version from this lineage (run key %s); not registered again", job.name, name, job.run_key)
        if not always_log:
            return None
        name = None
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
        client = mlflow.tracking.MlflowClient()
        client.set_model_version_tag(name, str(info.registered_model_version), "seed", str(job.seed))
        client.set_model_version_tag(name, str(info.registered_model_version), RUN_KEY_TAG, job.run_key)
    log.info("logged %s as %s (registered as %s)", job.name, info.model_uri, name)
    if name:
        from videolstm.store.lineage import MissingStageError

        try:
            log_video_model(run_id, job.name, job.variant, job.stream, job.seed, model_uri, config, video_model_name(name))
        except MissingStageError as exc:
            # the end-to-end model needs the frame CNNs of this configuration's lineage; a model trained on
            # features of another lineage (e.g. a different val_fraction) keeps its feature-level model and
            # says on its run why it has no end-to-end one
            log.warning("%s: no end-to-end model logged: %s", job.name, exc)
            mlflow.tracking.MlflowClient().set_tag(run_id, "videolstm.video_model", f"not logged: {exc}"[:5000])
    return info.model_uri


# ----------------------------------------------------------------------------------------
# the end-to-end model (issue 22): a video in, top-5 and tube out

VIDEO_PYFUNC_CODE = Path(__file__).with_name("mlflow_video_pyfunc.py")
#: The project's library, shipped with the end-to-end model (``code_paths``): no index needs to hold it.
LIBRARY_DIR = Path(__file__).resolve().parents[1] / "videolstm"
#: What the library imports when it predicts, pinned to the versions installed here.
VIDEO_MODEL_PACKAGES = (
    "torch",
    "numpy",
    "opencv-contrib-python-headless",
    "pyarrow",
    "fsspec",
    "pydantic",
    "pyyaml",
    "matplotlib",
    "scipy",
    "statsmodels",
    "pandas",
    "pillow",
)


def library_code(folder: Path) -> str:
    """A copy of the library's Python files (not its data: split files, annotations) under ``folder/videolstm``."""
    import shutil

    target = folder / "videolstm"
    for source in sorted(LIBRARY_DIR.rglob("*.py")):
        relative = source.relative_to(LIBRARY_DIR)
        if "__pycache__" in relative.parts:
            continue
        (target / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target / relative)
    return str(target)


def video_model_name(feature_model_name: str) -> str:
    """``videolstm-<dataset>-<variant>-<stream>-video``: listed next to the feature-level model."""
    return f"{feature_model_name}-video"


def video_model_requirements() -> list[str]:
    """Pinned requirements of the end-to-end model (never ``videolstm``: its code travels with the model)."""
    from importlib.metadata import version

    return [f"{package}=={version(package)}" for package in VIDEO_MODEL_PACKAGES]


def video_model_settings(config: BenchmarkConfig, name: str, variant: str, stream: str, class_names: list[str]) -> dict[str, Any]:
    """settings.json: the training run's config (storage and tracking at their defaults: where the
    run's files were is not the served model's business, and a URI may hold a credential)."""
    data = config.model_dump(mode="json")
    data.pop("storage")
    data.pop("mlflow")
    return {"name": name, "variant": variant, "stream": stream, "class_names": class_names, "config": data}


def log_video_model(run_id: str, name: str, variant: str, stream: str, seed: int, model_uri: str, config: BenchmarkConfig, registered: str | None) -> str:
    """Log the end-to-end model of a trained model into its run (artifact ``video_model``) and register
    it as ``registered``; returns its model URI."""
    import json

    from tasks.stage_models import frame_cnn_uris
    from videolstm.features.inputs import STREAMS
    from videolstm.models import build_model
    from videolstm.store.lineage import load_stage_result

    class_names = list(load_stage_result(config, "index").extra["class_names"])
    if variant == "convnet":
        streams: tuple[str, ...] = ()
    else:
        needs_flow = build_model(variant, 2).needs_flow
        streams = STREAMS if needs_flow else (stream,)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        artifacts = {"checkpoint": str(folder / "checkpoint.pt"), "settings": str(folder / "settings.json")}
        (folder / "checkpoint.pt").write_bytes(st.read_bytes(model_uri, config.storage))
        (folder / "settings.json").write_text(json.dumps(video_model_settings(config, name, variant, stream, class_names)))
        for cnn_stream, uri in frame_cnn_uris(config, seed, streams).items():
            local = folder / f"frame_cnn_{cnn_stream}.pt"
            local.write_bytes(st.read_bytes(uri, config.storage))
            artifacts[f"frame_cnn_{cnn_stream}"] = str(local)
        with mlflow.start_run(run_id=run_id):
            info = mlflow.pyfunc.log_model(
                name="video_model",
                python_model=str(VIDEO_PYFUNC_CODE),
                artifacts=artifacts,
                code_paths=[library_code(folder / "code")],
                registered_model_name=registered,
                pip_requirements=video_model_requirements(),
                await_registration_for=30,
            )
    if registered and info.registered_model_version is not None:
        mlflow.tracking.MlflowClient().set_model_version_tag(registered, str(info.registered_model_version), "seed", str(seed))
    log.info("logged the end-to-end model of %s as %s (registered as %s)", name, info.model_uri, registered)
    return info.model_uri
