"""The mutation tool's own set-up (``make mutation``): the scratch copy it mutates."""

from __future__ import annotations

import tempfile
import tomllib
from pathlib import Path

from tests.mutation.mutate import ROOT, scratch_copy


def test_the_scratch_copy_fills_a_fresh_temporary_folder_and_scopes_mutmut_to_the_module():
    with tempfile.TemporaryDirectory(prefix="mut-") as tmp:  # what mutate.py's main makes: the folder exists
        dest = Path(tmp)
        scratch_copy("videolstm/loader.py", ["tests/test_loader.py"], dest)
        assert (dest / "videolstm" / "loader.py").read_bytes() == (ROOT / "videolstm" / "loader.py").read_bytes()
        assert not (dest / ".venv").exists() and not (dest / ".git").exists()
        settings = tomllib.loads((dest / "pyproject.toml").read_text())["tool"]["mutmut"]
        assert settings["only_mutate"] == ["videolstm/loader.py"]
        assert settings["pytest_add_cli_args_test_selection"] == ["tests/test_loader.py"]
