"""Stages 3, 5 and 5b: train the frame CNNs, every (variant, stream), then fine-tune VideoLSTM — per seed.

Every seed of ``train.seeds`` is an independent replicate: its own frame CNNs, its own features
(``tasks.features``), its own sequence models, its own VideoLSTM. A stage builds one
:class:`~tasks.train_loop.TrainJob` per model and runs them on as many ``TorchTrainer`` s as the
cluster fits at once (``train.max_concurrent`` or cluster CPUs/GPUs ÷ what one trainer asks);
each trainer takes jobs from a shared queue until it is empty (``tasks.train_loop``).

VideoLSTM depends on two trained models of the same seed (the authors' ``model_assemble.py``):
a flow ConvLSTM with the bottom layer's kernels and the RGB ConvALSTM. :func:`run_train` trains
them with the rest of the matrix (the 1×1 flow ConvLSTM as an extra job when the matrix has none
of that kernel size); :func:`run_finetune` assembles and fine-tunes VideoLSTM from them. With
``train.videolstm_init: scratch`` the fine-tuning stage trains VideoLSTM from random weights.

Resuming: a model's folder, checkpoints and MLflow run are keyed by its inputs (``run_key``), so a
re-run reuses finished models, resumes an unfinished one from its latest checkpoint and
continues its MLflow run.
"""

from __future__ import annotations

import logging
import math
import time
import uuid
from typing import Any

import pyarrow.fs as pafs
import ray
from ray.train import FailureConfig, RunConfig, ScalingConfig
from ray.train.torch import TorchTrainer

from tasks import tracking
from tasks.attention_targets import with_attention_targets, with_oracle_targets
from tasks.console import StageProgress, stage_progress
from tasks.leases import WaitNotice, run_holder
from tasks.mlflow_model import registered_name
from tasks.runtime import worker_config
from tasks.stage_models import model_name, parse_model_name
from tasks.train_loop import MODEL_FILE, JobQueue, TrainJob, track_reused, train_loop_per_worker
from videolstm.config import (
    BenchmarkConfig,
    StorageConfig,
    stable_digest,
    val_split_options,
    videolstm_model_options,
    without_recipe_defaults,
)
from videolstm.features.inputs import stream_in_channels
from videolstm.store import storage as st
from videolstm.store.checkpoint import ModelSpec
from videolstm.store.lineage import StageResult, lineages, stage_result, stage_uri, train_params
from videolstm.store.manifest import ItemResult, failure_summary, read_manifest, write_manifest
from videolstm.training import feature_columns, split_validation, validation_grouping

log = logging.getLogger(__name__)

#: Relative training time per epoch of each variant at the embedded sizes, normalised to the LSTM
#: (0.37 s/epoch): medians over the 3 seeds (and both streams) of the MLflow runs of the 3-seed
#: `make benchmark` of 2026-12-06 (run start to last epoch metric / epochs). The queue hands out
#: the costliest jobs first so the stage's trainers finish together.
RELATIVE_COST: dict[str, float] = {
    "convnet": 10.0,
    "lstm": 1.0,
    "alstm": 3.0,
    "motion_alstm": 3.8,
    "convlstm_motion": 2.8,
    "convlstm": 7.0,
    "convalstm": 8.4,
    "videolstm": 10.3,
}

#: Name of the extra flow ConvLSTM trained with the bottom layer's kernels (VideoLSTM's source).
MOTION_SOURCE = "convlstm_motion"


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
# what to train


def model_overrides(config: BenchmarkConfig, feature_sizes: dict[str, Any]) -> dict[str, Any]:
    """build_model overrides for the recurrent variants from the config and the feature sizes."""
    return {
        "input_channels": feature_sizes["channels"],
        "flow_channels": feature_sizes["channels"],
        "input_dim": feature_sizes["fc7_dim"],
        "flow_dim": feature_sizes["fc7_dim"],
        "spatial_size": tuple(feature_sizes["spatial_size"]),
        **without_recipe_defaults("model", config.train.model.model_dump()),  # issue 20's options only when set
    }


