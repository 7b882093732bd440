"""Cash application in o2c's own database: statements and receipts, the open receivables they
are matched against, what matching and operators decided, the payer directory, card attempts.

SqlCashStore implements CashStorePort (tables of migration 0007, described in
`adapters.storage.tables`). What makes it safe with several workers at once:

- A receipt is one row per (receiving account, bank reference): importing it again, in the
  same statement or another, changes nothing.
- apply_matches keeps a receipt's first match (the primary key of cash_matches) and lowers
  balances only after reading them under a lock, in invoice id order: row locks (FOR UPDATE)
  on PostgreSQL, the database's write lock on SQLite. The update is guarded as well
  (balance >= amount) and a check constraint keeps every balance at or above zero, so no
  invoice is ever applied above what is open on it.
- A decision is one row per receipt (its primary key): a second one is refused.
- reserve_card_attempt counts and records under a per-card lock (an advisory transaction
  lock on PostgreSQL, the write lock on SQLite).

Transient failures (a deadlock, a serialization failure, a locked SQLite file, a dropped
connection) are retried whole, bounded and jittered; then CashStoreUnavailable is raised and
nothing of the call was written. The async methods run the synchronous engine in a worker
thread, so an event loop awaiting them keeps serving.

The ledger invariants read from here: `customer_cash()` (per customer, entity and currency:
invoiced, still open, cash applied) and `unapplied_totals()` (per entity and currency).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from adapters.errors import TransientError
from adapters.storage.db import Retried, dialect_insert, engine_for, upgrade
from adapters.storage.tables import (
    card_attempts,
    cash_applications,
    cash_decisions,
    cash_matches,
    cash_open_items,
    cash_payers,
    cash_receipts,
    cash_statements,
)
from canonical.cash.matching import normalise_reference, reference_keys
from canonical.cash.models import (
    Application,
    BankStatement,
    CashDecision,
    CashDecisionKind,
    CashMatch,
    ExceptionKind,
    MatchRule,
    OpenItem,
    OpenItemBook,
    QueuedReceipt,
    Receipt,
    Suggestion,
)
from canonical.cash.payers import PayerDirectory, account_key, name_key, normalise_account, normalise_name, payer_keys
from canonical.money import Money, minor_unit

SYSTEM = "o2c-db"
# Parameters per IN (...) list: well below SQLite's 32,766 bound variables a statement.
CHUNK = 500
# The card networks count retries over 30 days.
CARD_WINDOW = timedelta(days=30)
# Same-amount suggestions read for a receipt nobody can be found for.
SAME_AMOUNT_SUGGESTIONS = 5

T = TypeVar("T")


class CashStoreUnavailable(TransientError):
    """The database did not take the call after the retries; nothing of it was written."""

    def __init__(self, message: str):
        super().__init__(SYSTEM, message)


class _Raced(Exception):
    """Another worker recorded one of the batch's receipts between our read and our write."""


@dataclass(frozen=True)
class CustomerCash:
    """One customer's receivables in one entity and currency, for the ledger invariants:
    receivable = invoiced - cash applied - credits - write-offs (the last two are not here)."""

    customer: str
    legal_entity: str
    invoiced: Money  # the open items' totals
    open: Money  # their balances now
    applied: Money  # cash applied to them (matching and operators)


def _now() -> datetime:
    return datetime.now(UTC)


