"""`o2c usage close` and `o2c usage releases` as a user runs them: a process of its own against
the dev server, the worker, the webhook ingress and the sandbox.

The close starts a release for every metered subscription billing lists, so the assertions
name the test's own release and leave room for those of other tests in the session."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import sys
from datetime import UTC, datetime

import pytest

from canonical.usage.models import period_of, previous_period
from starter import client as o2c
from starter.usage_setup import seed_metered_customer
from workflows.kit.status import Status
from workflows.usage import usage_workflow_id

pytestmark = pytest.mark.integration

PERIOD = previous_period(period_of(datetime.now(UTC)))  # the month that has just ended


@pytest.fixture
def metered(control):
    """A customer metered on API calls since a year before PERIOD, whose billing period is PERIOD."""
    tag = secrets.token_hex(4)
    customer, subscription = f"cus_ucli_{tag}", f"sub_ucli_{tag}"
    seed_metered_customer(control, customer, subscription, PERIOD)
    return {"customer": customer, "subscription": subscription}


@pytest.fixture
def cli(dev_server, settings, worker, webhooks):
    """The CLI as a process of its own, on the default legal entities."""
    env = {
        **os.environ,
        "O2C_TEMPORAL_ADDRESS": dev_server.client.service_client.config.target_host,
        "O2C_TASK_QUEUE": worker,
        "O2C_SANDBOX_URL": settings.sandbox_url,
        "O2C_DATABASE_URL": settings.database_url,
        "COLUMNS": "250",
    }
    env.pop("O2C_LEGAL_ENTITIES_FILE", None)

    async def start(*args: str) -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "starter.cli",
            "usage",
            *args,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )

    async def finish(process: asyncio.subprocess.Process) -> tuple[int, str, str]:
        out, err = await asyncio.wait_for(process.communicate(), timeout=120)
        assert process.returncode is not None
        return process.returncode, out.decode(), err.decode()

    async def run(*args: str) -> tuple[int, str, str]:
        return await finish(await start(*args))

    run.start = start  # type: ignore[attr-defined]
    run.finish = finish  # type: ignore[attr-defined]
    return run


async def test_close_starts_each_release_once_and_releases_lists_them(cli, dev_server, metered):
    workflow_id = usage_workflow_id(metered["subscription"], PERIOD)
    code, out, err = await cli("close", "--period", PERIOD, "--json")
    assert code == 0, (out, err)
    closed = json.loads(out)
    assert closed["period"] == PERIOD
    started = {r["workflow_id"]: r for r in closed["started"]}
    assert workflow_id in started and workflow_id not in {r["workflow_id"] for r in closed["already_started"]}
    assert started[workflow_id]["ui"].endswith(f"/workflows/{workflow_id}")

    code, out, err = await cli("close", "--period", PERIOD)  # the schedule's next run, or a second hand
    assert code == 0, (out, err)
    assert "0 releases started" in out and f"{workflow_id}  already started" in out

    listed: list[dict] = []
    for _ in range(100):  # visibility follows the workflow's search attributes within moments
        code, out, _ = await cli("releases", "--period", PERIOD, "--json")
        listed = [r for r in json.loads(out) if r["workflow_id"] == workflow_id]
        if listed and listed[0]["customer"]:
            break
        await asyncio.sleep(0.2)
    assert code == 0 and listed, out
    assert listed[0]["period"] == PERIOD and listed[0]["execution"] == "running"
    assert listed[0]["status"] == Status.RUNNING.value

    code, out, _ = await cli("releases", "--period", PERIOD)
    assert code == 0 and workflow_id in out and "running" in out
    code, out, _ = await cli("releases", "--period", "2001-01")
    assert code == 0 and "no usage releases of 2001-01" in out
    await dev_server.client.get_workflow_handle(workflow_id).terminate("test over")


async def test_close_wait_follows_the_release_until_it_is_held_for_review(cli, dev_server, metered, control):
    workflow_id = usage_workflow_id(metered["subscription"], PERIOD)
    process = await cli.start("close", "--period", PERIOD, "--wait")
    # Once the release waits for billing's draft, the month ends in billing: the draft, and its webhook.
    for _ in range(600):
        try:
            state = await o2c.process_state(dev_server.client, workflow_id)
        except Exception:
            state = {}
        if state.get("stage", "").startswith("waiting for billing's draft"):
            break
        await asyncio.sleep(0.1)
    control.end_period(metered["subscription"])
    code, out, err = await cli.finish(process)
    # A first usage invoice has no history to be compared with: it waits for a person.
    assert code == 3, (out, err)
    assert f"{workflow_id}: awaiting_approval" in out and "first usage invoice" in out
    assert f"{workflow_id}  running: " in err  # each change as it happened, on stderr
    await dev_server.client.get_workflow_handle(workflow_id).terminate("test over")


async def test_a_period_not_yet_over_or_malformed_is_refused(cli):
    code, _, err = await cli("close", "--period", f"{datetime.now(UTC):%Y-%m}")
    assert code == 2 and "has not ended yet" in err
    code, _, err = await cli("close", "--period", "2026-13")
    assert code == 2 and "YYYY-MM" in err
    code, _, err = await cli("releases", "--period", "last month")
    assert code == 2 and "YYYY-MM" in err
