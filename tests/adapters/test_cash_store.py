"""Cash application in o2c's database (SQLite, and PostgreSQL when O2C_DATABASE_URL names one):
statements and receipts once, balances never over-applied, each receipt matched once, the
payer directory, operators' decisions, the queue, card attempts, and the ledger reads."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta

import pytest
import sqlalchemy as sa

from adapters.ports import CashStorePort
from adapters.storage.cash import SqlCashStore
from adapters.storage.tables import cash_applications, cash_open_items
from canonical.cash.matching import match_statement
from canonical.cash.models import (
    Application,
    BankStatement,
    CashDecision,
    CashDecisionKind,
    CashMatch,
    ExceptionKind,
    MatchRule,
    OpenItem,
    Receipt,
    ReceiptSource,
    StatementEntry,
    StatementFormat,
)
from canonical.money import Money

AT = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def usd(amount: str) -> Money:
    return Money.of(amount, "USD")


class World:
    """Names of one test's own: the PostgreSQL database is shared across runs."""

    def __init__(self) -> None:
        self.tag = uuid.uuid4().hex[:8]
        self.entity = f"US{self.tag}"
        self.account = f"ACC{self.tag}"
        self.statement_id = f"camt:{self.account}:1"

    def customer(self, name: str) -> str:
        return f"cus_{name}_{self.tag}"

    def invoice(
        self, name: str, balance: str, *, customer: str = "acme", entity: str = "", total: str = ""
    ) -> OpenItem:
        return OpenItem(
            invoice_id=f"in_{name}_{self.tag}",
            number=f"INV-{name}-{self.tag}",
            customer=self.customer(customer),
            legal_entity=entity or self.entity,
            total=usd(total or balance),
            balance=usd(balance),
            due_on=date(2026, 11, 1),
            erp_document=f"erp_{name}",
        )

    def receipt(
        self,
        ref: str,
        amount: str,
        *invoices: OpenItem,
        payer: str = "",
        account: str = "",
        value_date: date = date(2026, 11, 20),
        statement_id: str = "",
    ) -> Receipt:
        return Receipt(
            receipt_id=f"camt053:{self.account}:{ref}",
            source=ReceiptSource.CAMT053,
            legal_entity=self.entity,
            amount=usd(amount),
            value_date=value_date,
            bank_reference=f"{ref}-{self.tag}",
            statement_id=statement_id or self.statement_id,
            bank_account=self.account,
            payer_name=payer,
            payer_account=account,
            references=[i.number for i in invoices],
        )

    def statement(self, *receipts: Receipt, statement_id: str = "") -> BankStatement:
        entries = [
            StatementEntry(
                line=n + 1,
                amount=r.amount,
                credit=True,
                bank_reference=r.bank_reference,
                booked_on=r.value_date,
                value_date=r.value_date,
            )
            for n, r in enumerate(receipts)
        ]
        opening = usd("1000.00")
        closing = Money.from_minor(opening.minor + sum(r.amount.minor for r in receipts), "USD")
        return BankStatement(
            statement_id=statement_id or self.statement_id,
            format=StatementFormat.CAMT053_08,
            bank_account=self.account,
            currency="USD",
            created_at=AT,
            opening=opening,
            closing=closing,
            entries=entries,
            digest="0" * 64,
        )


def _implements_the_port(store: SqlCashStore) -> CashStorePort:
    return store  # the type checker proves SqlCashStore is a CashStorePort


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[SqlCashStore]:
    s = SqlCashStore(database_url)
    yield s
    await s.aclose()


async def imported(store: SqlCashStore, world: World, *receipts: Receipt) -> None:
    assert await store.record_statement(world.statement(*receipts), list(receipts))


async def match_and_apply(store: SqlCashStore, receipts: list[Receipt]) -> list[CashMatch]:
    book = await store.book_for(receipts)
    return await store.apply_matches(match_statement(receipts, book))


def balance(store: SqlCashStore, item: OpenItem) -> int:
    with store.engine.connect() as conn:
        return int(
            conn.execute(
                sa.select(cash_open_items.c.balance_minor).where(cash_open_items.c.invoice_id == item.invoice_id)
            ).scalar_one()
        )


def applied_rows(store: SqlCashStore, item: OpenItem) -> list[tuple[str, int, str]]:
    with store.engine.connect() as conn:
        rows = conn.execute(
            sa.select(cash_applications.c.receipt_id, cash_applications.c.amount_minor, cash_applications.c.origin)
            .where(cash_applications.c.invoice_id == item.invoice_id)
            .order_by(cash_applications.c.receipt_id)
        )
        return [tuple(row) for row in rows]


