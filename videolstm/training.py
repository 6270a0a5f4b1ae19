"""Training as plain step and epoch functions (Ray Train only wraps these in ``tasks/``).

Two kinds of model are trained:

* frame CNNs on single frames (RGB) or flow stacks, batches ``{"x": (N, C, H, W),
  "label": (N,)}`` built by :func:`frame_batch`;
* the recurrent variants on random snippets of pre-extracted features (the paper: a random
  30-frame snippet per video per epoch), batches ``{"x": (B, L, ...), "flow": (B, L, C', h, w)
  (motion variants only), "label": (B,)}`` built by :func:`snippet_batch`.

The loss of a sequence model is the cross-entropy summed over time steps (averaged over the
batch); a clip's prediction is the argmax of its class probabilities summed over steps.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from videolstm.config import StorageConfig
from videolstm.features.inputs import flow_stack_indices, flow_stack_inputs, rgb_inputs
from videolstm.features.precision import autocast, grad_scaler, to_device
from videolstm.models.functional import sequence_loss
from videolstm.store import shards

Batch = Mapping[str, Any]


# ----------------------------------------------------------------------------------------
# what each variant reads


_SUFFIX = {"maps": "pool5", "vectors": "fc7"}


def feature_columns(input_kind: str, needs_flow: bool, stream: str, flow_kind: str = "maps") -> tuple[str, str | None]:
    """Feature-shard columns of a (variant, stream): (x column, flow column or None).

    ``input_kind`` "maps" reads pool5, "vectors" fc7; motion variants (``needs_flow``) read the
    RGB maps as x and the flow stream as the motion input — pool5 maps (VideoLSTM) or fc7
    vectors (Motion ALSTM) as ``flow_kind`` says — whatever ``stream`` says.
    """
    for kind in (input_kind, flow_kind):
        if kind not in _SUFFIX:
            raise ValueError(f"unknown input kind {kind!r}; expected 'maps' or 'vectors'")
    if needs_flow:
        return f"rgb_{_SUFFIX[input_kind]}", f"flow_{_SUFFIX[flow_kind]}"
    return f"{stream}_{_SUFFIX[input_kind]}", None


# ----------------------------------------------------------------------------------------
# batches


def snippet_indices(num_frames: int, length: int, rng: np.random.Generator | None) -> np.ndarray:
    """(length,) frame indices of a snippet: a random start (rng) or the centre (rng=None).

    A video shorter than ``length`` is padded by repeating its last frame.
    """
    if num_frames < 1:
        raise ValueError("a snippet needs a video with at least one frame")
    if num_frames <= length:
        return np.minimum(np.arange(length), num_frames - 1)
    span = num_frames - length
    start = int(rng.integers(0, span + 1)) if rng is not None else span // 2
    return np.arange(start, start + length)


def snippet_batch(
    rows: Sequence[Mapping[str, Any]],
    x_column: str,
    flow_column: str | None,
    length: int,
    rng: np.random.Generator | None,
    storage: StorageConfig | None = None,
    *,
    dtype: Any = np.float32,
    attention_maps: Callable[[str, np.ndarray], np.ndarray] | None = None,
    prior_column: str | None = None,
) -> dict[str, np.ndarray]:
    """Snippets of feature shards → ``{"x": (B, L, ...), ["flow": (B, L, ...)], "label": (B,)}``.

    ``rows`` hold ``shard`` (a feature-shard URI) and ``label``. Only the snippet's steps are
    read (the row groups holding them). ``dtype``: the arrays' type (None: as stored, e.g.
    float16 — convert in torch, where float16 → float32 is ~10× cheaper than in numpy).
    Issue 20's ablation arms add ``"attention": (B, L, h, w)`` — ``attention_maps(video_id,
    frames)`` of each snippet (rows then need ``video_id``) — and ``"prior": (B, L, C, h, w)``,
    the ``prior_column`` maps of the same steps (the flow pool5 for the motion prior).
    """
    columns = list(dict.fromkeys([x_column] + ([flow_column] if flow_column else []) + ([prior_column] if prior_column else [])))
    xs, flows, labels, maps, priors = [], [], [], [], []
    for row in rows:
        chosen: list[np.ndarray] = []  # drawn once: a retried read reads the same snippet

        def read(reader: shards.ShardReader) -> dict[str, Any]:
            if not chosen:
                chosen.append(snippet_indices(reader.length(x_column), length, rng))
            return reader.read(columns, steps=chosen[0])

        arrays = shards.read_with(row["shard"], storage, read)
        xs.append(arrays[x_column])
        if flow_column:
            flows.append(arrays[flow_column])
        if attention_maps is not None:
            maps.append(attention_maps(str(row["video_id"]), chosen[0]))
        if prior_column:
            priors.append(arrays[prior_column])
        labels.append(int(row["label"]))
    batch = {"x": _stacked(xs, dtype), "label": np.asarray(labels, dtype=np.int64)}
    if flow_column:
        batch["flow"] = _stacked(flows, dtype)
    if attention_maps is not None:
        batch["attention"] = np.stack(maps).astype(np.float32, copy=False)
    if prior_column:
        batch["prior"] = _stacked(priors, dtype)
    return batch


def _stacked(arrays: Sequence[np.ndarray], dtype: Any) -> np.ndarray:
    stacked = np.stack(arrays)
    return stacked if dtype is None else stacked.astype(dtype, copy=False)


def frame_batch(
    rows: Sequence[Mapping[str, Any]],
    stream: str,
    frames_per_video: int,
    flow_stack: int,
    rng: np.random.Generator,
    storage: StorageConfig | None = None,
) -> dict[str, np.ndarray]:
    """Random frames (or flow stacks) of frames+flow shards → ``{"x": (N, C, H, W), "label": (N,)}``.

    Only the chosen frames (or the flow fields of their stacks) are read and decoded.
    """
    column = "frames" if stream == "rgb" else "flow"
    xs, labels = [], []
    for row in rows:
        chosen: list[np.ndarray] = []  # drawn once: a retried read reads the same frames

        def read(reader: shards.ShardReader) -> np.ndarray:
            num_frames = reader.length(column) + (0 if stream == "rgb" else 1)
            if not chosen:
                chosen.append(np.sort(rng.choice(num_frames, size=min(frames_per_video, num_frames), replace=False)))
            if stream == "rgb":
                return rgb_inputs(reader.read([column], steps=chosen[0])[column])
            stack_idx = flow_stack_indices(chosen[0], num_frames - 1, flow_stack)
            needed, positions = np.unique(stack_idx, return_inverse=True)
            fields = reader.read([column], steps=needed)[column]
            return flow_stack_inputs(fields[positions.reshape(stack_idx.shape)])

        xs.append(shards.read_with(row["shard"], storage, read))
        idx = chosen[0]
        labels.append(np.full(len(idx), int(row["label"]), dtype=np.int64))
    return {"x": np.concatenate(xs), "label": np.concatenate(labels)}


def batches_of(rows: Sequence[Any], batch_size: int, rng: np.random.Generator | None) -> Iterable[list[Any]]:
    """Consecutive batches of ``rows`` (shuffled when ``rng`` is given)."""
    order = rng.permutation(len(rows)) if rng is not None else np.arange(len(rows))
    for start in range(0, len(rows), batch_size):
        yield [rows[i] for i in order[start : start + batch_size]]


# ----------------------------------------------------------------------------------------
# steps and epochs


@dataclass
class EpochStats:
    loss: float
    accuracy: float
    samples: int

    def as_metrics(self, prefix: str) -> dict[str, float]:
        return {f"{prefix}/loss": self.loss, f"{prefix}/accuracy": self.accuracy}


def clip_predictions(logits: torch.Tensor) -> torch.Tensor:
    """logits (B, T, K) → (B,) argmax of the softmax probabilities summed over steps."""
    return logits.softmax(dim=-1).sum(dim=1).argmax(dim=-1)


def sequence_forward(model: nn.Module, batch: Batch, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(loss, predictions) of a sequence model on a snippet batch (with the batch's ``attention``
    maps in place of the model's own when it has them: the train-time oracle)."""
    loss, predictions, _ = _sequence_outputs(model, batch, device)
    return loss, predictions


