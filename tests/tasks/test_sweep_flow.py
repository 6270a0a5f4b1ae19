"""The sweep flow's parameters: exactly one of a sweep or a sweep file, the file a relative path inside the working directory."""

from __future__ import annotations

import pytest

from flows.sweep import resolve_spec
from videolstm.config import ConfigError
from videolstm.evaluation.sweep import load_sweep
from videolstm.store.safepath import UnsafeNameError

SPEC = {"name": "s", "seeds": [0], "baseline": "a", "arms": {"a": {}}}


def test_the_sweep_file_parameter_is_read_relative_to_the_working_directory(tmp_path, monkeypatch):
    (tmp_path / "sweeps").mkdir()
    (tmp_path / "sweeps" / "s.yaml").write_text("name: s\nseeds: [0, 1]\nbaseline: a\narms: {a: {}, b: {train.lr: 0.01}}\n")
    monkeypatch.chdir(tmp_path)
    assert resolve_spec(None, "sweeps/s.yaml").arm_names() == ["a", "b"]


@pytest.mark.parametrize("path", ["/etc/passwd", "../s.yaml", "sweeps/../../s.yaml"])
def test_a_sweep_file_outside_the_working_directory_is_refused(path):
    with pytest.raises(UnsafeNameError):
        resolve_spec(None, path)


def test_exactly_one_of_spec_and_sweep_file():
    spec = load_sweep(SPEC)
    assert resolve_spec(spec, None) is spec
    with pytest.raises(ConfigError, match="exactly one"):
        resolve_spec(spec, "x.yaml")
    with pytest.raises(ConfigError, match="exactly one"):
        resolve_spec(None, None)
