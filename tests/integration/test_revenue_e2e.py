"""The revenue posting for real: the dev server, the o2c worker with its HTTP adapters, the
NetSuite stand-in over HTTP, o2c's own database. Each test books under an entity code of its
own (on NetSuite subsidiary 1), so what it reads back is its own."""

from __future__ import annotations

import uuid
from datetime import date

import pytest

from adapters.netsuite import NetSuiteErp
from adapters.storage.revenue_postings import SqlRevenuePostings
from adapters.storage.schedules import SqlRevenueSchedules
from canonical.models import LegalEntity
from canonical.money import Money
from canonical.revenue import ratable_schedule
from starter import client as o2c
from workflows.kit.attention import OperatorAction
from workflows.kit.status import Status
from workflows.revenue import RevenuePostingInput, RevenuePostingResult, RevenuePostingWorkflow, revenue_workflow_id

pytestmark = pytest.mark.integration


def entity() -> LegalEntity:
    code = f"R{uuid.uuid4().hex[:5].upper()}"
    return LegalEntity(code=code, company_code="US01", functional_currency="USD", erp_subsidiary="1")


async def save(settings, e: LegalEntity, total: str, *, start=date(2026, 5, 1), end=date(2026, 8, 1)) -> None:
    # 92 days from May 1: 9,200.00 is 100.00 a day (May 3,100.00, June 3,000.00).
    store = SqlRevenueSchedules(settings.database_url)
    try:
        await store.save_schedule(
            ratable_schedule(
                schedule_id=f"{e.code}-seats",
                contract_id=f"{e.code}-C1",
                account_id="cus_1",
                legal_entity=e.code,
                obligation="seats",
                total=Money.of(total, "USD"),
                start=start,
                end=end,
            )
        )
    finally:
        await store.aclose()


async def start(dev_server, worker, e: LegalEntity, period: str):
    return await dev_server.client.start_workflow(
        RevenuePostingWorkflow.run,
        RevenuePostingInput(legal_entity=e, period=period),
        id=revenue_workflow_id(e.code, period),
        task_queue=worker,
        result_type=RevenuePostingResult,
    )


async def ledger_entry(settings, external_id: str):
    erp = NetSuiteErp(settings.netsuite_base_url, settings.netsuite_token, timeout=5)
    try:
        return await erp.get_journal_entry(external_id)
    finally:
        await erp.aclose()


async def test_a_month_posted_through_lost_answers_is_one_entry_and_a_late_amendment_a_true_up(
    dev_server, worker, settings, control
):
    e = entity()
    await save(settings, e, "9200.00")
    # The ERP fails the post, then commits it and loses the answer: the retry upserts the
    # same external id, so the ledger holds one entry.
    for kind in ("5xx", "commit_then_timeout"):
        control.fault("netsuite", kind, times=1, method="PUT", path_contains=f"revenue-{e.code}", hold_seconds=2)
    before = control.count("netsuite", "journalEntry")
    may = await (await start(dev_server, worker, e, "2026-05")).result()
    assert may.status == Status.COMPLETED, may.message
    assert all(f["fired"] == 1 for f in control.faults()), control.faults()
    assert control.count("netsuite", "journalEntry") == before + 1
    entry = await ledger_entry(settings, f"revenue-{e.code}-2026-05-USD")
    assert entry is not None and entry.posting_date == date(2026, 5, 31)
    assert entry.total_debits == Money.of("3100.00", "USD")

    # Started again: the same workflow id lands on the finished posting; nothing is posted.
    again = await o2c._start_once(
        dev_server.client,
        RevenuePostingWorkflow.run,
        RevenuePostingInput(legal_entity=e, period="2026-05"),
        workflow_id=revenue_workflow_id(e.code, "2026-05"),
        task_queue=worker,
        process="revenue_posting",
        customer="",
        contract="",
    )
    assert (await again.result()).status == Status.COMPLETED
    assert control.count("netsuite", "journalEntry") == before + 1

    # An amendment back-dated into May raises the contract to 11,040.00 (120.00 a day): June
    # posts its own 3,600.00 and May's true-up of 620.00; May's entry is left as posted.
    await save(settings, e, "11040.00")
    june = await (await start(dev_server, worker, e, "2026-06")).result()
    assert june.status == Status.COMPLETED, june.message
    posted = await ledger_entry(settings, f"revenue-{e.code}-2026-06-USD")
    assert posted is not None and posted.total_debits == Money.of("4220.00", "USD")
    assert (await ledger_entry(settings, f"revenue-{e.code}-2026-05-USD")).total_debits == Money.of("3100.00", "USD")
    store = SqlRevenuePostings(settings.database_url)
    try:
        lines = await store.postings_of_entity(e.code)
    finally:
        await store.aclose()
    assert [(x.period, x.recognised_period, x.amount) for x in lines] == [
        ("2026-05", "2026-05", Money.of("3100.00", "USD")),
        ("2026-06", "2026-05", Money.of("620.00", "USD")),
        ("2026-06", "2026-06", Money.of("3600.00", "USD")),
    ]


async def test_a_closed_period_parks_and_a_retry_after_reopening_posts(dev_server, worker, settings, control):
    e = entity()
    await save(settings, e, "9200.00", start=date(2026, 2, 1), end=date(2026, 5, 4))
    control.set_period("1", "2026-02", closed=True)
    try:
        handle = await start(dev_server, worker, e, "2026-02")
        state = await o2c.wait_for_status(dev_server.client, handle.id, Status.NEEDS_ATTENTION, timeout=90)
        assert "closed" in state["attention"]["message"].lower(), state["attention"]
        assert await ledger_entry(settings, f"revenue-{e.code}-2026-02-USD") is None
    finally:
        control.set_period("1", "2026-02", closed=False)
    await o2c.resolve(dev_server.client, handle.id, OperatorAction.RETRY, operator="olga.ops", comment="reopened")
    result = await handle.result()
    assert result.status == Status.COMPLETED, result.message
    # February: 28 of 92 days = 2,800.00.
    entry = await ledger_entry(settings, f"revenue-{e.code}-2026-02-USD")
    assert entry is not None and entry.total_debits == Money.of("2800.00", "USD")
