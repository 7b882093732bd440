"""`o2c schedules apply` on the dev server: idempotent, and the schedule really runs the window."""

from __future__ import annotations

import asyncio

import pytest

from o2c.starter.schedules import RENEWAL_WINDOW_SCHEDULE, apply_schedules

pytestmark = pytest.mark.integration


async def test_applying_twice_keeps_one_schedule_that_runs_the_renewal_window(dev_server, worker):
    client = dev_server.client
    assert await apply_schedules(client, worker) == [f"{RENEWAL_WINDOW_SCHEDULE}: created"]
    assert await apply_schedules(client, worker) == [f"{RENEWAL_WINDOW_SCHEDULE}: updated"]
    ids = [s.id async for s in await client.list_schedules()]
    assert ids.count(RENEWAL_WINDOW_SCHEDULE) == 1
    handle = client.get_schedule_handle(RENEWAL_WINDOW_SCHEDULE)
    await handle.trigger()
    for _ in range(100):
        recent = (await handle.describe()).info.recent_actions
        if recent:
            break
        await asyncio.sleep(0.1)
    run = client.get_workflow_handle(recent[0].action.workflow_id, run_id=recent[0].action.first_execution_run_id)
    result = await asyncio.wait_for(run.result(), timeout=30)
    assert "started" in result and "already_running" in result
    await handle.delete()
