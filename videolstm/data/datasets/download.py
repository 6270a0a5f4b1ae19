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
    ``<dest>.verified.json`` records ``{"url", "sha256", "size", "source", "verified_at"}`` (the
    URL with its userinfo and presigned query values redacted; partial files are keyed and
    checked by the URL's sha256, so a signature is never written to disk);
    a second call finds the destination and a matching record and does nothing. Where no
    published sha256 exists (``OFFICIAL_ARCHIVES`` entry ``None``, or no ``sha256=`` given)
    the digest of the first download is recorded ("trust on first use", with an
    :class:`UnverifiedDownloadWarning` naming the archive) and enforced on later downloads to
    that destination.

Extraction (:func:`extract`)
    ``.zip`` with :mod:`zipfile`; ``.rar`` and ``.tar`` (``.tar.gz``/``.tgz``, ``.tar.bz2``,
    ``.tar.xz``) with **libarchive** through ``libarchive-c``. The choice: ``rarfile`` only parses
    headers and shells out to an external ``unrar``/``7z``/``bsdtar`` binary for the data, and
    ``unrar`` is non-free; libarchive is maintained, open source (BSD), reads RAR4 and RAR5
    (since 3.4; store and compressed methods, not encrypted or multi-volume archives) and is
    already the system library ``libarchive13`` here. If the shared library is missing,
    :class:`ExtractError` says how to install it (``apt-get install libarchive13``). libarchive
    3.6 does not check the CRC of *stored* RAR entries, so an archive's integrity comes from its
    sha256 at download time. A file is read only as the format its name says
    (:data:`ARCHIVE_KINDS`: libarchive gets only the RAR/RAR5 reader for ``.rar``, only the tar
    reader and the named filter for ``.tar.*``), so a tar renamed ``.rar`` is refused.

    The archive's own name (percent-decoded from a URL) must be a safe file name after every
    decoding step (:func:`archive_name`, :func:`videolstm.store.safepath.check_name`). Every
    entry is checked before anything is written (pass 1): names must be safe relative paths
    (absolute paths, drive letters, ``..``, separators hidden by percent-encoding, NUL and control
    characters refused), links, devices and sparse files are refused, a name given twice (the
    second copy would silently replace the first) or a file where a folder is are refused, the
    marker folder ``.videolstm-extracted/`` may not appear in an archive, and the declared sizes
    must fit ``dataset.limits`` (:class:`videolstm.config.InputLimits`: bytes in all, per entry,
    unpacked per archive byte, entries, nesting depth). While writing (pass 2) the bytes actually
    unpacked are counted against the same limits, so a header that understates an entry cannot
    get around them. Every write target is built by :func:`videolstm.store.safepath.under_root`
    (checked to resolve under the destination). Files are written one by one, each atomically.
    When the marker (below) shows an earlier, interrupted run of the same archive, a file already
    present with the entry's size is skipped, so the extraction resumes; otherwise every file is
    (over)written.
    With ``recursive=True`` archives found inside (HMDB51's ``hmdb51_org.rar`` holds one
    ``.rar`` per class) are extracted in place via a local temp file and not kept, at most
    ``dataset.limits.archive_depth`` levels deep (default 1; deeper nesting is refused). A
    marker ``<dest>/.videolstm-extracted/<sha256 of the archive name>.json`` — named from a hash,
    so no outside name is in its path, and written only once every entry has been checked —
    records the archive (credentials redacted), its sha256, the options, whether the run
    completed and the files written; a second call with the same archive and options whose files
    are all present does nothing.

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
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from videolstm.config import InputLimits, StorageConfig
from videolstm.messages import redact, redact_uri, short_repr, shorten
from videolstm.store.safepath import UnsafeNameError, check_name, check_relative, under_root
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

    name = archive_name(url, "download", DownloadError)
    shown = redact_uri(url)
    staging = Path(staging_dir) if staging_dir is not None else cache_dir() / "downloads"
    staging.mkdir(parents=True, exist_ok=True)
    key = _url_key(url)[:16]
    readable = name.encode("utf-8", "surrogateescape")[:100].decode("utf-8", "ignore")
    part = Path(under_root(str(staging), [f"{key}-{readable}.part"], f"partial download of {shown}"))
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
                f"{shown} did not verify: {'; '.join(problems)}{where}. The partial was discarded; nothing was "
                f"published at {dest_uri}. Check the URL (a mirror may serve a different file) and download again."
            )
        _publish(part, dest_uri, storage)
        _discard(part)
    source = "published" if sha256 else (record.get("source", "recorded") if trusted else "trust-on-first-use")
    _write_record(dest_uri, url, digest, actual_size, source, storage)
    if source == "trust-on-first-use":
        warnings.warn(
            f"{name}: no published sha256 to check {shown} against; trusting this first download "
            f"(sha256 {digest}, {actual_size} bytes) and recording it in {record_uri(dest_uri)}. "
            "Later downloads to this destination must match it.",
            UnverifiedDownloadWarning,
            stacklevel=2,
        )
    return dest_uri


