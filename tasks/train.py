"""Stages 3 and 5: train the frame CNNs, then every (variant, stream), on Ray Train.

One ``TorchTrainer`` per (variant, stream). The whole matrix is launched by one call
(:func:`run_train`): as many trainers at once as the cluster has room for
(``train.max_concurrent`` or cluster CPUs/GPUs ÷ what one trainer asks), each ``fit`` in its own
Ray task (Ray Train V2's way of running several trainings concurrently).

Resuming: a trainer's Ray Train run name and storage folder are keyed by its inputs, so a re-run
of the same experiment restores Ray Train's checkpoint manager and the loop continues from the
latest checkpoint; ``FailureConfig(max_failures)`` restarts a killed worker group from it. The
MLflow run is found again by its run key, so metrics continue in the same run.
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Any

import pyarrow.fs as pafs
import ray
import ray.train
from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
from ray.train.torch import TorchTrainer

from tasks import tracking
from tasks.attention_targets import write_attention_targets
from tasks.train_loop import TrainJob, train_loop_per_worker
from videolstm.store import storage as st
from videolstm.store.checkpoint import ModelSpec, latest_checkpoint, load_checkpoint, save_checkpoint
from videolstm.config import BenchmarkConfig, StorageConfig, stable_digest
from videolstm.features.inputs import stream_in_channels
from videolstm.store.lineage import StageResult, lineages, stage_result, stage_uri
from videolstm.store.manifest import ItemResult, failure_summary, read_manifest, write_manifest
from videolstm.training import feature_columns, split_validation

log = logging.getLogger(__name__)

MODEL_FILE = "model.pt"


def pyarrow_filesystem(uri: str, storage: StorageConfig) -> pafs.FileSystem | None:
    """A pyarrow filesystem for Ray Train's storage when an S3 endpoint must be set; else None."""
    if not uri.startswith("s3://") or not storage.endpoint_url:
        return None
    scheme, _, host = storage.endpoint_url.partition("://")
    return pafs.S3FileSystem(endpoint_override=host, scheme=scheme, region=storage.region or "us-east-1")


def storage_path(uri: str) -> str:
    """Ray Train's storage_path form of a URI (no scheme for local paths and custom S3 filesystems)."""
    if st.is_local(uri):
        return str(st.local_path(uri))
    return uri


# ----------------------------------------------------------------------------------------
# jobs


def model_overrides(config: BenchmarkConfig, feature_sizes: dict[str, Any]) -> dict[str, Any]:
    """build_model overrides for the recurrent variants from the config and the feature sizes."""
    m = config.train.model
    return {
        "input_channels": feature_sizes["channels"],
        "flow_channels": feature_sizes["channels"],
        "input_dim": feature_sizes["fc7_dim"],
        "spatial_size": tuple(feature_sizes["spatial_size"]),
        "hidden_channels": m.hidden_channels,
        "lstm_hidden": m.lstm_hidden,
        "kernel_size": m.kernel_size,
        "attention_kernel_size": m.attention_kernel_size,
        "motion_kernel_size": m.motion_kernel_size,
        "fc_dim": m.fc_dim,
        "dropout": m.dropout,
        "init_state": m.init_state,
        "gate_execution": m.gate_execution,
        "attention_scale": m.attention_scale,
    }


def variant_streams(config: BenchmarkConfig) -> list[tuple[str, str]]:
    """The (variant, stream) matrix to train: motion variants once (RGB, attention from flow)."""
    from videolstm.models import build_model

    jobs = []
    for variant in config.train.variants:
        if variant == "convnet":
            continue  # the frame CNNs are the ConvNet variant (trained in the frame-CNN stage)
        probe = build_model(variant, 2, **_tiny_sizes())
        streams = ["rgb"] if probe.needs_flow else list(config.train.streams)
        jobs += [(variant, s) for s in streams]
    return jobs


def _tiny_sizes() -> dict[str, Any]:
    return {"input_channels": 2, "flow_channels": 2, "input_dim": 2, "hidden_channels": 2, "lstm_hidden": 2, "fc_dim": 2, "spatial_size": (2, 2)}


