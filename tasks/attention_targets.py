"""Per-epoch attention health (issue 13): the validation videos' ground truth for the training loop.

The driver writes, once per training stage, the ground-truth boxes of the validation videos in
fractions of the frame (``attention_targets.json`` in the stage's folder); each sequence
trainer reads it and logs ``val/attention_entropy``, ``val/attention_in_box`` and
``val/attention_in_box_chance`` every epoch (:mod:`videolstm.evaluation.attention_health`).
Without annotations the file is not written and the entropy alone is logged.
"""

from __future__ import annotations

import logging
import pickle
from collections.abc import Sequence
from typing import Any

from videolstm.config import BenchmarkConfig
from videolstm.store import storage as st
from videolstm.store.lineage import MissingStageError, load_stage_result, stage_uri

log = logging.getLogger(__name__)

TARGETS_FILE = "attention_targets.json"


def with_attention_targets(config: BenchmarkConfig, stage: str, jobs: Sequence[Any]) -> list[Any]:
    """``jobs`` (``TrainJob``s) with ``attention_targets_uri`` set on the sequence jobs that validate.

    One targets file per stage holds the validation videos of all of them (each seed has its own
    validation split; the file covers their union).
    """
    videos = {row["video_id"]: row for job in jobs if job.kind == "sequence" for row in job.val_rows}
    uri = write_attention_targets(config, list(videos.values()), stage) if videos else None
    if uri is None:
        return list(jobs)
    return [job.model_copy(update={"attention_targets_uri": uri}) if job.kind == "sequence" and job.val_rows else job for job in jobs]


def write_attention_targets(config: BenchmarkConfig, val_rows: Sequence[dict[str, Any]], stage: str = "train") -> str | None:
    """Write the validation videos' targets and return their URI; None without annotations.

    The annotations URI is the index stage's (``index.extra["annotations"]``); frame sizes come
    from the videos themselves (``probe_video``). A missing index stage or an unreadable
    annotation file costs the in-box metric (logged), never the training.
    """
    from videolstm.data.datasets import load_ucf101_24, read_index
    from videolstm.data.video import VideoDecodeError, probe_video
    from videolstm.evaluation.attention_health import health_targets, write_health_targets

    if not val_rows:
        return None
    try:
        index = load_stage_result(config, "index")
    except MissingStageError as exc:
        log.info("attention health: no in-box metric (%s)", exc)
        return None
    annotations_uri = index.extra.get("annotations")
    if not annotations_uri:
        return None
    try:
        annotations = load_ucf101_24(annotations_uri, storage=config.storage, limits=config.dataset.limits)
    except (ValueError, OSError, EOFError, pickle.UnpicklingError) as exc:
        log.warning("attention health: no in-box metric, annotation file %s is unusable: %s", annotations_uri, exc)
        return None
    table = read_index(index.manifest_uri, storage=config.storage)
    paths = dict(zip(table.column("video_id").to_pylist(), table.column("path").to_pylist()))
    ground_truth, sizes = {}, {}
    for row in val_rows:
        video = row["video_id"]
        if annotations.get(video) and video in paths:
            try:
                info = probe_video(paths[video], storage=config.storage)
            except VideoDecodeError as exc:
                log.warning("attention health: %s left out: %s", video, exc)
                continue
            ground_truth[video], sizes[video] = annotations[video], (info.height, info.width)
    if not ground_truth:
        return None
    uri = st.join(stage_uri(config, stage), TARGETS_FILE)
    return write_health_targets(uri, health_targets(ground_truth, sizes), config.storage)