def _url_key(url: str) -> str:
    """sha256 of a URL: what partial files are keyed and checked by (the URL itself may hold a
    presigned signature, so it is never written to disk)."""
    return hashlib.sha256(url.encode("utf-8", "surrogateescape")).hexdigest()


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
        "url": redact_uri(url) if url else url,  # a presigned URL's signature is a secret
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
                    f"downloading {redact_uri(url)} failed after {attempts} attempt(s): {redact(str(exc))}. The partial file {part} "
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
    offset, hasher = _start(part, size, {"url": _url_key(url)})
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
        raise DownloadError(f"{redact_uri(url)}: HTTP {exc.code} {exc.reason}; check the URL") from None
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, ssl.SSLCertVerificationError):  # not transient: retrying cannot help
            raise DownloadError(
                f"{redact_uri(url)}: the server's TLS certificate did not verify ({exc.reason}). Point SSL_CERT_FILE at a CA "
                "bundle that includes its chain, or use a mirror in dataset.download.urls (the sha256 check still applies)"
            ) from exc
        raise
    with response:
        length = response.headers.get("Content-Length")
        if response.status == 206:
            match = re.fullmatch(r"bytes (\d+)-(\d+)/(\d+|\*)", response.headers.get("Content-Range", ""))
            if not match or int(match[1]) != offset:
                raise DownloadError(
                    f"{redact_uri(url)}: asked for bytes {offset}- but the server answered Content-Range "
                    f"{response.headers.get('Content-Range')!r}; delete the partial {part} and download again"
                )
            total = int(match[3]) if match[3] != "*" else None
        else:  # 200: the whole file (no partial, or the server ignored the range / the file changed)
            offset, hasher = 0, hashlib.sha256()
            total = int(length) if length is not None else None
        _write_meta(
            part,
            {"url": _url_key(url), "etag": response.headers.get("ETag"), "last_modified": response.headers.get("Last-Modified"), "total": total},
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
        info = with_retries(lambda: fs.info(path), f"checking {redact_uri(url)}")
    except FileNotFoundError as exc:
        raise DownloadError(f"{redact_uri(url)} does not exist; check the URL") from None
    total = int(info["size"])
    version = info.get("ETag") or info.get("etag") or info.get("mtime") or info.get("LastModified")
    validators = {"url": _url_key(url), "total": total, "version": str(version) if version is not None else None}
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
        raise DownloadError(f"{redact_uri(url)}: {redact(str(exc))}; check the URL and the credentials") from None
    except OSError as exc:
        raise _Interrupted(f"reading {redact_uri(url)} failed after {part.stat().st_size if part.exists() else 0} bytes: {exc}") from exc
    if offset + written < total:
        raise _Interrupted(f"{redact_uri(url)} ended after {offset + written} of {total} bytes")
    return hasher.hexdigest(), offset + written


# --------------------------------------------------------------------------------------------
# extract

#: Archive kinds by file-name ending, and the libarchive formats / filters each is pinned to.
#: A file is read only as what its name says: a tar renamed ``.rar`` is not a RAR archive.
ARCHIVE_KINDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    ".zip": ((), ()),  # zipfile
    ".rar": (("rar", "rar5"), ("none",)),
    ".tar": (("tar",), ("none",)),
    ".tar.gz": (("tar",), ("gzip",)),
    ".tgz": (("tar",), ("gzip",)),
    ".tar.bz2": (("tar",), ("bzip2",)),
    ".tar.xz": (("tar",), ("xz",)),
}
_KIND_LABEL = {".rar": "RAR", ".zip": "zip"}

