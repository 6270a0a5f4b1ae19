"""Extract the official archives (``.zip``, ``.rar``, ``.tar.*``) into the official layout, safely.

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

Fetching is :mod:`videolstm.data.datasets.download`; :func:`prepare_dataset`
(:mod:`videolstm.data.datasets.prepare`) does both for a dataset.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Literal

from videolstm.config import InputLimits, StorageConfig
from videolstm.data.datasets.download import DEFAULT_CHUNK, archive_name, sha256_of
from videolstm.messages import redact, redact_uri, short_repr, shorten
from videolstm.store.safepath import (
    UnsafeNameError,
    check_relative,
    under_root,
)
from videolstm.store.storage import (
    StorageError,
    as_local_file,
    atomic_local_file,
    get_fs,
    read_bytes,
    with_retries,
    write_bytes,
)

MARKER_DIR = ".videolstm-extracted"


class ExtractError(RuntimeError):
    """An archive could not be extracted safely; the message names the archive and the entry."""


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


def archive_read_errors() -> tuple[type[BaseException], ...]:
    """What reading a corrupt, truncated or unsupported archive raises: zipfile's and zlib's errors,
    OS errors (a truncated file, a read error), and libarchive's ArchiveError when it is installed."""
    errors: tuple[type[BaseException], ...] = (
        zipfile.BadZipFile,
        zipfile.LargeZipFile,
        zlib.error,
        OSError,
        EOFError,
        NotImplementedError,
        RuntimeError,
    )
    try:
        from libarchive.exception import ArchiveError
    except (OSError, AttributeError, ImportError):  # no libarchive: .rar and .tar were refused before reading
        return errors
    return (*errors, ArchiveError)


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
        fix = f"; if the archive is genuine, raise dataset.limits.{limit}" if limit else "; the archive is corrupt or malicious"
        return ExtractError(
            f"{source}: refusing entry {short_repr(entry)}: {problem}{fix}. Nothing more was extracted from it "
            "(files already written stay under the destination)"
        )

    def count_entry(self, source: str, entry: str) -> None:
        self.entries += 1
        if self.entries > self.limits.archive_entries:
            raise self.refuse(
                source, entry, f"the archive holds more than {self.limits.archive_entries} entries (dataset.limits.archive_entries)", "archive_entries"
            )

    def check_size(self, source: str, entry: str, size: int, unpacked: int, archive_size: int, total: int) -> None:
        """``size``: bytes of this entry so far; ``unpacked``: of this archive so far; ``total``: of
        the whole extraction so far (each after adding)."""
        limits = self.limits
        if size > limits.archive_entry_bytes:
            raise self.refuse(
                source, entry, f"it unpacks to more than {limits.archive_entry_bytes} bytes (dataset.limits.archive_entry_bytes)", "archive_entry_bytes"
            )
        if total > limits.archive_total_bytes:
            raise self.refuse(
                source,
                entry,
                f"the archive unpacks to more than {limits.archive_total_bytes} bytes in all (dataset.limits.archive_total_bytes)",
                "archive_total_bytes",
            )
        if unpacked > RATIO_FREE_BYTES and unpacked > limits.archive_ratio * max(archive_size, 1):
            raise self.refuse(
                source,
                entry,
                f"{archive_size} archive bytes unpack to more than {unpacked} bytes, a ratio above "
                f"{limits.archive_ratio:g} (dataset.limits.archive_ratio): a decompression bomb",
                "archive_ratio",
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
                    raise budget.refuse(
                        source,
                        entry.name,
                        f"it is a sparse file (declared {entry.size} bytes, mostly holes "
                        "an extractor would fill with zeros); dataset archives hold no sparse files",
                    )
                kept = parts[strip:]
                if not kept:
                    continue
                full = (prefix.rstrip("/").split("/") if prefix else []) + kept
                if any(part.lower() == MARKER_DIR for part in full):
                    raise budget.refuse(
                        source, entry.name, f"{MARKER_DIR}/ is reserved for the extraction markers; an entry there could forge another archive's marker"
                    )
                rel = "/".join(full)
                if entry.kind == "dir":
                    budget.folders.add(rel)
                    continue
                if rel in budget.targets:
                    raise budget.refuse(
                        source,
                        entry.name,
                        f"it names {short_repr(rel)} twice (first in {budget.targets[rel]}); the second copy would silently replace the first",
                    )
                if nested_ok is False and rel.lower().endswith(tuple(ARCHIVE_KINDS)):
                    raise budget.refuse(
                        source,
                        entry.name,
                        f"it is an archive nested deeper than {budget.limits.archive_depth} level(s) (dataset.limits.archive_depth)",
                        "archive_depth",
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
    except archive_read_errors() as exc:
        label = _KIND_LABEL.get(ending, ending.lstrip("."))
        hint = f" (the file is not a {label} archive: it is read only as what its name says)" if "Unrecognized archive format" in str(exc) else ""
        raise ExtractError(
            f"{source}: cannot read the archive ({type(exc).__name__}: {shorten(redact(str(exc)), 300)}){hint}; delete it and download again"
        ) from exc
    return targets


def _parents_of(targets: Mapping[str, str], rel: str) -> list[str]:
    """The other targets that are folders on ``rel``'s path (``a`` for ``a/b``)."""
    parts = rel.split("/")
    return [p for p in ("/".join(parts[:i]) for i in range(1, len(parts))) if p in targets]


def common_root(archive_uri: str, storage: StorageConfig | None = None, limits: InputLimits | None = None) -> str | None:
    """The single top-level folder every file of the archive lies under, or None."""
    name = archive_name(archive_uri, "archive", ExtractError)
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
    name = archive_name(archive_uri, "archive", ExtractError)
    ending = _archive_ending(name)
    source = redact_uri(archive_uri)
    digest = archive_sha256 or sha256_of(archive_uri, storage)
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
                    read = entry.read
                    assert read is not None  # entries without data were skipped above
                    for block in read():
                        size += len(block)
                        unpacked += len(block)
                        budget.total += len(block)
                        if entry.size is not None and size > entry.size:
                            raise budget.refuse(source, entry.name, f"it unpacks to more than the {entry.size} bytes its header declares")
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
                            inner,
                            _archive_ending(parts[-1]),
                            inner_source,
                            0,
                            parent,
                            budget,
                            depth + 1 < budget.limits.archive_depth,
                        )
                        written += _extract_local(
                            inner,
                            _archive_ending(parts[-1]),
                            inner_source,
                            dest_uri,
                            inner_targets,
                            existing,
                            storage,
                            True,
                            budget,
                            depth + 1,
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
    except archive_read_errors() as exc:
        raise ExtractError(
            f"{source}: extracting entry {short_repr(current)} failed ({type(exc).__name__}: {shorten(redact(str(exc)), 300)}); "
            "the archive is corrupt or truncated: delete it and download again (files already extracted are kept and "
            "skipped next time)"
        ) from exc
    return written
