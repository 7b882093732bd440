"""A booking's documents across periods (DOMAIN.md, "Dating a booking"), on the time-skipping
test server with the real activities, o2c's real reconciliation store and in-memory systems:
the README's amendment (effective 16 November, invoiced 1 December) reconciles to nothing in
both months, and a booking whose documents truly sit in two months is one cut-off difference
in each, with both dates, never a missing document and never a heal of what the ERP holds."""

from __future__ import annotations

import asyncio
import uuid
from datetime import date

from temporalio.client import WorkflowHandle

from canonical.journal import ChartOfAccounts, JournalEntry, JournalLine, invoice_entry
from canonical.models import TAX_PRODUCT, Invoice, InvoiceLine, TaxDocument, TaxLine
from canonical.reconciliation import BreakKind
from tests.fakes import usd
from tests.workflows.conftest import amendment
from workflows.amendment import AmendmentInput, AmendmentResult, AmendmentWorkflow, amendment_workflow_id
from workflows.kit.attention import OperatorAction, ResolveInput
from workflows.kit.status import Status
from workflows.reconciliation import (
    ReconciliationInput,
    ReconciliationResult,
    ReconciliationState,
    ReconciliationWorkflow,
)

CHART = ChartOfAccounts()
EFFECTIVE, INVOICED = date(2026, 11, 16), date(2026, 12, 1)


async def reconcile(env, task_queue, period: str) -> WorkflowHandle:
    return await env.client.start_workflow(
        ReconciliationWorkflow.run,
        ReconciliationInput(legal_entity="US01", period=period),
        id=f"reconciliation-US01-{period}-{uuid.uuid4().hex[:6]}",
        task_queue=task_queue,
        result_type=ReconciliationResult,
    )


async def settled(handle: WorkflowHandle) -> ReconciliationState:
    """The run once it completed or parked on its breaks."""
    for _ in range(1200):
        current = await handle.query(ReconciliationWorkflow.state, result_type=ReconciliationState)
        if current.status in (Status.COMPLETED, Status.NEEDS_ATTENTION):
            return current
        await asyncio.sleep(0.025)
    raise AssertionError(f"never settled; last {current.status}: {current.stage}")


def post_recognised_revenue(systems, period: str) -> None:
    """What the revenue posting of the ledger release books each month: Dr deferred revenue /
    Cr revenue for what the schedules recognise, per contract."""
    for schedule in systems.schedules.schedules.values():
        recognised = sum(
            (line.amount for line in schedule.lines if line.period == period), usd("0")
        )  # one contract, one currency here
        if recognised.is_zero:
            continue
        external_id = f"revenue-{schedule.schedule_id}-{period}"
        systems.erp.entries[external_id] = JournalEntry(
            external_id=external_id,
            subsidiary="1",
            currency="USD",
            posting_date=date.fromisoformat(f"{period}-28"),
            memo=f"revenue {period}",
            contract_id=schedule.contract_id,
            lines=[
                JournalLine(account=CHART.deferred_revenue, debit=recognised),
                JournalLine(account=CHART.revenue, credit=recognised),
            ],
        )


async def test_the_readme_amendment_reconciles_to_nothing_in_november_and_december(
    env, worker, systems, reconciliations
):
    systems.billing.invoice_date = INVOICED  # the amendment is booked on 1 December
    booked = await env.client.execute_workflow(
        AmendmentWorkflow.run,
        AmendmentInput(request=amendment(quantity=12, effective_date=EFFECTIVE)),
        id=amendment_workflow_id(f"A-{uuid.uuid4().hex[:6]}"),
        task_queue=worker,
        result_type=AmendmentResult,
    )
    assert booked.status == Status.COMPLETED
    for period in ("2026-11", "2026-12"):
        post_recognised_revenue(systems, period)

    for period in ("2026-11", "2026-12"):
        handle = await reconcile(env, worker, period)
        result = await handle.result()
        assert result.status == Status.COMPLETED and result.found == {}, (period, result.found)
        assert await reconciliations.breaks_of_run(result.run_id) == []
        summary = await reconciliations.run(result.run_id)
        assert summary is not None and summary.breaks_found == 0 and summary.open_breaks == 0
    assert len(systems.erp.entries) == 3  # the invoice's entry and two months of revenue: nothing healed


def book_across_months(systems) -> str:
    """A booking dated the way runs before o2c-ledger dated it: billing's invoice created on
    1 December, its tax document and its ERP entry dated with the effective date."""
    invoice_id = "in_cutoff"
    systems.billing.invoices[invoice_id] = Invoice(
        id=invoice_id,
        number="N-CUT",
        account_id="cus_acme",
        status="open",
        currency="USD",
        total=usd("55.00"),
        created=INVOICED,
        metadata={"o2c_workflow": "amendment-A-CUT"},
        lines=[
            InvoiceLine(product="seats", description="proration", amount=usd("50.00")),
            InvoiceLine(product=TAX_PRODUCT, description="tax", amount=usd("5.00")),
        ],
    )
    systems.tax.documents[invoice_id] = TaxDocument(
        code=invoice_id,
        type="SalesInvoice",
        status="Committed",
        total_amount=usd("50.00"),
        total_tax=usd("5.00"),
        lines=[TaxLine(number="1", amount=usd("50.00"), tax=usd("5.00"))],
        document_date=EFFECTIVE,
    )
    entry = invoice_entry(
        external_id="amendment-A-CUT-invoice",
        subsidiary="1",
        posting_date=EFFECTIVE,
        memo="Amendment A-CUT",
        revenue=usd("50.00"),
        tax=usd("5.00"),
        chart=CHART,
        invoice_id=invoice_id,
    )
    systems.erp.entries[entry.external_id] = entry
    return invoice_id


async def test_documents_in_two_months_are_one_cut_off_difference_in_each_never_healed(
    env, worker, systems, reconciliations
):
    invoice_id = book_across_months(systems)
    for period, other in (("2026-12", "2026-11-16"), ("2026-11", "2026-12-01")):
        handle = await reconcile(env, worker, period)
        parked = await settled(handle)
        assert parked.status == Status.NEEDS_ATTENTION
        assert parked.found == {BreakKind.CUT_OFF_DIFFERENCE.value: 1}, (period, parked.found)
        assert parked.healed == 0
        [record] = await reconciliations.breaks_of_run(parked.run_id)
        assert record.kind == BreakKind.CUT_OFF_DIFFERENCE and record.document == invoice_id
        assert record.owner == "finance" and record.status == "open"
        assert "2026-12-01" in record.explanation and "2026-11-16" in record.explanation, record.explanation
        assert other in record.explanation
        # The header counts what the table lists, while the run waits and after it closes.
        summary = await reconciliations.run(parked.run_id)
        assert summary is not None and summary.breaks_found == 1 and summary.open_breaks == 1
        await handle.execute_update(
            ReconciliationWorkflow.resolve, ResolveInput(action=OperatorAction.SKIP, operator="olga.ops")
        )
        assert (await handle.result()).status == Status.COMPLETED
    # Neither run asked to post (or posted) the entry the ERP holds in November.
    assert list(systems.erp.entries) == ["amendment-A-CUT-invoice"]
    assert systems.ledger.count("erp.post_journal_entry") == 0
