"""The dataset and flow stages from the CLI on a UCF101-layout folder built from the real split files."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from videolstm.config import SyntheticConfig
from videolstm.data.datasets import read_index
from videolstm.data.datasets.shipped import UCF101_SPLITS
from videolstm.data.datasets.synthetic import render_video
from videolstm.data.video import write_video
from videolstm.store.manifest import read_manifest

REPO = Path(__file__).resolve().parents[2]
SPLITS = UCF101_SPLITS  # the real split files, shipped in the package

pytestmark = pytest.mark.integration

#: The UCF101 folder is "HandstandPushups" while the split files and file names say "HandStandPushups".
FOLDER = {"HandStandPushups": "HandstandPushups"}


def build_ucf101_folder(root: Path, classes: tuple[str, ...], per_class: int) -> list[str]:
    """Real split lines of ``classes`` (the first ``per_class`` of each list), videos rendered for them."""
    lists = root / "ucfTrainTestlist"
    lists.mkdir(parents=True)
    shutil.copy(SPLITS / "classInd.txt", lists / "classInd.txt")
    written, synthetic = [], SyntheticConfig(num_classes=len(classes), frames=10, height=48, width=64, distractors=1)
    for name in ("trainlist01.txt", "testlist01.txt"):
        keep = []
        for cls in classes:
            lines = [line for line in (SPLITS / name).read_text().splitlines() if line.startswith(f"{cls}/")]
            keep += lines[:per_class]
        (lists / name).write_text("\r\n".join(keep) + "\r\n")  # CRLF, as the originals
        for line in keep:
            relative = line.split()[0]
            cls, file = relative.split("/")
            frames = render_video(synthetic, classes.index(cls), len(written)).frames
            write_video(str(root / FOLDER.get(cls, cls) / file), frames)
            written.append(relative.removesuffix(".avi"))
    return written


def test_dataset_and_flow_stages_run_from_the_cli_on_a_ucf101_layout_folder(tmp_path):
    classes = ("ApplyEyeMakeup", "HandStandPushups")
    videos = build_ucf101_folder(tmp_path / "UCF101", classes, per_class=2)
    config = tmp_path / "ucf.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "name": "ucf-layout",
                "dataset": {"kind": "ucf101", "root": str(tmp_path / "UCF101"), "split": 1},
                "storage": {"root": str(tmp_path / "run")},
                "flow": {"method": "dis", "dis_preset": "ultrafast", "height": 28, "width": 28, "workers": 1},
                "ray": {"num_cpus": 2},
            }
        )
    )
    env_cmd = [sys.executable, "-m", "flows.cli"]
    for command in ("dataset", "flow"):
        run = subprocess.run([*env_cmd, command, "--config", str(config)], cwd=REPO, capture_output=True, text=True, timeout=600)
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
        assert f"{len(videos)} ok, 0 failed" in run.stdout, run.stdout[-2000:]
    index = read_index(next((tmp_path / "run" / "index").glob("*/index.parquet")).as_posix()).to_pylist()
    labels = {r["video_id"].split("/")[0]: r["label"] for r in index}
    assert labels == {"ApplyEyeMakeup": 0, "HandStandPushups": 36}  # 0-based from classInd.txt, not the raw 1-based label
    assert all(r["path"].endswith(".avi") and "/HandstandPushups/" in r["path"] for r in index if r["label"] == 36)
    manifest = read_manifest(next((tmp_path / "run" / "frames_flow").glob("*/manifest.parquet")).as_posix())
    assert sorted(r.video_id for r in manifest) == sorted(videos)
    assert all(r.ok and r.counts["num_frames"] == 10 and r.counts["num_flow"] == 9 for r in manifest)
