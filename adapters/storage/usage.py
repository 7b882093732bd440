"""Usage in o2c's own database: the events accepted for billing, the quarantine of refused
ones, the master data validation checks against, closed periods, releases and API keys.

Two classes share the tables (migration 0006, described in `adapters.storage.tables`):

- `SqlUsageStore` implements UsageStorePort for the release workflow: period totals, closing
  a period, the history and the releases.
- `UsageLedger` is the ingest side, used by the HTTP ingress and `o2c usage`: it validates a
  batch against master data held in memory, writes the accepted events with one set-based
  INSERT ... ON CONFLICT DO NOTHING RETURNING (the identifiers not returned are duplicates)
  and quarantines the refused ones, in one transaction committed before it answers. It also
  keeps the quarantine, the API keys and the master data.

An identifier counts once per period: (period, identifier) is the primary key of
usage_events, so the duplicate check is the database's, exact under any concurrency. A late
event (its period closed) counts in the customer's next open period as an adjustment,
`late_from` naming where it came from; it is a duplicate when its identifier was counted in
that period already, or carried from it before.

Transient database failures (serialization failure, deadlock, a dropped connection, a locked
SQLite file) are retried in-process with tenacity, bounded and jittered; past that the call
raises UsageUnavailable and nothing of the batch is written.

The async methods run the synchronous engine in a worker thread (`asyncio.to_thread`), so
an event loop that awaits them keeps serving.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import re
import secrets
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import sqlalchemy as sa
from pydantic import ValidationError

from adapters.errors import TransientError
from adapters.ports import MeteringPort
from adapters.storage.db import Retried, dialect_insert, engine_for, upgrade
from adapters.storage.tables import (
    usage_api_keys,
    usage_closed_periods,
    usage_customers,
    usage_events,
    usage_meters,
    usage_quarantine,
    usage_releases,
)
from canonical.money import Money
from canonical.usage.models import (
    Aggregation,
    EventOutcome,
    EventVerdict,
    Meter,
    Refusal,
    UsageCustomer,
    UsageEvent,
    UsagePolicy,
    UsageRelease,
    UsageTotal,
    next_period,
)
from canonical.usage.validation import EventValidator

SYSTEM = "o2c-db"
PERIOD = re.compile(r"\d{4}-(0[1-9]|1[0-2])")
# The prefix tells a usage API key apart in a log or a secret scanner; the rest is 256 random bits.
KEY_PREFIX = "o2c_usage_"
# SQLite binds at most 32,766 parameters a statement; ten columns a row.
SQLITE_ROWS_PER_INSERT = 500


class UsageUnavailable(TransientError):
    """The database did not take the batch after the retries: nothing of it was written; send it again."""

    def __init__(self, message: str):
        super().__init__(SYSTEM, message)


class QuarantineError(ValueError):
    """An operator's request on the quarantine that o2c refuses (no reason, an unknown id)."""


class _StaleMasterData(Exception):
    """A period closed after the master data in memory was read: validate the batch again."""


def _now() -> datetime:
    return datetime.now(UTC)


def _aware(value: datetime | None) -> datetime | None:
    """SQLite hands timestamps back without their zone; they were written in UTC."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def _period(moment: datetime) -> str:
    """period_of, without strftime on the hot path: a batch's timestamps are mostly UTC already."""
    if moment.utcoffset() != _ZERO:
        moment = moment.astimezone(UTC)
    return f"{moment.year:04d}-{moment.month:02d}"


_ZERO = timedelta(0)


def _raw_event(event: UsageEvent) -> str:
    """The event as received, as JSON (a non-finite value is kept as written: NaN, Infinity)."""
    return json.dumps(
        {
            "identifier": event.identifier,
            "meter": event.meter,
            "customer": event.customer,
            "value": event.value,
            "timestamp": event.timestamp.isoformat(),
            "dimensions": dict(event.dimensions),
        },
        sort_keys=True,
    )


# -- master data -----------------------------------------------------------------------------


@dataclass(frozen=True)
class MasterData:
    """What validation checks an event against, read from the database at `loaded_at`."""

    meters: Mapping[str, Meter]
    customers: Mapping[str, UsageCustomer]
    closed_periods: frozenset[tuple[str, str]]
    open_period: Mapping[str, str]  # customer -> earliest open period after the last closed one
    loaded_at: float = 0.0  # time.monotonic()


def load_master_data(conn: sa.Connection) -> MasterData:
    meters = {
        row.event_name: Meter.model_validate_json(row.meter)
        for row in conn.execute(sa.select(usage_meters.c.event_name, usage_meters.c.meter))
    }
    customers = {
        row.customer: UsageCustomer.model_validate_json(row.usage_customer)
        for row in conn.execute(sa.select(usage_customers.c.customer, usage_customers.c.usage_customer))
    }
    closed = frozenset(
        (row.customer, row.period)
        for row in conn.execute(sa.select(usage_closed_periods.c.customer, usage_closed_periods.c.period))
    )
    latest: dict[str, str] = {}
    for customer, period in closed:
        latest[customer] = max(period, latest.get(customer, period))
    return MasterData(
        meters=meters,
        customers=customers,
        closed_periods=closed,
        open_period={customer: next_period(period) for customer, period in latest.items()},
        loaded_at=time.monotonic(),
    )


