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
#: Issue 20: every tube of the training and validation videos, for the train-time oracle.
ORACLE_FILE = "oracle_targets.json"


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
    from videolstm.evaluation.attention_health import health_targets, write_health_targets

    found = _ground_truth(config, val_rows, "attention health: no in-box metric")
    if not found:
        return None
    ground_truth, sizes = found
    uri = st.join(stage_uri(config, stage), TARGETS_FILE)
    return write_health_targets(uri, health_targets(ground_truth, sizes), config.storage)


def _ground_truth(config: BenchmarkConfig, rows: Sequence[dict[str, Any]], what: str) -> tuple[dict, dict] | None:
    """(video → annotation tubes, video → frame (H, W)) of the annotated ``rows``; None when there is none
    (no index stage, no or an unusable annotation file: logged with ``what``)."""
    from videolstm.data.datasets import load_ucf101_24, read_index
    from videolstm.data.video import VideoDecodeError, probe_video

    if not rows:
        return None
    try:
        index = load_stage_result(config, "index")
    except MissingStageError as exc:
        log.info("%s (%s)", what, exc)
        return None
    annotations_uri = index.extra.get("annotations")
    if not annotations_uri:
        return None
    try:
        annotations = load_ucf101_24(annotations_uri, storage=config.storage, limits=config.dataset.limits)
    except (ValueError, OSError, EOFError, pickle.UnpicklingError) as exc:
        log.warning("%s, annotation file %s is unusable: %s", what, annotations_uri, exc)
        return None
    table = read_index(index.manifest_uri, storage=config.storage)
    paths = dict(zip(table.column("video_id").to_pylist(), table.column("path").to_pylist()))
    ground_truth, sizes = {}, {}
    for row in rows:
        video = row["video_id"]
        if annotations.get(video) and video in paths:
            try:
                info = probe_video(paths[video], storage=config.storage)
            except VideoDecodeError as exc:
                log.warning("%s: %s left out: %s", what, video, exc)
                continue
            ground_truth[video], sizes[video] = annotations[video], (info.height, info.width)
    return (ground_truth, sizes) if ground_truth else None


# --------------------------------------------------------------------------------------------
# issue 20: the train-time oracle's boxes


def with_oracle_targets(config: BenchmarkConfig, stage: str, jobs: Sequence[Any]) -> list[Any]:
    """``jobs`` with ``oracle_targets_uri`` set on the sequence jobs whose attention the ground truth
    replaces (``train.attention_source: oracle``): one file per stage holds every tube of every
    training and validation video of them. Without annotations no file is written and those jobs
    train on uniform maps (logged)."""
    oracle = [job for job in jobs if job.kind == "sequence" and job.attention_source == "oracle"]
    if not oracle:
        return list(jobs)
    videos = {row["video_id"]: row for job in oracle for row in [*job.train_rows, *job.val_rows]}
    uri = write_oracle_targets(config, list(videos.values()), st.join(stage_uri(config, stage), ORACLE_FILE))
    if uri is None:
        log.warning("train-time oracle: no annotations for the training videos; the attention variants train on uniform maps")
        return list(jobs)
    names = {job.name for job in oracle}
    return [job.model_copy(update={"oracle_targets_uri": uri}) if job.name in names else job for job in jobs]


def write_oracle_targets(config: BenchmarkConfig, rows: Sequence[dict[str, Any]], uri: str) -> str | None:
    """Write every tube of the annotated ``rows`` (:func:`videolstm.attention_guidance.box_targets`) to ``uri``;
    None (nothing written) when none of them is annotated."""
    from videolstm.attention_guidance import box_targets, dump_box_targets

    found = _ground_truth(config, rows, "train-time oracle: uniform maps")
    if not found:
        return None
    st.write_text(uri, dump_box_targets(box_targets(*found)), config.storage)
    return uri


def read_oracle_targets(uri: str | None, storage: Any = None) -> dict:
    """The targets :func:`write_oracle_targets` wrote (``{}`` for ``uri`` None: every map uniform)."""
    from videolstm.attention_guidance import parse_box_targets

    return parse_box_targets(st.read_text(uri, storage), uri) if uri else {}
