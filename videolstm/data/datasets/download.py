"""Download the official archives (resumable, verified) and extract them into the official layout.

Download (:func:`download`)
    From any fsspec URL (``https://``, ``http://``, ``s3://``, ``file://``, a plain path) to any
    fsspec destination. Bytes land in a partial file in a local staging folder (default
    ``$VIDEOLSTM_CACHE_DIR/downloads``, else ``$XDG_CACHE_HOME/videolstm/downloads``, else
    ``~/.cache/videolstm/downloads``). An interrupted transfer is resumed from the partial's
    size: over HTTP with one ``Range: bytes=<n>-`` request (guarded by ``If-Range`` with the
    first response's ETag / Last-Modified, so a changed file restarts from zero); for
    ``s3://``, ``file://`` and other fsspec sources by seeking the fsspec file. HTTP goes
    through ``urllib`` rather than fsspec's HTTP filesystem because the latter issues one range
    request per block and hides whether the server honoured the range.

    Only a verified file is published: size and sha256 are checked, then the file is moved
    (local, same filesystem: ``os.replace``; otherwise :func:`videolstm.store.storage.atomic_local_file`
    or one ``put``) to the destination. A mismatch raises :class:`DownloadError` naming the
    URL, the expected and the actual value, and discards the partial. Beside the destination,
    ``<dest>.verified.json`` records ``{"url", "sha256", "size", "source", "verified_at"}``;
    a second call finds the destination and a matching record and does nothing. Where no
    published sha256 exists (``OFFICIAL_ARCHIVES`` entry ``None``, or no ``sha256=`` given)
    the digest of the first download is recorded ("trust on first use", with an
    :class:`UnverifiedDownloadWarning` naming the archive) and enforced on later downloads to
    that destination.

Extraction (:func:`extract`)
    ``.zip`` with :mod:`zipfile`; ``.rar`` with **libarchive** through ``libarchive-c``. The
    choice: ``rarfile`` only parses headers and shells out to an external ``unrar``/``7z``/
    ``bsdtar`` binary for the data, and ``unrar`` is non-free; libarchive is maintained, open
    source (BSD), reads RAR4 and RAR5 (since 3.4; store and compressed methods, not
    encrypted or multi-volume archives) and is already the system library ``libarchive13``
    here. If the shared library is missing, :class:`ExtractError` says how to install it
    (``apt-get install libarchive13``). libarchive 3.6 does not check the CRC of *stored* RAR
    entries, so an archive's integrity comes from its sha256 at download time.

    Every entry name is checked before anything is written: absolute paths, drive letters,
    ``..`` components, symlinks, hard links and devices are refused (:class:`ExtractError`
    naming the archive and the entry). Files are written one by one, each atomically. When the
    marker (below) shows an earlier, interrupted run of the same archive, a file already
    present with the entry's size is skipped, so the extraction resumes; otherwise every file
    is (over)written.
    With ``recursive=True`` archives found inside (HMDB51's ``hmdb51_org.rar`` holds one
    ``.rar`` per class) are extracted in place via a local temp file and not kept. A marker
    ``<dest>/.videolstm-extracted/<archive name>.json`` records the archive's sha256, the
    options, whether the run completed and the files written; a second call with the same
    archive and options whose files are all present does nothing.

Preparing a dataset (:func:`prepare_dataset`) downloads the archives and extracts them into
the layout :func:`videolstm.data.datasets.load_index` reads; ``videolstm/data/datasets/README.md``
shows the resulting trees.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import hashlib
import http.client
import json
import os
import re
import shutil
import ssl
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import warnings
import zipfile
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from videolstm.config import StorageConfig
from videolstm.store.storage import (
    StorageError,
    as_local_file,
    atomic_local_file,
    exists,
    get_fs,
    is_local,
    join,
    local_path,
    read_bytes,
    with_retries,
    write_bytes,
)

try:  # POSIX advisory locks keep two processes from writing the same partial
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

DEFAULT_CHUNK = 8 * 1024 * 1024
MARKER_DIR = ".videolstm-extracted"


class DownloadError(RuntimeError):
    """A download failed or did not verify; the message names the URL and what to do."""


class ExtractError(RuntimeError):
    """An archive could not be extracted safely; the message names the archive and the entry."""


class UnverifiedDownloadWarning(UserWarning):
    """No published checksum: the first download's sha256 is trusted and recorded."""


@dataclasses.dataclass(frozen=True)
class ArchiveSpec:
    """An official archive: where it is, its size and sha256 when published, and the source."""

    name: str
    url: str
    size: int | None
    sha256: str | None
    source: str


