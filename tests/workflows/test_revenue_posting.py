"""RevenuePostingWorkflow on the time-skipping test server: o2c's own database for real
(schedules and postings on SQLite), the ERP faked in memory."""

from __future__ import annotations

import asyncio
import uuid
from datetime import date

import pytest
from temporalio.worker import Worker

from activities.registry import all_activities
from adapters.errors import BusinessError
from adapters.storage.revenue_postings import SqlRevenuePostings
from adapters.storage.schedules import SqlRevenueSchedules
from canonical.models import LegalEntity
from canonical.money import Money
from canonical.revenue import ratable_schedule
from workflows.kit.attention import OperatorAction, ResolveInput
from workflows.kit.status import Status
from workflows.registry import ALL_WORKFLOWS
from workflows.revenue import (
    RevenuePostingInput,
    RevenuePostingResult,
    RevenuePostingState,
    RevenuePostingWorkflow,
    revenue_workflow_id,
)


def eur(amount: str) -> Money:
    return Money.of(amount, "EUR")


@pytest.fixture
async def world(env, systems, reconciliations, tmp_path):
    systems.reconciliations = reconciliations
    url = f"sqlite:///{tmp_path / 'o2c.sqlite'}"
    schedules, postings = SqlRevenueSchedules(url), SqlRevenuePostings(url)
    ports = {**systems.ports(), "schedules": schedules, "revenue_postings": postings}
    task_queue = f"tq-{uuid.uuid4()}"
    async with Worker(env.client, task_queue=task_queue, workflows=ALL_WORKFLOWS, activities=all_activities(**ports)):
        yield task_queue, schedules, postings
    await schedules.aclose()
    await postings.aclose()


def entity() -> LegalEntity:
    code = f"DE{uuid.uuid4().hex[:4]}"
    return LegalEntity(code=code, company_code="1010", functional_currency="EUR", erp="sap", erp_subsidiary="1010")


def seats(e: LegalEntity, total: str, schedule_id: str = "S1", start=date(2026, 5, 1), end=date(2026, 8, 1)):
    # 92 days from May 1: May 31 days, June 30, July 31.
    return ratable_schedule(
        schedule_id=f"{e.code}-{schedule_id}",
        contract_id=f"{e.code}-C1",
        account_id="cus_1",
        legal_entity=e.code,
        obligation="seats",
        total=eur(total),
        start=start,
        end=end,
    )


async def post(env, task_queue, e: LegalEntity, period: str, page: int = 1000) -> RevenuePostingResult:
    return await env.client.execute_workflow(
        RevenuePostingWorkflow.run,
        RevenuePostingInput(legal_entity=e, period=period, page=page),
        id=revenue_workflow_id(e.code, period),
        task_queue=task_queue,
        result_type=RevenuePostingResult,
    )


async def test_a_month_is_posted_once_however_often_it_runs(env, world, systems):
    task_queue, schedules, postings = world
    e = entity()
    # 9,200.00 over 92 days is 100.00 a day: May 3,100.00.
    await schedules.save_schedule(seats(e, "9200.00"))
    first = await post(env, task_queue, e, "2026-05")
    assert first.status == Status.COMPLETED
    entry = systems.erp.entries[f"revenue-{e.code}-2026-05-EUR"]
    assert entry.posting_date == date(2026, 5, 31) and entry.subsidiary == "1010"
    assert entry.total_debits == eur("3100.00")
    again = await post(env, task_queue, e, "2026-05")
    assert again.status == Status.COMPLETED and [x.posted for x in again.entries] == [False]
    assert systems.ledger.calls.count("erp.post_journal_entry") == 1
    assert [x.amount for x in await postings.postings_of_entity(e.code)] == [eur("3100.00")]


async def test_an_entry_the_erp_holds_already_is_recorded_not_posted_again(env, world, systems):
    task_queue, schedules, postings = world
    e = entity()
    await schedules.save_schedule(seats(e, "9200.00"))
    # An earlier attempt posted the entry and its answer was lost: the ERP holds it, o2c's
    # records do not. Taken from what the posting itself would build.
    from canonical.journal import ChartOfAccounts
    from canonical.revenue.posting import Recognition, build_postings

    (built,) = build_postings(
        legal_entity=e.code,
        subsidiary="1010",
        period="2026-05",
        recognised=[Recognition(period="2026-05", obligation="seats", amount=eur("3100.00"))],
        posted=[],
        chart=ChartOfAccounts(),
    )
    systems.erp.entries[built.entry.external_id] = built.entry
    result = await post(env, task_queue, e, "2026-05")
    assert result.status == Status.COMPLETED and [x.posted for x in result.entries] == [False]
    assert "erp.post_journal_entry" not in systems.ledger.calls
    assert await postings.posting(built.entry.external_id) == built.lines


