"""UCF101-24 spatio-temporal annotations (the corrected ``pyannot.pkl``), read safely.

File format (github.com/gurkirt/corrected-UCF101-Annots, ``pyannot.pkl``): a pickle of ::

    {
      "Basketball/v_Basketball_g01_c01": {          # video_id: UCF101 split path, no extension
          "numf": 141,                              # frames in the video (numpy uint8/uint16 scalar)
          "label": 0,                               # 0-based UCF101-24 class (24 classes)
          "annotations": [                          # one dict per action tube
              {"label": 0, "sf": 8, "ef": 52,       # first frame, end frame (exclusive)
               "boxes": ndarray (ef - sf, 4)},      # x, y, w, h per frame, uint8 or uint16
              ...],
      },
      ...
    }

What the shipped file shows (checked by ``tests/datasets/test_ucf101_24.py``): 3,194 videos,
24 classes (labels 0..23, one label per class folder), 4,458 tubes, 573,862 boxes. Frame
indices are 0-based and ``ef`` is exclusive: ``len(boxes) == ef - sf`` for every tube,
``sf == 0`` for 2,904 tubes (a 1-based file could not start at 0) and ``ef <= numf`` always,
with ``ef == numf`` for 2,744 tubes (a tube running to the last frame). Boxes are
``x, y, w, h`` in 320x240 pixels: ``min(x, y) == 1`` and ``max(x + w) == 320``,
``max(y + h) == 240``, so ``x2 = x + w`` is the right edge, exclusive. The boxes and ``numf``
are stored as **uint8/uint16**: ``x + w`` in uint8 wraps around (189 + 78 = 11), so they are
converted to float64 before adding. The tube label always equals the video label in this file.
Despite being called a Python 2 pickle, the shipped file is pickle protocol 3.

A pickle can execute code when loaded, so it is read with a restricted unpickler that admits
only the globals such a file needs: ``numpy.ndarray``, ``numpy.dtype`` and
``numpy.core.multiarray._reconstruct`` / ``.scalar`` (numpy 2 writes ``numpy._core...``;
both spellings map to the installed numpy), plus ``_codecs.encode`` restricted to latin-1 (how
Python 3 writes bytes at protocol 2), and ``numpy._core.numeric._frombuffer`` for numpy's
protocol-5 pickles (in-band buffers). Python 2 ``str`` payloads are decoded as latin-1. Any
other global (``os.system``, ``builtins.eval``, ...) raises :class:`UnsafePickleError` naming
the global and the file; nothing it names is ever called.

The numpy globals do not reach numpy as they are: a pickle can describe an array whose dtype
state marks it as holding object pointers while its data is raw bytes (a 300-byte file that
crashed the process with SIGSEGV when printed). So ``numpy.dtype`` yields a description that is
checked (a plain code ``u1``/``u2``/``i4``/``i8``/``f4``/``f8``, byte order only: the pickled
``flags``, fields and sub-arrays are never applied), ``numpy.ndarray`` is a name, not a
constructor, and an array's state is checked — dtype in :data:`ARRAY_DTYPES` (string dtypes only
for scalars: the real file's keys are numpy ``str_``), at most 4 dimensions, a size that matches
its bytes exactly — before numpy applies any of it. Nothing is allocated beyond the bytes in
the file, which is itself capped (``dataset.limits.annotation_bytes``). A box array shared by
several tubes through the pickle memo, a nested list where an array belongs (``np.asarray``
would expand it), and integers beyond :data:`MAX_FRAMES` are refused. Memory and recursion
errors become ValueErrors, and every untrusted value in a message is cut short
(:func:`videolstm.messages.short_repr`).

Why not convert ``pyannot.pkl`` once to a non-executable format (npz / Parquet)? The file must
still be parsed once, by this same reader, so the conversion would narrow nothing; it would add
a second format, a cache to invalidate when the pickle changes, and a step users could skip.
The reader above admits a strict subset of pickle that cannot run code or build objects, and
reads the real file in well under a second, so the pipeline reads the original each time.

Returned structure: :class:`Tube` (``frames`` (N,) int64 0-based frame indices, ``boxes``
(N, 4) float64 ``x1, y1, x2, y2``) grouped per video; :func:`read_ucf101_24` also gives
``numf`` and the video label (:class:`VideoAnnotation`).
"""