def sequence_job(config: BenchmarkConfig, variant: str, stream: str, features: StageResult) -> TrainJob:
    from videolstm.models import build_model

    sizes = features.extra["feature_sizes"]
    overrides = model_overrides(config, sizes)
    model = build_model(variant, features.extra["num_classes"], **overrides)
    x_column, flow_column = feature_columns(model.input_kind, model.needs_flow, stream)
    spec = ModelSpec(variant, features.extra["num_classes"], overrides)
    t = config.train
    run_key = stable_digest(["sequence", variant, stream, features.content, spec.to_dict(), t.model_dump(mode="json", exclude={"variants", "streams", "workers", "use_gpu", "cpus_per_worker", "gpus_per_worker", "max_concurrent", "max_failures"})], 16)
    return TrainJob(
        kind="sequence", variant=variant, stream=stream, name=f"{variant}-{stream}", spec=spec.to_dict(),
        output_uri=st.join(stage_uri(config, "train"), f"{variant}-{stream}"), run_key=run_key,
        x_column=x_column, flow_column=flow_column, epochs=t.epochs, batch_size=t.batch_size, lr=t.lr,
        optimizer=t.optimizer, weight_decay=t.weight_decay, seed=t.seed, snippet_length=t.snippet_length,
        checkpoint_every=t.checkpoint_every, has_validation=t.val_fraction > 0, threads=max(1, int(t.cpus_per_worker)),
    )


def frame_cnn_job(config: BenchmarkConfig, stream: str, frames_flow: StageResult, num_classes: int) -> TrainJob:
    f = config.frame_cnn
    overrides = {"in_channels": stream_in_channels(stream, f.flow_stack), "dropout": f.dropout}
    if f.arch == "small":
        overrides.update({"channels": list(f.channels), "fc_dim": f.fc_dim})
    spec = ModelSpec(f.arch, num_classes, overrides, kind="frame_cnn")
    run_key = stable_digest(["frame_cnn", stream, frames_flow.content, spec.to_dict(), f.model_dump(mode="json")], 16)
    return TrainJob(
        kind="frame_cnn", variant="convnet", stream=stream, name=f"convnet-{stream}", spec=spec.to_dict(),
        output_uri=st.join(stage_uri(config, "frame_cnn"), stream), run_key=run_key,
        epochs=f.epochs, batch_size=max(1, f.batch_size // f.frames_per_video), lr=f.lr, optimizer="adam",
        weight_decay=1e-4, seed=f.seed, frames_per_video=f.frames_per_video, flow_stack=f.flow_stack,
        has_validation=config.train.val_fraction > 0, threads=max(1, int(config.train.cpus_per_worker)),
        weights=f.weights if f.arch == "vgg16" else None,
    )


# ----------------------------------------------------------------------------------------
# running trainers


def fit_job(job: TrainJob, config: BenchmarkConfig, train_rows: list[dict], val_rows: list[dict]) -> dict[str, Any]:
    """Fit one job with a TorchTrainer; export the best (or latest) checkpoint to ``model.pt``."""
    t = config.train
    if not val_rows:  # e.g. classes too small to hold a video out: no validation, keep the latest
        job = job.model_copy(update={"has_validation": False})
    ray.data.DataContext.get_current().enable_progress_bars = False  # rows are tiny; bars would only add noise
    datasets = {"train": ray.data.from_items(train_rows), "val": ray.data.from_items(val_rows or [{"shard": "", "label": -1}])}
    ray_storage = st.join(job.output_uri, "ray")
    filesystem = pyarrow_filesystem(ray_storage, config.storage)
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config={"job": job.model_dump(mode="json"), "config": config.model_dump(mode="json")},
        scaling_config=ScalingConfig(
            num_workers=t.workers,
            use_gpu=t.use_gpu,
            resources_per_worker={"CPU": t.cpus_per_worker, **({"GPU": t.gpus_per_worker or 1} if t.use_gpu else {})},
        ),
        run_config=RunConfig(
            name=f"{job.name}-{job.run_key[:10]}",
            storage_path=storage_path(ray_storage) if filesystem is None else ray_storage.removeprefix("s3://"),
            storage_filesystem=filesystem,
            failure_config=FailureConfig(max_failures=t.max_failures),
            checkpoint_config=CheckpointConfig(
                num_to_keep=t.keep_checkpoints,
                checkpoint_score_attribute="val/accuracy" if job.has_validation else None,
                checkpoint_score_order="max",
            ),
        ),
        datasets=datasets,
        dataset_config=ray.train.DataConfig(datasets_to_split=["train"]),
    )
    started = time.perf_counter()
    result = trainer.fit()
    seconds = time.perf_counter() - started
    best = result.get_best_checkpoint("val/accuracy", "max") if job.has_validation else None
    chosen = best or result.checkpoint
    if chosen is None:
        raise RuntimeError(f"{job.name}: training finished without a checkpoint (see the Ray Train logs above)")
    with chosen.as_directory() as directory:
        state = load_checkpoint(latest_checkpoint(directory))
    model_uri = st.join(job.output_uri, MODEL_FILE)
    save_checkpoint(model_uri, state, config.storage)
    return {"name": job.name, "model_uri": model_uri, "epoch": state["epoch"], "metrics": state["metrics"], "seconds": seconds}


