"""Asking one process something from the CLI (its state, an approval, a resolution), bounded
by how long a worker may take. When Temporal answered but the process could not, say which
it is: no such process, a finished one, or a running one that no worker serves. Only a
Temporal that does not answer at all suggests that `o2c dev` may not be running."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from datetime import timedelta
from typing import TypeVar

from temporalio.client import Client, WorkflowExecutionStatus, WorkflowUpdateRPCTimeoutOrCancelledError
from temporalio.service import RPCError, RPCStatusCode

from settings import Settings
from starter.console import Refused, SystemProblem
from starter.problems import temporal_unreachable

T = TypeVar("T")

# What Temporal answers when a query or an update found no worker to run it.
NO_WORKER = frozenset(
    {
        RPCStatusCode.FAILED_PRECONDITION,  # "no poller seen for task queue recently"
        RPCStatusCode.DEADLINE_EXCEEDED,
        RPCStatusCode.CANCELLED,
        RPCStatusCode.UNAVAILABLE,
    }
)
DESCRIBE_TIMEOUT = timedelta(seconds=5)


async def ask(client: Client, workflow_id: str, call: Awaitable[T], settings: Settings, *, answer: bool) -> T:
    """`call`'s result. `answer` says whether the call answers the process (an update: an
    approval, a resolution) rather than reads it (a query)."""
    try:
        return await asyncio.wait_for(call, settings.worker_answer_seconds)
    except (TimeoutError, WorkflowUpdateRPCTimeoutOrCancelledError):  # no worker took the update in time
        raise await unanswered(client, workflow_id, settings, answer=answer) from None
    except RPCError as error:
        if error.status not in NO_WORKER:
            raise  # no such process, a validator's refusal: said as they are
        raise await unanswered(client, workflow_id, settings, answer=answer) from None


async def unanswered(client: Client, workflow_id: str, settings: Settings, *, answer: bool) -> Exception:
    """Why a process did not answer, as Temporal describes it."""
    try:
        described = await client.get_workflow_handle(workflow_id).describe(rpc_timeout=DESCRIBE_TIMEOUT)
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND:
            return Refused(f"no such process: Temporal has no workflow {workflow_id}")
        return temporal_unreachable(settings, error.message)
    status = described.status
    if status is not None and status != WorkflowExecutionStatus.RUNNING:
        how = status.name.lower().replace("_", " ")
        if answer:
            return Refused(f"{workflow_id} has already finished ({how}); nothing to answer")
        return SystemProblem(
            f"{workflow_id} has finished ({how}); its state is read on a worker, and none serves task queue "
            f"{described.task_queue}: start one (`o2c worker`, or `o2c dev`)"
        )
    waited = f"{settings.worker_answer_seconds:g} s"
    unconfirmed = (
        " The answer is not confirmed: it may still be taken when a worker starts, so check "
        f"`o2c status {workflow_id}` before answering again."
        if answer
        else ""
    )
    return SystemProblem(
        f"{workflow_id} is running, but no worker answered for it within {waited} (task queue "
        f"{described.task_queue}): is `o2c worker` (or `o2c dev`) running?{unconfirmed}"
    )
