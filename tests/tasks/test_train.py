"""The training stages' jobs: one model per (variant, stream, seed), VideoLSTM's sources, names."""

from __future__ import annotations

import pytest

from tasks.train import (
    MOTION_SOURCE,
    frame_cnn_job,
    model_name,
    motion_source,
    parse_model_name,
    sequence_job,
    variant_streams,
)
from videolstm.config import load_config, videolstm_model_options
from videolstm.store.lineage import StageResult
from videolstm.store.manifest import ItemResult, write_manifest


def _stage(tmp_path, name: str, **extra) -> StageResult:
    items = [
        ItemResult(video_id=f"C{c}/v_C{c}_g{g:02d}_c01", status="ok", key=f"k{c}{g}", label=c, subset=s, shard=str(tmp_path / f"{c}{g}.parquet"))
        for c in range(2)
        for g, s in ((1, "train"), (2, "train"), (3, "train"), (4, "test"))
    ]
    manifest = write_manifest(str(tmp_path / f"{name}.parquet"), items)
    return StageResult(stage=name, uri=str(tmp_path), manifest_uri=manifest, lineage="l", content=f"{name}-content", ok=len(items), extra=extra)


@pytest.fixture
def config(tmp_path):
    return load_config({"storage": {"root": str(tmp_path / "root")}, "mlflow": {"register_models": False}, "train": {"val_fraction": 0.34}})


def test_model_names_carry_the_seed_and_parse_back():
    assert model_name("motion_alstm", "rgb", 2) == "motion_alstm-rgb-s2"
    assert parse_model_name("motion_alstm-rgb-s2") == ("motion_alstm", "rgb", 2)
    assert parse_model_name(f"{MOTION_SOURCE}-flow-s0") == (MOTION_SOURCE, "flow", 0)
    with pytest.raises(ValueError, match="not a model name"):
        parse_model_name("convnet-rgb")


def test_every_seed_trains_its_own_frame_cnn(config, tmp_path):
    """Three seeds are three ConvNets (distinct names, folders, run keys), never one counted thrice."""
    frames_flow = _stage(tmp_path, "frames_flow")
    jobs = [frame_cnn_job(config, "rgb", seed, frames_flow, 2, None) for seed in config.train.seeds]
    assert [j.name for j in jobs] == ["convnet-rgb-s0", "convnet-rgb-s1", "convnet-rgb-s2"]
    assert len({j.run_key for j in jobs}) == len({j.output_uri for j in jobs}) == 3
    assert [j.seed for j in jobs] == [0, 1, 2]


def test_sequence_jobs_read_their_own_seeds_features_and_split_validation_by_group(config, tmp_path):
    sizes = {"channels": 8, "spatial_size": [7, 7], "fc7_dim": 16}
    features = _stage(
        tmp_path,
        "features",
        feature_sizes=sizes,
        num_classes=2,
        manifests={"0": str(tmp_path / "features.parquet"), "1": str(tmp_path / "features.parquet")},
        contents={"0": "c0", "1": "c1"},
    )
    a, b = (sequence_job(config, "motion_alstm", "rgb", s, features, None) for s in (0, 1))
    assert a.run_key != b.run_key and a.name == "motion_alstm-rgb-s0"
    assert (a.x_column, a.flow_column) == ("rgb_pool5", "flow_fc7")  # Motion ALSTM: flow fc7 vectors
    assert {r["video_id"] for r in a.val_rows}.isdisjoint({r["video_id"] for r in a.train_rows})
    assert len(a.val_rows) == 2 and len(a.train_rows) == 4  # one of three groups per class


def test_videolstm_is_trained_after_its_sources_and_the_matrix_lists_motion_variants_once(config):
    assert variant_streams(config) == [
        ("lstm", "rgb"),
        ("lstm", "flow"),
        ("alstm", "rgb"),
        ("alstm", "flow"),
        ("convlstm", "rgb"),
        ("convlstm", "flow"),
        ("convalstm", "rgb"),
        ("convalstm", "flow"),
        ("motion_alstm", "rgb"),
        ("videolstm", "rgb"),
    ]
    # the bottom layer's source has the bottom layer's 1×1 kernels: a ConvLSTM of its own unless kernel_size is 1
    assert motion_source(config) == (MOTION_SOURCE, {"kernel_size": 1})
    assert motion_source(load_config({"train": {"model": {"kernel_size": 1}}})) == ("convlstm", {})


