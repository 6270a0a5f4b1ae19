"""Hostile inputs (issue 15): each is refused with a clear error naming the input and the limit,
in bounded time and memory, with nothing written outside its root and no secret in any output.

Every test builds its hostile file (tests/reliability/hostile.py), feeds it to the project's
public function in a child process (tests/reliability/child.py: a crash shows as a negative
return code; peak RSS above the RSS before the call and the call's seconds are measured there;
the child's address space is capped so a bomb cannot take the shared machine's memory), and
checks the folder around the root for files written outside it.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest

from tests.data.datasets.rar_writer import rar4_bytes
from tests.reliability import hostile, ledger
from tests.reliability.child import ChildResult, files_outside, run_child, snapshot

pytestmark = pytest.mark.reliability

MiB = 1024**2
#: Bounds every refusal must stay within (the probe measured 26-436 s and 1.7-6 GiB before). Time
#: is the child's CPU time, so a busy shared machine does not make the bound flaky.
MAX_CPU_SECONDS = 10.0
MAX_EXTRA_RSS = 256 * MiB
MAX_MESSAGE = 4000


def refused(result: ChildResult, error: str, *words: str) -> None:
    """The call raised ``error`` (or a subclass) whose message holds ``words``, within the bounds."""
    assert result.returncode == 0, f"the child died (return code {result.returncode}):\n{result.output}"
    assert not result.ok, f"accepted: {result.result[:500]}"
    assert result.raised(error), (result.error, result.message[:2000], result.output[-2000:])
    missing = [w for w in words if w not in result.message]
    assert not missing, (missing, result.message[:3000])
    assert result.message_length <= MAX_MESSAGE, result.message_length
    bounded(result)


def bounded(result: ChildResult) -> None:
    assert result.cpu_seconds < MAX_CPU_SECONDS, (result.cpu_seconds, result.seconds)
    assert result.extra_rss < MAX_EXTRA_RSS, f"{result.extra_rss_mib:.0f} MiB"


@pytest.fixture
def area(tmp_path: Path) -> dict[str, Path]:
    """A deep root (so '../../..' lands where the test can see it), a cache and a temp folder."""
    root = tmp_path / "outside" / "a" / "b" / "root"
    paths = {"base": tmp_path, "root": root, "cache": tmp_path / "cache", "tmp": tmp_path / "tmp", "in": tmp_path / "in"}
    for path in paths.values():
        path.mkdir(parents=True, exist_ok=True)
    return paths


def child_env(area: dict[str, Path]) -> dict[str, str]:
    return {"VIDEOLSTM_CACHE_DIR": str(area["cache"]), "TMPDIR": str(area["tmp"])}


def nothing_outside(area: dict[str, Path], before: set[Path], *extra_allowed: Path) -> None:
    outside = files_outside(area["base"], [area["root"], area["cache"], area["in"], *extra_allowed], before)
    assert not outside, f"written outside the root: {outside}"
    assert not any(area["tmp"].iterdir()), f"temporary files left: {list(area['tmp'].iterdir())}"


EXTRACT_SETUP = (
    "from videolstm.data.datasets.extraction import extract\n"
    "from videolstm.data.datasets.prepare import prepare_dataset\n"
    "from videolstm.config import InputLimits"
)


# --------------------------------------------------------------------------------------------
# 1. escapes through an archive's file name


@pytest.mark.parametrize(
    "name, words",
    [
        ("..%2F..%2F..%2FESCAPED.zip", ["..%2F..%2F..%2FESCAPED.zip", "'../../../ESCAPED.zip'", "path separator"]),
        ("one%2Fslash.zip", ["one%2Fslash.zip", "path separator"]),
    ],
)
def test_archive_name_that_decodes_to_a_path_is_refused_and_writes_no_marker(area, name, words):
    archive = area["in"] / name
    archive.write_bytes(hostile.zip_bytes({"fine.txt": b"ok", "../evil": b"refused entry"}))
    before = snapshot(area["base"])
    result = run_child(EXTRACT_SETUP, f"result = extract({str(archive)!r}, {str(area['root'])!r})", env=child_env(area))
    refused(result, "ExtractError", *words)
    nothing_outside(area, before)
    assert not any(area["root"].rglob("*")), "a refused archive wrote into the root"
    ledger.record(f"archive named {name} (extract)", inputs=1)


def test_mirror_url_whose_name_decodes_twice_to_a_path_is_refused_by_prepare_dataset(area):
    name = "..%252F..%252F..%252FX.zip"
    (area["in"] / name).write_bytes(hostile.zip_bytes({"ucfTrainTestlist/classInd.txt": b"1 A\n"}))
    url = f"file://{area['in']}/{name}"
    before = snapshot(area["base"])
    result = run_child(EXTRACT_SETUP, f"result = prepare_dataset('ucf101', {str(area['root'])!r}, [{url!r}], verify=False)", env=child_env(area))
    refused(result, "DownloadError", "..%2F..%2F..%2FX.zip", "'../../../X.zip'", "path separator")
    nothing_outside(area, before)
    ledger.record("mirror URL ..%252F..%252F..%252FX.zip (prepare_dataset)", inputs=1)


# --------------------------------------------------------------------------------------------
# 2. class and video names that are paths


INDEX_SETUP = "from videolstm.data.datasets import load_index"


def _index_call(kind: str, root: Path) -> str:
    return (
        f"table = load_index({kind!r}, {str(root)!r}, 1, check_files=False)\n"
        f"import os\nbase = os.path.realpath({str(root)!r})\n"
        "result = sorted((r['video_id'], r['status'], r['reason'][:300]) for r in table.to_pylist()\n"
        "                if r['status'] == 'ok' and not os.path.realpath(r['path']).startswith(base + '/'))"
    )


@pytest.mark.parametrize("case", ["classInd", "video"])
def test_ucf101_class_or_video_named_dotdot_never_yields_a_path_outside_the_root(area, case):
    split = area["root"] / "ucfTrainTestlist"
    split.mkdir()
    if case == "classInd":
        (split / "classInd.txt").write_text("1 Alpha\n2 ..\n")
        (split / "trainlist01.txt").write_text("Alpha/v_Alpha_g01_c01.avi 1\n../v_x_g01_c01.avi 2\n")
    else:
        (split / "classInd.txt").write_text("1 Alpha\n")
        (split / "trainlist01.txt").write_text("Alpha/v_Alpha_g01_c01.avi 1\nAlpha/.. 1\nAlpha/..%2F..%2Fx.avi 1\n")
    (split / "testlist01.txt").write_text("Alpha/v_Alpha_g02_c01.avi\n")
    before = snapshot(area["base"])
    result = run_child(INDEX_SETUP, _index_call("ucf101", area["root"]), env=child_env(area))
    if case == "classInd":
        refused(result, "ValueError", "classInd.txt line 2", "'..'")
    else:
        assert result.returncode == 0 and result.ok, result.output
        assert result.result == "[]", f"ok rows outside the root: {result.result}"
        bounded(result)
    nothing_outside(area, before)
    ledger.record(f"UCF101 {case} naming '..' (load_index, check_files=False)", inputs=1)


def test_hmdb51_split_file_naming_class_dotdot_is_refused(area):
    split = area["root"] / "testTrainMulti_7030_splits"
    split.mkdir()
    for cls in ("brush_hair", ".."):
        for n in (1, 2, 3):
            (split / f"{cls}_test_split{n}.txt").write_text("a.avi 1\n.. 2\n")
    before = snapshot(area["base"])
    result = run_child(INDEX_SETUP, _index_call("hmdb51", area["root"]), env=child_env(area))
    refused(result, "ValueError", "'.._test_split1.txt'", "'..'")
    nothing_outside(area, before)
    ledger.record("HMDB51 split file of class '..' (load_index, check_files=False)", inputs=1)


# --------------------------------------------------------------------------------------------
# 3. annotation pickles that crash or exhaust


ANNOTATION_SETUP = "from videolstm.data.datasets.ucf101_24 import read_ucf101_24\nfrom videolstm.config import InputLimits"


@pytest.mark.parametrize(
    "builder, error, words",
    [
        ("object_dtype_pickle", "UnsafePickleError", ["dtype object", "uint8", "uint16"]),
        ("shared_list_bomb", "ValueError", ["numf must be an integer"]),
        ("deep_numf_pickle", "ValueError", ["numf must be an integer"]),
        ("long_message_pickle", "ValueError", ["label must be an integer"]),
    ],
)
def test_annotation_pickle_that_crashed_or_exhausted_is_refused_in_bounded_time_and_memory(area, builder, error, words):
    path = area["root"] / "pyannot.pkl"
    path.write_bytes(getattr(hostile, builder)())
    # printing what was read is how the object-dtype pickle crashed the process (SIGSEGV)
    result = run_child(ANNOTATION_SETUP, f"result = read_ucf101_24({str(path)!r})\nprint(result)", env=child_env(area))
    refused(result, error, str(path), *words)
    ledger.record(f"annotation pickle: {builder} ({path.stat().st_size} bytes)", inputs=1)


def test_genuine_protocol5_numpy_pickle_is_read(area):
    path = area["root"] / "pyannot.pkl"
    path.write_bytes(hostile.protocol5_pickle())
    result = run_child(ANNOTATION_SETUP, f"video = read_ucf101_24({str(path)!r})['C/v_C_g01_c01']\nresult = (video.numf, video.tubes[0].boxes[0].tolist())")
    assert result.returncode == 0 and result.ok, result.output
    assert result.result == "(10, [10.0, 20.0, 40.0, 60.0])"
    bounded(result)
    ledger.record("annotation pickle at protocol 5 (accepted)", inputs=1)


def test_annotation_pickle_larger_than_the_limit_is_refused_before_it_is_read(area):
    path = area["root"] / "pyannot.pkl"
    path.write_bytes(hostile.padded_valid_pickle(2 * MiB))
    result = run_child(ANNOTATION_SETUP, f"result = read_ucf101_24({str(path)!r}, limits=InputLimits(annotation_bytes={MiB}))")
    refused(result, "ValueError", str(path), f"{MiB} bytes", "dataset.limits.annotation_bytes")
    ledger.record("annotation pickle over the size limit", inputs=1)


# --------------------------------------------------------------------------------------------
# 4. configuration files


CONFIG_SETUP = "from videolstm.config import load_config"


def test_yaml_alias_bomb_is_refused_at_once(area):
    path = area["root"] / "laughs.yaml"
    path.write_bytes(hostile.billion_laughs_yaml())
    result = run_child(CONFIG_SETUP, f"result = load_config({str(path)!r})")
    refused(result, "ConfigError", str(path), "alias")
    ledger.record(f"YAML alias bomb ({path.stat().st_size} bytes)", inputs=1)


def test_config_file_over_the_size_limit_is_refused(area):
    path = area["root"] / "huge.yaml"
    path.write_bytes(b"name: x\n" + b"# padding\n" * (MiB // 5))
    result = run_child(CONFIG_SETUP, f"result = load_config({str(path)!r})")
    refused(result, "ConfigError", str(path), f"{MiB} bytes")
    ledger.record("config file over the size limit", inputs=1)


def test_config_error_message_is_bounded_whatever_the_value(area):
    result = run_child(CONFIG_SETUP, "result = load_config({'name': ['x' * 32_000_000], 'flow': {'bound': 'y' * 10_000_000}})", headroom=2048 * MiB)
    assert result.returncode == 0 and result.raised("ConfigError"), result.output
    assert "name" in result.message and "flow.bound" in result.message and result.message_length <= MAX_MESSAGE
    ledger.record("config values of 32 million characters (message bounded)", inputs=1)


# --------------------------------------------------------------------------------------------
# 5. archive bombs, pinned formats, duplicates, forged markers


def _extract(area, name: str, data: bytes, **kwargs) -> ChildResult:
    archive = area["in"] / name
    archive.write_bytes(data)
    args = "".join(f", {k}={v!r}" for k, v in kwargs.items())
    return run_child(EXTRACT_SETUP, f"result = extract({str(archive)!r}, {str(area['root'])!r}{args})", env=child_env(area))


@pytest.mark.parametrize(
    "name, builder, kwargs, words",
    [
        ("bomb.zip", "zip_bomb", {}, ["zeros.bin", "dataset.limits.archive_ratio", "100"]),
        ("holes.tar", "sparse_tar", {}, ["holes.bin", "sparse"]),
        ("holes.rar", "sparse_tar", {}, ["holes.rar", "not a RAR archive"]),
        ("tar-as.zip", "sparse_tar", {}, ["tar-as.zip", "not a valid zip"]),
        ("nested.zip", "nested_zips", {"recursive": True}, ["level1.zip", "dataset.limits.archive_depth", "1"]),
        ("dup.zip", "duplicate_zip", {}, ["'a/v.avi'", "twice"]),
    ],
)
def test_archive_bomb_or_trick_is_refused_before_writing_it(area, name, builder, kwargs, words):
    data = getattr(hostile, builder)()
    before = snapshot(area["base"])
    result = _extract(area, name, data, **kwargs)
    refused(result, "ExtractError", name, *words)
    nothing_outside(area, before)
    written = sum(p.stat().st_size for p in area["root"].rglob("*") if p.is_file())
    assert written < MiB, f"{written} bytes written into the root before the refusal"
    ledger.record(f"archive {name} ({len(data)} bytes)", inputs=1)


def test_duplicate_names_in_tar_and_rar_are_refused(area):
    for name, data in (
        ("dup.tar", hostile.tar_bytes([("a/v.avi", b"one"), ("a/v.avi", b"two")])),
        ("dup.rar", rar4_bytes({"a/v.avi": b"one", "a/./v.avi": b"two"})),
    ):
        result = _extract(area, name, data)
        refused(result, "ExtractError", name, "'a/v.avi'", "twice")
    assert not any(p.is_file() for p in area["root"].rglob("*"))
    ledger.record("duplicate entry names (tar, rar)", inputs=2)


def test_entry_under_the_marker_folder_cannot_forge_another_archives_marker(area):
    forged = json.dumps({"sha256": "0" * 64, "complete": True, "files": []})
    data = hostile.zip_bytes({".videolstm-extracted/UCF101.rar.json": forged.encode(), "fine.txt": b"ok"})
    before = snapshot(area["base"])
    result = _extract(area, "forge.zip", data)
    refused(result, "ExtractError", "forge.zip", ".videolstm-extracted", "reserved")
    nothing_outside(area, before)
    assert not any(area["root"].rglob("*"))
    ledger.record("archive entry under .videolstm-extracted/", inputs=1)


# --------------------------------------------------------------------------------------------
# 6. checkpoints that over-allocate


CHECKPOINT_SETUP = "from videolstm.store.checkpoint import load_checkpoint; from videolstm.models.restore import restore_model"


@pytest.mark.parametrize("num_classes", [4_000_000, 10**9])
def test_checkpoint_declaring_millions_of_classes_is_refused_without_allocating(area, num_classes):
    path = area["root"] / "model.pt"
    path.write_bytes(hostile.checkpoint_claiming_classes(num_classes))
    result = run_child(CHECKPOINT_SETUP, f"result = restore_model(load_checkpoint({str(path)!r}))")
    refused(result, "CheckpointError", f"num_classes {num_classes}", "shape")
    ledger.record(f"checkpoint declaring num_classes {num_classes} ({path.stat().st_size} bytes)", inputs=1)


def test_checkpoint_with_compressed_records_is_refused(area):
    path = area["root"] / "deflated.pt"
    path.write_bytes(hostile.deflated_torch_zip(hostile.checkpoint_claiming_classes(3)))
    result = run_child(CHECKPOINT_SETUP, f"result = restore_model(load_checkpoint({str(path)!r}))")
    refused(result, "CheckpointError", str(path), "compressed")
    ledger.record("checkpoint with deflated records", inputs=1)


# --------------------------------------------------------------------------------------------
# 7. split files without bounds


def _ucf_root(area) -> Path:
    split = area["root"] / "ucfTrainTestlist"
    split.mkdir()
    (split / "classInd.txt").write_text("1 Alpha\n")
    (split / "testlist01.txt").write_text("Alpha/v_Alpha_g02_c01.avi\n")
    return split / "trainlist01.txt"


def test_split_file_of_one_200_mib_line_is_refused_by_size(area):
    trainlist = _ucf_root(area)
    with open(trainlist, "wb") as fh:  # sparse: 200 MiB without using the disk
        fh.truncate(200 * MiB)
    result = run_child(INDEX_SETUP, f"result = load_index('ucf101', {str(area['root'])!r}, 1, check_files=False)")
    refused(result, "ValueError", "trainlist01.txt", f"{8 * MiB} bytes", "dataset.limits.split_file_bytes")
    ledger.record("split file of one 200 MiB line", inputs=1)


def test_split_file_of_4_million_lines_is_refused_by_line_count(area):
    trainlist = _ucf_root(area)
    trainlist.write_bytes(b"a\n" * 4_000_000)
    result = run_child(INDEX_SETUP, f"result = load_index('ucf101', {str(area['root'])!r}, 1, check_files=False)")
    refused(result, "ValueError", "trainlist01.txt", "200000 lines", "dataset.limits.split_file_lines")
    ledger.record("split file of 4 million lines", inputs=1)


# --------------------------------------------------------------------------------------------
# 8. odd class and video names in metrics and CSV files


def test_class_named_dotdot_does_not_drop_the_models_metric_batch(tmp_path):
    import mlflow
    from mlflow.tracking import MlflowClient

    from tasks import tracking

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    client = MlflowClient()
    experiment = client.create_experiment("hostile", artifact_location=(tmp_path / "art").as_uri())
    run = client.create_run(experiment).info.run_id
    metrics = {
        "test/accuracy": 0.5,
        "test/accuracy/..": 1.0,
        "test/accuracy/.": 0.25,
        "test/accuracy/a@b": 0.0,
        "test/accuracy/__": 0.75,
        "test/accuracy/" + "x" * 400: 0.1,
    }
    tracking.log_metrics(run, metrics)
    logged = client.get_run(run).data.metrics
    assert len(logged) == len(metrics) and logged["test/accuracy"] == 0.5 and logged["test/accuracy/__"] == 0.75
    assert sorted(logged.values()) == sorted(metrics.values())  # nothing lost, nothing merged
    ledger.record("class names '..', '.', 'a@b', 400 characters (MLflow metric batch)", inputs=4)


def test_names_starting_a_formula_are_written_as_text_in_every_csv(tmp_path):
    import csv

    import numpy as np

    from videolstm.evaluation.scoring import score_classification
    from videolstm.inference import Predictions

    classes = ['=HYPERLINK("http://x.example","y")', "+1", "-2+3", "@SUM(A1)"]
    videos = ["=cmd|' /C calc'!A0", "+x/v", "@v", "-v"]
    probabilities = np.eye(4, dtype=np.float64)
    predictions = Predictions(video_ids=videos, labels=np.arange(4), probabilities=probabilities)
    score_classification(predictions, classes, tmp_path, "hostile")
    cells = []
    for name in ("predictions.csv", "per_class_accuracy.csv", "confusion_matrix.csv"):
        with open(tmp_path / name, newline="") as fh:
            cells += [cell for row in csv.reader(fh) for cell in row]
    dangerous = [c for c in cells if c[:1] in ("=", "+", "@") or (c[:1] == "-" and not _is_number(c))]
    assert not dangerous, dangerous
    assert '\'=HYPERLINK("http://x.example","y")' in cells and "'=cmd|' /C calc'!A0" in cells
    ledger.record("class and video names starting =, +, -, @ (CSV files)", inputs=8)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


# --------------------------------------------------------------------------------------------
# 9. secrets in URIs


SECRET = "Sig-Sentinel-9f8e7d"


def test_presigned_url_and_any_userinfo_never_reach_params_records_warnings_or_messages(http_server, tmp_path, monkeypatch):
    from tasks.tracking import config_params, redact
    from videolstm.config import ConfigError, load_config
    from videolstm.data.datasets.download import UnverifiedDownloadWarning
    from videolstm.data.datasets.prepare import prepare_dataset

    presigned = f"/splits.zip?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIA-SENTINEL%2F20260101&X-Amz-Signature={SECRET}&X-Amz-Security-Token={SECRET}"
    # params: a presigned mirror URL is accepted in the configuration but logged redacted
    config = load_config({"dataset": {"kind": "ucf101", "download": {"urls": [http_server.url(presigned)]}}})
    params = json.dumps(config_params(config))
    assert SECRET not in params and "AKIA-SENTINEL" not in params and "X-Amz-Signature=***" in params
    # .verified.json, the warning and the extraction marker of a real prepare_dataset run
    http_server.state.files[presigned] = hostile.zip_bytes({"ucfTrainTestlist/classInd.txt": b"1 A\n"})
    monkeypatch.setenv("VIDEOLSTM_CACHE_DIR", str(tmp_path / "cache"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        prepare_dataset("ucf101", str(tmp_path / "ds"), [http_server.url(presigned)], verify=False)
    assert any(issubclass(w.category, UnverifiedDownloadWarning) for w in caught)
    records = [p for p in tmp_path.rglob("*.json") if p.is_file()]
    assert any(p.name == "splits.zip.verified.json" for p in records) and any(".videolstm-extracted" in p.parts for p in records)
    texts = [str(w.message) for w in caught] + [p.read_text() for p in records]
    assert not [t for t in texts if SECRET in t or "AKIA-SENTINEL" in t], texts
    assert "X-Amz-Signature=***" in " ".join(texts)
    # userinfo in any form: refused in the configuration, never echoed
    for uri in (
        f"https://{SECRET}@mlflow.example/api",
        f"https://alice:pass {SECRET}@mlflow.example",
        f"https://:{SECRET}@host",
        f"https://alice:{SECRET}@h@host/x",
    ):
        with pytest.raises(ConfigError) as error:
            load_config({"dataset": {"kind": "ucf101"}, "mlflow": {"tracking_uri": uri}})
        assert SECRET not in str(error.value) and "mlflow.tracking_uri" in str(error.value)
        assert SECRET not in redact(f"log line: {uri} failed")
    ledger.record("presigned URL, token-only, spaced and '@' passwords (params, records, warnings, messages)", inputs=5)
