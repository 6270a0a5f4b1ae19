"""Stage 4: per-frame features of both streams of every seed on Ray Data (pool5 maps, fc7 vectors, logits).

Each actor loads the trained frame CNNs once (``torch.load(weights_only=True)``) and
writes one feature shard per video; like the flow stage it resumes from its manifest.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from typing import Any

import numpy as np
import ray
import torch

from videolstm.store import shards
from videolstm.store.checkpoint import load_checkpoint, restore_model
from videolstm.config import BenchmarkConfig, FeatureConfig, StorageConfig
from videolstm.features.inputs import STREAMS
from videolstm.features.extraction import FEATURE_COUNTS, features_key, process_video_features
from videolstm.store import storage as st
from videolstm.store.lineage import StageResult, content_digest, lineages, stage_result, stage_uri
from videolstm.store.manifest import ItemResult, StageDir, failure_summary, read_manifest, write_manifest

log = logging.getLogger(__name__)


class FeatureWorker:
    """Ray Data actor: the frame CNNs of both streams of every seed over each video's frames and flow."""

    def __init__(self, stage_uris: dict[str, str], model_uris: dict[str, dict[str, str]], features: dict, flow_stack: int,
                 storage: dict, threads: int):
        torch.set_num_threads(threads)
        self.storage = StorageConfig.model_validate(storage)
        self.config = FeatureConfig.model_validate(features)
        self.stages = {seed: StageDir(uri, self.storage) for seed, uri in stage_uris.items()}
        self.flow_stack = flow_stack
        self.models = {seed: {s: restore_model(load_checkpoint(u, self.storage))[0] for s, u in streams.items()}
                       for seed, streams in model_uris.items()}

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list]:
        rows = [dict(zip(batch, values)) for values in zip(*batch.values())]
        results = []
        for row in rows:
            seed = str(row["seed"])
            item = process_video_features(row, row["key"], self.stages[seed], self.models[seed], self.config, self.flow_stack, self.storage)
            item.counts["seed"] = int(row["seed"])
            results.append(item.to_row())
        return {name: [r.get(name) for r in results] for name in sorted({k for r in results for k in r})}


def seed_dir(config: BenchmarkConfig, seed: int) -> StageDir:
    """The features of one seed (from that seed's frame CNNs): ``features/<lineage>/s<seed>/``."""
    return StageDir(st.join(stage_uri(config, "features"), f"s{seed}"), config.storage)


def run_features(config: BenchmarkConfig, frames_flow: StageResult, frame_cnn: StageResult) -> StageResult:
    """Features of every ok video of the frames+flow stage with each seed's trained frame CNNs.

    One folder per seed (:func:`seed_dir`) with its own manifest; the stage's manifest lists every
    (seed, video) as ``s<seed>/<video id>`` so failures of any seed are reported once each.
    """
    from tasks.runtime import init_ray
    from tasks.train import model_name

    started = time.perf_counter()
    cnn = {r.video_id: r for r in read_manifest(frame_cnn.manifest_uri, config.storage)}
    upstream = read_manifest(frames_flow.manifest_uri, config.storage)
    ok = [r for r in upstream if r.ok]
    model_uris: dict[str, dict[str, str]] = {}
    todo: list[dict[str, Any]] = []
    reused: dict[int, list[ItemResult]] = {}
    for seed in config.train.seeds:
        items = {stream: cnn.get(model_name("convnet", stream, seed)) for stream in STREAMS}
        for stream, item in items.items():
            if item is None or not item.ok:
                raise RuntimeError(f"the {stream} frame CNN of seed {seed} did not train "
                                   f"({item.reason if item else 'missing'}); see {frame_cnn.manifest_uri}")
        model_uris[str(seed)] = {stream: item.shard for stream, item in items.items()}
        digests = {stream: item.key for stream, item in items.items()}
        keys = {r.video_id: features_key(r.key, digests, config.features, config.frame_cnn.flow_stack) for r in ok}
        todo_ids, kept = seed_dir(config, seed).plan(keys, FEATURE_COUNTS)
        reused[seed] = list(kept.values())
        wanted = set(todo_ids)
        todo += [{"video_id": r.video_id, "label": r.label, "subset": r.subset, "shard": r.shard, "key": keys[r.video_id], "seed": seed}
                 for r in ok if r.video_id in wanted]
    log.info("features: %d (video, seed) items to compute, %d reused", len(todo), sum(len(v) for v in reused.values()))
    computed: list[ItemResult] = []
    if todo:
        init_ray(config)
        threads = max(1, int(ray.cluster_resources().get("CPU", 1)) // config.features.workers)
        ds = ray.data.from_items(todo, override_num_blocks=max(1, min(len(todo), 64))).map_batches(
            FeatureWorker,
            fn_constructor_kwargs={
                "stage_uris": {str(s): seed_dir(config, s).uri for s in config.train.seeds}, "model_uris": model_uris,
                "features": config.features.model_dump(), "flow_stack": config.frame_cnn.flow_stack,
                "storage": config.storage.model_dump(), "threads": threads,
            },
            batch_size=1,
            num_cpus=threads,
            compute=ray.data.ActorPoolStrategy(size=config.features.workers),
            max_restarts=-1,
            max_task_retries=3,
        )
        computed = [ItemResult.from_row(row) for row in ds.take_all()]
    carried = [r for r in upstream if not r.ok]  # failures of upstream stages stay visible here
    manifests, contents, everything = {}, {}, []
    for seed in config.train.seeds:
        mine = reused[seed] + [r for r in computed if r.counts.get("seed") == seed] + carried
        stage = seed_dir(config, seed)
        manifests[str(seed)] = stage.write_manifest(mine)
        contents[str(seed)] = content_digest(mine)
        everything += [replace(r, video_id=f"s{seed}/{r.video_id}") for r in mine]
    uri = stage_uri(config, "features")
    manifest_uri = write_manifest(st.join(uri, "manifest.parquet"), everything, config.storage)
    summary = failure_summary(everything, manifest_uri, "features")
    if summary:
        log.warning(summary)
    sizes = feature_sizes([r for r in everything if r.ok], config.storage)
    return stage_result(
        "features", uri, manifest_uri, lineages(config)["features"], everything, time.perf_counter() - started,
        computed=len(computed), storage=config.storage, feature_sizes=sizes, num_classes=frame_cnn.extra["num_classes"],
        manifests=manifests, contents=contents,
    )


def feature_sizes(results: list[ItemResult], storage: StorageConfig) -> dict[str, Any]:
    """Channels, spatial size and fc7 width of the features (read from one shard)."""
    if not results:
        raise RuntimeError("no video has features; every upstream item failed (see the manifests)")
    arrays = shards.read_shard(results[0].shard, columns=["rgb_pool5", "rgb_fc7"], storage=storage)
    _, channels, h, w = arrays["rgb_pool5"].shape
    return {"channels": int(channels), "spatial_size": [int(h), int(w)], "fc7_dim": int(arrays["rgb_fc7"].shape[1])}
