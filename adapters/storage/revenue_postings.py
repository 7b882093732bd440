"""What o2c posted of recognised revenue, in its own database (RevenuePostingStorePort).

Each line of each revenue entry (table `revenue_postings`, migration 0008): the entry's
entity, month and currency, the month the line is revenue of, the obligation, the signed
amount and the entry's ERP reference. The next month's posting reads them to true up what
the schedules changed since; reconciliation reads them to say why a month differs.

A line is keyed by (external id, recognised month, obligation): recording an entry twice
(a retried activity) keeps one. Transient database failures are retried whole, bounded
and jittered; then RevenuePostingsUnavailable is raised and nothing of the call is written.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import sqlalchemy as sa

from adapters.errors import IntegrationBug, TransientError
from adapters.storage.db import Retried, dialect_insert, engine_for, upgrade
from adapters.storage.tables import revenue_postings
from canonical.money import Money
from canonical.revenue.posting import PostedLine

SYSTEM = "o2c-db"

T = TypeVar("T")


class RevenuePostingsUnavailable(TransientError):
    """The database did not take the call after the retries; nothing of it was written."""

    def __init__(self, message: str):
        super().__init__(SYSTEM, message)


class SqlRevenuePostings:
    """RevenuePostingStorePort on SQLite or PostgreSQL."""

    def __init__(self, database_url: str, *, migrate: bool = True, attempts: int = 6, max_wait_seconds: float = 1.0):
        if migrate:
            upgrade(database_url)
        self.engine = engine_for(database_url)
        self._insert = dialect_insert(self.engine)
        self._retried = Retried(
            attempts=attempts, max_wait_seconds=max_wait_seconds, unavailable=RevenuePostingsUnavailable
        )

    async def aclose(self) -> None:
        self.engine.dispose()

    async def _run(self, work: Callable[[], T], what: str) -> T:
        return await asyncio.to_thread(self._retried, work, what)

    # -- the port ---------------------------------------------------------------------------

    async def record_posting(self, lines: list[PostedLine]) -> None:
        """Keep the lines of one posted entry. Recording it again changes nothing; recording
        other amounts under an entry already recorded is refused (the ledger holds the first)."""
        if not lines:
            return
        first = lines[0]
        for line in lines:
            if (line.external_id, line.legal_entity, line.period) != (
                first.external_id,
                first.legal_entity,
                first.period,
            ):
                raise IntegrationBug(SYSTEM, f"lines of {line.external_id} recorded with those of {first.external_id}")
        now = datetime.now(UTC)
        rows = [
            {
                "external_id": line.external_id,
                "recognised_period": line.recognised_period,
                "line_key": line.line_key,
                "legal_entity": line.legal_entity,
                "period": line.period,
                "currency": line.amount.currency,
                "amount_minor": line.amount.minor,
                "posted_at": now,
            }
            for line in lines
        ]

        def work() -> None:
            with self.engine.begin() as conn:
                held = self._lines(conn, revenue_postings.c.external_id == first.external_id)
                if held:
                    if sorted(held, key=_slot) != sorted(lines, key=_slot):
                        raise IntegrationBug(
                            SYSTEM,
                            f"{first.external_id} is recorded already with other lines; the ledger holds the first",
                        )
                    return
                conn.execute(self._insert(revenue_postings).on_conflict_do_nothing(), rows)

        await self._run(work, f"recording {first.external_id}")

    async def postings_of_entity(self, legal_entity: str, *, through: str = "") -> list[PostedLine]:
        """Every line the entity's revenue entries posted, of entries up to `through` (YYYY-MM)."""
        where = revenue_postings.c.legal_entity == legal_entity
        if through:
            where = sa.and_(where, revenue_postings.c.period <= through)

        def work() -> list[PostedLine]:
            with self.engine.connect() as conn:
                return self._lines(conn, where)

        return await self._run(work, f"reading the revenue postings of {legal_entity}")

    async def posting(self, external_id: str) -> list[PostedLine]:
        """The lines recorded under one entry's reference (none when it was never recorded)."""

        def work() -> list[PostedLine]:
            with self.engine.connect() as conn:
                return self._lines(conn, revenue_postings.c.external_id == external_id)

        return await self._run(work, f"reading {external_id}")

    # -- mapping ----------------------------------------------------------------------------

    @staticmethod
    def _lines(conn: sa.Connection, where: Any) -> list[PostedLine]:
        rows = conn.execute(
            sa.select(revenue_postings)
            .where(where)
            .order_by(
                revenue_postings.c.period,
                revenue_postings.c.external_id,
                revenue_postings.c.recognised_period,
                revenue_postings.c.line_key,
            )
        ).mappings()
        return [
            PostedLine(
                legal_entity=row["legal_entity"],
                period=row["period"],
                recognised_period=row["recognised_period"],
                line_key=row["line_key"],
                amount=Money.from_minor(int(row["amount_minor"]), row["currency"]),
                external_id=row["external_id"],
            )
            for row in rows
        ]


def _slot(line: PostedLine) -> tuple[str, str]:
    return (line.recognised_period, line.line_key)
