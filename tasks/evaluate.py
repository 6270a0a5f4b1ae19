"""Stage 6: evaluate every trained model of every seed on the test split, fuse the streams, localize, log.

One Ray task per model runs the paper's test protocol, the localization and the plots (library
calls in ``videolstm.inference`` and ``videolstm.evaluation.scoring``) and writes its artifact
folder to ``<evaluate stage>/<model name>/``. Every model is loaded from its checkpoint — the
ConvNet too (the frame CNN over every test frame, :func:`videolstm.inference.frame_cnn_predictions`).
The driver fuses RGB and flow of the same seed (product of probabilities, aligned by video id),
then logs metrics and artifacts into each model's MLflow run — the training run, continued and
ended again, so the run spans training to evaluation — and a nested run per fused pair.
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
from tasks.console import StageProgress, stage_progress
from videolstm.config import BenchmarkConfig, StorageConfig, stable_digest
from videolstm.evaluation.calibration import calibrate_predictions, is_calibration_metric
from videolstm.evaluation.scoring import ground_truth_for, overlay_videos, render_overlays, score_classification, score_localization
from videolstm.inference import Predictions, frame_cnn_predictions, predict_videos
from videolstm.models import VARIANTS
from videolstm.models.protocol import fuse_probabilities
from videolstm.models.restore import restore_model
from videolstm.store import storage as st
from videolstm.store.checkpoint import CheckpointError, load_checkpoint
from videolstm.store.lineage import StageResult, lineages, stage_result, stage_uri
from videolstm.store.manifest import ItemResult, failure_summary, read_manifest, write_manifest
from videolstm.training import feature_columns

log = logging.getLogger(__name__)

#: Fusion partner of the motion variants (RGB + attention from flow): the flow stream of the
#: appearance-attention counterpart, as the two-stream VideoLSTM of the paper.
FUSION_PARTNER = {"videolstm": "convalstm", "motion_alstm": "alstm"}


# ----------------------------------------------------------------------------------------
# one model (runs in a Ray task)


def load_model_checkpoint(uri: str, variant: str, storage: StorageConfig | None) -> tuple[Any, Any]:
    """(model, spec) from a checkpoint, checked to hold ``variant`` (a frame CNN for "convnet")."""
    model, spec = restore_model(load_checkpoint(uri, storage))
    is_frame_cnn = spec.kind == "frame_cnn"
    if (variant == "convnet") != is_frame_cnn or (not is_frame_cnn and spec.variant != variant):
        held = f"a {spec.variant} frame CNN" if is_frame_cnn else f"a {spec.variant} model"
        raise CheckpointError(f"checkpoint {uri} holds {held}, not the {variant} model asked for")
    return model, spec


def evaluate_model(
    config: BenchmarkConfig,
    name: str,
    variant: str,
    stream: str,
    model_uri: str,
    test_rows: list[dict],
    class_names: list[str],
    annotations_uri: str | None,
    video_paths: dict[str, str],
    out_uri: str,
    overlays: bool = True,
) -> dict[str, Any]:
    """Predict, score and render one model from its checkpoint; returns metrics and its predictions.

    ``test_rows``: {"video_id", "shard", "label"} — frames+flow shards for the ConvNet (a frame
    CNN), feature shards for the recurrent variants. A missing checkpoint, or one that holds
    another model, is a :class:`~videolstm.store.checkpoint.CheckpointError` naming it.
    """
    from videolstm.data.datasets import load_ucf101_24
    from videolstm.data.video import decode_video, probe_video

    e = config.evaluate
    model, spec = load_model_checkpoint(model_uri, variant, config.storage)
    if variant == "convnet":
        predictions = frame_cnn_predictions(
            model,
            test_rows,
            stream,
            config.frame_cnn.flow_stack,
            e.num_segments,
            e.segment_length,
            config.storage,
            batch_frames=config.features.batch_frames,
            placement=e.segment_placement,
        )
        has_attention = False
    else:
        x_column, flow_column = feature_columns(model.input_kind, model.needs_flow, stream, model.flow_kind)
        has_attention = bool(model.has_attention)
        oracle = has_attention and config.train.attention_source == "oracle"  # issue 20: the ground truth replaces the attention
        maps = oracle_test_maps(config, model, test_rows, annotations_uri, video_paths) if oracle else None
        predictions = predict_videos(
            model,
            test_rows,
            x_column,
            flow_column,
            e.num_segments,
            e.segment_length,
            whole_video=has_attention,
            storage=config.storage,
            placement=e.segment_placement,
            attention_maps=maps,
        )
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        metrics = score_classification(predictions, class_names, out, name)
        if has_attention and annotations_uri:
            gt = ground_truth_for(load_ucf101_24(annotations_uri, storage=config.storage, limits=config.dataset.limits), predictions.video_ids)
            sizes = {}
            for video in gt:
                info = probe_video(video_paths[video], storage=config.storage)
                sizes[video] = (info.height, info.width)
            loc_metrics, tubes, _ = score_localization(predictions, gt, sizes, e.localization, out, name)
            metrics.update(loc_metrics)
            # issue 13: oracle / uniform / centre / motion-energy attention through the same hook and box pipeline
            metrics.update(calibrate_predictions(model, test_rows, x_column, predictions, gt, sizes, e.localization, out, config.storage))
            if overlays:
                chosen = overlay_videos(list(gt), [predictions.labels[predictions.video_ids.index(v)] for v in gt], e.overlays_per_class)
                frames = {v: decode_video(video_paths[v], storage=config.storage) for v in chosen}
                render_overlays(frames, predictions, tubes, gt, class_names, out / "overlays")
        _upload_dir(out, out_uri, config.storage)
    return {"name": name, "metrics": metrics, "predictions": predictions}


def oracle_test_maps(config: BenchmarkConfig, model: Any, test_rows: list[dict], annotations_uri: str | None, video_paths: dict[str, str]) -> Any:
    """``maps(video_id, frames)``: the test videos' ground truth at the model's attention resolution
    (``train.attention_source: oracle``, issue 20) — every tube, uniform where a video or step has no box."""
    from videolstm.attention_guidance import box_targets, oracle_lookup
    from videolstm.data.datasets import load_ucf101_24
    from videolstm.data.video import probe_video

    targets: dict[str, Any] = {}
    if annotations_uri:
        gt = ground_truth_for(load_ucf101_24(annotations_uri, storage=config.storage, limits=config.dataset.limits), [r["video_id"] for r in test_rows])
        sizes = {}
        for video in gt:
            info = probe_video(video_paths[video], storage=config.storage)
            sizes[video] = (info.height, info.width)
        targets = box_targets(gt, sizes)
    return oracle_lookup(targets, tuple(model.spatial_size))


@ray.remote(num_cpus=1)
def _evaluate_remote(config_json: dict, *args: Any, **kwargs: Any) -> dict[str, Any]:
    import torch

    torch.set_num_threads(1)
    return evaluate_model(BenchmarkConfig.model_validate(config_json), *args, **kwargs)


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
# what to evaluate


def trained_models(stages: list[StageResult], storage: StorageConfig) -> list[dict[str, Any]]:
    """Every trained model of the paper's variants: {"name", "variant", "stream", "seed", "model_uri", "run_key"}.

    The frame CNNs are the ConvNet rows; auxiliary models (VideoLSTM's 1×1 flow ConvLSTM
    source) are not evaluated.
    """
    from tasks.train import parse_model_name

    models = []
    for stage in stages:
        for item in read_manifest(stage.manifest_uri, storage):
            if not item.ok:
                continue
            variant, stream, seed = parse_model_name(item.video_id)
            if variant in VARIANTS:
                models.append({"name": item.video_id, "variant": variant, "stream": stream, "seed": seed, "model_uri": item.shard, "run_key": item.key})
    return models


def fused_pairs(names: set[str]) -> list[tuple[str, int, str, str]]:
    """(variant, seed, rgb model, flow model) for every RGB model whose flow partner of the same seed
    was evaluated — the variant's own flow model, or for the motion variants :data:`FUSION_PARTNER`'s."""
    from tasks.train import model_name, parse_model_name

    pairs = []
    for name in sorted(names):
        variant, stream, seed = parse_model_name(name)
        if stream != "rgb":
            continue
        partner = model_name(FUSION_PARTNER.get(variant, variant), "flow", seed)
        if partner in names:
            pairs.append((variant, seed, name, partner))
    return pairs


def test_rows(manifest_uri: str, storage: StorageConfig) -> list[dict[str, Any]]:
    """{"video_id", "shard", "label"} of the test videos a manifest holds as ok; an error when there is none."""
    rows = [{"video_id": r.video_id, "shard": r.shard, "label": r.label} for r in read_manifest(manifest_uri, storage) if r.ok and r.subset == "test"]
    if not rows:
        raise RuntimeError(f"no test video is ready in {manifest_uri}; run the benchmark's stages up to it first")
    return rows


def model_test_rows(model: dict[str, Any], frames_flow: StageResult, features: StageResult, storage: StorageConfig) -> list[dict]:
    """The test rows a model reads: frames+flow shards for the ConvNet, its seed's features otherwise."""
    if model["variant"] == "convnet":
        return test_rows(frames_flow.manifest_uri, storage)
    return test_rows(features.extra["manifests"][str(model["seed"])], storage)


