"""Validation of one usage event: every reason, in order, with its words and its boundaries."""

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from canonical.money import Money
from canonical.usage import EventValidator, validate_event
from canonical.usage.models import (
    EventOutcome,
    LatePolicy,
    Meter,
    MeteredPrice,
    Refusal,
    UsageCustomer,
    UsageEvent,
    UsagePolicy,
    period_of,
)

NOW = datetime(2026, 3, 15, 12, 0, tzinfo=UTC)
API = Meter(event_name="api_calls", display_name="API calls", unit="API calls", max_value=1_000_000)
STORAGE = Meter(event_name="storage_gb", display_name="Storage", unit="GB", min_value=1, max_value=10_000)
RETIRED = Meter(event_name="legacy_calls", display_name="Legacy", active=False)
SEATS = Meter(event_name="seats", display_name="Seats")
METERS = {m.event_name: m for m in (API, STORAGE, RETIRED, SEATS)}


def price(meter: str) -> MeteredPrice:
    return MeteredPrice(meter=meter, price_id=f"price_{meter}", unit_amount=Money.of("0.01", "USD"))


ACME = UsageCustomer(
    customer="cus_acme",
    subscription_id="sub_acme",
    currency="USD",
    legal_entity="US01",
    prices=[price("api_calls"), price("storage_gb"), price("legacy_calls")],
    active_from=datetime(2026, 1, 1, tzinfo=UTC),
)
CUSTOMERS = {ACME.customer: ACME}


def event(**changes) -> UsageEvent:
    fields = {"identifier": "evt-1", "meter": "api_calls", "customer": "cus_acme", "value": 10, "timestamp": NOW}
    return UsageEvent.model_validate(fields | changes)


def check(ev: UsageEvent, *, closed=frozenset(), open_period=None, policy=None, now=NOW):
    return validate_event(
        ev,
        meters=METERS,
        customers=CUSTOMERS,
        closed_periods=closed,
        open_period=open_period or {},
        policy=policy or UsagePolicy(),
        now=now,
    )


def test_an_ordinary_event_is_accepted_in_the_period_of_its_timestamp():
    verdict = check(event())
    assert verdict.outcome is EventOutcome.ACCEPTED
    assert verdict.reason is None
    assert verdict.period == "2026-03"
    assert verdict.message == ""
    assert verdict.identifier == "evt-1"


def test_a_json_event_with_an_rfc3339_offset_is_accepted():
    ev = UsageEvent.model_validate_json(
        '{"identifier": "e", "meter": "api_calls", "customer": "cus_acme", "value": 3,'
        ' "timestamp": "2026-03-01T00:30:00+01:00"}'
    )
    # 00:30 at +01:00 is 23:30 on the last day of February in UTC.
    assert check(ev).period == "2026-02"


@pytest.mark.parametrize(
    ("timestamp", "period"),
    [
        (datetime(2026, 3, 1, 0, 0, tzinfo=UTC), "2026-03"),
        (datetime(2026, 2, 28, 23, 59, 59, 999999, tzinfo=UTC), "2026-02"),
        (datetime(2026, 3, 1, 0, 59, 59, tzinfo=timezone(timedelta(hours=1))), "2026-02"),
        (datetime(2026, 3, 1, 1, 0, tzinfo=timezone(timedelta(hours=1))), "2026-03"),
        (datetime(2026, 2, 28, 19, 0, tzinfo=timezone(timedelta(hours=-5))), "2026-03"),
        (datetime(2026, 2, 28, 18, 59, 59, tzinfo=timezone(timedelta(hours=-5))), "2026-02"),
        (datetime(2026, 3, 1, 5, 29, tzinfo=timezone(timedelta(hours=5, minutes=30))), "2026-02"),
        (datetime(2026, 1, 1, 0, 0, tzinfo=UTC), "2026-01"),
    ],
)
def test_the_period_is_the_utc_calendar_month(timestamp, period):
    assert check(event(timestamp=timestamp)).period == period


