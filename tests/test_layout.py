"""The library's layout: one folder per pipeline stage, no import circle, old entry points kept."""

from __future__ import annotations

import ast
import importlib
import warnings
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "videolstm"


def module_name(path: Path) -> str:
    return ".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")


def imported_modules(path: Path, modules: set[str]) -> set[str]:
    """Every videolstm module ``path`` imports, at module level or inside a function."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # ``from a.b import c`` imports a.b, and a.b.c when c is a module
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        found |= {name for name in names if name in modules}
    return found


def import_graph() -> dict[str, set[str]]:
    paths = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {name: imported_modules(path, set(paths)) - {name} for name, path in paths.items()}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle as a list of modules (first == last), or None (depth-first search)."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_find_cycle_sees_a_circle_hidden_in_a_function_level_import():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_library_import_graph_has_no_circle():
    graph = import_graph()
    assert "videolstm.data.datasets.index" in graph and graph["videolstm.data.datasets.index"]
    assert find_cycle(graph) is None, f"import circle: {' -> '.join(find_cycle(graph))}"


def test_every_stage_folder_exists_and_holds_its_modules():
    expected = {
        "data": {"video.py", "flow.py", "frames_flow.py", "datasets"},
        "store": {"storage.py", "shards.py", "manifest.py", "lineage.py", "checkpoint.py"},
        "features": {"backbones.py", "inputs.py", "extraction.py"},
        "models": {"cells.py", "attention.py", "variants.py", "registry.py", "functional.py", "protocol.py"},
        "evaluation": {"metrics.py", "localization.py", "scoring.py", "plots.py", "report.py"},
    }
    for folder, names in expected.items():
        present = {p.name for p in (PACKAGE / folder).iterdir() if p.name != "__pycache__"}
        assert names <= present, f"videolstm/{folder} lacks {names - present}"


def test_tests_mirror_the_library_folders():
    for folder in ("data", "store", "features", "models", "evaluation"):
        assert (REPO / "tests" / folder / "__init__.py").is_file(), f"tests/{folder}/ should mirror videolstm/{folder}/"


#: (old import path, name, new module): the public entry points kept for this release.
MOVED = [
    ("videolstm.datasets", "load_index", "videolstm.data.datasets"),
    ("videolstm.datasets", "load_ucf101_24", "videolstm.data.datasets"),
    ("videolstm.flow", "compute_flow", "videolstm.data.flow"),
    ("videolstm.flow", "quantize_flow", "videolstm.data.flow"),
    ("videolstm.video", "decode_video", "videolstm.data.video"),
    ("videolstm.shards", "write_shard", "videolstm.store.shards"),
]


@pytest.mark.parametrize("old, name, new", MOVED)
def test_old_import_paths_still_give_the_same_function_with_a_deprecation_warning(old, name, new):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value = getattr(importlib.import_module(old), name)
    assert value is getattr(importlib.import_module(new), name)
    assert any(issubclass(w.category, DeprecationWarning) and new in str(w.message) for w in caught)


def test_entry_points_that_did_not_move_are_where_they_were():
    from videolstm.models import build_model
    from videolstm.training import snippet_batch

    assert callable(build_model) and callable(snippet_batch)


def test_layout_page_names_every_library_folder_and_module():
    layout = (REPO / "docs" / "layout.md").read_text()
    for path in sorted(PACKAGE.iterdir()):
        if path.name.startswith("__") or path.name in {"datasets", "flow.py", "video.py", "shards.py"}:
            continue  # the compatibility paths are documented below the tree
        assert path.name.removesuffix(".py") in layout, f"docs/layout.md does not mention videolstm/{path.name}"
