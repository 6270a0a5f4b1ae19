"""The stage graph (tasks/stages.py) is the one declaration the flow and the CLI read (issue 23)."""

from __future__ import annotations

import inspect

import pytest

from flows.cli import build_parser
from tasks.stages import PIPELINE, Stage, by_command, stage
from videolstm.store.lineage import STAGE_COMMANDS, STAGES


def test_every_stage_is_declared_once_after_the_stages_it_reads():
    names = [s.name for s in PIPELINE]
    assert len(set(names)) == len(names)
    assert set(names) == set(STAGES) - {"dataset"}  # "dataset" is the index stage's download folder
    for position, s in enumerate(PIPELINE):
        assert set(s.inputs) <= set(names[:position]), (s.name, s.inputs)
    assert set(PIPELINE[-1].inputs) == set(names[:-1])  # the report reads every other stage


@pytest.mark.parametrize("s", PIPELINE, ids=lambda s: s.name)
def test_each_stage_function_takes_the_config_its_inputs_and_the_parent_run(s):
    params = list(inspect.signature(s.run).parameters.values())
    assert params[0].name == "config"
    expected = 1 + (1 if s.collects else len(s.inputs)) + int(s.tracked)
    assert len(params) == expected, (s.name, [p.name for p in params])
    assert (params[-1].name == "parent_run_id") == s.tracked


def test_arguments_are_the_inputs_in_the_functions_order_then_the_parent_run():
    evaluate, report = stage("evaluate"), stage("report")
    results = {name: f"<{name}>" for name in STAGES}
    assert evaluate.arguments("cfg", results, "parent") == ["cfg", *(f"<{n}>" for n in evaluate.inputs), "parent"]
    assert report.arguments("cfg", results, "parent") == ["cfg", [f"<{n}>" for n in report.inputs], "parent"]
    assert stage("features").arguments("cfg", results, "parent") == ["cfg", "<frames_flow>", "<frame_cnn>"]
    with pytest.raises(KeyError, match="no stage 'nope'"):
        stage("nope")


def test_the_cli_has_a_command_per_stage_and_the_flow_a_task_per_stage():
    from flows.full_benchmark import STAGE_TASKS

    parser = build_parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices
    for s in PIPELINE:
        assert s.command == STAGE_COMMANDS[s.name] and s.command in commands
        assert by_command(s.command) is s
        assert STAGE_TASKS[s.name].name == s.name
    assert list(STAGE_TASKS) == [s.name for s in PIPELINE]
    assert by_command("sweep") is None and isinstance(stage("train"), Stage)