def variant_streams(config: BenchmarkConfig) -> list[tuple[str, str]]:
    """The (variant, stream) matrix: the motion variants once (RGB, attention from flow)."""
    from videolstm.models import build_model

    jobs = []
    for variant in config.train.variants:
        if variant == "convnet":
            continue  # the frame CNNs are the ConvNet variant (trained in the frame-CNN stage)
        needs_flow = build_model(variant, 2).needs_flow
        streams = ["rgb"] if needs_flow else list(config.train.streams)
        jobs += [(variant, s) for s in streams]
    return jobs


def motion_source(config: BenchmarkConfig) -> tuple[str, dict[str, Any]]:
    """(variant name, overrides) of VideoLSTM's bottom-layer source: a flow ConvLSTM with the
    bottom layer's kernels — the matrix's own ConvLSTM when its kernels already have that size."""
    m = config.train.model
    if m.kernel_size == m.motion_kernel_size:
        return "convlstm", {}
    return MOTION_SOURCE, {"kernel_size": m.motion_kernel_size}


def _mlflow_fields(
    config: BenchmarkConfig,
    kind: str,
    variant: str,
    stream: str,
    seed: int,
    parent_run_id: str | None,
    register: bool,
    extra_params: dict[str, str] | None = None,
) -> dict[str, Any]:
    dataset = config.dataset.kind
    base = {"variant": variant, "stream": stream, "seed": str(seed), "dataset": dataset, "split": str(config.dataset.split)}
    return {
        "tracking_uri": tracking.tracking_uri(config),
        "experiment_id": tracking.setup(config),
        "parent_run_id": parent_run_id,
        "run_tags": {tracking.KIND_TAG: kind, **base},
        "run_params": {**tracking.config_params(config), **base, **(extra_params or {})},
        "register_as": registered_name(dataset, variant, stream) if register and config.mlflow.register_models else None,
    }


#: Issue 20: the models the motion prior applies to — attention over the feature maps' positions.
MOTION_PRIOR_VARIANTS = ("convalstm", "videolstm")


def motion_prior(train: Any, probe: Any) -> dict[str, Any]:
    """The job fields of the motion prior (``train.motion_prior_weight`` > 0, an extension beyond the
    paper) for a model: ConvALSTM (either stream) and VideoLSTM read the flow pool5 for it; others none."""
    if train.motion_prior_weight <= 0 or probe.variant not in MOTION_PRIOR_VARIANTS:
        return {}
    return {"motion_prior_weight": train.motion_prior_weight, "prior_column": "flow_pool5"}


def rows_for(manifest_uri: str, storage: StorageConfig, val_fraction: float, seed: int, val_split: str = "groups") -> tuple[list[dict], list[dict], list[dict]]:
    """(train, validation, test) rows {"video_id", "shard", "label"} of a manifest's ok items.

    Validation: ``val_fraction`` of each class's groups of the train split (group-disjoint), seeded;
    ``val_split="videos"`` (the previous recipe): of each class's videos, groups ignored.
    """
    items = [r for r in read_manifest(manifest_uri, storage) if r.ok]
    as_rows = lambda rs: [{"video_id": r.video_id, "shard": r.shard, "label": r.label} for r in rs]  # noqa: E731
    train, val = split_validation(as_rows([r for r in items if r.subset == "train"]), val_fraction, seed, validation_grouping(val_split))
    return list(train), list(val), as_rows([r for r in items if r.subset == "test"])


