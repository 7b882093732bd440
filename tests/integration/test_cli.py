"""The `o2c` CLI as a user runs it: a separate process against the dev server and sandbox."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import re
import secrets
import sys

import pytest

from canonical.models import LegalEntity
from starter import client as o2c
from tests.integration.worker_kit import worker_for
from workflows.kit.status import Status

pytestmark = pytest.mark.integration

# A legal entity for the reconciliation commands, new on every test run (a shared database
# keeps earlier runs' documents).
CLI_ENTITY = f"RCLI{secrets.token_hex(2).upper()}"
CLI_SUBSIDIARY = str(600000 + secrets.randbelow(100000))


@pytest.fixture
async def cli(dev_server, settings, tmp_path):
    """The CLI as a process of its own, configured through the environment: Temporal, the
    sandbox, o2c's database, and legal entities US01 and one of the test's own (RCLI), which
    a worker of the test's own books for as well."""
    entity = LegalEntity(
        code=CLI_ENTITY,
        company_code=CLI_ENTITY,
        functional_currency="USD",
        erp_subsidiary=CLI_SUBSIDIARY,
        billing_account=f"acct_{CLI_ENTITY.lower()}",
    )
    entities = tmp_path / "entities.json"
    entities.write_text(
        json.dumps(
            [
                {"code": "US01", "company_code": "US01", "functional_currency": "USD", "erp_subsidiary": "1"},
                entity.model_dump(mode="json"),
            ]
        )
    )
    async with worker_for(dev_server.client, settings, [entity]) as own:
        yield cli_runner(dev_server, own, entities, tmp_path)


def cli_runner(dev_server, settings, entities, home):
    env = {
        **os.environ,
        "O2C_TEMPORAL_ADDRESS": dev_server.client.service_client.config.target_host,
        "O2C_TASK_QUEUE": settings.task_queue,
        "O2C_SANDBOX_URL": settings.sandbox_url,
        "O2C_DATABASE_URL": settings.database_url,
        "O2C_LEGAL_ENTITIES_FILE": str(entities),
        # The test's own identity key and signed-in token (the user's config dir otherwise).
        "O2C_IDENTITY_KEY_FILE": str(home / "state" / "identity.key"),
        "O2C_TOKEN_FILE": str(home / "config" / "token"),
        "COLUMNS": "250",  # a wide terminal: table cells stay on one line
    }

    async def run(*args: str, stdin: str | None = None) -> tuple[int, str, str]:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "starter.cli",
            *args,
            env=env,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate((stdin or "").encode()), timeout=60)
        return process.returncode, out.decode(), err.decode()

    return run


PASSWORD = "a long enough password"


async def user(cli, role: str) -> str:
    """A user of the test's own (the database is shared between runs), added through the CLI."""
    name = f"{role}.{secrets.token_hex(3)}"
    code, out, err = await cli("users", "add", name, "--role", role, "--password-stdin", stdin=PASSWORD + "\n")
    assert code == 0 and f"added {name} as {role}" in out, (out, err)
    return name


async def login(cli, name: str) -> None:
    code, out, err = await cli("login", name, "--password-stdin", stdin=PASSWORD + "\n")
    assert code == 0 and f"signed in as {name}" in out, (out, err)


