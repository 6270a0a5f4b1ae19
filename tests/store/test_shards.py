"""videolstm.store.shards: per-video Parquet files, one row per step, raw or JPEG cells, snippet reads."""

from __future__ import annotations

import io
import json
import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from videolstm.store import shards


def _row(rng: np.random.Generator, frames: int = 5) -> dict:
    return {
        "video_id": "Class/v_Class_g01_c01",
        "label": 3,
        "score": 0.25,
        "ok": True,
        "frames": rng.integers(0, 256, (frames, 8, 6, 3), dtype=np.uint8),
        "pool5": rng.standard_normal((frames, 4, 7, 7)).astype(np.float16),
        "logits": rng.standard_normal((frames, 5)).astype(np.float32),
    }


def test_round_trip_keeps_shapes_dtypes_values_and_scalars(tmp_path):
    row = _row(np.random.default_rng(0))
    uri = str(tmp_path / "a.parquet")
    size = shards.write_shard(uri, row)
    assert size == os.path.getsize(uri) > 0
    back = shards.read_shard(uri)
    assert set(back) == set(row)
    for name in ("frames", "pool5", "logits"):
        assert back[name].dtype == row[name].dtype and back[name].shape == row[name].shape
        np.testing.assert_array_equal(back[name], row[name])  # exact, float16 included
    assert back["video_id"] == "Class/v_Class_g01_c01" and back["label"] == 3
    assert back["score"] == 0.25 and back["ok"] is True
    assert isinstance(back["label"], int)


def test_round_trip_of_a_non_contiguous_array(tmp_path):
    array = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4).transpose(0, 2, 1)
    uri = str(tmp_path / "t.parquet")
    shards.write_shard(uri, {"x": array})
    np.testing.assert_array_equal(shards.read_shard(uri)["x"], array)


@pytest.mark.parametrize("dtype", [np.uint8, np.float16, np.float32])
def test_zero_steps_round_trip_with_the_step_shape_and_type(tmp_path, dtype):
    """A video without flow (T=0) still writes and reads back (0, *S) of its dtype."""
    uri = str(tmp_path / "empty.parquet")
    empty = np.zeros((0, 4, 4, 2), dtype=dtype)
    shards.write_shard(uri, {"flow": empty, "num_flow": 0})
    back = shards.read_shard(uri)["flow"]
    assert back.shape == (0, 4, 4, 2) and back.dtype == dtype


def test_plain_pyarrow_reads_one_row_per_step_and_the_metadata(tmp_path):
    row = _row(np.random.default_rng(1), frames=20)
    uri = str(tmp_path / "a.parquet")
    shards.write_shard(uri, row, chunk_steps=8)
    table = pq.read_table(uri)  # no videolstm code involved from here on
    assert table.num_rows == 20
    meta = table.schema.metadata
    assert meta[b"videolstm.shard_version"] == shards.SHARD_VERSION.encode() == b"2"
    spec = json.loads(meta[b"videolstm.columns"])["pool5"]
    assert spec == {"dtype": "<f2", "shape": [4, 7, 7], "length": 20, "codec": "raw"}
    assert json.loads(meta[b"videolstm.scalars"])["label"] == 3
    cells = table.column("pool5").combine_chunks()
    assert cells.type == pa.binary(4 * 7 * 7 * 2)
    np.testing.assert_array_equal(np.frombuffer(cells[7].as_py(), np.float16).reshape(4, 7, 7), row["pool5"][7])
    assert pq.ParquetFile(uri).metadata.num_row_groups == 3  # 8 + 8 + 4 steps


def test_a_snippet_read_equals_the_full_read_sliced(tmp_path):
    rng = np.random.default_rng(5)
    row = {
        "rgb_pool5": np.maximum(rng.standard_normal((47, 16, 7, 7)), 0).astype(np.float16),
        "flow_pool5": rng.standard_normal((47, 16, 7, 7)).astype(np.float16),
        "label": 2,
    }
    uri = str(tmp_path / "f.parquet")
    shards.write_shard(uri, row, chunk_steps=6)
    full = shards.read_shard(uri)
    for idx in (np.arange(10, 40), np.arange(0, 30), np.arange(17, 47), np.minimum(np.arange(30), 46), np.array([46, 0, 13, 13])):
        part = shards.read_shard(uri, columns=["rgb_pool5", "flow_pool5"], steps=idx)
        for name in ("rgb_pool5", "flow_pool5"):
            assert part[name].dtype == np.float16
            np.testing.assert_array_equal(part[name], full[name][idx])


def test_steps_out_of_range_are_refused_naming_the_column(tmp_path):
    uri = str(tmp_path / "f.parquet")
    shards.write_shard(uri, {"x": np.zeros((5, 2), np.float32)})
    with pytest.raises(IndexError, match="'x' has 5 steps"):
        shards.read_shard(uri, steps=[4, 5])


