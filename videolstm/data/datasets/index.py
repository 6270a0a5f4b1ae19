"""The video index of a dataset split: one row per video, stored as a Parquet manifest.

Every dataset adapter (UCF101, HMDB51, the synthetic set in the UCF101 layout) produces the
same table, :data:`INDEX_SCHEMA`:

============  ========  ==================================================================
column        type      meaning
============  ========  ==================================================================
video_id      string    ``<Class>/<video stem>``: the split-file path without its extension
path          string    full URI of the video (absolute local path, ``s3://...``)
label         int32     0-based class index (``-1`` when the class is unknown)
class_name    string    class name as the split / class-index file spells it
subset        string    ``"train"`` or ``"test"`` (``""`` when a line is too broken to tell)
size_bytes    int64     size from the listing, ``-1`` if the file is missing or unchecked
fingerprint   string    cheap content fingerprint from the listing (size + ETag, or size +
                        mtime); ``""`` if missing or unchecked. A change means "re-process"
status        string    ``"ok"`` or ``"failed"``
reason        string    ``""`` for ok rows; else the split file, the line number, the
                        problem and the fix
============  ========  ==================================================================

A problem with one video never aborts the whole index: it becomes a ``failed`` row. Problems
that make every row meaningless (no class index, a missing split file, a root that does not
exist) raise, naming the file and what to do.

Existence is checked by listing the dataset root once (to find the class folders, matched
case-insensitively because UCF101 ships the ``HandstandPushups`` folder for the
``HandStandPushups`` class) and each needed class folder once, never one request per video.
"""

from __future__ import annotations

import io
import logging

import pyarrow as pa
import pyarrow.parquet as pq

from videolstm.config import InputLimits, StorageConfig
from videolstm.data.datasets.hmdb51 import hmdb51_index
from videolstm.data.datasets.listing import INDEX_SCHEMA, rows_to_table
from videolstm.data.datasets.shipped import shipped_split_dir
from videolstm.data.datasets.ucf101 import SPLIT_DIR, ucf101_index
from videolstm.store.storage import atomic_local_file, exists, join, read_bytes

log = logging.getLogger(__name__)

KINDS = ("ucf101", "hmdb51", "synthetic")


def load_index(
    kind: str,
    root: str,
    split: int,
    storage: StorageConfig | None = None,
    *,
    check_files: bool = True,
    limits: InputLimits | None = None,
) -> pa.Table:
    """Index the videos of one official split of a dataset in its official layout.

    Args:
        kind: ``"ucf101"``, ``"hmdb51"`` or ``"synthetic"`` (written in the UCF101 layout, read
            with the UCF101 reader).
        root: URI (local path, ``file://``, ``s3://``) holding the class folders and the split
            folder side by side (``ucfTrainTestlist/`` or ``testTrainMulti_7030_splits/``).
            A UCF101 root (existing) without a ``ucfTrainTestlist/`` folder is read with the official
            split files shipped in the package (:mod:`videolstm.data.datasets.shipped`); the
            table's metadata then names them as ``split_dir``.
        split: 1, 2 or 3.
        storage: S3 endpoint/region for ``s3://`` roots.
        check_files: list the class folders to check that every video exists and to fill
            ``size_bytes``/``fingerprint``. ``False`` parses the split files only (no listing;
            every well-formed line is ``ok`` with ``size_bytes=-1``, ``fingerprint=""``).
        limits: ``dataset.limits``: the largest split file (bytes, lines) read.

    Class and video names from the split files become paths only when they are safe path
    components (:func:`videolstm.store.safepath.check_name`): a line naming ``..`` is a failed
    row, a class index or HMDB51 split-file name naming ``..`` raises; so every ``ok`` row's
    ``path`` lies under ``root``, with or without ``check_files``.

    Returns:
        A table with :data:`INDEX_SCHEMA`, one row per video named in the split; train rows
        first, then test rows. The schema metadata records ``kind``, ``root``, ``split`` and
        (UCF101 layout) ``split_dir``, the folder the split files were read from.

    Raises:
        ValueError: unknown ``kind`` or ``split``, a broken class-index file, an unsafe class
            name, or a split file over ``limits`` (the message names the file and the limit).
        FileNotFoundError: the root, the split folder or a split file is missing.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown dataset kind {kind!r}; expected one of {KINDS}")
    if split not in (1, 2, 3):
        raise ValueError(f"split must be 1, 2 or 3 (the official splits), got {split!r}")
    if kind == "hmdb51":
        rows = hmdb51_index(root, split, storage, check_files=check_files, limits=limits)
        return rows_to_table(rows, {"kind": kind, "root": root, "split": str(split)})
    split_dir = join(root, SPLIT_DIR)
    shipped = shipped_split_dir(kind)
    if shipped is not None and exists(root, storage) and not exists(split_dir, storage):
        log.info("%s has no %s/: reading the official split files shipped in the package (%s)", root, SPLIT_DIR, shipped)
        split_dir = shipped
    rows = ucf101_index(root, split, storage, check_files=check_files, limits=limits, split_dir=split_dir)
    return rows_to_table(rows, {"kind": kind, "root": root, "split": str(split), "split_dir": split_dir})


def write_index(table: pa.Table, uri: str, storage: StorageConfig | None = None) -> None:
    """Store an index as a Parquet manifest at ``uri`` (atomically; any fsspec URI).

    Raises ValueError if ``table`` does not have the :data:`INDEX_SCHEMA` columns.
    """
    _check_schema(table, f"the table given to write_index({uri!r})")
    table = table.select(INDEX_SCHEMA.names).cast(INDEX_SCHEMA.with_metadata(table.schema.metadata))
    with atomic_local_file(uri, storage, suffix=".parquet") as tmp:
        pq.write_table(table, tmp)


def read_index(uri: str, storage: StorageConfig | None = None) -> pa.Table:
    """Read a Parquet manifest written by :func:`write_index`.

    Raises ValueError naming the file if it is not Parquet or lacks an index column.
    """
    data = read_bytes(uri, storage)
    try:
        table = pq.read_table(io.BytesIO(data))
    except pa.ArrowInvalid as exc:
        raise ValueError(f"{uri} is not a Parquet index manifest ({exc}); rebuild it with load_index + write_index") from exc
    _check_schema(table, uri)
    return table


def _check_schema(table: pa.Table, what: str) -> None:
    problems = []
    for field in INDEX_SCHEMA:
        if field.name not in table.schema.names:
            problems.append(f"missing column {field.name!r}")
        elif table.schema.field(field.name).type != field.type:
            problems.append(f"column {field.name!r} is {table.schema.field(field.name).type}, expected {field.type}")
    if problems:
        raise ValueError(f"{what} is not a video index: {'; '.join(problems)}; build it with load_index")