#: The compression-ratio limit applies once an archive has unpacked this much: a small, very
#: compressible file (a split list) is never a bomb.
RATIO_FREE_BYTES = 16 * 1024**2


@dataclasses.dataclass
class _Entry:
    name: str  # as stored
    kind: Literal["file", "dir", "other"]
    size: int | None  # declared unpacked size (None: not in the header)
    read: Callable[[], Iterator[bytes]] | None = None
    sparse: bool = False


def _load_libarchive() -> Any:
    try:
        import libarchive
    except (OSError, AttributeError, ImportError) as exc:
        raise ExtractError(
            "extracting .rar and .tar needs the libarchive C library and the libarchive-c package "
            f"(loading it failed: {type(exc).__name__}: {exc}). Install the library with "
            "`apt-get install libarchive13` (Debian/Ubuntu), `dnf install libarchive` (Fedora) or "
            "`brew install libarchive` (macOS; then export LIBARCHIVE=$(brew --prefix libarchive)/lib/libarchive.dylib), "
            "and the package with `pip install libarchive-c`."
        ) from exc
    return libarchive


def _sparse_count(entry: Any) -> int:
    """How many sparse regions libarchive reports for ``entry`` (0: an ordinary file)."""
    from libarchive import ffi

    function = getattr(ffi, "entry_sparse_count", None)
    if function is None:
        function = ffi.ffi("entry_sparse_count", [ffi.c_archive_entry_p], ffi.c_int)
    return int(function(entry._entry_p))


@contextlib.contextmanager
def _libarchive_reader(local: str, ending: str) -> Iterator[Any]:
    """libarchive reading ``local`` with only the formats and filters ``ending`` stands for."""
    _load_libarchive()
    from libarchive import ffi
    from libarchive.read import ArchiveRead

    formats, filters = ARCHIVE_KINDS[ending]
    archive_p = ffi.read_new()
    try:
        for name in filters:
            ffi.get_read_filter_function(name)(archive_p)
        for name in formats:
            ffi.get_read_format_function(name)(archive_p)
        ffi.read_open_filename_w(archive_p, local, 64 * 1024)
        yield ArchiveRead(archive_p, "utf-8")
    finally:
        ffi.read_free(archive_p)


@contextlib.contextmanager
def _open_entries(local: str, ending: str, source: str) -> Iterator[Iterator[_Entry]]:
    """Entries of a local archive, in order; ``read()`` is valid only while the entry is current."""
    if ending == ".zip":
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
    with _libarchive_reader(local, ending) as archive:

        def libarchive_entries() -> Iterator[_Entry]:
            first = True
            for entry in archive:
                if first:  # libarchive reads uncompressed data whatever filters are registered
                    first = False
                    wanted = {f for f in ARCHIVE_KINDS[ending][1] if f != "none"}
                    used = {str(f, "ascii", "replace") if isinstance(f, bytes) else str(f) for f in archive.filter_names}
                    if wanted and not wanted & used:
                        raise ExtractError(
                            f"{source}: cannot read the archive: it is not {'/'.join(sorted(wanted))}-compressed although "
                            f"its name ends in {ending} (an archive is read only as what its name says); delete it and "
                            "download again"
                        )
                size = entry.size
                size = int(size) if size is not None else None
                if entry.isdir:
                    yield _Entry(entry.pathname, "dir", 0)
                elif entry.isreg and not entry.islnk and not entry.issym:
                    yield _Entry(entry.pathname, "file", size, entry.get_blocks, sparse=_sparse_count(entry) > 0)
                else:
                    yield _Entry(entry.pathname, "other", size)

        yield libarchive_entries()


def _archive_ending(name: str) -> str:
    """The ``ARCHIVE_KINDS`` key ``name`` ends with (longest first), or ExtractError."""
    lower = name.lower()
    for ending in sorted(ARCHIVE_KINDS, key=len, reverse=True):
        if lower.endswith(ending):
            return ending
    raise ExtractError(f"{name}: unsupported archive type; expected .zip, .rar or .tar (.tar.gz, .tgz, .tar.bz2, .tar.xz)")


