"""Stage manifests: what a stage produced per video, with status, reason and a content key.

Every stage output lives in one folder (a URI)::

    <stage>/manifest.parquet          one row per video (schema below), written atomically at the end
    <stage>/shards/<id>.<key>.parquet one tensor shard per finished video (see videolstm.store.shards)

Manifest columns: ``video_id``, ``label`` (int32), ``subset``, ``status`` ("ok" | "failed"),
``reason`` (empty when ok; otherwise what went wrong and what to fix), ``key`` (hash of the
item's inputs and the stage parameters), ``shard`` (URI, empty when failed), ``seconds`` and
integer count columns that depend on the stage (``num_frames``, ``num_flow``, ...).

Resuming: an item is skipped when the manifest holds it as "ok" with the same key, or — if the
previous run died before writing its manifest — when its shard for that key exists already
(shards are written atomically, so an existing shard is complete). Failed items are retried,
since their input may have been fixed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from videolstm.config import StorageConfig, stable_digest
from videolstm.store import shards
from videolstm.store import storage as st
from videolstm.store.safepath import under_root

BASE_COLUMNS = ("video_id", "label", "subset", "status", "reason", "key", "shard", "seconds")


@dataclass
class ItemResult:
    """The outcome of one video in one stage (one manifest row)."""

    video_id: str
    status: str  # "ok" | "failed"
    key: str
    label: int = -1
    subset: str = ""
    reason: str = ""
    shard: str = ""
    seconds: float = 0.0
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_row(self) -> dict[str, Any]:
        row = {
            "video_id": self.video_id,
            "label": int(self.label),
            "subset": self.subset,
            "status": self.status,
            "reason": self.reason,
            "key": self.key,
            "shard": self.shard,
            "seconds": float(self.seconds),
        }
        row.update({k: int(v) for k, v in self.counts.items()})
        return row

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> ItemResult:
        counts = {k: int(v) for k, v in row.items() if k not in BASE_COLUMNS and v is not None}
        return cls(
            video_id=row["video_id"],
            status=row["status"],
            key=row["key"],
            label=int(row["label"]),
            subset=row["subset"],
            reason=row["reason"] or "",
            shard=row["shard"] or "",
            seconds=float(row["seconds"] or 0.0),
            counts=counts,
        )


def item_key(*parts: Any) -> str:
    """Hash of an item's inputs and parameters (16 hex digits)."""
    return stable_digest(list(parts), 16)


def safe_name(video_id: str) -> str:
    """A file-name-safe form of a video id (``Class/v_x`` → ``Class__v_x``)."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", video_id.replace("/", "__"))


class StageDir:
    """The output folder of one stage: shard URIs, manifest read/write, resume planning."""

    def __init__(self, uri: str, storage: StorageConfig | None = None):
        self.uri = st.absolute(uri)
        self.storage = storage

    @property
    def manifest_uri(self) -> str:
        return st.join(self.uri, "manifest.parquet")

    @property
    def shards_uri(self) -> str:
        return st.join(self.uri, "shards")

    def shard_uri(self, video_id: str, key: str) -> str:
        return under_root(self.shards_uri, [f"{safe_name(video_id)}.{key}.parquet"], f"shard of video {video_id!r}")

    def read_manifest(self) -> list[ItemResult]:
        """The manifest's rows ([] when the stage never finished)."""
        if not st.exists(self.manifest_uri, self.storage):
            return []
        return read_manifest(self.manifest_uri, self.storage)

    def write_manifest(self, results: Iterable[ItemResult]) -> str:
        return write_manifest(self.manifest_uri, results, self.storage)

    def plan(self, keys: Mapping[str, str], count_columns: Sequence[str] = ()) -> tuple[list[str], dict[str, ItemResult]]:
        """Split ``keys`` (video_id → key) into ids still to do and results to reuse.

        Reused: "ok" rows of the manifest with the same key whose shard exists; and shards of
        the same key present on storage without a manifest row (a run that died before
        writing its manifest) — their counts are read back from the shard's scalar columns.
        """
        previous = {r.video_id: r for r in self.read_manifest()}
        present = set(st.list_files(self.shards_uri, self.storage, suffix=".parquet"))
        reuse: dict[str, ItemResult] = {}
        todo: list[str] = []
        for video_id, key in keys.items():
            shard = self.shard_uri(video_id, key)
            old = previous.get(video_id)
            if old is not None and old.ok and old.key == key and shard in present:
                reuse[video_id] = old
            elif shard in present:
                reuse[video_id] = self._recover(video_id, key, shard, count_columns)
            else:
                todo.append(video_id)
        return todo, reuse

    def _recover(self, video_id: str, key: str, shard: str, count_columns: Sequence[str]) -> ItemResult:
        meta = shards.read_shard(shard, columns=["label", "subset", *count_columns], storage=self.storage)
        return ItemResult(
            video_id=video_id,
            status="ok",
            key=key,
            label=int(meta["label"]),
            subset=str(meta["subset"]),
            shard=shard,
            counts={c: int(meta[c]) for c in count_columns},
        )


def write_manifest(uri: str, results: Iterable[ItemResult], storage: StorageConfig | None = None) -> str:
    """Write the manifest atomically, rows sorted by video id; returns ``uri``."""
    rows = sorted((r.to_row() for r in results), key=lambda r: r["video_id"])
    count_names = sorted({k for r in rows for k in r if k not in BASE_COLUMNS})
    schema = pa.schema(
        [
            ("video_id", pa.string()),
            ("label", pa.int32()),
            ("subset", pa.string()),
            ("status", pa.string()),
            ("reason", pa.string()),
            ("key", pa.string()),
            ("shard", pa.string()),
            ("seconds", pa.float64()),
            *[(name, pa.int64()) for name in count_names],
        ]
    )
    table = pa.Table.from_pylist([{**{c: None for c in count_names}, **r} for r in rows], schema=schema)
    with st.atomic_local_file(uri, storage, suffix=".parquet") as tmp:
        pq.write_table(table, tmp)
    return uri


def read_manifest(uri: str, storage: StorageConfig | None = None) -> list[ItemResult]:
    with st.open_for_read(uri, storage) as fh:
        table = pq.read_table(fh)
    return [ItemResult.from_row(row) for row in table.to_pylist()]


def failure_summary(results: Iterable[ItemResult], manifest_uri: str, stage: str) -> str:
    """A human summary of failed items ("" when none failed)."""
    failed = [r for r in results if not r.ok]
    if not failed:
        return ""
    lines = [f"{stage}: {len(failed)} item(s) failed (recorded in {manifest_uri}):"]
    lines += [f"  - {r.video_id}: {r.reason}" for r in sorted(failed, key=lambda r: r.video_id)]
    return "\n".join(lines)
