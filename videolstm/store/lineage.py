"""Where each stage writes, and the keys that decide what a re-run may reuse.

A stage's folder is keyed by its *lineage*: the digest of its own parameters and of every
upstream stage's parameters. A changed parameter therefore moves that stage and everything
downstream to new folders (nothing is overwritten; the old results stay reusable), while the
stages upstream keep theirs::

    <storage.root>/dataset/...                     generated or downloaded videos (synthetic: by config digest)
    <storage.root>/index/<lineage>/                index.parquet
    <storage.root>/frames_flow/<lineage>/          manifest.parquet + shards/
    <storage.root>/frame_cnn/<lineage>/convnet-<stream>-s<seed>/   the frame CNN per stream and seed
    <storage.root>/features/<lineage>/s<seed>/     manifest.parquet + shards/ (one folder per seed)
    <storage.root>/train/<lineage>/<variant>-<stream>-s<seed>/  checkpoints/ + model.pt
    <storage.root>/finetune/<lineage>/videolstm-rgb-s<seed>/    VideoLSTM, assembled and fine-tuned
    <storage.root>/evaluate/<lineage>/             predictions, metrics, plots
    <storage.root>/report/<lineage>/               comparison tables and charts

Within a folder, each item (a video, a trained model) is keyed by the *content* of its inputs,
so adding a video to the dataset computes only that video.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from videolstm.config import BenchmarkConfig, StorageConfig, stable_digest, val_split_options, videolstm_model_options, without_recipe_defaults
from videolstm.store import storage as st
from videolstm.store.manifest import ItemResult

STAGES = ("dataset", "index", "frames_flow", "frame_cnn", "features", "train", "finetune", "evaluate", "report")


class StageResult(BaseModel):
    """What a stage hands downstream (small, serialisable; Prefect persists it)."""

    model_config = ConfigDict(frozen=True)

    stage: str
    uri: str = Field(description="the stage's output folder")
    manifest_uri: str = ""
    lineage: str = Field(description="digest of this stage's and its upstream's parameters")
    content: str = Field(description="digest of what the stage produced (item ids, keys, statuses)")
    ok: int = 0
    failed: int = 0
    failures: list[tuple[str, str]] = Field(default_factory=list, description="(item, reason) of failed items")
    seconds: float = 0.0
    computed: int = Field(0, description="items computed in this run (the rest were reused)")
    extra: dict[str, Any] = Field(default_factory=dict)


def _section(config: BenchmarkConfig, name: str, exclude: set[str] | None = None) -> dict[str, Any]:
    data = getattr(config, name).model_dump(mode="json")
    for key in exclude or ():
        data.pop(key, None)
    return data


#: Synthetic-set knobs added after the dataset lineage was published: left out of it at these values.
SYNTHETIC_KNOBS_ADDED_LATER: dict[str, Any] = {"actors": 1}


#: Train settings that change how, where or which models run, not what one learns: left out of the
#: train lineage and of every model's run key. Seeds are items inside a stage's folder (keyed per
#: model), so adding a seed trains that seed only.
TRAIN_EXECUTION_KEYS = frozenset(
    {
        "variants",
        "streams",
        "seeds",
        "workers",
        "use_gpu",
        "cpus_per_worker",
        "gpus_per_worker",
        "max_concurrent",
        "max_failures",
        "loader_workers",
        "prefetch_batches",
    }
)
#: Train settings only VideoLSTM's fine-tuning stage reads (in its own lineage, not the train stage's).
FINETUNE_ONLY_KEYS = frozenset({"videolstm_init", "finetune_epochs", "videolstm_attention"})


def train_params(config: BenchmarkConfig) -> dict[str, Any]:
    """The train settings that change what a model learns: the train lineage's and the run keys'
    (the recipe options of issue 20 only when set, so default runs keep their keys)."""
    return without_recipe_defaults("train", _section(config, "train", set(TRAIN_EXECUTION_KEYS | FINETUNE_ONLY_KEYS)))


def lineages(config: BenchmarkConfig) -> dict[str, str]:
    """Lineage digest of every stage (execution-only settings excluded)."""
    dataset_params = _section(config, "dataset", {"limits"})  # limits refuse input, change no result
    for key, default in SYNTHETIC_KNOBS_ADDED_LATER.items():  # at their defaults: the lineage of the runs before them
        if dataset_params["synthetic"].get(key) == default:
            dataset_params["synthetic"].pop(key)
    dataset = stable_digest({"dataset": dataset_params})
    frames_flow = stable_digest([dataset, _section(config, "flow", {"workers", "threads_per_worker"})])
    frame_cnn = stable_digest([frames_flow, _section(config, "frame_cnn"), config.train.val_fraction, *val_split_options(config.train)])
    features = stable_digest([frame_cnn, _section(config, "features", {"workers", "batch_frames"})])
    train = stable_digest([features, train_params(config)])
    options = videolstm_model_options(config.train)  # only when set: caches of default runs stay valid
    finetune = stable_digest([train, config.train.videolstm_init, config.train.finetune_epochs, *([options] if options else [])])
    evaluation = {**_section(config, "evaluate", {"regression_threshold"}), "localization": config.evaluate.localization.lineage_data()}
    evaluate = stable_digest([finetune, without_recipe_defaults("evaluate", evaluation)])
    report = stable_digest([evaluate, config.name])
    return {
        "dataset": dataset,
        "index": dataset,
        "frames_flow": frames_flow,
        "frame_cnn": frame_cnn,
        "features": features,
        "train": train,
        "finetune": finetune,
        "evaluate": evaluate,
        "report": report,
    }


def stage_uri(config: BenchmarkConfig, stage: str) -> str:
    """The output folder of ``stage`` for this configuration (an absolute URI)."""
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}; expected one of {STAGES}")
    root = st.absolute(config.storage.root)
    if stage == "dataset":
        return st.join(root, "dataset", config.dataset.kind)
    return st.join(root, stage, lineages(config)[stage])


def content_digest(results: list[ItemResult]) -> str:
    """Digest of a stage's items (id, key, status), independent of order."""
    return stable_digest(sorted((r.video_id, r.key, r.status) for r in results), 16)


