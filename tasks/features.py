"""Stage 4: per-frame features of both streams on Ray Data (pool5 maps, fc7 vectors, logits).

One Ray Data task per video (``features.workers`` at a time, as the flow stage); each worker
process loads the two trained frame CNNs once (``torch.load(weights_only=True)``) and keeps them
for the next videos; each task writes one feature shard. Like the flow stage it resumes from its
manifest and bounds the tries of a video whose worker keeps dying (:mod:`tasks.attempts`).
"""

from __future__ import annotations

import functools
import logging
import time
from typing import Any

import numpy as np
import ray
import torch

from tasks.attempts import attempt, clear_attempts, new_attempts_uri
from tasks.console import stage_progress
from videolstm.store import shards
from videolstm.store.checkpoint import load_checkpoint, restore_model
from videolstm.config import BenchmarkConfig, FeatureConfig, StorageConfig
from videolstm.features.inputs import STREAMS
from videolstm.features.extraction import FEATURE_COUNTS, features_key, process_video_features
from videolstm.store.lineage import StageResult, lineages, stage_result, stage_uri
from videolstm.store.manifest import ItemResult, StageDir, failure_summary, read_manifest

log = logging.getLogger(__name__)


@functools.lru_cache(maxsize=2)
def _frame_cnns(model_uris: tuple[tuple[str, str], ...], model_keys: tuple[tuple[str, str], ...], storage_json: str) -> dict[str, torch.nn.Module]:
    """The frame CNNs of both streams, loaded once per worker process (tasks of a stage reuse it);
    ``model_keys`` (their content keys) make a retrained model at the same URI a new entry."""
    storage = StorageConfig.model_validate_json(storage_json)
    return {s: restore_model(load_checkpoint(u, storage))[0] for s, u in model_uris}


def features_batch(batch: dict[str, np.ndarray], stage_uri: str, model_uris: dict[str, str], model_keys: dict[str, str], features: dict,
                   flow_stack: int, storage: dict, threads: int, attempts_uri: str) -> dict[str, list]:
    """Ray Data task: frame CNNs of both streams over each video's frames and flow, one manifest row per video."""
    torch.set_num_threads(threads)
    storage_config = StorageConfig.model_validate(storage)
    config = FeatureConfig.model_validate(features)
    stage = StageDir(stage_uri, storage_config)
    models = _frame_cnns(tuple(sorted(model_uris.items())), tuple(sorted(model_keys.items())), storage_config.model_dump_json())
    rows = [dict(zip(batch, values)) for values in zip(*batch.values())]
    results = [
        attempt(
            attempts_uri, row["video_id"],
            lambda row=row: process_video_features(row, row["key"], stage, models, config, flow_stack, storage_config).to_row(),
            lambda reason, row=row: ItemResult(video_id=row["video_id"], status="failed", key=row["key"], label=int(row["label"]),
                                               subset=row["subset"], reason=reason).to_row(),
            storage_config,
        )
        for row in rows
    ]
    return {name: [r.get(name) for r in results] for name in sorted({k for r in results for k in r})}


def run_features(config: BenchmarkConfig, frames_flow: StageResult, frame_cnn: StageResult) -> StageResult:
    """Features of every ok video of the frames+flow stage with the trained frame CNNs."""
    from tasks.runtime import init_ray

    started = time.perf_counter()
    stage = StageDir(stage_uri(config, "features"), config.storage)
    cnn = {r.video_id: r for r in read_manifest(frame_cnn.manifest_uri, config.storage)}
    model_uris = {}
    for stream in STREAMS:
        item = cnn.get(f"convnet-{stream}")
        if item is None or not item.ok:
            raise RuntimeError(f"the {stream} frame CNN did not train ({item.reason if item else 'missing'}); see {frame_cnn.manifest_uri}")
        model_uris[stream] = item.shard
    digests = {s: cnn[f"convnet-{s}"].key for s in STREAMS}
    upstream = read_manifest(frames_flow.manifest_uri, config.storage)
    ok = [r for r in upstream if r.ok]
    keys = {r.video_id: features_key(r.key, digests, config.features, config.frame_cnn.flow_stack) for r in ok}
    todo_ids, reused = stage.plan(keys, FEATURE_COUNTS)
    todo_set = set(todo_ids)
    todo = [{"video_id": r.video_id, "label": r.label, "subset": r.subset, "shard": r.shard, "key": keys[r.video_id]} for r in ok if r.video_id in todo_set]
    log.info("features: %d videos to compute, %d reused from %s", len(todo), len(reused), stage.uri)
    computed: list[ItemResult] = []
    with stage_progress("features", total=len(keys), detail=f"{len(todo)} to compute, {len(reused)} reused") as progress:
        progress.advance(len(reused), "reused")
        if todo:
            init_ray(config)
            threads = max(1, int(ray.cluster_resources().get("CPU", 1)) // config.features.workers)
            attempts_uri = new_attempts_uri(stage.uri)
            ds = ray.data.from_items(todo, override_num_blocks=max(1, len(todo))).map_batches(
                features_batch,
                fn_kwargs={
                    "stage_uri": stage.uri, "model_uris": model_uris, "model_keys": digests, "features": config.features.model_dump(),
                    "flow_stack": config.frame_cnn.flow_stack, "storage": config.storage.model_dump(), "threads": threads,
                    "attempts_uri": attempts_uri,
                },
                batch_size=1,
                num_cpus=threads,
                compute=ray.data.TaskPoolStrategy(size=config.features.workers),
            )
            try:
                for row in ds.iter_rows():
                    computed.append(ItemResult.from_row(row))
                    progress.advance(status="computed" if computed[-1].ok else "failed", item=computed[-1].video_id)
            finally:
                clear_attempts(attempts_uri, config.storage)
    carried = [r for r in upstream if not r.ok]  # failures of upstream stages stay visible here
    results = list(reused.values()) + computed + carried
    stage.write_manifest(results)
    summary = failure_summary(results, stage.manifest_uri, "features")
    if summary:
        log.warning(summary)
    sizes = feature_sizes([r for r in results if r.ok], config.storage)
    return stage_result(
        "features", stage.uri, stage.manifest_uri, lineages(config)["features"], results, time.perf_counter() - started,
        computed=len(computed), storage=config.storage, feature_sizes=sizes, num_classes=frame_cnn.extra["num_classes"],
    )


def feature_sizes(results: list[ItemResult], storage: StorageConfig) -> dict[str, Any]:
    """Channels, spatial size and fc7 width of the features (read from one shard)."""
    if not results:
        raise RuntimeError("no video has features; every upstream item failed (see the manifests)")
    arrays = shards.read_shard(results[0].shard, columns=["rgb_pool5", "rgb_fc7"], storage=storage)
    _, channels, h, w = arrays["rgb_pool5"].shape
    return {"channels": int(channels), "spatial_size": [int(h), int(w)], "fc7_dim": int(arrays["rgb_fc7"].shape[1])}
