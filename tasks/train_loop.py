"""The Ray Train worker loop shared by the frame CNNs and the recurrent variants.

Everything model- and data-specific is a library call (``videolstm.training``); this module
only adds what Ray Train owns: the dataset shard, DDP preparation, checkpoint report and
restore, and MLflow logging on rank 0 (Ray Train V2 refuses Tune logger callbacks).
"""

from __future__ import annotations

import json
import os
import queue
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, Literal

import numpy as np
import ray
import ray.train
import ray.train.torch
import torch
import torch.distributed as dist
from pydantic import BaseModel, ConfigDict

from videolstm.store import storage as st
from videolstm.store.checkpoint import ModelSpec, checkpoint_name, checkpoint_state, latest_checkpoint, load_checkpoint, save_checkpoint, unwrap
from videolstm.config import BenchmarkConfig
from videolstm.evaluation.attention_health import read_health_targets, validation_attention_health
from videolstm.training import (
    EpochStats,
    batches_of,
    evaluate_epoch,
    frame_batch,
    frame_forward,
    make_optimizer,
    sequence_forward,
    snippet_batch,
    train_epoch,
)


class TrainJob(BaseModel):
    """One training run: a frame CNN of a stream, or a recurrent variant on a stream."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["frame_cnn", "sequence"]
    variant: str  # "convnet" for frame CNNs
    stream: str  # "rgb" | "flow" (motion variants: "rgb", attention from flow)
    name: str  # f"{variant}-{stream}"
    spec: dict[str, Any]  # ModelSpec.to_dict(); kind frame_cnn: variant = arch
    output_uri: str  # this run's folder: model.pt, workers/
    run_key: str  # content key: same inputs → same Ray Train run name, same MLflow run
    mlflow_run_id: str | None = None
    tracking_uri: str | None = None
    x_column: str = ""  # sequence: feature column of x
    flow_column: str | None = None  # sequence, motion variants: feature column of the motion input
    epochs: int
    batch_size: int
    lr: float
    optimizer: str
    weight_decay: float
    seed: int
    snippet_length: int = 30
    frames_per_video: int = 8
    flow_stack: int = 5
    weights: str | None = None  # frame_cnn vgg16: torchvision-format state dict to start from
    checkpoint_every: int = 1
    has_validation: bool = False
    threads: int = 1
    attention_targets_uri: str | None = None  # issue 13: validation boxes for the per-epoch attention health


def _batch_source(job: TrainJob, config: BenchmarkConfig, train: bool) -> tuple[Callable, Callable]:
    """(batch builder(rows, rng), forward) for the job's kind."""
    storage = config.storage
    if job.kind == "frame_cnn":
        def build(rows, rng):
            rng = rng if rng is not None else np.random.default_rng(job.seed)
            return frame_batch(rows, job.stream, job.frames_per_video, job.flow_stack, rng, storage)

        return build, frame_forward

    def build(rows, rng):
        return snippet_batch(rows, job.x_column, job.flow_column, job.snippet_length, rng, storage)

    return build, sequence_forward


def prefetched(items: Iterable[Any], depth: int = 2) -> Iterator[Any]:
    """Produce ``items`` in a background thread (loading overlaps compute); re-raise its errors."""
    buffer: queue.Queue = queue.Queue(maxsize=depth)
    done = object()

    def produce() -> None:
        try:
            for item in items:
                buffer.put(item)
        except BaseException as exc:  # handed to the consumer, re-raised there
            buffer.put(exc)
        buffer.put(done)

    threading.Thread(target=produce, daemon=True).start()
    while True:
        item = buffer.get()
        if item is done:
            return
        if isinstance(item, BaseException):
            raise item
        yield item


def _all_reduce_stats(stats: EpochStats, device: torch.device) -> EpochStats:
    if not (dist.is_available() and dist.is_initialized()):
        return stats
    sums = torch.tensor([stats.loss * stats.samples, stats.accuracy * stats.samples, stats.samples], dtype=torch.float64, device=device)
    dist.all_reduce(sums)
    n = max(sums[2].item(), 1.0)
    return EpochStats(loss=sums[0].item() / n, accuracy=sums[1].item() / n, samples=int(sums[2].item()))


