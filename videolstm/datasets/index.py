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

import dataclasses
import io
from collections.abc import Iterable
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from videolstm.config import StorageConfig
from videolstm.storage import absolute, atomic_local_file, get_fs, is_local, join, read_bytes, with_retries

INDEX_SCHEMA = pa.schema(
    [
        pa.field("video_id", pa.string(), nullable=False),
        pa.field("path", pa.string(), nullable=False),
        pa.field("label", pa.int32(), nullable=False),
        pa.field("class_name", pa.string(), nullable=False),
        pa.field("subset", pa.string(), nullable=False),
        pa.field("size_bytes", pa.int64(), nullable=False),
        pa.field("fingerprint", pa.string(), nullable=False),
        pa.field("status", pa.string(), nullable=False),
        pa.field("reason", pa.string(), nullable=False),
    ]
)

KINDS = ("ucf101", "hmdb51", "synthetic")


@dataclasses.dataclass
class IndexRow:
    """One row of the index (see the module docstring for the meaning of each field)."""

    video_id: str
    path: str
    label: int
    class_name: str
    subset: str
    size_bytes: int = -1
    fingerprint: str = ""
    status: str = "ok"
    reason: str = ""

    def fail(self, reason: str) -> IndexRow:
        """Mark this row failed with ``reason`` (keeps the first reason if already failed)."""
        if self.status != "failed":
            self.status, self.reason = "failed", reason
        return self


def rows_to_table(rows: Iterable[IndexRow], metadata: dict[str, str] | None = None) -> pa.Table:
    """Build an :data:`INDEX_SCHEMA` table from rows; ``metadata`` goes into the schema metadata."""
    columns: dict[str, list[Any]] = {name: [] for name in INDEX_SCHEMA.names}
    for row in rows:
        for name in INDEX_SCHEMA.names:
            columns[name].append(getattr(row, name))
    schema = INDEX_SCHEMA.with_metadata({k.encode(): v.encode() for k, v in (metadata or {}).items()})
    return pa.Table.from_pydict(columns, schema=schema)


