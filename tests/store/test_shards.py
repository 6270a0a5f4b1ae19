"""videolstm.store.shards: one-row Parquet files with list<fixed_shape_tensor> columns."""

from __future__ import annotations

import contextlib
import io
import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from videolstm.store import shards
from videolstm.store import storage as st


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
def test_zero_steps_round_trip_with_the_step_shape_and_type_of_a_non_empty_column(tmp_path, dtype):
    """A video without flow (T=0) still writes, reads back (0, *S) and has the same Arrow type."""
    uri = str(tmp_path / "empty.parquet")
    empty = np.zeros((0, 4, 4, 2), dtype=dtype)
    shards.write_shard(uri, {"flow": empty, "num_flow": 0})
    back = shards.read_shard(uri)["flow"]
    assert back.shape == (0, 4, 4, 2) and back.dtype == dtype
    assert shards.tensor_list_array(empty).type == shards.tensor_list_array(np.ones((3, 4, 4, 2), dtype)).type


def test_plain_pyarrow_reads_list_of_fixed_shape_tensor(tmp_path):
    row = _row(np.random.default_rng(1), frames=4)
    uri = str(tmp_path / "a.parquet")
    shards.write_shard(uri, row)
    table = pq.read_table(uri)  # no videolstm code involved from here on
    assert table.num_rows == 1
    assert table.schema.metadata[b"videolstm.shard_version"] == shards.SHARD_VERSION.encode()
    column_type = table.schema.field("pool5").type
    assert pa.types.is_list(column_type)
    tensor_type = column_type.value_type
    assert isinstance(tensor_type, pa.FixedShapeTensorType)
    assert tensor_type.extension_name == "arrow.fixed_shape_tensor"
    assert tuple(tensor_type.shape) == (4, 7, 7) and tensor_type.value_type == pa.float16()
    steps = table.column("pool5").chunk(0).values
    assert len(steps) == 4
    np.testing.assert_array_equal(steps.to_numpy_ndarray(), row["pool5"])
    assert table.schema.field("label").type == pa.int64()
    assert table.schema.field("video_id").type == pa.string()


def test_column_projection_returns_only_the_requested_columns(tmp_path):
    uri = str(tmp_path / "a.parquet")
    shards.write_shard(uri, _row(np.random.default_rng(2)))
    assert set(shards.read_shard(uri, columns=["label", "pool5"])) == {"label", "pool5"}
    assert shards.read_shard(uri, columns=[]) == {}


def test_column_projection_does_not_read_the_other_columns_bytes(tmp_path, monkeypatch):
    uri = str(tmp_path / "big.parquet")
    frames = np.random.default_rng(3).integers(0, 256, (40, 56, 56, 3), dtype=np.uint8)  # incompressible
    shards.write_shard(uri, {"label": 1, "frames": frames})
    read = {"bytes": 0}

    class CountingFile(io.FileIO):
        def read(self, size=-1):
            data = super().read(size)
            read["bytes"] += len(data)
            return data

        def readinto(self, buffer):
            n = super().readinto(buffer)
            read["bytes"] += n or 0
            return n

        def readall(self):
            data = super().readall()
            read["bytes"] += len(data)
            return data

    @contextlib.contextmanager
    def counting_open(u, storage=None):
        with CountingFile(st.local_path(u)) as fh:
            yield fh

    monkeypatch.setattr(shards.st, "open_for_read", counting_open)
    assert shards.read_shard(uri, columns=["label"]) == {"label": 1}
    label_only = read["bytes"]
    read["bytes"] = 0
    shards.read_shard(uri)
    everything = read["bytes"]
    size = os.path.getsize(uri)
    assert everything >= size * 0.95
    assert label_only < size * 0.4


def test_a_one_dimensional_array_is_refused():
    with pytest.raises(ValueError, match=r"\(T, \*S\)"):
        shards.to_table({"x": np.arange(3)})


def test_a_file_with_several_rows_is_refused_naming_it(tmp_path):
    uri = str(tmp_path / "two.parquet")
    pq.write_table(pa.table({"label": [1, 2]}), uri)
    with pytest.raises(ValueError, match="two.parquet.*one row"):
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
