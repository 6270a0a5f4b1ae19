"""Per-video tensor shards: one Parquet file, one row, tensor columns.

Format (documented for anyone reading the data without this package): every array column
``name`` of shape (T, *S) is stored as ``list<arrow.fixed_shape_tensor(dtype, S)>`` — one list
element per time step, each a fixed-shape tensor (Arrow's canonical extension type, so plain
pyarrow reads it back). Scalars (str, int, float) are ordinary columns. The file's key/value
metadata holds ``videolstm.shard_version``.

Examples: the frames+flow stage writes ``frames`` (T, H, W, 3) uint8 and ``flow``
(T-1, H, W, 2) uint8; the feature stage writes ``rgb_pool5`` (T, C, 7, 7), ``rgb_fc7`` (T, D),
``rgb_logits`` (T, K) and the same for ``flow_*``.

One row per video keeps each video's write atomic (see :mod:`videolstm.store.storage`), which is
what makes a stage resumable and a retried worker harmless: the same video always lands at the
same URI, whole or not at all.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from videolstm.store import storage as st
from videolstm.config import StorageConfig

SHARD_VERSION = "1"


def tensor_list_array(array: np.ndarray) -> pa.ListArray:
    """(T, *S) array → a one-element ``list<fixed_shape_tensor(S)>`` Arrow array."""
    array = np.ascontiguousarray(array)
    if array.ndim < 2:
        raise ValueError(f"tensor columns need shape (T, *S) with at least 2 dims, got {array.shape}")
    if array.shape[0] == 0:
        # from_numpy_ndarray refuses empty arrays; build the same type (permutation included) by hand.
        value_type = pa.from_numpy_dtype(array.dtype)
        step_shape = list(array.shape[1:])
        tensor_type = pa.fixed_shape_tensor(value_type, step_shape, permutation=list(range(len(step_shape))))
        storage = pa.FixedSizeListArray.from_arrays(pa.array([], type=value_type), int(np.prod(step_shape)))
        tensors = pa.ExtensionArray.from_storage(tensor_type, storage)
    else:
        tensors = pa.FixedShapeTensorArray.from_numpy_ndarray(array)
    offsets = pa.array([0, array.shape[0]], type=pa.int32())
    return pa.ListArray.from_arrays(offsets, tensors)


def to_table(row: Mapping[str, Any]) -> pa.Table:
    """A one-row table from ``row``: numpy arrays become tensor columns, the rest scalars."""
    columns: dict[str, pa.Array] = {}
    for name, value in row.items():
        if isinstance(value, np.ndarray):
            columns[name] = tensor_list_array(value)
        else:
            columns[name] = pa.array([value])
    table = pa.table(columns)
    return table.replace_schema_metadata({"videolstm.shard_version": SHARD_VERSION})


def write_shard(uri: str, row: Mapping[str, Any], storage: StorageConfig | None = None) -> int:
    """Write one video's row to ``uri`` atomically; returns the file size in bytes."""
    table = to_table(row)
    with st.atomic_local_file(uri, storage, suffix=".parquet") as tmp:
        pq.write_table(table, tmp, compression="zstd")
        return os.path.getsize(tmp)


def column_to_numpy(column: pa.ChunkedArray | pa.Array) -> np.ndarray | Any:
    """A one-row column back to numpy: tensor lists → (T, *S) array, scalars → Python values."""
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if pa.types.is_list(array.type) and isinstance(array.type.value_type, pa.FixedShapeTensorType):
        values = array.values  # FixedShapeTensorArray of all steps of the (single) row
        start, stop = array.offsets[0].as_py(), array.offsets[1].as_py()
        tensor_type = array.type.value_type
        if stop == start:
            return np.zeros((0, *tensor_type.shape), dtype=tensor_type.value_type.to_pandas_dtype())
        return values.slice(start, stop - start).to_numpy_ndarray()
    return array[0].as_py()


def read_shard(uri: str, columns: Sequence[str] | None = None, storage: StorageConfig | None = None) -> dict[str, Any]:
    """Read a shard written by :func:`write_shard`; ``columns`` limits what is decoded."""
    with st.open_for_read(uri, storage) as fh:
        table = pq.read_table(fh, columns=list(columns) if columns is not None else None)
    if table.num_rows != 1:
        raise ValueError(f"{uri}: expected one row per shard, found {table.num_rows}")
    return {name: column_to_numpy(table.column(name)) for name in table.column_names}
