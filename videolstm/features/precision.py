"""Mixed precision and host→device transfer: one place for autocast, gradient scaling, pinned copies.

``precision`` (``fp32 | bf16 | fp16``, a field of the frame_cnn, features and train sections):

- ``fp32``: no autocast; everything as before.
- ``bf16``: ``torch.autocast(device, torch.bfloat16)``: matmuls and convolutions in bfloat16
  (same exponent range as float32: no scaling needed); pays on CPUs with AVX-512 BF16/AMX and on
  Ampere+ GPUs.
- ``fp16``: ``torch.autocast(device, torch.float16)`` with a ``GradScaler`` (float16's range is
  narrow: the loss is scaled up before ``backward`` and the gradients down before the step,
  skipping steps whose gradients overflowed). Meant for CUDA.

Losses are computed in float32 (autocast keeps ``cross_entropy``/``log_softmax`` in float32) and
parameters stay float32 (autocast casts per op), so optimiser state and checkpoints are unchanged.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = ["PRECISIONS", "autocast_dtype", "autocast", "grad_scaler", "to_device", "prepare_for_device"]

PRECISIONS: dict[str, torch.dtype | None] = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def autocast_dtype(precision: str) -> torch.dtype | None:
    """The autocast dtype of ``precision`` (None for fp32)."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; valid: {sorted(PRECISIONS)}")
    return PRECISIONS[precision]


@contextlib.contextmanager
def autocast(device: torch.device | str, precision: str) -> Iterator[None]:
    """Run the block under ``torch.autocast`` for ``precision`` on ``device``'s type (no-op for fp32)."""
    dtype = autocast_dtype(precision)
    if dtype is None:
        yield
        return
    with torch.autocast(device_type=torch.device(device).type, dtype=dtype):
        yield


def grad_scaler(device: torch.device | str, precision: str) -> torch.amp.GradScaler:
    """A gradient scaler, enabled for fp16 only (for fp32/bf16 its ``scale``/``step`` pass through)."""
    autocast_dtype(precision)
    return torch.amp.GradScaler(torch.device(device).type, enabled=precision == "fp16")


def to_device(array: Any, device: torch.device | str, dtype: torch.dtype | None = None) -> torch.Tensor:
    """A numpy array or tensor on ``device`` (then cast to ``dtype``): for CUDA the host copy is pinned
    and the transfer non-blocking (it overlaps the previous batch's compute); the cast happens on the
    device, so float16 features cross the bus at half the bytes."""
    device = torch.device(device)
    tensor = torch.from_numpy(np.ascontiguousarray(array)) if isinstance(array, np.ndarray) else torch.as_tensor(array)
    if device.type == "cuda":
        if tensor.device.type == "cpu":
            tensor = tensor.pin_memory()
        tensor = tensor.to(device, non_blocking=True)
    else:
        tensor = tensor.to(device)
    return tensor if dtype is None else tensor.to(dtype)


def prepare_for_device(model: nn.Module, device: torch.device | str, channels_last: bool = False) -> nn.Module:
    """``model`` on ``device``; with ``channels_last`` on CUDA, its 4-D weights in NHWC layout
    (cuDNN's tensor-core convolutions run NHWC natively; VGG-16's convolutions gain, on CPU it does not pay)."""
    device = torch.device(device)
    model = model.to(device)
    if channels_last and device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # Module.to takes it; the stub does not say so
    return model
