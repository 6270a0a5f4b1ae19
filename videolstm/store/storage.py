"""URIs on any fsspec filesystem: joining, reading, and atomic writes with retries.

Every stage reads and writes through these helpers, so the same code runs on a local folder
and on S3. A write is atomic: readers see either nothing or the whole object (local: a temp
file renamed into place; S3: one PUT or a completed multipart upload of a finished local file).
Transient storage errors are retried with backoff, then raised as :class:`StorageError`
naming the URI.

Credentials are never passed in here: s3fs reads the standard AWS chain (environment,
``~/.aws``, instance role). Only the endpoint and region come from :class:`StorageConfig`.
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, TypeVar

import fsspec
from fsspec.core import url_to_fs

from videolstm.config import StorageConfig
from videolstm.messages import redact as _redact

T = TypeVar("T")

#: Errors worth retrying: connection resets, timeouts, throttling, a store that restarts.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (ConnectionError, TimeoutError, OSError)
try:  # s3fs lets botocore's connection failures through as they are (not OSError subclasses)
    from botocore.exceptions import ConnectionError as _BotoConnectionError
    from botocore.exceptions import HTTPClientError as _BotoHTTPClientError

    TRANSIENT_ERRORS += (_BotoConnectionError, _BotoHTTPClientError)
except ImportError:  # pragma: no cover - botocore comes with s3fs
    pass


def _read_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


#: The process umask at import, so published files get the permissions a plain ``open`` gives
#: (``mkstemp`` creates its temp files 0600, which a rename would otherwise carry over).
_UMASK = _read_umask()


class StorageError(RuntimeError):
    """A storage operation failed after its retries; the message names the URI."""


class InputTooLargeError(ValueError):
    """A file larger than the limit for its kind: refused before it was read whole."""


def storage_options(uri: str, storage: StorageConfig | None = None) -> dict:
    """fsspec options for ``uri``: the S3 endpoint/region from ``storage``, nothing secret.

    botocore's own retries are kept short (a 5 s connect timeout, 2 attempts) so that an
    unreachable store fails within seconds per attempt of :func:`with_retries`, not minutes.
    """
    if not uri.startswith(("s3://", "s3a://")):
        return {}
    options: dict = {"config_kwargs": {"connect_timeout": 5, "read_timeout": 60, "retries": {"max_attempts": 2, "mode": "standard"}}}
    client_kwargs = {}
    if storage is not None and storage.endpoint_url:
        client_kwargs["endpoint_url"] = storage.endpoint_url
    if storage is not None and storage.region:
        client_kwargs["region_name"] = storage.region
    if client_kwargs:
        options["client_kwargs"] = client_kwargs
    return options


def get_fs(uri: str, storage: StorageConfig | None = None) -> tuple[fsspec.AbstractFileSystem, str]:
    """The filesystem and the filesystem-specific path of ``uri`` (a plain path means local)."""
    return url_to_fs(uri, **storage_options(uri, storage))


def is_local(uri: str) -> bool:
    return "://" not in uri or uri.startswith("file://")


def local_path(uri: str) -> Path:
    """The local path of a ``file://`` URI or plain path."""
    if not is_local(uri):
        raise ValueError(f"{uri} is not a local path")
    return Path(uri[len("file://") :] if uri.startswith("file://") else uri)


def join(uri: str, *parts: str) -> str:
    """Join path parts onto a URI with ``/`` (no normalisation of the scheme)."""
    out = uri.rstrip("/")
    for part in parts:
        out = f"{out}/{part.strip('/')}"
    return out


def absolute(uri: str) -> str:
    """Make a relative local path absolute (so Ray workers with another cwd find it)."""
    return str(local_path(uri).resolve()) if is_local(uri) else uri