def _sequence_outputs(model: nn.Module, batch: Batch, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, Any]:
    # float16 features travel as float16 and become float32 on the device (half the transfer)
    x = to_device(batch["x"], device, torch.float32)  # pinned + non-blocking on CUDA
    labels = torch.as_tensor(batch["label"], device=device, dtype=torch.long)
    flow = batch.get("flow")
    flow = to_device(flow, device, torch.float32) if flow is not None else None
    attention = batch.get("attention")
    attention = torch.as_tensor(attention).to(device).float() if attention is not None else None
    out = model(x, flow=flow) if attention is None else model(x, flow=flow, attention=attention)
    return sequence_loss(out.logits, labels), clip_predictions(out.logits.detach()), out


def motion_prior_forward(weight: float) -> Forward:
    """:func:`sequence_forward` with the motion prior (issue 20, an extension beyond the paper):
    loss + weight · Σ_t KL(P_t ‖ A_t) (batch mean), P_t the normalised energy of the batch's ``prior``
    maps — the flow pool5 of the snippet's steps (:func:`videolstm.attention_guidance.motion_prior_maps`)
    — and A_t the model's attention. Training and validation losses both carry the term."""
    from videolstm.attention_guidance import attention_kl, motion_prior_maps

    def forward(model: nn.Module, batch: Batch, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        loss, predictions, out = _sequence_outputs(model, batch, device)
        if out.attention is None or out.attention.dim() != 4:
            raise ValueError("the motion prior needs a model with attention over positions (B, T, h, w)")
        prior = motion_prior_maps(torch.as_tensor(batch["prior"]).to(device).float())
        return loss + weight * attention_kl(prior, out.attention), predictions

    return forward


def frame_forward(model: nn.Module, batch: Batch, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(loss, predictions) of a frame CNN on a frame batch."""
    x = to_device(batch["x"], device, torch.float32)
    labels = torch.as_tensor(batch["label"], device=device, dtype=torch.long)
    logits = model(x).logits
    return F.cross_entropy(logits, labels), logits.detach().argmax(dim=-1)


Forward = Callable[[nn.Module, Batch, torch.device], tuple[torch.Tensor, torch.Tensor]]


def train_epoch(
    model: nn.Module,
    batches: Iterable[Batch],
    optimizer: torch.optim.Optimizer,
    forward: Forward,
    device: torch.device = torch.device("cpu"),
    max_grad_norm: float | None = None,
    precision: str = "fp32",
    scaler: torch.amp.GradScaler | None = None,
) -> EpochStats:
    """One pass over ``batches``: forward, backward, step (gradients clipped to a global norm
    only when ``max_grad_norm`` is set; the authors do not clip). Returns mean loss and accuracy.

    ``precision`` (fp32 | bf16 | fp16): the forward pass runs under autocast
    (:mod:`videolstm.features.precision`); fp16 scales the loss with ``scaler`` (pass one to keep
    its scale across epochs; default a fresh one), unscaling before clipping and skipping a step
    whose gradients overflowed."""
    model.train()
    scaler = scaler if scaler is not None else grad_scaler(device, precision)
    total_loss, correct, seen = 0.0, 0, 0
    for batch in batches:
        with autocast(device, precision):
            loss, predictions = forward(model, batch, device)
        loss = loss.float()
        if not math.isfinite(loss.item()):
            raise FloatingPointError(f"training loss became {loss.item()}; lower the learning rate")
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if max_grad_norm is not None:
            scaler.unscale_(optimizer)
            nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
        scaler.step(optimizer)
        scaler.update()
        n = int(predictions.shape[0])
        total_loss += loss.item() * n
        correct += int((predictions.cpu() == torch.as_tensor(batch["label"])).sum())
        seen += n
    return EpochStats(loss=total_loss / max(seen, 1), accuracy=correct / max(seen, 1), samples=seen)


@torch.no_grad()
def evaluate_epoch(
    model: nn.Module,
    batches: Iterable[Batch],
    forward: Forward,
    device: torch.device = torch.device("cpu"),
    precision: str = "fp32",
) -> EpochStats:
    """Loss and accuracy without gradients (eval mode), the forward pass under ``precision``'s autocast."""
    model.eval()
    total_loss, correct, seen = 0.0, 0, 0
    for batch in batches:
        with autocast(device, precision):
            loss, predictions = forward(model, batch, device)
        loss = loss.float()
        n = int(predictions.shape[0])
        total_loss += loss.item() * n
        correct += int((predictions.cpu() == torch.as_tensor(batch["label"])).sum())
        seen += n
    return EpochStats(loss=total_loss / max(seen, 1), accuracy=correct / max(seen, 1), samples=seen)


class AuthorsRMSprop(torch.optim.Optimizer):
    """RMSProp as the authors' ``sparnn/optimizers/rmsprop.py`` updates (Hinton's lecture 6):

        ms ← ρ·ms + (1 − ρ)·g²        p ← p − lr · g / √(ms + ε)

    ε sits *inside* the square root (torch's RMSprop adds it outside) and the new mean square
    is used in the same step; no momentum, no centring. ``weight_decay`` adds wd·p to g.
    Defaults: lr 1e-3, ρ 0.9, ε 1e-6 (the authors').
    """

    def __init__(self, params: Iterable[nn.Parameter], lr: float = 1e-3, decay: float = 0.9, eps: float = 1e-6, weight_decay: float = 0.0):
        if not lr > 0 or not 0 <= decay < 1 or not eps > 0 or weight_decay < 0:
            raise ValueError(f"RMSProp needs lr > 0, 0 <= decay < 1, eps > 0, weight_decay >= 0; got {lr}, {decay}, {eps}, {weight_decay}")
        super().__init__(params, {"lr": lr, "decay": decay, "eps": eps, "weight_decay": weight_decay})

    @torch.no_grad()
    def step(self, closure: Callable[[], torch.Tensor] | None = None) -> torch.Tensor | None:  # type: ignore[override]
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, decay, eps, wd = group["lr"], group["decay"], group["eps"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad if wd == 0 else p.grad.add(p, alpha=wd)
                state = self.state[p]
                if "mean_square" not in state:
                    state["mean_square"] = torch.zeros_like(p)
                ms = state["mean_square"]
                ms.mul_(decay).addcmul_(grad, grad, value=1 - decay)
                p.addcdiv_(grad, ms.add(eps).sqrt_(), value=-lr)
        return loss


OPTIMIZERS: tuple[str, ...] = ("rmsprop", "adam", "sgd", "rmsprop_torch")

#: ``rmsprop_torch`` (a deviation: the recipe before the authors' was adopted): torch's RMSprop
#: with its defaults, ρ 0.99 and ε 1e-8 *outside* the square root.
TORCH_RMSPROP_ALPHA = 0.99
TORCH_RMSPROP_EPS = 1e-8


def make_optimizer(
    name: str,
    params: Iterable[nn.Parameter],
    lr: float,
    weight_decay: float = 0.0,
    rmsprop_decay: float = 0.9,
    rmsprop_eps: float = 1e-6,
) -> torch.optim.Optimizer:
    """RMSProp as the authors' (:class:`AuthorsRMSprop`), Adam, SGD with momentum 0.9, or
    ``rmsprop_torch``: the previous recipe's ``torch.optim.RMSprop`` (ρ 0.99, ε 1e-8 outside the
    root: p ← p − lr·g/(√ms + ε); ``rmsprop_decay``/``rmsprop_eps`` do not apply to it)."""
    if name == "rmsprop":
        return AuthorsRMSprop(params, lr=lr, decay=rmsprop_decay, eps=rmsprop_eps, weight_decay=weight_decay)
    if name == "rmsprop_torch":
        return torch.optim.RMSprop(params, lr=lr, alpha=TORCH_RMSPROP_ALPHA, eps=TORCH_RMSPROP_EPS, weight_decay=weight_decay)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=weight_decay)
    raise ValueError(f"unknown optimizer {name!r}; expected one of {OPTIMIZERS}")


_UCF_GROUP = re.compile(r"^(?P<cls>[^/]+)/v_(?P=cls)_g(?P<group>\d+)_c\d+$", re.IGNORECASE)
_TRAILING_CLIP = re.compile(r"_\d+$")


def video_group(video_id: str) -> str:
    """The group of clips cut from the same long video, which must not straddle train and validation.

    UCF101 (and the synthetic set, in its layout): ``Class/v_Class_gNN_cMM`` → ``Class/gNN``.
    HMDB51: ``class/<source>_<n>`` → ``class/<source>`` (clips of one source scene are numbered
    _0, _1, …). Anything else is its own group.
    """
    match = _UCF_GROUP.match(video_id)
    if match:
        return f"{match.group('cls')}/g{int(match.group('group')):02d}"
    cls, _, name = video_id.rpartition("/")
    stripped = _TRAILING_CLIP.sub("", name)
    if cls and stripped and stripped != name:
        return f"{cls}/{stripped}"
    return video_id


#: How validation videos are chosen: ``groups`` (group-disjoint, today's) | ``videos`` (the recipe before, a deviation).
VAL_SPLITS: tuple[str, ...] = ("groups", "videos")


def validation_grouping(val_split: str) -> Callable[[str], str]:
    """The ``group`` function of :func:`split_validation` for ``train.val_split``: :func:`video_group`
    (``groups``) or every video its own group (``videos``: the previous recipe's split, whose
    validation videos can share a group — a long source video — with training videos)."""
    if val_split == "groups":
        return video_group
    if val_split == "videos":
        return str
    raise ValueError(f"unknown validation split {val_split!r}; expected one of {VAL_SPLITS}")


def split_validation(
    rows: Sequence[Mapping[str, Any]], fraction: float, seed: int, group: Callable[[str], str] = video_group
) -> tuple[list[Mapping[str, Any]], list[Mapping[str, Any]]]:
    """Hold out ``fraction`` of each class's *groups* (:func:`video_group`) for validation, seeded.

    Stratified by label; a group is never split, so clips of one long video are never both in
    train and validation (the official UCF101/HMDB51 splits are group-disjoint for this reason).
    Per class: round(fraction · groups) groups, at least one, but never every group (a class with
    one group keeps it for training). With ``group=str`` every video is its own group: the
    previous recipe's per-video split, drawn with the same random numbers as it was.
    """
    if fraction <= 0:
        return list(rows), []
    rng = np.random.default_rng(seed)
    by_label: dict[int, dict[str, list[Mapping[str, Any]]]] = {}
    for row in sorted(rows, key=lambda r: r["video_id"]):
        by_label.setdefault(int(row["label"]), {}).setdefault(group(str(row["video_id"])), []).append(row)
    train: list[Mapping[str, Any]] = []
    val: list[Mapping[str, Any]] = []
    for label in sorted(by_label):
        groups = [by_label[label][g] for g in sorted(by_label[label])]
        order = rng.permutation(len(groups))
        n_val = min(len(groups) - 1, max(1, round(fraction * len(groups))))
        for rank, i in enumerate(order):
            (val if rank < n_val else train).extend(groups[i])
    return train, val
