"""The README's promises: two quick-start commands, CI runs the test one, the config reference is complete."""

from __future__ import annotations

import re
from pathlib import Path

from videolstm.config import BenchmarkConfig, Section

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()


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


def test_quick_start_has_exactly_two_commands_and_both_are_make_targets():
    commands = quick_start_commands()
    assert commands == ["make benchmark", "make test"]
    makefile = (REPO / "Makefile").read_text()
    for command in commands:
        assert re.search(rf"^{command.split()[1]}:", makefile, re.M), command


def test_ci_runs_the_readme_test_command_and_nothing_else():
    lines = [l for l in (REPO / ".ci/run").read_text().splitlines() if l.strip() and not l.startswith("#")]
    assert lines[-1].strip() == "exec make test"
    assert not any(re.search(r"\b(pytest|pip|python)\b", l) for l in lines)


def test_configuration_reference_lists_every_key_with_its_default():
    reference = README.split("## Configuration reference", 1)[1].split("\n## ", 1)[0]
    missing = [key for key in config_keys() if f"| `{key}` |" not in reference]
    assert not missing, f"README configuration reference lacks {missing}"
    documented = set(re.findall(r"^\| `([a-z0-9_.]+)` \|", reference, re.M))
    assert documented <= set(config_keys()), f"README documents keys that do not exist: {documented - set(config_keys())}"


def test_readme_has_performance_figures_and_no_placeholders():
    assert "## Performance" in README and "PLACEHOLDER" not in README