@ray.remote(num_cpus=0)
def _fit_remote(job_json: dict, config_json: dict, train_rows: list[dict], val_rows: list[dict]) -> dict[str, Any]:
    job = TrainJob.model_validate(job_json)
    config = BenchmarkConfig.model_validate(config_json)
    return fit_job(job, config, train_rows, val_rows)


def concurrency(config: BenchmarkConfig, jobs: int) -> int:
    """How many trainers fit on the cluster at once (``train.max_concurrent`` caps it)."""
    t = config.train
    resources = ray.cluster_resources()
    fits = math.floor(resources.get("CPU", 1) / (t.workers * t.cpus_per_worker))
    if t.use_gpu:
        fits = min(fits, math.floor(resources.get("GPU", 0) / (t.workers * (t.gpus_per_worker or 1))))
    return max(1, min(jobs, t.max_concurrent or fits, fits or 1))


def run_jobs(config: BenchmarkConfig, jobs: list[TrainJob], rows: dict[str, tuple[list[dict], list[dict]]]) -> dict[str, dict[str, Any] | Exception]:
    """Fit ``jobs`` with bounded concurrency; a failed job is returned as its exception."""
    limit = concurrency(config, len(jobs))
    log.info("training %d model(s), %d at a time: %s", len(jobs), limit, ", ".join(j.name for j in jobs))
    pending: dict[Any, TrainJob] = {}
    outcomes: dict[str, dict[str, Any] | Exception] = {}
    queue = list(jobs)
    config_json = config.model_dump(mode="json")
    while queue or pending:
        while queue and len(pending) < limit:
            job = queue.pop(0)
            train_rows, val_rows = rows[job.name]
            pending[_fit_remote.remote(job.model_dump(mode="json"), config_json, train_rows, val_rows)] = job
        done, _ = ray.wait(list(pending), num_returns=1)
        job = pending.pop(done[0])
        try:
            outcomes[job.name] = ray.get(done[0])
            log.info("trained %s in %.0f s: %s", job.name, outcomes[job.name]["seconds"], _fmt(outcomes[job.name]["metrics"]))
        except Exception as exc:  # recorded in the manifest and summarised; other jobs go on
            log.error("training %s failed: %s", job.name, exc)
            outcomes[job.name] = exc
    return outcomes


def _fmt(metrics: dict[str, float]) -> str:
    return ", ".join(f"{k}={v:.3f}" for k, v in sorted(metrics.items()) if "accuracy" in k or k == "train/loss")