def merge_meters(billed: Sequence[Meter], policy: UsagePolicy) -> list[Meter]:
    """Billing's meters with o2c's rules for them (unit, bounds, aggregation, spike limit) from
    the policy; billing keeps the last word on what it owns (name, id, active)."""
    rules = {meter.event_name: meter for meter in policy.meters}
    merged = []
    for meter in billed:
        rule = rules.get(meter.event_name)
        if rule is not None:
            meter = rule.model_copy(
                update={
                    "display_name": meter.display_name,
                    "stripe_meter_id": meter.stripe_meter_id or rule.stripe_meter_id,
                    "active": meter.active,
                }
            )
        merged.append(meter)
    return merged


@dataclass(frozen=True)
class SyncResult:
    meters: int
    customers: int
    removed_customers: list[str]


async def sync(
    metering: MeteringPort, policy: UsagePolicy, ledger: UsageLedger, *, billing_accounts: Sequence[str] = ("",)
) -> SyncResult:
    """Pull meters and metered customers from billing into o2c's master data: every meter
    (active or not) with the policy's rules, and exactly the customers billing lists now in
    the legal entities' billing accounts ("" is the platform's own; a customer whose metered
    subscription ended may no longer send usage)."""
    meters = merge_meters(await metering.list_meters(), policy)
    customers = [
        customer
        for account in dict.fromkeys(billing_accounts)
        for customer in await metering.usage_customers(billing_account=account)
    ]
    return await ledger.replace_master_data(meters, customers)


# -- the ingest side -------------------------------------------------------------------------


# How often an unknown API key may make the ledger read the keys again.
UNKNOWN_KEY_RELOAD_SECONDS = 1.0


@dataclass(frozen=True)
class QuarantinedEvent:
    id: int
    received_at: datetime
    source: str
    identifier: str
    event: dict[str, Any]
    reason: str
    message: str
    status: str  # open, replayed, discarded
    resolved_at: datetime | None = None
    resolved_by: str | None = None
    resolution: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "received_at": self.received_at.isoformat(),
            "source": self.source,
            "identifier": self.identifier,
            "event": self.event,
            "reason": self.reason,
            "message": self.message,
            "status": self.status,
            "resolved_at": self.resolved_at.isoformat() if self.resolved_at else None,
            "resolved_by": self.resolved_by,
            "resolution": self.resolution,
        }


@dataclass(frozen=True)
class ApiKey:
    name: str
    created_at: datetime
    revoked_at: datetime | None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "created_at": self.created_at.isoformat(),
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
        }


@dataclass
class _Plan:
    """One batch after validation: what to insert, what to quarantine, and where each event's
    answer comes from."""

    source: str
    received_at: datetime
    rows: list[dict[str, Any]] = field(default_factory=list)  # accepted, first of their (period, identifier)
    refused: list[dict[str, Any]] = field(default_factory=list)
    verdicts: list[EventVerdict] = field(default_factory=list)
    # index of each accepted event in `verdicts` -> its (period, identifier)
    keys: dict[int, tuple[str, str]] = field(default_factory=dict)


def _duplicate(identifier: str, period: str) -> EventVerdict:
    return EventVerdict(
        identifier=identifier,
        outcome=EventOutcome.DUPLICATE,
        period=period,
        message=f"identifier {identifier} is counted already in {period}",
    )


