"""Re-evaluate the latest registered model versions and flag regressions.

For every registered model ``videolstm-<dataset>-<variant>-<stream>`` the latest version's
checkpoint is evaluated on the configured test split (the feature stage of this
configuration). Its accuracy is compared with the previous evaluation of that registered model
— the last re-evaluation (tag ``videolstm.last_accuracy`` on the registered model), or the
training run's ``test/accuracy`` the first time. A drop beyond
``evaluate.regression_threshold`` is a regression: the model version gets the tags
``videolstm.regression=true`` and ``videolstm.regression_drop``, and the caller (the
``reevaluate`` flow) ends in a Failed state whose message names each model and its drop.
Every re-evaluation is also an MLflow run (``reevaluate``) with one metric per model.
"""

from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import mlflow
from mlflow.tracking import MlflowClient

from tasks import tracking
from videolstm.config import BenchmarkConfig, stable_digest
from videolstm.store import storage as st
from videolstm.store.lineage import load_stage_result, stage_uri

log = logging.getLogger(__name__)

LAST_ACCURACY_TAG = "videolstm.last_accuracy"
LAST_VERSION_TAG = "videolstm.last_evaluated_version"


@dataclass
class ModelCheck:
    """The outcome of re-evaluating one registered model."""

    name: str
    version: str
    accuracy: float
    previous: float | None
    previous_source: str
    drop: float
    regression: bool

    def describe(self) -> str:
        if self.previous is None:
            return f"{self.name} v{self.version}: accuracy {self.accuracy:.3f} (no previous evaluation)"
        return (
            f"{self.name} v{self.version}: accuracy {self.accuracy:.3f}, previous {self.previous:.3f} "
            f"({self.previous_source}), drop {self.drop:+.3f}{'  REGRESSION' if self.regression else ''}"
        )


def registered_models(client: MlflowClient, dataset: str) -> list[str]:
    """The feature-level models ``videolstm-<dataset>-<variant>-<stream>`` (the end-to-end ``…-video``
    models beside them take videos, not the stored features the re-evaluation reads)."""
    from tasks.mlflow_model import video_model_name

    prefix = f"videolstm-{dataset}-"
    names, token = [], None
    while True:
        page = client.search_registered_models(filter_string=f"name LIKE '{prefix}%'", page_token=token)
        names += [m.name for m in page]
        token = page.token
        if not token:
            video_models = {video_model_name(n) for n in names}
            return sorted(n for n in names if n not in video_models)


def latest_version(client: MlflowClient, name: str):
    versions = client.search_model_versions(f"name = '{name}'")
    if not versions:
        raise LookupError(f"registered model {name} has no versions")
    return max(versions, key=lambda v: int(v.version))


def previous_accuracy(client: MlflowClient, name: str, version) -> tuple[float | None, str]:
    """(accuracy, where it came from) of the previous evaluation of registered model ``name``."""
    model = client.get_registered_model(name)
    if LAST_ACCURACY_TAG in model.tags:
        return float(model.tags[LAST_ACCURACY_TAG]), f"re-evaluation of v{model.tags.get(LAST_VERSION_TAG, '?')}"
    if version.run_id:
        metrics = client.get_run(version.run_id).data.metrics
        if "test/accuracy" in metrics:
            return float(metrics["test/accuracy"]), f"training run of v{version.version}"
    return None, "none"


def reevaluate_models(config: BenchmarkConfig) -> list[ModelCheck]:
    """Evaluate the latest version of every registered model of ``config.dataset.kind``."""
    from tasks.evaluate import evaluate_model, model_test_rows

    experiment_id = tracking.setup(config)
    client = MlflowClient()
    index = load_stage_result(config, "index")
    frames_flow, features = load_stage_result(config, "frames_flow"), load_stage_result(config, "features")
    class_names = list(index.extra["class_names"])
    checks = []
    threshold = config.evaluate.regression_threshold
    for name in registered_models(client, config.dataset.kind):
        version = latest_version(client, name)
        variant, stream = name.removeprefix(f"videolstm-{config.dataset.kind}-").rsplit("-", 1)
        seed = int(version.tags.get("seed", config.train.seeds[0]))
        if variant != "convnet" and str(seed) not in features.extra["manifests"]:
            seed = config.train.seeds[0]  # a version trained with another seed: this configuration's features
        test_rows = model_test_rows({"variant": variant, "seed": seed}, frames_flow, features, config.storage)
        with tempfile.TemporaryDirectory() as tmp:
            local = mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{name}/{version.version}", dst_path=tmp)
            checkpoint = str(Path(local) / "artifacts" / "checkpoint.pt")
            out_uri = st.join(stage_uri(config, "evaluate"), "reevaluate", f"{name}-v{version.version}")
            outcome = evaluate_model(config, name, variant, stream, checkpoint, test_rows, class_names, None, {}, out_uri)
        accuracy = float(outcome["metrics"]["test/accuracy"])
        previous, source = previous_accuracy(client, name, version)
        drop = 0.0 if previous is None else previous - accuracy
        check = ModelCheck(name, str(version.version), accuracy, previous, source, drop, drop > threshold)
        log.info(check.describe())
        checks.append(check)
        client.set_model_version_tag(name, version.version, "videolstm.reeval_accuracy", f"{accuracy:.6f}")
        client.set_model_version_tag(name, version.version, "videolstm.regression", str(check.regression).lower())
        client.set_model_version_tag(name, version.version, "videolstm.regression_drop", f"{drop:.6f}")
        client.set_registered_model_tag(name, LAST_ACCURACY_TAG, f"{accuracy:.6f}")
        client.set_registered_model_tag(name, LAST_VERSION_TAG, str(version.version))
    _log_reevaluation_run(config, experiment_id, checks)
    return checks


def _log_reevaluation_run(config: BenchmarkConfig, experiment_id: str, checks: list[ModelCheck]) -> None:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    run_id, _ = tracking.find_or_create_run(
        experiment_id,
        stable_digest(["reevaluate", stamp, [c.name for c in checks]], 16),
        f"reevaluate {stamp}",
        tags={
            tracking.KIND_TAG: "reevaluate",
            "dataset": config.dataset.kind,
            "split": str(config.dataset.split),
            "videolstm.regressions": str(sum(c.regression for c in checks)),
        },
    )
    tracking.log_metrics(run_id, {f"{c.name}/test/accuracy": c.accuracy for c in checks} | {f"{c.name}/drop": c.drop for c in checks})
    MlflowClient().log_dict(run_id, [asdict(c) for c in checks], "reevaluation.json")
    tracking.finish_run(run_id)
