"""Temporal schedules o2c runs on its own, created or updated by `o2c schedules apply`:
the daily renewal window, the daily usage period close, the month-end revenue posting, and
per legal entity a daily reconciliation of the month so far and a month-end one of the
month just ended."""

from __future__ import annotations

from datetime import timedelta

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleCalendarSpec,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleRange,
    ScheduleSpec,
    ScheduleUpdate,
    ScheduleUpdateInput,
)
from temporalio.common import SearchAttributePair, TypedSearchAttributes

from settings import Settings
from workflows.kit.status import PROCESS, STATUS, Status
from workflows.reconciliation import ReconciliationInput, ReconciliationWorkflow
from workflows.renewal_window import RenewalWindowWorkflow, WindowInput
from workflows.revenue_close import RevenueCloseInput, RevenueCloseWorkflow
from workflows.usage_close import UsageCloseInput, UsagePeriodCloseWorkflow

RENEWAL_WINDOW_SCHEDULE = "o2c-renewal-window"
USAGE_CLOSE_SCHEDULE = "o2c-usage-period-close"
REVENUE_POSTING_SCHEDULE = "o2c-revenue-posting"


def renewal_window_schedule(task_queue: str) -> Schedule:
    settings = Settings.from_env()
    return Schedule(
        action=ScheduleActionStartWorkflow(
            RenewalWindowWorkflow.run,
            WindowInput(
                policy=settings.renewal_policy,
                approvals=settings.approval_policy,
                legal_entities=settings.legal_entities,
            ),
            id="renewal-window",
            task_queue=task_queue,
        ),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=timedelta(days=1))]),
    )


def usage_close_schedule(task_queue: str) -> Schedule:
    """Every day at 01:00 UTC: the usage releases of the month that has ended. Daily, not only
    on the first, so a subscription the first run missed (billing was down, it was added late)
    is picked up the next day; releases already started are left alone."""
    settings = Settings.from_env()
    return Schedule(
        action=ScheduleActionStartWorkflow(
            UsagePeriodCloseWorkflow.run,
            UsageCloseInput(
                policy=settings.usage_policy,
                approvals=settings.approval_policy,
                legal_entities=settings.legal_entities,
            ),
            id="usage-period-close",
            task_queue=task_queue,
        ),
        spec=ScheduleSpec(calendars=[ScheduleCalendarSpec(hour=[ScheduleRange(1)], minute=[ScheduleRange(0)])]),
    )


def revenue_posting_schedule(task_queue: str) -> Schedule:
    """On the first of each month at 03:00 UTC: every legal entity's revenue of the month that
    has ended, posted to its ledger (after the usage close at 01:00, before the closing
    reconciliation at 06:00, which compares the ledger's revenue with the schedules)."""
    settings = Settings.from_env()
    return Schedule(
        action=ScheduleActionStartWorkflow(
            RevenueCloseWorkflow.run,
            RevenueCloseInput(legal_entities=settings.legal_entities),
            id="revenue-posting",
            task_queue=task_queue,
        ),
        spec=ScheduleSpec(
            calendars=[
                ScheduleCalendarSpec(
                    day_of_month=[ScheduleRange(1)], hour=[ScheduleRange(3)], minute=[ScheduleRange(0)]
                )
            ]
        ),
    )


def reconciliation_schedules(task_queue: str) -> dict[str, Schedule]:
    """Per legal entity: every day at 02:00 UTC the current month so far, and on the first of
    each month at 06:00 UTC the month that has just ended (the closing reconciliation). A run
    may wait days for an operator, so runs are allowed to overlap."""
    schedules = {}
    settings = Settings.from_env()
    entities = settings.legal_entities
    for entity in entities:
        for name, months_back, calendar in (
            ("daily", 0, ScheduleCalendarSpec(hour=[ScheduleRange(2)], minute=[ScheduleRange(0)])),
            (
                "month-end",
                1,
                ScheduleCalendarSpec(
                    day_of_month=[ScheduleRange(1)], hour=[ScheduleRange(6)], minute=[ScheduleRange(0)]
                ),
            ),
        ):
            schedules[f"o2c-reconciliation-{entity.code}-{name}"] = Schedule(
                action=ScheduleActionStartWorkflow(
                    ReconciliationWorkflow.run,
                    ReconciliationInput(
                        legal_entity=entity.code,
                        months_back=months_back,
                        legal_entities=entities,
                        policy=settings.reconciliation_policy,
                        approvals=settings.approval_policy,
                    ),
                    id=f"reconciliation-{entity.code}-{name}",
                    task_queue=task_queue,
                    typed_search_attributes=TypedSearchAttributes(
                        [
                            SearchAttributePair(PROCESS, "reconciliation"),
                            SearchAttributePair(STATUS, Status.RUNNING.value),
                        ]
                    ),
                ),
                spec=ScheduleSpec(calendars=[calendar]),
                policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.ALLOW_ALL),
            )
    return schedules


async def apply_schedules(client: Client, task_queue: str) -> list[str]:
    """Create each schedule, or bring an existing one up to date: applying twice changes nothing."""
    lines = []
    for schedule_id, schedule in {
        RENEWAL_WINDOW_SCHEDULE: renewal_window_schedule(task_queue),
        USAGE_CLOSE_SCHEDULE: usage_close_schedule(task_queue),
        REVENUE_POSTING_SCHEDULE: revenue_posting_schedule(task_queue),
        **reconciliation_schedules(task_queue),
    }.items():
        try:
            await client.create_schedule(schedule_id, schedule)
            lines.append(f"{schedule_id}: created")
        except ScheduleAlreadyRunningError:

            def update(_: ScheduleUpdateInput, schedule: Schedule = schedule) -> ScheduleUpdate:
                return ScheduleUpdate(schedule=schedule)

            await client.get_schedule_handle(schedule_id).update(update)
            lines.append(f"{schedule_id}: updated")
    return lines
