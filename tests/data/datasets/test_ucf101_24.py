"""UCF101-24 annotations: the real pyannot.pkl, the restricted unpickler, schema errors, writing."""

from __future__ import annotations

import builtins
import collections
import os
import pickle
import pickletools
from pathlib import Path

import numpy as np
import pytest

from videolstm.data.datasets import (
    Tube,
    UnsafePickleError,
    VideoAnnotation,
    load_ucf101_24,
    load_ucf101_24_numf,
    read_ucf101_24,
    write_ucf101_24,
)
from videolstm.data.datasets.shipped import METADATA

DATA = METADATA  # the real files, shipped in the package (videolstm/data/datasets/metadata/README.md)
REAL = str(DATA / "ucf101_24" / "pyannot.pkl")
REAL_TESTLIST = DATA / "ucf101_24" / "testlist01.txt"


@pytest.fixture(scope="module")
def real() -> dict[str, VideoAnnotation]:
    return read_ucf101_24(REAL)


def globals_in(data: bytes) -> set[str]:
    return {arg.replace(" ", ".") for op, arg, _ in pickletools.genops(data) if op.name == "GLOBAL"}


def test_real_file_counts_and_classes(real: dict[str, VideoAnnotation]) -> None:
    assert len(real) == 3194
    assert sum(len(v.tubes) for v in real.values()) == 4458
    assert sum(t.boxes.shape[0] for v in real.values() for t in v.tubes) == 573862
    assert sum(v.numf for v in real.values()) == 555157
    label_of_class = collections.defaultdict(set)
    for video_id, video in real.items():
        label_of_class[video_id.split("/")[0]].add(video.label)
        assert all(t.label == video.label for t in video.tubes)
    assert len(label_of_class) == 24 and all(len(s) == 1 for s in label_of_class.values())
    assert sorted(next(iter(s)) for s in label_of_class.values()) == list(range(24))
    assert label_of_class["Basketball"] == {0} and label_of_class["WalkingWithDog"] == {23}


def test_real_file_frames_are_zero_based_with_exclusive_end(real: dict[str, VideoAnnotation]) -> None:
    tubes = [(v.numf, t) for v in real.values() for t in v.tubes]
    assert all(t.frames.dtype == np.int64 and np.array_equal(t.frames, np.arange(t.frames[0], t.frames[-1] + 1)) for _, t in tubes)
    assert all(t.frames[-1] + 1 <= numf for numf, t in tubes)  # ef <= numf
    assert sum(t.frames[0] == 0 for _, t in tubes) == 2904  # 0-based: 1-based files never start at 0
    assert sum(t.frames[-1] + 1 == numf for numf, t in tubes) == 2744  # ef == numf: runs to the last frame


def test_real_boxes_are_xyxy_in_320x240_without_uint8_wraparound(real: dict[str, VideoAnnotation]) -> None:
    boxes = np.concatenate([t.boxes for v in real.values() for t in v.tubes])
    assert boxes.dtype == np.float64 and boxes.shape == (573862, 4)
    assert boxes[:, 0].min() == 1 and boxes[:, 1].min() == 1
    assert boxes[:, 2].max() == 320 and boxes[:, 3].max() == 240
    assert (boxes[:, 2] > boxes[:, 0]).all() and (boxes[:, 3] > boxes[:, 1]).all()
    # independent sums over the raw x, y, w, h (computed with int64 from the file's uint8/uint16 arrays)
    assert boxes[:, 0].sum() == 67475860 and boxes[:, 1].sum() == 31222646
    assert (boxes[:, 2] - boxes[:, 0]).sum() == 46500264 and (boxes[:, 3] - boxes[:, 1]).sum() == 74332105
    first = real["Basketball/v_Basketball_g01_c01"].tubes[0]
    assert first.frames[0] == 8 and first.frames[-1] == 51
    assert first.boxes[0].tolist() == [189, 102, 189 + 47, 102 + 78]  # uint8 189 + 47 would wrap


