"""Usage in o2c's database (SQLite, and PostgreSQL when O2C_DATABASE_URL names one): exactly-once
counting per period, the quarantine, late events, retries, API keys, releases, the sync."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from adapters.storage.tables import usage_api_keys, usage_events
from adapters.storage.usage import QuarantineError, SqlUsageStore, UsageLedger, UsageUnavailable, sync
from canonical.money import Money
from canonical.usage.models import EventOutcome, Meter, Refusal, UsagePolicy, UsageRelease
from tests.adapters.usage_kit import API_CALLS, NOW, STORAGE, FailingInserts, customer, event, seeded_ledger

APRIL = datetime(2026, 4, 2, 9, 0, tzinfo=UTC)


def outcomes(verdicts) -> list[str]:
    return [v.outcome.value for v in verdicts]


async def quantities(ledger: UsageLedger, cust: str, period: str) -> dict[str, int]:
    return {t.meter: t.quantity for t in await ledger.period_totals(period, customer=cust)}


async def test_an_identifier_counts_once_per_period_however_often_it_is_sent(database_url):
    acme = customer()
    ledger = await seeded_ledger(database_url, acme)
    try:
        first = await ledger.ingest(
            [
                event(acme.customer, "e1", value=5),
                event(acme.customer, "e2", value=7),
                event(acme.customer, "e1", value=5),
            ],
            source="platform",
            now=NOW,
        )
        assert outcomes(first) == ["accepted", "accepted", "duplicate"]
        assert first[0].period == "2026-03"
        again = await ledger.ingest([event(acme.customer, "e2", value=7)], source="platform", now=NOW)
        assert outcomes(again) == ["duplicate"]
        # The same identifier in the next period is another event of that period.
        april = await ledger.ingest([event(acme.customer, "e1", value=3, at=APRIL)], source="platform", now=APRIL)
        assert outcomes(april) == ["accepted"] and april[0].period == "2026-04"
        assert await quantities(ledger, acme.customer, "2026-03") == {"api_calls": 12}
        assert await quantities(ledger, acme.customer, "2026-04") == {"api_calls": 3}
        totals = await ledger.period_totals("2026-03", customer=acme.customer)
        assert [(t.events, t.late_events) for t in totals] == [(2, 0)]
    finally:
        await ledger.aclose()


async def test_refused_events_are_quarantined_then_replayed_or_discarded(database_url):
    acme, late_comer = customer(), customer()
    ledger = await seeded_ledger(database_url, acme)
    try:
        verdicts = await ledger.ingest(
            [
                event(late_comer.customer, "q1", value=4),  # not in the master data yet
                event(acme.customer, "q2", value=2_000_000),  # above the meter's bound
                event(acme.customer, "q3", meter="seats"),  # no such meter
                event(acme.customer, "q4", value=1, at=NOW + timedelta(hours=1)),  # ahead of now
            ],
            source="platform",
            now=NOW,
        )
        assert outcomes(verdicts) == ["refused"] * 4
        assert [v.reason for v in verdicts] == [
            Refusal.UNKNOWN_CUSTOMER,
            Refusal.OUT_OF_BOUNDS,
            Refusal.UNKNOWN_METER,
            Refusal.FUTURE_TIMESTAMP,
        ]
        mine = {acme.customer, late_comer.customer}
        queued = {
            q.identifier.rsplit("-", 1)[1]: q
            for q in await ledger.quarantine(limit=100_000)
            if q.event["customer"] in mine
        }
        assert set(queued) == {"q1", "q2", "q3", "q4"}
        assert queued["q1"].reason == "unknown_customer" and queued["q1"].source == "platform"
        assert queued["q1"].event == {
            "customer": late_comer.customer,
            "dimensions": {},
            "identifier": f"{late_comer.customer}-q1",
            "meter": "api_calls",
            "timestamp": NOW.isoformat(),
            "value": 4,
        }

        # The customer master is fixed: q1 is counted on replay (once, even replayed twice).
        await ledger.upsert_customers([late_comer])
        replayed = dict(await ledger.replay([queued["q1"].id, queued["q3"].id], by="ops", now=NOW))
        assert replayed[queued["q1"].id].outcome is EventOutcome.ACCEPTED
        assert replayed[queued["q3"].id].reason is Refusal.UNKNOWN_METER  # still invalid: stays open
        with pytest.raises(QuarantineError, match="no open quarantined event"):
            await ledger.replay([queued["q1"].id], by="ops", now=NOW)
        assert await quantities(ledger, late_comer.customer, "2026-03") == {"api_calls": 4}

        with pytest.raises(QuarantineError, match="needs a reason"):
            await ledger.discard([queued["q2"].id], by="ops", reason=" ")
        assert await ledger.discard([queued["q2"].id], by="ops", reason="a load test, not billable") == 1

        after = {
            q.identifier.rsplit("-", 1)[1]: q
            for q in await ledger.quarantine(status="", limit=100_000)
            if q.id in {x.id for x in queued.values()}
        }
        assert (after["q1"].status, after["q1"].resolved_by) == ("replayed", "ops")
        assert (after["q2"].status, after["q2"].resolution) == ("discarded", "a load test, not billable")
        assert (after["q3"].status, after["q4"].status) == ("open", "open")
        # Replayed again once its time has come, the future event counts too.
        later = dict(await ledger.replay([after["q4"].id], by="ops", now=NOW + timedelta(hours=2)))
        assert later[after["q4"].id].outcome is EventOutcome.ACCEPTED
        assert await quantities(ledger, acme.customer, "2026-03") == {"api_calls": 1}
    finally:
        await ledger.aclose()


async def test_a_late_event_counts_once_in_the_next_open_period(database_url):
    acme = customer()
    ledger = await seeded_ledger(database_url, acme)
    store = SqlUsageStore(database_url)
    try:
        march = NOW - timedelta(days=3)
        assert outcomes(
            await ledger.ingest([event(acme.customer, "on-time", value=10, at=march)], source="p", now=NOW)
        ) == ["accepted"]
        await store.close_period(acme.customer, "2026-03")
        await store.close_period(acme.customer, "2026-03")  # twice changes nothing
        # The ledger still holds the master data read before the close: the write sees it.
        verdicts = await ledger.ingest(
            [event(acme.customer, "on-time", value=10, at=march), event(acme.customer, "late", value=4, at=march)],
            source="p",
            now=APRIL,
        )
        assert outcomes(verdicts) == ["duplicate", "accepted"]
        assert verdicts[1].period == "2026-04"
        assert outcomes(
            await ledger.ingest([event(acme.customer, "late", value=4, at=march)], source="p", now=APRIL)
        ) == ["duplicate"]
        april = await ledger.period_totals("2026-04", customer=acme.customer)
        assert [(t.quantity, t.events, t.late_events) for t in april] == [(4, 1, 1)]
        assert [t.quantity for t in await store.totals(acme.customer, "2026-03")] == [10]
        await store.reopen_period(acme.customer, "2026-03")
        assert await store.closed_periods(acme.customer) == []
    finally:
        await ledger.aclose()
        await store.aclose()


async def test_late_events_go_to_the_queue_when_the_policy_says_so(database_url):
    acme = customer()
    ledger = await seeded_ledger(database_url, acme, policy=UsagePolicy(late_events="quarantine"))
    store = SqlUsageStore(database_url)
    try:
        await store.close_period(acme.customer, "2026-03")
        ledger.refresh()
        verdicts = await ledger.ingest([event(acme.customer, value=4)], source="p", now=APRIL)
        assert [v.reason for v in verdicts] == [Refusal.CLOSED_PERIOD]
    finally:
        await ledger.aclose()
        await store.aclose()


async def test_a_transient_failure_is_retried_and_the_batch_committed_once(database_url):
    acme = customer()
    ledger = await seeded_ledger(database_url, acme, max_wait_seconds=0.01)
    try:
        failing = FailingInserts(ledger.engine, times=1)
        verdicts = await ledger.ingest(
            [event(acme.customer, "r1", value=3), event(acme.customer, value="2" and 2)], source="p", now=NOW
        )
        assert failing.failed == 1
        assert outcomes(verdicts) == ["accepted", "accepted"]
        assert await quantities(ledger, acme.customer, "2026-03") == {"api_calls": 5}
        # Committed before the answer: another connection sees it.
        fresh = UsageLedger(database_url, migrate=False)
        try:
            assert await quantities(fresh, acme.customer, "2026-03") == {"api_calls": 5}
        finally:
            await fresh.aclose()
    finally:
        await ledger.aclose()


async def test_a_database_that_stays_down_is_unavailable_and_nothing_is_written(database_url):
    acme = customer()
    ledger = await seeded_ledger(database_url, acme, attempts=3, max_wait_seconds=0.01)
    try:
        before = await ledger.counts()
        failing = FailingInserts(ledger.engine, times=10)
        with pytest.raises(UsageUnavailable, match="did not answer"):
            await ledger.ingest([event(acme.customer, value=3), event("cus_nobody", value=1)], source="p", now=NOW)
        assert failing.failed == 3
        assert await ledger.counts() == before
    finally:
        await ledger.aclose()


async def test_api_keys_are_kept_as_hashes_and_refused_once_revoked(database_url):
    ledger = UsageLedger(database_url)
    name = f"platform-{uuid.uuid4().hex[:8]}"
    try:
        key = await ledger.create_key(name)
        assert key.startswith("o2c_usage_") and len(key) > 40
        with pytest.raises(QuarantineError, match="exists already"):
            await ledger.create_key(name)
        with ledger.engine.connect() as conn:
            stored = conn.execute(
                sa.select(usage_api_keys.c.key_sha256).where(usage_api_keys.c.name == name)
            ).scalar_one()
        assert stored == hashlib.sha256(key.encode()).hexdigest()
        assert await ledger.authenticate(key) == name
        assert await ledger.authenticate(key + "x") is None
        assert await ledger.authenticate("") is None
        listed = {k.name: k for k in await ledger.keys()}
        assert listed[name].revoked_at is None
        assert await ledger.revoke_key(name) is True
        assert await ledger.revoke_key(name) is False
        assert await ledger.authenticate(key) is None
        assert {k.name: k for k in await ledger.keys()}[name].revoked_at is not None
    finally:
        await ledger.aclose()


async def test_a_key_created_elsewhere_works_at_once_and_guesses_wait(database_url):
    """The CLI creates a key in its own process while the ingress holds the keys in memory."""
    ingress, cli = UsageLedger(database_url), UsageLedger(database_url)
    try:
        assert await ingress.authenticate("o2c_usage_nobody") is None  # the ingress has read its keys
        name = f"platform-{uuid.uuid4().hex[:8]}"
        key = await cli.create_key(name)
        assert await ingress.authenticate(key) == name
        started = time.monotonic()
        assert [await ingress.authenticate(f"guess-{n}") for n in range(2)] == [None, None]
        assert time.monotonic() - started >= 1.0  # one read of the keys a second, however many guesses
    finally:
        await ingress.aclose()
        await cli.aclose()


def release(cust: str, period: str, api_calls: int, *, invoice: str, total: str) -> UsageRelease:
    return UsageRelease(
        workflow_id=f"usage-{cust}-{period}",
        subscription_id=f"sub_{cust}",
        customer=cust,
        legal_entity="US01",
        period=period,
        invoice_id=invoice,
        currency="USD",
        quantities={"api_calls": api_calls},
        subtotal=Money.of(total, "USD"),
        credit=Money.of("0", "USD"),
        tax=Money.of("1.25", "USD"),
        total=Money.of(total, "USD") + Money.of("1.25", "USD"),
        released_at=NOW,
        journal_entries=["JE-1"],
    )


async def test_releases_give_the_history_and_the_previous_total(database_url):
    cust = f"cus_{uuid.uuid4().hex[:12]}"
    store = SqlUsageStore(database_url)
    try:
        for n, period in enumerate(["2025-10", "2025-11", "2025-12", "2026-01", "2026-02"]):
            await store.record_release(
                release(cust, period, 100 * (n + 1), invoice=f"in_{cust}_{n}", total=f"{n + 1}.00")
            )
        changed = release(cust, "2026-02", 999, invoice=f"in_{cust}_4", total="9.99")
        await store.record_release(changed)  # replaced by workflow id
        assert await store.history(cust, "api_calls", before="2026-03", periods=3) == [300, 400, 999]
        assert await store.history(cust, "storage_gb", before="2026-01", periods=6) == [0, 0, 0]
        previous = await store.previous_release(cust, before="2026-03")
        assert previous == changed
        assert await store.previous_release(cust, before="2025-10") is None
        page, cursor = await store.releases(legal_entity="US01", period="2025-11", limit=1000)
        assert cust in {r.customer for r in page} and cursor == ""
        await store.delete_release(changed.workflow_id)
        assert await store.history(cust, "api_calls", before="2026-03", periods=2) == [300, 400]
    finally:
        await store.aclose()


async def test_releases_page_in_invoice_order(database_url):
    period = f"20{uuid.uuid4().int % 50 + 40}-07"  # a period of this test's own
    store = SqlUsageStore(database_url)
    try:
        for n in range(5):
            await store.record_release(release(f"cus_p{n}", period, n, invoice=f"in_{n:03d}", total="1.00"))
        seen, cursor = [], ""
        while True:
            page, cursor = await store.releases(legal_entity="US01", period=period, cursor=cursor, limit=2)
            seen += [r.invoice_id for r in page]
            if not cursor:
                break
        assert seen == [f"in_{n:03d}" for n in range(5)]
    finally:
        await store.aclose()


class FakeMetering:
    """Billing's side of the sync: its meters and metered customers."""

    def __init__(self, meters, customers, accounts=None):
        # The platform account's customers, and those of other billing accounts (Connect).
        self.meters, self.accounts = meters, {"": customers, **(accounts or {})}

    async def list_meters(self):
        return self.meters

    async def usage_customers(self, *, billing_account: str = ""):
        return self.accounts.get(billing_account, [])


