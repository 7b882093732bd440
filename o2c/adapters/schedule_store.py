"""Revenue schedules as computed, in o2c's own database (RevenueSchedulePort).

Finance queries them across processes (what is recognised in a period, per contract,
per legal entity). Tables `revenue_schedules` and `revenue_schedule_lines` come from
the Alembic migration 0002; the Table objects here only describe them. The store
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
from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa

from o2c.adapters.errors import IntegrationBug
from o2c.canonical.models import RevenueSchedule, RevenueScheduleLine
from o2c.canonical.money import Money
from o2c.db import engine_for, upgrade

SYSTEM = "o2c-db"

metadata = sa.MetaData()

schedules = sa.Table(
    "revenue_schedules",
    metadata,
    sa.Column("schedule_id", sa.String(255), primary_key=True),
    sa.Column("contract_id", sa.String(255), nullable=False),
    sa.Column("account_id", sa.String(255), nullable=False),
    sa.Column("legal_entity", sa.String(32), nullable=False),
    sa.Column("obligation", sa.String(255), nullable=False),
    sa.Column("method", sa.String(32), nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("total_minor", sa.BigInteger, nullable=False),
    sa.Column("start_date", sa.Date, nullable=False),
    sa.Column("end_date", sa.Date, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

schedule_lines = sa.Table(
    "revenue_schedule_lines",
    metadata,
    sa.Column("schedule_id", sa.String(255), sa.ForeignKey("revenue_schedules.schedule_id", ondelete="CASCADE"),
              primary_key=True),
    sa.Column("line_no", sa.Integer, primary_key=True),
    sa.Column("period", sa.String(7), nullable=False),
    sa.Column("start_date", sa.Date, nullable=False),
    sa.Column("end_date", sa.Date, nullable=False),
    sa.Column("days", sa.Integer, nullable=False),
    sa.Column("amount_minor", sa.BigInteger, nullable=False),
)


def _insert(dialect: str):
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    elif dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:  # pragma: no cover - o2c runs on SQLite or PostgreSQL
        raise IntegrationBug(SYSTEM, f"unsupported database {dialect!r} for revenue schedules")
    return insert


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
        row, lines = self._rows(schedule)
        await asyncio.to_thread(self._save, row, lines)

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
                raise IntegrationBug(SYSTEM, f"revenue schedule {schedule.schedule_id} mixes currencies: "
                                     f"line {line.period} is in {line.amount.currency}, the total in {currency}")
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

    def _save(self, row: dict[str, Any], lines: list[dict[str, Any]]) -> None:
        now = datetime.now(timezone.utc)
        insert = _insert(self.engine.dialect.name)
        with self.engine.begin() as conn:
            statement = insert(schedules).values(**row, created_at=now, updated_at=now)
            # An upsert locks the schedule's row, so concurrent saves of one schedule
            # take turns and the lines below always belong to one of them.
            conn.execute(statement.on_conflict_do_update(
                index_elements=[schedules.c.schedule_id],
                set_={**{k: statement.excluded[k] for k in row if k != "schedule_id"}, "updated_at": now},
            ))
            conn.execute(schedule_lines.delete().where(schedule_lines.c.schedule_id == row["schedule_id"]))
            if lines:
                conn.execute(schedule_lines.insert(), lines)

    def _get(self, schedule_id: str) -> RevenueSchedule | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(schedules).where(schedules.c.schedule_id == schedule_id)).mappings().first()
            if row is None:
                return None
            lines = conn.execute(
                sa.select(schedule_lines).where(schedule_lines.c.schedule_id == schedule_id)
                .order_by(schedule_lines.c.line_no)
            ).mappings().all()
        return self._schedule(row, lines)

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
            # Lines first: SQLite does not enforce the foreign key's cascade by default.
            conn.execute(schedule_lines.delete().where(schedule_lines.c.schedule_id == schedule_id))
            conn.execute(schedules.delete().where(schedules.c.schedule_id == schedule_id))