class UsageLedger:
    """Takes usage in: validation, exactly-once counting, the quarantine, API keys, master data."""

    def __init__(
        self,
        database_url: str,
        *,
        policy: UsagePolicy | None = None,
        migrate: bool = True,
        refresh_seconds: float = 5.0,
        attempts: int = 5,
        max_wait_seconds: float = 1.0,
        engine: sa.Engine | None = None,
    ):
        if migrate:
            upgrade(database_url)
        self.engine = engine if engine is not None else engine_for(database_url, pool_size=8, max_overflow=4)
        self.policy = policy or UsagePolicy()
        self.refresh_seconds = refresh_seconds
        self._postgres = self.engine.dialect.name == "postgresql"
        self._insert = dialect_insert(self.engine)
        self._lock = threading.Lock()
        self._master: MasterData | None = None
        self._keys: list[tuple[str, bytes]] | None = None  # (name, sha256) of the active keys
        self._keys_loaded = 0.0
        self._key_reload = asyncio.Lock()
        self._partitions: set[str] = set()
        self._retry = Retried(attempts=attempts, max_wait_seconds=max_wait_seconds, unavailable=UsageUnavailable)

    async def aclose(self) -> None:
        self.engine.dispose()

    # -- ingest ---------------------------------------------------------------------------------

    async def ingest(self, events: Sequence[UsageEvent], *, source: str, now: datetime) -> list[EventVerdict]:
        """Validate, count and quarantine a batch, committed before it returns: one verdict per
        event, in order. An identifier already counted in its period (or earlier in the batch)
        is a DUPLICATE. Raises UsageUnavailable when the database stays away."""
        return await asyncio.to_thread(self.ingest_sync, events, source=source, now=now)

    def ingest_sync(self, events: Sequence[UsageEvent], *, source: str, now: datetime) -> list[EventVerdict]:
        if not events:
            return []
        received_at = _now()
        for _ in range(3):
            master = self.master_data()
            plan = self._plan(events, master, source, received_at, now)
            self._ensure_partitions({row["period"] for row in plan.rows})
            try:
                written = self._retry(partial(self._write, plan, master), "usage events")
            except _StaleMasterData:
                self.refresh()
                continue
            return self._answer(plan, written)
        raise UsageUnavailable("periods kept closing while the batch was written; send it again")

    def _plan(
        self, events: Sequence[UsageEvent], master: MasterData, source: str, received_at: datetime, now: datetime
    ) -> _Plan:
        plan = _Plan(source=source, received_at=received_at)
        # One validator for the batch: it computes each customer's priced meters once, not per event.
        validator = EventValidator(
            meters=master.meters,
            customers=master.customers,
            closed_periods=master.closed_periods,
            open_period=master.open_period,
            policy=self.policy,
        )
        validate = validator.validate
        seen: set[tuple[str, str]] = set()
        for index, event in enumerate(events):
            verdict = validate(event, now=now)
            plan.verdicts.append(verdict)
            if verdict.outcome is not EventOutcome.ACCEPTED:
                plan.refused.append(
                    {
                        "received_at": received_at,
                        "source": source,
                        "identifier": event.identifier,
                        "event": _raw_event(event),
                        "reason": (verdict.reason or Refusal.INVALID_VALUE).value,
                        "message": verdict.message,
                        "status": "open",
                    }
                )
                continue
            key = (verdict.period, event.identifier)
            if key in seen:  # sent twice in one batch: the first one counts
                plan.verdicts[index] = _duplicate(event.identifier, verdict.period)
                continue
            seen.add(key)
            plan.keys[index] = key
            origin = _period(event.timestamp)
            plan.rows.append(
                {
                    "period": verdict.period,
                    "identifier": event.identifier,
                    "meter": event.meter,
                    "customer": event.customer,
                    "value": int(event.value),
                    "timestamp": event.timestamp,
                    "dimensions": json.dumps(dict(event.dimensions), sort_keys=True) if event.dimensions else "{}",
                    "late_from": origin if origin != verdict.period else "",
                }
            )
        # One order for every batch, so two batches that share identifiers lock them in the
        # same order and never deadlock each other.
        plan.rows.sort(key=lambda row: (row["period"], row["identifier"]))
        return plan

    def _write(self, plan: _Plan, master: MasterData) -> set[tuple[str, str]]:
        """The batch in one transaction; the (period, identifier) pairs it counted."""
        with self.engine.begin() as conn:
            return self._write_in(conn, plan, master)

    def _write_in(self, conn: sa.Connection, plan: _Plan, master: MasterData) -> set[tuple[str, str]]:
        rows = plan.rows
        late = [row for row in rows if row["late_from"]]
        if late:
            carried = self._carried_already(conn, late)
            rows = [row for row in rows if (row["late_from"], row["identifier"]) not in carried]
        written = self._insert_events(conn, rows, source=plan.source, received_at=plan.received_at)
        if rows:
            # After the insert, which holds the lock close_period waits for: a period that
            # closed since the master data was read shows here, and the batch starts again.
            customers = sorted({row["customer"] for row in rows})
            periods = sorted({row["period"] for row in rows})
            closed = conn.execute(
                sa.select(usage_closed_periods.c.customer, usage_closed_periods.c.period).where(
                    usage_closed_periods.c.customer.in_(customers), usage_closed_periods.c.period.in_(periods)
                )
            ).all()
            counted = {(row["customer"], row["period"]) for row in rows}
            if any((c, p) in counted and (c, p) not in master.closed_periods for c, p in closed):
                raise _StaleMasterData
        if plan.refused:
            conn.execute(usage_quarantine.insert(), plan.refused)
        return written

    @staticmethod
    def _carried_already(conn: sa.Connection, late: list[dict[str, Any]]) -> set[tuple[str, str]]:
        """(origin period, identifier) of late events counted before: in their own period, or
        carried from it into a later one."""
        origins = {(row["late_from"], row["identifier"]) for row in late}
        found = conn.execute(
            sa.select(usage_events.c.period, usage_events.c.identifier, usage_events.c.late_from).where(
                usage_events.c.identifier.in_(sorted({row["identifier"] for row in late})),
                usage_events.c.period >= min(row["late_from"] for row in late),
            )
        ).all()
        carried = set()
        for period, identifier, late_from in found:
            for origin in (period, late_from):
                if (origin, identifier) in origins:
                    carried.add((origin, identifier))
        return carried

    # The whole batch as one JSON parameter, unpacked server-side: one statement, and one
    # string for the driver to send rather than ten arrays to adapt element by element.
    _PG_INSERT = sa.text(
        "INSERT INTO usage_events (period, identifier, meter, customer, value, timestamp, dimensions,"
        " source, received_at, late_from)"
        " SELECT e.period, e.identifier, e.meter, e.customer, e.value, e.timestamp, e.dimensions,"
        " :source, :received_at, e.late_from"
        " FROM json_to_recordset(CAST(:rows AS json)) AS e(period varchar, identifier varchar, meter varchar,"
        " customer varchar, value bigint, timestamp timestamptz, dimensions text, late_from varchar)"
        " ON CONFLICT (period, identifier) DO NOTHING"
        " RETURNING period, identifier"
    )

    def _insert_events(
        self, conn: sa.Connection, rows: list[dict[str, Any]], *, source: str, received_at: datetime
    ) -> set[tuple[str, str]]:
        if not rows:
            return set()
        if self._postgres:
            rows_json = json.dumps(rows, default=datetime.isoformat)
            result = conn.execute(self._PG_INSERT, {"rows": rows_json, "source": source, "received_at": received_at})
            return {(period, identifier) for period, identifier in result}
        written: set[tuple[str, str]] = set()
        for start in range(0, len(rows), SQLITE_ROWS_PER_INSERT):
            chunk = [
                {**row, "source": source, "received_at": received_at}
                for row in rows[start : start + SQLITE_ROWS_PER_INSERT]
            ]
            statement = (
                self._insert(usage_events)
                .values(chunk)
                .on_conflict_do_nothing(index_elements=["period", "identifier"])
                .returning(usage_events.c.period, usage_events.c.identifier)
            )
            written.update((period, identifier) for period, identifier in conn.execute(statement))
        return written

    @staticmethod
    def _answer(plan: _Plan, written: set[tuple[str, str]]) -> list[EventVerdict]:
        verdicts = list(plan.verdicts)
        for index, key in plan.keys.items():
            if key not in written:
                verdicts[index] = _duplicate(key[1], key[0])
        return verdicts

    def _ensure_partitions(self, periods: Iterable[str]) -> None:
        """On PostgreSQL, a partition of usage_events for each period before its first event."""
        if not self._postgres:
            return
        for period in sorted(set(periods) - self._partitions):
            if not PERIOD.fullmatch(period):
                raise ValueError(f"not a usage period: {period!r}")
            name = f"usage_events_{period.replace('-', '_')}"
            statement = f"CREATE TABLE IF NOT EXISTS {name} PARTITION OF usage_events FOR VALUES IN ('{period}')"

            def create(statement: str = statement, name: str = name) -> None:
                try:
                    with self.engine.begin() as conn:
                        conn.execute(sa.text(statement))
                except (sa.exc.IntegrityError, sa.exc.ProgrammingError):
                    # Two processes created it at once: the loser's catalog insert collides.
                    with self.engine.connect() as conn:
                        if conn.execute(sa.text("SELECT to_regclass(:n)"), {"n": name}).scalar() is None:
                            raise

            self._retry(create, f"the partition for {period}")
            self._partitions.add(period)

    # -- master data ----------------------------------------------------------------------------

    def master_data(self) -> MasterData:
        """The master data in memory, read again when older than `refresh_seconds`."""
        master = self._master
        if master is None or time.monotonic() - master.loaded_at > self.refresh_seconds:
            return self.refresh()
        return master

    def refresh(self) -> MasterData:
        """Read the master data now (after a sync, a fix, or a period closed elsewhere)."""
        with self._lock:
            master = self._retry(self._load_master, "master data")
            self._master = master
            return master

    def _load_master(self) -> MasterData:
        with self.engine.connect() as conn:
            return load_master_data(conn)

    async def replace_master_data(self, meters: Sequence[Meter], customers: Sequence[UsageCustomer]) -> SyncResult:
        return await asyncio.to_thread(self._replace_master_data, list(meters), list(customers))

    def _replace_master_data(self, meters: list[Meter], customers: list[UsageCustomer]) -> SyncResult:
        now = _now()
        with self.engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                # Two syncs at once would each delete what the other has not committed yet and
                # then both insert: one replacement at a time (readers are not held up).
                conn.execute(sa.text("LOCK TABLE usage_meters, usage_customers IN SHARE ROW EXCLUSIVE MODE"))
            known = set(conn.execute(sa.select(usage_customers.c.customer)).scalars())
            conn.execute(usage_meters.delete())
            conn.execute(usage_customers.delete())
            if meters:
                conn.execute(
                    usage_meters.insert(),
                    [{"event_name": m.event_name, "meter": m.model_dump_json(), "updated_at": now} for m in meters],
                )
            if customers:
                conn.execute(
                    usage_customers.insert(),
                    [
                        {
                            "customer": c.customer,
                            "subscription_id": c.subscription_id,
                            "legal_entity": c.legal_entity,
                            "usage_customer": c.model_dump_json(),
                            "updated_at": now,
                        }
                        for c in customers
                    ],
                )
        self.refresh()
        removed = sorted(known - {c.customer for c in customers})
        return SyncResult(meters=len(meters), customers=len(customers), removed_customers=removed)

    async def upsert_meters(self, meters: Sequence[Meter]) -> None:
        await asyncio.to_thread(
            self._upsert,
            usage_meters,
            [{"event_name": m.event_name, "meter": m.model_dump_json(), "updated_at": _now()} for m in meters],
            ["event_name"],
        )

    async def upsert_customers(self, customers: Sequence[UsageCustomer]) -> None:
        rows = [
            {
                "customer": c.customer,
                "subscription_id": c.subscription_id,
                "legal_entity": c.legal_entity,
                "usage_customer": c.model_dump_json(),
                "updated_at": _now(),
            }
            for c in customers
        ]
        await asyncio.to_thread(self._upsert, usage_customers, rows, ["customer"])

    def _upsert(self, table: sa.Table, rows: list[dict[str, Any]], keys: list[str]) -> None:
        if rows:
            statement = self._insert(table)
            statement = statement.on_conflict_do_update(
                index_elements=keys, set_={name: statement.excluded[name] for name in rows[0] if name not in keys}
            )
            with self.engine.begin() as conn:
                conn.execute(statement, rows)
        self.refresh()

    # -- the quarantine -------------------------------------------------------------------------

    async def quarantine(
        self, *, status: str = "open", reason: str = "", customer: str = "", limit: int = 1000
    ) -> list[QuarantinedEvent]:
        """Quarantined events, oldest first; status "" lists every status."""
        query = sa.select(usage_quarantine).order_by(usage_quarantine.c.id).limit(limit)
        if status:
            query = query.where(usage_quarantine.c.status == status)
        if reason:
            query = query.where(usage_quarantine.c.reason == reason)
        if customer:
            # The raw event holds the customer; the quarantine is small enough to filter here.
            return [
                q
                for q in await asyncio.to_thread(self._quarantined, query.limit(None))
                if q.event.get("customer") == customer
            ][:limit]
        return await asyncio.to_thread(self._quarantined, query)

    def _quarantined(self, query: sa.Select[Any]) -> list[QuarantinedEvent]:
        with self.engine.connect() as conn:
            return [self._quarantined_row(row) for row in conn.execute(query).mappings()]

    @staticmethod
    def _quarantined_row(row: sa.RowMapping) -> QuarantinedEvent:
        return QuarantinedEvent(
            id=row["id"],
            received_at=_aware(row["received_at"]) or _now(),
            source=row["source"],
            identifier=row["identifier"],
            event=json.loads(row["event"]),
            reason=row["reason"],
            message=row["message"],
            status=row["status"],
            resolved_at=_aware(row["resolved_at"]),
            resolved_by=row["resolved_by"],
            resolution=row["resolution"],
        )

    async def replay(
        self, ids: Sequence[int] = (), *, replay_all: bool = False, by: str, now: datetime
    ) -> list[tuple[int, EventVerdict]]:
        """Validate open quarantined events again against the master data as it is now: a valid
        one is counted (once: a duplicate is resolved too) and leaves the queue; one still
        invalid stays open with its new reason. The ids, or every open one with `replay_all`."""
        if not ids and not replay_all:
            raise QuarantineError("name the quarantined events to replay, or replay all of them")
        return await asyncio.to_thread(self._replay, list(ids), replay_all, by, now)

    def _replay(self, ids: list[int], replay_all: bool, by: str, now: datetime) -> list[tuple[int, EventVerdict]]:
        query = sa.select(usage_quarantine).where(usage_quarantine.c.status == "open").order_by(usage_quarantine.c.id)
        if not replay_all:
            query = query.where(usage_quarantine.c.id.in_(ids))
        items = self._quarantined(query)
        if not replay_all:
            missing = sorted(set(ids) - {q.id for q in items})
            if missing:
                raise QuarantineError(f"no open quarantined event with id {', '.join(map(str, missing))}")
        self.refresh()
        results: list[tuple[int, EventVerdict]] = []
        for start in range(0, len(items), 1000):
            results.extend(self._replay_batch(items[start : start + 1000], by, now))
        return results

    def _replay_batch(self, items: list[QuarantinedEvent], by: str, now: datetime) -> list[tuple[int, EventVerdict]]:
        unreadable: list[tuple[int, EventVerdict]] = []
        readable: list[QuarantinedEvent] = []
        events: list[UsageEvent] = []
        for item in items:
            try:
                events.append(UsageEvent.model_validate(item.event))
                readable.append(item)
            except ValidationError as bad:  # kept before a rule that now refuses it: it stays open
                problem = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in bad.errors())
                verdict = EventVerdict(
                    identifier=item.identifier, outcome=EventOutcome.REFUSED, reason=Refusal.INVALID_ID, message=problem
                )
                unreadable.append((item.id, verdict))
        if not readable:
            return unreadable
        items = readable
        for _ in range(3):
            master = self.master_data()
            plan = self._plan(events, master, by, _now(), now)
            plan.refused = []  # still invalid: they stay where they are, with the new reason
            self._ensure_partitions({row["period"] for row in plan.rows})
            try:
                written = self._retry(partial(self._write_replay, plan, master, items, by), "the replay")
            except _StaleMasterData:
                self.refresh()
                continue
            verdicts = self._answer(plan, written)
            return list(zip((q.id for q in items), verdicts, strict=True)) + unreadable
        raise UsageUnavailable("periods kept closing while the replay was written; replay again")

    def _write_replay(
        self, plan: _Plan, master: MasterData, items: list[QuarantinedEvent], by: str
    ) -> set[tuple[str, str]]:
        with self.engine.begin() as conn:
            written = self._write_in(conn, plan, master)
            resolved_at = _now()
            answered = self._answer(plan, written)
            for item, verdict in zip(items, answered, strict=True):
                if verdict.outcome is EventOutcome.REFUSED:
                    values: dict[str, Any] = {
                        "reason": (verdict.reason or Refusal.INVALID_VALUE).value,
                        "message": verdict.message,
                    }
                else:
                    resolution = (
                        f"replayed: counted in {verdict.period}"
                        if verdict.outcome is EventOutcome.ACCEPTED
                        else f"replayed: {verdict.message}"
                    )
                    values = {
                        "status": "replayed",
                        "resolved_at": resolved_at,
                        "resolved_by": by,
                        "resolution": resolution,
                    }
                conn.execute(
                    usage_quarantine.update()
                    .where(usage_quarantine.c.id == item.id, usage_quarantine.c.status == "open")
                    .values(**values)
                )
        return written

    async def discard(self, ids: Sequence[int], *, by: str, reason: str) -> int:
        """Take open events out of the queue without counting them; who and why are recorded."""
        if not reason.strip():
            raise QuarantineError("a discarded event needs a reason")
        if not by.strip():
            raise QuarantineError("say who discards (--as NAME)")
        if not ids:
            raise QuarantineError("name the quarantined events to discard")
        return await asyncio.to_thread(self._discard, list(ids), by, reason.strip())

    def _discard(self, ids: list[int], by: str, reason: str) -> int:
        with self.engine.begin() as conn:
            found = set(
                conn.execute(
                    sa.select(usage_quarantine.c.id).where(
                        usage_quarantine.c.id.in_(ids), usage_quarantine.c.status == "open"
                    )
                ).scalars()
            )
            missing = sorted(set(ids) - found)
            if missing:
                raise QuarantineError(f"no open quarantined event with id {', '.join(map(str, missing))}")
            conn.execute(
                usage_quarantine.update()
                .where(usage_quarantine.c.id.in_(ids))
                .values(status="discarded", resolved_at=_now(), resolved_by=by, resolution=reason)
            )
        return len(found)

    # -- API keys -------------------------------------------------------------------------------

    async def create_key(self, name: str) -> str:
        """A new key for a sending system: returned once, only its SHA-256 is kept."""
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", name):
            raise QuarantineError(f"an API key's name is 1-64 letters, digits, '.', '_' or '-': {name!r}")
        secret = KEY_PREFIX + secrets.token_urlsafe(32)
        row = {"name": name, "key_sha256": hashlib.sha256(secret.encode()).hexdigest(), "created_at": _now()}

        def create() -> None:
            with self.engine.begin() as conn:
                created = conn.execute(
                    self._insert(usage_api_keys).values(**row).on_conflict_do_nothing().returning(usage_api_keys.c.name)
                ).first()
                if created is None:
                    raise QuarantineError(f"an API key named {name} exists already (revoked keys keep their name)")
            self._keys = None

        await asyncio.to_thread(create)
        return secret

    async def keys(self) -> list[ApiKey]:
        def read() -> list[ApiKey]:
            with self.engine.connect() as conn:
                rows = conn.execute(
                    sa.select(usage_api_keys.c.name, usage_api_keys.c.created_at, usage_api_keys.c.revoked_at).order_by(
                        usage_api_keys.c.name
                    )
                ).all()
            return [
                ApiKey(name=r.name, created_at=_aware(r.created_at) or _now(), revoked_at=_aware(r.revoked_at))
                for r in rows
            ]

        return await asyncio.to_thread(read)

    async def revoke_key(self, name: str) -> bool:
        """Revoke an active key; False when there is no active key of that name."""

        def revoke() -> bool:
            with self.engine.begin() as conn:
                result = conn.execute(
                    usage_api_keys.update()
                    .where(usage_api_keys.c.name == name, usage_api_keys.c.revoked_at.is_(None))
                    .values(revoked_at=_now())
                )
            self._keys = None
            return result.rowcount > 0

        return await asyncio.to_thread(revoke)

    async def authenticate(self, key: str) -> str | None:
        """The name of the sending system whose active key this is, or None. Keys are held in
        memory (read again after `refresh_seconds`, or at once after a revocation in this
        process). An unknown key reads them again, at most once a second: a key created a
        moment ago (by the CLI, in another process) works at once, and guessing keys costs
        the guesser a second a try, never the database a read a request."""
        digest = hashlib.sha256(key.encode("utf-8", "surrogateescape")).digest()
        found = self._match(await asyncio.to_thread(self._active_keys), digest)
        if found is None:
            # The wait holds no thread: a flood of wrong keys cannot starve the right ones.
            async with self._key_reload:
                await asyncio.sleep(max(0.0, self._keys_loaded + UNKNOWN_KEY_RELOAD_SECONDS - time.monotonic()))
                found = self._match(await asyncio.to_thread(self._active_keys, force=True), digest)
        return found

    @staticmethod
    def _match(keys: list[tuple[str, bytes]], digest: bytes) -> str | None:
        # Every stored hash is compared, in constant time each, so the answer's timing says nothing.
        found = None
        for name, stored in keys:
            if hmac.compare_digest(stored, digest):
                found = name
        return found

    def _active_keys(self, *, force: bool = False) -> list[tuple[str, bytes]]:
        keys = self._keys
        if keys is None or force or time.monotonic() - self._keys_loaded > self.refresh_seconds:

            def read() -> list[tuple[str, bytes]]:
                with self.engine.connect() as conn:
                    rows = conn.execute(
                        sa.select(usage_api_keys.c.name, usage_api_keys.c.key_sha256).where(
                            usage_api_keys.c.revoked_at.is_(None)
                        )
                    ).all()
                return [(r.name, bytes.fromhex(r.key_sha256)) for r in rows]

            keys = self._retry(read, "API keys")
            self._keys, self._keys_loaded = keys, time.monotonic()
        return keys

    # -- totals ---------------------------------------------------------------------------------

    async def period_totals(self, period: str, *, customer: str = "") -> list[UsageTotal]:
        """What the accepted events of a period add up to, per customer and meter."""
        return await asyncio.to_thread(period_totals, self.engine, period, customer)

    async def counts(self) -> dict[str, int]:
        """Rows in the events and the quarantine (for tests and the bench: what a batch changed)."""

        def read() -> dict[str, int]:
            with self.engine.connect() as conn:
                return {
                    "events": conn.execute(sa.select(sa.func.count()).select_from(usage_events)).scalar_one(),
                    "quarantine": conn.execute(sa.select(sa.func.count()).select_from(usage_quarantine)).scalar_one(),
                }

        return await asyncio.to_thread(read)