def with_retries(action: Callable[[], T], what: str, attempts: int = 4, base_delay: float = 0.5) -> T:
    """Run ``action``; retry transient storage errors with exponential backoff.

    Raises :class:`StorageError` (with the last error chained) once ``attempts`` are used.
    ``FileNotFoundError`` and ``PermissionError`` are not transient and propagate at once.
    """
    for attempt in range(1, attempts + 1):
        try:
            return action()
        except (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError):
            raise
        except TRANSIENT_ERRORS as exc:
            if attempt == attempts:
                raise StorageError(f"{what} failed after {attempts} attempts: {exc}") from exc
            time.sleep(base_delay * 2 ** (attempt - 1))
    raise AssertionError("unreachable")


def _fresh(fs: fsspec.AbstractFileSystem, path: str) -> None:
    """Drop ``fs``'s cached listings of ``path`` and its parents.

    s3fs caches directory listings per (process-wide, shared) filesystem instance, so objects
    written or deleted by another process (a Ray worker, a previous run) would stay invisible
    (or still appear) to ``exists`` and ``ls`` here. Every question about what is on storage
    now must be answered afresh.
    """
    fs.invalidate_cache(path)


def exists(uri: str, storage: StorageConfig | None = None) -> bool:
    fs, path = get_fs(uri, storage)
    _fresh(fs, path)
    return with_retries(lambda: fs.exists(path), f"checking {uri}")


def read_bytes(uri: str, storage: StorageConfig | None = None, *, max_bytes: int | None = None, limit: str = "") -> bytes:
    """The bytes of ``uri``; with ``max_bytes``, at most that many are read.

    Raises :class:`InputTooLargeError` (naming the URI, ``max_bytes`` and the ``limit`` setting)
    when the file holds more: only ``max_bytes + 1`` bytes are ever read, so a huge or sparse
    file costs nothing.
    """
    fs, path = get_fs(uri, storage)
    if max_bytes is None:
        return with_retries(lambda: fs.cat_file(path), f"reading {uri}")

    def capped() -> bytes:
        with fs.open(path, "rb") as fh:
            return fh.read(max_bytes + 1)

    data = with_retries(capped, f"reading {uri}")
    if len(data) > max_bytes:
        setting = f" ({limit})" if limit else ""
        raise InputTooLargeError(
            f"{_redact(uri)} is larger than {max_bytes} bytes, the limit for this file{setting}; check that it is the "
            f"right file (if it is, raise the limit{setting})"
        )
    return data


def read_text(uri: str, storage: StorageConfig | None = None, encoding: str = "utf-8") -> str:
    return read_bytes(uri, storage).decode(encoding)


def list_files(uri: str, storage: StorageConfig | None = None, suffix: str = "") -> list[str]:
    """Files directly under ``uri`` ending in ``suffix``, as URIs with ``uri``'s scheme; [] if absent."""
    fs, path = get_fs(uri, storage)
    _fresh(fs, path)
    if not with_retries(lambda: fs.exists(path), f"checking {uri}"):
        return []
    entries = with_retries(lambda: fs.ls(path, detail=True), f"listing {uri}")
    names = [e["name"] for e in entries if e.get("type") == "file"]  # not sub-folders
    base = uri.rstrip("/")
    return sorted(join(base, n.rstrip("/").rsplit("/", 1)[-1]) for n in names if n.endswith(suffix))


def makedirs(uri: str, storage: StorageConfig | None = None) -> None:
    fs, path = get_fs(uri, storage)
    if is_local(uri):
        Path(path).mkdir(parents=True, exist_ok=True)
    # object stores have no directories


def remove(uri: str, storage: StorageConfig | None = None, recursive: bool = False) -> None:
    fs, path = get_fs(uri, storage)
    _fresh(fs, path)
    if with_retries(lambda: fs.exists(path), f"checking {uri}"):
        with_retries(lambda: fs.rm(path, recursive=recursive), f"removing {uri}")


def write_bytes(uri: str, data: bytes, storage: StorageConfig | None = None) -> None:
    """Write ``data`` to ``uri`` atomically (see module docstring)."""
    with atomic_local_file(uri, storage) as tmp:
        Path(tmp).write_bytes(data)


def write_text(uri: str, text: str, storage: StorageConfig | None = None) -> None:
    write_bytes(uri, text.encode(), storage)