def refused(verdict, reason: Refusal) -> str:
    assert verdict.outcome is EventOutcome.REFUSED
    assert verdict.reason is reason
    assert verdict.period == ""
    return verdict.message


def test_a_naive_timestamp_is_refused_first():
    # Also an unknown meter and customer: the time zone is checked before anything else.
    ev = event(timestamp=datetime(2026, 3, 1, 10, 0), meter="nope", customer="cus_nobody")
    message = refused(check(ev), Refusal.NAIVE_TIMESTAMP)
    assert message == "timestamp 2026-03-01T10:00:00 has no time zone; send RFC 3339 with an offset (Z or +hh:mm)"


def test_an_unknown_meter_is_refused_before_an_unknown_customer():
    message = refused(check(event(meter="gpu_hours", customer="cus_nobody")), Refusal.UNKNOWN_METER)
    assert message == "meter 'gpu_hours' is not a meter o2c knows"


def test_an_inactive_meter_is_unknown():
    message = refused(check(event(meter="legacy_calls")), Refusal.UNKNOWN_METER)
    assert message == "meter 'legacy_calls' is not active"


def test_an_unknown_customer_is_refused():
    message = refused(check(event(customer="cus_nobody", value=-1)), Refusal.UNKNOWN_CUSTOMER)
    assert message == "customer 'cus_nobody' has no metered subscription in o2c"


def test_a_meter_the_subscription_does_not_price_is_unknown_for_that_customer():
    message = refused(check(event(meter="seats")), Refusal.UNKNOWN_METER)
    assert message == "customer cus_acme's subscription sub_acme does not bill meter 'seats'"


def test_usage_before_the_subscription_bills_it_is_refused():
    ev = event(timestamp=datetime(2025, 12, 31, 23, 59, 59, tzinfo=UTC), value=-5)
    message = refused(check(ev), Refusal.BEFORE_SUBSCRIPTION)
    assert message == (
        "timestamp 2025-12-31T23:59:59+00:00 is before customer cus_acme's subscription sub_acme bills usage "
        "(from 2026-01-01T00:00:00+00:00)"
    )
    assert check(event(timestamp=datetime(2026, 1, 1, tzinfo=UTC))).outcome is EventOutcome.ACCEPTED


def test_a_customer_without_a_start_takes_any_past_usage():
    forever = ACME.model_copy(update={"active_from": None})
    verdict = validate_event(
        event(timestamp=datetime(2020, 1, 1, tzinfo=UTC)),
        meters=METERS,
        customers={"cus_acme": forever},
        closed_periods=set(),
        open_period={},
        policy=UsagePolicy(),
        now=NOW,
    )
    assert verdict.outcome is EventOutcome.ACCEPTED and verdict.period == "2020-01"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (5.5, "value 5.5 is not a whole number; Stripe meters count whole units"),
        (0.1, "value 0.1 is not a whole number; Stripe meters count whole units"),
        (float("nan"), "value nan is not a finite number"),
        (float("inf"), "value inf is not a finite number"),
        (float("-inf"), "value -inf is not a finite number"),
        (-1, "value -1 is negative; a meter counts zero or more units"),
        (-2500.0, "value -2,500 is negative; a meter counts zero or more units"),
        (-0.5, "value -0.5 is not a whole number; Stripe meters count whole units"),
    ],
)
def test_a_value_that_is_not_a_finite_whole_non_negative_number_is_invalid(value, message):
    # Also far in the future: the value is checked before the clock.
    assert refused(check(event(value=value, timestamp=NOW + timedelta(days=3))), Refusal.INVALID_VALUE) == message


@pytest.mark.parametrize("value", [0, 0.0, 7.0, 1e3, 1_000_000])
def test_whole_values_are_accepted_even_as_json_floats(value):
    assert check(event(value=value)).outcome is EventOutcome.ACCEPTED


def test_a_boolean_value_never_reaches_validation():
    with pytest.raises(ValueError):
        event(value=True)