# ----------------------------------------------------------------------------------------
# the stage


def run_evaluate(
    config: BenchmarkConfig,
    index: StageResult,
    frames_flow: StageResult,
    features: StageResult,
    frame_cnn: StageResult,
    trained: StageResult,
    finetuned: StageResult,
    parent_run_id: str | None = None,
) -> StageResult:
    """Evaluate every model once per storage root (issue 25): under a lease on the evaluation of
    these inputs, so a second run on the same root waits for the first's evaluation and reuses it
    instead of evaluating again and logging the same metrics into the same MLflow runs."""
    from tasks.console import say
    from tasks.leases import run_holder
    from videolstm.store.lease import compute_once

    upstream = [index, frames_flow, features, frame_cnn, trained, finetuned]
    input_key = stable_digest([lineages(config)["evaluate"], [s.content for s in upstream]], 16)
    output = st.join(stage_uri(config, "evaluate"), f"evaluation-{input_key}")

    def evaluate() -> StageResult:  # computes, or reuses the finished evaluation of these inputs
        return _evaluate_now(config, index, frames_flow, features, frame_cnn, trained, finetuned, parent_run_id)

    return compute_once(
        output,
        lambda: _finished_result(config, input_key) is not None,
        evaluate,
        evaluate,
        holder=run_holder(),
        storage=config.storage,
        on_wait=lambda other: say(f"evaluate: {other.describe()} is evaluating the same models on this storage root; waiting for it, then reusing its results"),
    )


