"""ReconciliationWorkflow on the time-skipping test server: the real activities and o2c's real
database store, with billing, tax and the ERP as in-memory fakes."""

from __future__ import annotations

import asyncio
import uuid
from datetime import date
from decimal import Decimal

import pytest
from temporalio.client import WorkflowHandle, WorkflowUpdateFailedError

from canonical.journal import invoice_entry
from canonical.models import TAX_PRODUCT, ApproverRole, Invoice, InvoiceLine, TaxDocument, TaxLine
from canonical.reconciliation import BreakKind, ReconciliationPolicy
from canonical.revenue import ratable_schedule
from tests.fakes import usd
from workflows.kit.approval import DecisionInput
from workflows.kit.attention import OperatorAction, ResolveInput
from workflows.kit.status import Status
from workflows.reconciliation import (
    ReconciliationInput,
    ReconciliationResult,
    ReconciliationState,
    ReconciliationWorkflow,
)

DAY = date(2026, 10, 12)


def book(systems, n: int, revenue: str, *, erp: bool = True, erp_revenue: str | None = None, status="open") -> str:
    """Invoice n as the three systems hold it when all went well (or the ERP lacks it)."""
    invoice_id = f"in_{n:03d}"
    tax = usd(revenue).times(Decimal("0.10"))
    systems.billing.invoices[invoice_id] = Invoice(
        id=invoice_id,
        number=f"N-{n}",
        account_id="cus_acme",
        status=status,
        currency="USD",
        total=usd(revenue) + tax,
        created=DAY,
        metadata={"o2c_workflow": f"amendment-R{n}"},
        lines=[
            InvoiceLine(product="seats", description="seats", amount=usd(revenue)),
            InvoiceLine(product=TAX_PRODUCT, description="tax", amount=tax),
        ],
    )
    systems.tax.documents[invoice_id] = TaxDocument(
        code=invoice_id,
        type="SalesInvoice",
        status="Committed",
        total_amount=usd(revenue),
        total_tax=tax,
        lines=[TaxLine(number="1", amount=usd(revenue), tax=tax)],
        document_date=DAY,
    )
    if erp:
        entry = invoice_entry(
            external_id=f"amendment-R{n}-invoice",
            subsidiary="1",
            posting_date=DAY,
            memo="m",
            revenue=usd(erp_revenue or revenue),
            tax=tax,
            chart=ReconciliationInput(legal_entity="US01").chart,
            invoice_id=invoice_id,
        )
        systems.erp.entries[entry.external_id] = entry
    return invoice_id


async def start(env, task_queue, **policy) -> WorkflowHandle:
    return await env.client.start_workflow(
        ReconciliationWorkflow.run,
        ReconciliationInput(legal_entity="US01", period="2026-10", policy=ReconciliationPolicy(**policy)),
        id=f"reconciliation-US01-2026-10-{uuid.uuid4().hex[:6]}",
        task_queue=task_queue,
        result_type=ReconciliationResult,
    )


async def state(handle) -> ReconciliationState:
    return await handle.query(ReconciliationWorkflow.state, result_type=ReconciliationState)


async def until(handle, status: Status) -> ReconciliationState:
    for _ in range(1200):
        current = await state(handle)
        if current.status == status:
            return current
        await asyncio.sleep(0.025)
    raise AssertionError(f"never reached {status}; last {current.status}: {current.stage}")


