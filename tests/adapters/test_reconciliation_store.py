"""The reconciliation store against SQLite and, when O2C_DATABASE_URL names one, PostgreSQL:
staging is idempotent, batches cut the keys exactly, breaks are recorded once per run and
age across runs, and closing a run settles the breaks of earlier ones."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime

import pytest

from adapters.storage.reconciliation import SqlReconciliationStore
from adapters.storage.schedules import SqlRevenueSchedules
from canonical.journal import ChartOfAccounts, invoice_entry
from canonical.money import Money
from canonical.reconciliation import Break, BreakKind, KeyRange
from canonical.revenue import ObligationKind, PerformanceObligation, RevenueContract, recognise
from canonical.usage.booking import USAGE_OBLIGATION, usage_schedule
from canonical.usage.models import UsageRelease


def usd(amount: str) -> Money:
    return Money.of(amount, "USD")


@pytest.fixture
async def store(database_url) -> AsyncIterator[SqlReconciliationStore]:
    store = SqlReconciliationStore(database_url)
    yield store
    await store.aclose()


def new_run(tag: str = "") -> tuple[str, str]:
    """A run id and an entity of its own: PostgreSQL is shared across test runs."""
    entity = f"T{secrets.token_hex(3)}"
    return f"{entity}-2026-10-{tag or secrets.token_hex(2)}", entity


async def open_run(store, run_id, entity, started=datetime(2026, 11, 1, tzinfo=UTC)):
    await store.open_run(
        run_id=run_id,
        workflow_id="wf",
        legal_entity=entity,
        period="2026-10",
        started_at=started,
        settings={"tolerance": 0},
    )


def missing(invoice_id: str, amount: str = "110.00") -> Break:
    heal = invoice_entry(
        external_id=f"{invoice_id}-invoice",
        subsidiary="1",
        posting_date=date(2026, 10, 2),
        memo="heal",
        revenue=usd(amount),
        tax=usd("0"),
        chart=ChartOfAccounts(),
        invoice_id=invoice_id,
    )
    return Break(
        kind=BreakKind.MISSING_IN_ERP,
        key=invoice_id,
        currency="USD",
        billing=usd(amount),
        explanation="missing",
        documents=[invoice_id],
        heal=heal,
    )


def mismatch(invoice_id: str) -> Break:
    return Break(
        kind=BreakKind.AMOUNT_MISMATCH,
        key=invoice_id,
        currency="USD",
        billing=usd("10.00"),
        erp=usd("11.00"),
        explanation="off by one",
    )


async def test_staging_twice_keeps_one_fact_and_batches_cut_the_keys_exactly(store):
    run_id, entity = new_run()
    await open_run(store, run_id, entity)
    await open_run(store, run_id, entity)  # a retried activity
    facts = [(f"in_{n:03d}", f"invoice:in_{n:03d}", f'{{"n": {n}}}') for n in range(7)]
    await store.stage(run_id, "billing", facts)
    await store.stage(run_id, "billing", facts[:3])
    await store.stage(run_id, "erp", [("101", "invoice:in_001", '{"erp": 1}')])
    batches = await store.plan_batches(run_id, 3)
    assert batches == [
        KeyRange(after="", last="invoice:in_002"),
        KeyRange(after="invoice:in_002", last="invoice:in_005"),
        KeyRange(after="invoice:in_005", last="invoice:in_006"),
    ]
    staged = await store.staged(run_id, batches[0])
    assert staged == [
        ("invoice:in_000", "billing", '{"n": 0}'),
        ("invoice:in_001", "billing", '{"n": 1}'),
        ("invoice:in_001", "erp", '{"erp": 1}'),
        ("invoice:in_002", "billing", '{"n": 2}'),
    ]
    assert sum([len(await store.staged(run_id, b)) for b in batches]) == 8


async def test_breaks_are_recorded_once_and_settle_earlier_runs(store):
    first, entity = new_run("a")
    await open_run(store, first, entity)
    found = [
        ("invoice:in_1", missing("in_1"), "awaiting_approval"),
        ("invoice:in_2", mismatch("in_2"), "open"),
        ("invoice:in_3", mismatch("in_3"), "open"),
    ]
    ids = await store.record_breaks(first, legal_entity=entity, period="2026-10", found=found)
    assert ids == await store.record_breaks(first, legal_entity=entity, period="2026-10", found=found)
    [(count, total)] = await store.heal_total(first, "awaiting_approval")
    assert (count, total) == (1, usd("110.00"))
    [order] = await store.heal_orders(first, status="awaiting_approval")
    assert order.break_id == ids[0] and order.entry.external_id == "in_1-invoice" and order.entry.invoice_id == "in_1"
    assert (
        await store.move_breaks(
            first, from_status="awaiting_approval", to_status="healing", resolution="heal approved by fiona.finance"
        )
        == 1
    )
    await store.resolve_breaks([(ids[0], "healed", "posted in_1-invoice")])
    summary = await store.close_run(first)
    assert (summary.status, summary.breaks_found, summary.healed, summary.open_breaks) == ("needs_attention", 3, 1, 2)
    assert summary.open_by_kind == {"amount_mismatch": 2}
    assert await store.staged(first, KeyRange(after="", last="~")) == []  # staging dropped

    second, _ = new_run("b")
    await open_run(store, second, entity)
    await store.record_breaks(
        second, legal_entity=entity, period="2026-10", found=[("invoice:in_2", mismatch("in_2"), "open")]
    )
    summary = await store.close_run(second)
    assert summary.fixed_since_last_run == 1 and summary.status == "needs_attention"
    # The first run's breaks are all settled now (healed, superseded, fixed): it needs nobody.
    assert (await store.run(first)).status == "completed" and (await store.run(first)).open_breaks == 0
    earlier = {b.document: b for b in await store.breaks_of_run(first)}
    assert earlier["in_1"].status == "healed"
    assert earlier["in_1"].resolution == "heal approved by fiona.finance; posted in_1-invoice"
    assert earlier["in_2"].status == "superseded" and earlier["in_2"].resolution == f"found again by run {second}"
    assert earlier["in_3"].status == "fixed" and earlier["in_3"].resolution == f"not found again by run {second}"
    [again] = await store.breaks_of_run(second)
    assert again.first_seen_at == earlier["in_2"].first_seen_at and again.detected_at > again.first_seen_at
    assert again.billing == usd("10.00") and again.erp == usd("11.00") and again.difference == usd("1.00")
    assert {r.run_id for r in await store.runs(legal_entity=entity)} == {first, second}


async def test_schedules_keep_asc606_fields_and_sum_revenue_per_contract(database_url):
    schedules = SqlRevenueSchedules(database_url)
    entity = f"E{secrets.token_hex(3)}"
    try:
        contract = RevenueContract(
            contract_id=f"C-{entity}",
            account_id="cus_1",
            legal_entity=entity,
            booked_on=date(2026, 9, 20),
            transaction_price=usd("12000.00"),
            obligations=[
                PerformanceObligation(
                    obligation_id="subscription",
                    kind=ObligationKind.SUBSCRIPTION,
                    ssp=usd("12000.00"),
                    start=date(2026, 10, 1),
                    end=date(2027, 10, 1),
                )
            ],
        )
        [schedule] = recognise(contract)
        await schedules.save_schedules([schedule])
        [back] = await schedules.schedules_of_contract(contract.contract_id)
        assert back == schedule and back.booked_on == date(2026, 9, 20) and back.ssp == usd("12000.00")
        page = await schedules.revenue_in_period(legal_entity=entity, period="2026-10")
        [october] = page.items
        assert october.contract_id == contract.contract_id and october.amount == schedule.lines[0].amount
        assert page.next_cursor == ""
        replacement = schedule.model_copy(
            update={"schedule_id": f"{schedule.schedule_id}.M1", "supersedes": schedule.schedule_id}
        )
        await schedules.save_schedules([replacement], delete=[schedule.schedule_id])
        assert [s.supersedes for s in await schedules.schedules_of_entity(entity)] == [schedule.schedule_id]
        assert len(await schedules.schedules_of_contract(contract.contract_id, open_on=date(2027, 9, 30))) == 1
        assert await schedules.schedules_of_contract(contract.contract_id, open_on=date(2027, 10, 1)) == []
    finally:
        await schedules.aclose()


async def test_usage_schedules_stay_out_of_the_ratable_revenue_comparison(database_url):
    """Usage revenue is reconciled against its accrual by the usage check; counted here as
    well, every usage month would show as revenue the ERP never recognised from deferral."""
    schedules = SqlRevenueSchedules(database_url)
    entity = f"E{secrets.token_hex(3)}"
    release = UsageRelease(
        workflow_id=f"usage-sub_{entity}-2026-10",
        subscription_id=f"sub_{entity}",
        customer="cus_1",
        legal_entity=entity,
        period="2026-10",
        invoice_id=f"in_{entity}",
        currency="USD",
        quantities={"api_calls": 1000},
        subtotal=usd("100.00"),
        credit=usd("0.00"),
        tax=usd("0.00"),
        total=usd("100.00"),
        released_at=datetime(2026, 11, 1, 1, tzinfo=UTC),
    )
    try:
        await schedules.save_schedule(usage_schedule(release, revenue=usd("100.00"), contract_id=f"C-{entity}"))
        assert [s.obligation for s in await schedules.schedules_of_entity(entity)] == [USAGE_OBLIGATION]
        assert (await schedules.revenue_in_period(legal_entity=entity, period="2026-10")).items == []
    finally:
        await schedules.aclose()


async def test_a_run_still_matching_counts_the_breaks_its_table_lists(store):
    """The report's header and table read the same rows: no "0 breaks" above a table of two."""
    from starter.reports import run_heading

    run_id, entity = new_run()
    await open_run(store, run_id, entity)
    await store.record_breaks(
        run_id,
        legal_entity=entity,
        period="2026-10",
        found=[("invoice:in_a", mismatch("in_a"), "open"), ("invoice:in_b", missing("in_b"), "healing")],
    )
    summary = await store.run(run_id)
    listed = await store.breaks_of_run(run_id)
    assert summary is not None and summary.status == "running" and summary.finished_at is None
    assert summary.breaks_found == len(listed) == 2 and summary.open_breaks == 2 and summary.healed == 0
    assert "2 breaks so far, 0 healed, 2 open" in run_heading(summary)
    [healing] = [b for b in listed if b.status == "healing"]
    await store.resolve_breaks([(healing.break_id, "healed", "posted")])
    closed = await store.close_run(run_id)
    assert closed.breaks_found == 2 and closed.healed == 1 and closed.open_breaks == 1
    assert "2 breaks, 1 healed, 1 open" in run_heading(closed)
