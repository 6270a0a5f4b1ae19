"""The repository's layout, read from the code: flows → tasks → videolstm and never back, no
import circle anywhere, and inside the library and inside tasks/ no module imports a layer above
its own (the layer orders are declared below)."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "videolstm"

#: The repository's top-level code folders, lowest first: a folder imports only its own and lower ones.
TIERS = ("videolstm", "tasks", "flows", "benchmarks", "scripts")

#: The library's layers, lowest first. A module imports only modules of its own layer or below,
#: so each pipeline stage builds on the ones it needs and nothing reaches back up.
LIBRARY_LAYERS: tuple[tuple[str, ...], ...] = (
    ("videolstm", "videolstm.messages"),  # the package root (the version) and message hygiene
    ("videolstm.config",),  # the typed configuration every stage takes
    ("videolstm.store",),  # what every stage writes: storage, safe paths, shards, manifests, lineage, checkpoints
    ("videolstm.data", "videolstm.features"),  # stages 1–4: datasets, decoding, flow; frame CNNs and features
    ("videolstm.models",),  # stage 5's model zoo (rebuilding a checkpoint's frame CNN or variant included)
    ("videolstm.loader", "videolstm.inference"),  # batches read ahead, the test protocol over shards
    ("videolstm.evaluation",),  # stages 6–7: metrics, localization, calibration, scoring, reports
    # the recipe ablation's attention from outside (oracle maps, motion prior) renders maps with the
    # evaluation's box and calibration functions, and the training step uses it
    ("videolstm.attention_guidance",),
    ("videolstm.training",),  # the step and the epoch, snippet and frame batches, the validation split
    ("videolstm.evaluation.attention_health",),  # attention health per epoch: reads training's batches
    ("videolstm.prediction",),  # a trained model on a new video: every stage above for one file
)

#: tasks/' layers, lowest first: the shared pieces (console, Ray runtime, MLflow, storage leases),
#: then the stages, each stage above the stages whose results it reads.
TASK_LAYERS: tuple[tuple[str, ...], ...] = (
    (
        "tasks",
        "tasks.console",
        "tasks.console_log",
        "tasks.remote_progress",
        "tasks.attempts",
        "tasks.tracking",
        "tasks.mlflow_pyfunc",
        "tasks.mlflow_video_pyfunc",
        "tasks.attention_targets",
    ),
    ("tasks.runtime", "tasks.leases", "tasks.stage_models"),
    ("tasks.dataset", "tasks.frames_flow"),
    ("tasks.train_loop", "tasks.mlflow_model", "tasks.train", "tasks.features"),
    ("tasks.evaluate",),
    ("tasks.predict", "tasks.report", "tasks.reevaluate", "tasks.sweep"),
    ("tasks.stages",),  # the stage graph: names every stage above (by module path, imported when run)
)


def module_name(path: Path) -> str:
    return ".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")


def imported_modules(path: Path, modules: set[str]) -> set[str]:
    """Every repository module ``path`` imports, at module level or inside a function."""
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


def import_graph(folders: tuple[str, ...] = TIERS) -> dict[str, set[str]]:
    """module → the repository modules it imports, over every ``*.py`` of ``folders``."""
    paths = {module_name(p): p for folder in folders for p in (REPO / folder).rglob("*.py") if "__pycache__" not in p.parts}
    return {name: imported_modules(path, set(paths)) - {name} for name, path in paths.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle as a list of modules (first == last), or None (depth-first search)."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def layer_of(module: str, layers: tuple[tuple[str, ...], ...]) -> int | None:
    """Index of the layer whose longest-matching prefix names ``module`` (None: not in any layer).
    A top-level package name (``videolstm``, ``tasks``) names the package's ``__init__`` only."""
    best: tuple[int, int] | None = None
    for index, layer in enumerate(layers):
        for prefix in layer:
            if module == prefix or ("." in prefix and module.startswith(prefix + ".")):
                if best is None or len(prefix) > best[1]:
                    best = (index, len(prefix))
    return None if best is None else best[0]


def upward_imports(graph: dict[str, set[str]], layers: tuple[tuple[str, ...], ...]) -> list[str]:
    """Every import of ``graph`` from a module to a module of a higher layer, as ``a → b``."""
    wrong = []
    for module, imports in sorted(graph.items()):
        own = layer_of(module, layers)
        if own is None:
            continue
        for target in sorted(imports):
            other = layer_of(target, layers)
            if other is not None and other > own:
                wrong.append(f"{module} → {target}")
    return wrong


def tier(module: str) -> int:
    return TIERS.index(module.split(".", 1)[0])


# --- the checks' own checks: each can fail --------------------------------------------------


