"""`--wait`: follow a process as it goes, one line on stderr per change of its status or
stage, and come back when it ends or parks for a person, saying why."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from temporalio.client import Client, WorkflowFailureError
from temporalio.exceptions import FailureError

from starter.client import PARKED, watch_process
from starter.console import EXIT_DONE, EXIT_PARKED, EXIT_SYSTEM, err, note
from workflows.kit.status import Status


@dataclass
class Outcome:
    workflow_id: str
    status: str
    message: str
    exit_code: int
    state: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"workflow_id": self.workflow_id, "status": self.status, "message": self.message, "state": self.state}


def waiting_for(state: dict[str, Any]) -> str:
    """What a process waits for, in the words of its current-details line."""
    attention = state.get("attention")
    if attention:
        return f"{attention['step']}: {attention['message']} (answer with {'/'.join(attention['actions'])})"
    request = (state.get("approval") or {}).get("request") or {}
    if state.get("status") == Status.AWAITING_APPROVAL and request:
        return f"waiting for a {request.get('required_role')}: " + "; ".join(request.get("reasons", []))
    return ""


def change_line(state: dict[str, Any]) -> str:
    line = f"{state.get('status')}: {state.get('stage')}"
    details = waiting_for(state)
    return f"{line} · {details}" if details else line


async def follow(client: Client, workflow_id: str, *, answered: bool = False) -> Outcome:
    """Watch `workflow_id` until it ends (exit 0; 1 if it failed) or parks (exit 3); with
    `answered`, it was just answered where it parked (see watch_process)."""
    state: dict[str, Any] = {}
    with err.status(f"{workflow_id}: starting") as spinner:
        async for state in watch_process(client, workflow_id, answered=answered):
            note(f"{workflow_id}  {change_line(state)}")
            spinner.update(f"{workflow_id}: {state.get('stage')}")
    status = str(state.get("status"))
    if status in PARKED:
        return Outcome(workflow_id, status, waiting_for(state) or str(state.get("stage")), EXIT_PARKED, state)
    try:
        result = await client.get_workflow_handle(workflow_id).result()
    except WorkflowFailureError as failure:
        cause = failure.cause.message if isinstance(failure.cause, FailureError) else str(failure)
        return Outcome(workflow_id, Status.FAILED.value, cause, EXIT_SYSTEM, state)
    message = result.get("message", "") if isinstance(result, dict) else getattr(result, "message", "")
    return Outcome(workflow_id, status, message, EXIT_DONE, state)