def sequence_job(
    config: BenchmarkConfig,
    variant: str,
    stream: str,
    seed: int,
    features: StageResult,
    parent_run_id: str | None,
    stage: str = "train",
    overrides: dict[str, Any] | None = None,
    init_from: dict[str, ItemResult] | None = None,
    register: bool = True,
) -> TrainJob:
    """A recurrent variant on a stream for one seed, on that seed's features."""
    from videolstm.models import build_model

    t = config.train
    sizes = {**model_overrides(config, features.extra["feature_sizes"]), **(overrides or {})}
    num_classes = features.extra["num_classes"]
    probe = build_model(variant if variant != MOTION_SOURCE else "convlstm", num_classes, **sizes)
    x_column, flow_column = feature_columns(probe.input_kind, probe.needs_flow, stream, probe.flow_kind)
    spec = ModelSpec(variant if variant != MOTION_SOURCE else "convlstm", num_classes, sizes)
    sources = {k: v.shard for k, v in (init_from or {}).items()}
    run_key = stable_digest(
        [
            "sequence",
            variant,
            stream,
            seed,
            features.extra["contents"][str(seed)],
            spec.to_dict(),
            train_params(config),
            {k: v.key for k, v in (init_from or {}).items()},
        ],
        16,
    )
    train, val, _ = rows_for(features.extra["manifests"][str(seed)], config.storage, t.val_fraction, seed, t.val_split)
    name = model_name(variant, stream, seed)
    epochs = (t.finetune_epochs or t.epochs) if stage == "finetune" else t.epochs
    extra = {f"init_from.{k}": v.video_id for k, v in (init_from or {}).items()}
    return TrainJob(
        kind="sequence",
        variant=variant,
        stream=stream,
        seed=seed,
        name=name,
        spec=spec.to_dict(),
        output_uri=st.join(stage_uri(config, stage), name),
        run_key=run_key,
        train_rows=train,
        val_rows=val,
        x_column=x_column,
        flow_column=flow_column,
        epochs=epochs,
        batch_size=t.batch_size,
        lr=t.lr,
        optimizer=t.optimizer,
        weight_decay=t.weight_decay,
        rmsprop_decay=t.rmsprop_decay,
        rmsprop_eps=t.rmsprop_eps,
        clip_grad_norm=t.clip_grad_norm,
        snippet_length=t.snippet_length,
        checkpoint_every=t.checkpoint_every,
        keep_checkpoints=t.keep_checkpoints,
        threads=max(1, int(t.cpus_per_worker)),
        init_from=sources,
        loader_workers=t.loader_workers,
        prefetch_batches=t.prefetch_batches,
        attention_source="oracle" if t.attention_source == "oracle" and probe.has_attention else "learned",
        attention_grid=list(probe.spatial_size) if probe.has_attention else [],
        **motion_prior(t, probe),
        cost=RELATIVE_COST.get(variant, 3.0) * epochs,
        precision=t.precision,
        **_mlflow_fields(config, "sequence", variant, stream, seed, parent_run_id, register, extra),
    )


