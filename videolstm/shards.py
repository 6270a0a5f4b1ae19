"""Moved to :mod:`videolstm.store.shards`; this import path keeps working for this release.

Every name resolves to the one in :mod:`videolstm.store.shards` (with a ``DeprecationWarning``), e.g.
``videolstm.shards.write_shard`` is ``videolstm.store.shards.write_shard``.
"""

from __future__ import annotations

import importlib
import warnings
from typing import Any

_NEW = "videolstm.store.shards"


def __getattr__(name: str) -> Any:
    value = getattr(importlib.import_module(_NEW), name)
    warnings.warn(f"{__name__}.{name} moved to {_NEW}.{name}; import it from there", DeprecationWarning, stacklevel=2)
    return value
