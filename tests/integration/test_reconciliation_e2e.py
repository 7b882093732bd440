"""Reconciliation on the dev server: the real worker reads the sandbox's Stripe, AvaTax and
NetSuite over HTTP (with faults), one break of every kind is found and classified, the
missing entry is healed once, and the run and its breaks are in the database."""

from __future__ import annotations

import asyncio
import secrets
from datetime import date

import pytest

from adapters.storage.reconciliation import SqlReconciliationStore
from adapters.storage.schedules import SqlRevenueSchedules
from canonical.models import LegalEntity
from canonical.money import Money
from canonical.reconciliation import BreakKind
from canonical.revenue import ratable_schedule
from starter import client as o2c
from tests.integration.worker_kit import worker_for
from workflows.kit.attention import OperatorAction
from workflows.kit.status import Status

pytestmark = pytest.mark.integration

PERIOD = "2026-10"


def usd(amount: str) -> Money:
    return Money.of(amount, "USD")


@pytest.fixture
def entity() -> LegalEntity:
    """A legal entity of the test's own, so runs on a shared database never see each other."""
    key = secrets.token_hex(3)
    return LegalEntity(
        code=f"RC{key}",
        company_code=f"RC{key}",
        functional_currency="USD",
        erp_subsidiary=str(700000 + int(key, 16) % 100000),
        billing_account=f"acct_rc{key}",
    )


async def until(client, workflow_id: str, status: Status, timeout: float = 90) -> dict:
    for _ in range(int(timeout * 10)):
        state = await o2c.process_state(client, workflow_id)
        if state["status"] == status.value:
            return state
        await asyncio.sleep(0.1)
    raise AssertionError(f"{workflow_id} never reached {status.value}; it is {state['status']}: {state['stage']}")


async def test_one_break_of_every_kind_is_found_the_missing_entry_healed_once(dev_server, settings, control, entity):
    async with worker_for(dev_server.client, settings, [entity]) as own:
        await one_break_of_every_kind(dev_server.client, own, control, entity)


async def one_break_of_every_kind(client, settings, control, entity) -> None:
    contracts = [f"C-{entity.code}-1", f"C-{entity.code}-2"]
    seeded = control.seed_period(
        tag=entity.code,
        period=PERIOD,
        invoices=60,
        stripe_account=entity.billing_account,
        company_code=entity.company_code,
        subsidiary=entity.erp_subsidiary,
        breaks={
            kind: 1
            for kind in (
                "missing_in_erp",
                "missing_in_billing",
                "duplicate_posting",
                "amount_mismatch",
                "tax_mismatch",
                "currency_mismatch",
                "status_mismatch",
            )
        },
        revenue=[{"contract_id": contracts[0], "amount": "3100.00"}, {"contract_id": contracts[1], "amount": "99.00"}],
    )
    schedules = SqlRevenueSchedules(settings.database_url)
    for contract in contracts:  # o2c's schedules say 3,100.00 for each in October
        await schedules.save_schedule(
            ratable_schedule(
                schedule_id=f"{contract}-subscription",
                contract_id=contract,
                account_id="cus_1",
                legal_entity=entity.code,
                obligation="subscription",
                total=usd("3100.00"),
                start=date(2026, 10, 1),
                end=date(2026, 11, 1),
            )
        )
    await schedules.aclose()
    # Billing and the ERP fail now and then while they are read.
    control.fault("stripe", "5xx", method="GET", path_contains="/invoices", times=2)
    control.fault("netsuite", "429", path_contains="suiteql", every=3, times=2)

    handle = await o2c.start_reconciliation(
        client, legal_entity=entity.code, period=PERIOD, task_queue=settings.task_queue, legal_entities=[entity]
    )
    state = await until(client, handle.id, Status.NEEDS_ATTENTION)
    run_id = state["run_id"]
    assert state["read"]["billing"] == 60 and state["found"] == {
        "missing_in_erp": 1,
        "missing_in_billing": 1,
        "duplicate_posting": 1,
        "amount_mismatch": 1,
        "tax_mismatch": 1,
        "currency_mismatch": 1,
        "status_mismatch": 1,
        "revenue_mismatch": 1,
    }
    assert state["healed"] == 1 and "7 breaks need a person" in state["attention"]["message"]

    store = SqlReconciliationStore(settings.database_url)
    try:
        found = {b.kind: b for b in await store.breaks_of_run(run_id)}
        for kind, [invoice_id] in seeded["breaks"].items():
            assert found[BreakKind(kind)].document == invoice_id, kind
        assert found[BreakKind.REVENUE_MISMATCH].document == contracts[1]
        assert found[BreakKind.REVENUE_MISMATCH].difference == usd("-3001.00")
        healed = found[BreakKind.MISSING_IN_ERP]
        assert healed.status == "healed" and healed.owner == "general ledger"
        assert found[BreakKind.STATUS_MISMATCH].owner == "accounts receivable"
        assert "paid in billing but open in the ERP" in found[BreakKind.STATUS_MISMATCH].explanation
        [entry] = [
            e for e in control.records("netsuite", "journalEntry") if e.get("custbody_o2c_invoice") == healed.document
        ]
        assert entry["externalId"] == f"amendment-recon-{entity.code}-{healed.document[-6:]}-invoice"
        assert entry["subsidiary"] == {"id": entity.erp_subsidiary}

        await o2c.resolve(client, handle.id, OperatorAction.SKIP, operator="olga.ops", comment="GL and AR follow up")
        result = await handle.result()
        assert result.status == Status.COMPLETED and result.summary.open_breaks == 7

        # A second run heals nothing: the entry is there; the other breaks are found again.
        again = await o2c.start_reconciliation(
            client, legal_entity=entity.code, period=PERIOD, task_queue=settings.task_queue, legal_entities=[entity]
        )
        state = await until(client, again.id, Status.NEEDS_ATTENTION)
        assert "missing_in_erp" not in state["found"] and state["healed"] == 0 and len(state["found"]) == 7
        await o2c.resolve(client, again.id, OperatorAction.SKIP, operator="olga.ops")
        second = await again.result()
        assert [
            e for e in control.records("netsuite", "journalEntry") if e.get("custbody_o2c_invoice") == healed.document
        ] == [entry]
        runs = await store.runs(legal_entity=entity.code, period=PERIOD)
        assert {r.run_id for r in runs} == {run_id, second.run_id}
        earlier = {b.kind: b for b in await store.breaks_of_run(run_id)}
        assert earlier[BreakKind.AMOUNT_MISMATCH].status == "superseded"
        assert earlier[BreakKind.MISSING_IN_ERP].status == "healed"
    finally:
        await store.aclose()
