"""Reconciliation runs and their breaks, in o2c's own database (ReconciliationStorePort).

A run stages what it reads from each system (`recon_records`: one canonical fact per row,
as JSON, keyed by the document it concerns), matches the staged facts batch by batch of
match keys, and records every break (`recon_breaks`). Closing a run compares its breaks with
the open ones of earlier runs of the same entity and period: those found again are
superseded by the new row (which keeps their first-seen date, so a break has an age), the
others are fixed. A run needs attention while one of its breaks is open, so an earlier run
whose breaks a later one settled is completed then. Then the staged facts are dropped.
Tables come from migration 0004 and are described in `adapters.storage.tables`.

Amounts are exact integers in minor units. The methods are async for the port and run the
synchronous engine in a worker thread, one transaction per call.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from adapters.errors import IntegrationBug
from adapters.storage.db import dialect_insert, engine_for, upgrade
from adapters.storage.tables import recon_breaks, recon_records, recon_runs
from canonical.journal import JournalEntry
from canonical.money import Money
from canonical.reconciliation import (
    UNRESOLVED,
    Break,
    BreakKind,
    BreakRecord,
    BreakStatus,
    HealOrder,
    KeyRange,
    RunSummary,
)

SYSTEM = "o2c-db"

COUNTS = ("billing_documents", "tax_documents", "erp_entries", "contracts")


def _now() -> datetime:
    return datetime.now(UTC)


def _aware(value: datetime | None) -> datetime | None:
    """SQLite hands timestamps back without their zone; they were written in UTC."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