async def test_amend_approve_and_status_from_the_command_line(cli, dev_server, customer, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(customer.amendment(quantity=-2).model_dump_json())
    code, _, err = await cli("amend", "--file", str(bad))
    assert code == 2 and "cannot be below zero" in err and "no workflow started" in err

    garbled = tmp_path / "garbled.json"
    garbled.write_text('{"amendment_id": 7}')
    code, _, err = await cli("amend", "--file", str(garbled))
    assert code == 2 and "not a valid amendment request" in err

    # Users first: adding one creates the identity key, which processes started from then on trust.
    finance, controller = await user(cli, "finance"), await user(cli, "controller")
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

    code, _, err = await cli("approve", workflow_id, "--as", "carla.controller", "--role", "controller")
    assert code == 2 and "--as and --role are gone" in err and "o2c login" in err
    code, _, err = await cli("approve", workflow_id)
    assert code == 2 and "not signed in: run `o2c login`" in err

    await login(cli, finance)
    code, _, err = await cli("approve", workflow_id)
    assert code == 2 and "needs a controller" in err
    await login(cli, controller)
    code, out, _ = await cli("approve", workflow_id)
    assert code == 0 and f"approved by {controller}" in out
    await o2c.wait_for_status(dev_server.client, workflow_id, Status.COMPLETED)

    code, out, _ = await cli("status", workflow_id)
    assert code == 0 and "completed" in out and "journal entry" in out


async def test_wait_follows_the_process_and_exits_3_when_it_parks(cli, dev_server, customer, tmp_path):
    await login(cli, await user(cli, "controller"))
    request = customer.amendment(quantity=100)
    path = tmp_path / "big.json"
    path.write_text(request.model_dump_json())
    workflow_id = f"amendment-{request.amendment_id}"
    code, out, err = await cli("amend", "--file", str(path), "--wait")
    assert code == 3, (out, err)
    assert f"{workflow_id} parked, awaiting_approval: waiting for a controller" in out
    assert f"{workflow_id}  running: " in err  # each change as it happened, on stderr

    code, out, err = await cli("approve", workflow_id, "--wait", "--json")
    assert code == 0, (out, err)
    assert json.loads(out)["outcome"]["status"] == "completed"

    code, _, err = await cli("approve", workflow_id)
    assert code == 2 and "already finished" in err, err


async def test_a_temporal_that_does_not_answer_is_named(monkeypatch):
    monkeypatch.setenv("O2C_TEMPORAL_ADDRESS", "127.0.0.1:1")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "starter.cli", "status", "amendment-x", stderr=asyncio.subprocess.PIPE
    )
    _, err = await process.communicate()
    assert process.returncode == 1
    assert "Temporal at 127.0.0.1:1 refused the connection; is `o2c dev` running?" in err.decode()


async def test_reconcile_resolve_and_report_from_the_command_line(cli, dev_server, control):
    code, _, err = await cli("reconcile", "--period", "2026-13", "--entity", CLI_ENTITY)
    assert code == 2 and "YYYY-MM" in err and "no workflow started" in err
    code, _, err = await cli("reconcile", "--period", "2026-10", "--entity", "NOPE")
    assert code == 2 and "unknown legal entity 'NOPE'" in err

    seeded = control.seed_period(
        tag=CLI_ENTITY,
        period="2026-10",
        invoices=30,
        stripe_account=f"acct_{CLI_ENTITY.lower()}",
        company_code=CLI_ENTITY,
        subsidiary=CLI_SUBSIDIARY,
        breaks={"amount_mismatch": 1, "missing_in_billing": 1},
    )
    code, out, _ = await cli("reconcile", "--period", "2026-10", "--entity", CLI_ENTITY)
    workflow_id = f"reconciliation-{CLI_ENTITY}-2026-10"
    assert code == 0 and out.startswith(f"{workflow_id}: run {CLI_ENTITY}-2026-10-")
    state = await o2c.wait_for_status(dev_server.client, workflow_id, Status.NEEDS_ATTENTION)
    run_id = state["run_id"]

    code, out, _ = await cli("attention")
    assert code == 0 and re.search(rf"{workflow_id}\s+breaks\s+2 breaks need a person", out), out
    operator = await user(cli, "operator")
    await login(cli, operator)
    code, out, _ = await cli("resolve", workflow_id, "skip", "--comment", "GL follows up")
    assert code == 0 and "skip accepted" in out
    await o2c.wait_for_status(dev_server.client, workflow_id, Status.COMPLETED)

    code, out, _ = await cli("recon", "report", run_id, "--csv", "-")
    rows = {r["kind"]: r for r in csv.DictReader(io.StringIO(out))}
    assert code == 0 and set(rows) == {"amount_mismatch", "missing_in_billing"}
    assert rows["amount_mismatch"]["document"] == seeded["breaks"]["amount_mismatch"][0]
    assert rows["amount_mismatch"]["difference"] == "1.00" and rows["amount_mismatch"]["owner"] == "general ledger"
    assert rows["amount_mismatch"]["status"] == "acknowledged" and rows["amount_mismatch"]["age_days"] == "0"
    assert f"acknowledged by {operator}: GL follows up" in rows["missing_in_billing"]["resolution"]
    code, out, _ = await cli("recon", "report", run_id)
    assert code == 0 and f"run {run_id}: {CLI_ENTITY} 2026-10, completed; read 30 invoices" in out
    code, out, _ = await cli("recon", "runs", "--entity", CLI_ENTITY)
    assert code == 0 and run_id in out
    code, _, err = await cli("recon", "report", "no-such-run")
    assert code == 2 and "no reconciliation run 'no-such-run'" in err
    code, out, _ = await cli("revenue", "waterfall", "--entity", CLI_ENTITY)
    assert code == 0 and out.strip() == f"no revenue schedules for {CLI_ENTITY}"
    code, _, err = await cli("revenue", "waterfall", "--entity", "US01", "--through", "2026-13")
    assert code == 2 and "YYYY-MM" in err


