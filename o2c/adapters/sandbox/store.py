"""The sandbox's state, through SQLAlchemy: documents keyed by (system, type, id) with
JSON data and an insertion sequence, plus stored idempotent responses.

The tables are created by the Alembic migration 0001; the Table objects here only
describe them. Writes are serialised by one lock, so every request is one atomic unit
of work (sync SQLAlchemy, called from the event loop: the sandbox is a test double,
not a high-throughput service).
"""

from __future__ import annotations

import json
import threading
import time
from contextlib import contextmanager
from typing import Any, Callable, Iterator

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from o2c.db import engine_for, upgrade

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


class StoredResponse:
    def __init__(self, request_hash: str, status: int, body: str, headers: dict[str, str]):
        self.request_hash = request_hash
        self.status = status
        self.body = body
        self.headers = headers


class Tx:
    """One unit of work on the sandbox state."""

    def __init__(self, conn: Connection, store: "Store | None" = None):
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
                    system=system, type=type_, id=id_, data=data, created_at=now, updated_at=now
                )
            )
            return int(result.inserted_primary_key[0])
        self.conn.execute(
            documents.update().where(documents.c.seq == seq).values(data=data, updated_at=now)
        )
        return seq

    def list(self, system: str, type_: str | None = None) -> list[dict[str, Any]]:
        query = sa.select(documents.c.data).where(documents.c.system == system)
        if type_ is not None:
            query = query.where(documents.c.type == type_)
        return [dict(r[0]) for r in self.conn.execute(query.order_by(documents.c.seq))]

    def types(self) -> list[tuple[str, str, dict[str, Any]]]:
        rows = self.conn.execute(
            sa.select(documents.c.system, documents.c.type, documents.c.data).order_by(documents.c.seq)
        )
        return [(r[0], r[1], dict(r[2])) for r in rows]

    def count(self, system: str, type_: str) -> int:
        return int(
            self.conn.execute(
                sa.select(sa.func.count()).select_from(documents).where(
                    documents.c.system == system, documents.c.type == type_
                )
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
                system=system, key=key, request_hash=request_hash, status=status,
                body=json.dumps(body), headers=headers, created_at=time.time(),
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

    def reset(self) -> None:
        with self.tx() as tx:
            tx.conn.execute(documents.delete())
            tx.conn.execute(idempotency.delete())

    def close(self) -> None:
        self.engine.dispose()
