"""The language of usage to invoice: meters, the customers that use them, events, their
verdicts, the period totals, the review's findings and what a release invoiced.

Usage periods are calendar months in UTC ("YYYY-MM"), the billing period of monthly metered
subscriptions anchored on the first of the month. Meter values are whole numbers, as
Stripe's meters take them.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from enum import StrEnum

from pydantic import ConfigDict, Field, StrictInt, StrictStr

from canonical.models import ApproverRole, Model
from canonical.money import Money
from canonical.requests import BusinessId

# Stripe's limit on a meter event identifier.
MAX_IDENTIFIER = 100
# The largest batch the ingress takes in one request.
MAX_BATCH = 1000


# -- periods ---------------------------------------------------------------------------------


def period_of(moment: datetime) -> str:
    """The usage period ("YYYY-MM", UTC) a moment falls in."""
    if moment.tzinfo is None:
        raise ValueError("usage timestamps carry a time zone")
    return f"{moment.astimezone(UTC):%Y-%m}"


def period_start(period: str) -> datetime:
    year, month = (int(x) for x in period.split("-"))
    return datetime(year, month, 1, tzinfo=UTC)


def period_end(period: str) -> datetime:
    """The first moment after the period (exclusive)."""
    start = period_start(period)
    return datetime(start.year + start.month // 12, start.month % 12 + 1, 1, tzinfo=UTC)


def next_period(period: str) -> str:
    return period_of(period_end(period))


def previous_period(period: str) -> str:
    return period_of(period_start(period) - timedelta(seconds=1))


def last_day(period: str) -> date:
    return (period_end(period) - timedelta(days=1)).date()


# -- master data -----------------------------------------------------------------------------


class Aggregation(StrEnum):
    SUM = "sum"
    COUNT = "count"


class Meter(Model):
    """What a meter measures: its Stripe event name is its key in o2c too."""

    event_name: str
    display_name: str
    unit: str = "units"  # how the review speaks of a quantity: "14,200 API calls"
    aggregation: Aggregation = Aggregation.SUM
    # Bounds on one event's value; an event outside them is refused (a broken producer).
    min_value: int = 0
    max_value: int | None = None
    # The spike limit for this meter (0.40 = hold above 1.4x the median); None: the policy's.
    spike_threshold: Decimal | None = None
    stripe_meter_id: str = ""
    active: bool = True


class MeteredPrice(Model):
    """A metered price on a subscription item: usage of `meter` billed at `unit_amount` per unit."""

    meter: str
    price_id: str
    item_id: str = ""
    unit_amount: Money  # per unit, may carry sub-cent precision only as Stripe's unit_amount_decimal does
    # The exact price per unit in major units of the currency (Stripe's unit_amount_decimal
    # can be finer than the minor unit, e.g. 0.0025 USD an API call: `unit_amount` is then
    # rounded half up, this is not). Rate with this one; None from older payloads.
    unit_amount_decimal: Decimal | None = None


class UsageCustomer(Model):
    """A billing customer with a metered subscription: who may send usage, billed where."""

    customer: str  # the billing customer id (cus_...)
    subscription_id: str
    currency: str
    legal_entity: str
    segment: str = "default"
    prices: list[MeteredPrice] = []
    # Usage before this moment is not billable on the subscription (refused as unknown).
    active_from: datetime | None = None

    def meters(self) -> set[str]:
        return {p.meter for p in self.prices}


# -- events ----------------------------------------------------------------------------------


class UsageEvent(Model):
    """One event as a producer sends it. Unknown fields and wrong types are refused."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    # The identifier is Stripe's (≤ MAX_IDENTIFIER) and the store's key; the customer names a
    # billing customer: both follow the business id rule.
    identifier: BusinessId
    meter: StrictStr = Field(min_length=1, max_length=100)
    customer: BusinessId
    # A JSON number. Whether it is finite, whole, non-negative and in the meter's bounds is
    # the validation's business (a refused event is quarantined with its reason, not lost).
    value: StrictInt | float
    timestamp: datetime = Field(strict=False)  # RFC 3339 with an offset
    dimensions: dict[StrictStr, StrictStr] = Field(default_factory=dict)


class EventOutcome(StrEnum):
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"  # the identifier was counted already in its period
    REFUSED = "refused"  # quarantined with its reason


