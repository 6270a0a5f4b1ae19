"""Moved to :mod:`videolstm.data.flow`; this import path keeps working for this release.

Every name resolves to the one in :mod:`videolstm.data.flow` (with a ``DeprecationWarning``), e.g.
``videolstm.flow.compute_flow`` is ``videolstm.data.flow.compute_flow``.
"""

from __future__ import annotations

import importlib
import warnings
from typing import Any

_NEW = "videolstm.data.flow"


def __getattr__(name: str) -> Any:
    value = getattr(importlib.import_module(_NEW), name)
    warnings.warn(f"{__name__}.{name} moved to {_NEW}.{name}; import it from there", DeprecationWarning, stacklevel=2)
    return value