def frame_cnn_job(config: BenchmarkConfig, stream: str, seed: int, frames_flow: StageResult, num_classes: int, parent_run_id: str | None) -> TrainJob:
    """The frame CNN (the paper's ConvNet) of one stream for one seed."""
    f, t = config.frame_cnn, config.train
    overrides = {"in_channels": stream_in_channels(stream, f.flow_stack), "dropout": f.dropout}
    if f.arch == "small":
        overrides.update({"channels": list(f.channels), "fc_dim": f.fc_dim})
    spec = ModelSpec(f.arch, num_classes, overrides, kind="frame_cnn")
    run_key = stable_digest(
        ["frame_cnn", stream, seed, frames_flow.content, spec.to_dict(), f.model_dump(mode="json"), t.val_fraction, *val_split_options(t)], 16
    )
    train, val, _ = rows_for(frames_flow.manifest_uri, config.storage, t.val_fraction, seed, t.val_split)
    name = model_name("convnet", stream, seed)
    return TrainJob(
        kind="frame_cnn",
        variant="convnet",
        stream=stream,
        seed=seed,
        name=name,
        spec=spec.to_dict(),
        output_uri=st.join(stage_uri(config, "frame_cnn"), name),
        run_key=run_key,
        train_rows=train,
        val_rows=val,
        epochs=f.epochs,
        batch_size=max(1, f.batch_size // f.frames_per_video),
        lr=f.lr,
        optimizer="adam",
        weight_decay=1e-4,
        frames_per_video=f.frames_per_video,
        flow_stack=f.flow_stack,
        threads=max(1, int(t.cpus_per_worker)),
        weights=f.weights if f.arch == "vgg16" else None,
        loader_workers=t.loader_workers,
        prefetch_batches=t.prefetch_batches,
        cost=RELATIVE_COST["convnet"] * f.epochs,
        precision=f.precision,
        **_mlflow_fields(config, "frame_cnn", "convnet", stream, seed, parent_run_id, register=True),
    )


# ----------------------------------------------------------------------------------------
# running trainers


@ray.remote(num_cpus=0)
def _fit_remote(trainer_name: str, jobs: Any, config_json: dict, ray_storage: str, progress: Any = None, holder: str = "") -> dict[str, Any]:
    """One TorchTrainer taking jobs from ``jobs`` (a JobQueue) until it is empty; returns its wall time.

    ``progress``: a :class:`tasks.remote_progress.RemoteProgress` the trainer advances after each model."""
    config = BenchmarkConfig.model_validate(config_json)
    t = config.train
    filesystem = pyarrow_filesystem(ray_storage, config.storage)
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config={"queue": jobs, "trainer": trainer_name, "config": config_json, "progress": progress, "holder": holder},
        scaling_config=ScalingConfig(
            num_workers=t.workers,
            use_gpu=t.use_gpu,
            resources_per_worker={"CPU": t.cpus_per_worker, **({"GPU": t.gpus_per_worker or 1} if t.use_gpu else {})},
        ),
        run_config=RunConfig(
            name=trainer_name,
            storage_path=storage_path(ray_storage) if filesystem is None else ray_storage.removeprefix("s3://"),
            storage_filesystem=filesystem,
            failure_config=FailureConfig(max_failures=t.max_failures),
        ),
    )
    started = time.perf_counter()
    trainer.fit()
    return {"seconds": time.perf_counter() - started}


def concurrency(config: BenchmarkConfig, jobs: int) -> int:
    """How many trainers fit on the cluster at once (``train.max_concurrent`` caps it)."""
    t = config.train
    resources = ray.cluster_resources()
    fits = math.floor(resources.get("CPU", 1) / (t.workers * t.cpus_per_worker))
    if t.use_gpu:
        fits = min(fits, math.floor(resources.get("GPU", 0) / (t.workers * (t.gpus_per_worker or 1))))
    return max(1, min(jobs, t.max_concurrent or fits, fits or 1))


def run_jobs(
    config: BenchmarkConfig, jobs: list[TrainJob], stage: str, progress: StageProgress | None = None
) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """Train ``jobs`` on as many trainers as fit; returns ({job name: outcome}, timing).

    An outcome is the job's result ({"model_uri", "epoch", "metrics", "seconds", "run_id"}) or
    {"error": reason}. timing: trainers, their wall seconds, the jobs' seconds, and the rest —
    the trainers' start-up and shutdown.
    """
    trainers = concurrency(config, len(jobs))
    log.info("%s: %d model(s) on %d trainer(s)", stage, len(jobs), trainers)
    queue = JobQueue.remote([j.model_dump(mode="json") for j in jobs])
    ray_storage = st.join(stage_uri(config, stage), "ray")
    names = [f"{stage}-{i}-{uuid.uuid4().hex[:8]}" for i in range(trainers)]
    config_json = worker_config(config)
    remote = progress.remote() if progress is not None else None
    if progress is not None:
        progress.note(f"{trainers} trainer(s) starting")
    holder = run_holder()
    futures = {_fit_remote.remote(name, queue, config_json, ray_storage, remote, holder): name for name in names}
    fit_seconds = []
    for future, name in futures.items():
        try:
            fit_seconds.append(ray.get(future)["seconds"])
        except Exception as exc:  # the trainer gave up (max_failures): its current job fails, the others go on
            log.error("trainer %s failed: %s", name, exc)
            ray.get(queue.abandon.remote(name, f"the trainer failed after {config.train.max_failures} restarts: {type(exc).__name__}: {exc}"))
    outcomes = ray.get(queue.results.remote())
    lost = [j.name for j in jobs if j.name not in outcomes]
    for name in lost:
        outcomes[name] = {"error": "no trainer was left to train it (every trainer failed; see the errors above)"}
    if progress is not None and lost:
        progress.advance(len(lost), "failed")
    job_seconds = sum(o.get("seconds", 0.0) for o in outcomes.values())
    timing = {"trainers": trainers, "fit_seconds": fit_seconds, "job_seconds": job_seconds, "startup_seconds": max(0.0, sum(fit_seconds) - job_seconds)}
    log.info(
        "%s: %d trainer(s) ran %.1f s in all, %.1f s of it training jobs, %.1f s (%.0f %%) start-up and shutdown",
        stage,
        trainers,
        sum(fit_seconds),
        job_seconds,
        timing["startup_seconds"],
        100 * timing["startup_seconds"] / max(sum(fit_seconds), 1e-9),
    )
    ray.kill(queue)
    return outcomes, timing