def load_index(
    kind: str,
    root: str,
    split: int,
    storage: StorageConfig | None = None,
    *,
    check_files: bool = True,
) -> pa.Table:
    """Index the videos of one official split of a dataset in its official layout.

    Args:
        kind: ``"ucf101"``, ``"hmdb51"`` or ``"synthetic"`` (written in the UCF101 layout, read
            with the UCF101 reader).
        root: URI (local path, ``file://``, ``s3://``) holding the class folders and the split
            folder side by side (``ucfTrainTestlist/`` or ``testTrainMulti_7030_splits/``).
        split: 1, 2 or 3.
        storage: S3 endpoint/region for ``s3://`` roots.
        check_files: list the class folders to check that every video exists and to fill
            ``size_bytes``/``fingerprint``. ``False`` parses the split files only (no listing;
            every well-formed line is ``ok`` with ``size_bytes=-1``, ``fingerprint=""``).

    Returns:
        A table with :data:`INDEX_SCHEMA`, one row per video named in the split; train rows
        first, then test rows. The schema metadata records ``kind``, ``root`` and ``split``.

    Raises:
        ValueError: unknown ``kind`` or ``split``, or a broken class-index file.
        FileNotFoundError: the root, the split folder or a split file is missing.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown dataset kind {kind!r}; expected one of {KINDS}")
    if split not in (1, 2, 3):
        raise ValueError(f"split must be 1, 2 or 3 (the official splits), got {split!r}")
    if kind == "hmdb51":
        from videolstm.datasets.hmdb51 import hmdb51_index

        rows = hmdb51_index(root, split, storage, check_files=check_files)
    else:
        from videolstm.datasets.ucf101 import ucf101_index

        rows = ucf101_index(root, split, storage, check_files=check_files)
    return rows_to_table(rows, {"kind": kind, "root": root, "split": str(split)})


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


# --------------------------------------------------------------------------------------------
# Listing: the root once, each class folder at most once.


@dataclasses.dataclass(frozen=True)
class ListedFile:
    name: str
    uri: str
    size: int
    fingerprint: str


def fingerprint(info: dict[str, Any]) -> str:
    """A cheap content fingerprint from an fsspec listing entry: size + ETag, else size + mtime."""
    size = int(info.get("size") or 0)
    etag = info.get("ETag") or info.get("etag")
    if etag:
        return f"size={size};etag={str(etag).strip(chr(34))}"
    mtime = info.get("mtime") or info.get("LastModified") or info.get("last_modified") or info.get("created")
    if hasattr(mtime, "isoformat"):
        mtime = mtime.isoformat()
    return f"size={size};mtime={mtime}"


class FolderListing:
    """Lists a dataset root once and each class folder at most once.

    Class folders are matched case-insensitively (UCF101's ``HandstandPushups`` folder holds
    the ``HandStandPushups`` class); file names exactly, then case-insensitively.
    """

    def __init__(self, root: str, storage: StorageConfig | None = None) -> None:
        self.root = root
        self.base = absolute(root) if is_local(root) else root.rstrip("/")
        self.fs, self.root_path = get_fs(root, storage)
        self._folders: dict[str, str] | None = None
        self._files: dict[str, dict[str, ListedFile]] = {}

    def _ls(self, path: str, uri: str) -> list[dict[str, Any]]:
        self.fs.invalidate_cache(path)  # s3fs caches listings per instance: always list afresh
        return with_retries(lambda: self.fs.ls(path, detail=True), f"listing {uri}")

    def folders(self) -> dict[str, str]:
        """``{lower-case name: actual name}`` of the folders directly under the root."""
        if self._folders is None:
            exists = with_retries(lambda: self.fs.isdir(self.root_path), f"checking {self.root}")
            if not exists:
                raise FileNotFoundError(
                    f"dataset root {self.root} does not exist or is not a folder; point dataset.root at the "
                    "folder holding the class folders and the split folder, or run prepare_dataset"
                )
            self._folders = {}
            for info in self._ls(self.root_path, self.root):
                if info.get("type") == "directory":
                    name = info["name"].rstrip("/").rsplit("/", 1)[-1]
                    self._folders.setdefault(name.lower(), name)
        return self._folders

    def folder(self, class_name: str) -> str | None:
        """The actual folder name for ``class_name`` (case-insensitive), or None."""
        return self.folders().get(class_name.lower())

    def files(self, folder: str) -> dict[str, ListedFile]:
        """The files directly in ``folder`` (an actual folder name under the root), by name."""
        if folder not in self._files:
            path = f"{self.root_path.rstrip('/')}/{folder}"
            listed: dict[str, ListedFile] = {}
            for info in self._ls(path, join(self.root, folder)):
                if info.get("type") != "file":
                    continue
                name = info["name"].rsplit("/", 1)[-1]
                listed[name] = ListedFile(
                    name=name, uri=join(self.base, folder, name), size=int(info.get("size") or 0), fingerprint=fingerprint(info)
                )
            self._files[folder] = listed
        return self._files[folder]

    def find(self, class_name: str, file_name: str) -> tuple[ListedFile | None, str]:
        """Look a video up: ``(file, "")`` or ``(None, what is missing)``."""
        folder = self.folder(class_name)
        if folder is None:
            return None, f"class folder {class_name!r} not found under {self.root}"
        files = self.files(folder)
        hit = files.get(file_name)
        if hit is None:
            lowered = {name.lower(): f for name, f in files.items()}
            hit = lowered.get(file_name.lower())
        if hit is None:
            return None, f"no file {file_name!r} in {join(self.root, folder)}"
        return hit, ""

    def expected_uri(self, class_name: str, file_name: str) -> str:
        """Where a video should be (the actual folder if it exists, else the name as given)."""
        return join(self.base, self.folder(class_name) or class_name, file_name)


def split_lines(text: str) -> list[tuple[int, str]]:
    """``(1-based line number, line)`` pairs of non-blank lines; CRLF or LF endings."""
    out = []
    for number, line in enumerate(text.split("\n"), start=1):
        line = line.rstrip("\r")
        if line.strip():
            out.append((number, line.strip()))
    return out


def decode_text(data: bytes, uri: str) -> str:
    """UTF-8 text (a BOM is ignored); an undecodable file is a ValueError naming it."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{uri} is not UTF-8 text ({exc}); re-extract it from the official archive") from exc
