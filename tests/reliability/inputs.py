"""Builders of the bad inputs the reliability suite feeds the pipeline (real files, no mocks).

:func:`make_bad_dataset` writes a small synthetic dataset in the UCF101 layout and then breaks
it the way real downloads break: a truncated video, a zero-byte video, a video listed in the
split file but missing, a split line naming an unknown class, a malformed split line, and an
annotation pickle that tries to run code when loaded.
"""

from __future__ import annotations

import os
import pickle
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from tests.integration.tiny import tiny_config
from videolstm.config import SyntheticConfig

SYNTHETIC = SyntheticConfig(num_classes=2, videos_per_class=4, frames=10, height=48, width=48, distractors=1)

TRUNCATED = "MoveRight/v_MoveRight_g02_c01"
ZERO_BYTE = "MoveLeft/v_MoveLeft_g02_c01"
MISSING = "MoveRight/v_MoveRight_g03_c01"
UNKNOWN_CLASS = "Juggling/v_Juggling_g01_c01"
MALFORMED_LINE = "MoveLeft v_MoveLeft_g09_c01.avi 2 extra"
MALFORMED_ID = "MoveLeft"  # the video id the index gives a line it cannot parse (its first token)


class ExecutesCode:
    """Pickles to a call of ``os.system``: loading it unrestricted would create ``marker``."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def malicious_pickle(marker: Path) -> bytes:
    """A pickle whose loading (with plain ``pickle.loads``) would create ``marker``."""
    return pickle.dumps({"MoveRight/v_MoveRight_g01_c01": ExecutesCode(marker)}, protocol=2)


def wrong_schema_pickle() -> bytes:
    """A harmless pickle that is not in the UCF101-24 layout (boxes missing, numf a string)."""
    return pickle.dumps({"MoveRight/v_MoveRight_g01_c01": {"numf": "ten", "label": 0, "annotations": [{"sf": 0, "ef": 5}]}}, protocol=2)


@dataclass
class BadDataset:
    root: Path
    annotations: Path
    marker: Path  # must never exist: created only if the malicious pickle ran
    good: list[str]  # video ids that must finish ok
    bad: dict[str, str] = field(default_factory=dict)  # video id -> words its failure reason must hold

    @property
    def inputs(self) -> int:
        return len(self.bad) + 1  # + the malicious annotation pickle


def make_bad_dataset(base: Path) -> BadDataset:
    """A synthetic dataset (2 classes x 4 videos, test = group 1) with six kinds of bad input."""
    from videolstm.data.datasets.synthetic import generate_synthetic

    clean = base / "clean"
    generate_synthetic(str(clean), SYNTHETIC)
    root = base / "bad"
    shutil.copytree(clean, root)
    truncated = root / f"{TRUNCATED}.avi"
    data = truncated.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    (root / f"{ZERO_BYTE}.avi").write_bytes(b"")
    (root / f"{MISSING}.avi").unlink()
    trainlist = root / "ucfTrainTestlist" / "trainlist01.txt"
    trainlist.write_bytes(trainlist.read_bytes() + f"{UNKNOWN_CLASS}.avi 3\r\n{MALFORMED_LINE}\r\n".encode())
    marker = base / "pickle-ran-code"
    annotations = root / "annotations.pkl"
    annotations.write_bytes(malicious_pickle(marker))
    good = [
        "MoveRight/v_MoveRight_g01_c01",
        "MoveRight/v_MoveRight_g04_c01",
        "MoveLeft/v_MoveLeft_g01_c01",
        "MoveLeft/v_MoveLeft_g03_c01",
        "MoveLeft/v_MoveLeft_g04_c01",
    ]
    bad = {
        TRUNCATED: "truncated",
        ZERO_BYTE: "zero-byte",
        MISSING: "missing on storage",
        UNKNOWN_CLASS: "not in classInd.txt",
        MALFORMED_ID: "malformed line",
    }
    return BadDataset(root=root, annotations=annotations, marker=marker, good=good, bad=bad)


def write_config(path: Path, storage_root: Path, dataset: BadDataset, **sections) -> Path:
    """A tiny benchmark config (tests/integration/tiny.py) over ``dataset``, as YAML."""
    config = tiny_config(str(storage_root), **sections)
    config["name"] = "reliability"
    config["mlflow"] = {"experiment": "reliability"}
    config["dataset"] = {"kind": "synthetic", "root": str(dataset.root), "annotations": str(dataset.annotations)}
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path