def train_loop_per_worker(loop_config: dict[str, Any]) -> None:
    """Ray Train entry point; ``loop_config`` = {"job": TrainJob json, "config": BenchmarkConfig json}."""
    job = TrainJob.model_validate(loop_config["job"])
    config = BenchmarkConfig.model_validate(loop_config["config"])
    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    torch.set_num_threads(max(1, job.threads))
    torch.manual_seed(job.seed)
    _record_worker(job, config, rank)

    device = ray.train.torch.get_device()
    model = ModelSpec.from_dict(job.spec).build()
    resumed = ray.train.get_checkpoint()
    if job.weights and resumed is None:  # pretrained weights start a fresh run only
        from videolstm.features.backbones import load_vgg16_weights

        load_vgg16_weights(model, job.weights, config.storage)
    optimizer = make_optimizer(job.optimizer, model.parameters(), job.lr, job.weight_decay)
    start_epoch = 0
    if resumed is not None:
        with resumed.as_directory() as directory:
            path = latest_checkpoint(directory)
            if path is None:
                raise FileNotFoundError(f"Ray Train restored checkpoint {directory} holds no checkpoint_epoch_*.pt")
            state = load_checkpoint(path)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start_epoch = int(state["epoch"])
    model = ray.train.torch.prepare_model(model)

    build, forward = _batch_source(job, config, train=True)
    train_rows = list(ray.train.get_dataset_shard("train").iter_rows())
    val_rows = list(ray.train.get_dataset_shard("val").iter_rows()) if job.has_validation and rank == 0 else []

    targets = read_health_targets(job.attention_targets_uri, config.storage) if job.attention_targets_uri and val_rows else {}
    tracker = _RankZeroTracker(job) if rank == 0 else None
    if tracker is not None and start_epoch > 0:
        tracker.log({"resumed_from_epoch": float(start_epoch)}, step=start_epoch)
    for epoch in range(start_epoch, job.epochs):
        rng = np.random.default_rng([job.seed, epoch, rank])
        batches = prefetched(build(rows, rng) for rows in batches_of(train_rows, job.batch_size, rng))
        stats = _all_reduce_stats(train_epoch(model, batches, optimizer, forward, device), device)
        metrics = {**stats.as_metrics("train"), "epoch": float(epoch + 1)}
        if val_rows:
            val = evaluate_epoch(unwrap(model), (build(rows, None) for rows in batches_of(val_rows, job.batch_size, None)), forward, device)
            metrics.update(val.as_metrics("val"))
            metrics.update(validation_attention_health(unwrap(model), val_rows, job.x_column, job.flow_column, job.snippet_length, targets, config.storage))
        last = epoch + 1 == job.epochs
        if (epoch + 1) % job.checkpoint_every == 0 or last:
            with tempfile.TemporaryDirectory() as tmp:
                checkpoint = None
                if rank == 0:
                    spec = ModelSpec.from_dict(job.spec)
                    state = checkpoint_state(epoch + 1, model, spec, optimizer, metrics, {"job": job.name, "run_key": job.run_key})
                    save_checkpoint(str(Path(tmp) / checkpoint_name(epoch + 1)), state)
                    checkpoint = ray.train.Checkpoint.from_directory(tmp)
                ray.train.report(metrics, checkpoint=checkpoint)
        else:
            ray.train.report(metrics)
        if tracker is not None:
            tracker.log(metrics, step=epoch + 1)


class _RankZeroTracker:
    """MLflow metric logging from rank 0 into the run the driver created for this job."""

    def __init__(self, job: TrainJob):
        self.run_id = job.mlflow_run_id
        self.client = None
        if self.run_id and job.tracking_uri:
            from mlflow.tracking import MlflowClient

            self.client = MlflowClient(tracking_uri=job.tracking_uri)

    def log(self, metrics: dict[str, float], step: int) -> None:
        if self.client is None:
            return
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self.client.log_batch(self.run_id, metrics=[Metric(k, float(v), now, step) for k, v in metrics.items()])


def _record_worker(job: TrainJob, config: BenchmarkConfig, rank: int) -> None:
    """Write where this rank runs (node, pid) under the job's folder: for debugging and tests."""
    info = {"rank": rank, "node_id": ray.get_runtime_context().get_node_id(), "pid": os.getpid(), "hostname": os.uname().nodename}
    st.write_text(st.join(job.output_uri, "workers", f"rank-{rank}.json"), json.dumps(info), config.storage)