def test_real_testlist_videos_are_annotated_and_numf_helpers_agree(real: dict[str, VideoAnnotation]) -> None:
    names = [n.strip() for n in REAL_TESTLIST.read_text().splitlines() if n.strip()]
    assert len(names) == 910 and set(names) <= set(real)
    numf = load_ucf101_24_numf(REAL)
    tubes = load_ucf101_24(REAL)
    assert numf["Basketball/v_Basketball_g01_c01"] == 141
    assert set(numf) == set(tubes) == set(real)
    assert all(isinstance(t, Tube) for ts in tubes.values() for t in ts)


def test_real_file_uses_numpy_core_names_and_writer_uses_numpy_core_private(tmp_path: Path) -> None:
    assert globals_in(Path(REAL).read_bytes()) == {"numpy.ndarray", "numpy.dtype", "numpy.core.multiarray._reconstruct", "numpy.core.multiarray.scalar"}
    out = tmp_path / "small.pkl"
    write_ucf101_24({"A/v_A_g01_c01": VideoAnnotation(5, 0, [Tube(0, np.arange(1, 3), np.array([[1.0, 2, 3, 4], [1, 2, 3, 5]]))])}, str(out))
    written = globals_in(out.read_bytes())
    assert "numpy._core.multiarray._reconstruct" in written and out.read_bytes()[:2] == b"\x80\x02"
    assert read_ucf101_24(str(out))["A/v_A_g01_c01"].tubes[0].boxes.tolist() == [[1, 2, 3, 4], [1, 2, 3, 5]]


def _sbs(b: bytes) -> bytes:  # Python 2 str: SHORT_BINSTRING
    return b"U" + bytes([len(b)]) + b


def python2_pickle() -> bytes:
    """What Python 2 + numpy 1.x wrote: protocol 2, str (not bytes) keys and array payloads."""
    dtype = b"cnumpy\ndtype\n" + _sbs(b"u1") + b"K\x00K\x01\x87R(K\x03" + _sbs(b"|") + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb"
    raw = bytes([10, 20, 250, 30])  # w = 250: x + w = 260 would wrap in uint8
    array = (
        b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85"
        + _sbs(b"b")
        + b"\x87R"
        + b"(K\x01K\x01K\x04\x86"
        + dtype
        + b"\x89"
        + _sbs(raw)
        + b"tb"
    )
    tube = b"}(" + _sbs(b"label") + b"K\x02" + _sbs(b"sf") + b"K\x03" + _sbs(b"ef") + b"K\x04" + _sbs(b"boxes") + array + b"u"
    video = b"}(" + _sbs(b"numf") + b"K\x05" + _sbs(b"label") + b"K\x02" + _sbs(b"annotations") + b"](" + tube + b"eu"
    return b"\x80\x02}(" + _sbs(b"Biking/v_Biking_g01_c01") + video + b"u."


def test_python2_str_payloads_are_read_as_latin1(tmp_path: Path) -> None:
    path = tmp_path / "py2.pkl"
    path.write_bytes(python2_pickle())
    video = read_ucf101_24(str(path))["Biking/v_Biking_g01_c01"]
    assert (video.numf, video.label) == (5, 2)
    assert video.tubes[0].frames.tolist() == [3]
    assert video.tubes[0].boxes.tolist() == [[10, 20, 260, 50]]


class _Evil:
    def __init__(self, func, arg):
        self.func, self.arg = func, arg

    def __reduce__(self):
        return (self.func, (self.arg,))


@pytest.mark.parametrize(
    "func, protocol, shown",
    [(os.system, 2, "posix.system"), (builtins.eval, 2, "__builtin__.eval"), (builtins.eval, 4, "builtins.eval")],
)
def test_malicious_pickle_is_refused_and_nothing_runs(tmp_path: Path, func, protocol: int, shown: str) -> None:
    marker = tmp_path / "pwned"
    payload = f"touch {marker}" if func is os.system else f"open({str(marker)!r}, 'w').close()"
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"A/v_A_g01_c01": {"numf": _Evil(func, payload), "label": 0, "annotations": []}}, protocol=protocol))
    with pytest.raises(UnsafePickleError, match=rf"{path}: refusing to load global '{shown}'"):
        read_ucf101_24(str(path))
    assert not marker.exists()