from __future__ import annotations

import dataclasses
import functools
import io
import numbers
import pickle
import re
from collections.abc import Mapping
from typing import Any

import numpy as np

from videolstm.config import InputLimits, StorageConfig
from videolstm.messages import redact, short_repr, shorten
from videolstm.store.storage import read_bytes, write_bytes


class UnsafePickleError(pickle.UnpicklingError):
    """The pickle names a global outside the allow-list; it was not loaded."""


@dataclasses.dataclass(frozen=True, eq=False)
class Tube:
    """One annotated action tube.

    Attributes:
        label: 0-based UCF101-24 class.
        frames: (N,) int64, 0-based frame indices (consecutive: ``sf .. ef-1``).
        boxes: (N, 4) float64, ``x1, y1, x2, y2`` in pixels with ``x2 = x + w``, ``y2 = y + h``.
    """

    label: int
    frames: np.ndarray
    boxes: np.ndarray


@dataclasses.dataclass(frozen=True, eq=False)
class VideoAnnotation:
    """All tubes of one video, with its frame count and label."""

    numf: int
    label: int
    tubes: list[Tube]


# --------------------------------------------------------------------------------------------
# Restricted unpickling

#: Array dtypes an annotation file may hold: the real file's (uint8, uint16), the synthetic
#: set's (int32) and what :func:`write_ucf101_24` or a re-pickling may produce (int64, float32,
#: float64). Never object, structured, void, string or datetime arrays.
ARRAY_DTYPES = ("uint8", "uint16", "int32", "int64", "float32", "float64")
#: Numpy scalars may also be strings: the real file's dict keys are numpy ``str_`` ('<U23').
MAX_STRING_SCALAR = 4096
#: Largest array dimension count (boxes are 2-D).
MAX_ARRAY_NDIM = 4
_DTYPE_CODE = re.compile(r"[<>|=]?(?P<kind>[uifU])(?P<size>\d{1,5})")


def _latin1_encode(obj: Any, encoding: str = "utf-8", errors: str = "strict") -> bytes:
    """``_codecs.encode`` as protocol-2 pickles use it (``encode(str, "latin1")``) and nothing else."""
    if not isinstance(obj, str) or not isinstance(encoding, str) or encoding.lower().replace("_", "-") not in ("latin1", "latin-1", "iso-8859-1"):
        raise UnsafePickleError(f"_codecs.encode is only allowed as encode(<str>, 'latin1'), got encoding {short_repr(encoding)}")
    return obj.encode("latin-1", "strict")


def _latin1_bytes(data: Any, source: str) -> Any:
    """Python 2 pickles carry array bytes as ``str`` (read as latin-1): back to the same bytes."""
    if isinstance(data, str):
        try:
            return data.encode("latin-1")
        except UnicodeEncodeError:
            raise UnsafePickleError(f"{source}: numpy array data is text beyond latin-1; not a numpy pickle") from None
    return data


class _NDArrayName:
    """What ``numpy.ndarray`` resolves to: a name ``_reconstruct`` checks, never a callable."""


_NDARRAY = _NDArrayName()


class _DTypeSpec:
    """A dtype as the pickle describes it (``numpy.dtype(code, align, copy)`` + its state).

    numpy never sees the pickled state: its ``flags`` field can mark a dtype as holding object
    pointers while its data arrives as raw bytes (the SIGSEGV of issue 15). Only the code (a
    plain ``[<>|=]`` + ``u``/``i``/``f``/``U`` + size) and the byte order are kept, checked, and
    a fresh dtype is built from them.
    """

    def __init__(self, source: str, code: Any, *_: Any) -> None:
        self.source = source
        if not isinstance(code, str) or not _DTYPE_CODE.fullmatch(code):
            shown = _dtype_label(code)
            raise UnsafePickleError(
                f"{source}: refusing numpy dtype {shown}; annotation arrays may only be "
                f"{', '.join(ARRAY_DTYPES)} (and numpy string scalars for keys). The file is not a genuine "
                "annotation file (or was tampered with): re-download pyannot.pkl from github.com/gurkirt/corrected-UCF101-Annots"
            )
        self.code = code
        self.byteorder = "="

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, tuple) or len(state) < 2 or not isinstance(state[1], str) or state[1] not in "<>|=":
            raise UnsafePickleError(f"{self.source}: refusing the state {short_repr(state)} of numpy dtype {self.code!r}")
        if any(part is not None for part in state[2:5]):  # subarray, names, fields: structured dtypes
            raise UnsafePickleError(f"{self.source}: refusing a structured / sub-array numpy dtype (state {short_repr(state)})")
        self.byteorder = state[1]

    def resolve(self, scalar: bool) -> np.dtype:
        """The real dtype; raises UnsafePickleError for anything but the allowed kinds."""
        dtype = _allowed_dtype(self.code, self.byteorder, scalar)
        if dtype is None:
            refused = np.dtype(self.code)
            raise UnsafePickleError(
                f"{self.source}: refusing numpy dtype {refused.str!r} ({refused.name}) for "
                f"{'a scalar' if scalar else 'an array'}; annotation arrays may only be {', '.join(ARRAY_DTYPES)}"
            )
        return dtype