async def test_sync_takes_billing_meters_with_the_policys_rules(database_url):
    acme = customer()
    ledger = UsageLedger(database_url)
    try:
        billed = [
            Meter(event_name="api_calls", display_name="API calls (Stripe)", stripe_meter_id="mtr_1"),
            Meter(event_name="storage_gb", display_name="Storage", stripe_meter_id="mtr_2", active=False),
        ]
        policy = UsagePolicy(meters=[API_CALLS.model_copy(update={"max_value": 10})])
        result = await sync(FakeMetering(billed, [acme]), policy, ledger)
        assert (result.meters, result.customers) == (2, 1)
        master = ledger.master_data()
        assert master.meters["api_calls"].max_value == 10
        assert master.meters["api_calls"].stripe_meter_id == "mtr_1"
        assert master.meters["api_calls"].display_name == "API calls (Stripe)"
        assert master.meters["storage_gb"].active is False
        assert set(master.customers) == {acme.customer}
        verdicts = await ledger.ingest(
            [event(acme.customer, value=11), event(acme.customer, value=10)], source="p", now=NOW
        )
        assert [v.reason for v in verdicts] == [Refusal.OUT_OF_BOUNDS, None]
        # A customer billing no longer lists may no longer send usage.
        result = await sync(FakeMetering(billed, []), policy, ledger)
        assert result.removed_customers == [acme.customer]
    finally:
        # Leave the shared database's master data as the other tests expect it.
        await ledger.upsert_meters([API_CALLS, STORAGE])
        await ledger.aclose()