def test_codecs_encode_is_admitted_only_for_latin1(tmp_path: Path) -> None:
    path = tmp_path / "rot13.pkl"
    path.write_bytes(b"\x80\x02c_codecs\nencode\nX\x03\x00\x00\x00abcX\x05\x00\x00\x00rot13\x86R.")
    with pytest.raises(UnsafePickleError, match=r"only allowed as encode\(<str>, 'latin1'\)"):
        read_ucf101_24(str(path))


def _write_raw(tmp_path: Path, obj) -> str:
    path = tmp_path / "bad.pkl"
    path.write_bytes(pickle.dumps(obj, protocol=2))
    return str(path)


def _video(**overrides):
    tube = {"label": 1, "sf": 2, "ef": 4, "boxes": np.ones((2, 4), np.uint8)}
    tube.update(overrides.pop("tube", {}))
    video = {"numf": 10, "label": 1, "annotations": [tube]}
    video.update(overrides)
    return {"Biking/v_Biking_g01_c01": video}


@pytest.mark.parametrize(
    "obj, message",
    [
        ([1, 2], r"top level is list, expected a dict"),
        ({"Biking/v_Biking_g01_c01": {"label": 1, "annotations": []}}, r"video 'Biking/v_Biking_g01_c01': missing key\(s\) \['numf'\]"),
        (_video(tube={"boxes": np.ones((2, 3))}), r"tube 0: boxes must be a numeric \(ef - sf, 4\) array .* got shape \(2, 3\)"),
        (_video(tube={"boxes": np.ones((3, 4))}), r"tube 0: len\(boxes\) = 3 but ef - sf = 2"),
        (_video(tube={"ef": 11, "boxes": np.ones((9, 4))}), r"tube 0: needs 0 <= sf < ef <= numf .* got sf=2, ef=11, numf=10"),
        (_video(tube={"sf": "2"}), r"tube 0: sf must be an integer, got str"),
        (_video(annotations={"label": 1}), r"annotations is dict, expected a list of tubes"),
        (_video(tube={"boxes": -np.ones((2, 4))}), r"negative width/height"),
    ],
)
def test_wrong_schema_raises_naming_the_video_and_problem(tmp_path: Path, obj, message: str) -> None:
    path = _write_raw(tmp_path, obj)
    with pytest.raises(ValueError, match=message):
        read_ucf101_24(path)


def test_not_a_pickle_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "junk.pkl"
    path.write_bytes(b"this is not a pickle")
    with pytest.raises(ValueError, match=rf"{path} is not a readable pickle"):
        read_ucf101_24(str(path))


def test_write_round_trip_of_the_real_file(tmp_path: Path, real: dict[str, VideoAnnotation]) -> None:
    out = tmp_path / "copy.pkl"
    write_ucf101_24(real, str(out))
    back = read_ucf101_24(str(out))
    assert list(back) == list(real)
    for video_id, video in real.items():
        other = back[video_id]
        assert (other.numf, other.label, len(other.tubes)) == (video.numf, video.label, len(video.tubes))
        for a, b in zip(video.tubes, other.tubes):
            assert a.label == b.label and np.array_equal(a.frames, b.frames) and np.array_equal(a.boxes, b.boxes)


def test_write_float_boxes_and_refuse_gapped_frames(tmp_path: Path) -> None:
    boxes = np.array([[1.5, 2.25, 10.75, 20.5], [2.0, 3.0, 11.0, 21.0], [2.5, 3.5, 11.5, 21.5]])
    ann = {"Synth/v_Synth_g01_c01": VideoAnnotation(numf=8, label=3, tubes=[Tube(3, np.arange(4, 7), boxes)])}
    out = tmp_path / "synthetic.pkl"
    write_ucf101_24(ann, str(out))
    tube = load_ucf101_24(str(out))["Synth/v_Synth_g01_c01"][0]
    assert tube.frames.tolist() == [4, 5, 6]
    np.testing.assert_allclose(tube.boxes, boxes, rtol=0, atol=1e-12)
    gapped = {"Synth/v_Synth_g01_c01": VideoAnnotation(numf=8, label=3, tubes=[Tube(3, np.array([1, 3, 4]), boxes)])}
    with pytest.raises(ValueError, match=r"tube 0: frames must be consecutive"):
        write_ucf101_24(gapped, str(tmp_path / "gapped.pkl"))
    too_long = {"Synth/v_Synth_g01_c01": VideoAnnotation(numf=5, label=3, tubes=[Tube(3, np.arange(4, 7), boxes)])}
    with pytest.raises(ValueError, match=r"ef <= numf"):
        write_ucf101_24(too_long, str(tmp_path / "too_long.pkl"))
    assert not (tmp_path / "gapped.pkl").exists() and not (tmp_path / "too_long.pkl").exists()


