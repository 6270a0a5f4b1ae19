"""Rebuild a model from its :class:`~videolstm.store.checkpoint.ModelSpec` or from a checkpoint.

The store keeps checkpoints as plain data (:mod:`videolstm.store.checkpoint`); turning one back
into a model needs the builders, which live here, above the store: a zoo variant
(:func:`videolstm.models.build_model`) or a frame CNN
(:func:`videolstm.features.backbones.build_frame_cnn`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from videolstm.messages import short_repr, shorten
from videolstm.store.checkpoint import CheckpointError, ModelSpec


def build_from_spec(spec: ModelSpec) -> nn.Module:
    """A fresh model of ``spec``: kind "sequence" a zoo variant, kind "frame_cnn" a frame CNN (variant = arch)."""
    if spec.kind == "frame_cnn":
        from videolstm.features.backbones import build_frame_cnn

        return build_frame_cnn(spec.variant, spec.num_classes, **spec.overrides)
    if spec.kind != "sequence":
        raise ValueError(f"unknown model kind {spec.kind!r}; expected 'sequence' or 'frame_cnn'")
    from videolstm.models.registry import build_model

    return build_model(spec.variant, spec.num_classes, **spec.overrides)


def restore_model(state: Mapping[str, Any], *, num_classes: int | None = None) -> tuple[nn.Module, ModelSpec]:
    """Rebuild the model from a loaded checkpoint and load its weights (eval mode).

    Nothing is allocated for a size the checkpoint merely claims: the model is first built on
    PyTorch's ``meta`` device (shapes, no memory) and every parameter and buffer shape is
    compared with the tensors the file actually holds (already in memory, bounded by the file's
    size). A ``model_spec`` that disagrees with them — ``num_classes`` 4,000,000 over a 3-class
    readout — or with ``num_classes`` (the configured dataset's, when the caller passes it) is a
    :class:`CheckpointError` naming the value and the shapes.
    """
    try:
        spec = ModelSpec.from_dict(state["model_spec"])
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise CheckpointError(
            f"the checkpoint's model_spec {short_repr(state.get('model_spec') if isinstance(state, Mapping) else state)} is "
            f"not a videolstm model spec ({type(exc).__name__}: {shorten(str(exc), 200)})"
        ) from None
    if num_classes is not None and spec.num_classes != num_classes:
        raise CheckpointError(
            f"the checkpoint's model_spec has num_classes {spec.num_classes}, the configured dataset {num_classes}; "
            "it was trained on another dataset: evaluate it with the configuration it was trained with"
        )
    weights = state.get("model")
    if not isinstance(weights, Mapping) or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in weights.items()):
        raise CheckpointError("the checkpoint's 'model' entry is not a state dict (parameter names to tensors)")
    try:
        with torch.device("meta"):
            skeleton = build_from_spec(spec)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise CheckpointError(
            f"the checkpoint's model_spec {short_repr(spec.to_dict())} does not build a model ({type(exc).__name__}: {shorten(str(exc), 300)})"
        ) from None
    expected = {k: tuple(v.shape) for k, v in skeleton.state_dict().items()}
    problems = [f"missing {k}" for k in expected if k not in weights]
    problems += [f"unexpected {short_repr(k)}" for k in weights if k not in expected]
    problems += [
        f"{k}: shape {tuple(weights[k].shape)} in the file, {expected[k]} for the spec"
        for k in expected
        if k in weights and tuple(weights[k].shape) != expected[k]
    ]
    if problems:
        raise CheckpointError(
            f"the checkpoint's model_spec (variant {short_repr(spec.variant)}, num_classes {spec.num_classes}, overrides "
            f"{short_repr(spec.overrides)}) does not match the weights it holds: {'; '.join(problems[:4])}"
            f"{f' (+{len(problems) - 4} more)' if len(problems) > 4 else ''}. The file is corrupt or forged: re-create it"
        )
    model = build_from_spec(spec)
    model.load_state_dict(weights)
    model.eval()
    return model, spec
