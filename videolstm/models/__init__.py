"""The VideoLSTM model zoo: cells, attention, the variants and the evaluation protocol.

``VARIANTS`` (declared in :mod:`videolstm.config`, which validates variant names with it) is
importable without importing torch; everything else is loaded on first use::

    from videolstm.models import build_model, sequence_loss
    model = build_model("videolstm", num_classes=101)          # the paper's sizes
    out = model(x, flow)       # x, flow: (B, T, 512, 7, 7) → out.logits (B, T, 101),
                               # out.attention (B, T, 7, 7)
    loss = sequence_loss(out.logits, labels)                    # labels: (B,)

Layout: ``functional`` (the maths as pure functions), ``cells`` (ConvLSTMCell, LSTMCell),
``attention`` (attention modules), ``layers`` (readout, initial states), ``init`` (the
authors' weight schemes), ``variants`` (the models), ``registry`` (builders and ``build_model``),
``assemble`` (VideoLSTM from a trained flow ConvLSTM and RGB ConvALSTM), ``protocol`` (segments,
aggregation, fusion; pure functions).
"""

from __future__ import annotations

import importlib
from typing import Any

from videolstm.config import VARIANTS  # the paper's variants, in the order of its tables (the registry's keys)

_LAZY: dict[str, str] = {
    # registry
    "build_model": "registry",
    "model_sizes": "registry",
    "MODEL_BUILDERS": "registry",
    "ModelSizes": "registry",
    "SIZE_KEYS": "registry",
    # initialisation and VideoLSTM's assembly from trained models
    "INIT_SCHEMES": "init",
    "initialize": "init",
    "assemble_videolstm": "assemble",
    "AssemblyError": "assemble",
    # models
    "ModelOutput": "variants",
    "SequenceModel": "variants",
    # cells
    "ConvLSTMCell": "cells",
    "LSTMCell": "cells",
    "EXECUTIONS": "cells",
    "AUTO_EXECUTION": "cells",
    # pure functions
    "GATE_ORDER": "functional",
    "sequence_loss": "functional",
    "spatial_softmax": "functional",
    "apply_attention": "functional",
    "attention_pool": "functional",
    "lstm_update": "functional",
    # protocol
    "segment_starts": "protocol",
    "segment_indices": "protocol",
    "aggregate_video_probabilities": "protocol",
    "fuse_probabilities": "protocol",
    "random_snippet_start": "protocol",
}

__all__ = ["VARIANTS", *_LAZY]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
