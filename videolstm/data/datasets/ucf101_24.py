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
Python 3 writes bytes at protocol 2). Python 2 ``str`` payloads are decoded as latin-1. Any
other global (``os.system``, ``builtins.eval``, ...) raises :class:`UnsafePickleError` naming
the global and the file; nothing it names is ever called.

Returned structure: :class:`Tube` (``frames`` (N,) int64 0-based frame indices, ``boxes``
(N, 4) float64 ``x1, y1, x2, y2``) grouped per video; :func:`read_ucf101_24` also gives
``numf`` and the video label (:class:`VideoAnnotation`).
"""

from __future__ import annotations

import dataclasses
import io
import numbers
import pickle
from collections.abc import Mapping
from typing import Any

import numpy as np

from videolstm.config import StorageConfig
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


def _latin1_encode(obj: Any, encoding: str = "utf-8", errors: str = "strict") -> bytes:
    """``_codecs.encode`` as protocol-2 pickles use it (``encode(str, "latin1")``) and nothing else."""
    if not isinstance(obj, str) or encoding.lower().replace("_", "-") not in ("latin1", "latin-1", "iso-8859-1"):
        raise UnsafePickleError(f"_codecs.encode is only allowed as encode(<str>, 'latin1'), got encoding {encoding!r}")
    return obj.encode("latin-1", errors)


def _allowed_globals() -> dict[tuple[str, str], Any]:
    try:
        from numpy._core import multiarray  # numpy >= 2 (and 1.26's forward-compat alias)
    except ImportError:  # pragma: no cover - numpy < 1.26
        from numpy.core import multiarray
    allowed: dict[tuple[str, str], Any] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): _latin1_encode,
    }
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[(module, "_reconstruct")] = multiarray._reconstruct
        allowed[(module, "scalar")] = multiarray.scalar
    return allowed


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, data: bytes, source: str) -> None:
        super().__init__(io.BytesIO(data), encoding="latin1")
        self.source = source
        self.allowed = _allowed_globals()

    def find_class(self, module: str, name: str) -> Any:
        obj = self.allowed.get((module, name))
        if obj is None:
            raise UnsafePickleError(
                f"{self.source}: refusing to load global '{module}.{name}'; a UCF101-24 annotation pickle only "
                "needs numpy arrays, dtypes and scalars. The file is not a genuine annotation file (or was "
                "tampered with): re-download pyannot.pkl from github.com/gurkirt/corrected-UCF101-Annots"
            )
        return obj

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError(f"{self.source}: refusing persistent id {pid!r}; not a UCF101-24 annotation pickle")


def safe_unpickle(data: bytes, source: str) -> Any:
    """Unpickle ``data`` admitting only the globals listed in the module docstring.

    Raises UnsafePickleError for any other global, ValueError for a corrupt pickle.
    """
    try:
        return _RestrictedUnpickler(data, source).load()
    except UnsafePickleError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError) as exc:
        raise ValueError(f"{source} is not a readable pickle ({type(exc).__name__}: {exc}); re-download it") from exc


# --------------------------------------------------------------------------------------------
# Schema validation


def _as_int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{what} must be an integer, got {type(value).__name__} {value!r}")
    return int(value)


def _parse_video(video_id: Any, entry: Any, source: str) -> VideoAnnotation:
    where = f"{source}: video {video_id!r}"
    if not isinstance(video_id, str):
        raise ValueError(f"{source}: key {video_id!r} is not a string; keys are 'Class/v_Class_gXX_cYY'")
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
        boxes = np.asarray(tube["boxes"])
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


def read_ucf101_24(uri: str, storage: StorageConfig | None = None) -> dict[str, VideoAnnotation]:
    """Read a UCF101-24 annotation pickle (format in the module docstring), in file order.

    Raises:
        UnsafePickleError: the pickle names a global outside the allow-list.
        ValueError: not a pickle, or a wrong schema (the message names the video and the problem).
    """
    data = safe_unpickle(read_bytes(uri, storage), uri)
    if not isinstance(data, Mapping):
        raise ValueError(f"{uri}: top level is {type(data).__name__}, expected a dict keyed by 'Class/v_Class_gXX_cYY'")
    return {video_id: _parse_video(video_id, entry, uri) for video_id, entry in data.items()}


def load_ucf101_24(uri: str, storage: StorageConfig | None = None) -> dict[str, list[Tube]]:
    """``{video_id: [Tube, ...]}`` from a UCF101-24 annotation pickle (see :func:`read_ucf101_24`)."""
    return {video_id: video.tubes for video_id, video in read_ucf101_24(uri, storage).items()}


def load_ucf101_24_numf(uri: str, storage: StorageConfig | None = None) -> dict[str, int]:
    """``{video_id: number of frames}`` from a UCF101-24 annotation pickle."""
    return {video_id: video.numf for video_id, video in read_ucf101_24(uri, storage).items()}


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


def write_ucf101_24(
    annotations: Mapping[str, VideoAnnotation], uri: str, storage: StorageConfig | None = None
) -> None:
    """Write annotations in the ``pyannot.pkl`` layout (pickle protocol 2), atomically.

    The result is validated with the same rules as :func:`read_ucf101_24` before writing, so
    a file this writes is always one the loader reads back.
    """
    layout = to_pickle_layout(annotations)
    for video_id, entry in layout.items():
        _parse_video(video_id, entry, uri)
    write_bytes(uri, pickle.dumps(layout, protocol=2), storage)
