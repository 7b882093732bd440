"""The sandbox's state, through SQLAlchemy: documents keyed by (system, type, id) with
JSON data and an insertion sequence, plus stored idempotent responses.

The tables are created by the sandbox's own Alembic migrations (sandbox/migrations);
the Table objects here only describe them. Writes are serialised by one lock,
so every request is one atomic unit of work (sync SQLAlchemy, called from the event
loop: the sandbox is a test double, not a high-throughput service).

Listings: the documents reconciliation lists by period (Stripe invoices, AvaTax
transactions, NetSuite journal entries) also fill three indexed columns, `scope` (the
account, company or subsidiary), `day` (ISO date) and `num` (a numeric id), derived from
the document by INDEXERS on every write. `Tx.page` pushes conditions on them down to SQL
and streams the rows, so a page costs O(page), not O(documents).
"""

from __future__ import annotations

import builtins
import json
import threading
import time
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, NamedTuple, overload

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from sandbox.db import engine_for, upgrade

metadata = sa.MetaData()

documents = sa.Table(
    "sandbox_documents",
    metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("system", sa.String(32), nullable=False),
    sa.Column("type", sa.String(64), nullable=False),
    sa.Column("id", sa.String(255), nullable=False),
    sa.Column("data", sa.JSON, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Column("scope", sa.String(64), nullable=True),
    sa.Column("day", sa.String(10), nullable=True),
    sa.Column("num", sa.BigInteger, nullable=True),
)

idempotency = sa.Table(
    "sandbox_idempotency",
    metadata,
    sa.Column("system", sa.String(32), primary_key=True),
    sa.Column("key", sa.String(300), primary_key=True),
    sa.Column("request_hash", sa.String(64), nullable=False),
    sa.Column("status", sa.Integer, nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("headers", sa.JSON, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
)

# Stripe's accepted meter events (sandbox/stripe/meter_events.py): the customer and value
# as read through the meter's payload keys when the event arrived, times in unix seconds
# on the sandbox's clock. `account` is the Connect account ("" = the platform).
meter_events = sa.Table(
    "sandbox_meter_events",
    metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("account", sa.String(64), nullable=False),
    sa.Column("event_name", sa.String(100), nullable=False),
    sa.Column("identifier", sa.String(100), nullable=False),
    sa.Column("customer", sa.String(255), nullable=False),
    sa.Column("value", sa.BigInteger, nullable=False),
    sa.Column("timestamp", sa.BigInteger, nullable=False),
    sa.Column("received", sa.BigInteger, nullable=False),
    sa.Column("cancelled", sa.Boolean, nullable=False),
)


# -- listing columns ------------------------------------------------------------------------
#
# What each listed document puts in the indexed columns. A document of any other type
# leaves them NULL. The first migration backfills older rows with a copy of these rules.


class Index(NamedTuple):
    scope: str | None = None
    day: str | None = None
    num: int | None = None


@overload
def utc_day(unix_seconds: int) -> str: ...
@overload
def utc_day(unix_seconds: Any) -> str | None: ...


def utc_day(unix_seconds: Any) -> str | None:
    if unix_seconds is None:
        return None
    return datetime.fromtimestamp(int(unix_seconds), tz=UTC).date().isoformat()


def _stripe_invoice(data: dict[str, Any]) -> Index:
    # The Connect account it lives in ("" = the platform), and its creation day in UTC.
    return Index(scope=data.get("_stripe_account") or "", day=utc_day(data.get("created")))


# AvaTax records invoices and returns; a SalesOrder (a quote) is an estimate it keeps no
# record of, so it gets no scope and never lists.
AVATAX_RECORDED_TYPES = ("SalesInvoice", "ReturnInvoice")


def _avatax_transaction(data: dict[str, Any]) -> Index:
    if data.get("type") not in AVATAX_RECORDED_TYPES:
        return Index()
    return Index(scope=str(data.get("companyCode") or ""), day=str(data.get("date") or "")[:10] or None)


def _netsuite_journal_entry(data: dict[str, Any]) -> Index:
    subsidiary = (data.get("subsidiary") or {}).get("id")
    internal_id = str(data.get("id") or "")
    return Index(
        scope=None if subsidiary is None else str(subsidiary),
        day=data.get("tranDate") or None,
        num=int(internal_id) if internal_id.isdigit() else None,
    )


def _sap_item(data: dict[str, Any]) -> Index:
    # An item of a posted SAP document: its company code, posting date, and its place in
    # the order of AccountingDocument and AccountingDocumentItem.
    document, item = str(data.get("AccountingDocument") or ""), str(data.get("AccountingDocumentItem") or "")
    return Index(
        scope=data.get("CompanyCode") or None,
        day=data.get("PostingDate") or None,
        num=int(document) * 1000 + int(item) if document.isdigit() and item.isdigit() else None,
    )


INDEXERS: dict[tuple[str, str], Callable[[dict[str, Any]], Index]] = {
    ("stripe", "invoice"): _stripe_invoice,
    ("avatax", "transaction"): _avatax_transaction,
    ("netsuite", "journalEntry"): _netsuite_journal_entry,
    ("sap", "item"): _sap_item,
}


def index_of(system: str, type_: str, data: dict[str, Any]) -> Index:
    indexer = INDEXERS.get((system, type_))
    return Index() if indexer is None else indexer(data)


class Row(NamedTuple):
    seq: int
    id: str
    scope: str | None
    day: str | None
    num: int | None
    data: dict[str, Any]


# A condition of Tx.page: (field, op, value). Fields: the columns seq, id, scope, day and
# num, or "data.<key>", a top-level field of the JSON document (not indexed), compared
# as text, or as an integer when the value is an int. Ops: = != < <= > >= and "in" (a
# sequence).
Condition = tuple[str, str, Any]

_COLUMNS = ("seq", "id", "scope", "day", "num")
_OPS: dict[str, Callable[[Any, Any], Any]] = {
    "=": lambda c, v: c == v,
    "!=": lambda c, v: c != v,
    "<": lambda c, v: c < v,
    "<=": lambda c, v: c <= v,
    ">": lambda c, v: c > v,
    ">=": lambda c, v: c >= v,
    "in": lambda c, v: c.in_(list(v)),
}


def _field(name: str, value: Any) -> Any:
    if name in _COLUMNS:
        return documents.c[name]
    if name.startswith("data."):
        sample = next(iter(value), None) if isinstance(value, (list, tuple, set)) else value
        text = documents.c.data[name[5:]].as_string()
        if isinstance(sample, int) and not isinstance(sample, bool):
            return sa.cast(text, sa.BigInteger)
        return text
    raise ValueError(f"cannot filter documents on {name!r}")


def _condition(condition: Condition) -> Any:
    name, op, value = condition
    if op not in _OPS:
        raise ValueError(f"unknown operator {op!r}")
    return _OPS[op](_field(name, value), value)


class StoredResponse:
    def __init__(self, request_hash: str, status: int, body: str, headers: dict[str, str]):
        self.request_hash = request_hash
        self.status = status
        self.body = body
        self.headers = headers


class Tx:
    """One unit of work on the sandbox state."""

    def __init__(self, conn: Connection, store: Store | None = None):
        self.conn = conn
        self.store = store
        # Work that must wait until this unit of work is committed (webhook deliveries:
        # a receiver that reads back what the event names must find it).
        self.after_commit: list[Callable[[], None]] = []
        # Fields every document inserted in this unit of work receives, per system (e.g.
        # the Stripe-Account a Stripe request acted for). Existing documents keep theirs.
        self.insert_fields: dict[str, dict[str, Any]] = {}

    # -- documents ------------------------------------------------------------------

    def get(self, system: str, type_: str, id_: str) -> dict[str, Any] | None:
        row = self.conn.execute(
            sa.select(documents.c.data).where(
                documents.c.system == system, documents.c.type == type_, documents.c.id == id_
            )
        ).first()
        return None if row is None else dict(row[0])

    def seq_of(self, system: str, type_: str, id_: str) -> int | None:
        return self.conn.execute(
            sa.select(documents.c.seq).where(
                documents.c.system == system, documents.c.type == type_, documents.c.id == id_
            )
        ).scalar()

    def put(self, system: str, type_: str, id_: str, data: dict[str, Any]) -> int:
        """Insert or replace; returns the document's insertion sequence number."""
        now = time.time()
        seq = self.seq_of(system, type_, id_)
        if seq is None:
            for name, value in self.insert_fields.get(system, {}).items():
                data.setdefault(name, value)
            result = self.conn.execute(
                documents.insert().values(
                    system=system,
                    type=type_,
                    id=id_,
                    data=data,
                    created_at=now,
                    updated_at=now,
                    **index_of(system, type_, data)._asdict(),
                )
            )
            primary_key = result.inserted_primary_key
            assert primary_key is not None  # a single-row insert always reports its key
            return int(primary_key[0])
        self.conn.execute(
            documents.update()
            .where(documents.c.seq == seq)
            .values(data=data, updated_at=now, **index_of(system, type_, data)._asdict())
        )
        return seq

    def insert_many(self, docs: Iterable[tuple[str, str, str, dict[str, Any]]], *, chunk: int = 2000) -> int:
        """Insert new documents (system, type, id, data) in bulk, executemany-style: for
        seeding large states. Ids must be new (the unique key refuses duplicates).
        Returns how many were inserted."""
        now = time.time()
        count = 0
        batch: list[dict[str, Any]] = []
        for system, type_, id_, data in docs:
            batch.append(
                {
                    "system": system,
                    "type": type_,
                    "id": id_,
                    "data": data,
                    "created_at": now,
                    "updated_at": now,
                    **index_of(system, type_, data)._asdict(),
                }
            )
            if len(batch) >= chunk:
                self.conn.execute(documents.insert(), batch)
                count += len(batch)
                batch = []
        if batch:
            self.conn.execute(documents.insert(), batch)
            count += len(batch)
        return count

    def delete(self, system: str, type_: str, id_: str) -> None:
        self.conn.execute(
            documents.delete().where(documents.c.system == system, documents.c.type == type_, documents.c.id == id_)
        )

    def row(self, system: str, type_: str, id_: str) -> Row | None:
        """A document with its sequence number and listing columns."""
        found = self.conn.execute(
            sa.select(
                documents.c.seq, documents.c.id, documents.c.scope, documents.c.day, documents.c.num, documents.c.data
            ).where(documents.c.system == system, documents.c.type == type_, documents.c.id == id_)
        ).first()
        return None if found is None else Row(found[0], found[1], found[2], found[3], found[4], dict(found[5]))

    def page(
        self,
        system: str,
        type_: str,
        where: Sequence[Condition] = (),
        *,
        order_by: Sequence[tuple[str, bool]] = (("seq", False),),
        limit: int | None = None,
        offset: int = 0,
        batch: int = 500,
    ) -> Generator[Row, None, None]:
        """The documents of a type that meet every condition, ordered by (field,
        descending) pairs, with LIMIT/OFFSET, all in SQL; rows are streamed `batch` at a
        time, not loaded at once. Consume the iterator inside the unit of work."""
        order = [
            (_field(name, None).desc() if descending else _field(name, None).asc()) for name, descending in order_by
        ]
        columns = (
            documents.c.seq,
            documents.c.id,
            documents.c.scope,
            documents.c.day,
            documents.c.num,
            documents.c.data,
        )
        matching = (documents.c.system == system, documents.c.type == type_, *(_condition(c) for c in where))
        if offset:
            # Skip through the index alone, then read only the page's documents (a deep
            # OFFSET would otherwise fetch every skipped document).
            keys = sa.select(documents.c.seq).where(*matching).order_by(*order).offset(offset)
            if limit is not None:
                keys = keys.limit(limit)
            page_keys = keys.subquery()
            query = sa.select(*columns).join(page_keys, documents.c.seq == page_keys.c.seq).order_by(*order)
        else:
            query = sa.select(*columns).where(*matching).order_by(*order)
            if limit is not None:
                query = query.limit(limit)
        result = self.conn.execute(query.execution_options(yield_per=min(batch, limit or batch)))
        try:
            for seq, id_, scope, day, num, data in result:
                yield Row(seq, id_, scope, day, num, dict(data))
        finally:
            result.close()

    def count_where(self, system: str, type_: str, where: Sequence[Condition] = ()) -> int:
        """How many documents Tx.page would list without LIMIT/OFFSET."""
        return int(
            self.conn.execute(
                sa.select(sa.func.count())
                .select_from(documents)
                .where(documents.c.system == system, documents.c.type == type_, *(_condition(c) for c in where))
            ).scalar_one()
        )

    def list(self, system: str, type_: str | None = None) -> list[dict[str, Any]]:
        query = sa.select(documents.c.data).where(documents.c.system == system)
        if type_ is not None:
            query = query.where(documents.c.type == type_)
        return [dict(r[0]) for r in self.conn.execute(query.order_by(documents.c.seq))]

    def types(self) -> builtins.list[tuple[str, str, dict[str, Any]]]:  # `list` is the method above
        rows = self.conn.execute(
            sa.select(documents.c.system, documents.c.type, documents.c.data).order_by(documents.c.seq)
        )
        return [(r[0], r[1], dict(r[2])) for r in rows]

    def count(self, system: str, type_: str) -> int:
        return int(
            self.conn.execute(
                sa.select(sa.func.count())
                .select_from(documents)
                .where(documents.c.system == system, documents.c.type == type_)
            ).scalar_one()
        )

    # -- idempotency ----------------------------------------------------------------

    def stored_response(self, system: str, key: str) -> StoredResponse | None:
        row = self.conn.execute(
            sa.select(idempotency).where(idempotency.c.system == system, idempotency.c.key == key)
        ).first()
        if row is None:
            return None
        return StoredResponse(row.request_hash, row.status, row.body, dict(row.headers))

    def store_response(
        self, system: str, key: str, request_hash: str, status: int, body: Any, headers: dict[str, str]
    ) -> None:
        self.conn.execute(
            idempotency.insert().values(
                system=system,
                key=key,
                request_hash=request_hash,
                status=status,
                body=json.dumps(body),
                headers=headers,
                created_at=time.time(),
            )
        )


class Store:
    def __init__(self, database_url: str, *, migrate: bool = True):
        if migrate:
            upgrade(database_url)
        self.engine = engine_for(database_url)
        self.lock = threading.RLock()
        # Set by the app: delivers Stripe events to registered webhook endpoints.
        self.webhooks: Any = None

    @contextmanager
    def tx(self) -> Iterator[Tx]:
        with self.lock:
            with self.engine.begin() as conn:
                tx = Tx(conn, self)
                yield tx
            for callback in tx.after_commit:
                callback()

    def refresh_statistics(self) -> None:
        """After a bulk load. PostgreSQL plans the listings with stale statistics (and,
        until it is vacuumed, reads the table for index-only counts) until autovacuum
        catches up; SQLite, never analysed here, plans them well as it is."""
        if self.engine.dialect.name != "postgresql":
            return
        with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM (ANALYZE) sandbox_documents")

    def reset(self) -> None:
        with self.tx() as tx:
            tx.conn.execute(documents.delete())
            tx.conn.execute(idempotency.delete())
            tx.conn.execute(meter_events.delete())

    def close(self) -> None:
        self.engine.dispose()