@functools.lru_cache(maxsize=256)
def _allowed_dtype(code: str, byteorder: str, scalar: bool) -> np.dtype | None:
    """The dtype for a checked code and byte order, or None if it is not allowed (cached: the
    real file describes a dtype afresh for each of its ~6,400 scalars)."""
    dtype = np.dtype(code)
    if byteorder in "<>" and dtype.itemsize > 1:
        dtype = dtype.newbyteorder("<" if byteorder == "<" else ">")
    if dtype.kind == "U" and scalar and dtype.itemsize <= 4 * MAX_STRING_SCALAR:
        return dtype
    if dtype.kind in "uif" and dtype.name in ARRAY_DTYPES:
        return dtype
    return None


def _dtype_label(code: Any) -> str:
    """``'O8' (dtype object)`` for the message about a refused dtype code."""
    if isinstance(code, str) and len(code) <= 32:
        try:
            kind = np.dtype(code).kind if re.fullmatch(r"[<>|=]?[A-Za-z]\d{0,5}", code) else ""
        except TypeError:
            kind = ""
        names = {"O": "dtype object", "V": "dtype void", "S": "dtype bytes", "M": "dtype datetime", "m": "dtype timedelta"}
        return f"{code!r} ({names.get(kind, 'not a plain number type')})"
    return f"{short_repr(code)} (not a plain dtype code)"


def _check_shape(source: str, shape: Any, dtype: np.dtype, nbytes: int) -> tuple[int, ...]:
    """``shape`` as a tuple of ints whose size fits ``nbytes`` exactly (UnsafePickleError otherwise)."""
    if not isinstance(shape, tuple) or len(shape) > MAX_ARRAY_NDIM or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape):
        raise UnsafePickleError(f"{source}: refusing numpy array shape {short_repr(shape)} (at most {MAX_ARRAY_NDIM} sizes >= 0)")
    count = 1
    for n in shape:
        count *= n
    if count * dtype.itemsize != nbytes:
        raise UnsafePickleError(
            f"{source}: refusing a numpy array of shape {short_repr(shape)} and dtype {dtype.name}: it needs "
            f"{short_repr(count * dtype.itemsize)} bytes, the pickle holds {nbytes}; the file is corrupt or forged"
        )
    return shape


class _SafeArray(np.ndarray):
    """An array whose pickled state is checked before numpy applies it (dtype, shape, size)."""

    source = "annotation pickle"

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, tuple) or len(state) != 5:
            raise UnsafePickleError(f"{self.source}: refusing numpy array state {short_repr(state)}")
        version, shape, spec, fortran, data = state
        if not isinstance(spec, _DTypeSpec):
            raise UnsafePickleError(f"{self.source}: refusing a numpy array whose dtype is {short_repr(spec)}")
        dtype = spec.resolve(scalar=False)  # before any of the state is applied
        data = _latin1_bytes(data, self.source)
        if not isinstance(data, (bytes, bytearray)) or not isinstance(fortran, bool):
            raise UnsafePickleError(f"{self.source}: refusing numpy array data of type {type(data).__name__}")
        shape = _check_shape(self.source, shape, dtype, len(data))
        super().__setstate__((version, shape, dtype, fortran, bytes(data)))  # type: ignore[arg-type]  # numpy's stub wants numpy.bool


