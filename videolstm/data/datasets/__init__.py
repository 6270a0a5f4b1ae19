"""Datasets: UCF101, HMDB51 and the synthetic set (UCF101 layout) → video index; UCF101-24
annotations; download and extraction of the official archives.

Public API (see each module's docstring for file formats):

- :func:`load_index` ``(kind, root, split, storage=None) -> pyarrow.Table`` (:data:`INDEX_SCHEMA`),
  :func:`write_index` / :func:`read_index` (Parquet manifest).
- :func:`load_ucf101_24` ``(uri) -> {video_id: [Tube]}``, :func:`load_ucf101_24_numf`,
  :func:`read_ucf101_24` (numf + label + tubes), :func:`write_ucf101_24`.
- :func:`download` and :data:`OFFICIAL_ARCHIVES` (``download.py``: fetching), :func:`extract`
  (``extraction.py``), :func:`prepare_dataset` (``prepare.py``: both for a dataset).
- ``shipped.py``: the real UCF101 split files and UCF101-24 annotations shipped in the package.

``videolstm/data/datasets/README.md`` shows the on-disk tree of each dataset.
"""

from videolstm.data.datasets.download import (
    DATASET_ARCHIVES,
    OFFICIAL_ARCHIVES,
    ArchiveSpec,
    DownloadError,
    UnverifiedDownloadWarning,
    cache_dir,
    download,
)
from videolstm.data.datasets.extraction import ExtractError, extract
from videolstm.data.datasets.index import INDEX_SCHEMA, load_index, read_index, write_index
from videolstm.data.datasets.prepare import prepare_dataset
from videolstm.data.datasets.ucf101_24 import (
    Tube,
    UnsafePickleError,
    VideoAnnotation,
    load_ucf101_24,
    load_ucf101_24_numf,
    read_ucf101_24,
    write_ucf101_24,
)

__all__ = [
    "DATASET_ARCHIVES",
    "INDEX_SCHEMA",
    "OFFICIAL_ARCHIVES",
    "ArchiveSpec",
    "DownloadError",
    "ExtractError",
    "Tube",
    "UnsafePickleError",
    "UnverifiedDownloadWarning",
    "VideoAnnotation",
    "cache_dir",
    "download",
    "extract",
    "load_index",
    "load_ucf101_24",
    "load_ucf101_24_numf",
    "prepare_dataset",
    "read_index",
    "read_ucf101_24",
    "write_index",
    "write_ucf101_24",
]
