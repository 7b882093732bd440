"""Reconciliation of a legal entity that books in SAP S/4HANA, on the dev server: the real
worker reads Stripe, AvaTax and the SAP stand-in's item cube over HTTP (with faults on SAP's
reads), and one seeded break of every kind is found and classified as in NetSuite. The
missing entry is healed in the customer's name: SAP posts a receivable only to a debtor."""

from __future__ import annotations

import asyncio
import secrets
import string
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
KINDS = (
    "missing_in_erp",
    "missing_in_billing",
    "duplicate_posting",
    "amount_mismatch",
    "tax_mismatch",
    "currency_mismatch",
    "status_mismatch",
)


@pytest.fixture
def entity(control) -> LegalEntity:
    """An entity of the test's own in a company code of its own (EUR), so runs on a shared
    database never see each other."""
    key = secrets.token_hex(3)
    code = "".join(secrets.choice(string.ascii_uppercase + string.digits) for _ in range(4))
    control.sap_company_code(code, "EUR")
    return LegalEntity(
        code=f"S{key}",
        company_code=f"S{key}",
        functional_currency="EUR",
        erp="sap",
        erp_subsidiary=code,
        billing_account=f"acct_s{key}",
        country="DE",
    )


async def until(client, workflow_id: str, status: Status, timeout: float = 120) -> dict:
    for _ in range(int(timeout * 10)):
        state = await o2c.process_state(client, workflow_id)
        if state["status"] == status.value:
            return state
        await asyncio.sleep(0.1)
    raise AssertionError(f"{workflow_id} never reached {status.value}; it is {state['status']}: {state['stage']}")


async def test_an_sap_entity_reconciles_to_one_break_of_every_kind(dev_server, settings, control, entity):
    contracts = [f"C-{entity.code}-1", f"C-{entity.code}-2"]
    seeded = control.seed_period(
        tag=entity.code,
        period=PERIOD,
        invoices=60,
        currency="EUR",
        tax_rate="19",
        erp="sap",
        stripe_account=entity.billing_account,
        company_code=entity.company_code,
        subsidiary=entity.erp_subsidiary,
        breaks={kind: 1 for kind in KINDS},
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
                total=Money.of("3100.00", "EUR"),
                start=date(2026, 10, 1),
                end=date(2026, 11, 1),
            )
        )
    await schedules.aclose()
    # SAP's item cube fails now and then while it is read.
    control.fault("sap", "5xx", method="GET", path_contains="A_OperationalAcctgDocItemCube", every=3, times=2)
    control.fault("sap", "429", method="GET", path_contains="A_OperationalAcctgDocItemCube", every=4, times=1)

    client = dev_server.client
    async with worker_for(client, settings, [entity]) as own:
        handle = await o2c.start_reconciliation(
            client, legal_entity=entity.code, period=PERIOD, task_queue=own.task_queue, legal_entities=[entity]
        )
        state = await until(client, handle.id, Status.NEEDS_ATTENTION)
        assert state["read"]["billing"] == 60 and state["found"] == {
            **{kind: 1 for kind in KINDS},
            "revenue_mismatch": 1,
        }
        store = SqlReconciliationStore(settings.database_url)
        try:
            found = {b.kind: b for b in await store.breaks_of_run(state["run_id"])}
        finally:
            await store.aclose()
        for kind, [invoice_id] in seeded["breaks"].items():
            assert found[BreakKind(kind)].document == invoice_id, kind
        assert found[BreakKind.REVENUE_MISMATCH].document == contracts[1]
        assert found[BreakKind.REVENUE_MISMATCH].difference == Money.of("-3001.00", "EUR")
        assert "paid in billing but open in the ERP" in found[BreakKind.STATUS_MISMATCH].explanation
        assert found[BreakKind.CURRENCY_MISMATCH].erp is not None
        assert found[BreakKind.CURRENCY_MISMATCH].erp.currency == "USD"
        missing = found[BreakKind.MISSING_IN_ERP]
        # SAP posts no receivable straight to its reconciliation account: the heal books it
        # on the invoice's customer, a business partner of the company code.
        assert state["healed"] == 1 and missing.status == "healed", missing.resolution
        assert "7 breaks need a person" in state["attention"]["message"]
        await o2c.resolve(client, handle.id, OperatorAction.SKIP, operator="olga.ops", comment="GL follows up")
        result = await handle.result()
        assert result.status == Status.COMPLETED
    assert sum(1 for f in control.faults() if f["system"] == "sap" and f["fired"]) >= 1