def _evaluate_now(
    config: BenchmarkConfig,
    index: StageResult,
    frames_flow: StageResult,
    features: StageResult,
    frame_cnn: StageResult,
    trained: StageResult,
    finetuned: StageResult,
    parent_run_id: str | None = None,
) -> StageResult:
    from tasks.runtime import init_ray, worker_config
    from videolstm.data.datasets import read_index

    started = time.perf_counter()
    uri = stage_uri(config, "evaluate")
    upstream = [index, frames_flow, features, frame_cnn, trained, finetuned]
    input_key = stable_digest([lineages(config)["evaluate"], [s.content for s in upstream]], 16)
    previous = _finished_result(config, input_key)
    if previous is not None:
        log.info("evaluation: reused %s (same models, same test set)", previous.uri)
        with stage_progress("evaluate", total=previous.ok + previous.failed, detail="reused (same models, same test set)") as progress:
            progress.advance(previous.ok + previous.failed, "reused")
        return previous
    class_names = list(index.extra["class_names"])
    paths = dict(zip(*[read_index(index.manifest_uri, storage=config.storage).column(c).to_pylist() for c in ("video_id", "path")]))
    models = trained_models([frame_cnn, trained, finetuned], config.storage)
    results: list[ItemResult] = []
    annotations = _usable_annotations(index.extra.get("annotations"), config, results)
    init_ray(config)
    config_json = worker_config(config)
    first_seed = config.train.seeds[0]
    futures = {
        m["name"]: _evaluate_remote.remote(
            config_json,
            m["name"],
            m["variant"],
            m["stream"],
            m["model_uri"],
            model_test_rows(m, frames_flow, features, config.storage),
            class_names,
            annotations,
            paths,
            st.join(uri, m["name"]),
            overlays=m["seed"] == first_seed,  # overlays of one seed: what they show does not need three copies
        )
        for m in models
    }
    outcomes: dict[str, dict[str, Any]] = {}
    total = len(models) + len(fused_pairs({m["name"] for m in models}))
    with stage_progress("evaluate", total=total, detail=f"{len(models)} models, then the fused pairs") as progress:
        for name, result in wait_in_turn(futures, progress):  # the futures' order, each counted as it finishes
            if isinstance(result, Exception):  # recorded in the manifest, the other models go on
                log.error("evaluating %s failed: %s", name, result)
                results.append(ItemResult(video_id=name, status="failed", key="", reason=f"{type(result).__name__}: {result}"))
            else:
                outcomes[name] = result
                results.append(ItemResult(video_id=name, status="ok", key=stable_digest([input_key, name], 16), shard=st.join(uri, name)))
        rows = _log_models(config, models, outcomes, uri, parent_run_id)
        fused_before = len(results)
        rows += _fuse(config, outcomes, class_names, uri, parent_run_id, results, {r["name"]: r["run_id"] for r in rows})
        progress.advance(len(results) - fused_before, "computed")
        progress.set_total(progress.done)  # a pair whose model failed is not fused
    manifest_uri = write_manifest(st.join(uri, "manifest.parquet"), results, config.storage)
    summary = failure_summary(results, manifest_uri, "evaluation")
    if summary:
        log.warning(summary)
    return stage_result(
        "evaluate",
        uri,
        manifest_uri,
        lineages(config)["evaluate"],
        results,
        time.perf_counter() - started,
        computed=len(results),
        storage=config.storage,
        rows=rows,
        input_key=input_key,
    )