def test_videolstm_attention_reaches_the_fine_tuned_models_spec_only_when_set(config, tmp_path):
    """``train.videolstm_attention: motion`` builds VideoLSTM without the RGB term (its spec says so);
    the authors' default leaves the spec, and so the run key and cache, as before the option."""
    from videolstm.models.restore import build_from_spec
    from videolstm.store.checkpoint import ModelSpec

    sizes = {"channels": 8, "spatial_size": [7, 7], "fc7_dim": 16}
    features = _stage(tmp_path, "features", feature_sizes=sizes, num_classes=2, manifests={"0": str(tmp_path / "features.parquet")}, contents={"0": "c0"})
    motion = config.model_copy(update={"train": config.train.model_copy(update={"videolstm_attention": "motion"})})
    assert videolstm_model_options(config.train) == {}
    assert videolstm_model_options(motion.train) == {"videolstm_attention": "motion"}
    default_job, motion_job = (
        sequence_job(c, "videolstm", "rgb", 0, features, None, stage="finetune", overrides=videolstm_model_options(c.train)) for c in (config, motion)
    )
    assert "videolstm_attention" not in default_job.spec["overrides"]
    assert default_job.run_key != motion_job.run_key
    model = build_from_spec(ModelSpec.from_dict(motion_job.spec))
    assert model.attention_input == "motion" and model.attention.w_xa is None
    assert build_from_spec(ModelSpec.from_dict(default_job.spec)).attention.w_xa is not None


#: Run keys of the default configuration's models (seed 0, the features below), computed before
#: the recipe-ablation options (issue 20) existed: an option at its default must leave every
#: model's spec and run key, and so its cache, exactly as they were.
DEFAULT_RUN_KEYS = {
    "lstm-rgb-s0": "8b2794b9766ee98c",
    "lstm-flow-s0": "8ec4fa94a0aedc27",
    "alstm-rgb-s0": "3d20cdf2101966f1",
    "alstm-flow-s0": "6504f1b8a704c3cd",
    "convlstm-rgb-s0": "ec40bd844c05fb18",
    "convlstm-flow-s0": "cc4238e4a18210f5",
    "convalstm-rgb-s0": "7e31c1bdfd209a05",
    "convalstm-flow-s0": "7ee06e4e7c64db52",
    "motion_alstm-rgb-s0": "14fc8a074cb62942",
    "videolstm-rgb-s0": "d9b9a3a950a5b6dc",
    "convnet-rgb-s0": "47a32cb77ac2229d",
    "convnet-flow-s0": "91da13c519c16e9f",
}


def _default_run_keys(config, tmp_path) -> dict[str, str]:
    sizes = {"channels": 8, "spatial_size": [7, 7], "fc7_dim": 16}
    features = _stage(tmp_path, "features", feature_sizes=sizes, num_classes=2, manifests={"0": str(tmp_path / "features.parquet")}, contents={"0": "c0"})
    frames_flow = _stage(tmp_path, "frames_flow")
    keys = {}
    for variant, stream in variant_streams(config):
        if variant == "videolstm":
            job = sequence_job(config, variant, stream, 0, features, None, stage="finetune", overrides=videolstm_model_options(config.train))
        else:
            job = sequence_job(config, variant, stream, 0, features, None)
        keys[job.name] = job.run_key
    for stream in ("rgb", "flow"):
        job = frame_cnn_job(config, stream, 0, frames_flow, 2, None)
        keys[job.name] = job.run_key
    return keys


def test_the_default_configuration_keeps_every_models_run_key(tmp_path):
    config = load_config({"storage": {"root": str(tmp_path / "root")}, "mlflow": {"register_models": False}})
    assert _default_run_keys(config, tmp_path) == DEFAULT_RUN_KEYS


def test_val_split_videos_moves_every_models_run_key_and_splits_by_video(tmp_path):
    """train.val_split: videos (the previous recipe) holds out single clips — here 1 of each class's 3
    train clips, of distinct groups — and changes the frame CNNs' and the sequence models' run keys."""
    base = load_config({"storage": {"root": str(tmp_path / "root")}, "mlflow": {"register_models": False}})
    videos = base.model_copy(update={"train": base.train.model_copy(update={"val_split": "videos"})})
    default_keys, video_keys = _default_run_keys(base, tmp_path), _default_run_keys(videos, tmp_path)
    assert not set(default_keys.items()) & set(video_keys.items())
    frames_flow = _stage(tmp_path, "frames_flow")
    job = frame_cnn_job(videos, "rgb", 0, frames_flow, 2, None)
    assert len(job.val_rows) == 2 and len(job.train_rows) == 4  # round(0.2 · 3) = 1 video per class