def _rows_for(manifest_uri: str, storage: StorageConfig, val_fraction: float, seed: int) -> tuple[list[dict], list[dict], list[dict]]:
    """(train, val, test) rows {"video_id", "shard", "label"} of the ok items of a manifest."""
    items = [r for r in read_manifest(manifest_uri, storage) if r.ok]
    as_rows = lambda rs: [{"video_id": r.video_id, "shard": r.shard, "label": r.label} for r in rs]  # noqa: E731
    train, val = split_validation(as_rows([r for r in items if r.subset == "train"]), val_fraction, seed)
    return list(train), list(val), as_rows([r for r in items if r.subset == "test"])


# ----------------------------------------------------------------------------------------
# stages


def _prepare_runs(config: BenchmarkConfig, jobs: list[TrainJob], parent_run_id: str | None, dataset: str) -> list[TrainJob]:
    """Attach each job's MLflow run (found again by run key, else created) and log its params."""
    experiment_id = tracking.setup(config)
    uri = tracking.tracking_uri(config)
    prepared = []
    for job in jobs:
        run_id, created = tracking.find_or_create_run(
            experiment_id, job.run_key, job.name, parent_run_id=parent_run_id,
            tags={tracking.KIND_TAG: job.kind, "variant": job.variant, "stream": job.stream, "dataset": dataset, "split": str(config.dataset.split)},
        )
        if created:
            tracking.log_params(run_id, {**tracking.config_params(config), "variant": job.variant, "stream": job.stream, "dataset": dataset, "split": config.dataset.split})
        prepared.append(job.model_copy(update={"mlflow_run_id": run_id, "tracking_uri": uri}))
    return prepared


def _finish_runs(config: BenchmarkConfig, jobs: list[TrainJob], outcomes: dict[str, Any], dataset: str, sample_inputs) -> list[ItemResult]:
    from tasks.mlflow_model import log_model

    results = []
    for job in jobs:
        outcome = outcomes[job.name]
        if isinstance(outcome, Exception):
            tracking.finish_run(job.mlflow_run_id, failed=True)
            results.append(ItemResult(video_id=job.name, status="failed", key=job.run_key, reason=f"{type(outcome).__name__}: {outcome}"))
            continue
        if config.mlflow.register_models:
            log_model(job, outcome["model_uri"], config, dataset, sample_inputs(job))
        tracking.finish_run(job.mlflow_run_id)
        results.append(ItemResult(video_id=job.name, status="ok", key=job.run_key, shard=outcome["model_uri"], seconds=outcome["seconds"], counts={"epoch": outcome["epoch"]}))
    return results


def run_frame_cnn(config: BenchmarkConfig, index: StageResult, frames_flow: StageResult, parent_run_id: str | None = None) -> StageResult:
    """Train the RGB and the flow frame CNN (the paper's ConvNet) on frames+flow shards."""
    from tasks.runtime import init_ray

    started = time.perf_counter()
    uri = stage_uri(config, "frame_cnn")
    num_classes = len(index.extra["class_names"])
    train, val, _ = _rows_for(frames_flow.manifest_uri, config.storage, config.train.val_fraction, config.train.seed)
    jobs = [frame_cnn_job(config, stream, frames_flow, num_classes) for stream in ("rgb", "flow")]
    results, todo = _reuse_finished(uri, jobs, config.storage)
    weights_problem = _check_weights(config) if todo else None
    if weights_problem:
        results += [ItemResult(video_id=j.name, status="failed", key=j.run_key, reason=weights_problem) for j in todo]
        todo = []
    if todo:
        init_ray(config)
        todo = _prepare_runs(config, todo, parent_run_id, config.dataset.kind)
        outcomes = run_jobs(config, todo, {j.name: (train, val) for j in todo})
        results += _finish_runs(config, todo, outcomes, config.dataset.kind, _frame_sample_factory(config, train))
    manifest_uri = write_manifest(st.join(uri, "manifest.parquet"), results, config.storage)
    _warn_failures(results, manifest_uri, "frame CNN")
    return stage_result("frame_cnn", uri, manifest_uri, lineages(config)["frame_cnn"], results, time.perf_counter() - started,
                        computed=len(todo), storage=config.storage, num_classes=num_classes)


