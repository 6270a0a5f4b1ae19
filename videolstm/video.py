"""Moved to :mod:`videolstm.data.video`; this import path keeps working for this release.

Every name resolves to the one in :mod:`videolstm.data.video` (with a ``DeprecationWarning``), e.g.
``videolstm.video.decode_video`` is ``videolstm.data.video.decode_video``.
"""

from __future__ import annotations

import importlib
import warnings
from typing import Any

_NEW = "videolstm.data.video"


def __getattr__(name: str) -> Any:
    value = getattr(importlib.import_module(_NEW), name)
    warnings.warn(f"{__name__}.{name} moved to {_NEW}.{name}; import it from there", DeprecationWarning, stacklevel=2)
    return value
