"""Temporal schedules o2c runs on its own: created or updated by `o2c schedules apply`."""

from __future__ import annotations

from datetime import timedelta

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleIntervalSpec,
    ScheduleSpec,
    ScheduleUpdate,
    ScheduleUpdateInput,
)

from o2c.starter.config import approval_policy, legal_entities, renewal_policy
from o2c.workflows.renewal_window import RenewalWindowWorkflow, WindowInput

RENEWAL_WINDOW_SCHEDULE = "o2c-renewal-window"


def renewal_window_schedule(task_queue: str) -> Schedule:
    return Schedule(
        action=ScheduleActionStartWorkflow(
            RenewalWindowWorkflow.run,
            WindowInput(policy=renewal_policy(), approvals=approval_policy(), legal_entities=legal_entities()),
            id="renewal-window", task_queue=task_queue),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=timedelta(days=1))]),
    )


async def apply_schedules(client: Client, task_queue: str) -> list[str]:
    """Create each schedule, or bring an existing one up to date: applying twice changes nothing."""
    schedule = renewal_window_schedule(task_queue)
    try:
        await client.create_schedule(RENEWAL_WINDOW_SCHEDULE, schedule)
        return [f"{RENEWAL_WINDOW_SCHEDULE}: created"]
    except ScheduleAlreadyRunningError:
        def update(_: ScheduleUpdateInput) -> ScheduleUpdate:
            return ScheduleUpdate(schedule=schedule)

        await client.get_schedule_handle(RENEWAL_WINDOW_SCHEDULE).update(update)
        return [f"{RENEWAL_WINDOW_SCHEDULE}: updated"]
