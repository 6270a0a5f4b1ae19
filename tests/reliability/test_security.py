"""Security: servers on loopback, no secret in what the pipeline records, restricted unpickling."""

from __future__ import annotations

import ast
import ipaddress
import os
from pathlib import Path

import pytest

from tests.reliability import ledger
from tests.reliability.conftest import SENTINELS

pytestmark = pytest.mark.reliability

REPO = Path(__file__).resolve().parents[2]
SOURCE_DIRS = ("videolstm", "tasks", "flows", "benchmarks")
RESTRICTED_UNPICKLER = Path("videolstm/data/datasets/ucf101_24.py")


def _is_loopback(host: str) -> bool:
    address = ipaddress.ip_address(host.split("%")[0])
    mapped = getattr(address, "ipv4_mapped", None)
    return (mapped or address).is_loopback


def test_local_ray_started_by_init_ray_listens_on_loopback_only(local_ray):
    import psutil
    import ray

    node = ray._private.worker._global_node
    session = Path(node.get_session_dir_path()).name
    listening = []
    for proc in psutil.process_iter(["cmdline"]):
        try:
            ours = proc.pid == os.getpid() or session in " ".join(proc.info["cmdline"] or [])
            if ours:
                listening += [
                    (proc.pid, " ".join(proc.info["cmdline"] or [])[:60], c.laddr.ip, c.laddr.port)
                    for c in proc.net_connections(kind="inet")
                    if c.status == psutil.CONN_LISTEN
                ]
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    ray_processes = {pid for pid, *_ in listening if pid != os.getpid()}
    assert len(ray_processes) >= 3, listening  # GCS, raylet, agents, workers: found and checked
    exposed = [entry for entry in listening if not _is_loopback(entry[2])]
    assert not exposed, f"listening beyond loopback: {exposed}"
    assert node.node_ip_address == "127.0.0.1"


def test_config_refuses_a_password_in_a_uri_and_never_echoes_it():
    from tasks.tracking import redact
    from videolstm.config import ConfigError, load_config

    for key, uri in (
        ("mlflow.tracking_uri", "https://alice:pw-Sentinel-42@mlflow.example:5000"),
        ("storage.endpoint_url", "http://alice:pw-Sentinel-42@127.0.0.1:9000"),
    ):
        section, field = key.split(".")
        with pytest.raises(ConfigError) as refused:
            load_config({section: {field: uri}})
        assert key in str(refused.value) and "MLFLOW_TRACKING_PASSWORD" in str(refused.value)
        assert "pw-Sentinel-42" not in str(refused.value)
    # logs and the MLflow UI hint redact user info in any URI they print
    assert "pw-Sentinel-42" not in redact("tracking at https://alice:pw-Sentinel-42@mlflow.example:5000/api")
    ledger.record("URIs holding a password refused", inputs=2)


def test_no_secret_reaches_mlflow_prefect_logs_or_the_run_folder(bad_benchmark):
    b = bad_benchmark
    assert b.rerun_returncode == 0, b.rerun_output[-3000:]
    places = [p for root in (b.store, b.prefect_home) for p in root.rglob("*") if p.is_file()]
    assert any(p.name == "mlflow.db" for p in places) and any(p.name.startswith("prefect.db") for p in places)
    leaks = []
    for secret in SENTINELS.values():
        needle = secret.encode()
        leaks += [str(p) for p in places if needle in p.read_bytes()]
        leaks += [name for name, text in (("killed run output", b.killed_output), ("re-run output", b.rerun_output)) if secret in text]
    assert not leaks, leaks


def _call_name(node: ast.Call) -> str:
    parts = []
    func = node.func
    while isinstance(func, ast.Attribute):
        parts.append(func.attr)
        func = func.value
    if isinstance(func, ast.Name):
        parts.append(func.id)
    return ".".join(reversed(parts))


def _unrestricted_loads(relative: Path, source: str) -> tuple[list[str], int]:
    """(problems, number of torch.load calls) of one source file."""
    problems, torch_loads = [], 0
    for node in ast.walk(ast.parse(source, str(relative))):
        if isinstance(node, ast.ClassDef):
            bases = [ast.unparse(b) for b in node.bases]
            if any(b.endswith("Unpickler") for b in bases) and relative != RESTRICTED_UNPICKLER:
                problems.append(f"{relative}:{node.lineno}: an Unpickler subclass outside {RESTRICTED_UNPICKLER}")
        if not isinstance(node, ast.Call):
            continue
        name = _call_name(node)
        keywords = {k.arg: k.value for k in node.keywords}
        if name.endswith("torch.load"):
            torch_loads += 1
            weights_only = keywords.get("weights_only")
            if not (isinstance(weights_only, ast.Constant) and weights_only.value is True):
                problems.append(f"{relative}:{node.lineno}: torch.load without weights_only=True")
        elif name in UNPICKLING_CALLS and relative != RESTRICTED_UNPICKLER:
            problems.append(f"{relative}:{node.lineno}: {name} (only the restricted unpickler may unpickle)")
        elif name.endswith(("np.load", "numpy.load")):
            allow = keywords.get("allow_pickle")
            if allow is not None and not (isinstance(allow, ast.Constant) and allow.value is False):
                problems.append(f"{relative}:{node.lineno}: {name} with allow_pickle")
    return problems, torch_loads


UNPICKLING_CALLS = (
    "pickle.load",
    "pickle.loads",
    "pickle.Unpickler",
    "cloudpickle.load",
    "cloudpickle.loads",
    "dill.load",
    "dill.loads",
    "joblib.load",
    "pd.read_pickle",
    "pandas.read_pickle",
)


def test_every_pickle_and_checkpoint_load_in_the_source_is_restricted():
    # the check itself catches each kind of unrestricted load
    bad = (
        "import pickle, torch, numpy as np\ntorch.load(f)\ntorch.load(f, weights_only=False)\npickle.loads(b)\n"
        "np.load(f, allow_pickle=True)\nclass U(pickle.Unpickler): pass\n"
    )
    assert len(_unrestricted_loads(Path("videolstm/x.py"), bad)[0]) == 5
    files = sorted(p for d in SOURCE_DIRS for p in (REPO / d).rglob("*.py"))
    assert len(files) > 30
    problems, torch_loads = [], 0
    for path in files:
        found, loads = _unrestricted_loads(path.relative_to(REPO), path.read_text())
        problems += found
        torch_loads += loads
    assert torch_loads >= 2  # checkpoints and backbone weights: both found and checked
    assert not problems, "\n".join(problems)
