"""Checkpoints: one file per epoch, zero-padded so the latest sorts last (SlowFast's habit).

A checkpoint is a ``dict`` of tensors and plain values only, so it loads with
``torch.load(..., weights_only=True)`` — never an unrestricted pickle::

    {"format": "videolstm-checkpoint-v1", "epoch": int, "model": state_dict (unwrapped, no
     "module." prefix), "optimizer": optimizer state_dict, "model_spec": {"variant": str,
     "num_classes": int, "overrides": {...}}, "metrics": {name: float}, "extra": {str: str},
     "history": [{name: float}, ...] (the metrics of every epoch so far, epoch 1 first)}

A training run keeps its checkpoints in one folder (``checkpoint_epoch_00007.pt``); a re-run
resumes from the latest (:func:`latest_checkpoint`), :func:`prune_checkpoints` keeps the best
by a validation metric and the latest few, and :func:`best_epoch` picks the one to export.
:func:`videolstm.models.restore.restore_model` rebuilds the model a checkpoint holds.

Only rank 0 writes (the caller checks its rank); writes are atomic (temp file + rename or one
upload), so a killed process never leaves a truncated checkpoint behind.
"""

from __future__ import annotations

import io
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from videolstm.config import StorageConfig
from videolstm.messages import redact, shorten
from videolstm.store import storage as st

FORMAT = "videolstm-checkpoint-v1"
_NAME = re.compile(r"checkpoint_epoch_(\d{5})\.pt$")


def checkpoint_name(epoch: int) -> str:
    """``checkpoint_epoch_00007.pt`` for epoch 7 (1-based count of finished epochs)."""
    return f"checkpoint_epoch_{epoch:05d}.pt"


@dataclass
class ModelSpec:
    """What rebuilds a model: a zoo variant (kind "sequence", :func:`videolstm.models.build_model`)
    or a frame CNN (kind "frame_cnn", :func:`videolstm.features.backbones.build_frame_cnn`; variant = arch).

    Plain data: :func:`videolstm.models.restore.build_from_spec` builds it and
    :func:`videolstm.models.restore.restore_model` rebuilds a checkpoint's model (the store knows
    no model)."""

    variant: str
    num_classes: int
    overrides: dict[str, Any] = field(default_factory=dict)
    kind: str = "sequence"

    def to_dict(self) -> dict[str, Any]:
        return {"variant": self.variant, "num_classes": self.num_classes, "overrides": dict(self.overrides), "kind": self.kind}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelSpec:
        overrides = dict(data.get("overrides", {}))
        if isinstance(overrides.get("spatial_size"), list):
            overrides["spatial_size"] = tuple(overrides["spatial_size"])
        return cls(
            variant=str(data["variant"]),
            num_classes=int(data["num_classes"]),
            overrides=overrides,
            kind=str(data.get("kind", "sequence")),
        )


def unwrap(model: nn.Module) -> nn.Module:
    """The module inside DistributedDataParallel (or the model itself)."""
    return model.module if hasattr(model, "module") and isinstance(model.module, nn.Module) else model


def checkpoint_state(
    epoch: int,
    model: nn.Module,
    spec: ModelSpec,
    optimizer: torch.optim.Optimizer | None = None,
    metrics: Mapping[str, float] | None = None,
    extra: Mapping[str, str] | None = None,
    history: list[Mapping[str, float]] | None = None,
) -> dict[str, Any]:
    """The checkpoint dict of ``model`` after ``epoch`` (see the module docstring)."""
    return {
        "format": FORMAT,
        "epoch": int(epoch),
        "model": unwrap(model).state_dict(),
        "optimizer": optimizer.state_dict() if optimizer is not None else {},
        "model_spec": spec.to_dict(),
        "metrics": {k: float(v) for k, v in (metrics or {}).items()},
        "extra": {k: str(v) for k, v in (extra or {}).items()},
        "history": [{k: float(v) for k, v in h.items()} for h in (history or [])],
    }


def save_checkpoint(uri: str, state: Mapping[str, Any], storage: StorageConfig | None = None) -> str:
    """Write ``state`` to ``uri`` atomically; returns ``uri``."""
    buffer = io.BytesIO()
    torch.save(dict(state), buffer)
    st.write_bytes(uri, buffer.getvalue(), storage)
    return uri


class CheckpointError(ValueError):
    """A checkpoint that is missing, not a VideoLSTM checkpoint, or refused by the safe loader."""


def load_checkpoint(uri: str, storage: StorageConfig | None = None) -> dict[str, Any]:
    """Load a checkpoint with ``weights_only=True``; raises :class:`CheckpointError` naming the file.

    Only torch's zip format with stored (uncompressed) records is read
    (:func:`videolstm.store.storage.check_torch_zip`),
    so memory is bounded by the file's size.
    """
    try:
        with st.open_for_read(uri, storage) as fh:
            st.check_torch_zip(fh, uri, CheckpointError)
            state = torch.load(fh, map_location="cpu", weights_only=True)
    except FileNotFoundError as exc:
        raise CheckpointError(f"checkpoint {redact(uri)} does not exist") from exc
    except CheckpointError:
        raise
    except Exception as exc:
        raise CheckpointError(
            f"checkpoint {redact(uri)} could not be loaded safely ({type(exc).__name__}: {shorten(str(exc), 300)}); "
            "only files written by videolstm (tensors and plain values) are accepted"
        ) from exc
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{redact(uri)} is not a {FORMAT} file (missing 'format' key); was it written by videolstm?")
    return state


def latest_checkpoint(directory: str, storage: StorageConfig | None = None) -> str | None:
    """The checkpoint with the highest epoch in ``directory`` (None when there is none)."""
    epochs = checkpoint_epochs(directory, storage)
    return epochs[max(epochs)] if epochs else None


def checkpoint_epochs(directory: str, storage: StorageConfig | None = None) -> dict[int, str]:
    """``{epoch: uri}`` of the checkpoints in ``directory``."""
    found = ((_NAME.search(u), u) for u in st.list_files(directory, storage, suffix=".pt"))
    return {int(match.group(1)): u for match, u in found if match}


def best_epoch(history: list[Mapping[str, float]], metric: str | None) -> int:
    """The 1-based epoch to export: the highest ``metric`` (the latest of equal values), or the last epoch."""
    if not history:
        raise ValueError("no epoch has finished; there is nothing to export")
    if metric is None or not any(metric in h for h in history):
        return len(history)
    scored = [(h[metric], epoch) for epoch, h in enumerate(history, start=1) if metric in h]
    return max(scored)[1]


def prune_checkpoints(directory: str, keep: int, protect: set[int], storage: StorageConfig | None = None) -> list[int]:
    """Delete all but the ``keep`` most recent checkpoints and the epochs in ``protect``; returns what was deleted."""
    epochs = checkpoint_epochs(directory, storage)
    kept = set(sorted(epochs)[-max(1, keep) :]) | set(protect)
    deleted = sorted(e for e in epochs if e not in kept)
    for epoch in deleted:
        st.remove(epochs[epoch], storage)
    return deleted
