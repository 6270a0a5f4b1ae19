"""Typed configuration of every stage.

One :class:`BenchmarkConfig` travels from the deployment parameters (or a YAML file) to every
stage. Every section forbids unknown keys, so a typo is an error, not a silently ignored
setting. Library functions take the section (or the few sizes) they need, never the whole
object; Prefect tasks and the CLI pass the whole object.

Secrets never live here: S3 credentials come from the environment (the standard AWS chain),
so nothing in this object is secret and it can be logged as MLflow params and shown in the
Prefect UI.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

Stream = Literal["rgb", "flow"]
DatasetKind = Literal["synthetic", "ucf101", "hmdb51"]
FlowMethod = Literal["tvl1", "dis", "farneback"]


class Section(BaseModel):
    """Base of every configuration section: unknown keys are errors; values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    def digest(self, length: int = 12) -> str:
        """Stable hex digest of this section's values (used to key stage outputs)."""
        return stable_digest(self.model_dump(mode="json"), length)


def stable_digest(value: Any, length: int = 12) -> str:
    """sha256 of the canonical JSON form of ``value``, truncated to ``length`` hex digits."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


class SyntheticConfig(Section):
    """The synthetic action set: one moving actor among static look-alike distractors.

    The class is the actor's motion pattern; with ``appearance_cue`` the actor also wears its
    class's colour style, but so do the distractors (random classes' styles), so a single frame
    cannot tell which object is the actor — its position (the ground-truth box) shows only
    through motion.
    """

    num_classes: int = Field(8, ge=2, le=12, description="classes (motion patterns), the first N of CLASS_NAMES")
    videos_per_class: int = Field(18, ge=3, description="videos (one group gXX each) per class")
    test_fraction: float = Field(1 / 3, gt=0, lt=1, description="groups held out for test in each of the 3 splits")
    frames: int = Field(36, ge=8, description="frames per video (25 fps)")
    height: int = Field(112, ge=32, description="frame height of the written videos")
    width: int = Field(112, ge=32, description="frame width of the written videos")
    distractors: int = Field(3, ge=0, description="static look-alike objects per video")
    actor_size: float = Field(0.2, gt=0.02, lt=0.6, description="actor side as a fraction of the frame")
    noise: float = Field(6.0, ge=0, description="std of per-frame pixel noise (0..255)")
    late_start_fraction: float = Field(
        0.0, ge=0, le=1,
        description="fraction of each class's videos whose actor appears only after the first frames (annotation sf > 0)",
    )
    appearance_cue: float = Field(
        1.0, ge=0, le=1,
        description="probability that the actor wears its class's colour style; distractors wear random classes' "
        "styles, so a frame shows several candidate styles and only motion tells which object is the actor "
        "(0: random colours for every object, a frame carries no class information)",
    )
    moving_distractors: int = Field(
        0, ge=0,
        description="how many of the distractors move, each along its own smooth random path (a wander, no class's "
        "pattern); the others stay static (0: every distractor is static)",
    )
    camera_jitter: float = Field(
        0.0, ge=0, le=0.05,
        description="camera shake: std of a random per-frame shift of the whole view, as a fraction of the frame's "
        "short side (clipped at 3 std); the boxes follow the view",
    )
    background_clutter: float = Field(
        0.0, ge=0, le=1,
        description="share of the background covered by static high-contrast textured patches of object size "
        "(stripes, checkerboards, blotches in random colours); 0: the plain two-colour blend",
    )
    seed: int = Field(0, description="generator seed (the dataset is deterministic given it)")

    @model_validator(mode="after")
    def _moving_among_distractors(self) -> SyntheticConfig:
        if self.moving_distractors > self.distractors:
            raise ValueError(
                f"moving_distractors ({self.moving_distractors}) must not exceed distractors ({self.distractors}): "
                "it says how many of the distractors move"
            )
        return self

    def digest(self, length: int = 12) -> str:
        """As :meth:`Section.digest`, with the knobs added after the embedded set was published
        left out while at their defaults, so that the default set keeps its digest (and folder)."""
        data = self.model_dump(mode="json")
        for key, default in _SYNTHETIC_KNOBS_AT_DEFAULT.items():
            if data.get(key) == default:
                data.pop(key)
        return stable_digest(data, length)


#: SyntheticConfig knobs that a digest leaves out at these (default) values; see ``SyntheticConfig.digest``.
_SYNTHETIC_KNOBS_AT_DEFAULT: dict[str, Any] = {"moving_distractors": 0, "camera_jitter": 0.0, "background_clutter": 0.0}


class DownloadConfig(Section):
    """Where to fetch the official archives from (any fsspec URL) when ``dataset.root`` is empty."""

    urls: list[str] = Field(default_factory=list, description="archive URLs (https, s3, file); empty: the official ones")
    verify: bool = Field(True, description="check sha256/size against the table of official archives")


class DatasetConfig(Section):
    kind: DatasetKind = Field("synthetic", description="synthetic | ucf101 | hmdb51")
    root: str | None = Field(
        None,
        description="URI holding the class folders and the split folder side by side; "
        "empty: generated (synthetic) or downloaded into <storage.root>/dataset",
    )
    split: int = Field(1, ge=1, le=3, description="official split 1, 2 or 3")
    annotations: str | None = Field(
        None, description="UCF101-24-format pickle (URI) for localization; synthetic writes its own"
    )
    synthetic: SyntheticConfig = SyntheticConfig()
    download: DownloadConfig = DownloadConfig()
    max_videos_per_class: int | None = Field(None, ge=1, description="subsample for quick runs")


class StorageConfig(Section):
    root: str = Field("runs/embedded", description="where every stage writes: a path or URI (file://, s3://)")
    endpoint_url: str | None = Field(None, description="S3-compatible endpoint (MinIO, moto); credentials from the environment")
    region: str | None = Field(None, description="S3 region (None: the environment's)")


class FlowConfig(Section):
    """Decoding and optical flow (denseflow convention: clip to +-bound, map to 0..255)."""

    method: FlowMethod = Field("tvl1", description="tvl1 (the paper) | dis | farneback")
    bound: float = Field(20.0, gt=0, description="flow clipped to +-bound pixels, then mapped to 0..255")
    height: int = Field(56, ge=16, description="frames are resized to height x width before flow")
    width: int = Field(56, ge=16, description="frames are resized to height x width before flow")
    max_frames: int | None = Field(None, ge=2, description="keep at most this many frames per video")
    # TV-L1 settings; OpenCV's defaults are warps=5, scales=5, scale_step=0.8, inner=30, outer=10.
    tvl1_warps: int = Field(3, ge=1, description="TV-L1 warps (OpenCV default 5)")
    tvl1_scales: int = Field(3, ge=1, description="TV-L1 pyramid scales (OpenCV default 5)")
    tvl1_scale_step: float = Field(0.5, gt=0, lt=1, description="TV-L1 pyramid scale step (OpenCV default 0.8)")
    tvl1_inner_iterations: int = Field(10, ge=1, description="TV-L1 inner iterations (OpenCV default 30)")
    tvl1_outer_iterations: int = Field(5, ge=1, description="TV-L1 outer iterations (OpenCV default 10)")
    dis_preset: Literal["ultrafast", "fast", "medium"] = Field("medium", description="DIS preset (method='dis')")
    workers: int = Field(2, ge=1, description="Ray Data actors computing flow")
    threads_per_worker: int = Field(1, ge=1, description="OpenCV threads inside each actor")


class FrameCNNConfig(Section):
    """The per-frame CNN of each stream (the paper's "ConvNet")."""

    arch: Literal["small", "vgg16"] = Field("small", description="small (embedded, from scratch) | vgg16 (torchvision layout)")
    weights: str | None = Field(None, description="torchvision-format VGG-16 state dict URI (vgg16 only)")
    channels: list[int] = Field(default_factory=lambda: [16, 32, 64], description="small CNN: channels per block")
    fc_dim: int = Field(256, ge=8, description="small CNN: fc7 width")
    flow_stack: int = Field(5, ge=1, description="flow CNN input: this many consecutive flow fields (2L channels)")
    epochs: int = Field(8, ge=1, description="frame-CNN training epochs")
    batch_size: int = Field(128, ge=1, description="frames per batch (frames_per_video from each video)")
    lr: float = Field(1e-3, gt=0, description="Adam learning rate of the frame CNN")
    frames_per_video: int = Field(16, ge=1, description="random frames sampled per video per epoch")
    dropout: float = Field(0.5, ge=0, lt=1, description="dropout of fc6/fc7")
    seed: int = Field(0, description="frame-CNN training seed")


class FeatureConfig(Section):
    workers: int = Field(1, ge=1, description="Ray Data actors extracting features")
    batch_frames: int = Field(64, ge=1, description="frames per forward pass")
    dtype: Literal["float16", "float32"] = Field("float16", description="storage type of pool5/fc7 features")


class ModelConfig(Section):
    """Sizes shared by the recurrent variants (the paper's defaults are in parentheses)."""

    hidden_channels: int = Field(32, ge=1, description="ConvLSTM hidden channels (512)")
    lstm_hidden: int = Field(128, ge=1, description="LSTM/ALSTM hidden units (512)")
    kernel_size: int = Field(3, ge=1, description="input- and state-to-state kernels (3)")
    attention_kernel_size: int = Field(1, ge=1, description="attention kernels (1)")
    motion_kernel_size: int = Field(1, ge=1, description="bottom (motion) ConvLSTM kernels (1)")
    fc_dim: int = Field(256, ge=1, description="readout FC width (1024)")
    dropout: float = Field(0.7, ge=0, lt=1, description="readout dropout (0.7)")
    init_state: Literal["mean", "zeros"] = Field("mean", description="initial states: tanh(conv(mean of X)) as the authors' code, or zeros")
    gate_execution: Literal["auto", "fused", "split_xh", "per_gate"] = Field("auto", description="how ConvLSTM gate convolutions execute (auto: measured fastest per device)")
    attention_scale: Literal["none", "positions"] = Field(
        "positions",
        description="ConvALSTM/VideoLSTM attended input: none = A*X (eq. 9 as written), positions = H*W*A*X "
        "(uniform attention passes X unchanged; trains far better under RMSProp, see the README)",
    )


class TrainConfig(Section):
    variants: list[str] = Field(
        default_factory=lambda: ["lstm", "alstm", "convlstm", "convalstm", "motion_alstm", "videolstm"],
        description="recurrent variants to train (convnet is the frame-CNN stage)",
    )
    streams: list[Stream] = Field(default_factory=lambda: ["rgb", "flow"], description="streams of the non-motion variants")
    epochs: int = Field(10, ge=1, description="training epochs (one random snippet per video each)")
    batch_size: int = Field(16, ge=1, description="clips per batch (per worker)")
    lr: float = Field(1e-3, gt=0, description="learning rate (the paper: RMSProp 1e-3)")
    optimizer: Literal["rmsprop", "adam", "sgd"] = Field("rmsprop", description="rmsprop (the paper) | adam | sgd")
    weight_decay: float = Field(0.0, ge=0, description="L2 weight decay")
    snippet_length: int = Field(30, ge=1, description="frames per training snippet (30)")
    val_fraction: float = Field(0.2, ge=0, lt=1, description="train videos held out per class for validation (best checkpoint by val/accuracy); 0: none, the latest checkpoint is used")
    seed: int = Field(0, description="training seed (snippets, shuffling, init)")
    workers: int = Field(1, ge=1, description="Ray Train workers per (variant, stream)")
    use_gpu: bool = Field(False, description="train on GPUs (NCCL) instead of CPUs (gloo)")
    cpus_per_worker: float = Field(1.0, gt=0, description="CPUs per Ray Train worker (also its torch threads)")
    gpus_per_worker: float = Field(0.0, ge=0, description="GPUs per worker when use_gpu (0: 1)")
    max_concurrent: int | None = Field(None, ge=1, description="trainers at once (default: what the cluster fits)")
    max_failures: int = Field(2, ge=0, description="Ray Train FailureConfig: worker failures tolerated")
    checkpoint_every: int = Field(1, ge=1, description="epochs between checkpoints")
    keep_checkpoints: int = Field(2, ge=1, description="checkpoints kept (best by val/accuracy; the latest is always kept)")
    model: ModelConfig = ModelConfig()

    @field_validator("variants")
    @classmethod
    def _known_variants(cls, value: list[str]) -> list[str]:
        from videolstm.models import VARIANTS  # local: models import torch

        unknown = [v for v in value if v not in VARIANTS]
        if unknown:
            raise ValueError(f"unknown variant(s) {unknown}; expected names from {sorted(VARIANTS)}")
        return value


class LocalizationConfig(Section):
    sigma: float = Field(0.5, ge=0, description="Gaussian smoothing of the upsampled map, in attention cells (0.5 cell = 4 px of a 56 px frame)")
    threshold: float = Field(0.5, gt=0, lt=1, description="fraction of the frame's max attention")
    lowess_frac: float = Field(0.3, gt=0, le=1, description="LOWESS span as a fraction of the tube length")
    iou_thresholds: list[float] = Field(default_factory=lambda: [0.1, 0.2, 0.3, 0.4, 0.5], description="video mAP thresholds")
    centre_prior_sigma: float = Field(
        0.25, gt=0, description="calibration: std of the centre-prior baseline map, as a fraction of the frame's width and height"
    )


class EvaluateConfig(Section):
    num_segments: int = Field(25, ge=1, description="test segments per video (25)")
    segment_length: int = Field(30, ge=1, description="frames per test segment (30)")
    fusion: Literal["product", "mean"] = Field("product", description="two-stream fusion of class probabilities")
    localization: LocalizationConfig = LocalizationConfig()
    overlays_per_class: int = Field(1, ge=0, description="test videos per class rendered with attention and boxes")
    regression_threshold: float = Field(0.02, ge=0, description="reevaluate: accuracy drop flagged as a regression")


class MLflowConfig(Section):
    tracking_uri: str | None = Field(None, description="default: SQLite under storage.root (local storage only)")
    experiment: str = Field("videolstm", description="MLflow experiment name")
    register_models: bool = Field(True, description="register each trained model as videolstm-<dataset>-<variant>-<stream>")


class RayConfig(Section):
    address: str | None = Field(None, description="None: a new local instance (ray.init(address='local')); 'auto' or ray://host:10001 for a cluster")
    num_cpus: int | None = Field(None, ge=1, description="local instance only")


class BenchmarkConfig(Section):
    """Everything one benchmark run needs; the Prefect deployment's parameter form."""

    name: str = Field("embedded", description="benchmark name (MLflow parent run name)")
    dataset: DatasetConfig = DatasetConfig()
    storage: StorageConfig = StorageConfig()
    flow: FlowConfig = FlowConfig()
    frame_cnn: FrameCNNConfig = FrameCNNConfig()
    features: FeatureConfig = FeatureConfig()
    train: TrainConfig = TrainConfig()
    evaluate: EvaluateConfig = EvaluateConfig()
    mlflow: MLflowConfig = MLflowConfig()
    ray: RayConfig = RayConfig()

    @model_validator(mode="after")
    def _consistent(self) -> BenchmarkConfig:
        if self.dataset.kind != "synthetic" and self.dataset.root is None and not self.dataset.download.urls:
            raise ValueError(
                f"dataset.kind={self.dataset.kind!r} needs dataset.root (a folder in the official layout) "
                "or dataset.download.urls (the archives to fetch)"
            )
        for key, value in flatten(self).items():
            if PASSWORD_IN_URI.search(value):
                raise ValueError(
                    f"{key} holds a password (user:password@ in a URI); this configuration is logged as MLflow "
                    "params and shown as Prefect parameters, so it must hold no secret: give credentials through "
                    "the environment (MLFLOW_TRACKING_USERNAME/MLFLOW_TRACKING_PASSWORD for an MLflow server, "
                    "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or a profile for S3)"
                )
        return self


#: ``scheme://user:password@`` in a URI: a secret, refused in the configuration (see ``_consistent``).
PASSWORD_IN_URI = re.compile(r"://[^/@\s:]*:[^/@\s]*@")


class ConfigError(ValueError):
    """A configuration file or mapping that does not validate; the message names each bad key."""


def load_config(source: str | Path | dict[str, Any] | None = None, **overrides: Any) -> BenchmarkConfig:
    """Build a :class:`BenchmarkConfig` from a YAML file, a mapping, or the defaults.

    ``overrides`` are dotted keys (``{"train.epochs": 2}``) applied on top.
    Raises :class:`ConfigError` naming every unknown key or wrong type and the file it came from.
    """
    origin = "defaults"
    data: dict[str, Any] = {}
    if isinstance(source, dict):
        data, origin = dict(source), "mapping"
    elif source is not None:
        path = Path(source)
        origin = str(path)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist")
        try:
            loaded = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"config file {path} is not valid YAML: {exc}") from exc
        if not isinstance(loaded, dict):
            raise ConfigError(f"config file {path} must hold a mapping at the top level, found {type(loaded).__name__}")
        data = loaded
    for dotted, value in overrides.items():
        _set_dotted(data, dotted, value)
    try:
        return BenchmarkConfig.model_validate(data)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"]) or "(top level)"
            if err["type"] == "extra_forbidden":
                lines.append(f"  {where}: unknown key (check the spelling; see the README's configuration reference)")
            else:
                got = PASSWORD_IN_URI.sub("://***:***@", repr(err.get("input")))  # never echo a password
                lines.append(f"  {where}: {err['msg']} (got {got})")
        raise ConfigError(f"invalid configuration in {origin}:\n" + "\n".join(lines)) from None


def _set_dotted(data: dict[str, Any], dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    node = data
    for key in keys[:-1]:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {dotted!r}: {key!r} is not a section")
    node[keys[-1]] = value


def flatten(config: BaseModel, prefix: str = "") -> dict[str, str]:
    """Flatten a config into ``{"train.epochs": "12", ...}`` (MLflow params)."""
    out: dict[str, str] = {}
    for key, value in config.model_dump(mode="json").items():
        _flatten_into(out, f"{prefix}{key}", value)
    return out


def _flatten_into(out: dict[str, str], key: str, value: Any) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten_into(out, f"{key}.{k}", v)
    else:
        out[key] = json.dumps(value) if isinstance(value, list) else str(value)