async def test_heals_below_the_limit_asks_approval_above_it_and_parks_the_rest(env, worker, systems, reconciliations):
    for n in range(1, 8):
        book(systems, n, "100.00")
    small = book(systems, 8, "200.00", erp=False)  # 220.00 with tax: healed at once
    large = book(systems, 9, "5000.00", erp=False)  # 5,500.00: above the 1,000 limit
    off = book(systems, 10, "100.00", erp_revenue="101.00")  # a break nobody may heal
    handle = await start(env, worker, batch_size=3, parallel_batches=2, batches_per_run=2)

    waiting = await until(handle, Status.AWAITING_APPROVAL)
    assert waiting.approval.request.required_role == ApproverRole.FINANCE
    assert waiting.approval.request.amount == usd("5500.00")
    assert systems.erp.entries["amendment-R8-invoice"].invoice_id == small  # posted without asking
    assert "amendment-R9-invoice" not in systems.erp.entries
    assert waiting.batches == 4 and waiting.batches_done == 4  # 10 invoices in batches of 3, across runs
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await handle.execute_update(
            ReconciliationWorkflow.decide, DecisionInput(approver="mallory", role=ApproverRole.FINANCE, approved=True)
        )
    assert "not a known approver" in refused.value.cause.message
    await handle.execute_update(
        ReconciliationWorkflow.decide,
        DecisionInput(approver="fiona.finance", role=ApproverRole.FINANCE, approved=True, comment="customer confirmed"),
    )

    parked = await until(handle, Status.NEEDS_ATTENTION)
    assert systems.erp.entries["amendment-R9-invoice"].total_debits == usd("5500.00")
    assert parked.attention.step == "breaks" and "1 amount mismatch" in parked.attention.message
    await handle.execute_update(
        ReconciliationWorkflow.resolve,
        ResolveInput(action=OperatorAction.SKIP, operator="olga.ops", comment="GL fixes it in November"),
    )
    result = await handle.result()

    assert result.status == Status.COMPLETED
    assert result.found == {"missing_in_erp": 2, "amount_mismatch": 1} and result.healed == 2
    assert result.summary.billing_documents == 10 and result.summary.erp_entries == 8  # as read, before healing
    records = {b.document: b for b in await reconciliations.breaks_of_run(result.run_id)}
    assert records[small].status == records[large].status == "healed"
    assert records[small].resolution == "posted amendment-R8-invoice (ERP id 9)"
    assert records[large].resolution == "heal approved by fiona.finance; posted amendment-R9-invoice (ERP id 10)"
    assert records[off].status == "acknowledged" and "olga.ops: GL fixes it in November" in records[off].resolution
    assert records[off].difference == usd("1.00") and records[off].owner == "general ledger"

    # A second run heals nothing: the entries are there now; the mismatch is found again.
    again = await (await start(env, worker, batch_size=50)).result()
    assert again.found == {"amount_mismatch": 1} and again.healed == 0
    posts = systems.ledger.count("erp.post_journal_entry")
    assert posts == 2
    first = await reconciliations.breaks_of_run(result.run_id)
    assert {b.status for b in first if b.document == off} == {"superseded"}
    [carried] = await reconciliations.breaks_of_run(again.run_id)
    assert carried.first_seen_at == records[off].first_seen_at  # the break ages across runs


async def test_a_rejected_heal_stays_an_open_break(env, worker, systems, reconciliations):
    book(systems, 1, "5000.00", erp=False)
    handle = await start(env, worker)
    await until(handle, Status.AWAITING_APPROVAL)
    await handle.execute_update(
        ReconciliationWorkflow.decide,
        DecisionInput(approver="fiona.finance", role=ApproverRole.FINANCE, approved=False, comment="not ours"),
    )
    parked = await until(handle, Status.NEEDS_ATTENTION)
    assert "1 missing in erp" in parked.attention.message
    assert not systems.erp.entries
    [record] = await reconciliations.breaks_of_run(parked.run_id)
    assert record.status == "open" and record.resolution == "heal rejected by fiona.finance: not ours"

    # The operator books it by hand, then retries: a fresh pass finds nothing.
    systems.erp.entries["amendment-R1-invoice"] = invoice_entry(
        external_id="amendment-R1-invoice",
        subsidiary="1",
        posting_date=DAY,
        memo="by hand",
        revenue=usd("5000.00"),
        tax=usd("500.00"),
        chart=ReconciliationInput(legal_entity="US01").chart,
        invoice_id="in_001",
    )
    await handle.execute_update(
        ReconciliationWorkflow.resolve, ResolveInput(action=OperatorAction.RETRY, operator="olga.ops")
    )
    result = await handle.result()
    assert result.status == Status.COMPLETED and result.found == {} and result.run_id != parked.run_id
    [record] = await reconciliations.breaks_of_run(parked.run_id)
    assert record.status == "fixed" and record.resolution == f"not found again by run {result.run_id}"