def _unpickling_globals(source: str) -> dict[tuple[str, str], Any]:
    try:
        from numpy._core import multiarray  # numpy >= 2 (and 1.26's forward-compat alias)
    except ImportError:  # pragma: no cover - numpy < 1.26
        from numpy.core import multiarray  # type: ignore[no-redef]

    def reconstruct(cls: Any, shape: Any, code: Any) -> _SafeArray:
        if cls is not _NDARRAY:
            raise UnsafePickleError(f"{source}: refusing to reconstruct {short_repr(cls)}; only numpy.ndarray")
        array = np.ndarray.__new__(_SafeArray, (0,), np.uint8)  # its real state comes checked, in __setstate__
        array.source = source
        return array

    def scalar(spec: Any, data: Any = None) -> Any:
        data = _latin1_bytes(data, source)
        if not isinstance(spec, _DTypeSpec) or not isinstance(data, bytes):
            raise UnsafePickleError(f"{source}: refusing numpy scalar ({short_repr(spec)}, {short_repr(data)})")
        dtype = spec.resolve(scalar=True)
        if len(data) != dtype.itemsize:
            raise UnsafePickleError(f"{source}: a numpy {dtype.name} scalar needs {dtype.itemsize} bytes, got {len(data)}")
        return multiarray.scalar(dtype, data)

    def frombuffer(buffer: Any, spec: Any, shape: Any, order: Any, axis_order: Any = None) -> np.ndarray:
        """Protocol-5 arrays (``numpy._core.numeric._frombuffer``), in-band buffers only."""
        if not isinstance(spec, _DTypeSpec) or not isinstance(buffer, (bytes, bytearray)) or order not in ("C", "F"):
            raise UnsafePickleError(f"{source}: refusing a protocol-5 numpy array ({short_repr(spec)}, order {short_repr(order)})")
        dtype = spec.resolve(scalar=False)
        shape = _check_shape(source, shape, dtype, len(buffer))
        if axis_order is not None and (not isinstance(axis_order, (list, tuple)) or sorted(axis_order) != list(range(len(shape)))):
            raise UnsafePickleError(f"{source}: refusing numpy axis order {short_repr(axis_order)}")
        array = np.frombuffer(bytes(buffer), dtype=dtype).reshape(shape, order=order)
        return array.transpose(axis_order) if axis_order is not None else array

    allowed: dict[tuple[str, str], Any] = {
        ("numpy", "ndarray"): _NDARRAY,
        ("numpy", "dtype"): lambda code, *args: _DTypeSpec(source, code, *args),
        ("_codecs", "encode"): _latin1_encode,
    }
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[(module, "_reconstruct")] = reconstruct
        allowed[(module, "scalar")] = scalar
    for module in ("numpy.core.numeric", "numpy._core.numeric"):
        allowed[(module, "_frombuffer")] = frombuffer
    return allowed


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, data: bytes, source: str) -> None:
        super().__init__(io.BytesIO(data), encoding="latin1")
        self.source = source
        self.allowed = _unpickling_globals(source)

    def find_class(self, module: str, name: str) -> Any:
        obj = self.allowed.get((module, name))
        if obj is None:
            raise UnsafePickleError(
                f"{self.source}: refusing to load global '{shorten(str(module), 100)}.{shorten(str(name), 100)}'; a UCF101-24 "
                "annotation pickle only needs numpy arrays, dtypes and scalars. The file is not a genuine annotation file "
                "(or was tampered with): re-download pyannot.pkl from github.com/gurkirt/corrected-UCF101-Annots"
            )
        return obj

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError(f"{self.source}: refusing persistent id {short_repr(pid)}; not a UCF101-24 annotation pickle")


def safe_unpickle(data: bytes, source: str) -> Any:
    """Unpickle ``data`` admitting only the globals listed in the module docstring.

    Raises UnsafePickleError for any other global or a refused numpy dtype / array state, and
    ValueError (bounded message) for a corrupt pickle or one that exhausts memory or recursion.
    """
    source = redact(source)
    try:
        return _RestrictedUnpickler(data, source).load()
    except UnsafePickleError:
        raise
    except (MemoryError, RecursionError) as exc:
        raise ValueError(
            f"{source}: unpickling ran out of {'memory' if isinstance(exc, MemoryError) else 'recursion depth'}; not a genuine annotation file"
        ) from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError) as exc:
        raise ValueError(f"{source} is not a readable pickle ({type(exc).__name__}: {shorten(str(exc), 300)}); re-download it") from None


