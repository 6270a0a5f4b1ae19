"""The Ray Train worker loop: one trainer trains many models, one after another, from a job queue.

Starting a ``TorchTrainer`` costs ~15 s here (a worker group, a controller, a process group),
more than most of the embedded models take to train. So each stage starts only as many
trainers as the cluster runs at once, and every trainer pulls jobs from a shared
:class:`JobQueue` actor until it is empty: the start-up is paid once per trainer, not once per
model, and the queue balances the load (the longest jobs are handed out first).

Everything model- and data-specific is a library call (``videolstm.training``); this module
adds what the trainer owns: the queue, DDP preparation, checkpoints (rank 0 writes
``checkpoint_epoch_00007.pt`` into the job's folder; a restarted worker group resumes the job it
was training from the latest one), and MLflow on rank 0 (the job's run starts when its training
starts; Ray Train V2 refuses Tune logger callbacks).
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Callable
from typing import Any, Literal

import numpy as np
import ray
import ray.train
import ray.train.torch
import torch
import torch.distributed as dist
from pydantic import BaseModel, ConfigDict, Field

from videolstm.config import BenchmarkConfig
from videolstm.evaluation.attention_health import read_health_targets, validation_attention_health
from videolstm.features.precision import grad_scaler
from videolstm.loader import WaitClock, parallel_batches, seeded_items, wait_metrics
from videolstm.models.restore import build_from_spec, restore_model
from videolstm.store import storage as st
from videolstm.store.checkpoint import (
    ModelSpec,
    best_epoch,
    checkpoint_epochs,
    checkpoint_name,
    checkpoint_state,
    latest_checkpoint,
    load_checkpoint,
    prune_checkpoints,
    save_checkpoint,
    unwrap,
)
from videolstm.training import (
    EpochStats,
    batches_of,
    evaluate_epoch,
    frame_batch,
    frame_forward,
    make_optimizer,
    motion_prior_forward,
    sequence_forward,
    snippet_batch,
    train_epoch,
)

log = logging.getLogger(__name__)

MODEL_FILE = "model.pt"
CHECKPOINTS = "checkpoints"
VAL_METRIC = "val/accuracy"


class TrainJob(BaseModel):
    """One model to train: a frame CNN of a stream, or a recurrent variant on a stream, for one seed."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["frame_cnn", "sequence"]
    variant: str  # "convnet" for frame CNNs
    stream: str  # "rgb" | "flow" (motion variants: "rgb", attention from flow)
    seed: int
    name: str  # f"{variant}-{stream}-s{seed}" (see tasks.train.model_name)
    spec: dict[str, Any]  # ModelSpec.to_dict(); kind frame_cnn: variant = arch
    output_uri: str  # this model's folder: checkpoints/, model.pt, workers/
    run_key: str  # content key: same inputs → same folder, same MLflow run
    train_rows: list[dict[str, Any]]  # {"video_id", "shard", "label"}
    val_rows: list[dict[str, Any]] = Field(default_factory=list)
    x_column: str = ""  # sequence: feature column of x
    flow_column: str | None = None  # sequence, motion variants: feature column of the motion input
    epochs: int
    batch_size: int
    lr: float
    optimizer: str
    weight_decay: float = 0.0
    rmsprop_decay: float = 0.9
    rmsprop_eps: float = 1e-6
    clip_grad_norm: float | None = None
    snippet_length: int = 30
    frames_per_video: int = 8
    flow_stack: int = 5
    weights: str | None = None  # frame_cnn vgg16: torchvision-format state dict to start from
    init_from: dict[str, str] = Field(default_factory=dict)  # videolstm: {"flow_convlstm": uri, "rgb_convalstm": uri}
    checkpoint_every: int = 1
    keep_checkpoints: int = 2
    threads: int = 1
    loader_workers: int = 2  # issue 14: threads building batches ahead of the step (0: in the step's thread)
    prefetch_batches: int = 4  # batches built ahead of the step
    attention_targets_uri: str | None = None  # issue 13: validation boxes for the per-epoch attention health
    # issue 20's ablation arms (attention variants only): the ground truth replaces the attention ...
    attention_source: Literal["learned", "oracle"] = "learned"
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"  # issue 24: autocast of the steps (fp16 with a GradScaler)
    oracle_targets_uri: str | None = None  # ... from these boxes (None: uniform maps)
    attention_grid: list[int] = Field(default_factory=list)  # (h, w) of the model's attention maps
    motion_prior_weight: float = 0.0  # issue 20, beyond the paper: weight of Σ_t KL(P_motion ‖ A_t) in the loss
    prior_column: str | None = None  # the feature column P_motion is computed from (flow pool5)
    cost: float = 1.0  # relative training cost: the queue hands out the costliest first
    # MLflow: where rank 0 logs (the run is found again by run_key, else created nested under the parent)
    tracking_uri: str | None = None
    experiment_id: str | None = None
    parent_run_id: str | None = None
    run_tags: dict[str, str] = Field(default_factory=dict)
    run_params: dict[str, str] = Field(default_factory=dict)
    register_as: str | None = None  # registered model name, or None

    @property
    def has_validation(self) -> bool:
        return bool(self.val_rows)


