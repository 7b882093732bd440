"""The README's amendment reconciled, on the real dev server, worker, adapters and sandbox: a
change effective 16 November that billing invoices on the day it is booked carries the
invoice's date on every document, so neither November nor the invoice's month finds a break
in it (no "missing in billing", no heal of an entry the ERP holds), and each run's header
counts what its table lists."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta

import pytest

from adapters.avatax import AvaTaxTax
from adapters.netsuite import NetSuiteErp
from adapters.storage.reconciliation import SqlReconciliationStore
from adapters.storage.schedules import SqlRevenueSchedules
from canonical.journal import ChartOfAccounts, JournalEntry, JournalLine, invoice_entry
from canonical.models import DEFAULT_LEGAL_ENTITY, TAX_PRODUCT, InvoiceLine
from canonical.money import Money
from canonical.reconciliation import BreakKind, period_bounds
from starter import client as o2c
from starter.reports import run_heading
from workflows.kit.attention import OperatorAction
from workflows.kit.status import Status

pytestmark = pytest.mark.integration

CHART = ChartOfAccounts()
EFFECTIVE = date(2026, 11, 16)


async def settled(client, workflow_id: str, timeout: float = 120) -> dict:
    for _ in range(int(timeout * 10)):
        state = await o2c.process_state(client, workflow_id)
        if state["status"] in (Status.COMPLETED.value, Status.NEEDS_ATTENTION.value):
            return state
        await asyncio.sleep(0.1)
    raise AssertionError(f"{workflow_id} never settled; it is {state['status']}: {state['stage']}")


async def post_recognised_revenue(settings, contract_id: str, period: str) -> None:
    """What the ledger release's revenue posting books at month end for the contract:
    Dr deferred revenue / Cr revenue, what o2c's schedules recognise in the month."""
    schedules = SqlRevenueSchedules(settings.database_url)
    try:
        page = await schedules.revenue_in_period(legal_entity=DEFAULT_LEGAL_ENTITY.code, period=period)
    finally:
        await schedules.aclose()
    [recognised] = [r.amount for r in page.items if r.contract_id == contract_id]
    erp = NetSuiteErp(settings.netsuite_base_url, settings.netsuite_token, timeout=10)
    try:
        await erp.post_journal_entry(
            JournalEntry(
                external_id=f"revenue-{contract_id}-{period}",
                subsidiary=DEFAULT_LEGAL_ENTITY.erp_subsidiary,
                currency=recognised.currency,
                posting_date=period_bounds(period)[1] - timedelta(days=1),
                memo=f"Revenue recognised in {period}, contract {contract_id}",
                contract_id=contract_id,
                lines=[
                    JournalLine(account=CHART.deferred_revenue, debit=recognised, memo="Deferred revenue"),
                    JournalLine(account=CHART.revenue, credit=recognised, memo="Revenue"),
                ],
            )
        )
    finally:
        await erp.aclose()


async def test_the_readme_amendment_is_no_break_in_november_nor_in_its_invoice_month(
    dev_server, worker, billing, control, customer, settings
):
    client = dev_server.client
    request = customer.amendment(quantity=12)  # effective 16 November, booked today
    handle = await o2c.start_amendment(client, request, billing=billing, task_queue=worker)
    result = await asyncio.wait_for(handle.result(), timeout=120)
    assert result.status == Status.COMPLETED, result.message
    [invoice] = [i for i in control.records("stripe", "invoice") if i["id"] == result.invoice_id]
    invoiced_on = datetime.fromtimestamp(invoice["created"], UTC).date()
    months = sorted({"2026-11", f"{invoiced_on:%Y-%m}"})
    for month in months:
        await post_recognised_revenue(settings, customer.contract_id, month)
    ours = {result.invoice_id, result.journal_entry, customer.contract_id}

    store = SqlReconciliationStore(settings.database_url)
    try:
        for month in months:
            run = await o2c.start_reconciliation(
                client, legal_entity=DEFAULT_LEGAL_ENTITY.code, period=month, task_queue=settings.task_queue
            )
            state = await settled(client, run.id)
            # The sandbox's US01 holds other tests' bookings too: none of this booking's documents
            # may appear in a break, and nothing of it is healed.
            breaks = await store.breaks_of_run(state["run_id"])
            about_ours = [b for b in breaks if b.document in ours or any(o in b.explanation for o in ours)]
            assert about_ours == [], (month, [(b.kind, b.explanation) for b in about_ours])
            summary = await store.run(state["run_id"])
            assert summary is not None and summary.breaks_found == len(breaks)
            assert f"{len(breaks)} breaks" in run_heading(summary)
            if state["status"] == Status.NEEDS_ATTENTION.value:
                await o2c.resolve(client, run.id, OperatorAction.SKIP, operator="olga.ops", comment="others' breaks")
            assert (await run.result()).status == Status.COMPLETED
    finally:
        await store.aclose()
    [entry] = [e for e in control.records("netsuite", "journalEntry") if e.get("externalId") == result.journal_entry]
    assert entry["tranDate"] == invoiced_on.isoformat() and invoiced_on >= date(2026, 11, 16)