STAGE_FILE = "stage.json"


def stage_result(
    stage: str,
    uri: str,
    manifest_uri: str,
    lineage: str,
    results: list[ItemResult],
    seconds: float,
    computed: int,
    storage: StorageConfig | None = None,
    **extra: Any,
) -> StageResult:
    """Build a stage's result and save it as ``<uri>/stage.json`` (so a later stage can run alone)."""
    failed = [r for r in results if not r.ok]
    result = StageResult(
        stage=stage,
        uri=uri,
        manifest_uri=manifest_uri,
        lineage=lineage,
        content=content_digest(results),
        ok=len(results) - len(failed),
        failed=len(failed),
        failures=[(r.video_id, r.reason) for r in sorted(failed, key=lambda r: r.video_id)],
        seconds=seconds,
        computed=computed,
        extra=extra,
    )
    st.write_text(st.join(uri, STAGE_FILE), result.model_dump_json(indent=2), storage)
    return result


class MissingStageError(RuntimeError):
    """A stage was asked to run alone but an upstream stage has not produced its output."""


#: The ``videolstm`` CLI command that produces each stage's output (see ``flows/cli.py``).
STAGE_COMMANDS = {
    "dataset": "dataset",
    "index": "dataset",
    "frames_flow": "flow",
    "frame_cnn": "frame-cnn",
    "features": "features",
    "train": "train",
    "finetune": "finetune",
    "evaluate": "evaluate",
    "report": "report",
}


def load_stage_result(config: BenchmarkConfig, stage: str) -> StageResult:
    """The saved result of ``stage`` for this configuration; tells the user what to run if absent."""
    uri = st.join(stage_uri(config, stage), STAGE_FILE)
    if not st.exists(uri, config.storage):
        raise MissingStageError(
            f"stage {stage!r} has no output for this configuration ({uri} is missing); run "
            f"`videolstm {STAGE_COMMANDS[stage]} --config ...` (or `videolstm benchmark`) first"
        )
    return StageResult.model_validate_json(st.read_text(uri, config.storage))