# --------------------------------------------------------------------------------------------
# Schema validation


#: Largest frame count / frame index accepted (UCF101's longest video has 1,776 frames).
MAX_FRAMES = 10**7


def _as_int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{what} must be an integer, got {type(value).__name__} {short_repr(value)}")
    number = int(value)
    if abs(number) > MAX_FRAMES:
        raise ValueError(f"{what} is {short_repr(number)}, beyond the {MAX_FRAMES} frames any video has")
    return number


def _parse_video(video_id: Any, entry: Any, source: str, seen_boxes: set[int] | None = None) -> VideoAnnotation:
    """One video's entry, validated (``seen_boxes``: ids of box arrays already used by a tube)."""
    where = f"{source}: video {short_repr(video_id)}"
    seen_boxes = set() if seen_boxes is None else seen_boxes
    if not isinstance(video_id, str):
        raise ValueError(f"{source}: key {short_repr(video_id)} is not a string; keys are 'Class/v_Class_gXX_cYY'")
    if not isinstance(entry, Mapping):
        raise ValueError(f"{where}: value is {type(entry).__name__}, expected a dict with numf, label, annotations")
    missing = [k for k in ("numf", "label", "annotations") if k not in entry]
    if missing:
        raise ValueError(f"{where}: missing key(s) {missing}; each video needs numf, label and annotations")
    numf = _as_int(entry["numf"], f"{where}: numf")
    label = _as_int(entry["label"], f"{where}: label")
    if numf < 1 or label < 0:
        raise ValueError(f"{where}: numf must be >= 1 and label >= 0, got numf={numf}, label={label}")
    if not isinstance(entry["annotations"], (list, tuple)):
        raise ValueError(f"{where}: annotations is {type(entry['annotations']).__name__}, expected a list of tubes")
    tubes = []
    for i, tube in enumerate(entry["annotations"]):
        at = f"{where}, tube {i}"
        if not isinstance(tube, Mapping):
            raise ValueError(f"{at}: is {type(tube).__name__}, expected a dict with label, sf, ef, boxes")
        missing = [k for k in ("label", "sf", "ef", "boxes") if k not in tube]
        if missing:
            raise ValueError(f"{at}: missing key(s) {missing}; each tube needs label, sf, ef and boxes")
        tube_label = _as_int(tube["label"], f"{at}: label")
        sf, ef = _as_int(tube["sf"], f"{at}: sf"), _as_int(tube["ef"], f"{at}: ef")
        if not 0 <= sf < ef <= numf:
            raise ValueError(f"{at}: needs 0 <= sf < ef <= numf (ef exclusive), got sf={sf}, ef={ef}, numf={numf}")
        boxes = tube["boxes"]
        if not isinstance(boxes, np.ndarray):  # a nested list would be expanded by np.asarray, whatever its size
            raise ValueError(f"{at}: boxes is {type(boxes).__name__}, expected a numpy (ef - sf, 4) array of x, y, w, h")
        if id(boxes) in seen_boxes:  # shared through the pickle memo: N tubes, one array, N copies when converted
            raise ValueError(f"{at}: boxes is the same array as another tube's; a genuine file has one array per tube")
        seen_boxes.add(id(boxes))
        boxes = np.asarray(boxes)
        if boxes.ndim != 2 or boxes.shape[1] != 4 or not np.issubdtype(boxes.dtype, np.number):
            raise ValueError(f"{at}: boxes must be a numeric (ef - sf, 4) array of x, y, w, h, got shape {boxes.shape} {boxes.dtype}")
        if boxes.shape[0] != ef - sf:
            raise ValueError(f"{at}: len(boxes) = {boxes.shape[0]} but ef - sf = {ef - sf}; one box per frame sf..ef-1")
        xywh = boxes.astype(np.float64)  # before adding: uint8 x + w wraps around
        if not np.isfinite(xywh).all() or (xywh[:, 2:] < 0).any():
            raise ValueError(f"{at}: boxes hold non-finite values or negative width/height")
        xyxy = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1)
        tubes.append(Tube(label=tube_label, frames=np.arange(sf, ef, dtype=np.int64), boxes=xyxy))
    return VideoAnnotation(numf=numf, label=label, tubes=tubes)


# --------------------------------------------------------------------------------------------
# Public API