# --------------------------------------------------------------------------------------------
# numpy inside the pickle: dtypes, array states, protocol 5, bounds (issue 15)

from tests.reliability import hostile  # noqa: E402
from videolstm.config import InputLimits  # noqa: E402
from videolstm.data.datasets.ucf101_24 import ARRAY_DTYPES, safe_unpickle  # noqa: E402


class _ForgedDtype:
    def __init__(self, code: str, state: tuple):
        self.code, self.state = code, state

    def __reduce__(self):
        return (np.dtype, (self.code, False, True), self.state)


class _ArrayWithState:
    def __init__(self, state: tuple):
        self.state = state

    def __reduce__(self):
        from numpy._core import multiarray

        return (multiarray._reconstruct, (np.ndarray, (0,), b"b"), self.state)


@pytest.mark.parametrize("dtype", ARRAY_DTYPES)
def test_every_allowed_array_dtype_loads_at_protocols_2_3_and_5(dtype: str) -> None:
    boxes = np.arange(8).reshape(2, 4).astype(dtype)
    for protocol in (2, 3, 5):
        data = pickle.dumps({"k": boxes, "big_endian": boxes.astype(boxes.dtype.newbyteorder(">"))}, protocol=protocol)
        loaded = safe_unpickle(data, "test.pkl")
        assert np.array_equal(loaded["k"], boxes) and loaded["k"].dtype == boxes.dtype
        assert np.array_equal(loaded["big_endian"], boxes)


@pytest.mark.parametrize(
    "value, words",
    [
        (np.array([object()], dtype=object), "dtype object"),
        (np.zeros(2, dtype=[("a", "u1"), ("b", "u2")]), "dtype void"),  # structured: 'V3' + fields
        (np.zeros(2, dtype="datetime64[s]"), "dtype datetime"),
        (np.zeros(2, dtype="V4"), "dtype void"),
        (np.zeros(2, dtype="S4"), "dtype bytes"),
        (np.zeros((2, 2), dtype="U3"), "for an array"),
        (np.zeros(2, dtype=np.complex128), "not a plain"),
        (np.zeros(2, dtype=np.bool_), "not a plain"),
    ],
)
def test_other_dtypes_are_refused_before_numpy_sees_the_state(value, words: str) -> None:
    for protocol in (2, 5):
        with pytest.raises(UnsafePickleError, match="refusing") as refused:
            safe_unpickle(pickle.dumps({"x": value}, protocol=protocol), "test.pkl")
        assert words in str(refused.value), str(refused.value)


def test_dtype_flags_from_the_pickle_are_never_applied() -> None:
    # 'u1' whose pickled flags claim object pointers (0x3F): the flags are dropped, the data stays bytes
    forged = _ArrayWithState((1, (8,), _ForgedDtype("u1", (3, "|", None, None, None, -1, -1, 0x3F)), False, b"A" * 8))
    loaded = safe_unpickle(pickle.dumps({"x": forged}, protocol=3), "test.pkl")["x"]
    assert loaded.dtype == np.uint8 and not loaded.dtype.hasobject and loaded.tolist() == [65] * 8
    with pytest.raises(UnsafePickleError, match="dtype object"):
        safe_unpickle(hostile.object_dtype_pickle(), "test.pkl")