class SqlReconciliationStore:
    def __init__(self, database_url: str, *, migrate: bool = True):
        if migrate:
            upgrade(database_url)
        self.engine = engine_for(database_url)
        self._insert = dialect_insert(self.engine)

    async def aclose(self) -> None:
        self.engine.dispose()

    # -- a run ------------------------------------------------------------------------------

    async def open_run(
        self,
        *,
        run_id: str,
        workflow_id: str,
        legal_entity: str,
        period: str,
        started_at: datetime,
        settings: dict[str, Any],
    ) -> None:
        """Record the run; opening it again (a retried activity) changes nothing."""
        row = dict(
            run_id=run_id,
            workflow_id=workflow_id,
            legal_entity=legal_entity,
            period=period,
            status="running",
            started_at=started_at,
            settings=settings,
            **{name: 0 for name in (*COUNTS, "breaks_found", "healed", "open_breaks", "fixed_since_last_run")},
        )
        await asyncio.to_thread(self._execute, self._insert(recon_runs).values(**row).on_conflict_do_nothing())

    async def stage(self, run_id: str, system: str, facts: Iterable[tuple[str, str, str]]) -> None:
        """Stage (record_id, match_key, payload) facts; staging a page again replaces it."""
        rows = [dict(run_id=run_id, system=system, record_id=r, match_key=k, payload=p) for r, k, p in facts]
        if rows:
            statement = self._insert(recon_records)
            statement = statement.on_conflict_do_update(
                index_elements=[recon_records.c.run_id, recon_records.c.system, recon_records.c.record_id],
                set_={"match_key": statement.excluded.match_key, "payload": statement.excluded.payload},
            )
            await asyncio.to_thread(self._execute, statement, rows)

    async def set_counts(self, run_id: str, **counts: int) -> None:
        unknown = set(counts) - set(COUNTS)
        if unknown:
            raise IntegrationBug(SYSTEM, f"unknown run counts {sorted(unknown)}")
        await asyncio.to_thread(
            self._execute, recon_runs.update().where(recon_runs.c.run_id == run_id).values(**counts)
        )

    async def plan_batches(self, run_id: str, size: int) -> list[KeyRange]:
        """Cut the run's match keys, in order, into ranges of `size` keys."""
        return await asyncio.to_thread(self._plan_batches, run_id, size)

    async def staged(self, run_id: str, keys: KeyRange) -> list[tuple[str, str, str]]:
        """(match key, system, payload) of every fact staged under a key of the range, in key order."""
        query = (
            sa.select(recon_records.c.match_key, recon_records.c.system, recon_records.c.payload)
            .where(
                recon_records.c.run_id == run_id,
                recon_records.c.match_key > keys.after,
                recon_records.c.match_key <= keys.last,
            )
            .order_by(recon_records.c.match_key, recon_records.c.system, recon_records.c.record_id)
        )
        return await asyncio.to_thread(lambda: [(k, s, p) for k, s, p in self._rows(query)])

    # -- breaks ------------------------------------------------------------------------------

    async def record_breaks(
        self, run_id: str, *, legal_entity: str, period: str, found: list[tuple[str, Break, BreakStatus]]
    ) -> list[int]:
        """Record (match_key, break, status) rows for the run and return their ids in order.
        Recording the same batch again (a retried activity) keeps the first rows."""
        return await asyncio.to_thread(self._record_breaks, run_id, legal_entity, period, found)

    async def resolve_breaks(self, updates: list[tuple[int, BreakStatus, str]]) -> None:
        """(break_id, new status, resolution) for each break."""
        await asyncio.to_thread(self._resolve, updates)

    async def heal_orders(
        self, run_id: str, *, status: BreakStatus, after: int = 0, limit: int = 500
    ) -> list[HealOrder]:
        query = (
            sa.select(recon_breaks.c.break_id, recon_breaks.c.heal_entry)
            .where(
                recon_breaks.c.run_id == run_id,
                recon_breaks.c.status == status,
                recon_breaks.c.break_id > after,
                recon_breaks.c.heal_entry.is_not(None),
            )
            .order_by(recon_breaks.c.break_id)
            .limit(limit)
        )
        return await asyncio.to_thread(
            lambda: [HealOrder(break_id=i, entry=JournalEntry.model_validate_json(e)) for i, e in self._rows(query)]
        )

    async def heal_total(self, run_id: str, status: BreakStatus) -> list[tuple[int, Money]]:
        """How many heals wait in `status`, and their total, per currency."""
        query = (
            sa.select(recon_breaks.c.currency, sa.func.count(), sa.func.sum(recon_breaks.c.heal_minor))
            .where(recon_breaks.c.run_id == run_id, recon_breaks.c.status == status)
            .group_by(recon_breaks.c.currency)
            .order_by(recon_breaks.c.currency)
        )
        return await asyncio.to_thread(
            lambda: [(int(n), Money.from_minor(int(m or 0), c)) for c, n, m in self._rows(query)]
        )

    async def move_breaks(
        self, run_id: str, *, from_status: BreakStatus, to_status: BreakStatus, resolution: str
    ) -> int:
        statement = (
            recon_breaks.update()
            .where(recon_breaks.c.run_id == run_id, recon_breaks.c.status == from_status)
            .values(
                status=to_status, resolution=resolution, resolved_at=_now() if to_status not in UNRESOLVED else None
            )
        )
        return await asyncio.to_thread(lambda: self._execute(statement).rowcount)

    async def close_run(self, run_id: str) -> RunSummary:
        """Finish the run: settle earlier runs' breaks against this one, count, drop the staging."""
        return await asyncio.to_thread(self._close_run, run_id)

    # -- what finance reads -----------------------------------------------------------------

    async def run(self, run_id: str) -> RunSummary | None:
        return await asyncio.to_thread(self._summary, run_id)

    async def runs(self, *, legal_entity: str = "", period: str = "", limit: int = 50) -> list[RunSummary]:
        query = sa.select(recon_runs.c.run_id).order_by(recon_runs.c.started_at.desc()).limit(limit)
        if legal_entity:
            query = query.where(recon_runs.c.legal_entity == legal_entity)
        if period:
            query = query.where(recon_runs.c.period == period)
        return await asyncio.to_thread(
            lambda: [summary for (r,) in self._rows(query) if (summary := self._summary(r)) is not None]
        )

    async def breaks_of_run(self, run_id: str, *, status: str = "") -> list[BreakRecord]:
        query = (
            sa.select(recon_breaks)
            .where(recon_breaks.c.run_id == run_id)
            .order_by(recon_breaks.c.kind, recon_breaks.c.document)
        )
        if status:
            query = query.where(recon_breaks.c.status == status)
        return await asyncio.to_thread(self._break_records, query)

    # -- synchronous work ----------------------------------------------------------------------

    def _execute(self, statement: Any, rows: Any = None) -> Any:
        with self.engine.begin() as conn:
            return conn.execute(statement, rows) if rows is not None else conn.execute(statement)

    def _rows(self, query: Any) -> list[Any]:
        with self.engine.connect() as conn:
            return list(conn.execute(query))

    def _plan_batches(self, run_id: str, size: int) -> list[KeyRange]:
        query = (
            sa.select(recon_records.c.match_key)
            .where(recon_records.c.run_id == run_id)
            .group_by(recon_records.c.match_key)
            .order_by(recon_records.c.match_key)
        )
        ranges: list[KeyRange] = []
        after, count, last = "", 0, ""
        with self.engine.connect() as conn:
            for (key,) in conn.execution_options(stream_results=True, yield_per=5000).execute(query):
                count, last = count + 1, key
                if count == size:
                    ranges.append(KeyRange(after=after, last=key))
                    after, count = key, 0
        if count:
            ranges.append(KeyRange(after=after, last=last))
        return ranges

    def _record_breaks(
        self, run_id: str, entity: str, period: str, found: list[tuple[str, Break, BreakStatus]]
    ) -> list[int]:
        if not found:
            return []
        now = _now()
        keys = sorted({key for key, _, _ in found})
        earliest = (
            sa.select(recon_breaks.c.kind, recon_breaks.c.match_key, sa.func.min(recon_breaks.c.first_seen_at))
            .where(
                recon_breaks.c.legal_entity == entity,
                recon_breaks.c.period == period,
                recon_breaks.c.match_key.in_(keys),
                recon_breaks.c.run_id != run_id,
            )
            .group_by(recon_breaks.c.kind, recon_breaks.c.match_key)
        )
        with self.engine.begin() as conn:
            seen = {(k, m): _aware(t) for k, m, t in conn.execute(earliest)}
            rows = []
            for key, found_break, status in found:
                b = found_break
                rows.append(
                    dict(
                        run_id=run_id,
                        legal_entity=entity,
                        period=period,
                        kind=b.kind.value,
                        match_key=key,
                        document=b.key,
                        currency=b.currency,
                        billing_minor=None if b.billing is None else b.billing.minor,
                        billing_currency=None if b.billing is None else b.billing.currency,
                        erp_minor=None if b.erp is None else b.erp.minor,
                        erp_currency=None if b.erp is None else b.erp.currency,
                        difference_minor=None if b.difference is None else b.difference.minor,
                        explanation=b.explanation,
                        owner=b.owner,
                        documents=b.documents,
                        status=status,
                        heal_entry=None if b.heal is None else b.heal.model_dump_json(),
                        heal_minor=None if b.heal is None else b.heal.total_debits.minor,
                        first_seen_at=seen.get((b.kind.value, key)) or now,
                        detected_at=now,
                    )
                )
            conn.execute(
                self._insert(recon_breaks).on_conflict_do_nothing(
                    index_elements=[recon_breaks.c.run_id, recon_breaks.c.kind, recon_breaks.c.match_key]
                ),
                rows,
            )
            ids = {
                (k, m): i
                for i, k, m in conn.execute(
                    sa.select(recon_breaks.c.break_id, recon_breaks.c.kind, recon_breaks.c.match_key).where(
                        recon_breaks.c.run_id == run_id, recon_breaks.c.match_key.in_(keys)
                    )
                )
            }
        return [ids[(b.kind.value, key)] for key, b, _ in found]

    def _resolve(self, updates: list[tuple[int, BreakStatus, str]]) -> None:
        now = _now()
        with self.engine.begin() as conn:
            for break_id, status, resolution in updates:
                # What happens to a break adds to its story (e.g. approved, then posted).
                told = sa.func.coalesce(recon_breaks.c.resolution + "; ", "") + resolution
                conn.execute(
                    recon_breaks.update()
                    .where(recon_breaks.c.break_id == break_id)
                    .values(status=status, resolution=told, resolved_at=None if status in UNRESOLVED else now)
                )

    def _close_run(self, run_id: str) -> RunSummary:
        now = _now()
        with self.engine.begin() as conn:
            run = conn.execute(sa.select(recon_runs).where(recon_runs.c.run_id == run_id)).mappings().first()
            if run is None:
                raise IntegrationBug(SYSTEM, f"no reconciliation run {run_id}")
            later = recon_breaks.alias("later")
            found_again = sa.exists().where(
                later.c.run_id == run_id,
                later.c.kind == recon_breaks.c.kind,
                later.c.match_key == recon_breaks.c.match_key,
            )
            earlier = sa.and_(
                recon_breaks.c.legal_entity == run["legal_entity"],
                recon_breaks.c.period == run["period"],
                recon_breaks.c.run_id != run_id,
                recon_breaks.c.status.in_(UNRESOLVED),
                recon_breaks.c.detected_at <= now,
            )
            conn.execute(
                recon_breaks.update()
                .where(earlier, found_again)
                .values(status=BreakStatus.SUPERSEDED, resolved_at=now, resolution=f"found again by run {run_id}")
            )
            fixed = conn.execute(
                recon_breaks.update()
                .where(earlier, ~found_again)
                .values(status=BreakStatus.FIXED, resolved_at=now, resolution=f"not found again by run {run_id}")
            ).rowcount
            counted: dict[str, int] = dict(
                conn.execute(
                    sa.select(recon_breaks.c.status, sa.func.count())
                    .where(recon_breaks.c.run_id == run_id)
                    .group_by(recon_breaks.c.status)
                ).all()
            )
            conn.execute(
                recon_runs.update()
                .where(recon_runs.c.run_id == run_id)
                .values(
                    status="needs_attention" if counted.get(BreakStatus.OPEN) else "completed",
                    finished_at=now,
                    breaks_found=sum(counted.values()),
                    healed=counted.get(BreakStatus.HEALED, 0),
                    open_breaks=sum(n for s, n in counted.items() if s in UNRESOLVED),
                    fixed_since_last_run=fixed,
                )
            )
            # The earlier runs whose breaks this one settled may need nobody any more.
            for (earlier_run,) in conn.execute(
                sa.select(recon_runs.c.run_id).where(
                    recon_runs.c.legal_entity == run["legal_entity"],
                    recon_runs.c.period == run["period"],
                    recon_runs.c.run_id != run_id,
                    recon_runs.c.status == "needs_attention",
                )
            ).all():
                left: dict[str, int] = dict(
                    conn.execute(
                        sa.select(recon_breaks.c.status, sa.func.count())
                        .where(recon_breaks.c.run_id == earlier_run)
                        .group_by(recon_breaks.c.status)
                    ).all()
                )
                conn.execute(
                    recon_runs.update()
                    .where(recon_runs.c.run_id == earlier_run)
                    .values(
                        status="needs_attention" if left.get(BreakStatus.OPEN) else "completed",
                        open_breaks=sum(n for s, n in left.items() if s in UNRESOLVED),
                    )
                )
            conn.execute(recon_records.delete().where(recon_records.c.run_id == run_id))
        summary = self._summary(run_id)
        assert summary is not None
        return summary

    def _summary(self, run_id: str) -> RunSummary | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(recon_runs).where(recon_runs.c.run_id == run_id)).mappings().first()
            if row is None:
                return None
            by_kind: dict[str, int] = dict(
                conn.execute(
                    sa.select(recon_breaks.c.kind, sa.func.count())
                    .where(recon_breaks.c.run_id == run_id, recon_breaks.c.status.in_(UNRESOLVED))
                    .group_by(recon_breaks.c.kind)
                ).all()
            )
            # The counts come from the break rows themselves, as the report's table does, so a
            # run still matching (whose columns are written only when it closes) says what it
            # has found so far instead of "0 breaks" above its table.
            by_status: dict[str, int] = dict(
                conn.execute(
                    sa.select(recon_breaks.c.status, sa.func.count())
                    .where(recon_breaks.c.run_id == run_id)
                    .group_by(recon_breaks.c.status)
                ).all()
            )
        counts = {
            "breaks_found": sum(by_status.values()),
            "healed": by_status.get(BreakStatus.HEALED, 0),
            "open_breaks": sum(n for status, n in by_status.items() if status in UNRESOLVED),
        }
        return RunSummary(
            run_id=row["run_id"],
            legal_entity=row["legal_entity"],
            period=row["period"],
            status=row["status"],
            started_at=_aware(row["started_at"]),
            finished_at=_aware(row["finished_at"]),
            **{name: row[name] for name in (*COUNTS, "fixed_since_last_run")},
            **counts,
            open_by_kind={k: int(n) for k, n in sorted(by_kind.items())},
        )

    def _break_records(self, query: Any) -> list[BreakRecord]:
        def money(minor: int | None, currency: str | None) -> Money | None:
            return None if minor is None or currency is None else Money.from_minor(int(minor), currency)

        with self.engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        return [
            BreakRecord(
                break_id=r["break_id"],
                run_id=r["run_id"],
                legal_entity=r["legal_entity"],
                period=r["period"],
                kind=BreakKind(r["kind"]),
                document=r["document"],
                currency=r["currency"],
                billing=money(r["billing_minor"], r["billing_currency"]),
                erp=money(r["erp_minor"], r["erp_currency"]),
                difference=money(r["difference_minor"], r["currency"]),
                explanation=r["explanation"],
                owner=r["owner"],
                status=r["status"],
                first_seen_at=_aware(r["first_seen_at"]),
                detected_at=_aware(r["detected_at"]),
                resolution=r["resolution"] or "",
            )
            for r in rows
        ]
