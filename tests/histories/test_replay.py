"""Every recorded history replays against the current workflow code.

A workflow change that would make a running workflow take a different path on replay
(a new activity, a timer moved, a step reordered, without `workflow.patched`) fails here
with a non-determinism error, before it can strand workflows that are running in
production. How to change a released workflow: docs/workflow-changes.md. How to
re-record: `python -m tests.histories.record` (see its docstring).
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio import workflow
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer, UnsandboxedWorkflowRunner

from tests.histories.record import SCENARIOS
from workflows.registry import ALL_WORKFLOWS

HERE = Path(__file__).parent
HISTORIES = sorted(HERE.glob("*.json"))


def load(path: Path) -> WorkflowHistory:
    return WorkflowHistory.from_json(path.stem, path.read_text())


def workflow_type(path: Path) -> str:
    started = json.loads(path.read_text())["events"][0]["workflowExecutionStartedEventAttributes"]
    return started["workflowType"]["name"]


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_history_replays_against_the_current_code(path: Path):
    replayer = Replayer(workflows=ALL_WORKFLOWS, data_converter=pydantic_data_converter)
    result = await replayer.replay_workflow(load(path), raise_on_replay_failure=False)
    assert result.replay_failure is None, f"{path.name} no longer replays: {result.replay_failure}"


def test_every_scenario_and_every_workflow_has_a_recorded_history():
    recorded = {p.stem for p in HISTORIES}
    assert set(SCENARIOS) <= recorded, f"not recorded: {set(SCENARIOS) - recorded}"
    covered = {workflow_type(p) for p in HISTORIES}
    assert {w.__name__ for w in ALL_WORKFLOWS} <= covered


@workflow.defn(name="AmendmentWorkflow")
class AmendmentWorkflowWithAnUnguardedTimer:
    """What an unguarded change looks like to the replayer: a new first command."""

    @workflow.run
    async def run(self, input: dict) -> None:
        await workflow.sleep(timedelta(minutes=1))


async def test_an_unguarded_change_is_caught():
    """The check above can fail: a changed workflow does not replay an old history."""
    replayer = Replayer(
        workflows=[AmendmentWorkflowWithAnUnguardedTimer],
        data_converter=pydantic_data_converter,
        workflow_runner=UnsandboxedWorkflowRunner(),
    )
    result = await replayer.replay_workflow(load(HERE / "amendment_happy.json"), raise_on_replay_failure=False)
    assert isinstance(result.replay_failure, workflow.NondeterminismError), result.replay_failure