def _results(jobs: list[TrainJob], outcomes: dict[str, dict[str, Any]], notice: WaitNotice | None = None) -> list[ItemResult]:
    results = []
    for job in jobs:
        outcome = dict(outcomes.get(job.name, {"error": "the job never ran"}))
        if notice is not None:
            notice.pop(outcome)  # trained by another run on this root: reused, said once
        if "error" in outcome:
            log.error("training %s failed: %s", job.name, outcome["error"])
            results.append(ItemResult(video_id=job.name, status="failed", key=job.run_key, reason=outcome["error"]))
            continue
        log.info("trained %s in %.0f s: %s", job.name, outcome["seconds"], _fmt(outcome["metrics"]))
        results.append(
            ItemResult(
                video_id=job.name,
                status="ok",
                key=job.run_key,
                shard=outcome["model_uri"],
                seconds=outcome["seconds"],
                counts={"epoch": int(outcome["epoch"]), "seed": job.seed},
            )
        )
    return results


def _fmt(metrics: dict[str, float]) -> str:
    return ", ".join(f"{k}={v:.3f}" for k, v in sorted(metrics.items()) if "accuracy" in k or k == "train/loss")


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


def _track_here(config: BenchmarkConfig, jobs: list[TrainJob], results: list[ItemResult]) -> None:
    """Every trained model has its run in this experiment, the ones reused from the storage root too
    (another experiment or tracking server on the same root trained them: :func:`track_reused`)."""
    by_name = {j.name: j for j in jobs}
    for r in results:
        job = by_name.get(r.video_id)
        if r.ok and job is not None and r.shard:
            track_reused(job, config, r.shard)


def _train_stage(config: BenchmarkConfig, stage: str, jobs: list[TrainJob], started: float, skipped: list[ItemResult] = (), **extra: Any) -> StageResult:
    uri = stage_uri(config, stage)
    results, todo = _reuse_finished(uri, jobs, config.storage)
    timing: dict[str, Any] = {}
    notice = WaitNotice(stage)
    with stage_progress(stage, total=len(jobs) + len(skipped), unit="model", detail=f"{len(todo)} to train, {len(results)} reused") as progress:
        progress.advance(len(results), "reused")
        progress.advance(len(skipped), "failed")
        if todo:
            from tasks.runtime import init_ray

            init_ray(config)
            todo = with_attention_targets(config, stage, todo)  # per-epoch attention health on the validation videos
            todo = with_oracle_targets(config, stage, todo)  # issue 20: the train-time oracle's boxes, when asked
            outcomes, timing = run_jobs(config, todo, stage, progress)
            results += _results(todo, outcomes, notice)
    _track_here(config, jobs, results)
    results += list(skipped)
    manifest_uri = write_manifest(st.join(uri, "manifest.parquet"), results, config.storage)
    summary = failure_summary(results, manifest_uri, stage)
    if summary:
        log.warning(summary)
    return stage_result(
        stage,
        uri,
        manifest_uri,
        lineages(config)[stage],
        results,
        time.perf_counter() - started,
        computed=len(todo) - notice.reused,
        storage=config.storage,
        timing=timing,
        **extra,
    )