# ----------------------------------------------------------------------------------------
# the queue


@ray.remote(num_cpus=0)
class JobQueue:
    """Hands jobs to trainers, costliest first; remembers what each trainer is working on.

    A trainer whose worker group was restarted by Ray Train asks again and gets back the job it
    had not finished (it resumes from that job's latest checkpoint).
    """

    def __init__(self, jobs: list[dict[str, Any]]):
        self.pending = sorted(jobs, key=lambda j: -float(j.get("cost", 1.0)))
        self.working: dict[str, dict[str, Any]] = {}
        self.outcomes: dict[str, dict[str, Any]] = {}

    def next(self, trainer: str) -> dict[str, Any] | None:
        if trainer in self.working:
            return self.working[trainer]
        if not self.pending:
            return None
        job = self.pending.pop(0)
        self.working[trainer] = job
        return job

    def finish(self, trainer: str, name: str, outcome: dict[str, Any]) -> None:
        self.outcomes[name] = outcome
        if self.working.get(trainer, {}).get("name") == name:
            del self.working[trainer]

    def abandon(self, trainer: str, reason: str) -> None:
        """The trainer died for good: its current job fails with ``reason``."""
        job = self.working.pop(trainer, None)
        if job is not None and job["name"] not in self.outcomes:
            self.outcomes[job["name"]] = {"error": reason}

    def results(self) -> dict[str, dict[str, Any]]:
        return dict(self.outcomes)

    def remaining(self) -> list[str]:
        return [j["name"] for j in self.pending]


# ----------------------------------------------------------------------------------------
# data


def _batch_source(job: TrainJob, config: BenchmarkConfig) -> tuple[Callable, Callable]:
    """(batch builder(rows, rng), forward) for the job's kind."""
    storage = config.storage
    if job.kind == "frame_cnn":

        def build(rows, rng):
            rng = rng if rng is not None else np.random.default_rng(job.seed)
            return frame_batch(rows, job.stream, job.frames_per_video, job.flow_stack, rng, storage)

        return build, frame_forward

    maps = None
    if job.attention_source == "oracle":  # issue 20: the ground truth in place of the model's attention
        from tasks.attention_targets import read_oracle_targets
        from videolstm.attention_guidance import oracle_lookup

        maps = oracle_lookup(read_oracle_targets(job.oracle_targets_uri, storage), tuple(job.attention_grid))

    def build(rows, rng):
        # float16 as stored: sequence_forward converts in torch (numpy's conversion is ~10x slower)
        return snippet_batch(
            rows,
            job.x_column,
            job.flow_column,
            job.snippet_length,
            rng,
            storage,
            dtype=None,
            attention_maps=maps,
            prior_column=job.prior_column if job.motion_prior_weight > 0 else None,
        )

    return build, (motion_prior_forward(job.motion_prior_weight) if job.motion_prior_weight > 0 else sequence_forward)