def wait_in_turn(futures: dict[str, Any], progress: StageProgress) -> list[tuple[str, Any]]:
    """(name, result or exception) of every Ray future, in ``futures``' order; ``progress`` counts each as it finishes."""
    pending = {future: name for name, future in futures.items()}
    finished: dict[str, Any] = {}
    while pending:
        done, _ = ray.wait(list(pending), num_returns=1)
        name = pending.pop(done[0])
        try:
            finished[name] = ray.get(done[0])
        except Exception as exc:  # handed to the caller, which records it
            finished[name] = exc
        progress.advance(status="failed" if isinstance(finished[name], Exception) else "computed", item=name)
    return [(name, finished[name]) for name in futures]


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
        load_ucf101_24(uri, storage=config.storage, limits=config.dataset.limits)
    except (ValueError, OSError, EOFError, pickle.UnpicklingError) as exc:
        reason = f"localization skipped, annotation file {uri} is unusable: {exc}"
        log.error(reason)
        results.append(ItemResult(video_id="annotations", status="failed", key="", reason=reason))
        return None
    return uri


def result_row(name: str, variant: str, stream: str, seed: int, metrics: dict[str, float], run_id: str | None) -> dict[str, Any]:
    """One row of the report: the model's identity and its headline metrics (not the per-class ones)."""
    keep = {k: v for k, v in metrics.items() if k.count("/") == 1 or is_calibration_metric(k)}
    return {"name": name, "variant": variant, "stream": stream, "seed": seed, "run_id": run_id, **keep}


def _log_models(config, models, outcomes, uri, parent_run_id) -> list[dict[str, Any]]:
    experiment_id = tracking.setup(config)
    rows = []
    for m in models:
        outcome = outcomes.get(m["name"])
        if outcome is None:
            continue
        run_id, _ = tracking.find_or_create_run(
            experiment_id,
            m["run_key"],
            m["name"],
            parent_run_id=parent_run_id,
            tags={"variant": m["variant"], "stream": m["stream"], "seed": str(m["seed"]), "dataset": config.dataset.kind, "split": str(config.dataset.split)},
        )
        _log_metrics_and_artifacts(config, run_id, outcome["metrics"], st.join(uri, m["name"]))
        rows.append(result_row(m["name"], m["variant"], m["stream"], m["seed"], outcome["metrics"], run_id))
    return rows


def _log_metrics_and_artifacts(config: BenchmarkConfig, run_id: str, metrics: dict[str, float], artifacts_uri: str) -> None:
    tracking.log_metrics(run_id, metrics)
    with tempfile.TemporaryDirectory() as tmp:
        _download_dir(artifacts_uri, Path(tmp), config.storage)
        mlflow.tracking.MlflowClient().log_artifacts(run_id, tmp, artifact_path="evaluation")
    tracking.finish_run(run_id)


def fuse_predictions(rgb: Predictions, flow: Predictions, method: str) -> Predictions:
    """Two-stream predictions on the RGB model's videos: the flow model's rows aligned by video id."""
    missing = sorted(set(rgb.video_ids) - set(flow.video_ids))
    if missing:
        raise ValueError(f"the flow model has no prediction for {len(missing)} video(s) of the RGB model, e.g. {missing[:3]}")
    aligned = flow.subset(rgb.video_ids)
    if not np.array_equal(aligned.labels, rgb.labels):
        raise ValueError("the two streams disagree on the labels of the same videos")
    return Predictions(rgb.video_ids, rgb.labels, fuse_probabilities(rgb.probabilities, aligned.probabilities, method).numpy())


