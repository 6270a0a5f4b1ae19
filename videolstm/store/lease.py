"""Per-item leases on the storage root: two runs on one root compute each item once.

Before computing an item a run takes a lease next to the item's output; another run that finds a
live lease waits for the output and reuses it; a lease whose holder died expires and is taken
over, so a crash never blocks the root for longer than one lease period.

Layout: the leases of the item whose output is ``<out>`` are the files ``<out>.lease/<generation>``
(``000000``, ``000001``, ...), each a JSON :class:`LeaseRecord`. The highest generation is the
current lease. A lease is taken by **creating** the next generation's file, which only one run
can do — local: ``os.link`` of a finished temp file (fails if the name exists, and readers never
see a half-written record); S3: ``PutObject`` with ``If-None-Match: *`` (the store's own
conditional write: 412 if the key exists). Taking over an expired lease is the same operation on
the next generation, so two runs that both find it expired cannot both win; the expired files stay
until the lease that replaced them is released, so a generation number is never reused while a
run might still act on it. The holder renews its
own file while it works (:class:`Lease` does it on a thread) and deletes it when done; a holder
that finds a higher generation than its own has lost the lease (it was too slow to renew) and
says so in :attr:`Lease.lost`.

Pure library: fsspec only, no Prefect, no Ray.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TypeVar

from videolstm.config import StorageConfig
from videolstm.store import storage as st

T = TypeVar("T")

LEASE_SUFFIX = ".lease"
#: A lease lives this long unless renewed; its holder renews it every third of it.
DEFAULT_TTL = 60.0
#: How often a run waiting for another's item looks again.
DEFAULT_POLL = 2.0


class LeaseTimeout(TimeoutError):
    """Waited longer than allowed for an item another run holds (the message names the holder)."""


@dataclass(frozen=True)
class LeaseRecord:
    """One lease: who holds the item (run id, host, pid), until when, and which generation it is."""

    holder: str
    token: str  # unique to one acquisition: tells a run's own lease from another's with the same run id
    host: str
    pid: int
    generation: int
    taken: float  # unix seconds
    expires: float  # unix seconds

    def live(self, now: float | None = None) -> bool:
        return (time.time() if now is None else now) < self.expires

    def describe(self) -> str:
        return f"run {self.holder} on {self.host} (pid {self.pid})"

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode()

    @classmethod
    def from_json(cls, data: bytes) -> LeaseRecord:
        raw = json.loads(data)
        return cls(
            holder=str(raw["holder"]),
            token=str(raw["token"]),
            host=str(raw["host"]),
            pid=int(raw["pid"]),
            generation=int(raw["generation"]),
            taken=float(raw["taken"]),
            expires=float(raw["expires"]),
        )


def lease_dir(output_uri: str) -> str:
    """The folder (prefix) holding the leases of the item written at ``output_uri``."""
    return output_uri.rstrip("/") + LEASE_SUFFIX


def _generation_uri(output_uri: str, generation: int) -> str:
    return st.join(lease_dir(output_uri), f"{generation:06d}")


def _generations(output_uri: str, storage: StorageConfig | None) -> list[tuple[int, str]]:
    """(generation, uri) of the lease files present, oldest first."""
    found = []
    for uri in st.list_files(lease_dir(output_uri), storage):
        name = uri.rsplit("/", 1)[-1]
        if name.isdigit():
            found.append((int(name), uri))
    return sorted(found)


def current(output_uri: str, storage: StorageConfig | None = None) -> LeaseRecord | None:
    """The current lease of the item (its highest generation), or None when nobody holds it."""
    for _ in range(5):  # a file listed then released before it was read: look again
        generations = _generations(output_uri, storage)
        if not generations:
            return None
        try:
            return LeaseRecord.from_json(st.read_bytes(generations[-1][1], storage))
        except FileNotFoundError:
            continue
    return None


def create_exclusive(uri: str, data: bytes, storage: StorageConfig | None = None) -> bool:
    """Write ``data`` at ``uri`` only if nothing is there: True if this call created it.

    Local: a finished temp file hard-linked to the name (``link`` fails when the name exists).
    S3: ``PutObject`` with ``If-None-Match: *``. A retried S3 request whose first attempt did
    land returns False; the caller tells its own record by the token inside.
    """
    if st.is_local(uri):
        target = st.local_path(uri)
        fd, tmp = _temp_beside(target)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            try:
                os.link(tmp, target)
            except FileExistsError:
                return False
            return True
        finally:
            os.unlink(tmp)
    fs, path = st.get_fs(uri, storage)

    def put() -> bool:
        try:
            fs.pipe_file(path, data, mode="create")
        except FileExistsError:
            return False
        return True

    return st.with_retries(put, f"creating {uri}")


def _temp_beside(target: Path) -> tuple[int, str]:
    """A temp file in ``target``'s folder, creating the folder; again if a releasing run removed
    the (then empty) folder between the two steps."""
    for _ in range(10):
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            return tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        except FileNotFoundError:
            continue
    raise FileNotFoundError(f"{target.parent} keeps disappearing while a lease is written in it")


def _remove_if_there(uri: str, storage: StorageConfig | None) -> None:
    """Delete ``uri``; already gone (another run's release removed the expired generations) is fine."""
    with contextlib.suppress(FileNotFoundError):
        st.remove(uri, storage)


class Lease:
    """A lease this run holds; renew it while working (:meth:`renewing`), release it when done."""

    def __init__(self, output_uri: str, record: LeaseRecord, ttl: float, storage: StorageConfig | None):
        self.output_uri = output_uri
        self.record = record
        self.ttl = ttl
        self.storage = storage
        self.uri = _generation_uri(output_uri, record.generation)
        self.lost: LeaseRecord | None = None  # the lease that replaced this one, if it was taken over

    def renew(self) -> bool:
        """Move the expiry ``ttl`` ahead; False (and :attr:`lost` set) if another run took the item over."""
        newer = [g for g, _ in _generations(self.output_uri, self.storage) if g > self.record.generation]
        if newer:
            self.lost = current(self.output_uri, self.storage) or self.record
            return False
        now = time.time()
        self.record = LeaseRecord(**{**asdict(self.record), "expires": now + self.ttl})
        st.write_bytes(self.uri, self.record.to_json(), self.storage)
        return True

    def release(self) -> None:
        """Delete this run's lease file (the item is done, given up, or already taken over); a
        local lease folder left empty goes too.

        The expired generations below this one go first, this one last: a file that exists from
        start to end of a folder listing is always listed, while one created or deleted during it
        may be missed (POSIX ``readdir``), so while this lease lives a listing always shows a
        generation no lower than the expired ones a late reader might still act on.
        """
        for generation, uri in _generations(self.output_uri, self.storage):
            if generation < self.record.generation:
                _remove_if_there(uri, self.storage)
        _remove_if_there(self.uri, self.storage)
        if st.is_local(self.uri):
            folder = st.local_path(lease_dir(self.output_uri))
            with contextlib.suppress(OSError):  # gone already, or another run's lease arrived: the folder stays
                folder.rmdir()

    @contextlib.contextmanager
    def renewing(self, every: float | None = None) -> Iterator[Lease]:
        """Renew the lease on a thread every ``every`` seconds (a third of the ttl) inside the block;
        release it at the end, whatever happens."""
        stop = threading.Event()
        interval = self.ttl / 3 if every is None else every

        def loop() -> None:
            while not stop.wait(interval):
                if not self.renew():
                    return

        thread = threading.Thread(target=loop, name=f"lease-renew-{self.record.generation}", daemon=True)
        thread.start()
        try:
            yield self
        finally:
            stop.set()
            thread.join()
            self.release()  # taken over or not, this generation is nobody's current lease any more


def try_acquire(output_uri: str, holder: str, ttl: float = DEFAULT_TTL, storage: StorageConfig | None = None) -> Lease | LeaseRecord:
    """Take the item's lease: a :class:`Lease` when this run got it, else the live record of the run that holds it.

    A free item (no lease file) is taken as generation 0 (or the next after the last one seen);
    an expired lease is taken over by creating the next generation. Of several runs trying at
    once exactly one creates the file; the others get its record.
    """
    for _ in range(20):
        found = current(output_uri, storage)
        if found is not None and found.live():
            return found
        generation = 0 if found is None else found.generation + 1
        now = time.time()
        record = LeaseRecord(
            holder=holder, token=uuid.uuid4().hex, host=socket.gethostname(), pid=os.getpid(), generation=generation, taken=now, expires=now + ttl
        )
        uri = _generation_uri(output_uri, generation)
        created = create_exclusive(uri, record.to_json(), storage)
        if not created:
            try:
                there = LeaseRecord.from_json(st.read_bytes(uri, storage))
            except FileNotFoundError:
                continue  # taken and released in between: look again
            created = there.token == record.token  # our own retried write
        if created:  # the expired generations below stay until this lease is released (see Lease.release)
            return Lease(output_uri, record, ttl, storage)
    raise RuntimeError(f"could not take or read the lease of {output_uri} in 20 tries (its lease files keep changing)")


def compute_once(
    output_uri: str,
    done: Callable[[], bool],
    compute: Callable[[], T],
    reuse: Callable[[], T],
    *,
    holder: str,
    storage: StorageConfig | None = None,
    ttl: float = DEFAULT_TTL,
    poll: float = DEFAULT_POLL,
    max_wait: float | None = None,
    on_wait: Callable[[LeaseRecord], None] | None = None,
) -> T:
    """``compute()`` the item unless its output is ``done()`` or another run computes it; then ``reuse()`` it.

    - done already: ``reuse()``;
    - free or expired lease: take it, look at ``done()`` once more (another run may have finished
      between), ``compute()`` while the lease is renewed, release it;
    - a live lease of another run: ``on_wait(record)`` once, then look again every ``poll`` seconds
      until the output is done (reuse it), or the lease is released without output or expires (take it).

    ``max_wait`` (seconds, None: no limit beyond the holder's renewals) bounds the wait; past it
    :class:`LeaseTimeout` names the holder.
    """
    started = time.monotonic()
    told = False
    while True:
        if done():
            return reuse()
        got = try_acquire(output_uri, holder, ttl, storage)
        if isinstance(got, Lease):
            with got.renewing():
                if done():
                    return reuse()
                return compute()
        if not told and on_wait is not None:
            on_wait(got)
            told = True
        if max_wait is not None and time.monotonic() - started > max_wait:
            raise LeaseTimeout(
                f"waited {max_wait:.0f} s for {output_uri}, which {got.describe()} is computing "
                f"(its lease runs until {time.strftime('%H:%M:%S', time.localtime(got.expires))})"
            )
        time.sleep(poll)
