"""The remote shard file's prefetch serves exactly the file's bytes (issue 26).

``_SpanFile`` is what pyarrow reads a remote shard through: after ``prefetch(start, end)``, reads
inside [start, end) come from memory, every other read from the file. Whatever the read's position
and length relative to the prefetched span, it must return the file's bytes at [pos, pos + n)
and move the position by what it returned. Checked on fsspec's in-memory filesystem (a real
fsspec file with ``size``, like s3fs's) with a file far larger than the span.
"""

from __future__ import annotations

import os
import uuid

import fsspec
import numpy as np
import pytest

from videolstm.store.shards import _SpanFile

SIZE = 64 * 1024
SPAN = (10_000, 20_000)


@pytest.fixture
def remote():
    fs = fsspec.filesystem("memory")
    path = f"/span-{uuid.uuid4().hex}.bin"
    content = np.random.default_rng(0).integers(0, 256, SIZE, dtype=np.uint8).tobytes()
    with fs.open(path, "wb") as fh:
        fh.write(content)
    span = _SpanFile(fs.open(path, "rb"))
    span.prefetch(*SPAN)
    yield span, content
    span.close()
    fs.rm(path)


@pytest.mark.parametrize(
    ("pos", "n"),
    [
        (12_000, 500),  # inside the span
        (10_000, 10_000),  # exactly the span
        (19_000, 5_000),  # starts inside, ends past the span
        (19_999, 2),  # last prefetched byte and the next one
        (9_000, 2_000),  # starts before, ends inside
        (5_000, 30_000),  # covers the span and more on both sides
        (40_000, 1_000),  # outside
        (SIZE - 100, 1_000),  # runs past the end of the file: only what exists
        (SIZE, 10),  # at the end: nothing
    ],
)
def test_a_read_returns_the_files_bytes_wherever_it_lies(remote, pos, n):
    span, content = remote
    assert span.seek(pos) == pos
    buffer = bytearray(n)
    got = span.readinto(buffer)
    expected = content[pos : pos + n]
    assert got == len(expected)
    assert bytes(buffer[:got]) == expected
    assert span.tell() == pos + got


def test_consecutive_reads_across_the_span_edge_reassemble_the_file(remote):
    span, content = remote
    span.seek(SPAN[1] - 3000)
    out = b"".join(span.read(1024) for _ in range(6))
    assert out == content[SPAN[1] - 3000 : SPAN[1] - 3000 + 6 * 1024]


def test_seek_from_the_current_position_and_from_the_end(remote):
    span, content = remote
    span.seek(SPAN[0])
    assert span.seek(100, os.SEEK_CUR) == SPAN[0] + 100
    assert span.read(10) == content[SPAN[0] + 100 : SPAN[0] + 110]
    assert span.seek(-50, os.SEEK_END) == SIZE - 50
    assert span.read() == content[-50:]
    assert span.readable() and span.seekable()