# ----------------------------------------------------------------------------------------
# stages


def run_frame_cnn(config: BenchmarkConfig, index: StageResult, frames_flow: StageResult, parent_run_id: str | None = None) -> StageResult:
    """Train the RGB and the flow frame CNN (the paper's ConvNet) of every seed on frames+flow shards."""
    started = time.perf_counter()
    num_classes = len(index.extra["class_names"])
    jobs = [frame_cnn_job(config, stream, seed, frames_flow, num_classes, parent_run_id) for seed in config.train.seeds for stream in ("rgb", "flow")]
    problem = _check_weights(config)
    if problem:
        failed = [ItemResult(video_id=j.name, status="failed", key=j.run_key, reason=problem) for j in jobs]
        return _train_stage(config, "frame_cnn", [], started, failed, num_classes=num_classes)
    return _train_stage(config, "frame_cnn", jobs, started, num_classes=num_classes)


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
    """Train every (variant, stream) of every seed except VideoLSTM (:func:`run_finetune`), plus
    VideoLSTM's sources when the matrix lacks them."""
    started = time.perf_counter()
    matrix = [(v, s) for v, s in variant_streams(config) if v != "videolstm"]
    sources: list[tuple[str, str, dict[str, Any], bool]] = []
    if "videolstm" in config.train.variants and config.train.videolstm_init == "pretrained":
        variant, overrides = motion_source(config)
        for name, stream, extra in ((variant, "flow", overrides), ("convalstm", "rgb", {})):
            if (name, stream) not in matrix:
                sources.append((name, stream, extra, name != MOTION_SOURCE))
    jobs = []
    for seed in config.train.seeds:
        jobs += [sequence_job(config, v, s, seed, features, parent_run_id) for v, s in matrix]
        jobs += [sequence_job(config, v, s, seed, features, parent_run_id, overrides=o, register=r) for v, s, o, r in sources]
    return _train_stage(config, "train", jobs, started)


def run_finetune(config: BenchmarkConfig, features: StageResult, trained: StageResult, parent_run_id: str | None = None) -> StageResult:
    """VideoLSTM of every seed: assembled from that seed's trained flow ConvLSTM (bottom) and RGB
    ConvALSTM (top, attention, readout), then fine-tuned — or from scratch (``videolstm_init``)."""
    started = time.perf_counter()
    if "videolstm" not in config.train.variants:
        return _train_stage(config, "finetune", [], started)
    done = {r.video_id: r for r in read_manifest(trained.manifest_uri, config.storage)}
    jobs, blocked = [], []
    for seed in config.train.seeds:
        init_from: dict[str, ItemResult] = {}
        if config.train.videolstm_init == "pretrained":
            variant, _ = motion_source(config)
            wanted = {"flow_convlstm": model_name(variant, "flow", seed), "rgb_convalstm": model_name("convalstm", "rgb", seed)}
            missing = [n for n in wanted.values() if n not in done or not done[n].ok]
            if missing:
                name = model_name("videolstm", "rgb", seed)
                blocked.append(
                    ItemResult(video_id=name, status="failed", key="", reason=f"its pretrained sources {missing} did not train (see {trained.manifest_uri})")
                )
                continue
            init_from = {k: done[n] for k, n in wanted.items()}
        jobs.append(
            sequence_job(
                config,
                "videolstm",
                "rgb",
                seed,
                features,
                parent_run_id,
                stage="finetune",
                init_from=init_from,
                overrides=videolstm_model_options(config.train),
            )
        )
    return _train_stage(config, "finetune", jobs, started, blocked)


__all__ = ["MODEL_FILE", "model_name", "parse_model_name", "run_finetune", "run_frame_cnn", "run_train", "variant_streams"]