# Published values only; None where no published value was found (trust on first use).
OFFICIAL_ARCHIVES: dict[str, ArchiveSpec] = {
    spec.name: spec
    for spec in [
        ArchiveSpec(
            "UCF101.rar",
            "https://www.crcv.ucf.edu/data/UCF101/UCF101.rar",
            size=None,  # no published byte count found
            # sha256: pytorch/vision torchvision/prototype/datasets/_builtin/ucf101.py (HttpResource).
            sha256="ca8dfadb4c891cb11316f94d52b6b0ac2a11994e67a0cae227180cd160bd8e55",
            source="pytorch/vision torchvision/prototype/datasets/_builtin/ucf101.py",
        ),
        ArchiveSpec(
            "UCF101TrainTestSplits-RecognitionTask.zip",
            "https://www.crcv.ucf.edu/data/UCF101/UCF101TrainTestSplits-RecognitionTask.zip",
            # size and sha256: tensorflow/datasets tensorflow_datasets/url_checksums/ucf101.txt;
            # the same sha256 is in pytorch/vision torchvision/prototype/datasets/_builtin/ucf101.py.
            size=113943,
            sha256="5c0d1a53b8ed364a2ac830a73f405e51bece7d98ce1254fd19ed4a36b224bd27",
            source="tensorflow/datasets url_checksums/ucf101.txt; pytorch/vision prototype ucf101.py",
        ),
        ArchiveSpec(
            "UCF101TrainTestSplits-DetectionTask.zip",
            "https://www.crcv.ucf.edu/data/UCF101/UCF101TrainTestSplits-DetectionTask.zip",
            size=None,  # no published value found: trust on first use
            sha256=None,
            source="none published",
        ),
        ArchiveSpec(
            "hmdb51_org.rar",
            "http://serre-lab.clps.brown.edu/wp-content/uploads/2013/10/hmdb51_org.rar",
            size=None,  # no published byte count found
            # sha256: pytorch/vision torchvision/prototype/datasets/_builtin/hmdb51.py (HttpResource).
            sha256="9e714a0d8b76104d76e932764a7ca636f929fff66279cda3f2e326fa912a328e",
            source="pytorch/vision torchvision/prototype/datasets/_builtin/hmdb51.py",
        ),
        ArchiveSpec(
            "test_train_splits.rar",
            "http://serre-lab.clps.brown.edu/wp-content/uploads/2013/10/test_train_splits.rar",
            size=None,  # no published byte count found
            # sha256: pytorch/vision torchvision/prototype/datasets/_builtin/hmdb51.py (HttpResource);
            # torchvision/datasets/hmdb51.py publishes md5 15e67781e70dcfbdce2d7dbb9b3344b5 for it.
            sha256="229c94f845720d01eb3946d39f39292ea962d50a18136484aa47c1eba251d2b7",
            source="pytorch/vision torchvision/prototype/datasets/_builtin/hmdb51.py",
        ),
    ]
}

#: The archives :func:`prepare_dataset` fetches by default, in order.
DATASET_ARCHIVES: dict[str, list[str]] = {
    "ucf101": ["UCF101.rar", "UCF101TrainTestSplits-RecognitionTask.zip"],
    "hmdb51": ["hmdb51_org.rar", "test_train_splits.rar"],
}