async def test_a_late_amendment_is_trued_up_in_the_next_month(env, world, systems):
    task_queue, schedules, _ = world
    e = entity()
    await schedules.save_schedule(seats(e, "9200.00"))
    await post(env, task_queue, e, "2026-05")
    # After May was posted, an amendment back-dated to May 1 raises the contract to
    # 11,040.00 (120.00 a day): May now recognises 3,720.00, 620.00 more than posted.
    await schedules.save_schedule(seats(e, "11040.00"))
    june = await post(env, task_queue, e, "2026-06", page=1)  # the recognition read a row a page
    assert june.status == Status.COMPLETED
    entry = systems.erp.entries[f"revenue-{e.code}-2026-06-EUR"]
    # June 30 days x 120.00 = 3,600.00, plus the true-up of May 620.00.
    assert entry.total_debits == eur("4220.00")
    assert [(x.memo.split(" (")[0], x.amount) for x in entry.lines if x.credit] == [
        ("Revenue recognised in 2026-06: seats", eur("3600.00")),
        ("True-up of 2026-05: seats", eur("620.00")),
    ]
    assert systems.erp.entries[f"revenue-{e.code}-2026-05-EUR"].total_debits == eur("3100.00")
    assert june.entries[0].true_ups == 1


async def until(handle, status: Status) -> RevenuePostingState:
    for _ in range(1200):
        current = await handle.query(RevenuePostingWorkflow.state, result_type=RevenuePostingState)
        if current.status == status:
            return current
        await asyncio.sleep(0.025)
    raise AssertionError(f"never reached {status}; last {current.status}: {current.stage}")


async def test_a_closed_period_parks_and_a_retry_posts(env, world, systems):
    task_queue, schedules, postings = world
    e = entity()
    await schedules.save_schedule(seats(e, "9200.00"))
    systems.ledger.fail(
        "erp.post_journal_entry",
        BusinessError("sap", "Posting period 005 2026 is not open", code="PERIOD_CLOSED", fixable=True),
    )
    handle = await env.client.start_workflow(
        RevenuePostingWorkflow.run,
        RevenuePostingInput(legal_entity=e, period="2026-05"),
        id=revenue_workflow_id(e.code, "2026-05"),
        task_queue=task_queue,
        result_type=RevenuePostingResult,
    )
    parked = await until(handle, Status.NEEDS_ATTENTION)
    assert parked.attention is not None and "not open" in parked.attention.message
    assert parked.attention.actions == [OperatorAction.RETRY, OperatorAction.SKIP, OperatorAction.ABORT]
    assert await postings.postings_of_entity(e.code) == []
    await handle.execute_update(
        RevenuePostingWorkflow.resolve, ResolveInput(action=OperatorAction.RETRY, operator="olga.ops")
    )
    result = await handle.result()
    assert result.status == Status.COMPLETED
    assert f"revenue-{e.code}-2026-05-EUR" in systems.erp.entries
    assert len(await postings.postings_of_entity(e.code)) == 1


async def test_an_abort_at_a_closed_period_posts_and_records_nothing(env, world, systems):
    task_queue, schedules, postings = world
    e = entity()
    await schedules.save_schedule(seats(e, "9200.00"))
    systems.ledger.fail(
        "erp.post_journal_entry", BusinessError("netsuite", "period closed", code="PERIOD_CLOSED", fixable=True)
    )
    handle = await env.client.start_workflow(
        RevenuePostingWorkflow.run,
        RevenuePostingInput(legal_entity=e, period="2026-05"),
        id=revenue_workflow_id(e.code, "2026-05"),
        task_queue=task_queue,
        result_type=RevenuePostingResult,
    )
    await until(handle, Status.NEEDS_ATTENTION)
    await handle.execute_update(
        RevenuePostingWorkflow.resolve, ResolveInput(action=OperatorAction.ABORT, operator="olga.ops")
    )
    result = await handle.result()
    assert result.status == Status.FAILED and "aborted by operator" in result.message
    assert not systems.erp.entries and await postings.postings_of_entity(e.code) == []


