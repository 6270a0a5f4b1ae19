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
from pathlib import Path
from typing import Any, Final, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SerializerFunctionWrapHandler, ValidationError, field_validator, model_serializer, model_validator

from videolstm.messages import redact, short_repr, shorten, userinfo

Stream = Literal["rgb", "flow"]
#: The paper's variants, in the order of its tables (the model registry's keys, videolstm.models.VARIANTS).
VARIANTS: tuple[str, ...] = ("convnet", "lstm", "alstm", "convlstm", "convalstm", "motion_alstm", "videolstm")
DatasetKind = Literal["synthetic", "ucf101", "hmdb51"]
FlowMethod = Literal["tvl1", "tvl1_torch", "dis", "farneback"]
#: Arithmetic of a section's forward/backward passes (autocast); fp16 adds gradient scaling.
Precision = Literal["fp32", "bf16", "fp16"]


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
        0.0,
        ge=0,
        le=1,
        description="fraction of each class's videos whose actor appears only after the first frames (annotation sf > 0)",
    )
    appearance_cue: float = Field(
        1.0,
        ge=0,
        le=1,
        description="probability that the actor wears its class's colour style; distractors wear random classes' "
        "styles, so a frame shows several candidate styles and only motion tells which object is the actor "
        "(0: random colours for every object, a frame carries no class information)",
    )
    moving_distractors: int = Field(
        0,
        ge=0,
        description="how many of the distractors move, each along its own smooth random path (a wander, no class's "
        "pattern); the others stay static (0: every distractor is static)",
    )
    camera_jitter: float = Field(
        0.0,
        ge=0,
        le=0.05,
        description="camera shake: std of a random per-frame shift of the whole view, as a fraction of the frame's "
        "short side (clipped at 3 std); the boxes follow the view",
    )
    background_clutter: float = Field(
        0.0,
        ge=0,
        le=1,
        description="share of the background covered by static high-contrast textured patches of object size "
        "(stripes, checkerboards, blotches in random colours); 0: the plain two-colour blend",
    )
    actors: int = Field(
        1,
        ge=1,
        le=2,
        description="actors per video, all of the video's class (each its own annotated tube; 2: a second actor with its "
        "own path of the same motion pattern, kept off the first actor's boxes when the frame has room)",
    )
    seed: int = Field(0, description="generator seed (the dataset is deterministic given it)")

    @model_validator(mode="after")
    def _moving_among_distractors(self) -> SyntheticConfig:
        if self.moving_distractors > self.distractors:
            raise ValueError(
                f"moving_distractors ({self.moving_distractors}) must not exceed distractors ({self.distractors}): it says how many of the distractors move"
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
_SYNTHETIC_KNOBS_AT_DEFAULT: dict[str, Any] = {
    "moving_distractors": 0,
    "camera_jitter": 0.0,
    "background_clutter": 0.0,
    "actors": 1,
}


class DownloadConfig(Section):
    """Where to fetch the official archives from (any fsspec URL) when ``dataset.root`` is empty."""

    urls: list[str] = Field(default_factory=list, description="archive URLs (https, s3, file); empty: the official ones")
    verify: bool = Field(True, description="check sha256/size against the table of official archives")


GiB = 1024**3
MiB = 1024**2


class InputLimits(Section):
    """Bounds on what the dataset stage reads from outside: archives, split files, annotations.

    The defaults fit the official data with room to spare (UCF101.rar: 6.5 GB, 13,320 videos and
    101 folders, stored at a ratio near 1; hmdb51_org.rar: 2 GB holding 51 ``.rar`` files, one
    level deep; the split archive: 1.65 MB of text at a ratio ~15; the largest split file 0.4 MB
    and 9,624 lines; pyannot.pkl 3.5 MB) and stop a hostile input long before it exhausts memory
    or disk. Raising one is safe when a mirror repackages the data. They refuse input and change
    no result, so they are left out of the stages' lineage.
    """

    archive_total_bytes: int = Field(
        16 * GiB, ge=1, description="bytes one extraction may unpack in all, nested archives included (UCF101.rar unpacks to ~6.5 GB)"
    )
    archive_entry_bytes: int = Field(4 * GiB, ge=1, description="bytes one archive entry may unpack to")
    archive_ratio: float = Field(100.0, gt=1, description="unpacked bytes per archive byte (videos ~1, split text ~15; a zip bomb ~1000)")
    archive_entries: int = Field(100_000, ge=1, description="entries (files and folders) one extraction may hold, nested archives included")
    archive_depth: int = Field(1, ge=0, le=4, description="archive-in-archive levels extracted (HMDB51's rar of rars needs 1; deeper is refused)")
    split_file_bytes: int = Field(8 * MiB, ge=1, description="largest split / class-index file read (UCF101's largest: 0.4 MB)")
    split_file_lines: int = Field(200_000, ge=1, description="most lines in one split file (UCF101's longest: 9,624)")
    annotation_bytes: int = Field(64 * MiB, ge=1, description="largest annotation pickle read (pyannot.pkl: 3.5 MB)")


class DatasetConfig(Section):
    kind: DatasetKind = Field("synthetic", description="synthetic | ucf101 | hmdb51")
    root: str | None = Field(
        None,
        description="URI holding the class folders and the split folder side by side; empty: generated (synthetic) or downloaded into <storage.root>/dataset",
    )
    split: int = Field(1, ge=1, le=3, description="official split 1, 2 or 3")
    annotations: str | None = Field(None, description="UCF101-24-format pickle (URI) for localization; synthetic writes its own")
    synthetic: SyntheticConfig = SyntheticConfig()
    download: DownloadConfig = DownloadConfig()
    max_videos_per_class: int | None = Field(None, ge=1, description="subsample for quick runs")
    limits: InputLimits = InputLimits()


class StorageConfig(Section):
    root: str = Field("runs/embedded", description="where every stage writes: a path or URI (file://, s3://)")
    endpoint_url: str | None = Field(None, description="S3-compatible endpoint (MinIO, moto); credentials from the environment")
    region: str | None = Field(None, description="S3 region (None: the environment's)")


class FlowConfig(Section):
    """Decoding and optical flow (denseflow convention: clip to +-bound, map to 0..255)."""

    method: FlowMethod = Field(
        "tvl1", description="tvl1 (the paper; OpenCV) | tvl1_torch (the same TV-L1 in PyTorch, on CUDA when the worker has a GPU) | dis | farneback"
    )
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
    image_format: Literal["jpeg", "raw"] = Field(
        "jpeg",
        description="how the frames+flow shards store RGB frames and each quantised flow component: "
        "jpeg (the field's convention: denseflow, MMAction2 rawframes) | raw uint8",
    )
    jpeg_quality: int = Field(95, ge=1, le=100, description="JPEG quality of the stored frames and flow images (image_format jpeg)")
    workers: int = Field(2, ge=1, description="Ray Data tasks computing flow at once (one video each)")
    threads_per_worker: int = Field(1, ge=1, description="OpenCV threads inside each flow task")


class PrecisionSection(Section):
    """A section with a ``precision`` option. At its default (fp32) the option is left out of the
    section's dump, so every digest of the section (stage lineages, run and item keys) is the one it
    had before the option existed; set to bf16 or fp16 it joins them all."""

    precision: Precision = Field(
        "fp32",
        description="fp32 | bf16 | fp16: autocast arithmetic of this section's network passes (fp16 with gradient scaling; bf16 needs a CPU/GPU "
        "with bf16 support to pay)",
    )

    @model_serializer(mode="wrap")
    def _omit_default_precision(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data = handler(self)
        if data.get("precision") == "fp32":
            data.pop("precision")
        return data


class FrameCNNConfig(PrecisionSection):
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

    @model_validator(mode="before")
    @classmethod
    def _moved_seed(cls, data: Any) -> Any:
        if isinstance(data, dict) and "seed" in data:
            raise ValueError("frame_cnn.seed is gone: every seed of train.seeds trains its own frame CNNs (e.g. train.seeds: [0, 1, 2])")
        return data


class FeatureConfig(PrecisionSection):
    workers: int = Field(1, ge=1, description="Ray Data tasks extracting features at once (one video each)")
    batch_frames: int = Field(64, ge=1, description="frames per forward pass")
    dtype: Literal["float16", "float32"] = Field("float16", description="storage type of pool5/fc7 features")


class ModelConfig(Section):
    """Sizes and options shared by the recurrent variants (the paper's/authors' values in parentheses)."""

    hidden_channels: int = Field(32, ge=1, description="ConvLSTM hidden channels, both VideoLSTM layers (512)")
    lstm_hidden: int = Field(128, ge=1, description="LSTM/ALSTM/Motion ALSTM hidden units (512)")
    kernel_size: int = Field(3, ge=1, description="input- and state-to-state kernels (3)")
    attention_kernel_size: int = Field(1, ge=1, description="attention kernels (1)")
    motion_kernel_size: int = Field(1, ge=1, description="bottom (motion) ConvLSTM kernels (1)")
    attention_channels: int | None = Field(None, ge=1, description="convolutional attention width; empty: hidden_channels (the authors': hidden, = C at 512)")
    attention_inverse_temperature: float = Field(1.0, gt=0, description="beta in softmax(beta*e) of every attention (1)")
    fc_dim: int = Field(256, ge=1, description="readout FC width (1024)")
    dropout: float = Field(0.7, ge=0, lt=1, description="convolutional variants: dropout after the readout FC (0.7)")
    vector_dropout: float = Field(0.5, ge=0, lt=1, description="LSTM/ALSTM/Motion ALSTM: dropout on h_t and after the readout FC (0.5)")
    init_state: Literal["authors", "mean", "zeros"] = Field(
        "authors",
        description="initial states: authors = zeros for ConvLSTM/LSTM, tanh(conv(mean of X)) for the attention variants; mean | zeros for all",
    )
    init: Literal["authors", "torch"] = Field(
        "authors", description="weights: authors = sparnn's schemes (see docs/fidelity.md), zero biases; torch = PyTorch defaults, forget bias 1"
    )
    gate_execution: Literal["auto", "fused", "split_xh", "per_gate"] = Field(
        "auto", description="how ConvLSTM gate convolutions execute (auto: measured fastest per device)"
    )
    attention_scale: Literal["none", "positions"] = Field(
        "none",
        description="ConvALSTM/VideoLSTM attended input: none = A*X (eq. 9 as written), positions = H*W*A*X (uniform attention passes X unchanged)",
    )
    alstm_attention: Literal["authors", "hidden"] = Field(
        "authors",
        description="ALSTM's attention: authors = from the regions x_t and h_{t-1}; hidden = a deviation, the recipe "
        "before: softmax(W h_{t-1} + b) from h_{t-1} alone",
    )
    motion_alstm_attention: Literal["authors", "flow"] = Field(
        "authors",
        description="Motion ALSTM's attention: authors = from the RGB regions and a motion LSTM over the flow fc7; flow = "
        "a deviation, the recipe before: from the flow pool5 regions and h_{t-1}, no motion LSTM",
    )


#: VideoLSTM's attention as the authors have it: from the RGB features X_t and the motion state H^m_t.
AUTHORS_VIDEOLSTM_ATTENTION: Final = "rgb_and_motion"


class TrainConfig(PrecisionSection):
    variants: list[str] = Field(
        default_factory=lambda: ["lstm", "alstm", "convlstm", "convalstm", "motion_alstm", "videolstm"],
        description="recurrent variants to train (convnet is the frame-CNN stage)",
    )
    streams: list[Stream] = Field(default_factory=lambda: list[Stream](["rgb", "flow"]), description="streams of the non-motion variants")
    seeds: list[int] = Field(
        default_factory=lambda: [0, 1, 2],
        min_length=1,
        description="every seed trains its own frame CNNs, features and every (variant, stream): independent replicates",
    )
    epochs: int = Field(10, ge=1, description="training epochs (one random snippet per video each)")
    batch_size: int = Field(16, ge=1, description="clips per batch (per worker)")
    lr: float = Field(1e-3, gt=0, description="learning rate (the paper: RMSProp 1e-3)")
    optimizer: Literal["rmsprop", "adam", "sgd", "rmsprop_torch"] = Field(
        "rmsprop",
        description="rmsprop (the authors': eps inside the square root) | adam | sgd | rmsprop_torch (a deviation, the "
        "recipe before the authors': torch's RMSprop, rho 0.99, eps 1e-8 outside the root; rmsprop_decay/eps unused)",
    )
    rmsprop_decay: float = Field(0.9, ge=0, lt=1, description="RMSProp decay of the mean square (0.9)")
    rmsprop_eps: float = Field(1e-6, gt=0, description="RMSProp epsilon, inside the square root (1e-6)")
    clip_grad_norm: float | None = Field(None, gt=0, description="clip gradients to this global norm; empty: no clipping (the authors')")
    weight_decay: float = Field(0.0, ge=0, description="L2 weight decay")
    snippet_length: int = Field(30, ge=1, description="frames per training snippet (30)")
    val_fraction: float = Field(
        0.2,
        ge=0,
        lt=1,
        description="groups of clips held out per class for validation (best checkpoint by val/accuracy); 0: none, the latest checkpoint is used",
    )
    val_split: Literal["groups", "videos"] = Field(
        "groups",
        description="what val_fraction holds out per class: groups = whole groups (clips of one source video never straddle "
        "train and validation); videos = a deviation, the recipe before: single videos, so validation can share a group "
        "with training (frame CNNs and every model move)",
    )
    attention_source: Literal["learned", "oracle"] = Field(
        "learned",
        description="the attention variants' attention: learned = the model's own (the paper); oracle = a deviation, the "
        "ablation's train-time oracle: the ground-truth boxes rendered at the feature-map resolution replace it in training "
        "and evaluation (uniform maps where a video or step has no box)",
    )
    motion_prior_weight: float = Field(
        0.0,
        ge=0,
        description="an extension beyond the paper (0: off): ConvALSTM (both streams) and VideoLSTM add weight * sum_t "
        "KL(P_t || A_t) to the loss, P_t the normalised energy sum_c M^2 of the flow pool5 maps at step t (uniform where "
        "all zero), A_t the attention; weakly supervised, no boxes used (RGB models then also read the flow pool5)",
    )
    videolstm_init: Literal["pretrained", "scratch"] = Field(
        "pretrained",
        description="VideoLSTM: pretrained = bottom from a trained flow ConvLSTM, top/attention/readout from the trained RGB ConvALSTM, then fine-tuned "
        "(the authors'); scratch = random weights",
    )
    finetune_epochs: int | None = Field(None, ge=1, description="VideoLSTM epochs in the fine-tuning stage; empty: epochs")
    videolstm_attention: Literal["rgb_and_motion", "motion"] = Field(
        AUTHORS_VIDEOLSTM_ATTENTION,
        description="what VideoLSTM's attention reads: rgb_and_motion = the RGB features X_t and the motion state H^m_t "
        "(the authors'); motion = H^m_t alone (a deviation, issue 13 part 4)",
    )
    workers: int = Field(1, ge=1, description="Ray Train workers per trainer")
    loader_workers: int = Field(2, ge=0, description="threads per training worker reading and decoding batches ahead of the step (0: in the step's thread)")
    prefetch_batches: int = Field(4, ge=1, description="batches read ahead of the training step")
    use_gpu: bool = Field(False, description="train on GPUs (NCCL) instead of CPUs (gloo)")
    cpus_per_worker: float = Field(1.0, gt=0, description="CPUs per Ray Train worker (also its torch threads)")
    gpus_per_worker: float = Field(0.0, ge=0, description="GPUs per worker when use_gpu (0: 1)")
    max_concurrent: int | None = Field(None, ge=1, description="trainers at once (default: what the cluster fits)")
    max_failures: int = Field(2, ge=0, description="Ray Train FailureConfig: worker failures tolerated")
    checkpoint_every: int = Field(1, ge=1, description="epochs between checkpoints")
    keep_checkpoints: int = Field(2, ge=1, description="checkpoints kept per model (the best by val/accuracy and the latest are always kept)")
    model: ModelConfig = ModelConfig()

    @model_validator(mode="before")
    @classmethod
    def _moved_seed(cls, data: Any) -> Any:
        if isinstance(data, dict) and "seed" in data:
            raise ValueError(f"train.seed is now a list: write train.seeds: [{data['seed']!r}] (every seed is trained in one run)")
        return data

    @field_validator("seeds")
    @classmethod
    def _distinct_seeds(cls, value: list[int]) -> list[int]:
        if len(set(value)) != len(value):
            raise ValueError(f"train.seeds must be distinct, got {value}")
        return value

    @field_validator("variants")
    @classmethod
    def _known_variants(cls, value: list[str]) -> list[str]:
        unknown = [v for v in value if v not in VARIANTS]
        if unknown:
            raise ValueError(f"unknown variant(s) {unknown}; expected names from {sorted(VARIANTS)}")
        return value


def videolstm_model_options(train: TrainConfig) -> dict[str, Any]:
    """VideoLSTM's model options set in the train section (the fine-tuning stage builds the model):
    ``videolstm_attention`` when it is not the authors'. They join the model's spec and the
    finetune lineage only when set, so runs made before the option existed keep their caches."""
    if train.videolstm_attention == AUTHORS_VIDEOLSTM_ATTENTION:
        return {}
    return {"videolstm_attention": train.videolstm_attention}


#: Options added for the recipe ablation (issue 20), each at the value that is today's recipe: a
#: lineage digest or a model's run key leaves such a key out while it has this value and includes it
#: when set, so default runs keep their caches (dotted keys within the section, see without_recipe_defaults).
RECIPE_OPTIONS_AT_DEFAULT: dict[str, dict[str, Any]] = {
    "train": {
        "val_split": "groups",
        "attention_source": "learned",
        "motion_prior_weight": 0.0,
        "model.alstm_attention": "authors",
        "model.motion_alstm_attention": "authors",
    },
    "model": {"alstm_attention": "authors", "motion_alstm_attention": "authors"},
    "evaluate": {"segment_placement": "authors"},
}


def without_recipe_defaults(section: str, data: dict[str, Any]) -> dict[str, Any]:
    """``data`` (a section's dump) without the recipe-ablation options that have their default value."""
    out = json.loads(json.dumps(data))  # a deep copy of plain JSON values
    for dotted, default in RECIPE_OPTIONS_AT_DEFAULT.get(section, {}).items():
        *parents, key = dotted.split(".")
        node = out
        for parent in parents:
            node = node.get(parent, {})
        if key in node and node[key] == default:
            node.pop(key)
    return out


def val_split_options(train: TrainConfig) -> list[str]:
    """``[train.val_split]`` when it is not the default (``groups``), else ``[]``: what the frame CNNs'
    lineage and run keys add for it (they digest ``val_fraction`` but not the whole train section)."""
    return [] if train.val_split == RECIPE_OPTIONS_AT_DEFAULT["train"]["val_split"] else [train.val_split]


class LocalizationConfig(Section):
    sigma: float = Field(0.5, ge=0, description="Gaussian smoothing of the upsampled map, in attention cells (0.5 cell = 4 px of a 56 px frame)")
    threshold: float = Field(0.5, gt=0, lt=1, description="fraction of the frame's max attention")
    lowess_frac: float = Field(0.3, gt=0, le=1, description="LOWESS span as a fraction of the tube length")
    iou_thresholds: list[float] = Field(default_factory=lambda: [0.1, 0.2, 0.3, 0.4, 0.5], description="video mAP thresholds")
    centre_prior_sigma: float = Field(
        0.25, gt=0, description="calibration: std of the centre-prior baseline map, as a fraction of the frame's width and height"
    )
    box_method: Literal["extent", "paper"] = Field(
        "extent",
        description="each step's box: extent = the map's mass extent at sub-cell precision (per axis, the line through the "
        "map's cumulative mass at the cell boundaries, cut at 0 and 1); paper = upsample, smooth by sigma, threshold, "
        "largest 8-connected component (the paper's procedure)",
    )
    extent_width: float = Field(
        0.9,
        gt=0,
        le=4,
        description="box_method extent: the box's width in attention cells along an axis where the map does not fix it "
        "(its mass lies within one or two cells) at any step of the video; else the median width of the steps that fix it",
    )
    extent_tail: float = Field(
        0.05,
        ge=0,
        lt=0.5,
        description="box_method extent: cumulative mass left out at each end of the line fit (a soft map's tails)",
    )
    temporal_extent: Literal["boxes", "evidence", "video"] = Field(
        "boxes",
        description="a tube's frames: boxes = first to last step whose map gives a box (the paper's whole-video tube for "
        "softmax attention); evidence = the longest run of steps whose smoothed evidence (class score x attention mass) "
        "reaches temporal_threshold of its maximum; video = every step",
    )
    temporal_sigma: float = Field(2.0, ge=0, description="temporal_extent evidence: Gaussian smoothing of the evidence, in steps")
    temporal_threshold: float = Field(0.5, gt=0, lt=1, description="temporal_extent evidence: fraction of the maximum smoothed evidence a tube's steps reach")
    max_tubes: int = Field(1, ge=1, le=8, description="tubes per video, one per separate attention peak (1: the paper's one tube per video)")
    peak_dip: float = Field(
        0.5,
        gt=0,
        lt=1,
        description="two attention peaks are separate actors when the map between them falls below this fraction of the lower peak",
    )

    def lineage_data(self) -> dict[str, Any]:
        """This section's values for a lineage digest: the options added by issue 21 are left out at the values that
        reproduce the earlier pipeline (box_method paper, one tube spanning the steps with a box), so a configuration
        asking for the paper's procedure keeps the evaluation folder (and cache) it had before they existed."""
        data = self.model_dump(mode="json")
        if all(data.get(key) == value for key, value in _LOCALIZATION_KNOBS_AT_LEGACY.items() if key in _LOCALIZATION_SWITCHES):
            for key in _LOCALIZATION_KNOBS_AT_LEGACY:
                data.pop(key, None)
        return data


#: LocalizationConfig knobs (issue 21) and the values that reproduce the pipeline before them; see ``lineage_data``.
_LOCALIZATION_KNOBS_AT_LEGACY: dict[str, Any] = {
    "box_method": "paper",
    "extent_width": 0.9,
    "extent_tail": 0.05,
    "temporal_extent": "boxes",
    "temporal_sigma": 2.0,
    "temporal_threshold": 0.5,
    "max_tubes": 1,
    "peak_dip": 0.5,
}
#: The knobs that decide whether the others matter at all.
_LOCALIZATION_SWITCHES = ("box_method", "temporal_extent", "max_tubes")


class EvaluateConfig(Section):
    num_segments: int = Field(25, ge=1, description="test segments per video, placed as the authors' test iterator (25)")
    segment_length: int = Field(30, ge=1, description="frames per test segment; shorter videos are padded with their last frame (30)")
    fusion: Literal["product", "mean"] = Field("product", description="two-stream fusion of class probabilities")
    localization: LocalizationConfig = LocalizationConfig()
    overlays_per_class: int = Field(1, ge=0, description="test videos per class rendered with attention and boxes")
    regression_threshold: float = Field(0.02, ge=0, description="reevaluate: accuracy drop flagged as a regression")
    segment_placement: Literal["authors", "even"] = Field(
        "authors",
        description="where the test segments go: authors = their test iterator (start j = floor(avg/2 + j*avg), "
        "avg = floor((T - L + 1)/S)); even = a deviation, the recipe before it: evenly spaced from frame 0 to T - L, "
        "each start once, a video shorter than a segment run once over its frames",
    )


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
        for key, value in _string_leaves(self.model_dump(mode="json")):
            if userinfo(value) is not None:
                raise ValueError(
                    f"{key} holds credentials in a URI (user, token or password before '@': {redact(value)}); this "
                    "configuration is logged as MLflow params and shown as Prefect parameters, so it must hold no "
                    "secret: give credentials through the environment (MLFLOW_TRACKING_USERNAME/"
                    "MLFLOW_TRACKING_PASSWORD or MLFLOW_TRACKING_TOKEN for an MLflow server, "
                    "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or a profile for S3)"
                )
        if self.dataset.kind != "synthetic" and self.dataset.root is None and not self.dataset.download.urls:
            raise ValueError(
                f"dataset.kind={self.dataset.kind!r} needs dataset.root (a folder in the official layout) or dataset.download.urls (the archives to fetch)"
            )
        return self


def _string_leaves(value: Any, key: str = "") -> list[tuple[str, str]]:
    """``(dotted key, string)`` of every string in a dumped config (list items as ``key[i]``)."""
    if isinstance(value, dict):
        return [leaf for k, v in value.items() for leaf in _string_leaves(v, f"{key}.{k}" if key else str(k))]
    if isinstance(value, list):
        return [leaf for i, v in enumerate(value) for leaf in _string_leaves(v, f"{key}[{i}]")]
    return [(key, value)] if isinstance(value, str) else []


#: Largest configuration file read (a real one is a few KB).
MAX_CONFIG_BYTES = 1 * MiB
#: Longest ConfigError message (characters); each echoed value is cut to ``short_repr``'s limit.
MAX_CONFIG_MESSAGE = 4000


class ConfigError(ValueError):
    """A configuration file or mapping that does not validate; the message names each bad key."""


class _NoAliasLoader(yaml.SafeLoader):
    """PyYAML's safe loader with aliases refused.

    ``*alias`` references let a 541-byte file expand to billions of nodes ("billion laughs");
    a configuration never needs them (anchors alone are harmless and still parse).
    """

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(
                None,
                None,
                f"uses the YAML alias *{shorten(str(event.anchor), 60)}; aliases are not allowed in a configuration (write the value out)",
                event.start_mark,
            )
        return super().compose_node(parent, index)


def read_config_file(path: str | Path, max_bytes: int = MAX_CONFIG_BYTES) -> dict[str, Any]:
    """The mapping in a YAML configuration file, read safely.

    Safe YAML only (no Python tags), aliases refused (:class:`_NoAliasLoader`), at most
    ``max_bytes`` bytes. Raises :class:`ConfigError` naming the file and the limit or the YAML
    problem (message bounded).
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    with open(path, "rb") as fh:
        raw = fh.read(max_bytes + 1)
    if len(raw) > max_bytes:
        raise ConfigError(
            f"config file {path} is larger than {max_bytes} bytes (the limit for a configuration file; a real one is a few KB): check that it is the right file"
        )
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file {path} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    try:
        loaded = yaml.load(text, Loader=_NoAliasLoader) or {}  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise ConfigError(shorten(redact(f"config file {path} is not valid YAML: {exc}"), MAX_CONFIG_MESSAGE)) from None
    except RecursionError:
        raise ConfigError(f"config file {path} nests its values too deeply to be a configuration") from None
    if not isinstance(loaded, dict):
        raise ConfigError(f"config file {path} must hold a mapping at the top level, found {type(loaded).__name__}")
    return loaded


def load_config(source: str | Path | dict[str, Any] | None = None, **overrides: Any) -> BenchmarkConfig:
    """Build a :class:`BenchmarkConfig` from a YAML file, a mapping, or the defaults.

    ``overrides`` are dotted keys (``{"train.epochs": 2}``) applied on top.
    Raises :class:`ConfigError` naming every unknown key or wrong type and the file it came from.
    A file is read by :func:`read_config_file` (size capped, aliases refused). Messages echo each
    bad value through :func:`videolstm.messages.short_repr` (bounded, URI credentials redacted)
    and are at most :data:`MAX_CONFIG_MESSAGE` characters.
    """
    origin = "defaults"
    data: dict[str, Any] = {}
    if isinstance(source, dict):
        data, origin = dict(source), "mapping"
    elif source is not None:
        origin = str(source)
        data = read_config_file(source)
    for dotted, value in overrides.items():
        _set_dotted(data, dotted, value)
    try:
        return BenchmarkConfig.model_validate(data)
    except ValidationError as exc:
        lines = []
        for err in exc.errors(include_url=False):
            where = ".".join(str(p) for p in err["loc"]) or "(top level)"
            if err["type"] == "extra_forbidden":
                lines.append(f"  {shorten(where, 200)}: unknown key (check the spelling; see docs/configuration.md)")
            elif not err["loc"]:  # a model-level check: its message says what is wrong, the input is the whole config
                lines.append(f"  (top level): {shorten(redact(err['msg']), 1000)}")
            else:
                lines.append(f"  {shorten(where, 200)}: {shorten(redact(err['msg']), 500)} (got {short_repr(err.get('input'))})")
        message = f"invalid configuration in {origin}:\n" + "\n".join(lines)
        raise ConfigError(shorten(redact(message), MAX_CONFIG_MESSAGE)) from None
    except RecursionError:
        raise ConfigError(f"invalid configuration in {origin}: values nested too deeply") from None


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