# -- statements and receipts ----------------------------------------------------------------------


async def test_a_statement_and_a_bank_reference_are_recorded_once(store: SqlCashStore) -> None:
    w = World()
    one, two = w.receipt("r1", "10.00"), w.receipt("r2", "20.00")
    assert await store.record_statement(w.statement(one, two), [one, two])
    assert not await store.record_statement(w.statement(one, two), [one, two])  # the same file again
    # The next day's statement repeats r2 (same account, same bank reference): one receipt.
    later = w.statement_id + "b"
    again = one.model_copy(update={"receipt_id": "camt053:other-id", "statement_id": later})
    three = w.receipt("r3", "30.00", statement_id=later)
    assert await store.record_statement(w.statement(again, three, statement_id=later), [again, three])
    assert [r.receipt_id for r in await store.receipts(w.statement_id)] == [one.receipt_id, two.receipt_id]
    assert [r.receipt_id for r in await store.receipts(later)] == [three.receipt_id]
    page = await store.receipts(w.statement_id, after=one.receipt_id, limit=5)
    assert page == [two]
    assert await store.receipt(one.receipt_id) == one and await store.receipt("nope") is None


async def test_a_stripe_receipt_counts_once(store: SqlCashStore) -> None:
    w = World()
    charge = Receipt(
        receipt_id=f"stripe::ch_{w.tag}",
        source=ReceiptSource.STRIPE,
        legal_entity=w.entity,
        amount=usd("12.00"),
        value_date=date(2026, 11, 2),
        bank_reference=f"ch_{w.tag}",
        customer_hint=w.customer("acme"),
        charge_id=f"ch_{w.tag}",
    )
    assert await store.record_receipt(charge)
    assert not await store.record_receipt(charge)


async def test_receipts_that_do_not_belong_to_the_statement_are_refused_whole(store: SqlCashStore) -> None:
    w = World()
    good = w.receipt("r1", "10.00")
    euros = good.model_copy(update={"receipt_id": good.receipt_id + "e", "amount": Money.of("5.00", "EUR")})
    with pytest.raises(ValueError, match="is in EUR"):
        await store.record_statement(w.statement(good), [good, euros])
    assert await store.receipts(w.statement_id) == []
    assert await store.record_statement(w.statement(good), [good])  # nothing of the refused import stayed


# -- open items -------------------------------------------------------------------------------------


async def test_open_items_are_found_by_customer_and_by_what_a_remittance_names(store: SqlCashStore) -> None:
    w = World()
    a, b, settled = (
        w.invoice("a", "10.00"),
        w.invoice("b", "20.00", customer="globex"),
        w.invoice("c", "0.00", total="5.00"),
    )
    await store.upsert_open_items([a, b, settled])
    assert await store.open_items(customer=w.customer("acme")) == [a]  # settled ones are not open
    found = await store.open_items(invoice_refs=[f" inv-b-{w.tag}", settled.invoice_id])
    assert sorted(i.invoice_id for i in found) == sorted([b.invoice_id, settled.invoice_id])
    # Billing reports an older, higher balance: cash applied here is not undone.
    await store.upsert_open_items([a.model_copy(update={"balance": usd("4.00")})])
    await store.upsert_open_items([a])
    assert balance(store, a) == 400
    with pytest.raises(ValueError, match="not within 0 and the total"):
        await store.upsert_open_items([a.model_copy(update={"balance": usd("11.00")})])


async def test_the_book_reads_what_the_rules_need(store: SqlCashStore) -> None:
    w = World()
    odd = f"{int(w.tag, 16) % 100_000}.77"  # an amount of this test's own: the database is shared
    exact, other, lone = w.invoice("x", "10.00"), w.invoice("y", "33.00"), w.invoice("z", odd, customer="nobody")
    await store.upsert_open_items([exact, other, lone])
    await store.learn_payer(w.customer("acme"), account=f"DE00 {w.tag}")
    by_ref = w.receipt("r1", "10.00", exact, account=f"DE00{w.tag}")
    by_payer = w.receipt("r2", "33.00", account=f"de00{w.tag}")
    # Payer names are learned for good, and the database is shared: a name of this test's own.
    stranger = w.receipt("r3", odd, payer=f"Somebody {w.tag}")
    book = await store.book_for([by_ref])
    assert [i.invoice_id for i in book.items] == [exact.invoice_id]  # the customer's others are not read
    book = await store.book_for([by_ref, by_payer, stranger])
    assert {i.invoice_id for i in book.items} == {exact.invoice_id, other.invoice_id, lone.invoice_id}
    matches = match_statement([by_ref, by_payer, stranger], book)
    assert [m.rule for m in matches] == [MatchRule.EXACT_REFERENCE, MatchRule.UNIQUE_AMOUNT, MatchRule.UNMATCHED]
    assert matches[2].suggestions[0].invoice_ids == [lone.invoice_id]