def period_totals(engine: sa.Engine, period: str, customer: str = "") -> list[UsageTotal]:
    e = usage_events
    query = (
        sa.select(
            e.c.customer,
            e.c.meter,
            sa.func.sum(e.c.value).label("quantity"),
            sa.func.count().label("events"),
            sa.func.sum(sa.case((e.c.late_from != "", 1), else_=0)).label("late"),
        )
        .where(e.c.period == period)
        .group_by(e.c.customer, e.c.meter)
        .order_by(e.c.customer, e.c.meter)
    )
    if customer:
        query = query.where(e.c.customer == customer)
    with engine.connect() as conn:
        rows = conn.execute(query).all()
        meters = {
            row.event_name: Meter.model_validate_json(row.meter)
            for row in conn.execute(sa.select(usage_meters.c.event_name, usage_meters.c.meter))
        }
    totals = []
    for row in rows:
        meter = meters.get(row.meter)
        counted = meter is not None and meter.aggregation is Aggregation.COUNT
        totals.append(
            UsageTotal(
                customer=row.customer,
                meter=row.meter,
                period=period,
                quantity=int(row.events if counted else row.quantity),
                events=int(row.events),
                late_events=int(row.late or 0),
            )
        )
    return totals


# -- the release side (UsageStorePort) ----------------------------------------------------------