def _all_reduce_stats(stats: EpochStats, device: torch.device) -> EpochStats:
    if not (dist.is_available() and dist.is_initialized()):
        return stats
    sums = torch.tensor([stats.loss * stats.samples, stats.accuracy * stats.samples, stats.samples], dtype=torch.float64, device=device)
    dist.all_reduce(sums)
    n = max(sums[2].item(), 1.0)
    return EpochStats(loss=sums[0].item() / n, accuracy=sums[1].item() / n, samples=int(sums[2].item()))


# ----------------------------------------------------------------------------------------
# one job


def build_model(job: TrainJob, config: BenchmarkConfig, resuming: bool) -> torch.nn.Module:
    """The job's model: fresh (seeded), or with pretrained weights for a fresh run."""
    torch.manual_seed(job.seed)
    model = build_from_spec(ModelSpec.from_dict(job.spec))
    if resuming:
        return model
    if job.weights:  # frame CNN: torchvision-format VGG-16 weights
        from videolstm.features.backbones import load_vgg16_weights

        load_vgg16_weights(model, job.weights, config.storage)
    if job.init_from:  # VideoLSTM: the authors' assembly from trained models
        from videolstm.models import assemble_videolstm

        sources = {k: restore_model(load_checkpoint(uri, config.storage))[0] for k, uri in job.init_from.items()}
        assemble_videolstm(model, sources["flow_convlstm"], sources["rgb_convalstm"])
    return model


def run_job(job: TrainJob, config: BenchmarkConfig, rank: int, world: int) -> dict[str, Any]:
    """Train ``job`` to its last epoch (resuming from its latest checkpoint); rank 0 exports
    ``model.pt`` (the best epoch by validation accuracy, else the last) and logs to MLflow."""
    started = time.perf_counter()
    torch.set_num_threads(max(1, job.threads))
    _record_worker(job, config, rank)
    checkpoints = st.join(job.output_uri, CHECKPOINTS)
    latest = latest_checkpoint(checkpoints, config.storage)
    state = load_checkpoint(latest, config.storage) if latest else None
    device = ray.train.torch.get_device()
    model = build_model(job, config, resuming=state is not None)
    optimizer = make_optimizer(job.optimizer, model.parameters(), job.lr, job.weight_decay, job.rmsprop_decay, job.rmsprop_eps)
    start_epoch, history = 0, []
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start_epoch, history = int(state["epoch"]), list(state.get("history", []))
    model = ray.train.torch.prepare_model(model) if world > 1 else model.to(device)

    build, forward = _batch_source(job, config)
    shard = job.train_rows[rank::world]  # every rank its own part of the training videos
    # issue 13: the validation videos' boxes for the per-epoch attention health (rank 0 validates)
    targets = read_health_targets(job.attention_targets_uri, config.storage) if job.attention_targets_uri and job.has_validation and rank == 0 else {}
    tracker = _RankZeroTracker(job) if rank == 0 else None
    if tracker is not None and start_epoch > 0:
        tracker.log({"resumed_from_epoch": float(start_epoch)}, step=start_epoch)
    spec = ModelSpec.from_dict(job.spec)

    def epoch_batches(epoch: int) -> WaitClock:
        # issue 14: batches built on loader_workers threads, prefetch_batches ahead, starting now;
        # the epoch's time split into waiting for them vs the rest is logged as train/data_wait_*
        rng = np.random.default_rng([job.seed, epoch, rank])
        return WaitClock(
            parallel_batches(lambda item: build(*item), seeded_items(batches_of(shard, job.batch_size, rng), rng), job.loader_workers, job.prefetch_batches)
        )

    upcoming = epoch_batches(start_epoch) if start_epoch < job.epochs else None
    scaler = grad_scaler(device, job.precision)  # fp16: one loss scale carried across epochs
    for epoch in range(start_epoch, job.epochs):
        clock = upcoming
        epoch_started = time.perf_counter()
        stats = _all_reduce_stats(train_epoch(model, clock, optimizer, forward, device, job.clip_grad_norm, job.precision, scaler), device)
        metrics = {**stats.as_metrics("train"), **wait_metrics(clock, time.perf_counter() - epoch_started), "epoch": float(epoch + 1)}
        # the next epoch's first batches build while this one validates and checkpoints
        upcoming = epoch_batches(epoch + 1) if epoch + 1 < job.epochs else None
        if job.has_validation and rank == 0:
            val_batches = parallel_batches(
                lambda rows: build(rows, None), batches_of(job.val_rows, job.batch_size, None), job.loader_workers, job.prefetch_batches
            )
            val = evaluate_epoch(unwrap(model), val_batches, forward, device, job.precision)
            metrics.update(val.as_metrics("val"))
            metrics.update(validation_attention_health(unwrap(model), job.val_rows, job.x_column, job.flow_column, job.snippet_length, targets, config.storage))
        history.append(metrics)
        last = epoch + 1 == job.epochs
        if rank == 0 and ((epoch + 1) % job.checkpoint_every == 0 or last):
            extra = {"job": job.name, "run_key": job.run_key, "seed": str(job.seed), "stream": job.stream}
            save_checkpoint(
                st.join(checkpoints, checkpoint_name(epoch + 1)), checkpoint_state(epoch + 1, model, spec, optimizer, metrics, extra, history), config.storage
            )
            best = best_epoch(history, VAL_METRIC if job.has_validation else None)
            prune_checkpoints(checkpoints, job.keep_checkpoints, {best}, config.storage)
        if tracker is not None:
            tracker.log(metrics, step=epoch + 1)
    if world > 1:
        dist.barrier()
    if rank != 0:
        return {}
    return _export(job, config, history, tracker, time.perf_counter() - started)