async def test_a_booking_dated_in_two_months_is_a_cut_off_difference_in_each_never_healed(
    dev_server, worker, billing, control, customer, settings
):
    """A booking as runs before o2c-ledger dated it: billing's invoice created today, its tax
    document and its entry dated 16 November. Each month's run finds the other documents by
    the invoice's key (Stripe, AvaTax and NetSuite over HTTP) and names one cut-off difference
    with both dates; neither proposes to post the entry NetSuite holds."""
    client = dev_server.client
    workflow_id = f"amendment-cutoff-{customer.key}"
    lines = [InvoiceLine(product="seats", description="proration", amount=Money.of("50.00", "USD"))]
    tax = AvaTaxTax(
        settings.avatax_base_url,
        settings.avatax_account_id,
        settings.avatax_license_key,
        settings.avatax_company_code,
        timeout=10,
    )
    erp = NetSuiteErp(settings.netsuite_base_url, settings.netsuite_token, timeout=10)
    try:
        account = await billing.get_account(customer.account_id)
        assert account is not None
        quoted = await tax.quote(
            code=f"{workflow_id}-quote",
            customer_code=account.id,
            document_date=EFFECTIVE,
            currency="USD",
            address=account.billing_address,
            lines=lines,
        )
        invoice = await billing.create_proration_invoice(
            account_id=account.id,
            subscription_id=customer.subscription_id,
            currency="USD",
            lines=[*lines, InvoiceLine(product=TAX_PRODUCT, description="Sales tax", amount=quoted.total_tax)],
            description="Proration dated the old way",
            metadata={"o2c_workflow": workflow_id},
            idempotency_key=f"{workflow_id}-invoice",
        )
        await tax.commit(
            code=invoice.id,
            customer_code=account.id,
            document_date=EFFECTIVE,
            currency="USD",
            address=account.billing_address,
            lines=lines,
        )
        await erp.upsert_customer(account, subsidiary=DEFAULT_LEGAL_ENTITY.erp_subsidiary)
        await erp.post_journal_entry(
            invoice_entry(
                external_id=f"{workflow_id}-invoice",
                subsidiary=DEFAULT_LEGAL_ENTITY.erp_subsidiary,
                posting_date=EFFECTIVE,
                memo="dated with the effective date",
                revenue=lines[0].amount,
                tax=quoted.total_tax,
                chart=CHART,
                invoice_id=invoice.id,
                customer=account.id,
            )
        )
    finally:
        await tax.aclose()
        await erp.aclose()
    # Billing dates the invoice today, a month after November: the booking spans two months.
    assert invoice.created is not None and f"{invoice.created:%Y-%m}" > "2026-11"
    invoiced_on = invoice.created.isoformat()

    store = SqlReconciliationStore(settings.database_url)
    try:
        for month in sorted({"2026-11", f"{invoice.created:%Y-%m}"}):
            run = await o2c.start_reconciliation(
                client, legal_entity=DEFAULT_LEGAL_ENTITY.code, period=month, task_queue=settings.task_queue
            )
            state = await settled(client, run.id)
            breaks = [b for b in await store.breaks_of_run(state["run_id"]) if b.document == invoice.id]
            [found] = breaks
            assert found.kind == BreakKind.CUT_OFF_DIFFERENCE and found.owner == "finance", (month, found)
            assert invoiced_on in found.explanation and "2026-11-16" in found.explanation
            assert found.status == "open" and "heal" not in found.resolution
            if state["status"] == Status.NEEDS_ATTENTION.value:
                await o2c.resolve(client, run.id, OperatorAction.SKIP, operator="olga.ops", comment="cut-off")
            await run.result()
    finally:
        await store.aclose()
    entries = [e for e in control.records("netsuite", "journalEntry") if e.get("custbody_o2c_invoice") == invoice.id]
    assert [e["externalId"] for e in entries] == [f"{workflow_id}-invoice"]  # nothing healed