async def test_sync_reads_every_legal_entitys_billing_account(database_url):
    acme, initech = customer(), customer()
    ledger = UsageLedger(database_url)
    try:
        metering = FakeMetering([API_CALLS], [acme], accounts={"acct_uk01": [initech]})
        result = await sync(metering, UsagePolicy(), ledger, billing_accounts=["", "acct_uk01", ""])
        assert result.customers == 2
        assert set(ledger.master_data().customers) == {acme.customer, initech.customer}
    finally:
        await ledger.upsert_meters([API_CALLS, STORAGE])
        await ledger.aclose()


async def test_syncs_at_once_replace_the_master_data_one_after_the_other(database_url):
    # Several usage setups syncing together (the chaos run does): each replacement deletes and
    # inserts, and on PostgreSQL two at once both inserted what neither had deleted.
    acme = customer()
    ledger = UsageLedger(database_url)
    try:
        await asyncio.gather(*(ledger.replace_master_data([API_CALLS, STORAGE], [acme]) for _ in range(6)))
        assert set(ledger.master_data().meters) == {API_CALLS.event_name, STORAGE.event_name}
    finally:
        await ledger.upsert_meters([API_CALLS, STORAGE])
        await ledger.aclose()


async def test_postgresql_keeps_each_period_in_its_own_partition(database_url):
    if not database_url.startswith("postgres"):
        pytest.skip("partitions are PostgreSQL's")
    acme = customer()
    ledger = await seeded_ledger(database_url, acme)
    try:
        await ledger.ingest(
            [event(acme.customer, value=1), event(acme.customer, value=1, at=APRIL)], source="p", now=APRIL
        )
        with ledger.engine.connect() as conn:
            partitions = set(
                conn.execute(
                    sa.text(
                        "SELECT inhrelid::regclass::text FROM pg_inherits WHERE inhparent = 'usage_events'::regclass"
                    )
                ).scalars()
            )
            assert {"usage_events_2026_03", "usage_events_2026_04"} <= partitions
            stored = conn.execute(
                sa.select(usage_events.c.period, sa.func.count())
                .where(usage_events.c.customer == acme.customer)
                .group_by(usage_events.c.period)
            ).all()
        assert sorted(stored) == [("2026-03", 1), ("2026-04", 1)]
    finally:
        await ledger.aclose()


