"""Stage 4: per-frame features of both streams of every seed on Ray Data (pool5 maps, fc7 vectors, logits).

One Ray Data task per (video, seed) (``features.workers`` at a time, as the flow stage); each
worker process loads a seed's two trained frame CNNs once (``torch.load(weights_only=True)``)
and keeps them for the next videos; each task writes one feature shard into its seed's folder.
Like the flow stage it resumes from its manifests and bounds the tries of a video whose worker
keeps dying (:mod:`tasks.attempts`).
"""

from __future__ import annotations

import functools
import logging
import time
from dataclasses import replace
from typing import Any

import numpy as np
import ray
import torch

from tasks.attempts import attempt, clear_attempts, new_attempts_uri
from tasks.console import stage_progress
from tasks.leases import WaitNotice, leased, run_holder
from videolstm.config import BenchmarkConfig, FeatureConfig, StorageConfig
from videolstm.features.extraction import FEATURE_COUNTS, features_key, process_video_features
from videolstm.features.inputs import STREAMS
from videolstm.models.restore import restore_model
from videolstm.store import shards
from videolstm.store import storage as st
from videolstm.store.checkpoint import load_checkpoint
from videolstm.store.lineage import StageResult, content_digest, lineages, stage_result, stage_uri
from videolstm.store.manifest import ItemResult, StageDir, failure_summary, read_manifest, write_manifest

log = logging.getLogger(__name__)


@functools.lru_cache(maxsize=8)
def _frame_cnns(model_uris: tuple[tuple[str, str], ...], model_keys: tuple[tuple[str, str], ...], storage_json: str) -> dict[str, torch.nn.Module]:
    """One seed's frame CNNs of both streams, loaded once per worker process (tasks of a stage
    reuse them); ``model_keys`` (their content keys) make a retrained model at the same URI a new entry."""
    storage = StorageConfig.model_validate_json(storage_json)
    return {s: restore_model(load_checkpoint(u, storage))[0] for s, u in model_uris}