def _chunks(values: Sequence[T], size: int = CHUNK) -> Iterator[Sequence[T]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _open_item(row: Any) -> OpenItem:
    """An open item from its row. The row is o2c's own, written from a validated OpenItem, so
    it is built without validating again (a book reads thousands a batch)."""
    currency = row.currency
    exponent = -minor_unit(currency)
    return OpenItem.model_construct(
        invoice_id=row.invoice_id,
        number=row.number,
        customer=row.customer,
        legal_entity=row.legal_entity,
        total=Money.model_construct(amount=Decimal(row.total_minor).scaleb(exponent), currency=currency),
        balance=Money.model_construct(amount=Decimal(row.balance_minor).scaleb(exponent), currency=currency),
        issued_on=row.issued_on,
        due_on=row.due_on,
        erp_document=row.erp_document,
    )


def _check_match(match: CashMatch, receipt: Receipt) -> None:
    """A match that does not add up to its receipt is refused before anything is written."""
    currency = receipt.amount.currency
    seen: set[str] = set()
    applied = 0
    for application in match.applications:
        if application.amount.currency != currency:
            raise ValueError(
                f"{match.receipt_id}: {application.invoice_id} is applied in {application.amount.currency}, the receipt is in {currency}"
            )
        if application.amount.minor <= 0:
            raise ValueError(f"{match.receipt_id}: an application to {application.invoice_id} must be positive")
        if application.invoice_id in seen:
            raise ValueError(f"{match.receipt_id}: {application.invoice_id} is applied twice")
        seen.add(application.invoice_id)
        applied += application.amount.minor
    if match.unapplied.currency != currency or match.unapplied.minor < 0:
        raise ValueError(f"{match.receipt_id}: unapplied {match.unapplied} is not a rest of {receipt.amount}")
    if applied + match.unapplied.minor != receipt.amount.minor:
        raise ValueError(
            f"{match.receipt_id}: applied {Money.from_minor(applied, currency)} + unapplied {match.unapplied} "
            f"is not the receipt's {receipt.amount}"
        )


class SqlCashStore:
    """CashStorePort on SQLite or PostgreSQL."""

    def __init__(
        self,
        database_url: str,
        *,
        migrate: bool = True,
        attempts: int = 6,
        max_wait_seconds: float = 1.0,
        engine: sa.Engine | None = None,
    ):
        if migrate:
            upgrade(database_url)
        self.engine = engine if engine is not None else engine_for(database_url, pool_size=8, max_overflow=4)
        self._postgres = self.engine.dialect.name == "postgresql"
        self._insert = dialect_insert(self.engine)
        self._retried = Retried(
            attempts=attempts, max_wait_seconds=max_wait_seconds, unavailable=CashStoreUnavailable, also=(_Raced,)
        )

    async def aclose(self) -> None:
        self.engine.dispose()

    async def _run(self, work: Callable[[], T], what: str) -> T:
        return await asyncio.to_thread(self.run_sync, work, what)

    def run_sync(self, work: Callable[[], T], what: str) -> T:
        return self._retried(work, what)

    def _among(self, column: sa.ColumnElement[Any], values: Sequence[str]) -> sa.ColumnElement[bool]:
        """column IN values. On PostgreSQL one array parameter (= ANY), not one parameter a
        value: the statement stays small and the driver has nothing to rewrite."""
        if self._postgres:
            return column == sa.any_(sa.bindparam(None, list(values), type_=postgresql.ARRAY(sa.String())))
        return column.in_(values)

    def _reads(self, values: Sequence[T]) -> Iterator[Sequence[T]]:
        return _chunks(values, 10_000 if self._postgres else CHUNK)

    def _write_lock(self, conn: sa.Connection) -> None:
        """SQLite: take the database's write lock before reading what the transaction will
        change. A write statement takes it at its start; this one changes no row. (On
        PostgreSQL, the reads that matter lock their rows instead.)"""
        if not self._postgres:
            conn.execute(cash_payers.update().where(sa.false()).values(customer=cash_payers.c.customer))

    # -- statements and receipts ----------------------------------------------------------------

    async def record_statement(self, statement: BankStatement, receipts: list[Receipt]) -> bool:
        """Keep a validated statement and its receipts in one transaction. False when the
        statement was imported before: nothing changes. A receipt whose (account, bank
        reference) is known already (an overlapping statement) stays the one it was."""
        for receipt in receipts:
            if receipt.statement_id != statement.statement_id:
                raise ValueError(
                    f"{receipt.receipt_id} belongs to statement {receipt.statement_id!r}, not {statement.statement_id}"
                )
            if receipt.bank_account != statement.bank_account:
                raise ValueError(
                    f"{receipt.receipt_id} was received on {receipt.bank_account!r}, the statement is of {statement.bank_account}"
                )
            if receipt.amount.currency != statement.currency:
                raise ValueError(
                    f"{receipt.receipt_id} is in {receipt.amount.currency}, the statement in {statement.currency}"
                )
            _positive(receipt)
        row = {
            "statement_id": statement.statement_id,
            "format": statement.format.value,
            "bank_account": statement.bank_account,
            "currency": statement.currency,
            "created_at": statement.created_at,
            "opening_minor": statement.opening.minor,
            "closing_minor": statement.closing.minor,
            "entries": len(statement.entries),
            "digest": statement.digest,
            "imported_at": _now(),
        }

        def work() -> bool:
            with self.engine.begin() as conn:
                new = self._insert(cash_statements).values(**row).on_conflict_do_nothing()
                if conn.execute(new.returning(cash_statements.c.statement_id)).first() is None:
                    return False
                self._insert_receipts(conn, receipts)
                return True

        return await self._run(work, f"statement {statement.statement_id}")

    async def record_receipt(self, receipt: Receipt) -> bool:
        """A receipt that came alone (a Stripe payment); False when it is known already."""
        _positive(receipt)

        def work() -> bool:
            with self.engine.begin() as conn:
                return self._insert_receipts(conn, [receipt]) == 1

        return await self._run(work, f"receipt {receipt.receipt_id}")

    async def record_receipts(self, receipts: list[Receipt]) -> int:
        """Receipts in bulk, in one transaction (a statement imported page by page after its
        header, or a day of Stripe payments): how many were new; the known ones stay as they were."""
        for receipt in receipts:
            _positive(receipt)

        def work() -> int:
            with self.engine.begin() as conn:
                return self._insert_receipts(conn, receipts)

        return await self._run(work, "receipts")

    def _insert_receipts(self, conn: sa.Connection, receipts: Sequence[Receipt]) -> int:
        received_at = _now()
        rows = [
            {
                "receipt_id": r.receipt_id,
                "statement_id": r.statement_id,
                "source": r.source.value,
                "legal_entity": r.legal_entity,
                "currency": r.amount.currency,
                "amount_minor": r.amount.minor,
                "value_date": r.value_date,
                "bank_account": r.bank_account,
                "bank_reference": r.bank_reference,
                "receipt": r.model_dump_json(),
                "received_at": received_at,
            }
            for r in receipts
        ]
        inserted = 0
        for chunk in _chunks(rows):
            # One row at a time would be exact but slow; RETURNING tells which were new.
            result = conn.execute(
                self._insert(cash_receipts).on_conflict_do_nothing().returning(cash_receipts.c.receipt_id), list(chunk)
            )
            inserted += len(result.all())
        return inserted

    async def receipts(self, statement_id: str, *, after: str = "", limit: int = 500) -> list[Receipt]:
        query = (
            sa.select(cash_receipts.c.receipt)
            .where(cash_receipts.c.statement_id == statement_id, cash_receipts.c.receipt_id > after)
            .order_by(cash_receipts.c.receipt_id)
            .limit(limit)
        )
        rows = await self._run(lambda: self._rows(query), "receipts")
        return [Receipt.model_validate_json(row.receipt) for row in rows]

    async def receipt(self, receipt_id: str) -> Receipt | None:
        query = sa.select(cash_receipts.c.receipt).where(cash_receipts.c.receipt_id == receipt_id)
        rows = await self._run(lambda: self._rows(query), "receipt")
        return Receipt.model_validate_json(rows[0].receipt) if rows else None

    # -- open items -------------------------------------------------------------------------

    async def upsert_open_items(self, items: list[OpenItem]) -> None:
        """Invoices billing finalised. A balance reported again only goes down here: cash
        applied in o2c meanwhile is never undone by an older report (a credit or a payment
        elsewhere lowers it; raising a balance is a correction a person makes)."""
        for item in items:
            if item.balance.currency != item.total.currency:
                raise ValueError(
                    f"{item.invoice_id}: balance in {item.balance.currency}, total in {item.total.currency}"
                )
            if item.balance.is_negative or item.balance > item.total:
                raise ValueError(
                    f"{item.invoice_id}: balance {item.balance} is not within 0 and the total {item.total}"
                )
        now = _now()
        rows = [
            {
                "invoice_id": item.invoice_id,
                "number": item.number,
                "id_key": normalise_reference(item.invoice_id),
                "number_key": normalise_reference(item.number),
                "customer": item.customer,
                "legal_entity": item.legal_entity,
                "currency": item.total.currency,
                "total_minor": item.total.minor,
                "balance_minor": item.balance.minor,
                "issued_on": item.issued_on,
                "due_on": item.due_on,
                "erp_document": item.erp_document,
                "updated_at": now,
            }
            for item in {item.invoice_id: item for item in items}.values()
        ]
        statement = self._insert(cash_open_items)
        excluded = statement.excluded
        statement = statement.on_conflict_do_update(
            index_elements=[cash_open_items.c.invoice_id],
            set_={
                "number": excluded.number,
                "number_key": excluded.number_key,
                "customer": excluded.customer,
                "legal_entity": excluded.legal_entity,
                "total_minor": excluded.total_minor,
                "balance_minor": sa.case(
                    (excluded.balance_minor < cash_open_items.c.balance_minor, excluded.balance_minor),
                    else_=cash_open_items.c.balance_minor,
                ),
                "issued_on": excluded.issued_on,
                "due_on": excluded.due_on,
                "erp_document": excluded.erp_document,
                "updated_at": excluded.updated_at,
            },
        )

        def work() -> None:
            with self.engine.begin() as conn:
                for chunk in _chunks(rows):
                    conn.execute(statement, list(chunk))

        await self._run(work, "open items")

    async def open_items(self, *, customer: str = "", invoice_refs: list[str] = ()) -> list[OpenItem]:  # type: ignore[assignment]
        """Open items of a customer (balance above zero), or those an invoice id or number
        names (any customer, settled ones too: a payment of a settled invoice is a duplicate)."""
        if not customer and not invoice_refs:
            return []

        def work() -> list[OpenItem]:
            with self.engine.connect() as conn:
                found: dict[str, OpenItem] = {}
                if customer:
                    query = (
                        sa.select(cash_open_items)
                        .where(cash_open_items.c.customer == customer, cash_open_items.c.balance_minor > 0)
                        .order_by(cash_open_items.c.invoice_id)
                    )
                    found.update((row.invoice_id, _open_item(row)) for row in conn.execute(query))
                keys = sorted({normalise_reference(ref) for ref in invoice_refs} - {""})
                for row in self._named(conn, keys):
                    found.setdefault(row.invoice_id, _open_item(row))
                return list(found.values())

        return await self._run(work, "open items")

    def _named(self, conn: sa.Connection, keys: Sequence[str]) -> list[Any]:
        rows: list[Any] = []
        for chunk in self._reads(keys):
            query = sa.select(cash_open_items).where(
                sa.or_(self._among(cash_open_items.c.id_key, chunk), self._among(cash_open_items.c.number_key, chunk))
            )
            rows.extend(conn.execute(query))
        return rows

    async def book_for(self, receipts: list[Receipt]) -> OpenItemBook:
        """Everything matching these receipts may need, read at once: the items their
        references name; the payer directory's entries for their payers; the open items of
        the customer of each receipt whose references name nothing it could pay; and, for a
        receipt nobody can be found for, a few open items of the same amount (suggestions)."""
        return await self._run(lambda: self.book_for_sync(receipts), "open-item book")

    def book_for_sync(self, receipts: Sequence[Receipt]) -> OpenItemBook:
        with self.engine.connect() as conn:
            refs = {r.receipt_id: reference_keys(r) for r in receipts}
            wanted_refs = sorted({key for keys in refs.values() for key in keys})
            items: dict[str, Any] = {row.invoice_id: row for row in self._named(conn, wanted_refs)}
            by_reference: dict[str, list[Any]] = {}
            for row in items.values():
                for key in {row.id_key, row.number_key} - {""}:
                    by_reference.setdefault(key, []).append(row)
            payers: dict[str, str] = {}
            wanted_payers = sorted({key for r in receipts for key in payer_keys(r)})
            for chunk in self._reads(wanted_payers):
                query = sa.select(cash_payers.c.payer_key, cash_payers.c.customer).where(
                    self._among(cash_payers.c.payer_key, chunk)
                )
                payers.update((row.payer_key, row.customer) for row in conn.execute(query))
            directory = PayerDirectory.from_payers(payers)
            customers: set[str] = set()
            amounts: set[tuple[str, int]] = set()
            for r in receipts:
                named = [row for key in refs[r.receipt_id] for row in by_reference.get(key, ())]
                if any(_could_pay(row, r) for row in named):
                    continue  # the reference rules decide; the customer's other items are not needed
                customer, _ = directory.customer_of(r)
                if not customer and named:
                    customer = named[0].customer
                if customer:
                    customers.add(customer)
                elif not named:
                    amounts.add((r.amount.currency, r.amount.minor))
            for chunk in self._reads(sorted(customers)):
                query = sa.select(cash_open_items).where(
                    self._among(cash_open_items.c.customer, chunk), cash_open_items.c.balance_minor > 0
                )
                items.update((row.invoice_id, row) for row in conn.execute(query))
            for currency, minor in sorted(amounts):
                query = (
                    sa.select(cash_open_items)
                    # Invoices nothing was paid on yet: the index is by total.
                    .where(
                        cash_open_items.c.currency == currency,
                        cash_open_items.c.total_minor == minor,
                        cash_open_items.c.balance_minor == minor,
                    )
                    .order_by(cash_open_items.c.invoice_id)
                    .limit(SAME_AMOUNT_SUGGESTIONS)
                )
                items.update((row.invoice_id, row) for row in conn.execute(query))
        ordered = [items[key] for key in sorted(items)]
        return OpenItemBook(items=[_open_item(row) for row in ordered], payers=payers)

    # -- matches ------------------------------------------------------------------------------

    async def apply_matches(self, matches: list[CashMatch]) -> list[CashMatch]:
        """Record what matching decided and lower the open items' balances, in one
        transaction, each receipt once: a receipt matched before keeps its first match
        (returned in its place). A match whose application no longer fits its invoice (another
        receipt took the balance first) is refused whole: the receipt is recorded and returned
        unmatched, for a person. A match of an unknown receipt, or one that does not add up to
        its receipt, is refused before anything is written (ValueError)."""
        if not matches:
            return []
        return await self._run(lambda: self.apply_matches_sync(matches), "apply matches")

    def apply_matches_sync(self, matches: Sequence[CashMatch]) -> list[CashMatch]:
        first: dict[str, CashMatch] = {}
        for match in matches:
            first.setdefault(match.receipt_id, match)
        now = _now()
        with self.engine.begin() as conn:
            self._write_lock(conn)
            receipts = self._receipts(conn, sorted(first))
            missing = sorted(set(first) - set(receipts))
            if missing:
                raise ValueError(f"no such receipt recorded: {', '.join(missing[:5])}")
            for match in first.values():
                _check_match(match, receipts[match.receipt_id])
            kept = self._matches(conn, sorted(first))
            new = [match for match in first.values() if match.receipt_id not in kept]
            balances = self._lock_items(conn, sorted({a.invoice_id for m in new for a in m.applications}))
            final: list[CashMatch] = []
            for match in new:
                receipt = receipts[match.receipt_id]
                refusal = _refusal(match, receipt, balances, cross_entity=False)
                if refusal:
                    match = _refused(match, receipt, refusal)
                else:
                    for application in match.applications:
                        balances[application.invoice_id]["balance_minor"] -= application.amount.minor
                final.append(match)
            rows = [_match_row(match, receipts[match.receipt_id], now) for match in final]
            written: set[str] = set()
            for chunk in _chunks(rows):
                result = conn.execute(
                    self._insert(cash_matches).on_conflict_do_nothing().returning(cash_matches.c.receipt_id),
                    list(chunk),
                )
                written.update(row.receipt_id for row in result)
            if written != {match.receipt_id for match in final}:
                raise _Raced()  # the whole transaction again: it reads the other worker's match
            self._apply(conn, [(m, receipts[m.receipt_id]) for m in final], balances, origin="match", at=now)
            self._learn(conn, self._paid_by((m, receipts[m.receipt_id]) for m in final), now)
        recorded = {match.receipt_id: match for match in final} | kept
        return [recorded[match.receipt_id] for match in matches]

    def _receipts(self, conn: sa.Connection, ids: Sequence[str]) -> dict[str, Receipt]:
        found: dict[str, Receipt] = {}
        for chunk in self._reads(ids):
            query = sa.select(cash_receipts.c.receipt_id, cash_receipts.c.receipt).where(
                self._among(cash_receipts.c.receipt_id, chunk)
            )
            found.update((row.receipt_id, Receipt.model_validate_json(row.receipt)) for row in conn.execute(query))
        return found

    def _matches(self, conn: sa.Connection, ids: Sequence[str]) -> dict[str, CashMatch]:
        found: dict[str, CashMatch] = {}
        for chunk in self._reads(ids):
            query = sa.select(cash_matches.c.receipt_id, cash_matches.c.match).where(
                self._among(cash_matches.c.receipt_id, chunk)
            )
            found.update((row.receipt_id, CashMatch.model_validate_json(row.match)) for row in conn.execute(query))
        return found

    def _lock_items(self, conn: sa.Connection, invoice_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The items' balances, locked until the transaction ends, in invoice id order (so two
        workers lock in the same order and cannot deadlock)."""
        found: dict[str, dict[str, Any]] = {}
        columns = [
            cash_open_items.c[name]
            for name in ("invoice_id", "customer", "legal_entity", "currency", "balance_minor", "erp_document")
        ]
        for chunk in self._reads(invoice_ids):
            query = (
                sa.select(*columns)
                .where(self._among(cash_open_items.c.invoice_id, chunk))
                .order_by(cash_open_items.c.invoice_id)
            )
            if self._postgres:
                query = query.with_for_update()
            found.update((row.invoice_id, dict(row._mapping)) for row in conn.execute(query))
        return found

    def _apply(
        self,
        conn: sa.Connection,
        applied: Sequence[tuple[CashMatch, Receipt]],
        items: dict[str, dict[str, Any]],
        *,
        origin: str,
        at: datetime,
        applications: Callable[[CashMatch], Sequence[Application]] | None = None,
    ) -> None:
        """Lower the balances (guarded: balance >= amount) and record each application."""
        pick = applications or (lambda match: match.applications)
        lowered: dict[str, int] = {}
        rows = []
        for match, receipt in applied:
            for application in pick(match):
                item = items[application.invoice_id]
                lowered[application.invoice_id] = lowered.get(application.invoice_id, 0) + application.amount.minor
                rows.append(
                    {
                        "receipt_id": match.receipt_id,
                        "invoice_id": application.invoice_id,
                        "origin": origin,
                        "customer": item["customer"],
                        "legal_entity": receipt.legal_entity,
                        "currency": application.amount.currency,
                        "amount_minor": application.amount.minor,
                        "erp_document": application.erp_document or item["erp_document"],
                        "applied_at": at,
                    }
                )
        if not rows:
            return
        updates = sorted(lowered.items())
        for part in _chunks(updates):
            if self._lower(conn, part, at) != len(part):
                # Under the locks taken above this cannot happen; if it does, nothing is kept.
                raise RuntimeError("an open item's balance changed under its lock; the batch is rolled back")
        for chunk in _chunks(rows):
            conn.execute(cash_applications.insert(), list(chunk))

    def _lower(self, conn: sa.Connection, lowered: Sequence[tuple[str, int]], at: datetime) -> int:
        """Lower each (invoice, amount) where the balance still covers the amount; how many were."""
        if self._postgres:
            # One statement for the chunk: a round trip per invoice is most of the time otherwise.
            lower = sa.text(
                "UPDATE cash_open_items AS item"
                " SET balance_minor = item.balance_minor - lowered.amount, updated_at = :at"
                " FROM unnest(CAST(:invoices AS varchar[]), CAST(:amounts AS bigint[])) AS lowered (invoice, amount)"
                " WHERE item.invoice_id = lowered.invoice AND item.balance_minor >= lowered.amount"
                " RETURNING item.invoice_id"
            )
            bound = {"at": at, "invoices": [i for i, _ in lowered], "amounts": [a for _, a in lowered]}
            return len(conn.execute(lower, bound).all())
        guarded = (
            cash_open_items.update()
            .where(
                cash_open_items.c.invoice_id == sa.bindparam("invoice"),
                cash_open_items.c.balance_minor >= sa.bindparam("amount"),
            )
            .values(balance_minor=cash_open_items.c.balance_minor - sa.bindparam("amount"), updated_at=at)
        )
        # SQLite's driver sums the rows an executemany changed.
        return int(conn.execute(guarded, [{"invoice": i, "amount": a} for i, a in lowered]).rowcount)

    def _learn(self, conn: sa.Connection, facts: Sequence[tuple[Sequence[str], str, str]], at: datetime) -> None:
        """(payer keys, customer, source) facts: each key → the customer whose invoices the
        payer paid. A key seen with two customers keeps '' (ambiguous: it maps to nobody)."""
        learned: dict[str, tuple[str, str]] = {}
        for keys, customer, source in facts:
            for key in keys:
                known = learned.get(key)
                learned[key] = (customer if known is None or known[0] == customer else "", source)
        if not learned:
            return
        stored: dict[str, str] = {}
        for keys in self._reads(sorted(learned)):
            query = sa.select(cash_payers.c.payer_key, cash_payers.c.customer).where(
                self._among(cash_payers.c.payer_key, keys)
            )
            stored.update((row.payer_key, row.customer) for row in conn.execute(query))
        # Written only where it changes something: a payer paying again teaches nothing new.
        rows = [
            {"payer_key": key, "customer": customer, "learned_from": source, "updated_at": at}
            for key, (customer, source) in sorted(learned.items())
            if key not in stored or (stored[key] and stored[key] != customer)
        ]
        if not rows:
            return
        statement = self._insert(cash_payers)
        statement = statement.on_conflict_do_update(
            index_elements=[cash_payers.c.payer_key],
            set_={
                "customer": sa.case(
                    (cash_payers.c.customer == statement.excluded.customer, cash_payers.c.customer),
                    else_=sa.literal(""),
                ),
                "updated_at": statement.excluded.updated_at,
            },
        )
        for chunk in _chunks(rows):
            conn.execute(statement, list(chunk))

    @staticmethod
    def _paid_by(applied: Iterable[tuple[CashMatch, Receipt]]) -> list[tuple[Sequence[str], str, str]]:
        return [
            (payer_keys(receipt), match.customer, receipt.receipt_id)
            for match, receipt in applied
            if match.applications and match.customer
        ]

    async def learn_payer(self, customer: str, *, account: str = "", name: str = "", source: str = "seeded") -> None:
        """Seed the payer directory (an operator, or the customer master): the account and the
        name, when given, belong to this customer."""
        if not customer:
            raise ValueError("a payer is learned for a customer")
        keys = [account_key(account)] if normalise_account(account) else []
        if normalise_name(name):
            keys.append(name_key(name))
        if not keys:
            raise ValueError("a payer is learned by its account or its name")

        def work() -> None:
            with self.engine.begin() as conn:
                self._learn(conn, [(keys, customer, source)], _now())

        await self._run(work, "payer directory")

    async def match_of(self, receipt_id: str) -> CashMatch | None:
        query = sa.select(cash_matches.c.match).where(cash_matches.c.receipt_id == receipt_id)
        rows = await self._run(lambda: self._rows(query), "match")
        return CashMatch.model_validate_json(rows[0].match) if rows else None

    # -- operators' decisions --------------------------------------------------------------------

    async def record_decision(self, decision: CashDecision) -> CashMatch:
        """Apply or refund a queued receipt: balances lowered, the queue entry closed. APPLY
        goes to invoices (at most the cash unapplied, at most each balance, the receiving
        entity's invoices unless the decision says cross_entity); REFUND gives back at most
        the cash unapplied. What a decision leaves unapplied stays on account (counted in
        unapplied_total, out of the queue). A second decision is refused (ValueError)."""
        _check_decision(decision)
        return await self._run(lambda: self.record_decision_sync(decision), f"decision on {decision.receipt_id}")

    def record_decision_sync(self, decision: CashDecision) -> CashMatch:
        at = decision.decided_at or _now()
        rid = decision.receipt_id
        with self.engine.begin() as conn:
            self._write_lock(conn)
            query = sa.select(cash_matches).where(cash_matches.c.receipt_id == rid)
            if self._postgres:
                query = query.with_for_update()
            row = conn.execute(query).first()
            if row is None:
                raise ValueError(f"receipt {rid} has no match recorded: it is not in the queue")
            earlier = conn.execute(sa.select(cash_decisions).where(cash_decisions.c.receipt_id == rid)).first()
            if earlier is not None:
                raise ValueError(
                    f"receipt {rid} was decided already ({earlier.kind} by {earlier.decided_by}); a second decision is refused"
                )
            match = CashMatch.model_validate_json(row.match)
            receipt = self._receipts(conn, [rid])[rid]
            currency = receipt.amount.currency
            unapplied = row.unapplied_minor
            if unapplied <= 0:
                raise ValueError(f"receipt {rid} has no cash unapplied: nothing to decide")
            applying = list(decision.applications) if decision.kind is CashDecisionKind.APPLY else []
            refund = decision.refund.minor if decision.kind is CashDecisionKind.REFUND and decision.refund else 0
            amounts = [a.amount for a in applying] + ([decision.refund] if decision.refund and refund else [])
            if any(amount.currency != currency for amount in amounts):
                raise ValueError(f"receipt {rid} is in {currency}; the decision states another currency")
            applied = sum(a.amount.minor for a in applying)
            if applied + refund > unapplied:
                raise ValueError(
                    f"receipt {rid} has {Money.from_minor(unapplied, currency)} unapplied; "
                    f"the decision disposes of {Money.from_minor(applied + refund, currency)}"
                )
            items = self._lock_items(conn, sorted(a.invoice_id for a in applying))
            plan = CashMatch(
                receipt_id=rid,
                rule=MatchRule.OPERATOR,
                applications=applying,
                unapplied=Money.from_minor(receipt.amount.minor - applied, currency),
            )
            refusal = _refusal(plan, receipt, items, cross_entity=decision.cross_entity)
            if refusal:
                raise ValueError(f"receipt {rid}: {refusal}")
            enriched = [
                a if a.erp_document else a.model_copy(update={"erp_document": items[a.invoice_id]["erp_document"]})
                for a in applying
            ]
            merged = _merge(match.applications, enriched)
            left = unapplied - applied - refund
            customer = match.customer or (items[applying[0].invoice_id]["customer"] if applying else "")
            what = (
                f"applied by {decision.decided_by} to {', '.join(a.invoice_id for a in applying)}"
                if applying
                else f"{Money.from_minor(refund, currency)} refunded by {decision.decided_by}"
            )
            decided = match.model_copy(
                update={
                    "rule": MatchRule.OPERATOR if applying else match.rule,
                    "customer": customer,
                    "applications": merged,
                    "unapplied": Money.from_minor(left, currency),
                    "exception": ExceptionKind.ON_ACCOUNT if left else None,
                    "explanation": f"{match.explanation}; {what}"
                    + (f" ({decision.comment})" if decision.comment else ""),
                }
            )
            conn.execute(
                cash_decisions.insert().values(
                    receipt_id=rid,
                    kind=decision.kind.value,
                    currency=currency,
                    applied_minor=applied,
                    refund_minor=refund,
                    decision=decision.model_dump_json(),
                    decided_by=decision.decided_by,
                    decided_at=at,
                )
            )
            self._apply(
                conn,
                [(decided, receipt)],
                items,
                origin="decision",
                at=at,
                applications=lambda _: enriched,
            )
            conn.execute(
                cash_matches.update()
                .where(cash_matches.c.receipt_id == rid)
                .values(
                    rule=decided.rule.value,
                    customer=customer,
                    applied_minor=receipt.amount.minor - left - refund,
                    unapplied_minor=left,
                    exception=decided.exception.value if decided.exception else None,
                    queued=False,
                    match=decided.model_dump_json(),
                )
            )
            self._learn(conn, self._paid_by([(decided, receipt)]), at)
        return decided

    # -- the queue ------------------------------------------------------------------------------

    async def queue(
        self, *, legal_entity: str = "", as_of: date | None = None, limit: int = 200
    ) -> list[QueuedReceipt]:
        """Receipts with cash unapplied that wait for a person, oldest value date first, with
        their age in days on `as_of` (today when not given), the exception and suggestions."""
        on = as_of or datetime.now(UTC).date()
        query = (
            sa.select(cash_matches.c.match, cash_receipts.c.receipt, cash_matches.c.value_date)
            .join(cash_receipts, cash_receipts.c.receipt_id == cash_matches.c.receipt_id)
            .where(cash_matches.c.queued.is_(True))
            .order_by(cash_matches.c.value_date, cash_matches.c.receipt_id)
            .limit(limit)
        )
        if legal_entity:
            query = query.where(cash_matches.c.legal_entity == legal_entity)
        rows = await self._run(lambda: self._rows(query), "queue")
        return [
            QueuedReceipt(
                receipt=Receipt.model_validate_json(row.receipt),
                match=CashMatch.model_validate_json(row.match),
                age_days=max(0, (on - row.value_date).days),
            )
            for row in rows
        ]

    async def unapplied_total(self, legal_entity: str, currency: str) -> Money:
        """All cash unapplied in the entity and currency: queued, and rests a decision left
        on account."""
        query = sa.select(sa.func.coalesce(sa.func.sum(cash_matches.c.unapplied_minor), 0)).where(
            cash_matches.c.legal_entity == legal_entity, cash_matches.c.currency == currency
        )
        rows = await self._run(lambda: self._rows(query), "unapplied total")
        return Money.from_minor(int(rows[0][0]), currency)

    # -- ledger invariants ------------------------------------------------------------------------

    async def customer_cash(self, *, legal_entity: str = "", customer: str = "") -> list[CustomerCash]:
        """Per customer, entity and currency: invoiced (the open items' totals), still open,
        and cash applied to them, in customer order."""
        invoiced = sa.select(
            cash_open_items.c.customer,
            cash_open_items.c.legal_entity,
            cash_open_items.c.currency,
            sa.func.sum(cash_open_items.c.total_minor).label("invoiced"),
            sa.func.sum(cash_open_items.c.balance_minor).label("open"),
        ).group_by(cash_open_items.c.customer, cash_open_items.c.legal_entity, cash_open_items.c.currency)
        applied = (
            sa.select(
                cash_open_items.c.customer,
                cash_open_items.c.legal_entity,
                cash_open_items.c.currency,
                sa.func.sum(cash_applications.c.amount_minor).label("applied"),
            )
            .join(cash_open_items, cash_open_items.c.invoice_id == cash_applications.c.invoice_id)
            .group_by(cash_open_items.c.customer, cash_open_items.c.legal_entity, cash_open_items.c.currency)
        )
        if legal_entity:
            invoiced = invoiced.where(cash_open_items.c.legal_entity == legal_entity)
            applied = applied.where(cash_open_items.c.legal_entity == legal_entity)
        if customer:
            invoiced = invoiced.where(cash_open_items.c.customer == customer)
            applied = applied.where(cash_open_items.c.customer == customer)

        def work() -> list[CustomerCash]:
            with self.engine.connect() as conn:
                cash = {(r.customer, r.legal_entity, r.currency): int(r.applied) for r in conn.execute(applied)}
                return [
                    CustomerCash(
                        customer=r.customer,
                        legal_entity=r.legal_entity,
                        invoiced=Money.from_minor(int(r.invoiced), r.currency),
                        open=Money.from_minor(int(r.open), r.currency),
                        applied=Money.from_minor(cash.get((r.customer, r.legal_entity, r.currency), 0), r.currency),
                    )
                    for r in sorted(conn.execute(invoiced), key=lambda r: (r.customer, r.legal_entity, r.currency))
                ]

        return await self._run(work, "customer cash")

    async def unapplied_totals(self) -> dict[tuple[str, str], Money]:
        """(legal entity, currency) → all cash unapplied there (as unapplied_total)."""
        query = sa.select(
            cash_matches.c.legal_entity,
            cash_matches.c.currency,
            sa.func.sum(cash_matches.c.unapplied_minor).label("minor"),
        ).group_by(cash_matches.c.legal_entity, cash_matches.c.currency)
        rows = await self._run(lambda: self._rows(query), "unapplied totals")
        return {(r.legal_entity, r.currency): Money.from_minor(int(r.minor), r.currency) for r in rows}

    # -- card attempts ---------------------------------------------------------------------------

    async def card_attempts(self, card: str, *, since: datetime) -> int:
        """Payment attempts recorded on a card since `since` (all invoices together)."""
        query = sa.select(sa.func.count()).where(card_attempts.c.card == card, card_attempts.c.attempted_at >= since)
        rows = await self._run(lambda: self._rows(query), "card attempts")
        return int(rows[0][0])

    async def reserve_card_attempt(self, card: str, attempt_key: str, *, at: datetime, limit: int) -> bool:
        """Record one attempt on the card if it stays within `limit` attempts in the 30 days
        before `at`; True when recorded (or recorded before under the same key)."""
        if not card or not attempt_key:
            raise ValueError("a card attempt needs the card and an attempt key")
        if limit < 1:
            raise ValueError(f"a card attempt limit is at least 1, not {limit}")
        if at.tzinfo is None:
            raise ValueError("a card attempt's time must carry its zone")
        return await self._run(lambda: self._reserve(card, attempt_key, at, limit), f"card attempt {attempt_key}")

    def _reserve(self, card: str, attempt_key: str, at: datetime, limit: int) -> bool:
        with self.engine.begin() as conn:
            if self._postgres:
                # One writer per card at a time: the count and the insert are one decision.
                conn.execute(sa.select(sa.func.pg_advisory_xact_lock(sa.func.hashtextextended(card, 0))))
            else:
                self._write_lock(conn)
            earlier = conn.execute(
                sa.select(card_attempts.c.card).where(card_attempts.c.attempt_key == attempt_key)
            ).first()
            if earlier is not None:
                if earlier.card != card:
                    raise ValueError(f"attempt key {attempt_key} was used for another card")
                return True
            count = conn.execute(
                sa.select(sa.func.count()).where(
                    card_attempts.c.card == card, card_attempts.c.attempted_at > at - CARD_WINDOW
                )
            ).scalar_one()
            if count >= limit:
                return False
            conn.execute(card_attempts.insert().values(attempt_key=attempt_key, card=card, attempted_at=at))
            return True

    # -- synchronous work ---------------------------------------------------------------------------

    def _rows(self, query: Any) -> list[Any]:
        with self.engine.connect() as conn:
            return list(conn.execute(query))


def _positive(receipt: Receipt) -> None:
    if receipt.amount.minor <= 0:
        raise ValueError(f"{receipt.receipt_id} is not money in: {receipt.amount}")


def _could_pay(row: Any, receipt: Receipt) -> bool:
    return bool(
        row.balance_minor > 0 and row.legal_entity == receipt.legal_entity and row.currency == receipt.amount.currency
    )


def _refusal(match: CashMatch, receipt: Receipt, items: dict[str, dict[str, Any]], *, cross_entity: bool) -> str:
    """Why these applications do not fit the invoices as they stand now ("" when they do)."""
    for application in match.applications:
        item = items.get(application.invoice_id)
        if item is None:
            return f"{application.invoice_id} is no open item o2c knows"
        if item["currency"] != application.amount.currency:
            return f"{application.invoice_id} is in {item['currency']}, not {application.amount.currency}"
        if item["legal_entity"] != receipt.legal_entity and not cross_entity:
            return f"{application.invoice_id} is of {item['legal_entity']}, the cash was received by {receipt.legal_entity}"
        if item["balance_minor"] < application.amount.minor:
            open_now = Money.from_minor(item["balance_minor"], item["currency"])
            return f"{application.invoice_id} has {open_now} open, less than the {application.amount} to apply"
    return ""


def _refused(match: CashMatch, receipt: Receipt, why: str) -> CashMatch:
    """The receipt unmatched, the refused plan kept as the operator's first suggestion."""
    suggestions = list(match.suggestions)
    if match.applications:
        plan = Suggestion(
            invoice_ids=[a.invoice_id for a in match.applications],
            amount=receipt.amount - match.unapplied,
            score=50,
            why=f"matched by {match.rule.value}, refused: {why}",
        )
        suggestions = [plan, *suggestions][:5]
    return CashMatch(
        receipt_id=match.receipt_id,
        rule=MatchRule.UNMATCHED,
        customer=match.customer,
        unapplied=receipt.amount,
        exception=ExceptionKind.UNMATCHED,
        explanation=f"refused when applied: {why}",
        suggestions=suggestions,
    )


def _match_row(match: CashMatch, receipt: Receipt, at: datetime) -> dict[str, Any]:
    unapplied = match.unapplied.minor
    return {
        "receipt_id": match.receipt_id,
        "rule": match.rule.value,
        "customer": match.customer,
        "legal_entity": receipt.legal_entity,
        "currency": receipt.amount.currency,
        "applied_minor": receipt.amount.minor - unapplied,
        "unapplied_minor": unapplied,
        "exception": match.exception.value if match.exception else None,
        "value_date": receipt.value_date,
        "queued": unapplied > 0,
        "match": match.model_dump_json(),
        "matched_at": at,
    }


def _merge(before: Iterable[Application], added: Iterable[Application]) -> list[Application]:
    """The match's applications with an operator's added: one line an invoice."""
    lines: dict[str, Application] = {}
    for application in [*before, *added]:
        known = lines.get(application.invoice_id)
        lines[application.invoice_id] = (
            application if known is None else known.model_copy(update={"amount": known.amount + application.amount})
        )
    return list(lines.values())


def _check_decision(decision: CashDecision) -> None:
    if not decision.decided_by.strip():
        raise ValueError(f"a decision on {decision.receipt_id} names who decided")
    if decision.kind is CashDecisionKind.APPLY:
        if not decision.applications:
            raise ValueError(f"an apply decision on {decision.receipt_id} names the invoices and amounts")
        if decision.refund is not None:
            raise ValueError(f"an apply decision on {decision.receipt_id} refunds nothing; record a refund decision")
        ids = [a.invoice_id for a in decision.applications]
        if len(ids) != len(set(ids)):
            raise ValueError(f"an apply decision on {decision.receipt_id} names an invoice twice")
        if any(a.amount.minor <= 0 for a in decision.applications):
            raise ValueError(f"an apply decision on {decision.receipt_id} applies positive amounts only")
    else:
        if decision.applications:
            raise ValueError(f"a refund decision on {decision.receipt_id} applies nothing to invoices")
        if decision.refund is None or decision.refund.minor <= 0:
            raise ValueError(f"a refund decision on {decision.receipt_id} states a positive amount")
