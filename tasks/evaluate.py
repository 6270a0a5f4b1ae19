"""Stage 6: evaluate every trained model on the test split, fuse the streams, localize, log.

One Ray task per model runs the paper's test protocol, the localization and the plots (library
calls in ``videolstm.inference`` and ``videolstm.evaluation.scoring``) and writes its artifact folder to
``<evaluate stage>/<variant>-<stream>/``. The driver fuses RGB and flow (product of
probabilities), then logs metrics and artifacts into each model's MLflow run — the training
run, continued — and a nested run per fused pair.
"""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import ray

from tasks import tracking
from videolstm.store import storage as st
from videolstm.store.checkpoint import load_checkpoint, restore_model
from videolstm.config import BenchmarkConfig, StorageConfig, stable_digest
from videolstm.inference import Predictions, convnet_predictions, predict_videos
from videolstm.store.lineage import StageResult, lineages, stage_result, stage_uri
from videolstm.store.manifest import ItemResult, failure_summary, read_manifest, write_manifest
from videolstm.models.protocol import fuse_probabilities
from videolstm.evaluation.calibration import calibrate_predictions, is_calibration_metric
from videolstm.evaluation.scoring import ground_truth_for, overlay_videos, render_overlays, score_classification, score_localization
from videolstm.training import feature_columns

log = logging.getLogger(__name__)

#: Fusion partner of the motion variants (RGB + attention from flow): the flow stream of the
#: appearance-attention counterpart, as the two-stream VideoLSTM of the paper.
FUSION_PARTNER = {"videolstm": "convalstm", "motion_alstm": "alstm"}


# ----------------------------------------------------------------------------------------
# one model (runs in a Ray task)


def evaluate_model(
    config: BenchmarkConfig,
    name: str,
    variant: str,
    stream: str,
    model_uri: str | None,
    test_rows: list[dict],
    class_names: list[str],
    annotations_uri: str | None,
    video_paths: dict[str, str],
    out_uri: str,
) -> dict[str, Any]:
    """Predict, score and render one model; returns metrics and its predictions."""
    from videolstm.data.datasets import load_ucf101_24
    from videolstm.data.video import decode_video, probe_video

    e = config.evaluate
    if variant == "convnet":
        predictions = convnet_predictions(test_rows, stream, e.num_segments, e.segment_length, config.storage)
        has_attention = False
    else:
        model, _ = restore_model(load_checkpoint(model_uri, config.storage))
        x_column, flow_column = feature_columns(model.input_kind, model.needs_flow, stream)
        has_attention = bool(model.has_attention)
        predictions = predict_videos(model, test_rows, x_column, flow_column, e.num_segments, e.segment_length,
                                     whole_video=has_attention, storage=config.storage)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        metrics = score_classification(predictions, class_names, out, name)
        if has_attention and annotations_uri:
            gt = ground_truth_for(load_ucf101_24(annotations_uri, storage=config.storage), predictions.video_ids)
            sizes = {}
            for video in gt:
                info = probe_video(video_paths[video], storage=config.storage)
                sizes[video] = (info.height, info.width)
            loc_metrics, tubes, _ = score_localization(predictions, gt, sizes, e.localization, out, name)
            metrics.update(loc_metrics)
            # issue 13: oracle / uniform / centre attention through the same hook and box pipeline
            metrics.update(calibrate_predictions(model, test_rows, x_column, predictions, gt, sizes, e.localization, out, config.storage))
            chosen = overlay_videos(list(gt), [predictions.labels[predictions.video_ids.index(v)] for v in gt], e.overlays_per_class)
            frames = {v: decode_video(video_paths[v], storage=config.storage) for v in chosen}
            render_overlays(frames, predictions, tubes, gt, class_names, out / "overlays")
        _upload_dir(out, out_uri, config.storage)
    return {"name": name, "metrics": metrics, "predictions": predictions}


@ray.remote(num_cpus=1)
def _evaluate_remote(config_json: dict, *args: Any) -> dict[str, Any]:
    import torch

    torch.set_num_threads(1)
    return evaluate_model(BenchmarkConfig.model_validate(config_json), *args)


def _upload_dir(local: Path, uri: str, storage: StorageConfig) -> None:
    for path in sorted(p for p in local.rglob("*") if p.is_file()):
        st.write_bytes(st.join(uri, str(path.relative_to(local))), path.read_bytes(), storage)


def _download_dir(uri: str, local: Path, storage: StorageConfig) -> None:
    fs, path = st.get_fs(uri, storage)
    if st.is_local(uri):
        import shutil

        shutil.copytree(st.local_path(uri), local, dirs_exist_ok=True)
    else:
        st.with_retries(lambda: fs.get(path.rstrip("/") + "/", str(local), recursive=True), f"downloading {uri}")


# ----------------------------------------------------------------------------------------
# the stage


