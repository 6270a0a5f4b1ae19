"""The README's and docs/' promises: one screen, two quick-start commands, CI runs the test one,
every link lands on a file, every command in them parses (the cheap ones run), and the
configuration reference is the one generated from the schema."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from videolstm.config import BenchmarkConfig, Section

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()
DOCS = sorted((REPO / "docs").glob("*.md"))
PAGES = [REPO / "README.md", *DOCS]

#: Pages and CLI commands that other open issues deliver (linked today, written by their owners).
#: A name leaves this set once it exists; test_promised_pages_are_still_missing keeps it honest.
PROMISED_PAGES: set[str] = set()
PROMISED_COMMANDS: set[str] = set()

#: Tools a page may name that are not this project's (checked elsewhere or not installable here).
EXTERNAL_TOOLS = {"prefect", "ray", "docker", "kubectl", "mlflow", "apt-get", "sudo", "brew", "pip", "curl"}


def config_keys(model: type[Section] = BenchmarkConfig, prefix: str = "") -> list[str]:
    keys = []
    for name, field in model.model_fields.items():
        if isinstance(field.annotation, type) and issubclass(field.annotation, Section):
            keys += config_keys(field.annotation, f"{prefix}{name}.")
        else:
            keys.append(f"{prefix}{name}")
    return keys


def quick_start_commands() -> list[str]:
    section = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    return [line.split("#", 1)[0].strip() for line in block.splitlines() if line.split("#", 1)[0].strip()]


def rel(path: Path) -> str:
    return str(path.relative_to(REPO))


OUR_COMMAND = r"^(\.venv/bin/\S+ |videolstm [a-z]|make [a-z]|benchmarks/\w+\.py )"


def block_commands(text: str) -> list[str]:
    """Every command of the page's ```bash blocks (and this project's commands in unlabelled
    ``` blocks), continuation lines joined, comments cut."""
    commands = []
    for language, block in re.findall(r"```(\w*)\n(.*?)```", text, re.S):
        if language not in ("bash", "sh", ""):
            continue
        for line in block.replace("\\\n", " ").splitlines():
            command = re.sub(r"\s+#\s.*$", "", line).strip()
            if command and not command.startswith("#") and (language or re.match(OUR_COMMAND, command)):
                commands.append(command)
    return commands


def inline_commands(text: str) -> list[str]:
    """Inline code spans that are commands of this project (`.venv/bin/…`, `videolstm …`, `make …`)."""
    prose = re.sub(r"```.*?```", "", text, flags=re.S)  # fenced blocks are block_commands' business
    spans = [" ".join(span.split()) for span in re.findall(r"`([^`]+)`", prose)]
    return [span for span in spans if re.match(OUR_COMMAND, span)]


def page_commands() -> list[tuple[str, str]]:
    return [(rel(page), command) for page in PAGES for command in block_commands(page.read_text()) + inline_commands(page.read_text())]


REPO_FOLDERS = ("videolstm/", "tasks/", "flows/", "tests/", "benchmarks/", "scripts/", "infra/", "configs/", "docs/", ".ci/")


def test_every_file_of_the_repository_a_page_names_exists():
    """Inline code naming a path of this repository (`videolstm/…`, `tests/…::test`, …) names a real file."""
    missing = []
    for page in PAGES:
        for span in re.findall(r"`([^`\s]+)`", page.read_text()):
            path = span.split("::", 1)[0].split(":", 1)[0]
            if path.startswith(REPO_FOLDERS) and not any(c in path for c in "*<…{"):
                if not (REPO / path).exists():
                    missing.append(f"{rel(page)}: {span}")
    assert not missing, f"pages name files that do not exist: {missing}"


def test_readme_fits_in_one_screen_of_200_lines():
    assert len(README.splitlines()) <= 200, f"README.md has {len(README.splitlines())} lines; move reference material to docs/"


def test_quick_start_has_exactly_two_commands_and_both_are_make_targets():
    commands = quick_start_commands()
    assert commands == ["make benchmark", "make test"]
    makefile = (REPO / "Makefile").read_text()
    for command in commands:
        assert re.search(rf"^{command.split()[1]}:", makefile, re.M), command


def test_make_test_runs_the_linter_the_format_check_and_the_type_checker_before_the_tests():
    recipe = re.search(r"^test:.*\n((?:\t.*\n)+)", (REPO / "Makefile").read_text(), re.M).group(1).split("\n")
    commands = [line.strip() for line in recipe if line.strip()]
    assert commands == [
        "$(BIN)/ruff check .",
        "$(BIN)/ruff format --check .",
        "$(BIN)/mypy videolstm",
        "$(BIN)/python -m pytest $(PYTEST_ARGS)",
    ]
    pyproject = (REPO / "pyproject.toml").read_text()
    assert "[tool.ruff.lint]" in pyproject and "[tool.mypy]" in pyproject


def test_ci_runs_the_readme_test_command_and_nothing_else():
    lines = [line for line in (REPO / ".ci/run").read_text().splitlines() if line.strip() and not line.startswith("#")]
    assert lines[-1].strip() == "exec make test"
    assert not any(re.search(r"\b(pytest|pip|python)\b", line) for line in lines)


def test_every_docs_page_starts_with_a_title():
    untitled = [rel(page) for page in DOCS if not page.read_text().startswith("# ")]
    assert not untitled, f"pages without a '# Title' first line: {untitled}"


def test_every_relative_link_and_image_lands_on_a_file_of_the_repository():
    broken = []
    for page in PAGES:
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
            if re.match(r"^[a-z]+:", target) or target.startswith("#"):
                continue
            path = (page.parent / target.split("#", 1)[0]).resolve()
            if not path.exists() and rel(path) not in PROMISED_PAGES:
                broken.append(f"{rel(page)} → {target}")
    assert not broken, f"links to nothing: {broken}"


def test_the_readme_links_every_docs_page():
    linked = {rel((REPO / target).resolve()) for target in re.findall(r"\]\((docs/[^)#\s]+)", README)}
    unlinked = [rel(page) for page in DOCS if rel(page) not in linked]
    assert not unlinked, f"docs pages the README does not lead to: {unlinked}"


def test_promised_pages_are_still_missing():
    """A promised page that now exists must leave PROMISED_PAGES, so its links are checked again."""
    present = sorted(page for page in PROMISED_PAGES if (REPO / page).exists())
    assert not present, f"remove {present} from PROMISED_PAGES in tests/test_readme.py"


def test_every_make_command_in_the_pages_names_a_makefile_target():
    targets = set(re.findall(r"^([a-z][\w-]*):", (REPO / "Makefile").read_text(), re.M))
    wrong = [(page, command) for page, command in page_commands() if command.startswith("make ") and shlex.split(command)[1] not in targets]
    assert not wrong, f"make targets that do not exist: {wrong}"


def videolstm_argv(command: str) -> list[str] | None:
    words = shlex.split(command)
    if words[0] in ("videolstm", ".venv/bin/videolstm"):
        return words[1:]
    if words[:3] == ["python", "-m", "flows.cli"]:
        return words[3:]
    return None


def test_every_videolstm_command_in_the_pages_parses():
    from flows.cli import build_parser

    parser = build_parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices
    checked = 0
    for page, command in page_commands():
        argv = videolstm_argv(command)
        if argv is None or (argv and argv[0] in PROMISED_COMMANDS):
            continue
        if len(argv) == 1 or any(mark in command for mark in ("...", "[", "<", "|")):
            # a command named in the text (`videolstm predict`) or a synopsis with placeholders: it exists
            assert argv[0] in commands, f"{page}: `{command}` is not a videolstm command"
            checked += 1
            continue
        try:
            build_parser().parse_args(argv)
        except SystemExit as exc:
            pytest.fail(f"{page}: `{command}` does not parse (exit {exc.code})")
        checked += 1
    assert checked >= 5


def test_the_readme_config_command_runs_and_applies_its_override():
    command = next(c for c in block_commands(README) if videolstm_argv(c) and videolstm_argv(c)[0] == "config")
    result = subprocess.run([str(REPO / ".venv/bin/videolstm"), *videolstm_argv(command)], cwd=REPO, capture_output=True, text=True, check=True, timeout=120)
    assert re.search(r"^  epochs: 4$", result.stdout, re.M), result.stdout[-2000:]


PARSE_ONLY = """
import argparse, json, runpy, sys
class Parsed(BaseException):
    pass
original = argparse.ArgumentParser.parse_args
def parse_then_stop(self, args=None, namespace=None):
    original(self, args, namespace)
    raise Parsed
argparse.ArgumentParser.parse_args = parse_then_stop
failures = []
for script, argv in json.loads(sys.argv[1]):
    sys.argv = [script, *argv]
    try:
        runpy.run_path(script, run_name="__main__")
        failures.append(f"{script}: never parsed its arguments")
    except Parsed:
        pass
    except SystemExit as exc:
        failures.append(f"{script} {' '.join(argv)}: exit {exc.code}")
print(json.dumps(failures))
"""


def script_argv(command: str) -> tuple[str, list[str]] | None:
    words = shlex.split(command)
    if words[0] in (".venv/bin/python", "python") and len(words) > 1 and words[1].endswith(".py"):
        words = words[1:]
    if words[0].endswith(".py") and "/" in words[0]:
        return words[0], words[1:]
    return None


def test_every_script_command_in_the_pages_exists_and_its_arguments_parse():
    """Each named script's own argparse parser accepts the page's arguments; nothing runs past it."""
    scripts, missing = [], []
    for page, command in page_commands():
        found = script_argv(command)
        if found is None:
            continue
        script, argv = found
        if not (REPO / script).is_file():
            missing.append(f"{page}: {script}")
        elif "argparse" not in (REPO / script).read_text():
            missing.append(f"{page}: {script} takes no arguments this test can parse")
        else:
            scripts.append((script, argv))
    assert not missing, missing
    assert scripts
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run([sys.executable, "-c", PARSE_ONLY, json.dumps(scripts)], cwd=REPO, env=env, capture_output=True, text=True, check=True, timeout=300)
    failures = json.loads(result.stdout.strip().splitlines()[-1])
    assert not failures, failures


def test_every_external_tool_a_page_runs_is_a_known_one():
    ours = ("make", "videolstm", ".venv/bin/", "python", "benchmarks/", "scripts/")
    unknown = [(page, command) for page, command in page_commands() if not command.startswith(ours) and shlex.split(command)[0] not in EXTERNAL_TOOLS]
    assert not unknown, f"commands of unknown tools: {unknown}"


def test_configuration_reference_is_generated_from_the_schema_and_up_to_date():
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts/config_reference.py"), "--check"], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, (
        f"docs/configuration.md is out of date with videolstm/config.py; run: .venv/bin/python scripts/config_reference.py\n{result.stderr}"
    )


def test_configuration_reference_lists_every_key_and_only_existing_ones():
    reference = (REPO / "docs/configuration.md").read_text()
    missing = [key for key in config_keys() if f"| `{key}` |" not in reference]
    assert not missing, f"docs/configuration.md lacks {missing}"
    documented = set(re.findall(r"^\| `([a-z0-9_.]+)` \|", reference, re.M))
    assert documented <= set(config_keys()), f"docs/configuration.md documents keys that do not exist: {documented - set(config_keys())}"


def test_configuration_reference_shows_each_default_as_the_schema_has_it():
    reference = (REPO / "docs/configuration.md").read_text()
    defaults = BenchmarkConfig().model_dump(mode="json")
    for key in ("name", "storage.root", "train.epochs", "train.variants", "flow.method", "mlflow.tracking_uri"):
        value = defaults
        for part in key.split("."):
            value = value[part]
        shown = value if isinstance(value, str) else json.dumps(value)
        assert f"| `{key}` |" in reference and f"| `{shown}` |" in reference.split(f"| `{key}` |", 1)[1].split("\n", 1)[0], key


def test_performance_page_has_figures_and_no_placeholders():
    performance = (REPO / "docs/performance.md").read_text()
    assert "clips/s" in performance
    assert not [rel(page) for page in PAGES if "PLACEHOLDER" in page.read_text()]
