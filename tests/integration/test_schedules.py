"""`o2c schedules apply` on the dev server: idempotent, and the schedules really run the
renewal window and the reconciliations."""

from __future__ import annotations

import asyncio
from datetime import date, timedelta

import pytest

from starter.schedules import RENEWAL_WINDOW_SCHEDULE, REVENUE_POSTING_SCHEDULE, USAGE_CLOSE_SCHEDULE, apply_schedules

pytestmark = pytest.mark.integration


SCHEDULES = [
    RENEWAL_WINDOW_SCHEDULE,
    USAGE_CLOSE_SCHEDULE,
    REVENUE_POSTING_SCHEDULE,
    "o2c-reconciliation-US01-daily",
    "o2c-reconciliation-US01-month-end",
]


async def triggered_run(client, schedule_id: str):
    handle = client.get_schedule_handle(schedule_id)
    await handle.trigger()
    for _ in range(100):
        recent = (await handle.describe()).info.recent_actions
        if recent:
            break
        await asyncio.sleep(0.1)
    return client.get_workflow_handle(recent[0].action.workflow_id, run_id=recent[0].action.first_execution_run_id)


async def test_applying_twice_keeps_one_of_each_schedule_and_they_run(dev_server, worker):
    client = dev_server.client
    assert await apply_schedules(client, worker) == [f"{s}: created" for s in SCHEDULES]
    assert await apply_schedules(client, worker) == [f"{s}: updated" for s in SCHEDULES]
    ids = [s.id async for s in await client.list_schedules()]
    assert all(ids.count(s) == 1 for s in SCHEDULES)
    try:
        window = await asyncio.wait_for((await triggered_run(client, RENEWAL_WINDOW_SCHEDULE)).result(), timeout=30)
        assert "started" in window and "already_running" in window
        # The month-end reconciliation reconciles the month before the one it runs in.
        run = await triggered_run(client, "o2c-reconciliation-US01-month-end")
        for _ in range(100):
            state = await run.query("state", result_type=dict)
            if state["run_id"]:
                break
            await asyncio.sleep(0.1)
        today = date.today()
        assert state["period"] == (today.replace(day=1) - timedelta(days=1)).strftime("%Y-%m")
        assert state["legal_entity"] == "US01" and state["run_id"].startswith(f"US01-{state['period']}-")
        await run.terminate(reason="the test saw it start")  # US01's real month is not this test's concern
    finally:
        for schedule_id in SCHEDULES:
            await client.get_schedule_handle(schedule_id).delete()
