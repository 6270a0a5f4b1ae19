"""Fetch the official archives: resumable, verified downloads from any fsspec URL, and the table
of the official archives with their published sizes and digests.

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

Extraction is :mod:`videolstm.data.datasets.extraction`; :func:`prepare_dataset`
(:mod:`videolstm.data.datasets.prepare`) does both for a dataset.
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
import time
import urllib.error
import urllib.parse
import urllib.request
import warnings
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from videolstm.config import StorageConfig
from videolstm.messages import redact, redact_uri
from videolstm.store.safepath import (
    UnsafeNameError,
    check_name,
    under_root,
)
from videolstm.store.storage import (
    StorageError,
    atomic_local_file,
    get_fs,
    is_local,
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


class DownloadError(RuntimeError):
    """A download failed or did not verify; the message names the URL and what to do."""


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
    if trusted and record is not None:
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
    source = "published" if sha256 else (record.get("source", "recorded") if trusted and record is not None else "trust-on-first-use")
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


def archive_name(uri: str, what: str, error: type[Exception]) -> str:
    """The file name at the end of an archive's URI, percent-decoded and checked as a name.

    A name that decodes (once or repeatedly) to a path — ``..%2F..%2Fx.zip``, ``a%2Fb.zip`` — is
    refused (``error``, naming the URI and the decoded form): it must never become a path.
    """
    name = _basename(uri)
    try:
        return check_name(name, f"{what} {redact_uri(uri)}: file name")
    except UnsafeNameError as exc:
        raise error(str(exc)) from None


def _destination_verified(dest_uri: str, expected: str | None, size: int | None, record: dict | None, storage: StorageConfig | None, rehash: bool) -> bool:
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
    digest = sha256_of(dest_uri, storage)
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
        "verified_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    write_bytes(record_uri(dest_uri), (json.dumps(record, indent=2) + "\n").encode(), storage)


def sha256_of(uri: str, storage: StorageConfig | None = None, chunk_size: int = DEFAULT_CHUNK) -> str:
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


def _fetch_http(url: str, part: Path, size: int | None, storage: StorageConfig | None, chunk_size: int, timeout: float) -> tuple[str, int]:
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


def _fetch_fsspec(url: str, part: Path, size: int | None, storage: StorageConfig | None, chunk_size: int, timeout: float) -> tuple[str, int]:
    fs, path = get_fs(url, storage)
    fs.invalidate_cache(path)
    try:
        info = with_retries(lambda: fs.info(path), f"checking {redact_uri(url)}")
    except FileNotFoundError:
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