def _export(job: TrainJob, config: BenchmarkConfig, history: list[dict], tracker, seconds: float) -> dict[str, Any]:
    """Copy the chosen epoch's checkpoint to model.pt, register it, finish the MLflow run."""
    epochs = checkpoint_epochs(st.join(job.output_uri, CHECKPOINTS), config.storage)
    chosen = best_epoch(history, VAL_METRIC if job.has_validation else None)
    if chosen not in epochs:  # e.g. checkpoint_every > 1 skipped it: the best one on disk
        scored = [(history[e - 1].get(VAL_METRIC, -math.inf), e) for e in epochs]
        chosen = max(scored)[1] if job.has_validation else max(epochs)
    state = load_checkpoint(epochs[chosen], config.storage)
    model_uri = st.join(job.output_uri, MODEL_FILE)
    save_checkpoint(model_uri, state, config.storage)
    run_id = tracker.run_id if tracker is not None else None
    if tracker is not None:
        tracker.finish_training(job, model_uri, config, chosen)
    return {"model_uri": model_uri, "epoch": chosen, "metrics": state["metrics"], "seconds": seconds, "run_id": run_id}


# ----------------------------------------------------------------------------------------
# the trainer's loop


def _broadcast(obj: Any, rank: int, world: int) -> Any:
    if world == 1:
        return obj
    holder = [obj if rank == 0 else None]
    dist.broadcast_object_list(holder, src=0)
    return holder[0]


def exported_uri(job: TrainJob) -> str:
    """The job's outcome, written once its model is exported: what a run that finds the job done
    (or waited for another run to train it) reports, without training or logging anything."""
    return st.join(job.output_uri, f"exported-{job.run_key}.json")


def run_job_once(job: TrainJob, config: BenchmarkConfig, rank: int, world: int, holder: str) -> dict[str, Any]:
    """:func:`run_job` under the job's lease (issue 25): a job another run trains (or trained) is
    waited for and its outcome reused — nothing trained, nothing logged to MLflow. Rank 0 takes the
    lease and tells the other ranks whether to train."""
    from tasks.leases import leased

    if rank != 0:
        return run_job(job, config, rank, world) if _broadcast(None, rank, world) else {}
    marker = exported_uri(job)

    def compute() -> dict[str, Any]:
        _broadcast(True, rank, world)
        outcome = run_job(job, config, rank, world)
        st.write_text(marker, json.dumps(outcome), config.storage)
        return outcome

    def reuse() -> dict[str, Any]:
        _broadcast(False, rank, world)
        return json.loads(st.read_text(marker, config.storage))

    return leased(marker, config.storage, holder, compute, reuse, lambda: st.exists(marker, config.storage))