def _fuse(config, outcomes, class_names, uri, parent_run_id, results, run_ids=None) -> list[dict[str, Any]]:
    """Two-stream fusion (product of probabilities) of every variant and seed with both streams.

    ``run_ids``: {model name: its run id}; the fused run is tagged with its members' (``rgb_run_id``,
    ``flow_run_id``), so a user of the fused pair finds exactly the two models it fused."""
    run_ids = run_ids or {}
    experiment_id = tracking.setup(config)
    rows = []
    for variant, seed, rgb_name, flow_name in fused_pairs(set(outcomes)):
        fused = fuse_predictions(outcomes[rgb_name]["predictions"], outcomes[flow_name]["predictions"], config.evaluate.fusion)
        name = f"{variant}-fused-s{seed}"
        with tempfile.TemporaryDirectory() as tmp:
            metrics = score_classification(fused, class_names, Path(tmp), f"{variant} RGB+Flow ({config.evaluate.fusion})")
            _upload_dir(Path(tmp), st.join(uri, name), config.storage)
        run_key = stable_digest([lineages(config)["evaluate"], name, results_key(results, rgb_name, flow_name)], 16)
        run_id, _ = tracking.find_or_create_run(
            experiment_id,
            run_key,
            name,
            parent_run_id=parent_run_id,
            tags={
                "variant": variant,
                "stream": "fused",
                "seed": str(seed),
                "dataset": config.dataset.kind,
                "split": str(config.dataset.split),
                "fused_from": f"{rgb_name}+{flow_name}",
                **({"rgb_run_id": run_ids[rgb_name], "flow_run_id": run_ids[flow_name]} if rgb_name in run_ids and flow_name in run_ids else {}),
            },
        )
        tracking.log_params(
            run_id,
            {
                "variant": variant,
                "stream": "fused",
                "seed": seed,
                "fusion": config.evaluate.fusion,
                "rgb_model": rgb_name,
                "flow_model": flow_name,
                "dataset": config.dataset.kind,
                "split": config.dataset.split,
            },
        )
        _log_metrics_and_artifacts(config, run_id, metrics, st.join(uri, name))
        results.append(ItemResult(video_id=name, status="ok", key=run_key, shard=st.join(uri, name)))
        rows.append(result_row(name, variant, "fused", seed, metrics, run_id))
    return rows


def results_key(results: list[ItemResult], *names: str) -> list[str]:
    keys = {r.video_id: r.key for r in results}
    return [keys.get(n, "") for n in names]


def evaluate_single(config: BenchmarkConfig, checkpoint: str | None = None, run_id: str | None = None) -> dict[str, float]:
    """Evaluate one model (a checkpoint URI or an MLflow run's model) on this config's test split."""
    from videolstm.data.datasets import read_index
    from videolstm.store.lineage import load_stage_result

    if run_id:
        tracking.setup(config)
        checkpoint = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="model/artifacts/checkpoint.pt")
    assert checkpoint is not None
    state = load_checkpoint(checkpoint, config.storage)
    spec = state["model_spec"]
    extra = state.get("extra", {})
    variant = "convnet" if spec.get("kind") == "frame_cnn" else spec["variant"]
    stream = extra.get("stream") or (extra.get("job", "").split("-")[1] if extra.get("job", "").count("-") >= 2 else "rgb")
    seed = int(extra.get("seed", config.train.seeds[0]))
    name = extra.get("job", f"{variant}-{stream}-s{seed}")
    index = load_stage_result(config, "index")
    model = {"variant": variant, "seed": seed}
    rows = model_test_rows(model, load_stage_result(config, "frames_flow"), load_stage_result(config, "features"), config.storage)
    paths = dict(zip(*[read_index(index.manifest_uri, storage=config.storage).column(c).to_pylist() for c in ("video_id", "path")]))
    out_uri = st.join(stage_uri(config, "evaluate"), "single", stable_digest([checkpoint], 12))
    outcome = evaluate_model(config, name, variant, stream, checkpoint, rows, list(index.extra["class_names"]), index.extra.get("annotations"), paths, out_uri)
    if run_id:
        _log_metrics_and_artifacts(config, run_id, outcome["metrics"], out_uri)
    return {k: float(v) for k, v in outcome["metrics"].items() if k.count("/") == 1 or is_calibration_metric(k)}