async def test_a_process_whose_worker_is_gone_does_not_hide_the_others(cli, dev_server, customer):
    from temporalio.common import SearchAttributePair, TypedSearchAttributes

    from workflows.amendment import AmendmentInput, AmendmentWorkflow
    from workflows.kit.status import PROCESS, STATUS

    orphan = await dev_server.client.start_workflow(
        AmendmentWorkflow.run,
        AmendmentInput(request=customer.amendment()),
        id=f"amendment-orphan-{customer.key}",
        task_queue="nobody-polls-this-queue",
        search_attributes=TypedSearchAttributes(
            [SearchAttributePair(PROCESS, "amendment"), SearchAttributePair(STATUS, "needs_attention")]
        ),
    )
    try:
        code, out, err = await cli("attention")
        assert code == 0, err
        assert re.search(rf"{orphan.id}\s.*needs_attention, state unavailable: no worker answered", out), out
    finally:
        await orphan.terminate(reason="test over")


async def test_only_a_signed_in_person_of_a_deciding_role_approves_and_every_step_is_audited(
    cli, dev_server, customer, tmp_path
):
    viewer, finance = await user(cli, "viewer"), await user(cli, "finance")
    request = customer.amendment(quantity=30)  # finance level
    path = tmp_path / "amendment.json"
    path.write_text(request.model_dump_json())
    workflow_id = f"amendment-{request.amendment_id}"
    assert (await cli("amend", "--file", str(path)))[0] == 0
    await o2c.wait_for_status(dev_server.client, workflow_id, Status.AWAITING_APPROVAL)

    await login(cli, viewer)
    code, _, err = await cli("approve", workflow_id)
    assert code == 2 and "holds the role viewer" in err
    token = tmp_path / "config" / "token"
    assert token.stat().st_mode & 0o777 == 0o600

    # A machine's key is a valid token, of nobody who decides.
    code, key, err = await cli("keys", "add", f"crm-{secrets.token_hex(3)}")
    assert code == 0 and key.strip().startswith("o2c_key_"), err
    token.write_text(key)
    code, _, err = await cli("approve", workflow_id)
    assert code == 2 and "machines start processes, never decide" in err

    code, _, err = await cli("login", finance, "--password-stdin", stdin="wrong password\n")
    assert code == 2 and "wrong name or password" in err
    await login(cli, finance)
    code, out, _ = await cli("logout")
    assert code == 0 and "revoked" in out and not token.exists()
    code, _, err = await cli("approve", workflow_id)
    assert code == 2 and "not signed in" in err

    await login(cli, finance)
    secret = token.read_text()
    code, out, _ = await cli("users", "disable", finance)
    assert code == 0
    code, _, err = await cli("approve", workflow_id)
    assert code == 2 and "unknown or revoked" in err
    # A token of the disabled user, stored again, stays refused.
    token.write_text(secret)
    assert (await cli("approve", workflow_id))[0] == 2

    approver = await user(cli, "finance")
    await login(cli, approver)
    code, out, _ = await cli("approve", workflow_id, "--comment", "within budget")
    assert code == 0 and f"approved by {approver}" in out
    await o2c.wait_for_status(dev_server.client, workflow_id, Status.COMPLETED)

    code, out, _ = await cli("audit", "--process", workflow_id, "--json")
    decisions = [(e["actor"], e["detail"]["decision"]) for e in json.loads(out)["audit"]]
    assert decisions == [(approver, "approved")]  # the others were refused before reaching the process
    code, out, _ = await cli("audit", "--user", finance, "--json")
    actions = [e["action"] for e in json.loads(out)["audit"]]
    assert actions == ["sign_in.refused", "sign_in", "token.revoke", "sign_in"], actions
    code, out, _ = await cli("users", "list", "--json")
    listed = {u["name"]: u for u in json.loads(out)["users"]}
    assert listed[finance]["disabled_at"] and listed[approver]["role"] == "finance"