class Refusal(StrEnum):
    UNKNOWN_CUSTOMER = "unknown_customer"
    UNKNOWN_METER = "unknown_meter"
    INVALID_VALUE = "invalid_value"  # not a finite, whole, non-negative number
    OUT_OF_BOUNDS = "out_of_bounds"
    FUTURE_TIMESTAMP = "future_timestamp"
    CLOSED_PERIOD = "closed_period"  # late, and the policy sends late events to the queue
    BEFORE_SUBSCRIPTION = "before_subscription"
    NAIVE_TIMESTAMP = "naive_timestamp"
    # Quarantined before the business id rule, with an identifier or customer it refuses:
    # a replay cannot count it (it stays in the queue, to be discarded).
    INVALID_ID = "invalid_id"


class EventVerdict(Model):
    identifier: str
    outcome: EventOutcome
    reason: Refusal | None = None
    message: str = ""  # in words, for the producer and the operator
    period: str = ""  # the period the event counts in (a late event's adjustment counts in the next)


class LatePolicy(StrEnum):
    NEXT_INVOICE = "next_invoice"  # counted in the next open period as an adjustment
    QUARANTINE = "quarantine"


class UsageTotal(Model):
    """What o2c counted for one customer, meter and period (accepted events only)."""

    customer: str
    meter: str
    period: str
    quantity: int
    events: int
    late_events: int = 0  # adjustments carried in from a closed period


# -- review ----------------------------------------------------------------------------------


class UsagePolicy(Model):
    """How usage is checked before it is billed and reviewed before it is released."""

    spike_threshold: Decimal = Decimal("0.40")
    segment_thresholds: dict[str, Decimal] = {}
    history_periods: int = Field(6, ge=1)
    # Optional noise guard: when above 0, a spike must also exceed this many scaled MADs.
    noise_mads: Decimal = Decimal(0)
    total_multiple: Decimal = Decimal("2.5")
    late_events: LatePolicy = LatePolicy.NEXT_INVOICE
    future_tolerance: timedelta = timedelta(minutes=5)
    # How long a release waits for billing's draft before it asks billing, and for how long.
    draft_poll: timedelta = timedelta(minutes=15)
    draft_wait: timedelta = timedelta(days=2)
    # A draft whose quantities do not match yet is read again (meter summaries lag).
    completeness_recheck: timedelta = timedelta(minutes=10)
    completeness_attempts: int = Field(6, ge=1)
    # o2c's rules for the meters billing defines (unit, bounds, spike limit), by event name.
    meters: list[Meter] = []

    def threshold(self, meter: Meter, segment: str) -> Decimal:
        if meter.spike_threshold is not None:
            return meter.spike_threshold
        return self.segment_thresholds.get(segment, self.spike_threshold)


class FindingRule(StrEnum):
    SPIKE = "spike"
    ZERO_BASELINE = "zero_baseline"
    FIRST_INVOICE = "first_invoice"
    TOTAL_JUMP = "total_jump"


class Finding(Model):
    """Why an invoice is held, in words with the numbers."""

    rule: FindingRule
    meter: str = ""
    text: str
    quantity: int | None = None
    median: Decimal | None = None
    mad: Decimal | None = None
    ratio: Decimal | None = None
    limit: Decimal | None = None


class Difference(Model):
    """Where billing's draft and o2c's count disagree."""

    meter: str
    counted: int
    billed: int | None  # None: the draft has no line for the meter
    text: str


class ReviewAction(StrEnum):
    APPROVE = "approve"
    ADJUST = "adjust"
    REMEASURE = "remeasure"  # reject for re-measurement


class UsageDecision(Model):
    """A reviewer's answer on a held usage invoice."""

    approver: str
    role: ApproverRole
    action: ReviewAction
    reason: str = ""
    credit: Money | None = None  # ADJUST: the credit line on the draft, positive


# -- reporting and releasing ----------------------------------------------------------------


class MeterReport(Model):
    """One meter event o2c sends to billing: a period total (or the delta that corrects it),
    named by an identifier derived from the aggregate so that a retry never counts twice."""

    identifier: str
    event_name: str
    customer: str
    value: int
    timestamp: datetime


class UsageRelease(Model):
    """What one released usage invoice billed: o2c's own record, for the next review's
    history, the previous total and reconciliation."""

    workflow_id: str
    subscription_id: str
    customer: str
    legal_entity: str
    period: str
    invoice_id: str
    currency: str
    quantities: dict[str, int]  # meter -> quantity billed
    subtotal: Money  # usage lines before credits and tax
    credit: Money
    tax: Money
    total: Money
    released_at: datetime
    journal_entries: list[str] = []