@pytest.mark.parametrize(
    ("meter", "value", "message"),
    [
        ("api_calls", 1_000_001, "value 1,000,001 is above meter api_calls's maximum of 1,000,000 per event"),
        ("api_calls", 1e7, "value 10,000,000 is above meter api_calls's maximum of 1,000,000 per event"),
        ("storage_gb", 0, "value 0 is below meter storage_gb's minimum of 1 per event"),
        ("storage_gb", 10_001, "value 10,001 is above meter storage_gb's maximum of 10,000 per event"),
    ],
)
def test_a_value_outside_the_meter_bounds_is_refused(meter, value, message):
    ev = event(meter=meter, value=value, timestamp=NOW + timedelta(hours=1))
    assert refused(check(ev), Refusal.OUT_OF_BOUNDS) == message


@pytest.mark.parametrize(("meter", "value"), [("api_calls", 1_000_000), ("storage_gb", 1), ("storage_gb", 10_000)])
def test_a_value_exactly_at_a_bound_is_accepted(meter, value):
    assert check(event(meter=meter, value=value)).outcome is EventOutcome.ACCEPTED


def test_five_minutes_ahead_is_accepted_and_one_second_more_is_not():
    assert check(event(timestamp=NOW + timedelta(minutes=5))).outcome is EventOutcome.ACCEPTED
    message = refused(check(event(timestamp=NOW + timedelta(minutes=5, seconds=1))), Refusal.FUTURE_TIMESTAMP)
    assert message == (
        "timestamp 2026-03-15T12:05:01+00:00 is 5 minutes 1 second ahead of o2c's clock "
        "(2026-03-15T12:00:00+00:00); at most 5 minutes ahead is accepted"
    )


def test_the_future_is_measured_across_offsets():
    tokyo = timezone(timedelta(hours=9))
    ahead = datetime(2026, 3, 15, 21, 5, 0, 250000, tzinfo=tokyo)  # 12:05:00.25 UTC
    message = refused(check(event(timestamp=ahead)), Refusal.FUTURE_TIMESTAMP)
    assert "is 5 minutes 0.25 seconds ahead" in message
    assert check(event(timestamp=datetime(2026, 3, 15, 21, 5, tzinfo=tokyo))).outcome is EventOutcome.ACCEPTED


def test_the_future_tolerance_is_the_policy_s():
    policy = UsagePolicy(future_tolerance=timedelta(hours=1))
    assert check(event(timestamp=NOW + timedelta(minutes=59)), policy=policy).outcome is EventOutcome.ACCEPTED
    message = refused(check(event(timestamp=NOW + timedelta(hours=2)), policy=policy), Refusal.FUTURE_TIMESTAMP)
    assert message.endswith(
        "is 2 hours ahead of o2c's clock (2026-03-15T12:00:00+00:00); at most 1 hour ahead is accepted"
    )


FEBRUARY = datetime(2026, 2, 20, tzinfo=UTC)
CLOSED = frozenset({("cus_acme", "2026-02")})


def test_a_late_event_is_quarantined_when_the_policy_says_so():
    policy = UsagePolicy(late_events=LatePolicy.QUARANTINE)
    message = refused(check(event(timestamp=FEBRUARY), closed=CLOSED, policy=policy), Refusal.CLOSED_PERIOD)
    assert message == (
        "period 2026-02 is closed for customer cus_acme (its usage invoice is released); "
        "late events wait in the exception queue by policy"
    )


def test_a_late_event_counts_in_the_open_period_as_an_adjustment():
    verdict = check(event(timestamp=FEBRUARY), closed=CLOSED, open_period={"cus_acme": "2026-04"})
    assert verdict.outcome is EventOutcome.ACCEPTED
    assert verdict.reason is None
    assert verdict.period == "2026-04"
    assert verdict.message == "late adjustment from period 2026-02 (already invoiced), counted in 2026-04"