# -- applying matches ---------------------------------------------------------------------------------


async def test_matches_lower_balances_once_and_a_receipt_keeps_its_first_match(store: SqlCashStore) -> None:
    w = World()
    a, b, c = w.invoice("a", "100.00"), w.invoice("b", "50.00"), w.invoice("c", "80.00")
    await store.upsert_open_items([a, b, c])
    receipts = [
        w.receipt("r1", "100.00", a),
        w.receipt("r2", "20.00", c),
        w.receipt("r3", "50.00", b),
        w.receipt("r4", "70.00", b),
    ]
    await imported(store, w, *receipts)
    first = await match_and_apply(store, receipts)
    assert [m.rule for m in first] == [
        MatchRule.EXACT_REFERENCE,
        MatchRule.PARTIAL_REFERENCE,
        MatchRule.EXACT_REFERENCE,
        MatchRule.UNMATCHED,  # b was settled by r3 in the same batch
    ]
    assert first[3].exception is ExceptionKind.DUPLICATE_SETTLEMENT
    assert (balance(store, a), balance(store, b), balance(store, c)) == (0, 0, 6000)
    # The same batch again (a retried activity): nothing changes, the first matches come back.
    again = await match_and_apply(store, receipts)
    assert again == first
    assert applied_rows(store, c) == [(receipts[1].receipt_id, 2000, "match")]
    assert await store.match_of(receipts[0].receipt_id) == first[0]
    assert await store.match_of("unknown") is None


async def test_a_match_that_lost_the_race_for_a_balance_is_recorded_unmatched(store: SqlCashStore) -> None:
    w = World()
    a = w.invoice("a", "100.00")
    await store.upsert_open_items([a])
    r1, r2 = w.receipt("r1", "100.00", a), w.receipt("r2", "100.00", a)
    await imported(store, w, r1, r2)
    # Both matched against the same book (two workers): both say "exact".
    book = await store.book_for([r1, r2])
    (m1,) = match_statement([r1], book)
    (m2,) = match_statement([r2], book)
    assert m1.rule is m2.rule is MatchRule.EXACT_REFERENCE
    assert (await store.apply_matches([m1]))[0] == m1
    (refused,) = await store.apply_matches([m2])
    assert refused.rule is MatchRule.UNMATCHED and refused.unapplied == usd("100.00") and refused.applications == []
    assert "refused when applied" in refused.explanation
    assert refused.suggestions[0].invoice_ids == [a.invoice_id]
    assert balance(store, a) == 0
    queued = await store.queue(legal_entity=w.entity, as_of=date(2026, 11, 30))
    assert [(q.receipt.receipt_id, q.age_days) for q in queued] == [(r2.receipt_id, 10)]


async def test_concurrent_workers_never_over_apply_an_invoice(database_url: str) -> None:
    w = World()
    stores = [SqlCashStore(database_url), SqlCashStore(database_url, migrate=False)]
    try:
        items = [w.invoice(f"i{n}", "10.00") for n in range(20)]
        await stores[0].upsert_open_items(items)
        # Two statements, each paying every invoice in full: only one payment per invoice fits.
        left = [w.receipt(f"L{n}", "10.00", item, statement_id="L" + w.tag) for n, item in enumerate(items)]
        right = [w.receipt(f"R{n}", "10.00", item, statement_id="R" + w.tag) for n, item in enumerate(items)]
        assert await stores[0].record_statement(w.statement(*left, statement_id="L" + w.tag), left)
        assert await stores[0].record_statement(w.statement(*right, statement_id="R" + w.tag), right)
        books = [await stores[0].book_for(left), await stores[1].book_for(right[::-1])]
        plans = [match_statement(left, books[0]), match_statement(right[::-1], books[1])]

        async def apply(store: SqlCashStore, plan: list[CashMatch]) -> list[CashMatch]:
            out = []
            for start in range(0, len(plan), 4):
                out += await store.apply_matches(plan[start : start + 4])
            return out

        results = await asyncio.gather(apply(stores[0], plans[0]), apply(stores[1], plans[1]))
        applied = [m for result in results for m in result if m.applications]
        assert len(applied) == len(items)
        assert sorted(m.applications[0].invoice_id for m in applied) == sorted(i.invoice_id for i in items)
        assert all(balance(stores[0], item) == 0 for item in items)
        assert all(len(applied_rows(stores[0], item)) == 1 for item in items)
    finally:
        for s in stores:
            await s.aclose()


