"""Bad input is refused with a message naming the file and the fix, recorded in the stage's
manifest, and every other item finishes.

The dataset ones go through the real CLI benchmark (the ``bad_benchmark`` fixture: a synthetic
set with a truncated, a zero-byte and a missing video, a split line naming an unknown class, a
malformed line and an annotation pickle that tries to run code); the others call the stage
functions in-process on that run's outputs, or the CLI on a bad config file.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from tests.reliability import ledger
from tests.reliability.conftest import REPO, cli_env
from tests.reliability.inputs import (
    MISSING,
    TRUNCATED,
    UNKNOWN_CLASS,
    ZERO_BYTE,
    ExecutesCode,
    malicious_pickle,
    wrong_schema_pickle,
)
from videolstm.store.manifest import read_manifest

pytestmark = pytest.mark.reliability


def _rows(bad_benchmark, stage: str) -> dict:
    rows = read_manifest(bad_benchmark.stage(stage).manifest_uri)
    assert len({r.video_id for r in rows}) == len(rows), "an item is listed twice"
    return {r.video_id: r for r in rows}


def test_bad_videos_and_split_lines_are_refused_in_the_manifest_while_every_other_video_finishes(bad_benchmark):
    b = bad_benchmark
    assert b.rerun_returncode == 0, b.rerun_output[-4000:]
    index = {r.video_id: r for r in read_manifest(b.stage("frames_flow").manifest_uri)}
    features = _rows(b, "features")
    dataset = str(b.dataset.root)
    expectations = {  # video id -> words the reason must hold (the file, the problem, the fix)
        TRUNCATED: [f"{dataset}/{TRUNCATED}.avi", "truncated", "re-download or re-encode"],
        ZERO_BYTE: [f"{dataset}/{ZERO_BYTE}.avi", "zero-byte", "re-download"],
        MISSING: ["trainlist01.txt line", "missing on storage", "restore the video or remove the line"],
        UNKNOWN_CLASS: ["trainlist01.txt line", "'Juggling'", "not in classInd.txt", "fix the line or add the class"],
        "MoveLeft": ["trainlist01.txt line 8", "malformed line", "fix the line"],
    }
    for video_id, words in expectations.items():
        for manifest in (index, features):  # refused where it failed, and still visible downstream
            row = manifest[video_id]
            assert row.status == "failed", (video_id, row)
            assert all(w in row.reason for w in words), (video_id, row.reason)
    finished = {v.removeprefix("s0/") for v, r in features.items() if r.ok}  # computed items are per seed: "s0/<video>"
    assert all(v.startswith("s0/") for v, r in features.items() if r.ok)
    lost = len(set(b.dataset.good) - finished)
    ledger.record("bad dataset inputs through the CLI benchmark (5 videos/lines)", inputs=len(expectations), lost=lost)
    assert finished == set(b.dataset.good)


def test_annotation_pickle_that_executes_code_is_refused_and_never_runs(bad_benchmark):
    b = bad_benchmark
    assert b.rerun_returncode == 0, b.rerun_output[-4000:]
    assert not b.dataset.marker.exists(), "loading the annotation pickle ran its code"
    evaluated = _rows(b, "evaluate")
    reason = evaluated["annotations"].reason
    assert evaluated["annotations"].status == "failed"
    assert str(b.dataset.annotations) in reason and "refusing to load global 'posix.system'" in reason
    assert "re-download pyannot.pkl" in reason
    models = {v for v, r in evaluated.items() if r.ok}
    assert {"convnet-rgb-s0", "convnet-flow-s0", "lstm-rgb-s0"} <= models  # classification went on without it
    kept = models & {"convnet-rgb-s0", "convnet-flow-s0", "lstm-rgb-s0"}
    ledger.record("annotation pickle that runs os.system (CLI benchmark)", inputs=1, lost=3 - len(kept))


def test_annotation_pickles_with_a_wrong_schema_or_corrupt_bytes_are_refused_naming_the_file(bad_benchmark, tmp_path):
    from tasks.evaluate import _usable_annotations

    config = bad_benchmark.config()
    cases = {
        "schema.pkl": (wrong_schema_pickle(), ["numf must be an integer", "MoveRight/v_MoveRight_g01_c01"]),
        "corrupt.pkl": (b"\x80\x02}q\x00(X\x05", ["is not a readable pickle", "re-download it"]),
        "code.pkl": (malicious_pickle(tmp_path / "ran"), ["refusing to load global", "re-download pyannot.pkl"]),
    }
    for name, (data, words) in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        results = []
        assert _usable_annotations(str(path), config, results) is None  # localization skipped, not the stage
        [item] = results
        assert item.status == "failed" and str(path) in item.reason and all(w in item.reason for w in words), item.reason
    assert not (tmp_path / "ran").exists()
    ledger.record("annotation pickles: wrong schema, corrupt, code-running (evaluate stage)", inputs=len(cases))


def test_weights_file_that_is_not_a_state_dict_fails_the_frame_cnn_stage_naming_the_file(bad_benchmark, tmp_path):
    from tasks.train import run_frame_cnn

    not_a_dict = tmp_path / "list.pth"
    torch.save([torch.zeros(2)], not_a_dict)
    runs_code = tmp_path / "code.pth"
    torch.save({"features.0.weight": ExecutesCode(tmp_path / "ran")}, runs_code)
    index, frames_flow = bad_benchmark.stage("index"), bad_benchmark.stage("frames_flow")
    expectations = {
        not_a_dict: ["holds a list, not a state dict", "torch.save(model.state_dict(), path)"],
        runs_code: ["is not a loadable torch state dict", "Weights only load failed", "torch.save(model.state_dict(), path)"],
    }
    for weights, words in expectations.items():
        base = yaml.safe_load(bad_benchmark.config_path.read_text())
        base["frame_cnn"] = {**base["frame_cnn"], "arch": "vgg16", "weights": str(weights)}
        from videolstm.config import load_config

        result = run_frame_cnn(load_config(base), index, frames_flow)
        rows = {r.video_id: r for r in read_manifest(result.manifest_uri)}
        assert set(rows) == {"convnet-rgb-s0", "convnet-flow-s0"}
        for row in rows.values():
            assert row.status == "failed" and row.reason.startswith(f"frame_cnn.weights: {weights}"), row.reason
            assert all(w in row.reason for w in words), row.reason
    assert not (tmp_path / "ran").exists()
    ledger.record("weights files that are not state dicts (frame-CNN stage)", inputs=len(expectations), runs=len(expectations))


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"train": {"epocs": 3}}, ["train.epocs: unknown key"]),
        ({"train": {"epochs": "many"}}, ["train.epochs: Input should be a valid integer", "'many'"]),
        ({"flow": {"method": "optical"}}, ["flow.method: Input should be 'tvl1', 'tvl1_torch', 'dis' or 'farneback'"]),
    ],
    ids=["unknown-key", "wrong-type", "unknown-choice"],
)
def test_config_with_an_unknown_key_or_a_wrong_type_is_refused_naming_the_file_and_key(tmp_path, change, words, request):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"name": "bad", **change}))
    done = subprocess.run(
        [sys.executable, "-m", "flows.cli", "flow", "--config", str(path)],
        cwd=REPO,
        env=cli_env(tmp_path / "prefect"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"invalid configuration in {path}" in done.stderr
    assert all(w in done.stderr for w in words), done.stderr
    assert "Traceback" not in done.stderr and not list(Path(tmp_path).glob("runs*"))
    ledger.record(f"config file refused via the CLI ({request.node.callspec.id})", inputs=1)
