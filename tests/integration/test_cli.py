"""The `o2c` CLI as a user runs it: a separate process against the dev server and sandbox."""

from __future__ import annotations

import asyncio
import json
import os
import sys

import pytest

from o2c.starter import client as o2c
from o2c.workflows.status import Status

pytestmark = pytest.mark.integration


@pytest.fixture
def cli(dev_server, settings, worker):
    env = {**os.environ, "O2C_TEMPORAL_ADDRESS": dev_server.client.service_client.config.target_host,
           "O2C_TASK_QUEUE": worker, "O2C_SANDBOX_URL": settings.sandbox_url}

    async def run(*args: str) -> tuple[int, str, str]:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "o2c.starter.cli", *args, env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(process.communicate(), timeout=60)
        return process.returncode, out.decode(), err.decode()

    return run


async def test_amend_approve_and_status_from_the_command_line(cli, dev_server, customer, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(customer.amendment(quantity=-2).model_dump_json())
    code, _, err = await cli("amend", "--file", str(bad))
    assert code == 2 and "cannot be below zero" in err and "no workflow started" in err

    garbled = tmp_path / "garbled.json"
    garbled.write_text('{"amendment_id": 7}')
    code, _, err = await cli("amend", "--file", str(garbled))
    assert code == 2 and "not a valid amendment request" in err

    request = customer.amendment(quantity=100)
    good = tmp_path / "good.json"
    good.write_text(request.model_dump_json())
    code, out, _ = await cli("amend", "--file", str(good))
    workflow_id = f"amendment-{request.amendment_id}"
    assert code == 0 and workflow_id in out
    await o2c.wait_for_status(dev_server.client, workflow_id, Status.AWAITING_APPROVAL)

    code, out, _ = await cli("approvals", "--json")
    waiting = {item["workflow_id"]: item for item in json.loads(out)}
    assert waiting[workflow_id]["approval"]["request"]["required_role"] == "controller"

    code, _, err = await cli("approve", workflow_id, "--as", "fiona.finance", "--role", "finance")
    assert code == 2 and "needs a controller" in err
    code, out, _ = await cli("approve", workflow_id, "--as", "carla.controller", "--role", "controller")
    assert code == 0 and "approved" in out
    await o2c.wait_for_status(dev_server.client, workflow_id, Status.COMPLETED)

    code, out, _ = await cli("status", workflow_id)
    assert code == 0 and "completed" in out and "journal entry" in out