async def test_a_month_that_has_not_ended_and_a_month_with_nothing_are_not_posted(env, world, systems, today):
    task_queue, _, _ = world
    e = entity()
    current = f"{today:%Y-%m}"
    refused = await post(env, task_queue, e, current)
    assert refused.status == Status.REJECTED and "has not ended" in refused.message
    empty = await post(env, task_queue, e, "2026-05")
    assert empty.status == Status.COMPLETED and empty.entries == [] and "nothing to post" in empty.message
    assert "erp.post_journal_entry" not in systems.ledger.calls


async def test_reconciliation_compares_the_posted_month_with_the_schedules(env, world, systems, reconciliations):
    """October posted, then a credit takes 155.00 off October: reconciling October finds the
    ledger's entry as posted, and the schedules' change as a true-up due in November."""
    from canonical.reconciliation import ReconciliationPolicy
    from workflows.reconciliation import (
        ReconciliationInput,
        ReconciliationResult,
        ReconciliationState,
        ReconciliationWorkflow,
    )

    task_queue, schedules, _ = world
    us01 = LegalEntity(code="US01", company_code="US01", functional_currency="USD", erp_subsidiary="1")
    october = ratable_schedule(
        schedule_id=f"S-{uuid.uuid4().hex[:6]}",
        contract_id="C-77",
        account_id="cus_acme",
        legal_entity="US01",
        obligation="subscription",
        total=Money.of("3100.00", "USD"),
        start=date(2026, 10, 1),
        end=date(2026, 11, 1),
    )
    await schedules.save_schedule(october)
    assert (await post(env, task_queue, us01, "2026-10")).status == Status.COMPLETED
    await schedules.save_schedule(
        october.model_copy(
            update={
                "total": Money.of("2945.00", "USD"),
                "lines": [october.lines[0].model_copy(update={"amount": Money.of("2945.00", "USD")})],
            }
        )
    )
    handle = await env.client.start_workflow(
        ReconciliationWorkflow.run,
        ReconciliationInput(
            legal_entity="US01", period="2026-10", legal_entities=[us01], policy=ReconciliationPolicy()
        ),
        id=f"reconciliation-US01-2026-10-{uuid.uuid4().hex[:6]}",
        task_queue=task_queue,
        result_type=ReconciliationResult,
    )
    for _ in range(1200):
        current = await handle.query(ReconciliationWorkflow.state, result_type=ReconciliationState)
        if current.status == Status.NEEDS_ATTENTION:
            break
        await asyncio.sleep(0.025)
    [record] = await reconciliations.breaks_of_run(current.run_id)
    assert record.kind == "revenue_mismatch" and record.document == "revenue-US01-2026-10-USD"
    assert record.explanation.startswith("Schedule changed after posting: true-up due in 2026-11.")
    assert (record.billing, record.erp) == (Money.of("2945.00", "USD"), Money.of("3100.00", "USD"))
    await handle.execute_update(
        ReconciliationWorkflow.resolve, ResolveInput(action=OperatorAction.SKIP, operator="olga.ops")
    )
    await handle.result()


async def test_the_month_end_run_starts_each_entity_posting_once(env, world, systems):
    from workflows.revenue_close import RevenueCloseInput, RevenueCloseResult, RevenueCloseWorkflow

    task_queue, schedules, _ = world
    first, second = entity(), entity()
    await schedules.save_schedule(seats(first, "9200.00"))
    await post(env, task_queue, first, "2026-05")  # started by hand before the month-end run

    async def close() -> RevenueCloseResult:
        return await env.client.execute_workflow(
            RevenueCloseWorkflow.run,
            RevenueCloseInput(legal_entities=[first, second], period="2026-05"),
            id=f"revenue-posting-{uuid.uuid4().hex[:6]}",
            task_queue=task_queue,
            result_type=RevenueCloseResult,
        )

    result = await close()
    assert result.started == [f"revenue-{second.code}-2026-05"]
    assert result.already_started == [f"revenue-{first.code}-2026-05"]
    assert (await close()).started == []
    assert systems.ledger.calls.count("erp.post_journal_entry") == 1
