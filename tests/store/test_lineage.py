"""videolstm.store.lineage: stage folders keyed by parameters, StageResult and stage.json."""

from __future__ import annotations

import argparse
import re

import pydantic
import pytest

from videolstm.config import load_config
from videolstm.store.lineage import (
    STAGE_COMMANDS,
    STAGES,
    MissingStageError,
    StageResult,
    content_digest,
    lineages,
    load_stage_result,
    stage_result,
    stage_uri,
)
from videolstm.store.manifest import ItemResult

UPSTREAM_OF_TRAIN = ("dataset", "index", "frames_flow", "frame_cnn", "features")


def _changed(base: dict[str, str], other: dict[str, str]) -> set[str]:
    return {stage for stage in base if base[stage] != other[stage]}


def test_every_stage_has_a_lineage_and_equal_configs_give_equal_lineages():
    a, b = lineages(load_config()), lineages(load_config())
    assert set(a) == set(STAGES) and a == b
    assert len({a[s] for s in STAGES if s != "index"}) == len(STAGES) - 1  # distinct per stage


@pytest.mark.parametrize(
    ("override", "moved"),
    [
        ({"train.epochs": 3}, {"train", "finetune", "evaluate", "report"}),
        ({"train.model.hidden_channels": 8}, {"train", "finetune", "evaluate", "report"}),
        ({"train.finetune_epochs": 3}, {"finetune", "evaluate", "report"}),
        ({"train.videolstm_init": "scratch"}, {"finetune", "evaluate", "report"}),
        ({"train.videolstm_attention": "motion"}, {"finetune", "evaluate", "report"}),
        ({"train.val_fraction": 0.3}, {"frame_cnn", "features", "train", "finetune", "evaluate", "report"}),
        ({"evaluate.num_segments": 5}, {"evaluate", "report"}),
        ({"name": "other"}, {"report"}),
        ({"features.dtype": "float32"}, {"features", "train", "finetune", "evaluate", "report"}),
        ({"frame_cnn.epochs": 1}, {"frame_cnn", "features", "train", "finetune", "evaluate", "report"}),
        ({"flow.bound": 15.0}, {"frames_flow", "frame_cnn", "features", "train", "finetune", "evaluate", "report"}),
        ({"dataset.synthetic.frames": 20}, set(STAGES)),
    ],
)
def test_a_parameter_moves_its_stage_and_everything_downstream_only(override, moved):
    base = lineages(load_config())
    assert _changed(base, lineages(load_config(**override))) == moved


@pytest.mark.parametrize(
    "override",
    [
        {"flow.workers": 7},
        {"flow.threads_per_worker": 3},
        {"features.workers": 4},
        {"features.batch_frames": 8},
        {"train.workers": 4},
        {"train.use_gpu": True},
        {"train.cpus_per_worker": 2.0},
        {"train.max_concurrent": 2},
        {"train.max_failures": 0},
        {"train.variants": ["lstm"]},
        {"train.streams": ["rgb"]},
        {"train.seeds": [0, 1, 2, 3]},  # seeds are items inside the stages' folders: adding one trains it alone
        {"evaluate.regression_threshold": 0.5},
        {"ray.num_cpus": 2},
        {"mlflow.experiment": "elsewhere"},
        {"storage.endpoint_url": "http://127.0.0.1:9000"},
    ],
)
def test_execution_only_settings_change_no_lineage(override):
    assert lineages(load_config(**override)) == lineages(load_config())