def train_loop_per_worker(loop_config: dict[str, Any]) -> None:
    """Ray Train entry point: {"queue": JobQueue handle, "trainer": name, "config": BenchmarkConfig json,
    "progress": tasks.remote_progress.RemoteProgress or None, "holder": this run's id in leases}.

    Rank 0 takes the next job and tells the other ranks; all train it; rank 0 reports the outcome.
    With one worker a failing job is recorded and the trainer goes on with the next; with several
    workers (DDP) a failure ends the trainer (Ray Train restarts it up to ``max_failures`` times).
    """
    jobs, trainer, progress = loop_config["queue"], loop_config["trainer"], loop_config.get("progress")
    holder = loop_config.get("holder") or trainer
    config = BenchmarkConfig.model_validate(loop_config["config"])
    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    while True:
        payload = _broadcast(ray.get(jobs.next.remote(trainer)) if rank == 0 else None, rank, world)
        if payload is None:
            return
        job = TrainJob.model_validate(payload)
        if world > 1:
            outcome = run_job_once(job, config, rank, world, holder)
        else:
            try:
                outcome = run_job_once(job, config, rank, world, holder)
            except Exception as exc:  # recorded as this job's failure; the trainer goes on with the next job
                log.exception("training %s failed", job.name)
                _RankZeroTracker.fail(job)
                outcome = {"error": f"{type(exc).__name__}: {exc}"}
        if rank == 0:
            ray.get(jobs.finish.remote(trainer, job.name, outcome))
            if progress is not None:
                from tasks.leases import REUSED_FROM

                status = "failed" if "error" in outcome else "reused" if REUSED_FROM in outcome else "computed"
                progress.advance(status=status, item=job.name)


class _RankZeroTracker:
    """MLflow on rank 0: the job's run (found again by run key, else created) and its metrics."""

    def __init__(self, job: TrainJob):
        self.run_id: str | None = None
        if not (job.tracking_uri and job.experiment_id):
            return
        import mlflow

        from tasks import tracking

        mlflow.set_tracking_uri(job.tracking_uri)
        finished = tracking.find_run(job.experiment_id, job.run_key)
        if finished is not None and tracking.run_status(finished) == "FINISHED":
            # trained and exported before (its outcome file lost): this run logs nothing into it again
            self.run_id, self.frozen = finished, True
            return
        self.run_id, created = tracking.find_or_create_run(job.experiment_id, job.run_key, job.name, tags=job.run_tags, parent_run_id=job.parent_run_id)
        if created:
            tracking.log_params(self.run_id, job.run_params)

    frozen = False  # the job's run is already FINISHED: nothing more is logged into it

    def log(self, metrics: dict[str, float], step: int) -> None:
        if self.run_id is None or self.frozen:
            return
        from tasks import tracking

        tracking.log_metrics(self.run_id, metrics, step=step)

    def finish_training(self, job: TrainJob, model_uri: str, config: BenchmarkConfig, epoch: int) -> None:
        """Register the exported model; the run ends here (evaluation reopens it and ends it again)."""
        if self.run_id is None or self.frozen:
            return
        from tasks import tracking

        tracking.set_tags(self.run_id, {"videolstm.exported_epoch": str(epoch)})
        if job.register_as:
            from tasks.mlflow_model import log_model

            log_model(job, self.run_id, model_uri, config, _sample_inputs(job, config))
        tracking.finish_run(self.run_id)

    @staticmethod
    def fail(job: TrainJob) -> None:
        if job.tracking_uri and job.experiment_id:
            from tasks import tracking

            run_id = tracking.find_run(job.experiment_id, job.run_key)
            if run_id:
                tracking.finish_run(run_id, failed=True)