async def test_bad_matches_are_refused_before_anything_is_written(store: SqlCashStore) -> None:
    w = World()
    a = w.invoice("a", "100.00")
    await store.upsert_open_items([a])
    r1 = w.receipt("r1", "100.00", a)
    await imported(store, w, r1)
    (good,) = match_statement([r1], await store.book_for([r1]))
    stranger = good.model_copy(update={"receipt_id": "camt053:nobody:x"})
    with pytest.raises(ValueError, match="no such receipt"):
        await store.apply_matches([good, stranger])
    too_much = good.model_copy(update={"unapplied": usd("1.00")})
    with pytest.raises(ValueError, match="is not the receipt's"):
        await store.apply_matches([too_much])
    assert balance(store, a) == 10000 and await store.match_of(r1.receipt_id) is None


async def test_the_payer_directory_learns_from_applied_receipts(store: SqlCashStore) -> None:
    w = World()
    first, second = w.invoice("a", "10.00"), w.invoice("b", "45.00")
    theirs = w.invoice("c", "45.00", customer="globex")
    await store.upsert_open_items([first, second, theirs])
    paid = w.receipt("r1", "10.00", first, payer="ACME GmbH", account=f"NL{w.tag}")
    no_ref = w.receipt("r2", "45.00", account=f"NL {w.tag}")
    by_name = w.receipt("r3", "45.00", payer="Acme")
    await imported(store, w, paid, no_ref, by_name)
    await match_and_apply(store, [paid])
    (m2,) = await match_and_apply(store, [no_ref])
    assert m2.rule is MatchRule.UNIQUE_AMOUNT and m2.applications[0].invoice_id == second.invoice_id
    # A name that two customers paid under maps to nobody.
    await store.learn_payer(w.customer("globex"), name="acme")
    (m3,) = await match_and_apply(store, [by_name])
    assert m3.rule is MatchRule.UNMATCHED and m3.customer == ""


# -- decisions and the queue ------------------------------------------------------------------------------


async def test_an_operator_applies_a_queued_receipt_once(store: SqlCashStore) -> None:
    w = World()
    a, b = w.invoice("a", "60.00"), w.invoice("b", "50.00")
    foreign = w.invoice("f", "10.00", entity=f"DE{w.tag}")
    await store.upsert_open_items([a, b, foreign])
    unknown = w.receipt("r1", "100.00", payer="Who Knows", value_date=date(2026, 11, 1))
    await imported(store, w, unknown)
    (m,) = await match_and_apply(store, [unknown])
    assert m.rule is MatchRule.UNMATCHED
    assert await store.unapplied_total(w.entity, "USD") == usd("100.00")

    def apply(*lines: tuple[OpenItem, str], cross: bool = False) -> CashDecision:
        return CashDecision(
            receipt_id=unknown.receipt_id,
            kind=CashDecisionKind.APPLY,
            applications=[Application(invoice_id=i.invoice_id, amount=usd(x)) for i, x in lines],
            decided_by="ops.olga",
            decided_at=AT,
            cross_entity=cross,
        )

    with pytest.raises(ValueError, match="unapplied"):
        await store.record_decision(apply((a, "60.00"), (b, "50.00")))
    with pytest.raises(ValueError, match="less than"):
        await store.record_decision(apply((a, "70.00")))
    with pytest.raises(ValueError, match="the cash was received by"):
        await store.record_decision(apply((foreign, "10.00")))
    assert balance(store, foreign) == 1000
    decided = await store.record_decision(apply((a, "60.00"), (b, "30.00"), (foreign, "10.00"), cross=True))
    assert decided.rule is MatchRule.OPERATOR and decided.unapplied == usd("0.00")
    assert {x.invoice_id: x.amount for x in decided.applications} == {
        a.invoice_id: usd("60.00"),
        b.invoice_id: usd("30.00"),
        foreign.invoice_id: usd("10.00"),
    }
    assert decided.applications[0].erp_document == "erp_a"
    assert (balance(store, a), balance(store, b), balance(store, foreign)) == (0, 2000, 0)
    assert applied_rows(store, b) == [(unknown.receipt_id, 3000, "decision")]
    with pytest.raises(ValueError, match="a second decision is refused"):
        await store.record_decision(apply((b, "1.00")))
    assert await store.match_of(unknown.receipt_id) == decided
    assert await store.queue(legal_entity=w.entity) == []
    assert await store.unapplied_total(w.entity, "USD") == usd("0.00")