def test_without_an_open_period_a_late_event_counts_in_the_next_period_that_is_not_closed():
    assert check(event(timestamp=FEBRUARY), closed=CLOSED).period == "2026-03"
    both = CLOSED | {("cus_acme", "2026-03")}
    assert check(event(timestamp=FEBRUARY), closed=both).period == "2026-04"
    december = check(
        event(timestamp=datetime(2026, 12, 31, 23, 0, tzinfo=UTC), value=1, meter="api_calls"),
        closed={("cus_acme", "2026-12")},
        now=datetime(2027, 1, 2, tzinfo=UTC),
    )
    assert december.period == "2027-01"


def test_a_period_closed_for_another_customer_is_open_for_this_one():
    verdict = check(event(timestamp=FEBRUARY), closed={("cus_other", "2026-02")})
    assert verdict.period == "2026-02" and verdict.message == ""


def test_a_period_before_the_earliest_open_one_is_late_even_when_not_listed_closed():
    verdict = check(event(timestamp=FEBRUARY), open_period={"cus_acme": "2026-03"})
    assert verdict.period == "2026-03"
    assert verdict.message.startswith("late adjustment from period 2026-02")
    # The open period itself and later ones are on time.
    assert check(event(), open_period={"cus_acme": "2026-03"}).message == ""


def test_the_validator_bound_once_gives_the_same_verdicts():
    validator = EventValidator(
        meters=METERS, customers=CUSTOMERS, closed_periods=CLOSED, open_period={}, policy=UsagePolicy()
    )
    events = [
        event(),
        event(identifier="e2", meter="seats"),
        event(identifier="e3", timestamp=FEBRUARY),
        event(identifier="e4", value=2.5),
        event(identifier="e5", customer="cus_nobody"),
    ]
    for ev in events:
        assert validator.validate(ev, now=NOW) == check(ev, closed=CLOSED)


@given(
    value=st.integers(min_value=0, max_value=1_000_000),
    seconds=st.integers(min_value=0, max_value=60 * 60 * 24 * 60),
    offset_minutes=st.integers(min_value=-14 * 60, max_value=14 * 60),
)
def test_every_valid_event_is_accepted_in_its_utc_month(value, seconds, offset_minutes):
    moment = (NOW - timedelta(seconds=seconds)).astimezone(timezone(timedelta(minutes=offset_minutes)))
    verdict = check(event(value=value, timestamp=moment))
    assert verdict.outcome is EventOutcome.ACCEPTED
    assert verdict.period == period_of(moment) == f"{moment.astimezone(UTC):%Y-%m}"


@given(value=st.floats(allow_nan=True, allow_infinity=True))
def test_a_float_is_accepted_only_when_finite_whole_and_in_bounds(value):
    verdict = check(event(value=value))
    good = value == value and abs(value) != float("inf") and value == int(value) and 0 <= value <= 1_000_000
    assert (verdict.outcome is EventOutcome.ACCEPTED) is good
    if not good:
        assert verdict.reason in {Refusal.INVALID_VALUE, Refusal.OUT_OF_BOUNDS}


def test_a_spike_threshold_on_the_meter_does_not_change_validation():
    meters = METERS | {"api_calls": API.model_copy(update={"spike_threshold": Decimal("0.1")})}
    verdict = validate_event(
        event(), meters=meters, customers=CUSTOMERS, closed_periods=set(), open_period={}, policy=UsagePolicy(), now=NOW
    )
    assert verdict.outcome is EventOutcome.ACCEPTED


def test_a_subscription_start_without_a_zone_is_read_as_utc():
    naive = ACME.model_copy(update={"active_from": datetime(2026, 3, 1)})
    customers = {"cus_acme": naive}

    def at(moment: datetime):
        return validate_event(
            event(timestamp=moment),
            meters=METERS,
            customers=customers,
            closed_periods=set(),
            open_period={},
            policy=UsagePolicy(),
            now=NOW,
        )

    assert at(datetime(2026, 2, 28, 23, 59, 59, tzinfo=UTC)).reason is Refusal.BEFORE_SUBSCRIPTION
    assert at(datetime(2026, 3, 1, tzinfo=UTC)).outcome is EventOutcome.ACCEPTED
