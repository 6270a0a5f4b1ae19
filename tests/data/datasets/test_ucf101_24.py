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

DATA = Path(__file__).resolve().parents[2] / "fixtures"  # copies of the real files in shared/data
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
    assert globals_in(Path(REAL).read_bytes()) == {
        "numpy.ndarray", "numpy.dtype", "numpy.core.multiarray._reconstruct", "numpy.core.multiarray.scalar"
    }
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
        b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85" + _sbs(b"b") + b"\x87R"
        + b"(K\x01K\x01K\x04\x86" + dtype + b"\x89" + _sbs(raw) + b"tb"
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
