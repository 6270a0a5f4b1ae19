"""What every dataset adapter shares: the index row and schema, listing a dataset root, text files.

The adapters (:mod:`~videolstm.data.datasets.ucf101`, :mod:`~videolstm.data.datasets.hmdb51`)
import this module; :mod:`~videolstm.data.datasets.index` imports the adapters. Nothing here
imports either, so the package has no import circle.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

import pyarrow as pa

from videolstm.config import InputLimits, StorageConfig
from videolstm.messages import redact
from videolstm.store.safepath import UnsafeNameError, check_name, under_root
from videolstm.store.storage import absolute, get_fs, is_local, join, read_bytes, with_retries

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
    if mtime is not None and hasattr(mtime, "isoformat"):
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
                listed[name] = ListedFile(name=name, uri=join(self.base, folder, name), size=int(info.get("size") or 0), fingerprint=fingerprint(info))
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
        """Where a video should be (the actual folder if it exists, else the name as given).

        Both names come from split files: they are checked (:func:`check_name`) and the result
        is proven to lie under the root (:class:`UnsafeNameError` otherwise).
        """
        folder = self.folder(class_name) or class_name
        return under_root(self.base, [folder, file_name], f"video {class_name}/{file_name} under {self.root}")


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


def read_text_file(uri: str, storage: StorageConfig | None, what_to_do: str, limits: InputLimits | None = None) -> str:
    """The UTF-8 text of a split or class-index file ``uri``, bounded by ``limits``.

    A missing file is a FileNotFoundError that says ``what_to_do``. A file over
    ``limits.split_file_bytes`` (only that many bytes + 1 are read) or with more than
    ``limits.split_file_lines`` lines is a ValueError naming the file, its size and the limit.
    """
    limits = limits or InputLimits()
    try:
        data = read_bytes(uri, storage, max_bytes=limits.split_file_bytes, limit="dataset.limits.split_file_bytes")
    except FileNotFoundError as exc:
        raise FileNotFoundError(f"{redact(uri)} does not exist; {what_to_do}") from exc
    lines = data.count(b"\n") + (0 if data.endswith(b"\n") or not data else 1)
    if lines > limits.split_file_lines:
        raise ValueError(
            f"{redact(uri)} has {lines} lines, more than the {limits.split_file_lines} lines a split file may have "
            f"(dataset.limits.split_file_lines; UCF101's longest has 9,624); check that it is the right file, or raise the limit"
        )
    return decode_text(data, uri)


def checked_name(name: str, what: str) -> str | None:
    """``None`` if ``name`` is safe as a path component, else the reason (for a failed row)."""
    try:
        check_name(name, what)
    except UnsafeNameError as exc:
        return str(exc)
    return None