def _release_row(release: UsageRelease) -> dict[str, Any]:
    currency = release.currency
    return {
        "workflow_id": release.workflow_id,
        "subscription_id": release.subscription_id,
        "customer": release.customer,
        "legal_entity": release.legal_entity,
        "period": release.period,
        "invoice_id": release.invoice_id,
        "currency": currency,
        "quantities": json.dumps(release.quantities, sort_keys=True),
        "subtotal_minor": release.subtotal.minor,
        "credit_minor": release.credit.minor,
        "tax_minor": release.tax.minor,
        "total_minor": release.total.minor,
        "released_at": release.released_at,
        "journal_entries": json.dumps(release.journal_entries),
    }


def _release_of(row: Any) -> UsageRelease:
    currency = row.currency
    return UsageRelease(
        workflow_id=row.workflow_id,
        subscription_id=row.subscription_id,
        customer=row.customer,
        legal_entity=row.legal_entity,
        period=row.period,
        invoice_id=row.invoice_id,
        currency=currency,
        quantities=json.loads(row.quantities),
        subtotal=Money.from_minor(row.subtotal_minor, currency),
        credit=Money.from_minor(row.credit_minor, currency),
        tax=Money.from_minor(row.tax_minor, currency),
        total=Money.from_minor(row.total_minor, currency),
        released_at=_aware(row.released_at) or _now(),
        journal_entries=json.loads(row.journal_entries),
    )