def archive_name(uri: str, what: str, error: type[Exception] = ExtractError) -> str:
    """The file name at the end of an archive's URI, percent-decoded and checked as a name.

    A name that decodes (once or repeatedly) to a path — ``..%2F..%2Fx.zip``, ``a%2Fb.zip`` — is
    refused (``error``, naming the URI and the decoded form): it must never become a path.
    """
    name = _basename(uri)
    try:
        return check_name(name, f"{what} {redact_uri(uri)}: file name")
    except UnsafeNameError as exc:
        raise error(str(exc)) from None


def marker_uri(dest_uri: str, name: str) -> str:
    """``<dest>/.videolstm-extracted/<sha256 of the archive name>.json``: no name from outside in the path."""
    digest = hashlib.sha256(name.encode("utf-8", "surrogateescape")).hexdigest()[:32]
    return under_root(dest_uri, [MARKER_DIR, f"{digest}.json"], "extraction marker")


@dataclasses.dataclass
class _Budget:
    """What one :func:`extract` call may still unpack (shared by nested archives)."""

    limits: InputLimits
    total: int = 0
    entries: int = 0
    targets: dict[str, str] = dataclasses.field(default_factory=dict)  # relative file path -> where it came from
    folders: set[str] = dataclasses.field(default_factory=set)

    def refuse(self, source: str, entry: str, problem: str, limit: str | None = None) -> ExtractError:
        fix = (
            f"; if the archive is genuine, raise dataset.limits.{limit}" if limit else
            "; the archive is corrupt or malicious"
        )
        return ExtractError(
            f"{source}: refusing entry {short_repr(entry)}: {problem}{fix}. Nothing more was extracted from it "
            "(files already written stay under the destination)"
        )

    def count_entry(self, source: str, entry: str) -> None:
        self.entries += 1
        if self.entries > self.limits.archive_entries:
            raise self.refuse(source, entry, f"the archive holds more than {self.limits.archive_entries} entries "
                              f"(dataset.limits.archive_entries)", "archive_entries")

    def check_size(self, source: str, entry: str, size: int, unpacked: int, archive_size: int, total: int) -> None:
        """``size``: bytes of this entry so far; ``unpacked``: of this archive so far; ``total``: of
        the whole extraction so far (each after adding)."""
        limits = self.limits
        if size > limits.archive_entry_bytes:
            raise self.refuse(source, entry, f"it unpacks to more than {limits.archive_entry_bytes} bytes "
                              "(dataset.limits.archive_entry_bytes)", "archive_entry_bytes")
        if total > limits.archive_total_bytes:
            raise self.refuse(source, entry, f"the archive unpacks to more than {limits.archive_total_bytes} bytes "
                              "in all (dataset.limits.archive_total_bytes)", "archive_total_bytes")
        if unpacked > RATIO_FREE_BYTES and unpacked > limits.archive_ratio * max(archive_size, 1):
            raise self.refuse(
                source, entry,
                f"{archive_size} archive bytes unpack to more than {unpacked} bytes, a ratio above "
                f"{limits.archive_ratio:g} (dataset.limits.archive_ratio): a decompression bomb", "archive_ratio",
            )


