"""The README's amendment reconciled, on the real dev server, worker, adapters and sandbox: a
change effective 16 November that billing invoices on the day it is booked carries the
invoice's date on every document, so neither November nor the invoice's month finds a break
in it (no "missing in billing", no heal of an entry the ERP holds), and each run's header
counts what its table lists."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta

import pytest

from adapters.netsuite import NetSuiteErp
from adapters.storage.reconciliation import SqlReconciliationStore
from adapters.storage.schedules import SqlRevenueSchedules
from canonical.journal import ChartOfAccounts, JournalEntry, JournalLine
from canonical.models import DEFAULT_LEGAL_ENTITY
from canonical.reconciliation import period_bounds
from starter import client as o2c
from starter.reports import run_heading
from workflows.kit.attention import OperatorAction
from workflows.kit.status import Status

pytestmark = pytest.mark.integration

CHART = ChartOfAccounts()


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