class SqlUsageStore:
    """UsageStorePort over SQLAlchemy (SQLite file or PostgreSQL)."""

    def __init__(self, database_url: str, *, migrate: bool = True):
        if migrate:
            upgrade(database_url)
        self.engine = engine_for(database_url)
        self._insert = dialect_insert(self.engine)

    async def aclose(self) -> None:
        self.engine.dispose()

    async def totals(self, customer: str, period: str) -> list[UsageTotal]:
        """Per meter, summed in the database (late adjustments carried into the period included)."""
        return await asyncio.to_thread(period_totals, self.engine, period, customer)

    async def close_period(self, customer: str, period: str) -> None:
        await asyncio.to_thread(self._close, customer, period)

    def _close(self, customer: str, period: str) -> None:
        with self.engine.begin() as conn:
            if self.engine.dialect.name == "postgresql":
                # Waits for the ingest transactions in flight (they hold ROW EXCLUSIVE on the
                # events) and holds new ones back until the period is closed: an event is
                # either counted before the close, or sees it and counts as late.
                conn.execute(sa.text("LOCK TABLE usage_events IN SHARE MODE"))
            conn.execute(
                self._insert(usage_closed_periods)
                .values(customer=customer, period=period, closed_at=_now())
                .on_conflict_do_nothing()
            )

    async def reopen_period(self, customer: str, period: str) -> None:
        await asyncio.to_thread(
            self._execute,
            usage_closed_periods.delete().where(
                usage_closed_periods.c.customer == customer, usage_closed_periods.c.period == period
            ),
        )

    async def closed_periods(self, customer: str) -> list[str]:
        def read() -> list[str]:
            with self.engine.connect() as conn:
                return list(
                    conn.execute(
                        sa.select(usage_closed_periods.c.period)
                        .where(usage_closed_periods.c.customer == customer)
                        .order_by(usage_closed_periods.c.period)
                    ).scalars()
                )

        return await asyncio.to_thread(read)

    async def history(self, customer: str, meter: str, *, before: str, periods: int) -> list[int]:
        """Released quantities of the meter per period (0 where a release billed none of it), oldest first."""

        def read() -> list[int]:
            r = usage_releases
            with self.engine.connect() as conn:
                rows = conn.execute(
                    sa.select(r.c.period, r.c.quantities)
                    .where(r.c.customer == customer, r.c.period < before)
                    .order_by(r.c.period.desc())
                ).all()
            by_period: dict[str, int] = {}
            for period, quantities in rows:
                if period not in by_period and len(by_period) >= periods:
                    break
                by_period[period] = by_period.get(period, 0) + int(json.loads(quantities).get(meter, 0))
            return [by_period[p] for p in sorted(by_period)]

        return await asyncio.to_thread(read)

    async def previous_release(self, customer: str, *, before: str) -> UsageRelease | None:
        def read() -> UsageRelease | None:
            r = usage_releases
            with self.engine.connect() as conn:
                row = conn.execute(
                    sa.select(r)
                    .where(r.c.customer == customer, r.c.period < before)
                    .order_by(r.c.period.desc(), r.c.released_at.desc())
                    .limit(1)
                ).first()
            return None if row is None else _release_of(row)

        return await asyncio.to_thread(read)

    async def record_release(self, release: UsageRelease) -> None:
        row = _release_row(release)
        statement = self._insert(usage_releases).values(**row)
        statement = statement.on_conflict_do_update(
            index_elements=[usage_releases.c.workflow_id],
            set_={name: statement.excluded[name] for name in row if name != "workflow_id"},
        )
        await asyncio.to_thread(self._execute, statement)

    async def delete_release(self, workflow_id: str) -> None:
        await asyncio.to_thread(
            self._execute, usage_releases.delete().where(usage_releases.c.workflow_id == workflow_id)
        )

    async def releases(
        self, *, legal_entity: str, period: str, cursor: str = "", limit: int = 1000
    ) -> tuple[list[UsageRelease], str]:
        """In (invoice id, workflow id) order; the cursor is the last row's pair, as JSON."""

        def read() -> tuple[list[UsageRelease], str]:
            r = usage_releases
            query = (
                sa.select(r)
                .where(r.c.legal_entity == legal_entity, r.c.period == period)
                .order_by(r.c.invoice_id, r.c.workflow_id)
                .limit(limit + 1)
            )
            if cursor:
                invoice_id, workflow_id = json.loads(cursor)
                query = query.where(sa.tuple_(r.c.invoice_id, r.c.workflow_id) > sa.tuple_(invoice_id, workflow_id))
            with self.engine.connect() as conn:
                rows = conn.execute(query).all()
            page = [_release_of(row) for row in rows[:limit]]
            more = len(rows) > limit
            return page, json.dumps([page[-1].invoice_id, page[-1].workflow_id]) if more and page else ""

        return await asyncio.to_thread(read)

    def _execute(self, statement: sa.Executable) -> None:
        with self.engine.begin() as conn:
            conn.execute(statement)