async def test_a_heal_the_erp_refuses_is_left_open_with_the_reason(env, worker, systems, reconciliations):
    book(systems, 1, "100.00", erp=False)
    systems.erp.closed_periods.add("2026-10")
    handle = await start(env, worker)
    parked = await until(handle, Status.NEEDS_ATTENTION)
    [record] = await reconciliations.breaks_of_run(parked.run_id)
    assert record.status == "open" and record.resolution.startswith("could not heal: the accounting period")
    assert parked.not_healed == 1
    await handle.execute_update(
        ReconciliationWorkflow.resolve, ResolveInput(action=OperatorAction.SKIP, operator="olga.ops")
    )
    assert (await handle.result()).status == Status.COMPLETED


async def test_an_entry_outside_the_period_is_a_cut_off_difference_and_never_healed(
    env, worker, systems, reconciliations
):
    book(systems, 1, "100.00", erp=False)
    elsewhere = invoice_entry(
        external_id="amendment-R1-invoice",
        subsidiary="1",
        posting_date=date(2026, 9, 30),
        memo="posted in September",
        revenue=usd("100.00"),
        tax=usd("10.00"),
        chart=ReconciliationInput(legal_entity="US01").chart,
        invoice_id="in_001",
    )
    systems.erp.entries[elsewhere.external_id] = elsewhere
    handle = await start(env, worker)
    parked = await until(handle, Status.NEEDS_ATTENTION)
    [record] = await reconciliations.breaks_of_run(parked.run_id)
    # Found by its key before any heal was proposed: the same booking, dated in September.
    assert record.kind == BreakKind.CUT_OFF_DIFFERENCE and record.status == "open" and not record.resolution
    assert "2026-09-30" in record.explanation and "2026-10-12" in record.explanation
    assert parked.found == {"cut_off_difference": 1} and parked.healed == 0
    assert systems.erp.entries["amendment-R1-invoice"].posting_date == date(2026, 9, 30)
    assert systems.ledger.count("erp.post_journal_entry") == 0
    await handle.execute_update(
        ReconciliationWorkflow.resolve, ResolveInput(action=OperatorAction.SKIP, operator="olga.ops")
    )
    await handle.result()


async def test_recognised_revenue_is_compared_with_the_schedules(env, worker, systems, reconciliations):
    schedule = ratable_schedule(
        schedule_id="S-1",
        contract_id="C-9",
        account_id="cus_acme",
        legal_entity="US01",
        obligation="subscription",
        total=usd("3100.00"),
        start=date(2026, 10, 1),
        end=date(2026, 11, 1),
    )
    await systems.schedules.save_schedule(schedule)
    handle = await start(env, worker)
    parked = await until(handle, Status.NEEDS_ATTENTION)
    [record] = await reconciliations.breaks_of_run(parked.run_id)
    assert record.kind == "revenue_mismatch" and record.document == "C-9" and record.billing == usd("3100.00")
    assert record.owner == "revenue accounting"
    await handle.execute_update(
        ReconciliationWorkflow.resolve, ResolveInput(action=OperatorAction.SKIP, operator="olga.ops")
    )
    await handle.result()


async def test_a_bad_period_or_entity_is_refused_before_anything_is_read(env, worker, systems):
    for period, entity in (("2026-13", "US01"), ("2026-10", "XX99")):
        handle = await env.client.start_workflow(
            ReconciliationWorkflow.run,
            ReconciliationInput(legal_entity=entity, period=period),
            id=f"reconciliation-bad-{uuid.uuid4().hex[:6]}",
            task_queue=worker,
            result_type=ReconciliationResult,
        )
        result = await handle.result()
        assert result.status == Status.REJECTED
    assert not [c for c in systems.ledger.calls if "list" in c]