def test_the_train_time_oracle_reaches_only_the_attention_variants_jobs(tmp_path):
    """train.attention_source: oracle marks the attention variants' jobs (with their attention grid) and
    moves their run keys; models without attention train as before but in the arm's own folder."""
    base = load_config({"storage": {"root": str(tmp_path / "root")}, "mlflow": {"register_models": False}})
    oracle = base.model_copy(update={"train": base.train.model_copy(update={"attention_source": "oracle"})})
    sizes = {"channels": 8, "spatial_size": [7, 7], "fc7_dim": 16}
    features = _stage(tmp_path, "features", feature_sizes=sizes, num_classes=2, manifests={"0": str(tmp_path / "features.parquet")}, contents={"0": "c0"})
    for variant, stream in (("alstm", "flow"), ("convalstm", "rgb"), ("motion_alstm", "rgb"), ("lstm", "rgb"), ("convlstm", "flow")):
        job, default = (sequence_job(c, variant, stream, 0, features, None) for c in (oracle, base))
        attends = variant in ("alstm", "convalstm", "motion_alstm")
        assert job.attention_source == ("oracle" if attends else "learned")
        assert default.attention_source == "learned"
        assert job.attention_grid == ([7, 7] if attends else [])
        assert job.run_key != default.run_key


def test_the_motion_prior_reaches_the_convolutional_attention_models_with_the_flow_pool5(tmp_path):
    """train.motion_prior_weight > 0 (beyond the paper): ConvALSTM on either stream and VideoLSTM read
    the flow pool5 for the prior; ALSTM, Motion ALSTM and the models without attention do not."""
    base = load_config({"storage": {"root": str(tmp_path / "root")}, "mlflow": {"register_models": False}})
    prior = base.model_copy(update={"train": base.train.model_copy(update={"motion_prior_weight": 0.3})})
    sizes = {"channels": 8, "spatial_size": [7, 7], "fc7_dim": 16}
    features = _stage(tmp_path, "features", feature_sizes=sizes, num_classes=2, manifests={"0": str(tmp_path / "features.parquet")}, contents={"0": "c0"})
    for variant, stream, applies in (
        ("convalstm", "rgb", True),
        ("convalstm", "flow", True),
        ("videolstm", "rgb", True),
        ("alstm", "rgb", False),
        ("motion_alstm", "rgb", False),
        ("convlstm", "rgb", False),
    ):
        job = sequence_job(prior, variant, stream, 0, features, None, stage="finetune" if variant == "videolstm" else "train")
        default = sequence_job(base, variant, stream, 0, features, None, stage="finetune" if variant == "videolstm" else "train")
        assert (job.motion_prior_weight, job.prior_column) == ((0.3, "flow_pool5") if applies else (0.0, None))
        assert (default.motion_prior_weight, default.prior_column) == (0.0, None)
        assert job.run_key != default.run_key


def test_the_previous_attention_forms_reach_the_models_spec_only_when_set(tmp_path):
    """train.model.alstm_attention / motion_alstm_attention: in the spec (and run key) of the models when
    set — Motion ALSTM then reads the flow pool5 — and absent at the authors' default."""
    base = load_config({"storage": {"root": str(tmp_path / "root")}, "mlflow": {"register_models": False}})
    model = base.train.model.model_copy(update={"alstm_attention": "hidden", "motion_alstm_attention": "flow"})
    previous = base.model_copy(update={"train": base.train.model_copy(update={"model": model})})
    sizes = {"channels": 8, "spatial_size": [7, 7], "fc7_dim": 16}
    features = _stage(tmp_path, "features", feature_sizes=sizes, num_classes=2, manifests={"0": str(tmp_path / "features.parquet")}, contents={"0": "c0"})
    for variant in ("alstm", "motion_alstm"):
        job, default = (sequence_job(c, variant, "rgb", 0, features, None) for c in (previous, base))
        assert job.spec["overrides"]["alstm_attention"] == "hidden" and "alstm_attention" not in default.spec["overrides"]
        assert "motion_alstm_attention" not in default.spec["overrides"]
        assert job.run_key != default.run_key
    motion = sequence_job(previous, "motion_alstm", "rgb", 0, features, None)
    assert (motion.x_column, motion.flow_column) == ("rgb_pool5", "flow_pool5")
