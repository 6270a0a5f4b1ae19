"""Stage 2: decode + optical flow on Ray Data (one task per video, ``flow.workers`` at a time).

Each task sets OpenCV to ``flow.threads_per_worker`` threads. A killed worker's task is retried
by Ray Data; since a video's shard always lands at the same URI atomically, a retry can neither
lose nor duplicate a video, and :mod:`tasks.attempts` bounds how often one video is tried.
Tasks rather than an actor pool: nothing is worth keeping between videos (a flow estimator costs
microseconds to create), and an actor pool's restartable actors receive their constructor
arguments through the object store (Ray warns about it at every start). Results are read back
as they finish, one row per video, so the console counts videos as they are done.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from typing import Any

import numpy as np
import pyarrow.compute as pc
import ray

from tasks.attempts import attempt, clear_attempts, new_attempts_uri
from tasks.console import StageProgress, stage_progress
from tasks.leases import WaitNotice, leased, run_holder
from videolstm.config import BenchmarkConfig, FlowConfig, StorageConfig
from videolstm.data.datasets import read_index
from videolstm.data.frames_flow import FRAMES_FLOW_COUNTS, frames_flow_key, process_video
from videolstm.store import storage as st
from videolstm.store.lineage import StageResult, lineages, stage_result, stage_uri
from videolstm.store.manifest import ItemResult, StageDir, failure_summary

log = logging.getLogger(__name__)


def frames_flow_batch(
    batch: dict[str, np.ndarray], stage_uri: str, flow: dict[str, Any], storage: dict[str, Any], attempts_uri: str, holder: str
) -> dict[str, list]:
    """Ray Data task: decode videos and compute their flow, one manifest row per video.

    Each video is computed under a lease on its shard (:mod:`tasks.leases`): a video another run
    (``holder`` is this one) is computing is waited for and read back from its shard."""
    from videolstm.data.flow import set_threads

    flow_config = FlowConfig.model_validate(flow)
    storage_config = StorageConfig.model_validate(storage)
    stage = StageDir(stage_uri, storage_config)
    set_threads(flow_config.threads_per_worker)
    if flow_config.method == "tvl1_torch":  # its CPU path threads in torch, not OpenCV
        import torch

        torch.set_num_threads(flow_config.threads_per_worker)
    rows = [dict(zip(batch, values)) for values in zip(*batch.values())]
    results = [
        attempt(
            attempts_uri,
            row["video_id"],
            lambda row=row: _leased_video(row, stage, flow_config, storage_config, holder),
            lambda reason, row=row: ItemResult(
                video_id=row["video_id"], status="failed", key=row["key"], label=int(row["label"]), subset=row["subset"], reason=f"{row['path']}: {reason}"
            ).to_row(),
            storage_config,
        )
        for row in rows
    ]
    return _columns(results)


def _leased_video(row: dict[str, Any], stage: StageDir, flow: FlowConfig, storage: StorageConfig, holder: str) -> dict[str, Any]:
    shard = stage.shard_uri(row["video_id"], row["key"])
    return leased(
        shard,
        storage,
        holder,
        lambda: process_video(row, row["key"], stage, flow, storage).to_row(),
        lambda: stage._recover(row["video_id"], row["key"], shard, FRAMES_FLOW_COUNTS).to_row(),
        lambda: st.exists(shard, storage),
    )


def _columns(rows: list[dict[str, Any]]) -> dict[str, list]:
    names = sorted({k for r in rows for k in r})
    return {name: [r.get(name, -1 if name in FRAMES_FLOW_COUNTS else None) for r in rows] for name in names}


def compute_frames_flow(
    todo: list[dict[str, Any]],
    stage: StageDir,
    flow: FlowConfig,
    storage: StorageConfig,
    workers: int,
    progress: StageProgress | None = None,
    notice: WaitNotice | None = None,
    num_gpus: float = 0.0,
) -> list[ItemResult]:
    """Run :func:`frames_flow_batch` over ``todo`` (index rows with a ``key``) on Ray Data, one video per task
    (``num_gpus`` per task: tvl1_torch on a cluster with GPUs, see :func:`flow_gpus_per_task`)."""
    attempts_uri = new_attempts_uri(stage.uri)
    ds = ray.data.from_items(todo, override_num_blocks=max(1, len(todo)))
    ds = ds.map_batches(
        frames_flow_batch,
        fn_kwargs={"stage_uri": stage.uri, "flow": flow.model_dump(), "storage": storage.model_dump(), "attempts_uri": attempts_uri, "holder": run_holder()},
        batch_size=1,
        num_cpus=flow.threads_per_worker,
        **({"num_gpus": num_gpus} if num_gpus > 0 else {}),
        compute=ray.data.TaskPoolStrategy(size=workers),
    )
    results = []
    notice = notice or WaitNotice("frames+flow")
    try:
        for row in ds.iter_rows():
            row = dict(row)
            reused = notice.pop(row)
            item = ItemResult.from_row({k: (None if (k in FRAMES_FLOW_COUNTS and v == -1) else v) for k, v in row.items()})
            results.append(item)
            if progress is not None:
                progress.advance(status="reused" if reused else "computed" if item.ok else "failed", item=item.video_id)
    finally:
        clear_attempts(attempts_uri, storage)
    return results


def run_frames_flow(config: BenchmarkConfig, index: StageResult) -> StageResult:
    """Frames + flow for every ok video of the index; reuses what the manifest already holds."""
    from tasks.runtime import init_ray

    started = time.perf_counter()
    stage = StageDir(stage_uri(config, "frames_flow"), config.storage)
    table = read_index(index.manifest_uri, storage=config.storage)
    ok = table.filter(pc.equal(table.column("status"), "ok")).to_pylist()
    failed_index = [r for r in table.to_pylist() if r["status"] != "ok"]
    keys = {row["video_id"]: frames_flow_key(row, config.flow) for row in ok}
    todo_ids, reused = stage.plan(keys, FRAMES_FLOW_COUNTS)
    todo_set = set(todo_ids)
    todo = [{**row, "key": keys[row["video_id"]]} for row in ok if row["video_id"] in todo_set]
    log.info("frames+flow: %d videos to compute, %d reused from %s", len(todo), len(reused), stage.uri)
    computed: list[ItemResult] = []
    notice = WaitNotice("frames+flow")
    with stage_progress("frames_flow", total=len(keys), detail=f"{len(todo)} to compute, {len(reused)} reused") as progress:
        progress.advance(len(reused), "reused")
        if todo:
            init_ray(config)
            cluster_cpus = int(ray.cluster_resources().get("CPU", 1))
            workers = max(1, min(config.flow.workers, len(todo), cluster_cpus // config.flow.threads_per_worker or 1))
            gpus = flow_gpus_per_task(config.flow, float(ray.cluster_resources().get("GPU", 0)), workers)
            computed = compute_frames_flow(todo, stage, config.flow, config.storage, workers, progress, notice, gpus)
    index_failures = [
        ItemResult(video_id=r["video_id"], status="failed", key="", label=r["label"], subset=r["subset"], reason=r["reason"]) for r in failed_index
    ]
    results = list(reused.values()) + computed + index_failures
    _check_complete(keys, results)
    stage.write_manifest(results)
    summary = failure_summary(results, stage.manifest_uri, "frames+flow")
    if summary:
        log.warning(summary)
    return stage_result(
        "frames_flow",
        stage.uri,
        stage.manifest_uri,
        lineages(config)["frames_flow"],
        results,
        time.perf_counter() - started,
        computed=len(computed) - notice.reused,
        storage=config.storage,
        pairs=int(sum(r.counts.get("num_flow", 0) for r in computed)),
    )


def flow_gpus_per_task(flow: FlowConfig, cluster_gpus: float, workers: int) -> float:
    """GPUs each flow task asks Ray for: tvl1_torch shares the cluster's GPUs among the ``workers``
    concurrent tasks (at most one each); the OpenCV methods, or a cluster without GPUs, ask for none."""
    if flow.method != "tvl1_torch" or cluster_gpus <= 0:
        return 0.0
    return min(1.0, cluster_gpus / max(1, workers))


def _check_complete(keys: dict[str, str], results: list[ItemResult]) -> None:
    """Every indexed video appears exactly once in the results (nothing lost, nothing doubled)."""
    counts = Counter(r.video_id for r in results)
    duplicated = sorted(i for i, n in counts.items() if n > 1)
    missing = sorted(set(keys) - set(counts))
    if duplicated or missing:
        raise RuntimeError(f"frames+flow bookkeeping error: missing {missing[:5]}, duplicated {duplicated[:5]}")
