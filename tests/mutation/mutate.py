"""Run mutmut on one module of the study's code, in a scratch copy, and print its score.

    python tests/mutation/mutate.py videolstm/evaluation/claims.py [--keep DIR]

What it does, in order:
1. copies the work tree (without .venv, .git, runs, caches) to a fresh scratch folder, so the
   mutants never touch the files other people run tests on;
2. writes into the copy's ``pyproject.toml`` the module to mutate (``only_mutate``) and the test
   files that check it (``pytest_add_cli_args_test_selection``), both read from
   ``tests/mutation/modules.toml``; the rest of mutmut's settings are ``[tool.mutmut]`` in
   ``pyproject.toml``;
3. runs ``mutmut run --max-children 1`` there (one worker: the CPU is shared);
4. reads every mutant's status, removes the accepted equivalent mutants listed in
   ``tests/mutation/equivalent.toml`` (each entry names the mutant AND the changed line, so an
   entry that no longer matches the code is reported as stale instead of silently hiding a new
   mutant), applies each listed import-time mutant (code run when the module is imported, which
   mutmut cannot switch on) to the copy's source and runs the test named to kill it, and prints
   ``killed / non-equivalent`` with the survivors' diffs.

Exit status: 0 when the score is at least ``--fail-under`` percent (default 90), 1 otherwise,
2 on a stale equivalent entry or a configuration error.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import tomllib
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
_SKIP = {".venv", ".git", "runs", "mutants", ".prefect", ".pytest_cache", "__pycache__", "mlruns", "mlartifacts"}


@dataclass(frozen=True)
class Equivalent:
    """One accepted equivalent mutant: its mutmut name, the changed line, and why no input tells it apart."""

    mutant: str
    line: str
    reason: str


@dataclass(frozen=True)
class ImportTime:
    """A mutant of code that runs when the module is imported (a module-level constant built by a
    function): mutmut switches mutants on at call time, after the import, so it cannot run it.
    It is applied to the scratch copy's source instead and ``killed_by`` must then fail."""

    mutant: str
    line: str
    killed_by: str


def load_modules() -> dict[str, list[str]]:
    """``{module path: [test files]}`` from modules.toml."""
    data = tomllib.loads((HERE / "modules.toml").read_text("utf-8"))
    return {module: [t for t in entry["tests"] if (ROOT / t).exists()] for module, entry in data["modules"].items()}


def load_equivalents() -> list[Equivalent]:
    data = tomllib.loads((HERE / "equivalent.toml").read_text("utf-8"))
    return [Equivalent(e["mutant"], e["line"], e["reason"]) for e in data.get("equivalent", [])]


def load_import_time() -> list[ImportTime]:
    data = tomllib.loads((HERE / "equivalent.toml").read_text("utf-8"))
    return [ImportTime(e["mutant"], e["line"], e["killed_by"]) for e in data.get("import_time", [])]


def _pytest(cwd: Path, target: str) -> int:
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "-o", "addopts=", target],
        cwd=cwd,
        env=dict(os.environ, OMP_NUM_THREADS="1"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=False,  # a failing test is the expected outcome here
    )
    return run.returncode


def killed_when_applied(cwd: Path, module: str, entry: ImportTime) -> bool:
    """Apply ``entry``'s mutant to the scratch copy's ``module``, run ``killed_by``, restore the file."""
    source = cwd / module
    if not (cwd / entry.killed_by.split("::")[0]).is_file():
        raise SystemExit(f"import-time entry {entry.mutant}: no test file {entry.killed_by}")
    original = source.read_bytes()
    try:
        mutmut(["apply", entry.mutant], cwd)
        code = _pytest(cwd, entry.killed_by)
        if code == 4:  # "found no collectors": the module under test no longer imports; run the file
            code = _pytest(cwd, entry.killed_by.split("::")[0])
        # 1: a test failed; 2: the mutated module fails to import (collection error): both a kill
        return code in (1, 2)
    finally:
        source.write_bytes(original)


def _ignore(_dir: str, names: list[str]) -> set[str]:
    return {n for n in names if n in _SKIP or n.endswith(".egg-info")}


