"""Validation before anything is billed: the checks one event must pass to be counted.

The ingress runs these checks on every event it receives (about 10,000 a second at the
bench's goal), so the accepting path does only comparisons and dictionary look-ups: the
words of a refusal are built only when an event is refused. `EventValidator` binds the
master data once for a batch; `validate_event` is the same check with everything passed in.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from canonical.usage.models import (
    EventOutcome,
    EventVerdict,
    LatePolicy,
    Meter,
    Refusal,
    UsageCustomer,
    UsageEvent,
    UsagePolicy,
    next_period,
)


def validate_event(
    event: UsageEvent,
    *,
    meters: Mapping[str, Meter],
    customers: Mapping[str, UsageCustomer],
    closed_periods: frozenset[tuple[str, str]] | set[tuple[str, str]],
    open_period: Mapping[str, str],
    policy: UsagePolicy,
    now: datetime,
) -> EventVerdict:
    """ACCEPTED (with the period it counts in) or REFUSED with its reason in words. Never
    DUPLICATE: that is the store's answer, once the identifier is looked up.

    `closed_periods` holds (customer, period) pairs already released; `open_period` maps a
    customer to its earliest open period, where a late event's adjustment counts under
    LatePolicy.NEXT_INVOICE."""
    return EventValidator(
        meters=meters, customers=customers, closed_periods=closed_periods, open_period=open_period, policy=policy
    ).validate(event, now=now)


class EventValidator:
    """The master data of one batch (meters, customers, closed periods, the policy), bound
    once so that each event costs only its own checks."""

    __slots__ = ("_clock", "_closed", "_customers", "_late", "_meters", "_open", "_priced", "_tolerance")

    def __init__(
        self,
        *,
        meters: Mapping[str, Meter],
        customers: Mapping[str, UsageCustomer],
        closed_periods: frozenset[tuple[str, str]] | set[tuple[str, str]],
        open_period: Mapping[str, str],
        policy: UsagePolicy,
    ) -> None:
        self._meters = meters
        self._customers = customers
        self._closed = closed_periods
        self._open = open_period
        self._late = policy.late_events
        self._tolerance = policy.future_tolerance
        # customer -> the meters its subscription prices and its start in UTC, computed on
        # first use only: a batch usually names a handful of customers out of many.
        self._priced: dict[str, tuple[frozenset[str], datetime | None]] = {}
        # The last `now` seen and the latest moment it accepts, in UTC: a batch shares one clock.
        self._clock: tuple[datetime, datetime] | None = None

    def validate(self, event: UsageEvent, *, now: datetime) -> EventVerdict:
        """See `validate_event`; the checks run in the order of their reasons there."""
        # Comparing aware datetimes of different zones asks each for its offset; in UTC
        # (the same tzinfo object) they compare as plain numbers. Hence one conversion here.
        moment = event.timestamp
        zone = moment.tzinfo
        if zone is None or (zone is not UTC and zone.utcoffset(moment) is None):
            return _refused(
                event,
                Refusal.NAIVE_TIMESTAMP,
                f"timestamp {moment.isoformat()} has no time zone; send RFC 3339 with an offset (Z or +hh:mm)",
            )
        meter = self._meters.get(event.meter)
        if meter is None or not meter.active:
            state = "is not active" if meter is not None else "is not a meter o2c knows"
            return _refused(event, Refusal.UNKNOWN_METER, f"meter {event.meter!r} {state}")
        customer = self._customers.get(event.customer)
        if customer is None:
            return _refused(
                event, Refusal.UNKNOWN_CUSTOMER, f"customer {event.customer!r} has no metered subscription in o2c"
            )
        priced, starts = self._subscription(customer)
        utc = moment if zone is UTC else moment.astimezone(UTC)
        if event.meter not in priced:
            return _refused(
                event,
                Refusal.UNKNOWN_METER,
                f"customer {customer.customer}'s subscription {customer.subscription_id} does not bill "
                f"meter {event.meter!r}",
            )
        if starts is not None and utc < starts:
            return _refused(
                event,
                Refusal.BEFORE_SUBSCRIPTION,
                f"timestamp {moment.isoformat()} is before customer {customer.customer}'s subscription "
                f"{customer.subscription_id} bills usage (from {starts.isoformat()})",
            )
        value = event.value
        if isinstance(value, float):  # a JSON number with a fraction or exponent (bool is refused by the model)
            if not math.isfinite(value):
                return _refused(event, Refusal.INVALID_VALUE, f"value {value} is not a finite number")
            if not value.is_integer():
                return _refused(
                    event,
                    Refusal.INVALID_VALUE,
                    f"value {value!r} is not a whole number; Stripe meters count whole units",
                )
        if value < 0:
            return _refused(
                event,
                Refusal.INVALID_VALUE,
                f"value {_number(value)} is negative; a meter counts zero or more units",
            )
        if value < meter.min_value:
            return _refused(
                event,
                Refusal.OUT_OF_BOUNDS,
                f"value {_number(value)} is below meter {meter.event_name}'s minimum of {meter.min_value:,} per event",
            )
        if meter.max_value is not None and value > meter.max_value:
            return _refused(
                event,
                Refusal.OUT_OF_BOUNDS,
                f"value {_number(value)} is above meter {meter.event_name}'s maximum of {meter.max_value:,} per event",
            )
        if utc > self._latest(now):
            return _refused(
                event,
                Refusal.FUTURE_TIMESTAMP,
                f"timestamp {moment.isoformat()} is {_duration(moment - now)} ahead of o2c's clock ({now.isoformat()}); "
                f"at most {_duration(self._tolerance)} ahead is accepted",
            )
        period = f"{utc.year:04d}-{utc.month:02d}"
        if not self._is_late(customer.customer, period):
            return EventVerdict(identifier=event.identifier, outcome=EventOutcome.ACCEPTED, period=period)
        if self._late is LatePolicy.QUARANTINE:
            return _refused(
                event,
                Refusal.CLOSED_PERIOD,
                f"period {period} is closed for customer {customer.customer} (its usage invoice is released); "
                "late events wait in the exception queue by policy",
            )
        counted_in = self._adjustment_period(customer.customer, period)
        return EventVerdict(
            identifier=event.identifier,
            outcome=EventOutcome.ACCEPTED,
            period=counted_in,
            message=f"late adjustment from period {period} (already invoiced), counted in {counted_in}",
        )

    def _subscription(self, customer: UsageCustomer) -> tuple[frozenset[str], datetime | None]:
        known = self._priced.get(customer.customer)
        if known is None:
            starts = customer.active_from
            if starts is not None:
                # The model does not insist on a zone; o2c's periods are UTC, so a naive start is
                # read as UTC rather than in the machine's local time.
                starts = starts.replace(tzinfo=UTC) if starts.tzinfo is None else starts.astimezone(UTC)
            known = self._priced[customer.customer] = (frozenset(customer.meters()), starts)
        return known

    def _latest(self, now: datetime) -> datetime:
        clock = self._clock
        if clock is None or clock[0] is not now:
            clock = self._clock = (now, (now + self._tolerance).astimezone(UTC))
        return clock[1]

    def _is_late(self, customer: str, period: str) -> bool:
        # A period before the customer's earliest open one is not open either, even when the
        # caller's set of closed periods does not list it ("YYYY-MM" sorts by time).
        if (customer, period) in self._closed:
            return True
        earliest = self._open.get(customer)
        return earliest is not None and period < earliest

    def _adjustment_period(self, customer: str, period: str) -> str:
        """The customer's earliest open period, or else the first period after the event's
        that is not closed."""
        earliest = self._open.get(customer)
        if earliest is not None and earliest > period:
            return earliest
        later = next_period(period)
        while (customer, later) in self._closed:
            later = next_period(later)
        return later


def _refused(event: UsageEvent, reason: Refusal, message: str) -> EventVerdict:
    return EventVerdict(identifier=event.identifier, outcome=EventOutcome.REFUSED, reason=reason, message=message)


def _number(value: int | float) -> str:
    """A whole value with thousands separators (a float here is already known to be whole)."""
    return f"{int(value):,}"


def _duration(span: timedelta) -> str:
    """A span in words: "5 minutes", "5 minutes 1 second", "5 minutes 0.25 seconds"."""
    seconds, micros = divmod(span // timedelta(microseconds=1), 1_000_000)
    parts = []
    for name, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count} {name}{'s' if count != 1 else ''}")
    if micros:
        parts.append(f"{seconds}.{micros:06d}".rstrip("0") + " seconds")
    elif seconds or not parts:
        parts.append(f"{seconds} second{'s' if seconds != 1 else ''}")
    return " ".join(parts)