async def test_a_refund_leaves_the_rest_on_account_out_of_the_queue(store: SqlCashStore) -> None:
    w = World()
    a = w.invoice("a", "80.00")
    await store.upsert_open_items([a])
    over = w.receipt("r1", "100.00", a, value_date=date(2026, 11, 10))
    lost = w.receipt("r2", "5.00", value_date=date(2026, 11, 15))
    await imported(store, w, over, lost)
    m_over, m_lost = await match_and_apply(store, [over, lost])
    assert m_lost.rule is MatchRule.UNMATCHED and m_lost.customer == ""
    assert m_over.rule is MatchRule.OVERPAID_REFERENCE and m_over.exception is ExceptionKind.ON_ACCOUNT
    queue = await store.queue(legal_entity=w.entity, as_of=date(2026, 11, 20))
    assert [(q.receipt.receipt_id, q.age_days, q.match.unapplied) for q in queue] == [
        (over.receipt_id, 10, usd("20.00")),
        (lost.receipt_id, 5, usd("5.00")),
    ]
    assert await store.unapplied_total(w.entity, "USD") == usd("25.00")
    refund = CashDecision(
        receipt_id=over.receipt_id, kind=CashDecisionKind.REFUND, refund=usd("15.00"), decided_by="ops.olga"
    )
    decided = await store.record_decision(refund)
    assert decided.unapplied == usd("5.00") and decided.exception is ExceptionKind.ON_ACCOUNT
    assert [q.receipt.receipt_id for q in await store.queue(legal_entity=w.entity)] == [lost.receipt_id]
    assert await store.unapplied_total(w.entity, "USD") == usd("10.00")
    assert (await store.unapplied_totals())[(w.entity, "USD")] == usd("10.00")
    with pytest.raises(ValueError, match="positive amount"):
        await store.record_decision(refund.model_copy(update={"receipt_id": lost.receipt_id, "refund": usd("0")}))
    with pytest.raises(ValueError, match="no match recorded"):
        await store.record_decision(refund.model_copy(update={"receipt_id": "camt053:none"}))


async def test_the_ledger_reads_add_up_per_customer(store: SqlCashStore) -> None:
    w = World()
    a, b = w.invoice("a", "100.00"), w.invoice("b", "40.00", total="50.00")
    await store.upsert_open_items([a, b])
    r1, r2 = w.receipt("r1", "30.00", a), w.receipt("r2", "40.00", b)
    await imported(store, w, r1, r2)
    await match_and_apply(store, [r1, r2])
    (cash,) = await store.customer_cash(legal_entity=w.entity)
    assert cash.customer == w.customer("acme")
    assert (cash.invoiced, cash.open, cash.applied) == (usd("150.00"), usd("70.00"), usd("70.00"))


# -- card attempts ----------------------------------------------------------------------------------------


async def test_card_attempts_hold_per_card_within_thirty_days(store: SqlCashStore) -> None:
    card = f"card_{uuid.uuid4().hex[:8]}"
    for n in range(3):
        assert await store.reserve_card_attempt(card, f"{card}:inv{n}", at=AT - timedelta(days=40 - n), limit=3)
    # Those three are older than 30 days: three more fit, a fourth does not.
    for n in range(3):
        assert await store.reserve_card_attempt(card, f"{card}:new{n}", at=AT + timedelta(hours=n), limit=3)
    assert not await store.reserve_card_attempt(card, f"{card}:new3", at=AT + timedelta(hours=4), limit=3)
    assert await store.reserve_card_attempt(card, f"{card}:new1", at=AT + timedelta(hours=5), limit=3)  # same key
    assert await store.card_attempts(card, since=AT - timedelta(days=30)) == 3
    assert await store.card_attempts(card, since=AT - timedelta(days=60)) == 6


async def test_two_tasks_for_the_last_card_slot_one_wins(database_url: str) -> None:
    stores = [SqlCashStore(database_url), SqlCashStore(database_url, migrate=False)]
    try:
        for attempt in range(5):
            card = f"card_{uuid.uuid4().hex[:8]}"
            assert await stores[0].reserve_card_attempt(card, f"{card}:a", at=AT, limit=2)
            won = await asyncio.gather(
                stores[0].reserve_card_attempt(card, f"{card}:b", at=AT, limit=2),
                stores[1].reserve_card_attempt(card, f"{card}:c", at=AT, limit=2),
            )
            assert sorted(won) == [False, True], attempt
            assert await stores[0].card_attempts(card, since=AT - timedelta(days=1)) == 2
    finally:
        for s in stores:
            await s.aclose()