def test_stage_uri_is_absolute_and_keyed_by_lineage(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = load_config(**{"storage.root": "runs/x"})
    keys = lineages(config)
    root = str(tmp_path.resolve() / "runs" / "x")
    assert stage_uri(config, "features") == f"{root}/features/{keys['features']}"
    assert stage_uri(config, "dataset") == f"{root}/dataset/synthetic"
    moved = load_config(**{"storage.root": "runs/x", "train.epochs": 2})
    assert stage_uri(moved, "train") != stage_uri(config, "train")
    assert stage_uri(moved, "features") == stage_uri(config, "features")
    with pytest.raises(ValueError, match="unknown stage 'flows'"):
        stage_uri(config, "flows")


def _results() -> list[ItemResult]:
    return [
        ItemResult("C/b", "failed", "k2", reason="C/b.avi: zero-byte file"),
        ItemResult("C/a", "ok", "k1", shard="/x/a.parquet"),
        ItemResult("C/c", "failed", "k3", reason="C/c.avi: truncated"),
    ]


def test_content_digest_ignores_order_but_sees_keys_and_statuses():
    results = _results()
    assert content_digest(results) == content_digest(results[::-1])
    flipped = [ItemResult("C/b", "ok", "k2"), *results[1:]]
    assert content_digest(flipped) != content_digest(results)
    rekeyed = [ItemResult("C/b", "failed", "other"), *results[1:]]
    assert content_digest(rekeyed) != content_digest(results)


def test_stage_json_round_trip_through_load_stage_result(tmp_path):
    config = load_config(**{"storage.root": str(tmp_path)})
    uri = stage_uri(config, "frames_flow")
    written = stage_result(
        "frames_flow",
        uri,
        f"{uri}/manifest.parquet",
        lineages(config)["frames_flow"],
        _results(),
        seconds=2.5,
        computed=1,
        storage=config.storage,
        pairs=12,
        sizes={"channels": 64, "spatial": [7, 7]},
    )
    assert (written.ok, written.failed, written.computed) == (1, 2, 1)
    assert written.failures == [("C/b", "C/b.avi: zero-byte file"), ("C/c", "C/c.avi: truncated")]
    assert written.extra == {"pairs": 12, "sizes": {"channels": 64, "spatial": [7, 7]}}
    loaded = load_stage_result(config, "frames_flow")
    assert isinstance(loaded, StageResult)
    assert loaded == written
    with pytest.raises(pydantic.ValidationError):  # frozen: a stage's result is not edited afterwards
        loaded.ok = 5


def _cli_commands() -> set[str]:
    from flows.cli import build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return set(sub.choices)


@pytest.mark.parametrize("stage", STAGES)
def test_missing_stage_error_names_a_cli_command_that_exists(tmp_path, stage):
    config = load_config(**{"storage.root": str(tmp_path)})
    with pytest.raises(MissingStageError) as info:
        load_stage_result(config, stage)
    message = str(info.value)
    assert f"{stage_uri(config, stage)}/stage.json" in message
    command = re.search(r"`videolstm ([a-z-]+) --config", message).group(1)
    assert command == STAGE_COMMANDS[stage]
    assert command in _cli_commands()


def test_every_stage_has_a_command():
    assert set(STAGE_COMMANDS) == set(STAGES)


@pytest.mark.integration
def test_stage_json_round_trip_on_s3(moto_s3):
    storage, bucket = moto_s3
    config = load_config(storage=storage.model_dump())
    uri = stage_uri(config, "features")
    assert uri.startswith(f"s3://{bucket}/features/")
    with pytest.raises(MissingStageError):
        load_stage_result(config, "features")
    written = stage_result("features", uri, f"{uri}/manifest.parquet", lineages(config)["features"], _results(), 1.0, 3, storage)
    assert load_stage_result(config, "features") == written


def test_the_authors_videolstm_attention_leaves_the_lineage_it_had_before_the_option_existed():
    """The option joins the finetune digest only when set: caches of default runs stay valid."""
    from videolstm.config import stable_digest

    config = load_config()
    old = stable_digest([lineages(config)["train"], config.train.videolstm_init, config.train.finetune_epochs])
    assert lineages(config)["finetune"] == old
    assert lineages(load_config(**{"train.videolstm_attention": "rgb_and_motion"})) == lineages(config)


#: lineages() of the default configuration, computed before the recipe-ablation options (issue 20)
#: existed: an option at its default must keep every stage's folder (and cache) where it was.
DEFAULT_LINEAGES = {
    "dataset": "ff6adbe94d1d",
    "index": "ff6adbe94d1d",
    "frames_flow": "262627f09c79",
    "frame_cnn": "d83eaafb8db1",
    "features": "80797f760b55",
    "train": "44896c040c10",
    "finetune": "3df8c7077d9d",
    "evaluate": "7deb323d2e3f",
    "report": "19c2e9bccbe3",
}


def _as_before_issue_21() -> dict:
    """Issue 21 moves the default evaluation on purpose (a new box method); its legacy value keeps the old folder."""
    from videolstm.config import LocalizationConfig

    return {"evaluate.localization.box_method": "paper"} if "box_method" in LocalizationConfig.model_fields else {}


def test_the_default_configuration_keeps_its_lineages():
    assert lineages(load_config(**_as_before_issue_21())) == DEFAULT_LINEAGES


@pytest.mark.parametrize(
    ("override", "moved"),
    [
        ({"evaluate.segment_placement": "even"}, {"evaluate", "report"}),
        ({"train.val_split": "videos"}, {"frame_cnn", "features", "train", "finetune", "evaluate", "report"}),
        ({"train.attention_source": "oracle"}, {"train", "finetune", "evaluate", "report"}),
        ({"train.motion_prior_weight": 0.1}, {"train", "finetune", "evaluate", "report"}),
        ({"train.model.alstm_attention": "hidden"}, {"train", "finetune", "evaluate", "report"}),
        ({"train.model.motion_alstm_attention": "flow"}, {"train", "finetune", "evaluate", "report"}),
    ],
)
def test_a_recipe_option_moves_only_the_stages_it_changes_and_none_at_its_default(override, moved):
    """Issue 20's ablation options: set, they move their stages (and what is downstream); written out at
    their defaults, they move nothing (runs made before the option existed keep their caches)."""
    from videolstm.config import RECIPE_OPTIONS_AT_DEFAULT

    base = lineages(load_config())
    assert _changed(base, lineages(load_config(**override))) == moved
    section = next(iter(override)).split(".")[0]
    defaults = {f"{section}.{k}": v for k, v in RECIPE_OPTIONS_AT_DEFAULT[section].items()}
    assert lineages(load_config(**defaults)) == base