def _check_weights(config: BenchmarkConfig) -> str | None:
    """Load the configured VGG-16 weights once on the driver: a bad file fails fast, with its name."""
    f = config.frame_cnn
    if f.arch != "vgg16" or not f.weights:
        return None
    from videolstm.features.backbones import VGG16, WeightsError, load_vgg16_weights

    try:
        load_vgg16_weights(VGG16(num_classes=2), f.weights, config.storage)
    except WeightsError as exc:
        return f"frame_cnn.weights: {exc}"
    return None


def run_train(config: BenchmarkConfig, features: StageResult, parent_run_id: str | None = None) -> StageResult:
    """Train every (variant, stream) of the config on the feature shards."""
    from tasks.runtime import init_ray

    started = time.perf_counter()
    uri = stage_uri(config, "train")
    train, val, _ = _rows_for(features.manifest_uri, config.storage, config.train.val_fraction, config.train.seed)
    jobs = [sequence_job(config, v, s, features) for v, s in variant_streams(config)]
    results, todo = _reuse_finished(uri, jobs, config.storage)
    if todo:
        targets_uri = write_attention_targets(config, val)  # issue 13: per-epoch attention health
        todo = [job.model_copy(update={"attention_targets_uri": targets_uri}) for job in todo]
        init_ray(config)
        todo = _prepare_runs(config, todo, parent_run_id, config.dataset.kind)
        outcomes = run_jobs(config, todo, {j.name: (train, val) for j in todo})
        sample = _sample_inputs_factory(config, train)
        results += _finish_runs(config, todo, outcomes, config.dataset.kind, sample)
    manifest_uri = write_manifest(st.join(uri, "manifest.parquet"), results, config.storage)
    _warn_failures(results, manifest_uri, "training")
    return stage_result("train", uri, manifest_uri, lineages(config)["train"], results, time.perf_counter() - started, computed=len(todo), storage=config.storage)


def _reuse_finished(uri: str, jobs: list[TrainJob], storage: StorageConfig) -> tuple[list[ItemResult], list[TrainJob]]:
    """Results of jobs already finished with the same run key (their model.pt exists)."""
    manifest_uri = st.join(uri, "manifest.parquet")
    previous = {r.video_id: r for r in read_manifest(manifest_uri, storage)} if st.exists(manifest_uri, storage) else {}
    reused, todo = [], []
    for job in jobs:
        old = previous.get(job.name)
        if old is not None and old.ok and old.key == job.run_key and st.exists(old.shard, storage):
            reused.append(old)
        else:
            todo.append(job)
    return reused, todo


def _warn_failures(results: list[ItemResult], manifest_uri: str, stage: str) -> None:
    summary = failure_summary(results, manifest_uri, stage)
    if summary:
        log.warning(summary)


def _sample_inputs_factory(config: BenchmarkConfig, train_rows: list[dict]):
    """A function giving one real input example per job (for the MLflow model signature)."""
    from videolstm.training import snippet_batch

    def sample(job: TrainJob) -> dict[str, Any]:
        batch = snippet_batch(train_rows[:1], job.x_column, job.flow_column, job.snippet_length, None, config.storage)
        return {k: v for k, v in batch.items() if k != "label"}

    return sample


def _frame_sample_factory(config: BenchmarkConfig, train_rows: list[dict]):
    """One real (1, T, C, H, W) frame-CNN input per stream (for the MLflow model signature)."""
    import numpy as np

    from videolstm.store import shards
    from videolstm.features.inputs import stream_inputs

    def sample(job: TrainJob) -> dict[str, Any]:
        arrays = shards.read_shard(train_rows[0]["shard"], columns=["frames", "flow"], storage=config.storage)
        return {"x": stream_inputs(arrays, job.stream, np.arange(4), job.flow_stack)[None]}

    return sample