def cache_dir() -> Path:
    """``$VIDEOLSTM_CACHE_DIR``, else ``$XDG_CACHE_HOME/videolstm``, else ``~/.cache/videolstm``."""
    if os.environ.get("VIDEOLSTM_CACHE_DIR"):
        return Path(os.environ["VIDEOLSTM_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "videolstm"


def record_uri(dest_uri: str) -> str:
    """Where the verification record of ``dest_uri`` lives (``<dest>.verified.json``)."""
    return dest_uri + ".verified.json"


def read_record(dest_uri: str, storage: StorageConfig | None = None) -> dict[str, Any] | None:
    """The verification record beside ``dest_uri``, or None if there is none."""
    uri = record_uri(dest_uri)
    try:
        record = json.loads(read_bytes(uri, storage))
    except FileNotFoundError:
        return None
    except json.JSONDecodeError as exc:
        raise DownloadError(f"{uri} is not valid JSON ({exc}); delete it and download again") from exc
    if not isinstance(record, dict) or not re.fullmatch(r"[0-9a-f]{64}", str(record.get("sha256", ""))):
        raise DownloadError(f"{uri} does not hold a sha256 record; delete it and download again")
    return record


# --------------------------------------------------------------------------------------------
# download


def download(
    url: str,
    dest_uri: str,
    *,
    sha256: str | None = None,
    size: int | None = None,
    storage: StorageConfig | None = None,
    staging_dir: str | os.PathLike[str] | None = None,
    chunk_size: int = DEFAULT_CHUNK,
    attempts: int = 3,
    timeout: float = 60.0,
    rehash: bool = False,
) -> str:
    """Download ``url`` to ``dest_uri``: resumable, verified, published atomically, idempotent.

    Args:
        url: any fsspec URL or a local path; ``http(s)://`` uses HTTP Range requests to resume.
        dest_uri: any fsspec URI (``s3://`` needs ``storage`` for a custom endpoint).
        sha256: expected hex digest. None: use the digest recorded beside ``dest_uri`` by an
            earlier download, else trust this download and record it (warning).
        size: expected size in bytes, or None.
        storage: S3 endpoint/region for ``s3://`` sources and destinations.
        staging_dir: local folder for partial files (default ``cache_dir()/downloads``).
        chunk_size: bytes per read.
        attempts: transfer attempts within this call; each resumes from the partial.
        timeout: seconds without data before an HTTP attempt fails.
        rehash: re-hash an existing destination instead of trusting its record.

    Returns:
        ``dest_uri``.

    Raises:
        DownloadError: the source is missing, the transfer failed ``attempts`` times (the
            partial is kept for the next call), or the size/sha256 does not match (the partial
            is discarded).
    """
    if chunk_size < 1 or attempts < 1:
        raise ValueError("chunk_size and attempts must be >= 1")
    expected = sha256.lower() if sha256 else None
    record = read_record(dest_uri, storage)
    trusted = expected is None and record is not None
    if trusted:
        expected = record["sha256"]
        size = size if size is not None else record.get("size")

    if _destination_verified(dest_uri, expected, size, record, storage, rehash):
        return dest_uri

    staging = Path(staging_dir) if staging_dir is not None else cache_dir() / "downloads"
    staging.mkdir(parents=True, exist_ok=True)
    key = hashlib.sha256(url.encode()).hexdigest()[:16]
    name = _basename(url)
    part = staging / f"{key}-{name}.part"
    with _locked(staging / f"{key}.lock"):
        if not rehash and _destination_verified(dest_uri, expected, size, read_record(dest_uri, storage), storage, False):
            return dest_uri  # another process finished it while we waited for the lock
        digest, actual_size = _fetch_with_attempts(url, part, size, storage, chunk_size, attempts, timeout)
        problems = []
        if size is not None and actual_size != size:
            problems.append(f"expected {size} bytes, got {actual_size}")
        if expected is not None and digest != expected:
            problems.append(f"expected sha256 {expected}, got {digest}")
        if problems:
            _discard(part)
            where = f" (the expected digest was recorded by an earlier download in {record_uri(dest_uri)})" if trusted else ""
            raise DownloadError(
                f"{url} did not verify: {'; '.join(problems)}{where}. The partial was discarded; nothing was "
                f"published at {dest_uri}. Check the URL (a mirror may serve a different file) and download again."
            )
        _publish(part, dest_uri, storage)
        _discard(part)
    source = "published" if sha256 else (record.get("source", "recorded") if trusted else "trust-on-first-use")
    _write_record(dest_uri, url, digest, actual_size, source, storage)
    if source == "trust-on-first-use":
        warnings.warn(
            f"{name}: no published sha256 to check {url} against; trusting this first download "
            f"(sha256 {digest}, {actual_size} bytes) and recording it in {record_uri(dest_uri)}. "
            "Later downloads to this destination must match it.",
            UnverifiedDownloadWarning,
            stacklevel=2,
        )
    return dest_uri


def _basename(url: str) -> str:
    path = urllib.parse.urlparse(url).path if "://" in url else url
    name = path.rstrip("/").rsplit("/", 1)[-1]
    return urllib.parse.unquote(name) or "download"


def _destination_verified(
    dest_uri: str, expected: str | None, size: int | None, record: dict | None, storage: StorageConfig | None, rehash: bool
) -> bool:
    """True if ``dest_uri`` exists and matches (its record, or a re-hash when asked / no record)."""
    fs, path = get_fs(dest_uri, storage)
    fs.invalidate_cache(path)
    if not with_retries(lambda: fs.exists(path), f"checking {dest_uri}"):
        return False
    actual_size = int(with_retries(lambda: fs.info(path), f"checking {dest_uri}")["size"])
    if size is not None and actual_size != size:
        return False
    if record is not None and not rehash:
        return (expected is None or record["sha256"] == expected) and record.get("size") == actual_size
    if expected is None:
        return False  # nothing to compare with: download again and trust that
    digest = _sha256_of(dest_uri, storage)
    if digest != expected:
        return False
    _write_record(dest_uri, record.get("url", "") if record else "", digest, actual_size, "re-hashed", storage)
    return True


def _write_record(dest_uri: str, url: str, digest: str, size: int, source: str, storage: StorageConfig | None) -> None:
    record = {
        "url": url,
        "sha256": digest,
        "size": size,
        "source": source,
        "verified_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    write_bytes(record_uri(dest_uri), (json.dumps(record, indent=2) + "\n").encode(), storage)


def _sha256_of(uri: str, storage: StorageConfig | None = None, chunk_size: int = DEFAULT_CHUNK) -> str:
    fs, path = get_fs(uri, storage)

    def run() -> str:
        hasher = hashlib.sha256()  # fresh per attempt: a retry must not hash bytes twice
        with fs.open(path, "rb") as fh:
            while block := fh.read(chunk_size):
                hasher.update(block)
        return hasher.hexdigest()

    return with_retries(run, f"hashing {uri}")


@contextlib.contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    with open(lock_path, "a+") as fh:
        if fcntl is not None:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            if fcntl is not None:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _discard(part: Path) -> None:
    for path in (part, part.with_name(part.name + ".json")):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _publish(part: Path, dest_uri: str, storage: StorageConfig | None) -> None:
    """Move a verified partial to the destination atomically (rename, or copy+rename, or one put)."""
    if is_local(dest_uri):
        target = local_path(dest_uri)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.replace(part, target)
            return
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
        with atomic_local_file(dest_uri, storage) as tmp:
            shutil.copyfile(part, tmp)
        return
    fs, path = get_fs(dest_uri, storage)
    with_retries(lambda: fs.put_file(str(part), path), f"uploading to {dest_uri}")


class _Interrupted(Exception):
    """A transfer attempt stopped early; the partial holds what arrived."""


_TRANSIENT = (_Interrupted, ConnectionError, TimeoutError, http.client.HTTPException, urllib.error.URLError, StorageError)


def _fetch_with_attempts(
    url: str, part: Path, size: int | None, storage: StorageConfig | None, chunk_size: int, attempts: int, timeout: float
) -> tuple[str, int]:
    """Bring ``part`` to the full content of ``url``; return (sha256, size) of the result."""
    fetch = _fetch_http if url.startswith(("http://", "https://")) else _fetch_fsspec
    for attempt in range(1, attempts + 1):
        try:
            return fetch(url, part, size, storage, chunk_size, timeout)
        except _TRANSIENT as exc:
            have = part.stat().st_size if part.exists() else 0
            if attempt == attempts:
                raise DownloadError(
                    f"downloading {url} failed after {attempts} attempt(s): {exc}. The partial file {part} "
                    f"({have} bytes) is kept; call download again to resume from it."
                ) from exc
            time.sleep(min(0.5 * 2 ** (attempt - 1), 10.0))
    raise AssertionError("unreachable")


def _start(part: Path, size: int | None, validators: dict[str, Any]) -> tuple[int, Any]:
    """Offset to resume from and a hasher over the partial's bytes (restart if stale or too long)."""
    old = _read_meta(part)
    offset = part.stat().st_size if part.exists() else 0
    stale = old is not None and any(old.get(k) != v for k, v in validators.items() if v is not None)
    if stale or (size is not None and offset > size) or (offset and old is None):
        part.unlink(missing_ok=True)
        offset = 0
    hasher = hashlib.sha256()
    if offset:
        with open(part, "rb") as fh:
            while block := fh.read(DEFAULT_CHUNK):
                hasher.update(block)
    return offset, hasher


def _read_meta(part: Path) -> dict[str, Any] | None:
    """What the last attempt recorded about the source of ``part`` (None: unknown, restart)."""
    try:
        meta = json.loads(part.with_name(part.name + ".json").read_text())
    except FileNotFoundError:
        return None
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None  # unreadable (e.g. cut while writing): the partial cannot be trusted, restart
    return meta if isinstance(meta, dict) else None


def _write_meta(part: Path, meta: dict[str, Any]) -> None:
    part.with_name(part.name + ".json").write_text(json.dumps(meta))


def _copy_stream(read: Callable[[int], bytes], part: Path, offset: int, hasher: Any, chunk_size: int) -> int:
    """Append ``read`` chunks to ``part`` (truncating to ``offset``); return bytes written."""
    written = 0
    with open(part, "r+b" if part.exists() else "wb") as out:
        out.truncate(offset)
        out.seek(offset)
        while block := read(chunk_size):
            out.write(block)
            hasher.update(block)
            written += len(block)
    return written


def _fetch_http(
    url: str, part: Path, size: int | None, storage: StorageConfig | None, chunk_size: int, timeout: float
) -> tuple[str, int]:
    old = _read_meta(part) or {}
    offset, hasher = _start(part, size, {"url": url})
    headers = {"Accept-Encoding": "identity", "User-Agent": "videolstm-download"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
        validator = old.get("etag") if old.get("etag") and not str(old["etag"]).startswith("W/") else old.get("last_modified")
        if validator:
            headers["If-Range"] = validator
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:  # the partial already holds everything (verification decides)
            return hasher.hexdigest(), offset
        if exc.code in (408, 425, 429, 500, 502, 503, 504):
            raise _Interrupted(f"HTTP {exc.code} {exc.reason}") from exc
        raise DownloadError(f"{url}: HTTP {exc.code} {exc.reason}; check the URL") from exc
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, ssl.SSLCertVerificationError):  # not transient: retrying cannot help
            raise DownloadError(
                f"{url}: the server's TLS certificate did not verify ({exc.reason}). Point SSL_CERT_FILE at a CA "
                "bundle that includes its chain, or use a mirror in dataset.download.urls (the sha256 check still applies)"
            ) from exc
        raise
    with response:
        length = response.headers.get("Content-Length")
        if response.status == 206:
            match = re.fullmatch(r"bytes (\d+)-(\d+)/(\d+|\*)", response.headers.get("Content-Range", ""))
            if not match or int(match[1]) != offset:
                raise DownloadError(
                    f"{url}: asked for bytes {offset}- but the server answered Content-Range "
                    f"{response.headers.get('Content-Range')!r}; delete the partial {part} and download again"
                )
            total = int(match[3]) if match[3] != "*" else None
        else:  # 200: the whole file (no partial, or the server ignored the range / the file changed)
            offset, hasher = 0, hashlib.sha256()
            total = int(length) if length is not None else None
        _write_meta(
            part,
            {"url": url, "etag": response.headers.get("ETag"), "last_modified": response.headers.get("Last-Modified"), "total": total},
        )
        try:
            written = _copy_stream(response.read, part, offset, hasher, chunk_size)
        except (http.client.IncompleteRead, ConnectionError, TimeoutError, OSError) as exc:
            raise _Interrupted(f"connection lost after {part.stat().st_size} bytes ({type(exc).__name__}: {exc})") from exc
    if length is not None and written < int(length):
        raise _Interrupted(f"the server closed the connection after {offset + written} of {offset + int(length)} bytes")
    return hasher.hexdigest(), offset + written


def _fetch_fsspec(
    url: str, part: Path, size: int | None, storage: StorageConfig | None, chunk_size: int, timeout: float
) -> tuple[str, int]:
    fs, path = get_fs(url, storage)
    fs.invalidate_cache(path)
    try:
        info = with_retries(lambda: fs.info(path), f"checking {url}")
    except FileNotFoundError as exc:
        raise DownloadError(f"{url} does not exist; check the URL") from exc
    total = int(info["size"])
    version = info.get("ETag") or info.get("etag") or info.get("mtime") or info.get("LastModified")
    validators = {"url": url, "total": total, "version": str(version) if version is not None else None}
    offset, hasher = _start(part, size, validators)
    if offset > total:
        part.unlink()
        offset, hasher = 0, hashlib.sha256()
    _write_meta(part, validators)
    try:
        with fs.open(path, "rb", block_size=chunk_size) as src:
            src.seek(offset)
            written = _copy_stream(src.read, part, offset, hasher, chunk_size)
    except (FileNotFoundError, PermissionError) as exc:
        raise DownloadError(f"{url}: {exc}; check the URL and the credentials") from exc
    except OSError as exc:
        raise _Interrupted(f"reading {url} failed after {part.stat().st_size if part.exists() else 0} bytes: {exc}") from exc
    if offset + written < total:
        raise _Interrupted(f"{url} ended after {offset + written} of {total} bytes")
    return hasher.hexdigest(), offset + written


# --------------------------------------------------------------------------------------------
# extract


@dataclasses.dataclass
class _Entry:
    name: str  # as stored
    kind: Literal["file", "dir", "other"]
    size: int
    read: Callable[[], Iterator[bytes]] | None = None


def _load_libarchive() -> Any:
    try:
        import libarchive
    except (OSError, AttributeError, ImportError) as exc:
        raise ExtractError(
            "extracting .rar needs the libarchive C library and the libarchive-c package "
            f"(loading it failed: {type(exc).__name__}: {exc}). Install the library with "
            "`apt-get install libarchive13` (Debian/Ubuntu), `dnf install libarchive` (Fedora) or "
            "`brew install libarchive` (macOS; then export LIBARCHIVE=$(brew --prefix libarchive)/lib/libarchive.dylib), "
            "and the package with `pip install libarchive-c`."
        ) from exc
    return libarchive


@contextlib.contextmanager
def _open_entries(local: str, kind: str, source: str) -> Iterator[Iterator[_Entry]]:
    """Entries of a local archive, in order; ``read()`` is valid only while the entry is current."""
    if kind == "zip":
        try:
            zf = zipfile.ZipFile(local)
        except zipfile.BadZipFile as exc:
            raise ExtractError(f"{source} is not a valid zip ({exc}); delete it and download again") from exc
        with zf:

            def zip_entries() -> Iterator[_Entry]:
                for info in zf.infolist():
                    mode = info.external_attr >> 16
                    if info.is_dir():
                        yield _Entry(info.filename, "dir", 0)
                    elif mode and (mode & 0o170000) not in (0, 0o100000):
                        yield _Entry(info.filename, "other", info.file_size)
                    else:

                        def read(info: zipfile.ZipInfo = info) -> Iterator[bytes]:
                            with zf.open(info) as fh:
                                while block := fh.read(DEFAULT_CHUNK):
                                    yield block

                        yield _Entry(info.filename, "file", info.file_size, read)

            yield zip_entries()
        return
    libarchive = _load_libarchive()
    with libarchive.file_reader(local) as archive:

        def rar_entries() -> Iterator[_Entry]:
            for entry in archive:
                if entry.isdir:
                    yield _Entry(entry.pathname, "dir", 0)
                elif entry.isreg and not entry.islnk and not entry.issym:
                    yield _Entry(entry.pathname, "file", int(entry.size or 0), entry.get_blocks)
                else:
                    yield _Entry(entry.pathname, "other", int(entry.size or 0))

        yield rar_entries()


def _archive_kind(name: str) -> str:
    lower = name.lower()
    if lower.endswith(".zip"):
        return "zip"
    if lower.endswith(".rar"):
        return "rar"
    raise ExtractError(f"{name}: unsupported archive type; expected .zip or .rar")


def _safe_parts(name: str, source: str) -> list[str]:
    """The path components of an entry name, refusing anything that escapes the destination."""
    normal = name.replace("\\", "/")
    parts = [p for p in normal.split("/") if p not in ("", ".")]
    if normal.startswith("/") or re.match(r"^[A-Za-z]:", normal) or ".." in parts or "\x00" in normal:
        raise ExtractError(
            f"{source}: refusing entry {name!r}: it would be written outside the destination (absolute path, "
            "drive letter or '..'); the archive is corrupt or malicious, nothing was extracted from it"
        )
    return parts


def _scan(local: str, kind: str, source: str, strip: int) -> dict[str, str]:
    """Validate every entry (pass 1) and map stored names of files to their relative targets."""
    targets: dict[str, str] = {}
    try:
        with _open_entries(local, kind, source) as entries:
            for entry in entries:
                parts = _safe_parts(entry.name, source)
                if entry.kind == "other":
                    raise ExtractError(
                        f"{source}: refusing entry {entry.name!r}: links and special files are not extracted; "
                        "the dataset archives hold only files and folders"
                    )
                if entry.kind == "file" and len(parts) > strip:
                    targets[entry.name] = "/".join(parts[strip:])
    except ExtractError:
        raise
    except Exception as exc:  # libarchive.ArchiveError, zipfile errors, OSError
        raise ExtractError(f"{source}: cannot read the archive ({type(exc).__name__}: {exc}); delete it and download again") from exc
    return targets


def common_root(archive_uri: str, storage: StorageConfig | None = None) -> str | None:
    """The single top-level folder every file of the archive lies under, or None."""
    kind = _archive_kind(archive_uri)
    with as_local_file(archive_uri, storage) as local:
        names = list(_scan(local, kind, archive_uri, 0))
    parts = [_safe_parts(name, archive_uri) for name in names]
    tops = {p[0] for p in parts}
    if len(tops) == 1 and all(len(p) >= 2 for p in parts):
        return tops.pop()
    return None


def extract(
    archive_uri: str,
    dest_uri: str,
    storage: StorageConfig | None = None,
    *,
    recursive: bool = False,
    strip_components: int = 0,
    archive_sha256: str | None = None,
) -> list[str]:
    """Extract a ``.zip`` or ``.rar`` archive into ``dest_uri`` (any fsspec URI), safely and once.

    Args:
        archive_uri: the archive (any fsspec URI; remote archives are copied to a local temp file).
        dest_uri: the folder to extract into.
        storage: S3 endpoint/region.
        recursive: also extract ``.rar``/``.zip`` files found inside, into the folder where they
            lie, without keeping them (HMDB51's archive of per-class archives).
        strip_components: drop this many leading path components from each entry (like tar's
            ``--strip-components``); entries with no component left are skipped.
        archive_sha256: the archive's sha256 when already known (e.g. just verified by
            :func:`download`); computed otherwise. Keys the idempotency marker.

    Returns:
        URIs of the extracted files (nested archives replaced by their contents), sorted.

    Raises:
        ExtractError: unsupported type, unreadable/corrupt archive, an entry that would escape
            the destination or is a link, or libarchive missing (with install instructions).
    """
    name = _basename(archive_uri)
    kind = _archive_kind(name)
    digest = archive_sha256 or _sha256_of(archive_uri, storage)
    options = {"recursive": recursive, "strip_components": strip_components}
    marker = join(dest_uri, MARKER_DIR, f"{name}.json")
    try:
        done = json.loads(read_bytes(marker, storage))
    except FileNotFoundError:
        done = None
    same_archive = bool(done) and done.get("sha256") == digest and done.get("options") == options
    existing: dict[str, int] = {}
    if same_archive:  # finished before, or interrupted: files already there with the right size stay
        existing = _existing_sizes(dest_uri, storage)
        if done.get("complete") and all(rel in existing for rel in done.get("files", [])):
            return [join(dest_uri, rel) for rel in done["files"]]
    record: dict[str, Any] = {"archive": archive_uri, "sha256": digest, "options": options, "complete": False, "files": []}
    write_bytes(marker, (json.dumps(record) + "\n").encode(), storage)

    with as_local_file(archive_uri, storage, suffix=f".{kind}") as local:
        files = _extract_local(local, kind, archive_uri, dest_uri, "", existing, storage, recursive, strip_components)
    record.update(complete=True, files=sorted(set(files)))
    write_bytes(marker, (json.dumps(record, indent=1) + "\n").encode(), storage)
    return [join(dest_uri, rel) for rel in record["files"]]


def _existing_sizes(dest_uri: str, storage: StorageConfig | None) -> dict[str, int]:
    """``{relative path: size}`` of the files already under ``dest_uri`` (one recursive listing)."""
    fs, path = get_fs(dest_uri, storage)
    fs.invalidate_cache(path)
    if not with_retries(lambda: fs.exists(path), f"checking {dest_uri}"):
        return {}
    found = with_retries(lambda: fs.find(path, detail=True), f"listing {dest_uri}")
    base = path.rstrip("/") + "/"
    return {k[len(base) :]: int(v.get("size") or 0) for k, v in found.items() if k.startswith(base)}


def _extract_local(
    local: str,
    kind: str,
    source: str,
    dest_uri: str,
    prefix: str,
    existing: dict[str, int],
    storage: StorageConfig | None,
    recursive: bool,
    strip: int,
) -> list[str]:
    targets = _scan(local, kind, source, strip)  # pass 1: refuse bad entries before writing anything
    written: list[str] = []
    current = ""
    try:
        with _open_entries(local, kind, source) as entries:
            for entry in entries:
                rel = targets.get(entry.name)
                if rel is None or entry.read is None:
                    continue
                current = entry.name
                rel = f"{prefix}{rel}"
                nested = recursive and rel.lower().endswith((".rar", ".zip"))
                if nested:
                    with tempfile.TemporaryDirectory(prefix="videolstm-nested-") as tmp:
                        inner = os.path.join(tmp, rel.rsplit("/", 1)[-1])
                        with open(inner, "wb") as fh:
                            for block in entry.read():
                                fh.write(block)
                        parent = rel.rsplit("/", 1)[0] + "/" if "/" in rel else ""
                        written += _extract_local(
                            inner, _archive_kind(inner), f"{source}!{entry.name}", dest_uri, parent, existing, storage, True, 0
                        )
                    continue
                if existing.get(rel) == entry.size:
                    written.append(rel)  # finished by an earlier, interrupted run
                    continue
                with atomic_local_file(join(dest_uri, rel), storage) as tmp:
                    with open(tmp, "wb") as fh:
                        for block in entry.read():
                            fh.write(block)
                written.append(rel)
    except ExtractError:
        raise
    except StorageError:
        raise
    except Exception as exc:  # libarchive.ArchiveError, zipfile.BadZipFile (bad CRC), OSError
        raise ExtractError(
            f"{source}: extracting entry {current!r} failed ({type(exc).__name__}: {exc}); the archive is corrupt "
            "or truncated: delete it and download again (files already extracted are kept and skipped next time)"
        ) from exc
    return written


# --------------------------------------------------------------------------------------------
# prepare_dataset


def prepare_dataset(
    kind: str,
    dest_uri: str,
    urls: Sequence[str] = (),
    *,
    storage: StorageConfig | None = None,
    staging_dir: str | os.PathLike[str] | None = None,
    archives_uri: str | None = None,
    verify: bool = True,
) -> str:
    """Download a dataset's archives and extract them into the layout ``load_index`` reads.

    Args:
        kind: ``"ucf101"`` or ``"hmdb51"``.
        dest_uri: the dataset root to create (any fsspec URI).
        urls: archive URLs (``DownloadConfig.urls``); empty means the official URLs of
            :data:`DATASET_ARCHIVES`. An archive is recognised by its file name, so a mirror
            (``s3://bucket/UCF101.rar``) is checked against the official checksums.
        storage: S3 endpoint/region for ``s3://`` URLs and destinations.
        staging_dir: local folder for partial downloads (default ``cache_dir()/downloads``).
        archives_uri: where the verified archives are kept (default the local
            ``cache_dir()/archives/<kind>``, so extraction reads them without another copy).
        verify: check the published sha256/size of :data:`OFFICIAL_ARCHIVES` (``False`` for a
            mirror holding repackaged archives: their digests are trusted on first use instead).

    Per archive: ``UCF101.rar`` → the class folders, its single top folder (``UCF-101/``) stripped;
    ``UCF101TrainTestSplits-*.zip`` → ``ucfTrainTestlist/`` (or the detection folder);
    ``hmdb51_org.rar`` → recursively, ``<class>/*.avi``; ``test_train_splits.rar`` →
    ``testTrainMulti_7030_splits/``. Other ``.zip``/``.rar`` files are extracted as they are.

    Returns:
        ``dest_uri``.

    Raises:
        ValueError: unknown ``kind``. DownloadError / ExtractError: see :func:`download` and
        :func:`extract`; ExtractError also if the result lacks the split folder.
    """
    if kind not in DATASET_ARCHIVES:
        raise ValueError(f"prepare_dataset: kind must be one of {sorted(DATASET_ARCHIVES)} (the synthetic set is generated), got {kind!r}")
    urls = list(urls) or [OFFICIAL_ARCHIVES[name].url for name in DATASET_ARCHIVES[kind]]
    archives_uri = archives_uri or str(cache_dir() / "archives" / kind)
    for url in urls:
        name = _basename(url)
        spec = OFFICIAL_ARCHIVES.get(name) if verify else None
        archive = download(
            url,
            join(archives_uri, name),
            sha256=spec.sha256 if spec else None,
            size=spec.size if spec else None,
            storage=storage,
            staging_dir=staging_dir,
        )
        digest = read_record(archive, storage)["sha256"]  # type: ignore[index]
        strip = 0
        if name == "UCF101.rar" and common_root(archive, storage) is not None:
            strip = 1
        extract(archive, dest_uri, storage, recursive=name == "hmdb51_org.rar", strip_components=strip, archive_sha256=digest)
    split_dir = {"ucf101": "ucfTrainTestlist/classInd.txt", "hmdb51": "testTrainMulti_7030_splits"}[kind]
    if not exists(join(dest_uri, split_dir), storage):
        raise ExtractError(
            f"after extracting {[_basename(u) for u in urls]} into {dest_uri} there is no {split_dir}; the archives "
            f"do not hold the official {kind} layout (see videolstm/data/datasets/README.md); check dataset.download.urls"
        )
    return dest_uri