@pytest.mark.parametrize(
    "state, words",
    [
        ((1, (10**12,), _ForgedDtype("u1", (3, "|", None, None, None, -1, -1, 0)), False, b"ab"), "needs 1000000000000 bytes"),
        ((1, (3,), _ForgedDtype("u2", (3, "<", None, None, None, -1, -1, 0)), False, b"ab"), "needs 6 bytes, the pickle holds 2"),
        ((1, (1, 1, 1, 1, 1), _ForgedDtype("u1", (3, "|", None, None, None, -1, -1, 0)), False, b"a"), "shape"),
        ((1, (1,), _ForgedDtype("u1", (3, "|", None, ("a",), {"a": 1}, -1, -1, 0)), False, b"a"), "structured"),
        ((1, (2,), _ForgedDtype("u1", (3, "|", None, None, None, -1, -1, 0)), False, [1, 2]), "data of type list"),
    ],
)
def test_array_states_that_do_not_match_their_bytes_are_refused(state, words: str) -> None:
    with pytest.raises(UnsafePickleError, match="refusing|needs") as refused:
        safe_unpickle(pickle.dumps({"x": _ArrayWithState(state)}, protocol=3), "test.pkl")
    assert words in str(refused.value)


def test_ndarray_is_a_name_not_a_constructor() -> None:
    class CallsNdarray:
        def __reduce__(self):
            return (np.ndarray, ((10**6, 10**6), "u1"))  # 1 TB if it were called

    with pytest.raises(ValueError, match="not a readable pickle"):
        safe_unpickle(pickle.dumps(CallsNdarray(), protocol=2), "test.pkl")


def test_out_of_band_protocol5_buffers_are_refused() -> None:
    buffers: list = []
    data = pickle.dumps(np.zeros(4, np.uint8), protocol=5, buffer_callback=buffers.append)
    with pytest.raises(ValueError, match="not a readable pickle"):
        safe_unpickle(data, "test.pkl")


def test_genuine_protocol5_file_reads_like_the_protocol3_one(tmp_path: Path) -> None:
    path = tmp_path / "p5.pkl"
    path.write_bytes(hostile.protocol5_pickle())
    video = read_ucf101_24(str(path))["C/v_C_g01_c01"]
    assert video.numf == 10 and video.tubes[0].boxes[0].tolist() == [10, 20, 40, 60]


@pytest.mark.parametrize(
    "obj, message",
    [
        (_video(tube={"boxes": [[1, 2, 3, 4]] * 2}), r"boxes is list, expected a numpy"),
        (_video(numf=10**12), r"numf is 1000000000000, beyond the 10000000 frames"),
    ],
)
def test_lists_for_arrays_and_huge_numbers_are_refused(tmp_path: Path, obj, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        read_ucf101_24(_write_raw(tmp_path, obj))


def test_one_box_array_shared_by_many_tubes_is_refused(tmp_path: Path) -> None:
    boxes = np.ones((2, 4), np.uint8)
    tube = {"label": 1, "sf": 2, "ef": 4, "boxes": boxes}
    obj = {"A/v_A_g01_c01": {"numf": 10, "label": 1, "annotations": [tube] * 1000}}  # 1000 references, one array
    with pytest.raises(ValueError, match="tube 1: boxes is the same array as another tube's"):
        read_ucf101_24(_write_raw(tmp_path, obj))


def test_size_limit_and_bounded_messages(tmp_path: Path) -> None:
    path = tmp_path / "big.pkl"
    path.write_bytes(hostile.padded_valid_pickle(300_000))
    with pytest.raises(ValueError, match=r"larger than 100000 bytes, the limit for this file \(dataset.limits.annotation_bytes\)"):
        read_ucf101_24(str(path), limits=InputLimits(annotation_bytes=100_000))
    assert len(read_ucf101_24(str(path))) > 100
    path.write_bytes(hostile.long_message_pickle())
    with pytest.raises(ValueError) as refused:
        read_ucf101_24(str(path))
    assert len(str(refused.value)) < 1000
    path.write_bytes(hostile.deep_numf_pickle(50_000))
    with pytest.raises(ValueError, match="numf must be an integer, got list"):
        read_ucf101_24(str(path))
