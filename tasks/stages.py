"""The stage graph, declared once: which function runs each stage and which stages it reads.

The ``full-benchmark`` flow (:mod:`flows.full_benchmark`) runs :data:`PIPELINE` in order, each
stage a Prefect task; the CLI (:mod:`flows.cli`) gives every stage a command of its own
(:data:`videolstm.store.lineage.STAGE_COMMANDS`) that reads its inputs' saved results. A stage
added here is in both.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from videolstm.config import BenchmarkConfig
from videolstm.store.lineage import STAGE_COMMANDS, StageResult


@dataclass(frozen=True)
class Stage:
    """One stage: ``run(config, *inputs' results[, parent run id])``.

    ``function``: where ``run`` is, ``module:name`` (imported when first asked for, so that the
    CLI's parser and ``videolstm config`` do not load Ray and PyTorch); ``inputs``: the upstream
    stages whose results ``run`` takes, in its argument order (all of them in one list when
    ``collects``); ``tracked``: ``run`` takes the benchmark's MLflow parent run id last;
    ``retries``: Prefect's retries of the stage task."""

    name: str
    summary: str
    function: str
    inputs: tuple[str, ...] = ()
    tracked: bool = False
    collects: bool = False
    retries: int = 1

    @property
    def run(self) -> Callable[..., Any]:
        """The stage's ``tasks.*.run_*`` function."""
        module, _, name = self.function.partition(":")
        return getattr(importlib.import_module(module), name)

    @property
    def command(self) -> str:
        """``videolstm <command>`` runs this stage alone."""
        return STAGE_COMMANDS[self.name]

    def arguments(self, config: BenchmarkConfig, results: Mapping[str, StageResult], parent_run_id: str | None) -> list[Any]:
        """``run``'s positional arguments, from the upstream ``results`` by stage name."""
        upstream = [results[name] for name in self.inputs]
        return [config, *([upstream] if self.collects else upstream), *([parent_run_id] if self.tracked else [])]


#: Every stage, upstream first; the last one (the report) reads all the others.
PIPELINE: tuple[Stage, ...] = (
    Stage("index", "generate/download the dataset and index the split", "tasks.dataset:run_dataset", retries=2),
    Stage("frames_flow", "decode videos and compute optical flow (Ray Data)", "tasks.frames_flow:run_frames_flow", ("index",)),
    Stage("frame_cnn", "train the per-stream frame CNNs (Ray Train)", "tasks.train:run_frame_cnn", ("index", "frames_flow"), tracked=True),
    Stage("features", "extract per-frame features (Ray Data)", "tasks.features:run_features", ("frames_flow", "frame_cnn")),
    Stage("train", "train every (variant, stream) of every seed except VideoLSTM (Ray Train)", "tasks.train:run_train", ("features",), tracked=True),
    Stage(
        "finetune",
        "assemble VideoLSTM from the trained flow ConvLSTM and RGB ConvALSTM, then fine-tune it",
        "tasks.train:run_finetune",
        ("features", "train"),
        tracked=True,
    ),
    Stage(
        "evaluate",
        "evaluate and localize the trained experiment, or one model",
        "tasks.evaluate:run_evaluate",
        ("index", "frames_flow", "features", "frame_cnn", "train", "finetune"),
        tracked=True,
    ),
    Stage(
        "report",
        "write the comparison tables and charts to the parent MLflow run",
        "tasks.report:run_report",
        ("index", "frames_flow", "frame_cnn", "features", "train", "finetune", "evaluate"),
        tracked=True,
        collects=True,
    ),
)


def stage(name: str) -> Stage:
    """The stage called ``name`` (its lineage name, e.g. ``frames_flow``)."""
    for s in PIPELINE:
        if s.name == name:
            return s
    raise KeyError(f"no stage {name!r}; stages: {[s.name for s in PIPELINE]}")


def by_command(command: str) -> Stage | None:
    """The stage ``videolstm <command>`` runs, or None for a command that is not a stage."""
    return next((s for s in PIPELINE if s.command == command), None)


__all__ = ["PIPELINE", "Stage", "by_command", "stage"]