def _plan(local: str, ending: str, source: str, strip: int, prefix: str, budget: _Budget, nested_ok: bool) -> dict[str, str]:
    """Pass 1: check every entry of one archive before anything is written.

    Returns ``{stored name: relative target}`` of its files. Refuses (ExtractError naming the
    archive, the entry and the rule): a name that is not a safe relative path, links and
    special files, sparse entries, the marker folder, a name given twice (or a file where a
    folder is), declared sizes beyond the limits, too many entries, and archives nested deeper
    than ``dataset.limits.archive_depth`` (``nested_ok`` False).
    """
    archive_size = os.path.getsize(local)
    targets: dict[str, str] = {}
    declared = 0
    try:
        with _open_entries(local, ending, source) as entries:
            for entry in entries:
                budget.count_entry(source, entry.name)
                try:
                    parts = check_relative(entry.name, f"{source}: entry")
                except UnsafeNameError as exc:
                    why = "it would be written outside the destination" if exc.escapes else "it is not a safe file name"
                    raise ExtractError(
                        f"{source}: refusing entry {short_repr(entry.name)}: {why} ({exc.problem}); the archive is "
                        "corrupt or malicious, nothing was extracted from it"
                    ) from None
                if entry.kind == "other":
                    raise ExtractError(
                        f"{source}: refusing entry {short_repr(entry.name)}: links and special files are not extracted; "
                        "the dataset archives hold only files and folders"
                    )
                if entry.sparse:
                    raise budget.refuse(source, entry.name, f"it is a sparse file (declared {entry.size} bytes, mostly holes "
                                        "an extractor would fill with zeros); dataset archives hold no sparse files")
                kept = parts[strip:]
                if not kept:
                    continue
                full = (prefix.rstrip("/").split("/") if prefix else []) + kept
                if any(part.lower() == MARKER_DIR for part in full):
                    raise budget.refuse(source, entry.name, f"{MARKER_DIR}/ is reserved for the extraction markers; "
                                        "an entry there could forge another archive's marker")
                rel = "/".join(full)
                if entry.kind == "dir":
                    budget.folders.add(rel)
                    continue
                if rel in budget.targets:
                    raise budget.refuse(source, entry.name, f"it names {short_repr(rel)} twice (first in "
                                        f"{budget.targets[rel]}); the second copy would silently replace the first")
                if nested_ok is False and rel.lower().endswith(tuple(ARCHIVE_KINDS)):
                    raise budget.refuse(
                        source, entry.name, f"it is an archive nested deeper than {budget.limits.archive_depth} level(s) "
                        "(dataset.limits.archive_depth)", "archive_depth",
                    )
                budget.targets[rel] = source
                targets[entry.name] = rel
                size = int(entry.size or 0)
                declared += size
                budget.check_size(source, entry.name, size, declared, archive_size, budget.total + declared)
        clash = [rel for rel in budget.targets if rel in budget.folders or _parents_of(budget.targets, rel)]
        if clash:
            raise budget.refuse(source, clash[0], "a file and a folder of the same name")
    except ExtractError:
        raise
    except (MemoryError, RecursionError) as exc:
        raise ExtractError(f"{source}: reading the archive's entries ran out of {type(exc).__name__}") from None
    except Exception as exc:  # libarchive.ArchiveError, zipfile errors, OSError
        label = _KIND_LABEL.get(ending, ending.lstrip("."))
        hint = (f" (the file is not a {label} archive: it is read only as what its name says)"
                if "Unrecognized archive format" in str(exc) else "")
        raise ExtractError(
            f"{source}: cannot read the archive ({type(exc).__name__}: {shorten(redact(str(exc)), 300)}){hint}; "
            "delete it and download again"
        ) from exc
    return targets


def _parents_of(targets: Mapping[str, str], rel: str) -> list[str]:
    """The other targets that are folders on ``rel``'s path (``a`` for ``a/b``)."""
    parts = rel.split("/")
    return [p for p in ("/".join(parts[:i]) for i in range(1, len(parts))) if p in targets]