def read_ucf101_24(uri: str, storage: StorageConfig | None = None, *, limits: InputLimits | None = None) -> dict[str, VideoAnnotation]:
    """Read a UCF101-24 annotation pickle (format in the module docstring), in file order.

    ``limits.annotation_bytes`` (``dataset.limits``) caps the file's size: a larger file is
    refused before it is read.

    Raises:
        UnsafePickleError: the pickle names a global outside the allow-list, or a numpy dtype /
            array state outside what the format needs (object arrays never load).
        ValueError: too large, not a pickle, or a wrong schema (the message names the video and
            the problem; untrusted values appear cut short).
    """
    limits = limits or InputLimits()
    data = read_bytes(uri, storage, max_bytes=limits.annotation_bytes, limit="dataset.limits.annotation_bytes")
    source = redact(uri)
    data = safe_unpickle(data, source)
    if not isinstance(data, Mapping):
        raise ValueError(f"{source}: top level is {type(data).__name__}, expected a dict keyed by 'Class/v_Class_gXX_cYY'")
    seen_boxes: set[int] = set()
    try:
        return {video_id: _parse_video(video_id, entry, source, seen_boxes) for video_id, entry in data.items()}
    except (MemoryError, RecursionError) as exc:
        raise ValueError(f"{source}: reading the annotations ran out of {type(exc).__name__}; not a genuine annotation file") from None


def load_ucf101_24(uri: str, storage: StorageConfig | None = None, *, limits: InputLimits | None = None) -> dict[str, list[Tube]]:
    """``{video_id: [Tube, ...]}`` from a UCF101-24 annotation pickle (see :func:`read_ucf101_24`)."""
    return {video_id: video.tubes for video_id, video in read_ucf101_24(uri, storage, limits=limits).items()}


def load_ucf101_24_numf(uri: str, storage: StorageConfig | None = None, *, limits: InputLimits | None = None) -> dict[str, int]:
    """``{video_id: number of frames}`` from a UCF101-24 annotation pickle."""
    return {video_id: video.numf for video_id, video in read_ucf101_24(uri, storage, limits=limits).items()}


def to_pickle_layout(annotations: Mapping[str, VideoAnnotation]) -> dict[str, dict[str, Any]]:
    """The plain-dict layout of ``pyannot.pkl`` (boxes back to x, y, w, h numpy arrays).

    Boxes that are all whole numbers in 0..65535 are stored as uint16 (like the original file),
    others as float64. Raises ValueError for a tube whose frames are not consecutive.
    """
    out: dict[str, dict[str, Any]] = {}
    for video_id, video in annotations.items():
        tubes = []
        for i, tube in enumerate(video.tubes):
            frames = np.asarray(tube.frames, dtype=np.int64)
            boxes = np.asarray(tube.boxes, dtype=np.float64)
            if frames.ndim != 1 or frames.size == 0 or not np.array_equal(frames, np.arange(frames[0], frames[0] + frames.size)):
                raise ValueError(f"video {video_id!r}, tube {i}: frames must be consecutive 0-based indices sf..ef-1")
            if boxes.shape != (frames.size, 4):
                raise ValueError(f"video {video_id!r}, tube {i}: boxes must be (len(frames), 4), got {boxes.shape}")
            xywh = np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], axis=1)
            if np.all(xywh == np.round(xywh)) and xywh.min() >= 0 and xywh.max() <= np.iinfo(np.uint16).max:
                xywh = xywh.astype(np.uint16)
            sf = int(frames[0])
            tubes.append({"label": int(tube.label), "sf": sf, "ef": sf + int(frames.size), "boxes": xywh})
        out[video_id] = {"numf": int(video.numf), "label": int(video.label), "annotations": tubes}
    return out


def write_ucf101_24(annotations: Mapping[str, VideoAnnotation], uri: str, storage: StorageConfig | None = None) -> None:
    """Write annotations in the ``pyannot.pkl`` layout (pickle protocol 2), atomically.

    The result is validated with the same rules as :func:`read_ucf101_24` before writing, so
    a file this writes is always one the loader reads back.
    """
    layout = to_pickle_layout(annotations)
    seen_boxes: set[int] = set()
    for video_id, entry in layout.items():
        _parse_video(video_id, entry, uri, seen_boxes)
    write_bytes(uri, pickle.dumps(layout, protocol=2), storage)