def test_jpeg_columns_round_trip_within_jpeg_error_and_decode_only_the_asked_steps(tmp_path):
    rng = np.random.default_rng(6)
    # smooth images (JPEG's domain): gradients plus a little noise
    yy, xx = np.mgrid[0:48, 0:64]
    frames = np.stack([np.stack([(xx * 3 + t) % 256, (yy * 4) % 256, (xx + yy + 2 * t) % 256], -1) for t in range(9)]).astype(np.uint8)
    flow = np.clip(127 + rng.normal(0, 2, (8, 48, 64, 2)), 0, 255).astype(np.uint8)
    uri = str(tmp_path / "ff.parquet")
    shards.write_shard(uri, {"frames": shards.Jpeg(frames, quality=95), "flow": shards.Jpeg(flow, quality=95, planes=True)}, chunk_steps=4)
    table = pq.read_table(uri)
    assert set(table.column_names) == {"frames", "flow_0", "flow_1"} and table.num_rows == 9
    assert table.column("flow_0").null_count == 1  # T-1 flow fields, the last row empty
    back = shards.read_shard(uri)
    assert back["frames"].shape == frames.shape and back["flow"].shape == flow.shape
    assert np.abs(back["frames"].astype(int) - frames).mean() < 4
    assert np.abs(back["flow"].astype(int) - flow).mean() < 3
    part = shards.read_shard(uri, columns=["frames", "flow"], steps=[7, 2])
    np.testing.assert_array_equal(part["frames"], back["frames"][[7, 2]])
    np.testing.assert_array_equal(part["flow"], back["flow"][[7, 2]])


def test_a_version_1_shard_is_refused_with_the_fix(tmp_path):
    uri = str(tmp_path / "old.parquet")
    table = pa.table({"label": [1]}).replace_schema_metadata({"videolstm.shard_version": "1"})
    pq.write_table(table, uri)
    with pytest.raises(shards.ShardVersionError, match="version 1.*reads version 2.*re-run the stage"):
        shards.read_shard(uri)


def test_column_projection_returns_only_the_requested_columns(tmp_path):
    uri = str(tmp_path / "a.parquet")
    shards.write_shard(uri, _row(np.random.default_rng(2)))
    assert set(shards.read_shard(uri, columns=["label", "pool5"])) == {"label", "pool5"}
    assert shards.read_shard(uri, columns=[]) == {}


class CountingFile(io.FileIO):
    """A local file that counts the bytes read from it."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.bytes = 0

    def read(self, size=-1):
        data = super().read(size)
        self.bytes += len(data)
        return data

    def readinto(self, buffer):
        n = super().readinto(buffer)
        self.bytes += n or 0
        return n

    def readall(self):
        data = super().readall()
        self.bytes += len(data)
        return data


def _bytes_read(uri, columns=None, steps=None):
    with CountingFile(uri) as fh:
        reader = shards.ShardReader(uri, fh)
        fh.bytes = 0  # the footer is cached by real readers; count the data only
        out = reader.read(columns, steps)
        return fh.bytes, out, reader


def test_column_projection_does_not_read_the_other_columns_bytes(tmp_path):
    uri = str(tmp_path / "big.parquet")
    frames = np.random.default_rng(3).integers(0, 256, (40, 56, 56, 3), dtype=np.uint8)  # incompressible
    shards.write_shard(uri, {"label": 1, "frames": frames, "other": frames[:, :28]})
    size = os.path.getsize(uri)
    label_only, out, _ = _bytes_read(uri, ["label"])
    assert out == {"label": 1} and label_only == 0
    frames_only, _, _ = _bytes_read(uri, ["frames"])
    assert size * 0.6 < frames_only < size * 0.7


def test_a_snippet_read_touches_only_the_row_groups_holding_it(tmp_path):
    uri = str(tmp_path / "video.parquet")
    x = np.random.default_rng(7).standard_normal((180, 32, 7, 7)).astype(np.float16)  # incompressible
    shards.write_shard(uri, {"x": x}, chunk_steps=8, compression="none")
    whole, _, _ = _bytes_read(uri, ["x"])
    idx = np.arange(50, 80)  # steps 50..79: row groups 6..9 (steps 48..79)
    part, out, reader = _bytes_read(uri, ["x"], idx)
    np.testing.assert_array_equal(out["x"], x[idx])
    assert list(reader.groups_of(idx)) == [6, 7, 8, 9]
    step_bytes = x[0].nbytes
    assert 32 * step_bytes <= part < 33 * step_bytes  # 4 groups of 8 steps, not 180 steps
    assert whole > 180 * step_bytes


def test_a_one_dimensional_array_is_refused():
    with pytest.raises(ValueError, match=r"\(T, \*S\)"):
        shards.to_table({"x": np.arange(3)})


def test_a_plain_parquet_file_is_refused_naming_it(tmp_path):
    uri = str(tmp_path / "two.parquet")
    pq.write_table(pa.table({"label": [1, 2]}), uri)
    with pytest.raises(shards.ShardVersionError, match="two.parquet.*version"):
        shards.read_shard(uri)


def test_reading_a_missing_shard_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        shards.read_shard(str(tmp_path / "nope.parquet"))


def test_a_failed_write_leaves_no_shard(tmp_path):
    uri = str(tmp_path / "s" / "a.parquet")
    with pytest.raises((TypeError, pa.ArrowInvalid, pa.ArrowTypeError)):
        shards.write_shard(uri, {"label": 1, "bad": object()})
    assert not os.path.exists(uri)
    leftovers = os.listdir(tmp_path / "s") if (tmp_path / "s").exists() else []
    assert leftovers == []


@pytest.mark.integration
def test_round_trip_and_projection_on_s3(moto_s3):
    storage, bucket = moto_s3
    uri = f"s3://{bucket}/features/shards/a.parquet"
    row = _row(np.random.default_rng(4))
    shards.write_shard(uri, row, storage)
    back = shards.read_shard(uri, storage=storage)
    np.testing.assert_array_equal(back["pool5"], row["pool5"])
    np.testing.assert_array_equal(back["frames"], row["frames"])
    assert shards.read_shard(uri, columns=["label"], storage=storage) == {"label": 3}