def scratch_copy(module: str, tests: list[str], dest: Path) -> None:
    """Copy the tree to ``dest`` and scope mutmut's settings in its pyproject.toml to ``module``."""
    shutil.copytree(ROOT, dest, ignore=_ignore, symlinks=True, dirs_exist_ok=True)  # dest: a fresh mkdtemp folder
    pyproject = dest / "pyproject.toml"
    text = pyproject.read_text("utf-8")
    if "[tool.mutmut]" not in text:
        raise SystemExit("pyproject.toml has no [tool.mutmut] section")
    scoped = f"[tool.mutmut]\nonly_mutate = [{module!r}]\npytest_add_cli_args_test_selection = {[*tests]!r}\n"
    pyproject.write_text(text.replace("[tool.mutmut]\n", scoped, 1), "utf-8")


def mutmut(args: list[str], cwd: Path, capture: bool = False) -> str:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    done = subprocess.run(
        [str(Path(sys.executable).parent / "mutmut"), *args],
        cwd=cwd,
        env=env,
        check=True,
        text=True,
        stdout=subprocess.PIPE if capture else None,
    )
    return done.stdout or ""


_REPORT = """
import json, sys
from pathlib import Path
from mutmut.mutation.data import SourceFileMutationData
from mutmut.mutation.diff_apply import get_diff_for_mutant
from mutmut.stats import status_by_exit_code
m = SourceFileMutationData(path=Path(sys.argv[1]))
m.load()
out = {}
for name, code in m.exit_code_by_key.items():
    status = status_by_exit_code[code]
    out[name] = {"status": status, "diff": get_diff_for_mutant(name, path=m.path)}
print(json.dumps(out))
"""


def results(cwd: Path, module: str) -> dict[str, dict[str, str]]:
    """``{mutant name: {"status": ..., "diff": ...}}`` of ``module``, read in one process."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    done = subprocess.run([sys.executable, "-c", _REPORT, module], cwd=cwd, env=env, check=True, text=True, stdout=subprocess.PIPE)
    return json.loads(done.stdout.strip().splitlines()[-1])


def added_lines(diff: str) -> list[str]:
    """The lines a mutant's diff adds (its ``+`` side), stripped."""
    return [line[1:].strip() for line in diff.splitlines() if line.startswith("+") and not line.startswith("+++")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("module", help="e.g. videolstm/evaluation/claims.py (a key of modules.toml)")
    parser.add_argument("--fail-under", type=float, default=90.0)
    parser.add_argument("--keep", type=Path, help="scratch folder to use and keep (default: a temporary one, removed)")
    args = parser.parse_args(argv)

    modules = load_modules()
    if args.module not in modules:
        print(f"{args.module} is not in tests/mutation/modules.toml; known: {', '.join(modules)}", file=sys.stderr)
        return 2
    dotted = args.module.removesuffix(".py").replace("/", ".") + "."
    equivalents = [e for e in load_equivalents() if e.mutant.startswith(dotted)]
    import_time = [e for e in load_import_time() if e.mutant.startswith(dotted)]

    scratch = args.keep or Path(tempfile.mkdtemp(prefix="mut-"))
    if args.keep and scratch.exists():
        shutil.rmtree(scratch)
    try:
        scratch_copy(args.module, modules[args.module], scratch)
        print(f"mutating {args.module} in {scratch} with tests {modules[args.module]}", flush=True)
        mutmut(["run", "--max-children", "1"], scratch)
        found = results(scratch, args.module)
        status = {name: r["status"] for name, r in found.items()}

        listed = [*equivalents, *import_time]
        stale = [e for e in listed if e.mutant not in found or e.line.strip() not in added_lines(found[e.mutant]["diff"])]
        if stale:
            for e in stale:
                print(f"STALE equivalent entry (mutant gone or its change differs): {e.mutant}: {e.line}", file=sys.stderr)
            return 2
        accepted = {e.mutant for e in equivalents}
        counted = {name: s for name, s in status.items() if name not in accepted}
        for entry in import_time:
            if counted[entry.mutant] != "killed":
                counted[entry.mutant] = "killed" if killed_when_applied(scratch, args.module, entry) else "survived (applied)"
                print(f"import-time mutant {entry.mutant}: {counted[entry.mutant]} by {entry.killed_by}", flush=True)
        killed = [n for n, s in counted.items() if s in ("killed", "timeout")]
        alive = sorted(n for n, s in counted.items() if s not in ("killed", "timeout"))
        for name in alive:
            print(f"--- {counted[name]}: {name}")
            print(found[name]["diff"])
        total = len(counted)
        score = 100.0 * len(killed) / total if total else 100.0
        print(
            f"SCORE {args.module}: {len(killed)} killed / {total} non-equivalent = {score:.1f} % ({len(accepted)} accepted equivalent, {len(status)} generated)"
        )
        return 0 if score >= args.fail_under else 1
    finally:
        if not args.keep:
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
