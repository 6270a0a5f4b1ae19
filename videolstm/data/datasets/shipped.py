"""The real UCF101 / UCF101-24 metadata shipped inside the package (``metadata/``, see its README).

- :data:`UCF101_SPLITS`: the official recognition splits (``classInd.txt``,
  ``trainlist0N.txt``, ``testlist0N.txt``; the formats are in :mod:`videolstm.data.datasets.ucf101`).
  :func:`videolstm.data.datasets.load_index` reads them when a UCF101 root has no
  ``ucfTrainTestlist/`` folder of its own.
- :data:`UCF101_24_ANNOTATIONS`: the corrected UCF101-24 tubes (``pyannot.pkl``; the format is in
  :mod:`videolstm.data.datasets.ucf101_24`), for ``dataset.annotations``.
- :data:`UCF101_24_TESTLIST`: the UCF101-24 split-1 test list (``Class/v_Class_gXX_cYY`` per line).

Paths are local files of the installed package (setuptools package data).
"""

from __future__ import annotations

from pathlib import Path

METADATA = Path(__file__).resolve().parent / "metadata"
UCF101_SPLITS = METADATA / "ucf101" / "ucfTrainTestlist"
UCF101_24_ANNOTATIONS = METADATA / "ucf101_24" / "pyannot.pkl"
UCF101_24_TESTLIST = METADATA / "ucf101_24" / "testlist01.txt"


def shipped_split_dir(kind: str) -> str | None:
    """The shipped split folder of dataset ``kind`` (``"ucf101"``), or None when none is shipped."""
    return str(UCF101_SPLITS) if kind == "ucf101" else None
