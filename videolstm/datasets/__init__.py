"""Moved to :mod:`videolstm.data.datasets`; this import path keeps working for this release.

Every name resolves to the one in :mod:`videolstm.data.datasets` (with a ``DeprecationWarning``), e.g.
``videolstm.datasets.load_index`` is ``videolstm.data.datasets.load_index``.
"""

from __future__ import annotations

import importlib
import warnings
from typing import Any

_NEW = "videolstm.data.datasets"


def __getattr__(name: str) -> Any:
    value = getattr(importlib.import_module(_NEW), name)
    warnings.warn(f"{__name__}.{name} moved to {_NEW}.{name}; import it from there", DeprecationWarning, stacklevel=2)
    return value