def _models(trained: StageResult, frame_cnn: StageResult, storage: StorageConfig) -> list[dict[str, Any]]:
    """Every model to evaluate: ConvNet per stream and each trained (variant, stream)."""
    models = []
    for item in read_manifest(frame_cnn.manifest_uri, storage):
        if item.ok:
            variant, stream = item.video_id.split("-", 1)
            models.append({"name": item.video_id, "variant": variant, "stream": stream, "model_uri": item.shard, "run_key": item.key})
    for item in read_manifest(trained.manifest_uri, storage):
        if item.ok:
            variant, stream = item.video_id.rsplit("-", 1)
            models.append({"name": item.video_id, "variant": variant, "stream": stream, "model_uri": item.shard, "run_key": item.key})
    return models


def fused_pairs(names: set[str]) -> list[tuple[str, str, str]]:
    """(variant, rgb model, flow model) for every variant whose two streams were evaluated."""
    pairs = []
    for name in sorted(names):
        variant, stream = name.rsplit("-", 1)
        if stream != "rgb":
            continue
        partner = f"{FUSION_PARTNER.get(variant, variant)}-flow"
        if partner in names:
            pairs.append((variant, name, partner))
    return pairs


def feature_test_rows(features: StageResult, config: BenchmarkConfig) -> list[dict[str, Any]]:
    """(video_id, shard, label) of every test video with features; an error when there is none."""
    rows = [{"video_id": r.video_id, "shard": r.shard, "label": r.label}
            for r in read_manifest(features.manifest_uri, config.storage) if r.ok and r.subset == "test"]
    if not rows:
        raise RuntimeError(f"no test video has features (see {features.manifest_uri}); run the benchmark's stages up to features first")
    return rows


def run_evaluate(
    config: BenchmarkConfig, index: StageResult, features: StageResult, frame_cnn: StageResult, trained: StageResult, parent_run_id: str | None = None
) -> StageResult:
    from tasks.runtime import init_ray

    started = time.perf_counter()
    uri = stage_uri(config, "evaluate")
    input_key = stable_digest([lineages(config)["evaluate"], index.content, features.content, frame_cnn.content, trained.content], 16)
    previous = _finished_result(config, input_key)
    if previous is not None:
        log.info("evaluation: reused %s (same models, same test set)", previous.uri)
        return previous
    class_names = list(index.extra["class_names"])
    test_rows = feature_test_rows(features, config)
    from videolstm.data.datasets import read_index

    paths = dict(zip(*[read_index(index.manifest_uri, storage=config.storage).column(c).to_pylist() for c in ("video_id", "path")]))
    models = _models(trained, frame_cnn, config.storage)
    results: list[ItemResult] = []
    annotations = _usable_annotations(index.extra.get("annotations"), config, results)
    init_ray(config)
    config_json = config.model_dump(mode="json")
    futures = {
        m["name"]: _evaluate_remote.remote(
            config_json, m["name"], m["variant"], m["stream"], m["model_uri"], test_rows, class_names,
            annotations, paths, st.join(uri, m["name"]),
        )
        for m in models
    }
    outcomes: dict[str, dict[str, Any]] = {}
    for name, future in futures.items():
        try:
            outcomes[name] = ray.get(future)
            results.append(ItemResult(video_id=name, status="ok", key=stable_digest([lineages(config)["evaluate"], name], 16), shard=st.join(uri, name)))
        except Exception as exc:  # recorded in the manifest, the other models go on
            log.error("evaluating %s failed: %s", name, exc)
            results.append(ItemResult(video_id=name, status="failed", key="", reason=f"{type(exc).__name__}: {exc}"))
    rows = _log_models(config, models, outcomes, class_names, uri, parent_run_id)
    rows += _fuse(config, outcomes, class_names, uri, parent_run_id, results)
    manifest_uri = write_manifest(st.join(uri, "manifest.parquet"), results, config.storage)
    summary = failure_summary(results, manifest_uri, "evaluation")
    if summary:
        log.warning(summary)
    return stage_result("evaluate", uri, manifest_uri, lineages(config)["evaluate"], results, time.perf_counter() - started,
                        computed=len(results), storage=config.storage, rows=rows, input_key=input_key)


def _finished_result(config: BenchmarkConfig, input_key: str) -> StageResult | None:
    """The saved result of an evaluation of exactly these inputs that had no failure, if any."""
    from videolstm.store.lineage import MissingStageError, load_stage_result

    try:
        result = load_stage_result(config, "evaluate")
    except MissingStageError:
        return None
    if result.extra.get("input_key") != input_key or result.failed:
        return None
    return result.model_copy(update={"computed": 0, "seconds": 0.0})


def _usable_annotations(uri: str | None, config: BenchmarkConfig, results: list[ItemResult]) -> str | None:
    """``uri`` if the annotation file loads; else None, with the reason recorded as a failed item.

    A bad annotation file costs the localization metrics, never the classification results.
    """
    if not uri:
        return None
    import pickle

    from videolstm.data.datasets import load_ucf101_24

    try:
        load_ucf101_24(uri, storage=config.storage)
    except (ValueError, OSError, EOFError, pickle.UnpicklingError) as exc:
        reason = f"localization skipped, annotation file {uri} is unusable: {exc}"
        log.error(reason)
        results.append(ItemResult(video_id="annotations", status="failed", key="", reason=reason))
        return None
    return uri


