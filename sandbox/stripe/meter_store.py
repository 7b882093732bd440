"""The accepted meter events in their own table (store.meter_events): recording, the
identifier's 24-hour uniqueness, cancellation, and a meter's aggregate over a time range."""

from __future__ import annotations

import sqlalchemy as sa

from sandbox.store import Tx, meter_events

# Stripe enforces an identifier's uniqueness over a rolling period of at least 24 hours, and
# cancels an event only within 24 hours of receiving it.
DAY = 86400


def record(
    tx: Tx, *, account: str, event_name: str, identifier: str, customer: str, value: int, timestamp: int, received: int
) -> None:
    tx.conn.execute(
        meter_events.insert().values(
            account=account,
            event_name=event_name,
            identifier=identifier,
            customer=customer,
            value=value,
            timestamp=timestamp,
            received=received,
            cancelled=False,
        )
    )


def _recent(account: str, event_name: str, identifier: str, now: int) -> list[sa.ColumnElement[bool]]:
    c = meter_events.c
    return [
        c.account == account,
        c.event_name == event_name,
        c.identifier == identifier,
        c.received > now - DAY,
    ]


def seen_recently(tx: Tx, account: str, event_name: str, identifier: str, now: int) -> bool:
    """Whether an event with this identifier arrived in the last 24 hours (cancelled or not:
    a cancelled identifier is not free for another event)."""
    query = sa.select(meter_events.c.seq).where(*_recent(account, event_name, identifier, now)).limit(1)
    return tx.conn.execute(query).first() is not None


def cancel(tx: Tx, account: str, event_name: str, identifier: str, now: int) -> bool:
    """Cancel the event received in the last 24 hours under the identifier; False if none."""
    result = tx.conn.execute(
        meter_events.update()
        .where(*_recent(account, event_name, identifier, now), meter_events.c.cancelled.is_(False))
        .values(cancelled=True)
    )
    return bool(result.rowcount)


def aggregate(
    tx: Tx, account: str, event_name: str, customer: str, start: int, end: int, formula: str
) -> tuple[int, int]:
    """(aggregated value, number of events) of the customer's events with timestamps in
    [start, end), cancelled ones left out: sum, count, or the last event's value (by
    timestamp, then arrival)."""
    c = meter_events.c
    where = (
        c.account == account,
        c.event_name == event_name,
        c.customer == customer,
        c.timestamp >= start,
        c.timestamp < end,
        c.cancelled.is_(False),
    )
    total, events = tx.conn.execute(
        sa.select(sa.func.coalesce(sa.func.sum(c.value), 0), sa.func.count()).where(*where)
    ).one()
    if formula == "count":
        return int(events), int(events)
    if formula == "last":
        last = tx.conn.execute(
            sa.select(c.value).where(*where).order_by(c.timestamp.desc(), c.seq.desc()).limit(1)
        ).first()
        return (0 if last is None else int(last[0])), int(events)
    return int(total), int(events)
