"""Stage 4: per-frame features of both streams on Ray Data (pool5 maps, fc7 vectors, logits).

Each actor loads the two trained frame CNNs once (``torch.load(weights_only=True)``) and
writes one feature shard per video; like the flow stage it resumes from its manifest.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
import ray
import torch

from videolstm.store import shards
from videolstm.store.checkpoint import load_checkpoint, restore_model
from videolstm.config import BenchmarkConfig, FeatureConfig, StorageConfig
from videolstm.features.inputs import STREAMS
from videolstm.features.extraction import FEATURE_COUNTS, features_key, process_video_features
from videolstm.store.lineage import StageResult, lineages, stage_result, stage_uri
from videolstm.store.manifest import ItemResult, StageDir, failure_summary, read_manifest

log = logging.getLogger(__name__)


class FeatureWorker:
    """Ray Data actor: frame CNNs of both streams over each video's frames and flow."""

    def __init__(self, stage_uri: str, model_uris: dict[str, str], features: dict, flow_stack: int, storage: dict, threads: int):
        torch.set_num_threads(threads)
        self.storage = StorageConfig.model_validate(storage)
        self.config = FeatureConfig.model_validate(features)
        self.stage = StageDir(stage_uri, self.storage)
        self.flow_stack = flow_stack
        self.models = {s: restore_model(load_checkpoint(u, self.storage))[0] for s, u in model_uris.items()}

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list]:
        rows = [dict(zip(batch, values)) for values in zip(*batch.values())]
        results = [
            process_video_features(row, row["key"], self.stage, self.models, self.config, self.flow_stack, self.storage).to_row()
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
    if todo:
        init_ray(config)
        threads = max(1, int(ray.cluster_resources().get("CPU", 1)) // config.features.workers)
        ds = ray.data.from_items(todo, override_num_blocks=max(1, min(len(todo), 64))).map_batches(
            FeatureWorker,
            fn_constructor_kwargs={
                "stage_uri": stage.uri, "model_uris": model_uris, "features": config.features.model_dump(),
                "flow_stack": config.frame_cnn.flow_stack, "storage": config.storage.model_dump(), "threads": threads,
            },
            batch_size=1,
            num_cpus=threads,
            compute=ray.data.ActorPoolStrategy(size=config.features.workers),
            max_restarts=-1,
            max_task_retries=3,
        )
        computed = [ItemResult.from_row(row) for row in ds.take_all()]
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