def _result_row(variant: str, stream: str, seed: int, metrics: dict[str, float], run_id: str | None) -> dict[str, Any]:
    keep = {k: v for k, v in metrics.items() if k.count("/") == 1 or is_calibration_metric(k)}  # not the per-class metrics
    return {"variant": variant, "stream": stream, "seed": seed, "run_id": run_id, **keep}


def _log_models(config, models, outcomes, class_names, uri, parent_run_id) -> list[dict[str, Any]]:
    experiment_id = tracking.setup(config)
    rows = []
    for m in models:
        outcome = outcomes.get(m["name"])
        if outcome is None:
            continue
        run_id, _ = tracking.find_or_create_run(
            experiment_id, m["run_key"], m["name"], parent_run_id=parent_run_id,
            tags={"variant": m["variant"], "stream": m["stream"], "dataset": config.dataset.kind, "split": str(config.dataset.split)},
        )
        _log_metrics_and_artifacts(config, run_id, outcome["metrics"], st.join(uri, m["name"]))
        rows.append(_result_row(m["variant"], m["stream"], config.train.seed, outcome["metrics"], run_id))
    return rows


def _log_metrics_and_artifacts(config: BenchmarkConfig, run_id: str, metrics: dict[str, float], artifacts_uri: str) -> None:
    tracking.log_metrics(run_id, metrics)
    with tempfile.TemporaryDirectory() as tmp:
        _download_dir(artifacts_uri, Path(tmp), config.storage)
        mlflow.tracking.MlflowClient().log_artifacts(run_id, tmp, artifact_path="evaluation")
    tracking.finish_run(run_id)


def _fuse(config, outcomes, class_names, uri, parent_run_id, results) -> list[dict[str, Any]]:
    """Two-stream fusion (product of probabilities) of every variant with both streams."""
    experiment_id = tracking.setup(config)
    rows = []
    for variant, rgb_name, flow_name in fused_pairs(set(outcomes)):
        rgb: Predictions = outcomes[rgb_name]["predictions"]
        flow: Predictions = outcomes[flow_name]["predictions"].subset(rgb.video_ids)
        fused = Predictions(rgb.video_ids, rgb.labels, fuse_probabilities(rgb.probabilities, flow.probabilities, config.evaluate.fusion).numpy())
        name = f"{variant}-fused"
        with tempfile.TemporaryDirectory() as tmp:
            metrics = score_classification(fused, class_names, Path(tmp), f"{variant} RGB+Flow ({config.evaluate.fusion})")
            _upload_dir(Path(tmp), st.join(uri, name), config.storage)
        run_key = stable_digest([lineages(config)["evaluate"], name, config.train.seed], 16)
        run_id, _ = tracking.find_or_create_run(
            experiment_id, run_key, name, parent_run_id=parent_run_id,
            tags={"variant": variant, "stream": "fused", "dataset": config.dataset.kind, "split": str(config.dataset.split),
                  "fused_from": f"{rgb_name}+{flow_name}"},
        )
        tracking.log_params(run_id, {"variant": variant, "stream": "fused", "fusion": config.evaluate.fusion, "rgb_model": rgb_name, "flow_model": flow_name,
                                     "dataset": config.dataset.kind, "split": config.dataset.split})
        _log_metrics_and_artifacts(config, run_id, metrics, st.join(uri, name))
        results.append(ItemResult(video_id=name, status="ok", key=run_key, shard=st.join(uri, name)))
        rows.append(_result_row(variant, "fused", config.train.seed, metrics, run_id))
    return rows


def evaluate_single(config: BenchmarkConfig, checkpoint: str | None = None, run_id: str | None = None) -> dict[str, float]:
    """Evaluate one model (a checkpoint URI or an MLflow run's model) on this config's test split."""
    from videolstm.store.lineage import load_stage_result

    if run_id:
        tracking.setup(config)
        local = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="model/artifacts/checkpoint.pt")
        checkpoint = local
    state = load_checkpoint(checkpoint, config.storage)
    variant = state["model_spec"]["variant"]
    name = state["extra"].get("job", variant)
    stream = name.rsplit("-", 1)[-1] if "-" in name else "rgb"
    index = load_stage_result(config, "index")
    features = load_stage_result(config, "features")
    test_rows = feature_test_rows(features, config)
    from videolstm.data.datasets import read_index

    paths = dict(zip(*[read_index(index.manifest_uri, storage=config.storage).column(c).to_pylist() for c in ("video_id", "path")]))
    out_uri = st.join(stage_uri(config, "evaluate"), "single", stable_digest([checkpoint], 12))
    outcome = evaluate_model(config, name, variant if state["model_spec"].get("kind") != "frame_cnn" else "convnet", stream,
                             checkpoint, test_rows, list(index.extra["class_names"]), index.extra.get("annotations"), paths, out_uri)
    if run_id:
        _log_metrics_and_artifacts(config, run_id, outcome["metrics"], out_uri)
    return {k: float(v) for k, v in outcome["metrics"].items() if k.count("/") == 1 or is_calibration_metric(k)}
