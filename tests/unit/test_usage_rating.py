"""o2c's rating of its usage counts, and the comparisons of what billing bills with what o2c counted."""

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from canonical.money import CurrencyError, Money
from canonical.usage.billed import quantity_differences, unbilled_meters
from canonical.usage.models import Meter, MeteredPrice
from canonical.usage.rating import rate_quantity, rate_usage

API = Meter(event_name="api_calls", display_name="API calls", unit="API calls")


def price(meter: str, unit: str, exact: str | None = None, currency: str = "USD") -> MeteredPrice:
    return MeteredPrice(
        meter=meter,
        price_id=f"price_{meter}",
        unit_amount=Money.of(unit, currency),
        unit_amount_decimal=Decimal(exact) if exact is not None else None,
    )


def test_a_whole_cent_price_rates_quantity_times_unit_amount():
    assert rate_quantity(10_000, price("api_calls", "0.01"), "USD") == Money.of("100.00", "USD")
    assert rate_quantity(0, price("api_calls", "0.01"), "USD") == Money.of("0.00", "USD")


def test_a_sub_cent_price_rates_with_the_exact_decimal_and_rounds_half_up_once():
    quarter_cent = price("api_calls", "0.00", exact="0.0025")  # unit_amount rounds to 0.00; the decimal does not
    assert rate_quantity(14_201, quarter_cent, "USD") == Money.of("35.50", "USD")  # 35.5025
    assert rate_quantity(14_202, quarter_cent, "USD") == Money.of("35.51", "USD")  # 35.505 half up
    assert rate_quantity(1, quarter_cent, "USD") == Money.of("0.00", "USD")  # 0.0025
    assert rate_quantity(2, quarter_cent, "USD") == Money.of("0.01", "USD")  # 0.005 half up


def test_the_minor_unit_is_the_currencys():
    assert rate_quantity(333, price("api_calls", "2", exact="1.5", currency="JPY"), "JPY") == Money.of("500", "JPY")
    bhd = price("api_calls", "0.001", exact="0.0015", currency="BHD")
    assert rate_quantity(3, bhd, "BHD") == Money.of("0.005", "BHD")  # 0.0045 half up


def test_a_price_in_another_currency_is_refused():
    with pytest.raises(CurrencyError):
        rate_quantity(10, price("api_calls", "0.01", currency="EUR"), "USD")


def test_usage_is_rated_per_meter_and_a_meter_without_a_price_is_left_to_the_caller():
    prices = [price("api_calls", "0.01"), price("storage_gb", "0.25")]
    rated = rate_usage({"api_calls": 10_000, "seats_over": 3}, prices, "USD")
    assert rated == {"api_calls": Money.of("100.00", "USD")}
    assert rate_usage({"storage_gb": 40}, prices, "USD") == {"storage_gb": Money.of("10.00", "USD")}


def test_a_meter_on_two_prices_is_billed_once_on_each():
    prices = [price("api_calls", "0.01"), price("api_calls", "0.02")]
    assert rate_usage({"api_calls": 100}, prices, "USD") == {"api_calls": Money.of("3.00", "USD")}


@given(st.integers(min_value=0, max_value=10**12), st.integers(min_value=1, max_value=10**6))
def test_rating_is_exact_to_the_minor_unit(quantity, micro_dollars):
    exact = Decimal(micro_dollars).scaleb(-6)
    rated = rate_quantity(quantity, price("api_calls", "0.01", exact=str(exact)), "USD")
    assert abs(rated.amount - quantity * exact) <= Decimal("0.005")
    assert rated.amount == rated.amount.quantize(Decimal("0.01"))


def test_billings_meter_is_compared_with_o2cs_count_in_words():
    [fewer] = quantity_differences(
        {"api_calls": 10_000}, {"api_calls": 9_000}, source="billing's meter", meters={"api_calls": API}
    )
    assert (fewer.meter, fewer.counted, fewer.billed) == ("api_calls", 10_000, 9_000)
    assert fewer.text == "billing's meter holds 9,000 API calls; o2c counted 10,000 (1,000 fewer)"
    [more] = quantity_differences({"api_calls": 0}, {"api_calls": 500}, source="the finalised invoice")
    assert more.text == "the finalised invoice holds 500 api_calls; o2c counted 0 (500 more)"
    assert quantity_differences({"api_calls": 10_000}, {"api_calls": 10_000}, source="billing's meter") == []
    # a side without the meter counts zero there; nothing on either side is no difference
    [missing] = quantity_differences({"api_calls": 7}, {}, source="billing's meter")
    assert (missing.counted, missing.billed) == (7, 0)
    assert quantity_differences({"api_calls": 0}, {}, source="billing's meter") == []


def test_a_meter_used_without_a_line_on_the_draft_is_a_difference_billed_none():
    [storage] = unbilled_meters({"api_calls": 10, "storage_gb": 40, "seats_over": 0}, {"api_calls"})
    assert (storage.meter, storage.counted, storage.billed) == ("storage_gb", 40, None)
    assert storage.text == (
        "billing's draft has no line for storage_gb: the subscription does not bill this meter, o2c counted 40 storage_gb"
    )
    assert unbilled_meters({"api_calls": 10}, {"api_calls", "storage_gb"}, meters={"api_calls": API}) == []