def test_find_cycle_sees_a_circle_hidden_in_a_function_level_import():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_imported_modules_sees_function_level_and_from_imports(tmp_path):
    source = tmp_path / "m.py"
    source.write_text("import a.b\ndef f():\n    from c import d\n    from e import x\n")
    assert imported_modules(source, {"a.b", "c", "c.d", "e"}) == {"a.b", "c", "c.d", "e"}


def test_upward_imports_names_an_arrow_back_up_and_spares_the_downward_ones():
    layers = (("p.low",), ("p.mid",), ("p.high",))
    graph = {"p.high.x": {"p.mid.y", "p.low"}, "p.mid.y": {"p.low.z", "p.high.x"}, "p.low.z": set()}
    assert upward_imports(graph, layers) == ["p.mid.y → p.high.x"]
    assert layer_of("videolstm.store.checkpoint", LIBRARY_LAYERS) == 2
    assert layer_of("videolstm.models.restore", LIBRARY_LAYERS) == 4
    assert layer_of("videolstm.evaluation.attention_health", LIBRARY_LAYERS) > layer_of("videolstm.evaluation.scoring", LIBRARY_LAYERS)
    assert layer_of("videolstm.undeclared_module", LIBRARY_LAYERS) is None


# --- the repository ---------------------------------------------------------------------------


def test_the_graph_reads_every_folder_of_the_repository():
    graph = import_graph()
    for module in ("videolstm.data.datasets.index", "tasks.train", "flows.cli", "benchmarks.paper_scale", "scripts.config_reference"):
        assert module in graph, module
    assert graph["videolstm.data.datasets.index"] and graph["flows.cli"]


def test_imports_run_flows_to_tasks_to_videolstm_never_back():
    graph = import_graph()
    wrong = [f"{a} → {b}" for a, imports in sorted(graph.items()) for b in sorted(imports) if tier(b) > tier(a)]
    assert not wrong, f"imports against the direction {' → '.join(reversed(TIERS))}: {wrong}"


def test_the_repository_import_graph_has_no_circle():
    graph = import_graph()
    cycle = find_cycle(graph)
    assert cycle is None, f"import circle: {' -> '.join(cycle)}"


def test_every_library_module_has_a_declared_layer():
    undeclared = [m for m in import_graph(("videolstm",)) if layer_of(m, LIBRARY_LAYERS) is None]
    assert not undeclared, f"add these to LIBRARY_LAYERS in tests/test_layout.py: {undeclared}"


def test_no_library_module_imports_a_layer_above_its_own():
    wrong = upward_imports(import_graph(("videolstm",)), LIBRARY_LAYERS)
    assert not wrong, f"arrows back up inside the library: {wrong}"


def test_every_tasks_module_has_a_declared_layer():
    undeclared = [m for m in import_graph(("tasks",)) if layer_of(m, TASK_LAYERS) is None]
    assert not undeclared, f"add these to TASK_LAYERS in tests/test_layout.py: {undeclared}"


def test_no_tasks_module_imports_a_layer_above_its_own():
    wrong = upward_imports(import_graph(("tasks",)), TASK_LAYERS)
    assert not wrong, f"arrows back up inside tasks/: {wrong}"


def test_every_stage_folder_exists_and_holds_its_modules():
    expected = {
        "data": {"video.py", "flow.py", "frames_flow.py", "datasets"},
        "store": {"storage.py", "shards.py", "manifest.py", "lineage.py", "checkpoint.py"},
        "features": {"backbones.py", "inputs.py", "extraction.py"},
        "models": {"cells.py", "attention.py", "variants.py", "registry.py", "functional.py", "protocol.py", "restore.py"},
        "evaluation": {"metrics.py", "localization.py", "scoring.py", "plots.py", "report.py"},
    }
    for folder, names in expected.items():
        present = {p.name for p in (PACKAGE / folder).iterdir() if p.name != "__pycache__"}
        assert names <= present, f"videolstm/{folder} lacks {names - present}"


def test_the_old_import_paths_are_gone():
    """The deprecation shims of the previous release are deleted (CHANGELOG.md)."""
    for old in ("datasets", "flow.py", "shards.py", "video.py"):
        assert not (PACKAGE / old).exists(), f"videolstm/{old} should be gone; import from videolstm.data / videolstm.store"


def test_tests_mirror_the_library_folders():
    for folder in ("data", "store", "features", "models", "evaluation"):
        assert (REPO / "tests" / folder / "__init__.py").is_file(), f"tests/{folder}/ should mirror videolstm/{folder}/"


def test_layout_page_names_every_library_folder_and_module():
    layout = (REPO / "docs" / "layout.md").read_text()
    for path in sorted(PACKAGE.iterdir()):
        if path.name.startswith("__"):
            continue
        assert path.name.removesuffix(".py") in layout, f"docs/layout.md does not mention videolstm/{path.name}"
