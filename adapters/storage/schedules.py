"""Revenue schedules as computed, in o2c's own database (RevenueSchedulePort).

Finance queries them across processes (what is recognised in a period, per contract,
per legal entity). Tables `revenue_schedules` and `revenue_schedule_lines` come from
the Alembic migrations 0002 and 0005 and are described in `adapters.storage.tables`. The store
brings the database to the latest migration when it is constructed (`migrate=False`
skips that, for a database migrated by a deployment step).

Amounts are stored exactly as integers in the currency's minor unit (`total_minor`,
`amount_minor`) next to the schedule's currency, and come back as the same Money.
Dates are calendar dates; `end_date` is exclusive, as in the canonical model.

The methods are async for the port; each runs the synchronous SQLAlchemy engine in a
worker thread (`asyncio.to_thread`), one transaction per call.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa

from adapters.errors import IntegrationBug
from adapters.storage.db import dialect_insert, engine_for, upgrade
from adapters.storage.tables import revenue_schedule_lines, revenue_schedules
from canonical.models import ContractRevenue, ContractRevenuePage, RevenueSchedule, RevenueScheduleLine
from canonical.money import Money
from canonical.revenue.posting import Recognition, RecognitionPage
from canonical.usage.booking import USAGE_OBLIGATION

SYSTEM = "o2c-db"


class SqlRevenueSchedules:
    """RevenueSchedulePort over SQLAlchemy (SQLite file or PostgreSQL)."""

    def __init__(self, database_url: str, *, migrate: bool = True):
        if migrate:
            upgrade(database_url)
        self.engine = engine_for(database_url)

    async def aclose(self) -> None:
        self.engine.dispose()

    # -- the port ---------------------------------------------------------------------------

    async def save_schedule(self, schedule: RevenueSchedule) -> None:
        """Insert or replace by schedule_id, lines included, in one transaction: saving
        the same schedule twice keeps one, saving a changed one keeps the latest."""
        await self.save_schedules([schedule])

    async def save_schedules(self, schedules: list[RevenueSchedule], *, delete: Sequence[str] = ()) -> None:
        """Save these and delete those in one transaction: a contract modification replaces
        the schedules it terminates and adds the ones it creates at once."""
        rows = [self._rows(schedule) for schedule in schedules]
        await asyncio.to_thread(self._save_all, rows, list(delete))

    async def schedules_of_contract(self, contract_id: str, *, open_on: date | None = None) -> list[RevenueSchedule]:
        """The contract's schedules; with `open_on`, only those that end after it (a contract
        modified every month for years keeps a long tail of finished ones)."""
        where = revenue_schedules.c.contract_id == contract_id
        if open_on is not None:
            where = sa.and_(where, revenue_schedules.c.end_date > open_on)
        return await asyncio.to_thread(self._find, where)

    async def schedules_of_entity(self, legal_entity: str) -> list[RevenueSchedule]:
        return await asyncio.to_thread(self._find, revenue_schedules.c.legal_entity == legal_entity)

    async def revenue_in_period(
        self, *, legal_entity: str, period: str, cursor: str = "", limit: int = 1000
    ) -> ContractRevenuePage:
        """Recognised per contract in the period, summed in the database, in contract order.
        Usage schedules are left out: the usage check reconciles them against their accrual."""
        return await asyncio.to_thread(self._revenue_in_period, legal_entity, period, cursor, limit)

    async def recognition_of_entity(
        self, *, legal_entity: str, through: str, cursor: str = "", limit: int = 1000
    ) -> RecognitionPage:
        """What the entity's schedules recognise per month, obligation and currency in every
        month up to `through` (YYYY-MM), summed in the database, a page at a time. Usage is
        left out: its revenue is accrued by the usage release, not posted from a schedule."""
        return await asyncio.to_thread(self._recognition_of_entity, legal_entity, through, cursor, limit)

    async def get_schedule(self, schedule_id: str) -> RevenueSchedule | None:
        return await asyncio.to_thread(self._get, schedule_id)

    async def delete_schedule(self, schedule_id: str) -> None:
        """Delete it with its lines; deleting one that does not exist changes nothing."""
        await asyncio.to_thread(self._delete, schedule_id)

    # -- mapping ----------------------------------------------------------------------------

    @staticmethod
    def _rows(schedule: RevenueSchedule) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        currency = schedule.total.currency
        for line in schedule.lines:
            if line.amount.currency != currency:
                raise IntegrationBug(
                    SYSTEM,
                    f"revenue schedule {schedule.schedule_id} mixes currencies: "
                    f"line {line.period} is in {line.amount.currency}, the total in {currency}",
                )
        row = {
            "schedule_id": schedule.schedule_id,
            "contract_id": schedule.contract_id,
            "account_id": schedule.account_id,
            "legal_entity": schedule.legal_entity,
            "obligation": schedule.obligation,
            "method": schedule.method,
            "currency": currency,
            "total_minor": schedule.total.minor,
            "start_date": schedule.start,
            "end_date": schedule.end,
            "booked_on": schedule.booked_on,
            "ssp_minor": None if schedule.ssp is None else schedule.ssp.minor,
            "supersedes": schedule.supersedes,
        }
        lines = [
            {
                "schedule_id": schedule.schedule_id,
                "line_no": index,
                "period": line.period,
                "start_date": line.start,
                "end_date": line.end,
                "days": line.days,
                "amount_minor": line.amount.minor,
            }
            for index, line in enumerate(schedule.lines)
        ]
        return row, lines

    # -- synchronous work (in a worker thread) ---------------------------------------------------

    def _save_all(self, rows: list[tuple[dict[str, Any], list[dict[str, Any]]]], delete: list[str]) -> None:
        now = datetime.now(UTC)
        insert = dialect_insert(self.engine)
        with self.engine.begin() as conn:
            for schedule_id in delete:
                self._delete_in(conn, schedule_id)
            for row, lines in rows:
                statement = insert(revenue_schedules).values(**row, created_at=now, updated_at=now)
                # An upsert locks the schedule's row, so concurrent saves of one schedule
                # take turns and the lines below always belong to one of them.
                conn.execute(
                    statement.on_conflict_do_update(
                        index_elements=[revenue_schedules.c.schedule_id],
                        set_={**{k: statement.excluded[k] for k in row if k != "schedule_id"}, "updated_at": now},
                    )
                )
                conn.execute(
                    revenue_schedule_lines.delete().where(revenue_schedule_lines.c.schedule_id == row["schedule_id"])
                )
                if lines:
                    conn.execute(revenue_schedule_lines.insert(), lines)

    def _get(self, schedule_id: str) -> RevenueSchedule | None:
        found = self._find(revenue_schedules.c.schedule_id == schedule_id)
        return found[0] if found else None

    def _find(self, where: Any) -> list[RevenueSchedule]:
        with self.engine.connect() as conn:
            rows = (
                conn.execute(sa.select(revenue_schedules).where(where).order_by(revenue_schedules.c.schedule_id))
                .mappings()
                .all()
            )
            if not rows:
                return []
            ids = [row["schedule_id"] for row in rows]
            lines: dict[str, list[Any]] = {i: [] for i in ids}
            for line in conn.execute(
                sa.select(revenue_schedule_lines)
                .where(revenue_schedule_lines.c.schedule_id.in_(ids))
                .order_by(revenue_schedule_lines.c.schedule_id, revenue_schedule_lines.c.line_no)
            ).mappings():
                lines[line["schedule_id"]].append(line)
        return [self._schedule(row, lines[row["schedule_id"]]) for row in rows]

    def _revenue_in_period(self, legal_entity: str, period: str, cursor: str, limit: int) -> ContractRevenuePage:
        amount = sa.func.sum(revenue_schedule_lines.c.amount_minor)
        query = (
            sa.select(revenue_schedules.c.contract_id, revenue_schedules.c.currency, amount)
            .join(revenue_schedule_lines, revenue_schedule_lines.c.schedule_id == revenue_schedules.c.schedule_id)
            .where(
                revenue_schedules.c.legal_entity == legal_entity,
                revenue_schedule_lines.c.period == period,
                revenue_schedules.c.contract_id > cursor,
                revenue_schedules.c.obligation != USAGE_OBLIGATION,
            )
            .group_by(revenue_schedules.c.contract_id, revenue_schedules.c.currency)
            .order_by(revenue_schedules.c.contract_id, revenue_schedules.c.currency)
            .limit(limit + 1)
        )
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        page = rows[:limit]
        if len(rows) > limit and len({r[0] for r in page}) > 1:
            # A contract whose schedules mix currencies must not straddle two pages: the
            # cursor resumes after whole contracts, so end this page before the last one.
            page = [r for r in page if r[0] != rows[limit][0]]
        items = [
            ContractRevenue(contract_id=contract, amount=Money.from_minor(int(minor), currency))
            for contract, currency, minor in page
        ]
        return ContractRevenuePage(items=items, next_cursor=items[-1].contract_id if len(rows) > limit else "")

    def _recognition_of_entity(self, legal_entity: str, through: str, cursor: str, limit: int) -> RecognitionPage:
        period, obligation, currency = (
            revenue_schedule_lines.c.period,
            revenue_schedules.c.obligation,
            revenue_schedules.c.currency,
        )
        where = [
            revenue_schedules.c.legal_entity == legal_entity,
            period <= through,
            obligation != USAGE_OBLIGATION,
        ]
        if cursor:
            after = cursor.split("|", 2)
            if len(after) != 3:
                raise IntegrationBug(SYSTEM, f"not a recognition cursor: {cursor!r}")
            where.append(sa.tuple_(period, obligation, currency) > sa.tuple_(*after))
        query = (
            sa.select(period, obligation, currency, sa.func.sum(revenue_schedule_lines.c.amount_minor))
            .join(revenue_schedule_lines, revenue_schedule_lines.c.schedule_id == revenue_schedules.c.schedule_id)
            .where(*where)
            .group_by(period, obligation, currency)
            .order_by(period, obligation, currency)
            .limit(limit + 1)
        )
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        items = [
            Recognition(period=p, obligation=o, amount=Money.from_minor(int(minor), c))
            for p, o, c, minor in rows[:limit]
        ]
        more = len(rows) > limit
        last = items[-1] if items else None
        next_cursor = f"{last.period}|{last.obligation}|{last.amount.currency}" if more and last else ""
        return RecognitionPage(items=items, next_cursor=next_cursor)

    @staticmethod
    def _schedule(row: Any, lines: Any) -> RevenueSchedule:
        currency = row["currency"]
        return RevenueSchedule(
            schedule_id=row["schedule_id"],
            contract_id=row["contract_id"],
            account_id=row["account_id"],
            legal_entity=row["legal_entity"],
            obligation=row["obligation"],
            method=row["method"],
            total=Money.from_minor(int(row["total_minor"]), currency),
            start=row["start_date"],
            end=row["end_date"],
            booked_on=row["booked_on"],
            ssp=None if row["ssp_minor"] is None else Money.from_minor(int(row["ssp_minor"]), currency),
            supersedes=row["supersedes"] or "",
            lines=[
                RevenueScheduleLine(
                    period=line["period"],
                    start=line["start_date"],
                    end=line["end_date"],
                    days=int(line["days"]),
                    amount=Money.from_minor(int(line["amount_minor"]), currency),
                )
                for line in lines
            ],
        )

    def _delete(self, schedule_id: str) -> None:
        with self.engine.begin() as conn:
            self._delete_in(conn, schedule_id)

    @staticmethod
    def _delete_in(conn: Any, schedule_id: str) -> None:
        # Lines first: SQLite does not enforce the foreign key's cascade by default.
        conn.execute(revenue_schedule_lines.delete().where(revenue_schedule_lines.c.schedule_id == schedule_id))
        conn.execute(revenue_schedules.delete().where(revenue_schedules.c.schedule_id == schedule_id))