async def test_an_event_quarantined_before_the_id_rule_stays_open_and_the_others_replay(database_url):
    """An identifier the business id rule now refuses (a space in it, accepted before the rule)
    cannot be counted: its replay says why and leaves it open; the rest of the batch replays."""
    from adapters.storage.tables import usage_quarantine

    acme, late_comer = customer(), customer()
    ledger = await seeded_ledger(database_url, acme)
    try:
        await ledger.ingest(
            [event(late_comer.customer, "old", value=4), event(late_comer.customer, "new", value=3)],
            source="platform",
            now=NOW,
        )
        queued = {
            q.identifier.rsplit("-", 1)[1]: q
            for q in await ledger.quarantine(limit=100_000)
            if q.event["customer"] == late_comer.customer
        }
        old = queued["old"]
        kept_before = {**old.event, "identifier": f"{late_comer.customer} old"}
        with ledger.engine.begin() as conn:
            conn.execute(
                sa.update(usage_quarantine)
                .where(usage_quarantine.c.id == old.id)
                .values(event=json.dumps(kept_before), identifier=kept_before["identifier"])
            )
        await ledger.upsert_customers([late_comer])
        replayed = dict(await ledger.replay([old.id, queued["new"].id], by="ops", now=NOW))
        assert replayed[queued["new"].id].outcome is EventOutcome.ACCEPTED
        assert replayed[old.id].reason is Refusal.INVALID_ID and "U+0020 a space" in replayed[old.id].message
        still = [q for q in await ledger.quarantine(limit=100_000) if q.id == old.id]
        assert [q.status for q in still] == ["open"]
        assert await quantities(ledger, late_comer.customer, "2026-03") == {"api_calls": 3}
    finally:
        await ledger.aclose()