def features_batch(
    batch: dict[str, np.ndarray],
    stage_uris: dict[str, str],
    model_uris: dict[str, dict[str, str]],
    model_keys: dict[str, dict[str, str]],
    features: dict,
    flow_stack: int,
    storage: dict,
    threads: int,
    attempts_uri: str,
    holder: str,
) -> dict[str, list]:
    """Ray Data task: a seed's frame CNNs of both streams over each video's frames and flow, one manifest row per video.

    Each (video, seed) is computed under a lease on its shard (:mod:`tasks.leases`): one another run
    (``holder`` is this one) is computing is waited for and read back from its shard."""
    torch.set_num_threads(threads)
    storage_config = StorageConfig.model_validate(storage)
    config = FeatureConfig.model_validate(features)
    rows = [dict(zip(batch, values)) for values in zip(*batch.values())]
    results = []
    for row in rows:
        seed = str(row["seed"])
        stage = StageDir(stage_uris[seed], storage_config)
        models = _frame_cnns(tuple(sorted(model_uris[seed].items())), tuple(sorted(model_keys[seed].items())), storage_config.model_dump_json())

        def compute(row=row, stage=stage, models=models) -> dict[str, Any]:
            shard = stage.shard_uri(row["video_id"], row["key"])

            def mine() -> dict[str, Any]:
                item = process_video_features(row, row["key"], stage, models, config, flow_stack, storage_config)
                item.counts["seed"] = int(row["seed"])
                return item.to_row()

            def theirs() -> dict[str, Any]:
                item = stage._recover(row["video_id"], row["key"], shard, FEATURE_COUNTS)
                item.counts["seed"] = int(row["seed"])
                return item.to_row()

            return leased(shard, storage_config, holder, mine, theirs, lambda: st.exists(shard, storage_config))

        def failed(reason: str, row=row) -> dict[str, Any]:
            return ItemResult(
                video_id=row["video_id"],
                status="failed",
                key=row["key"],
                label=int(row["label"]),
                subset=row["subset"],
                reason=reason,
                counts={"seed": int(row["seed"])},
            ).to_row()

        results.append(attempt(attempts_uri, f"s{seed}/{row['video_id']}", compute, failed, storage_config))
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
    model_keys: dict[str, dict[str, str]] = {}
    todo: list[dict[str, Any]] = []
    reused: dict[int, list[ItemResult]] = {}
    for seed in config.train.seeds:
        items = {stream: cnn.get(model_name("convnet", stream, seed)) for stream in STREAMS}
        for stream, item in items.items():
            if item is None or not item.ok:
                raise RuntimeError(f"the {stream} frame CNN of seed {seed} did not train ({item.reason if item else 'missing'}); see {frame_cnn.manifest_uri}")
        model_uris[str(seed)] = {stream: item.shard for stream, item in items.items()}
        model_keys[str(seed)] = {stream: item.key for stream, item in items.items()}
        keys = {r.video_id: features_key(r.key, model_keys[str(seed)], config.features, config.frame_cnn.flow_stack) for r in ok}
        todo_ids, kept = seed_dir(config, seed).plan(keys, FEATURE_COUNTS)
        reused[seed] = list(kept.values())
        wanted = set(todo_ids)
        todo += [
            {"video_id": r.video_id, "label": r.label, "subset": r.subset, "shard": r.shard, "key": keys[r.video_id], "seed": seed}
            for r in ok
            if r.video_id in wanted
        ]
    total_reused = sum(len(v) for v in reused.values())
    log.info("features: %d (video, seed) items to compute, %d reused", len(todo), total_reused)
    computed: list[ItemResult] = []
    notice = WaitNotice("features")
    with stage_progress("features", total=len(todo) + total_reused, detail=f"{len(todo)} to compute, {total_reused} reused", unit="video") as progress:
        progress.advance(total_reused, "reused")
        if todo:
            init_ray(config)
            threads = max(1, int(ray.cluster_resources().get("CPU", 1)) // config.features.workers)
            attempts_uri = new_attempts_uri(stage_uri(config, "features"))
            ds = ray.data.from_items(todo, override_num_blocks=max(1, len(todo))).map_batches(
                features_batch,
                fn_kwargs={
                    "stage_uris": {str(s): seed_dir(config, s).uri for s in config.train.seeds},
                    "model_uris": model_uris,
                    "model_keys": model_keys,
                    "features": config.features.model_dump(),
                    "flow_stack": config.frame_cnn.flow_stack,
                    "storage": config.storage.model_dump(),
                    "threads": threads,
                    "attempts_uri": attempts_uri,
                    "holder": run_holder(),
                },
                batch_size=1,
                num_cpus=threads,
                compute=ray.data.TaskPoolStrategy(size=config.features.workers),
            )
            try:
                for row in ds.iter_rows():
                    row = dict(row)
                    theirs = notice.pop(row)
                    computed.append(ItemResult.from_row(row))
                    progress.advance(status="reused" if theirs else "computed" if computed[-1].ok else "failed", item=computed[-1].video_id)
            finally:
                clear_attempts(attempts_uri, config.storage)
    carried = [r for r in upstream if not r.ok]  # failures of upstream stages stay visible here
    # Per seed: that seed's features and the upstream failures. The stage's own manifest lists each
    # (seed, video) item as "s<seed>/<video>" and each upstream failure once, under its own id.
    manifests, contents, everything = {}, {}, list(carried)
    for seed in config.train.seeds:
        mine = reused[seed] + [r for r in computed if r.counts.get("seed") == seed]
        manifests[str(seed)] = seed_dir(config, seed).write_manifest(mine + carried)
        contents[str(seed)] = content_digest(mine + carried)
        everything += [replace(r, video_id=f"s{seed}/{r.video_id}") for r in mine]
    uri = stage_uri(config, "features")
    manifest_uri = write_manifest(st.join(uri, "manifest.parquet"), everything, config.storage)
    summary = failure_summary(everything, manifest_uri, "features")
    if summary:
        log.warning(summary)
    sizes = feature_sizes([r for r in everything if r.ok], config.storage)
    return stage_result(
        "features",
        uri,
        manifest_uri,
        lineages(config)["features"],
        everything,
        time.perf_counter() - started,
        computed=len(computed) - notice.reused,
        storage=config.storage,
        feature_sizes=sizes,
        num_classes=frame_cnn.extra["num_classes"],
        manifests=manifests,
        contents=contents,
    )


def feature_sizes(results: list[ItemResult], storage: StorageConfig) -> dict[str, Any]:
    """Channels, spatial size and fc7 width of the features (read from one shard)."""
    if not results:
        raise RuntimeError("no video has features; every upstream item failed (see the manifests)")
    arrays = shards.read_shard(results[0].shard, columns=["rgb_pool5", "rgb_fc7"], storage=storage)
    _, channels, h, w = arrays["rgb_pool5"].shape
    return {"channels": int(channels), "spatial_size": [int(h), int(w)], "fc7_dim": int(arrays["rgb_fc7"].shape[1])}