def common_root(archive_uri: str, storage: StorageConfig | None = None, limits: InputLimits | None = None) -> str | None:
    """The single top-level folder every file of the archive lies under, or None."""
    name = archive_name(archive_uri, "archive")
    ending = _archive_ending(name)
    source = redact_uri(archive_uri)
    with as_local_file(archive_uri, storage) as local:
        names = list(_plan(local, ending, source, 0, "", _Budget(limits or InputLimits()), True).values())
    parts = [name.split("/") for name in names]
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
    limits: InputLimits | None = None,
) -> list[str]:
    """Extract a ``.zip``, ``.rar`` or ``.tar`` archive into ``dest_uri`` (any fsspec URI), safely and once.

    Args:
        archive_uri: the archive (any fsspec URI; remote archives are copied to a local temp file).
        dest_uri: the folder to extract into.
        storage: S3 endpoint/region.
        recursive: also extract archives found inside, into the folder where they lie, without
            keeping them (HMDB51's archive of per-class archives), at most
            ``limits.archive_depth`` levels deep.
        strip_components: drop this many leading path components from each entry (like tar's
            ``--strip-components``); entries with no component left are skipped.
        archive_sha256: the archive's sha256 when already known (e.g. just verified by
            :func:`download`); computed otherwise. Keys the idempotency marker.
        limits: ``dataset.limits`` (bytes in all and per entry, ratio, entries, depth).

    Returns:
        URIs of the extracted files (nested archives replaced by their contents), sorted.

    Raises:
        ExtractError: unsupported type, a name that decodes to a path, unreadable/corrupt
            archive, an entry that would escape the destination, is a link, sparse, a duplicate
            or in the marker folder, a limit exceeded (naming the ``dataset.limits`` key), or
            libarchive missing (with install instructions). Every entry of the archive is
            checked before its first byte is written, and the marker is written only then.
    """
    limits = limits or InputLimits()
    name = archive_name(archive_uri, "archive")
    ending = _archive_ending(name)
    source = redact_uri(archive_uri)
    digest = archive_sha256 or _sha256_of(archive_uri, storage)
    options = {"recursive": recursive, "strip_components": strip_components}
    marker = marker_uri(dest_uri, name)
    try:
        done = json.loads(read_bytes(marker, storage))
    except FileNotFoundError:
        done = None
    except (json.JSONDecodeError, UnicodeDecodeError):
        done = None  # a damaged marker: extract again
    same_archive = isinstance(done, dict) and done.get("sha256") == digest and done.get("options") == options
    existing: dict[str, int] = {}
    if same_archive:  # finished before, or interrupted: files already there with the right size stay
        existing = _existing_sizes(dest_uri, storage)
        files = done.get("files", [])
        if done.get("complete") and isinstance(files, list) and all(isinstance(rel, str) and rel in existing for rel in files):
            return [under_root(dest_uri, rel.split("/"), f"extracted file of {source}") for rel in files]

    budget = _Budget(limits)
    with as_local_file(archive_uri, storage, suffix=ending) as local:
        targets = _plan(local, ending, source, strip_components, "", budget, recursive is False or limits.archive_depth > 0)
        record: dict[str, Any] = {"archive": source, "sha256": digest, "options": options, "complete": False, "files": []}
        write_bytes(marker, (json.dumps(record) + "\n").encode(), storage)  # every entry checked: now mark the start
        files = _extract_local(local, ending, source, dest_uri, targets, existing, storage, recursive, budget, 0)
    record.update(complete=True, files=sorted(set(files)))
    write_bytes(marker, (json.dumps(record, indent=1) + "\n").encode(), storage)
    return [under_root(dest_uri, rel.split("/"), f"extracted file of {source}") for rel in record["files"]]


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
    ending: str,
    source: str,
    dest_uri: str,
    targets: dict[str, str],
    existing: dict[str, int],
    storage: StorageConfig | None,
    recursive: bool,
    budget: _Budget,
    depth: int,
) -> list[str]:
    """Pass 2: write the files :func:`_plan` accepted, counting the bytes actually unpacked."""
    archive_size = os.path.getsize(local)
    written: list[str] = []
    unpacked = 0
    current = ""
    try:
        with _open_entries(local, ending, source) as entries:
            for entry in entries:
                rel = targets.get(entry.name)
                if rel is None or entry.read is None:
                    continue
                current = entry.name
                parts = rel.split("/")
                nested = recursive and depth < budget.limits.archive_depth and rel.lower().endswith(tuple(ARCHIVE_KINDS))

                def blocks() -> Iterator[bytes]:
                    nonlocal unpacked
                    size = 0
                    for block in entry.read():
                        size += len(block)
                        unpacked += len(block)
                        budget.total += len(block)
                        if entry.size is not None and size > entry.size:
                            raise budget.refuse(source, entry.name, f"it unpacks to more than the {entry.size} bytes its "
                                                "header declares")
                        budget.check_size(source, entry.name, size, unpacked, archive_size, budget.total)
                        yield block

                if nested:
                    with tempfile.TemporaryDirectory(prefix="videolstm-nested-") as tmp:
                        inner = os.path.join(tmp, "nested" + _archive_ending(parts[-1]))
                        with open(inner, "wb") as fh:
                            for block in blocks():
                                fh.write(block)
                        inner_source = f"{source}!{entry.name}"
                        parent = "/".join(parts[:-1])
                        budget.targets.pop(rel, None)  # the nested archive itself is not kept
                        inner_targets = _plan(
                            inner, _archive_ending(parts[-1]), inner_source, 0, parent, budget,
                            depth + 1 < budget.limits.archive_depth,
                        )
                        written += _extract_local(
                            inner, _archive_ending(parts[-1]), inner_source, dest_uri, inner_targets, existing,
                            storage, True, budget, depth + 1,
                        )
                    continue
                target = under_root(dest_uri, parts, f"entry {short_repr(entry.name)} of {source}")
                if existing.get(rel) == entry.size:
                    written.append(rel)  # finished by an earlier, interrupted run
                    continue
                with atomic_local_file(target, storage) as tmp:
                    with open(tmp, "wb") as fh:
                        for block in blocks():
                            fh.write(block)
                written.append(rel)
    except (ExtractError, StorageError, UnsafeNameError):
        raise
    except (MemoryError, RecursionError) as exc:
        raise ExtractError(f"{source}: extracting entry {short_repr(current)} ran out of {type(exc).__name__}") from None
    except Exception as exc:  # libarchive.ArchiveError, zipfile.BadZipFile (bad CRC), OSError
        raise ExtractError(
            f"{source}: extracting entry {short_repr(current)} failed ({type(exc).__name__}: {shorten(redact(str(exc)), 300)}); "
            "the archive is corrupt or truncated: delete it and download again (files already extracted are kept and "
            "skipped next time)"
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
    limits: InputLimits | None = None,
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
        limits: ``dataset.limits``: what one extraction may unpack (see :func:`extract`).

    Per archive: ``UCF101.rar`` → the class folders, its single top folder (``UCF-101/``) stripped;
    ``UCF101TrainTestSplits-*.zip`` → ``ucfTrainTestlist/`` (or the detection folder);
    ``hmdb51_org.rar`` → recursively, ``<class>/*.avi``; ``test_train_splits.rar`` →
    ``testTrainMulti_7030_splits/``. Other ``.zip``/``.rar`` files are extracted as they are.

    Returns:
        ``dest_uri``.

    Raises:
        ValueError: unknown ``kind``. DownloadError / ExtractError: see :func:`download` and
        :func:`extract`; DownloadError also for a URL whose file name decodes to a path
        (``..%252F..%252Fx.zip``); ExtractError also if the result lacks the split folder.
    """
    if kind not in DATASET_ARCHIVES:
        raise ValueError(f"prepare_dataset: kind must be one of {sorted(DATASET_ARCHIVES)} (the synthetic set is generated), got {kind!r}")
    urls = list(urls) or [OFFICIAL_ARCHIVES[name].url for name in DATASET_ARCHIVES[kind]]
    archives_uri = archives_uri or str(cache_dir() / "archives" / kind)
    names = [archive_name(url, "dataset.download.urls:", DownloadError) for url in urls]  # all checked first
    for url, name in zip(urls, names):
        spec = OFFICIAL_ARCHIVES.get(name) if verify else None
        archive = download(
            url,
            under_root(archives_uri, [name], f"archive downloaded from {redact_uri(url)}"),
            sha256=spec.sha256 if spec else None,
            size=spec.size if spec else None,
            storage=storage,
            staging_dir=staging_dir,
        )
        digest = read_record(archive, storage)["sha256"]  # type: ignore[index]
        strip = 0
        if name == "UCF101.rar" and common_root(archive, storage, limits) is not None:
            strip = 1
        extract(
            archive, dest_uri, storage, recursive=name == "hmdb51_org.rar", strip_components=strip,
            archive_sha256=digest, limits=limits,
        )
    split_dir = {"ucf101": "ucfTrainTestlist/classInd.txt", "hmdb51": "testTrainMulti_7030_splits"}[kind]
    if not exists(join(dest_uri, split_dir), storage):
        raise ExtractError(
            f"after extracting {names} into {dest_uri} there is no {split_dir}; the archives "
            f"do not hold the official {kind} layout (see videolstm/data/datasets/README.md); check dataset.download.urls"
        )
    return dest_uri