@contextlib.contextmanager
def atomic_local_file(uri: str, storage: StorageConfig | None = None, suffix: str = "") -> Iterator[str]:
    """Yield a local temp path; on success publish it at ``uri`` atomically, on error drop it.

    Local: the temp file sits beside the target and is renamed into place (``os.replace``).
    Remote: the finished file is uploaded in one operation, retried on transient errors.
    """
    if is_local(uri):
        target = local_path(uri)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        os.close(fd)
        try:
            yield tmp
            os.chmod(tmp, 0o666 & ~_UMASK)
            os.replace(tmp, target)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        return
    fs, path = get_fs(uri, storage)
    fd, tmp = tempfile.mkstemp(suffix=suffix or ".upload")
    os.close(fd)
    try:
        yield tmp
        with_retries(lambda: _upload(fs, tmp, path, uri), f"writing {uri}")
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def _upload(fs: fsspec.AbstractFileSystem, local: str, path: str, uri: str) -> None:
    """Upload ``local`` to ``path`` in one operation (one PUT, or a multipart upload completed at the end).

    A store that restarts (or aborts incomplete uploads) in the middle of a multipart upload
    forgets its upload id: s3fs reports ``NoSuchUpload`` as FileNotFoundError. Nothing was
    published, and a new upload from the start will do, so it is raised as a transient error.
    """
    try:
        fs.put_file(local, path)
    except FileNotFoundError as exc:
        error = getattr(exc.__cause__, "response", None) or {}
        if error.get("Error", {}).get("Code") == "NoSuchUpload" or "upload does not exist" in str(exc):
            raise ConnectionError(f"the store lost the multipart upload of {uri} ({exc}); uploading it again") from exc
        raise


def check_torch_zip(fh: IO[bytes], uri: str, error: type[Exception]) -> None:
    """Refuse a torch file whose records are compressed (or that is no zip at all).

    ``torch.save`` writes a zip whose records are *stored*, so what ``torch.load`` allocates is
    bounded by the file's own size. A deflated record (a crafted file: torch reads it) could
    expand a small file into gigabytes. ``fh`` is left at its start.
    """
    start = fh.tell()
    try:
        with zipfile.ZipFile(fh) as zf:
            bad = [i.filename for i in zf.infolist() if i.compress_type != zipfile.ZIP_STORED or i.file_size != i.compress_size]
    except zipfile.BadZipFile:
        bad = None
    finally:
        fh.seek(start)
    if bad is None:
        raise error(
            f"{_redact(uri)} could not be loaded safely: it is not a zip-format torch file; videolstm writes checkpoints with torch.save (zip format, "
            "torch >= 1.6): re-create it, or re-save it with torch.save(torch.load(path), path)"
        )
    if bad:
        raise error(
            f"{_redact(uri)} could not be loaded safely: it holds compressed records ({bad[0][:100]!r}, ...); torch.save never compresses, so the file "
            "was not written by torch.save (a compressed record can expand far beyond the file's size): re-create it"
        )


@contextlib.contextmanager
def open_for_read(uri: str, storage: StorageConfig | None = None) -> Iterator[IO[bytes]]:
    """A binary file object for ``uri`` (local files are opened directly)."""
    if is_local(uri):
        with open(local_path(uri), "rb") as fh:
            yield fh
        return
    data = read_bytes(uri, storage)
    yield io.BytesIO(data)


@contextlib.contextmanager
def as_local_file(uri: str, storage: StorageConfig | None = None, suffix: str = "") -> Iterator[str]:
    """A local path holding ``uri``'s bytes (the file itself when local, else a temp copy).

    OpenCV and libarchive need real paths; remote objects are downloaded to a temp file.
    """
    if is_local(uri):
        yield str(local_path(uri))
        return
    fs, path = get_fs(uri, storage)
    fd, tmp = tempfile.mkstemp(suffix=suffix or Path(path).suffix)
    os.close(fd)
    try:
        with_retries(lambda: fs.get_file(path, tmp), f"downloading {uri}")
        yield tmp
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
