"""Stage 1: make the dataset available (generate, download or point at it) and index the split."""

from __future__ import annotations

import logging
import time

import pyarrow.compute as pc

from tasks.console import stage_progress
from videolstm.config import BenchmarkConfig
from videolstm.data.datasets import load_index, write_index
from videolstm.store import storage as st
from videolstm.store.lineage import StageResult, lineages, stage_result, stage_uri
from videolstm.store.manifest import ItemResult, item_key

log = logging.getLogger(__name__)


def dataset_root(config: BenchmarkConfig) -> tuple[str, str | None]:
    """(root URI of the videos in the official layout, annotations URI or None), creating it if needed."""
    dataset = config.dataset
    if dataset.root:
        return dataset.root, dataset.annotations
    if dataset.kind == "synthetic":
        from videolstm.data.datasets.synthetic import generate_synthetic

        root = st.join(stage_uri(config, "dataset"), dataset.synthetic.digest())
        generate_synthetic(root, dataset.synthetic, storage=config.storage)
        return root, dataset.annotations or st.join(root, "annotations.pkl")
    from videolstm.data.datasets.prepare import prepare_dataset

    root = stage_uri(config, "dataset")
    prepared = prepare_dataset(dataset.kind, root, dataset.download.urls, verify=dataset.download.verify, storage=config.storage, limits=dataset.limits)
    return prepared, dataset.annotations


def subsample(table, max_per_class: int | None):
    """Keep at most ``max_per_class`` videos per (class, subset), in video-id order."""
    if max_per_class is None:
        return table
    table = table.sort_by([("video_id", "ascending")])
    keep, seen = [], {}
    for label, subset in zip(table.column("label").to_pylist(), table.column("subset").to_pylist()):
        seen[(label, subset)] = seen.get((label, subset), 0) + 1
        keep.append(seen[(label, subset)] <= max_per_class)
    return table.filter(keep)


def run_dataset(config: BenchmarkConfig) -> StageResult:
    """Generate/download the dataset if needed, index the configured split, store the index."""
    with stage_progress("index", detail=f"{config.dataset.kind}, split {config.dataset.split}") as progress:
        result = _run_dataset(config)
        progress.set_total(result.ok + result.failed)
        progress.advance(result.ok, "computed")
        progress.advance(result.failed, "failed")
    return result


def _run_dataset(config: BenchmarkConfig) -> StageResult:
    started = time.perf_counter()
    root, annotations = dataset_root(config)
    table = load_index(config.dataset.kind, root, config.dataset.split, storage=config.storage, limits=config.dataset.limits)
    table = subsample(table, config.dataset.max_videos_per_class)
    uri = stage_uri(config, "index")
    index_uri = st.join(uri, "index.parquet")
    write_index(table, index_uri, storage=config.storage)
    results = [
        ItemResult(
            video_id=row["video_id"],
            status=row["status"],
            key=item_key(row["path"], row["fingerprint"]),
            label=row["label"],
            subset=row["subset"],
            reason=row["reason"],
        )
        for row in table.to_pylist()
    ]
    ok = table.filter(pc.equal(table.column("status"), "ok"))
    names = {}
    for label, name in zip(table.column("label").to_pylist(), table.column("class_name").to_pylist()):
        if label >= 0:
            names[label] = name
    num_classes = max(names) + 1 if names else 0
    class_names = [names.get(i, f"class_{i}") for i in range(num_classes)]
    log.info(
        "index: %d videos (%d train, %d test), %d classes, %d failed",
        ok.num_rows,
        sum(1 for s in ok.column("subset").to_pylist() if s == "train"),
        sum(1 for s in ok.column("subset").to_pylist() if s == "test"),
        num_classes,
        table.num_rows - ok.num_rows,
    )
    return stage_result(
        "index",
        uri,
        index_uri,
        lineages(config)["index"],
        results,
        time.perf_counter() - started,
        computed=len(results),
        storage=config.storage,
        dataset_root=root,
        annotations=annotations,
        class_names=class_names,
    )
