"""Per-video shards: one Parquet file per video, one Parquet row per time step.

Format version 2 (documented for anyone reading the data without this package):

* every array column ``name`` of shape (T, *S) becomes one Parquet column with one row per
  step t (row t holds step t; a column shorter than the file — flow has T−1 fields — is null at
  the end). Its cells are either

  - ``raw``: ``fixed_size_binary(prod(S)·itemsize)``, the step's C-order bytes
    (``np.frombuffer(cell, dtype).reshape(S)``), zstd-compressed by default; or
  - ``jpeg``: ``binary``, one JPEG per step (an (H, W, 3) RGB image); with ``planes`` every
    channel c of an (H, W, C) step is its own grayscale JPEG column ``<name>_<c>`` (the
    denseflow convention for the x and y flow components);

* the rows are cut into row groups of ``chunk_steps`` steps, so a reader of a 30-step snippet
  reads only the row groups (of only the columns) that hold those steps;
* scalars (str, int, float, bool) live in the file's key/value metadata ``videolstm.scalars``
  (JSON), the array columns' dtype, step shape, length and codec in ``videolstm.columns``
  (JSON) and the format in ``videolstm.shard_version``.

Version 1 (one row per video, whole-video ``list<fixed_shape_tensor>`` cells) is refused with a
:class:`ShardVersionError`: the stages' item keys name the format (``frames_flow/v2``,
``features/v2``), so a re-run recomputes old outputs instead of misreading them.

Examples: the frames+flow stage writes ``frames`` (T, H, W, 3) as RGB JPEGs and ``flow``
(T−1, H, W, 2) as two grayscale JPEG planes; the feature stage writes ``rgb_pool5`` (T, C, 7, 7),
``rgb_fc7`` (T, D), ``rgb_logits`` (T, K) and the same for ``flow_*`` raw.

One file per video keeps each video's write atomic (see :mod:`videolstm.store.storage`), which
is what makes a stage resumable and a retried worker harmless: the same video always lands at
the same URI, whole or not at all.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import IO, Any, TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from videolstm.config import StorageConfig
from videolstm.store import storage as st

SHARD_VERSION = "2"
T = TypeVar("T")
#: steps per Parquet row group unless a writer says otherwise
CHUNK_STEPS = 8
#: JPEG quality unless a writer says otherwise (OpenCV's scale, 0..100)
JPEG_QUALITY = 95

_META_VERSION = b"videolstm.shard_version"
_META_COLUMNS = b"videolstm.columns"
_META_SCALARS = b"videolstm.scalars"


class ShardVersionError(ValueError):
    """A shard written in another format version than this code reads."""


@dataclass(frozen=True)
class Jpeg:
    """An array to store as one JPEG per step: (T, H, W, 3) RGB uint8, or with ``planes`` any
    (T, H, W, C) uint8 as C grayscale JPEGs per step."""

    array: np.ndarray
    quality: int = JPEG_QUALITY
    planes: bool = False


# ----------------------------------------------------------------------------------------
# writing


def _jpeg_encode(image: np.ndarray, quality: int) -> bytes:
    import cv2

    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    ok, data = cv2.imencode(".jpg", np.ascontiguousarray(image), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError(f"OpenCV could not encode a {image.shape} image as JPEG")
    return data.tobytes()


def _padded(values: pa.Array, rows: int) -> pa.Array:
    if len(values) == rows:
        return values
    return pa.concat_arrays([values, pa.nulls(rows - len(values), type=values.type)])


def _raw_column(array: np.ndarray) -> pa.Array:
    array = np.ascontiguousarray(array)
    width = int(np.prod(array.shape[1:])) * array.dtype.itemsize
    return pa.FixedSizeBinaryArray.from_buffers(pa.binary(width), array.shape[0], [None, pa.py_buffer(array.tobytes())])


def to_table(row: Mapping[str, Any]) -> pa.Table:
    """The version-2 table of ``row`` (one row per step; see the module docstring)."""
    arrays = {k: v for k, v in row.items() if isinstance(v, (np.ndarray, Jpeg))}
    scalars = {k: v for k, v in row.items() if k not in arrays}
    for name, value in scalars.items():
        if not isinstance(value, (str, int, float, bool, type(None))):
            raise TypeError(f"shard column {name!r}: {type(value).__name__} is neither an array nor a scalar")
    specs: dict[str, dict[str, Any]] = {}
    columns: dict[str, pa.Array] = {}
    for name, value in arrays.items():
        array = value.array if isinstance(value, Jpeg) else value
        if array.ndim < 2:
            raise ValueError(f"array column {name!r} needs shape (T, *S) with at least 2 dims, got {array.shape}")
        spec: dict[str, Any] = {"dtype": array.dtype.str, "shape": list(array.shape[1:]), "length": int(array.shape[0]), "codec": "raw"}
        if isinstance(value, Jpeg):
            if array.dtype != np.uint8 or array.ndim not in (3, 4) or (not value.planes and (array.ndim != 4 or array.shape[-1] != 3)):
                raise ValueError(f"JPEG column {name!r} needs (T, H, W, 3) uint8 (or planes of (T, H, W, C)), got {array.shape} {array.dtype}")
            spec.update(codec="jpeg", quality=int(value.quality))
            if value.planes:
                channels = array.shape[-1] if array.ndim == 4 else 1
                spec["planes"] = [f"{name}_{c}" for c in range(channels)]
                for c, plane in enumerate(spec["planes"]):
                    images = array[..., c] if array.ndim == 4 else array
                    columns[plane] = pa.array([_jpeg_encode(im, value.quality) for im in images], type=pa.binary())
            else:
                columns[name] = pa.array([_jpeg_encode(im, value.quality) for im in array], type=pa.binary())
        else:
            columns[name] = _raw_column(array)
        specs[name] = spec
    rows = max((len(c) for c in columns.values()), default=0)
    table = pa.table({name: _padded(values, rows) for name, values in columns.items()}) if columns else pa.table({})
    metadata = {
        _META_VERSION: SHARD_VERSION.encode(),
        _META_COLUMNS: json.dumps(specs).encode(),
        _META_SCALARS: json.dumps(scalars).encode(),
    }
    return table.replace_schema_metadata(metadata)


def write_shard(
    uri: str,
    row: Mapping[str, Any],
    storage: StorageConfig | None = None,
    *,
    chunk_steps: int = CHUNK_STEPS,
    compression: str = "zstd",
) -> int:
    """Write one video's arrays (numpy: raw; :class:`Jpeg`: JPEG) and scalars to ``uri``
    atomically, ``chunk_steps`` steps per row group; returns the file size in bytes."""
    if chunk_steps < 1:
        raise ValueError(f"chunk_steps must be at least 1, got {chunk_steps}")
    table = to_table(row)
    specs = json.loads(table.schema.metadata[_META_COLUMNS])
    # JPEG bytes do not compress further: spare the reader a decompression pass
    jpeg = {c for name, spec in specs.items() if spec["codec"] == "jpeg" for c in spec.get("planes", [name])}
    codecs = {c: ("none" if c in jpeg else compression) for c in table.column_names}
    with st.atomic_local_file(uri, storage, suffix=".parquet") as tmp:
        pq.write_table(table, tmp, compression=codecs or compression, row_group_size=chunk_steps, write_statistics=False, use_dictionary=False)
        return os.path.getsize(tmp)


# ----------------------------------------------------------------------------------------
# reading


class _FooterCache:
    """Parsed footers of recently read shards, by URI (a shard is immutable once written: the
    same URI always holds the same content), so a loader re-reading a video skips the footer."""

    def __init__(self, size: int = 20_000):  # UCF101 has 13,320 videos
        self.size = size
        self._items: OrderedDict[str, tuple[pq.FileMetaData, int]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, uri: str) -> tuple[pq.FileMetaData, int] | None:
        with self._lock:
            item = self._items.get(uri)
            if item is not None:
                self._items.move_to_end(uri)
            return item

    def put(self, uri: str, metadata: pq.FileMetaData, size: int) -> None:
        with self._lock:
            self._items[uri] = (metadata, size)
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


FOOTERS = _FooterCache()


def _check_version(uri: str, metadata: Mapping[bytes, bytes] | None) -> None:
    version = (metadata or {}).get(_META_VERSION, b"?").decode()
    if version != SHARD_VERSION:
        raise ShardVersionError(
            f"{uri}: shard format version {version}, this code reads version {SHARD_VERSION} "
            "(one Parquet row per step); re-run the stage that wrote it — its item keys name the "
            "format, so the re-run recomputes the video instead of reusing this file"
        )


class ShardReader:
    """One open shard: lengths and scalars from the footer, array steps read on demand."""

    def __init__(self, uri: str, fh: IO[bytes], metadata: pq.FileMetaData | None = None):
        self.uri = uri
        self._fh = fh
        self.file = pq.ParquetFile(fh, metadata=metadata)
        self.metadata = self.file.metadata
        kv = self.metadata.metadata
        _check_version(uri, kv)
        self.columns: dict[str, dict[str, Any]] = json.loads(kv[_META_COLUMNS])
        self.scalars: dict[str, Any] = json.loads(kv[_META_SCALARS])
        counts = [self.metadata.row_group(i).num_rows for i in range(self.metadata.num_row_groups)]
        self._group_starts = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)

    def close(self) -> None:
        """Close the file."""
        self._fh.close()

    @property
    def names(self) -> list[str]:
        return [*self.scalars, *self.columns]

    def length(self, column: str) -> int:
        return int(self._spec(column)["length"])

    def _spec(self, column: str) -> dict[str, Any]:
        if column not in self.columns:
            raise KeyError(f"{self.uri}: no array column {column!r}; it has {sorted(self.columns)}")
        return self.columns[column]

    def _span(self, groups: np.ndarray, physical: Sequence[str]) -> tuple[int, int]:
        """(start, end) bytes of the column chunks of ``physical`` in ``groups``."""
        index = {self.metadata.schema.column(j).name: j for j in range(self.metadata.num_columns)}
        starts, ends = [], []
        for g in groups:
            row_group = self.metadata.row_group(int(g))
            for name in physical:
                chunk = row_group.column(index[name])
                start = chunk.dictionary_page_offset if chunk.has_dictionary_page else chunk.data_page_offset
                starts.append(start)
                ends.append(start + chunk.total_compressed_size)
        return min(starts), max(ends)

    def groups_of(self, steps: np.ndarray) -> np.ndarray:
        """The row groups holding ``steps``."""
        return np.unique(np.searchsorted(self._group_starts, steps, side="right") - 1)

    def read(self, columns: Sequence[str] | None = None, steps: Sequence[int] | np.ndarray | None = None) -> dict[str, Any]:
        """``columns`` (default all) → scalars and arrays; arrays hold only ``steps`` (default
        every step; indices may repeat), in that order, and only their row groups are read."""
        names = list(self.names) if columns is None else list(columns)
        out: dict[str, Any] = {}
        for name in names:
            if name in self.scalars:
                out[name] = self.scalars[name]
            elif name not in self.columns:
                raise KeyError(f"{self.uri}: no column {name!r}; it has {sorted(self.names)}")
        arrays = [n for n in names if n in self.columns]
        if not arrays:
            return out
        for name in arrays:
            length = self.length(name)
            wanted = np.arange(length) if steps is None else np.asarray(steps, dtype=np.int64).reshape(-1)
            if wanted.size and (wanted.min() < 0 or wanted.max() >= length):
                raise IndexError(f"{self.uri}: column {name!r} has {length} steps, asked for steps {wanted.min()}..{wanted.max()}")
            out[name] = self._read_column(name, wanted)
        return {n: out[n] for n in names}

    def _read_column(self, name: str, wanted: np.ndarray) -> np.ndarray:
        spec = self._spec(name)
        dtype, shape = np.dtype(spec["dtype"]), tuple(spec["shape"])
        if wanted.size == 0:
            return np.zeros((0, *shape), dtype=dtype)
        groups = self.groups_of(wanted)
        physical = spec.get("planes", [name])
        if isinstance(self._fh, _SpanFile):
            self._fh.prefetch(*self._span(groups, physical))
        table = self.file.read_row_groups([int(g) for g in groups], columns=physical, use_threads=False)
        first = self._group_starts[groups]
        # position of step s inside the concatenation of the groups read
        sizes = self._group_starts[groups + 1] - first
        offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        group = np.searchsorted(first, wanted, side="right") - 1
        positions = offsets[group] + (wanted - first[group])
        if spec["codec"] == "raw":
            return _gather_raw(table.column(name), positions, dtype, shape)
        return _gather_jpeg(table, physical, positions, shape, planes="planes" in spec)


def _gather_raw(column: pa.ChunkedArray, positions: np.ndarray, dtype: np.dtype, shape: tuple[int, ...]) -> np.ndarray:
    step = int(np.prod(shape))
    views, starts = [], []
    start = 0
    for chunk in column.chunks:
        data = np.frombuffer(chunk.buffers()[1], dtype=dtype)
        views.append(data[chunk.offset * step : (chunk.offset + len(chunk)) * step].reshape(len(chunk), *shape))
        starts.append(start)
        start += len(chunk)
    if len(views) == 1:
        return views[0][positions]
    out = np.empty((len(positions), *shape), dtype=dtype)
    chunk_of = np.searchsorted(starts, positions, side="right") - 1
    for i, (c, p) in enumerate(zip(chunk_of, positions)):
        out[i] = views[c][p - starts[c]]
    return out


def _jpeg_decode(data: bytes, color: bool) -> np.ndarray:
    import cv2

    buffer = np.frombuffer(data, dtype=np.uint8)
    image = cv2.imdecode(buffer, cv2.IMREAD_COLOR if color else cv2.IMREAD_GRAYSCALE)
    if image is None:
        raise ValueError("a JPEG cell of the shard could not be decoded (corrupt file); re-run the stage that wrote it")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB) if color else image


def _gather_jpeg(table: pa.Table, physical: Sequence[str], positions: np.ndarray, shape: tuple[int, ...], planes: bool) -> np.ndarray:
    out = np.empty((len(positions), *shape), dtype=np.uint8)
    decoded: dict[tuple[int, int], np.ndarray] = {}
    for c, column_name in enumerate(physical):
        column = table.column(column_name)
        for i, p in enumerate(positions):
            key = (c, int(p))
            if key not in decoded:
                decoded[key] = _jpeg_decode(column[int(p)].as_py(), color=not planes)
            if planes and len(shape) == 3:
                out[i, ..., c] = decoded[key]
            else:
                out[i] = decoded[key]
    return out


class _SpanFile(io.RawIOBase):
    """A remote file whose reads inside a prefetched byte span are served from memory.

    pyarrow asks for each column chunk of each row group separately (a ranged GET each); the
    reader prefetches the span covering all chunks it is about to read in one GET instead.
    """

    def __init__(self, fh: Any):
        self._fh = fh
        self._pos = 0
        self._start = 0
        self._data = b""

    def prefetch(self, start: int, end: int) -> None:
        self._fh.seek(start)
        self._start, self._data = start, self._fh.read(end - start)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self._pos, os.SEEK_END: self._fh.size}[whence]
        self._pos = base + offset
        return self._pos

    def tell(self) -> int:
        return self._pos

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        n = max(0, min(len(view), self._fh.size - self._pos))
        lo = self._pos - self._start
        if 0 <= lo and lo + n <= len(self._data):
            view[:n] = self._data[lo : lo + n]
        else:
            self._fh.seek(self._pos)
            data = self._fh.read(n)
            n = len(data)
            view[:n] = data
        self._pos += n
        return n

    def close(self) -> None:
        self._fh.close()
        super().close()


def _open_remote(uri: str, storage: StorageConfig | None, size: int | None) -> IO[bytes]:
    fs, path = st.get_fs(uri, storage)
    # no read-ahead (the default reads up to 50 MB ahead): exactly the spans asked for travel
    kwargs: dict[str, Any] = {"cache_type": "none"}
    if size is not None:
        kwargs["size"] = size
    return _SpanFile(fs.open(path, "rb", **kwargs))  # type: ignore[return-value]


def open_shard(uri: str, storage: StorageConfig | None = None) -> ShardReader:
    """A :class:`ShardReader` of ``uri`` (footers of recently read shards are cached).

    Local files are opened directly; remote objects with ranged reads (only the row groups
    asked for travel). Close it with :meth:`close` or use :func:`read_shard`.
    """
    if st.is_local(uri):
        stat = os.stat(st.local_path(uri))  # a rewritten local file is a new cache entry
        cache_key = f"{uri}@{stat.st_mtime_ns}:{stat.st_size}"
    else:
        cache_key = uri
    cached = FOOTERS.get(cache_key)
    metadata, size = cached if cached is not None else (None, None)
    fh: IO[bytes] = open(st.local_path(uri), "rb") if st.is_local(uri) else _open_remote(uri, storage, size)
    with contextlib.ExitStack() as on_error:  # the file is closed if the shard cannot be opened
        on_error.callback(fh.close)
        try:
            reader = ShardReader(uri, fh, metadata)
        except pa.ArrowInvalid as exc:
            raise ValueError(f"{uri}: not a readable Parquet shard ({exc}); re-run the stage that wrote it") from exc
        on_error.pop_all()
    if cached is None:
        fh.seek(0, os.SEEK_END)
        FOOTERS.put(cache_key, reader.metadata, fh.tell())
    return reader


def read_with(uri: str, storage: StorageConfig | None, read: Callable[[ShardReader], T]) -> T:
    """``read(reader)`` on an open shard, closed afterwards; a remote shard is re-opened and
    read again on transient storage errors (:func:`videolstm.store.storage.with_retries`), so
    ``read`` must give the same answer when called again."""

    def once() -> T:
        reader = open_shard(uri, storage)
        try:
            return read(reader)
        finally:
            reader.close()

    return once() if st.is_local(uri) else st.with_retries(once, f"reading {uri}")


def read_shard(
    uri: str,
    columns: Sequence[str] | None = None,
    storage: StorageConfig | None = None,
    *,
    steps: Sequence[int] | np.ndarray | None = None,
) -> dict[str, Any]:
    """Read a shard written by :func:`write_shard`: ``columns`` (default all) as scalars and
    (len(steps), *S) arrays — only ``steps`` of each array (default every step), decoding only
    the row groups and JPEGs they need."""
    return read_with(uri, storage, lambda reader: reader.read(columns, steps))