#: Tag of a run made for a model that an earlier run on the same storage root trained.
REUSED_TAG = "videolstm.reused"


def track_reused(job: TrainJob, config: BenchmarkConfig, model_uri: str) -> str | None:
    """The job's run in this experiment for a model reused from the storage root (issue 25).

    A run of another experiment, or of another tracking server, on the same storage root trained
    it: this experiment gets the model's run all the same, once — the job's params and tags, its
    training curves (the checkpoints' history), the exported epoch and the logged model, tagged
    :data:`REUSED_TAG`. A FINISHED run of the job's run key is left as it is. Returns the run id
    (None without tracking)."""
    if not (job.tracking_uri and job.experiment_id):
        return None
    import mlflow

    from tasks import tracking

    mlflow.set_tracking_uri(job.tracking_uri)
    found = tracking.find_run(job.experiment_id, job.run_key)
    if found is not None and tracking.run_status(found) == "FINISHED":
        return found
    note = (
        "trained by an earlier run on this storage root (its training run, with the system metrics, is in the "
        "experiment that ran it); curves, params and model copied from the trained files"
    )
    run_id, _ = tracking.find_or_create_run(job.experiment_id, job.run_key, job.name, tags={**job.run_tags, REUSED_TAG: note}, parent_run_id=job.parent_run_id)
    tracking.log_params(run_id, job.run_params)
    logged = {m.step for m in mlflow.tracking.MlflowClient().get_metric_history(run_id, "train/loss")}
    for step, metrics in enumerate(trained_history(job, config, model_uri), start=1):
        if step not in logged:
            tracking.log_metrics(run_id, {k: float(v) for k, v in metrics.items()}, step=step)
    epoch = int(load_checkpoint(model_uri, config.storage)["epoch"])
    tracking.set_tags(run_id, {"videolstm.exported_epoch": str(epoch)})
    if job.register_as:
        from tasks.mlflow_model import log_model

        log_model(job, run_id, model_uri, config, _sample_inputs(job, config), always_log=True)
    tracking.finish_run(run_id)
    return run_id


def trained_history(job: TrainJob, config: BenchmarkConfig, model_uri: str) -> list[dict[str, float]]:
    """Every epoch's metrics of a trained job: the latest checkpoint's history (the exported
    model's own stops at its epoch, which may be an earlier one)."""
    epochs = checkpoint_epochs(st.join(job.output_uri, CHECKPOINTS), config.storage)
    source = epochs[max(epochs)] if epochs else model_uri
    return list(load_checkpoint(source, config.storage).get("history", []))


def _sample_inputs(job: TrainJob, config: BenchmarkConfig) -> dict[str, np.ndarray]:
    """One real input example of the job (for the MLflow model signature)."""
    if job.kind == "frame_cnn":
        from videolstm.features.inputs import stream_inputs
        from videolstm.store import shards

        arrays = shards.read_shard(job.train_rows[0]["shard"], columns=["frames", "flow"], storage=config.storage)
        return {"x": stream_inputs(arrays, job.stream, np.arange(min(4, arrays["frames"].shape[0])), job.flow_stack)[None]}
    batch = snippet_batch(job.train_rows[:1], job.x_column, job.flow_column, job.snippet_length, None, config.storage)
    return {k: v for k, v in batch.items() if k != "label"}


def _record_worker(job: TrainJob, config: BenchmarkConfig, rank: int) -> None:
    """Write where this rank runs (node, pid) under the job's folder: for debugging and tests."""
    info = {"rank": rank, "node_id": ray.get_runtime_context().get_node_id(), "pid": os.getpid(), "hostname": os.uname().nodename}
    st.write_text(st.join(job.output_uri, "workers", f"rank-{rank}.json"), json.dumps(info), config.storage)


__all__ = ["REUSED_TAG", "JobQueue", "MODEL_FILE", "TrainJob", "run_job", "track_reused", "train_loop_per_worker"]
