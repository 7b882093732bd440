"""The review before release: median and MAD exact, completeness in words, every hold rule
with its boundary and its sentence."""

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from canonical.money import CurrencyError, Money
from canonical.usage import completeness, mad, median, review_usage
from canonical.usage.models import FindingRule, Meter, UsagePolicy

API = Meter(event_name="api_calls", display_name="API calls", unit="API calls")
STORAGE = Meter(event_name="storage_gb", display_name="Storage", unit="GB")
METERS = {m.event_name: m for m in (API, STORAGE)}
HISTORY = [6000, 6100, 5900, 6200, 6100, 6300]  # median 6,100


def usd(amount: str) -> Money:
    return Money.of(amount, "USD")


def review(quantities, history, *, total="100.00", previous="100.00", policy=None, segment="default", meters=METERS):
    return review_usage(
        quantities=quantities,
        history=history,
        meters=meters,
        segment=segment,
        total=usd(total),
        previous_total=None if previous is None else usd(previous),
        policy=policy or UsagePolicy(),
    )


# -- median and MAD ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([5], "5"),
        ([3, 1, 2], "2"),
        ([4, 1, 3, 2], "2.5"),
        ([10, 0], "5"),
        ([1, 1, 1, 1000000], "1"),
        ([Decimal("0.1"), Decimal("0.2")], "0.15"),
        ([6000, 6100, 5900, 6200, 6100, 6300], "6100"),
        ([10**30, 10**30 + 1], "1000000000000000000000000000000.5"),
    ],
)
def test_median_is_exact(values, expected):
    assert median(values) == Decimal(expected)
    assert isinstance(median(values), Decimal)


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([5], "0"),
        ([1, 1, 2, 2, 4, 6, 9], "1"),  # median 2; deviations 1 1 0 0 2 4 7
        ([6000, 6100, 5900, 6200, 6100, 6300], "100"),  # deviations 100 0 200 100 0 200
        ([1, 2, 3, 4], "1"),  # median 2.5; deviations 1.5 .5 .5 1.5
        ([0, 0, 0, 100], "0"),
    ],
)
def test_mad_is_the_median_absolute_deviation(values, expected):
    assert mad(values) == Decimal(expected)


def test_the_median_of_nothing_is_refused():
    with pytest.raises(ValueError, match="no values"):
        median([])


@given(st.lists(st.integers(min_value=0, max_value=10**9), min_size=1, max_size=24))
def test_median_and_mad_split_the_values_in_halves(values):
    m = median(values)
    assert sum(1 for v in values if v <= m) * 2 >= len(values)
    assert sum(1 for v in values if v >= m) * 2 >= len(values)
    spread = mad(values)
    assert spread >= 0
    assert sum(1 for v in values if abs(v - m) <= spread) * 2 >= len(values)
    assert median(list(reversed(values))) == m


# -- completeness -----------------------------------------------------------------------------


def test_a_complete_draft_has_no_difference():
    assert completeness({"api_calls": 10000, "storage_gb": 5}, {"api_calls": 10000, "storage_gb": 5}) == []


def test_a_draft_that_bills_less_says_how_much_less():
    [difference] = completeness({"api_calls": 10000}, {"api_calls": 9800}, meters=METERS)
    assert difference.meter == "api_calls"
    assert (difference.counted, difference.billed) == (10000, 9800)
    assert difference.text == "billing's draft bills 9,800 API calls; o2c counted 10,000 (200 fewer)"


def test_a_draft_that_bills_more_says_how_much_more():
    [difference] = completeness({"api_calls": 10000}, {"api_calls": 12345}, meters=METERS)
    assert difference.text == "billing's draft bills 12,345 API calls; o2c counted 10,000 (2,345 more)"


def test_a_meter_missing_from_the_draft_is_a_difference():
    [difference] = completeness({"api_calls": 10000, "storage_gb": 0}, {}, meters=METERS)
    assert difference.billed is None
    assert difference.text == "billing's draft has no line for api_calls; o2c counted 10,000 API calls"


def test_a_billed_meter_o2c_did_not_count_is_a_difference():
    differences = completeness({"api_calls": 5}, {"api_calls": 5, "storage_gb": 40, "gpu_hours": 0})
    assert [(d.meter, d.counted, d.billed) for d in differences] == [("storage_gb", 0, 40)]
    # Without the meters the unit falls back to the event name.
    assert differences[0].text == "billing's draft bills 40 storage_gb; o2c counted 0 (40 more)"


def test_differences_are_listed_by_meter():
    differences = completeness({"b": 1, "a": 1, "c": 1}, {"b": 2, "a": 2, "c": 1})
    assert [d.meter for d in differences] == ["a", "b"]


# -- spikes -----------------------------------------------------------------------------------


def test_ordinary_usage_is_released_without_a_person():
    assert review({"api_calls": 6500, "storage_gb": 12}, {"api_calls": HISTORY, "storage_gb": [10, 11, 12]}) == []


def test_a_spike_is_held_with_the_numbers_in_words():
    [finding] = review({"api_calls": 14200}, {"api_calls": HISTORY})
    assert finding.rule is FindingRule.SPIKE
    assert finding.meter == "api_calls"
    assert finding.text == "14,200 API calls is 2.3× the median of the last 6 months (6,100); the limit is 1.4×"
    assert finding.quantity == 14200
    assert finding.median == Decimal(6100)
    assert finding.mad == Decimal(100)
    assert finding.ratio == Decimal("2.3279")
    assert finding.limit == Decimal("1.40")


def test_exactly_at_the_limit_is_not_a_spike_and_one_more_is():
    assert review({"api_calls": 8540}, {"api_calls": HISTORY}) == []  # 6,100 x 1.4
    [finding] = review({"api_calls": 8541}, {"api_calls": HISTORY})
    # 1.40016...: printed with enough places not to read as the limit itself.
    assert finding.text == "8,541 API calls is 1.4002× the median of the last 6 months (6,100); the limit is 1.4×"


def test_a_ratio_just_over_the_limit_takes_two_places():
    [finding] = review({"api_calls": 143}, {"api_calls": [100]})
    assert finding.text == "143 API calls is 1.43× the median of the last month (100); the limit is 1.4×"


def test_the_history_counted_is_the_real_one_and_at_most_the_policy_s():
    [short] = review({"api_calls": 300}, {"api_calls": [100, 100, 100]})
    assert "the median of the last 3 months (100)" in short.text
    busy_then_quiet = [9000, 9000, 9000, 9000, 100, 100, 100]
    # The last 6 periods: median (9,000 + 100) / 2 = 4,550, and 300 is ordinary.
    assert review({"api_calls": 300}, {"api_calls": busy_then_quiet}) == []
    # The last 3 periods only: median 100, and 300 is a spike.
    [finding] = review({"api_calls": 300}, {"api_calls": busy_then_quiet}, policy=UsagePolicy(history_periods=3))
    assert "3.0× the median of the last 3 months (100)" in finding.text


def test_a_median_of_an_even_history_is_printed_exactly():
    [finding] = review({"api_calls": 30000}, {"api_calls": [6100, 6200]})
    assert finding.text == "30,000 API calls is 4.9× the median of the last 2 months (6,150); the limit is 1.4×"
    [odd] = review({"api_calls": 30000}, {"api_calls": [6100, 6200, 6000, 6101]})
    assert "(6,100.5)" in odd.text


def test_the_threshold_of_the_meter_beats_the_segment_s_and_the_default():
    policy = UsagePolicy(segment_thresholds={"enterprise": Decimal("1.0")})
    # 2x the median: a spike by default, ordinary for the enterprise segment (limit 2.0x).
    assert review({"api_calls": 12200}, {"api_calls": HISTORY}, policy=policy, segment="enterprise") == []
    [finding] = review({"api_calls": 12201}, {"api_calls": HISTORY}, policy=policy, segment="enterprise")
    assert finding.text.endswith("the limit is 2.0×")
    strict = {"api_calls": API.model_copy(update={"spike_threshold": Decimal("0.25")})}
    [meter] = review({"api_calls": 7626}, {"api_calls": HISTORY}, policy=policy, segment="enterprise", meters=strict)
    assert meter.limit == Decimal("1.25")
    assert meter.text.endswith("the limit is 1.25×")
    assert review({"api_calls": 7625}, {"api_calls": HISTORY}, meters=strict) == []


def test_a_meter_known_only_to_the_policy_speaks_its_unit():
    policy = UsagePolicy(meters=[API])
    [finding] = review({"api_calls": 14200}, {"api_calls": HISTORY}, policy=policy, meters={})
    assert finding.text.startswith("14,200 API calls is")


def test_an_unknown_meter_speaks_its_event_name_and_takes_the_default_limit():
    [finding] = review({"gpu_hours": 200}, {"gpu_hours": [100, 100]}, meters={})
    assert finding.text == "200 gpu_hours is 2.0× the median of the last 2 months (100); the limit is 1.4×"


def test_the_noise_guard_lets_a_jump_within_the_usual_spread_through():
    noisy = [1000, 3000, 1000, 3000, 1000, 3000]  # median 2,000, MAD 1,000
    policy = UsagePolicy(noise_mads=Decimal(3))
    # 3,000 is 1.5x the median but only 1,000 above it: within 3 x 1.4826 x 1,000 = 4,447.8.
    assert review({"api_calls": 3000}, {"api_calls": noisy}, policy=policy) == []
    assert review({"api_calls": 6447}, {"api_calls": noisy}, policy=policy) == []
    [finding] = review({"api_calls": 6448}, {"api_calls": noisy}, policy=policy)
    assert finding.text == (
        "6,448 API calls is 3.2× the median of the last 6 months (2,000); the limit is 1.4×; "
        "it is 4,448 above the median, more than 3 scaled MADs (4,447.8)"
    )
    # Without the guard the same usage is held at once.
    assert review({"api_calls": 3000}, {"api_calls": noisy})[0].rule is FindingRule.SPIKE


def test_the_noise_guard_never_hides_a_spike_on_a_steady_history():
    policy = UsagePolicy(noise_mads=Decimal(3))
    [finding] = review({"api_calls": 100}, {"api_calls": [50, 50, 50]}, policy=policy)  # MAD 0
    assert finding.rule is FindingRule.SPIKE


def test_a_zero_baseline_with_usage_is_held():
    [finding] = review({"storage_gb": 12}, {"storage_gb": [0, 0, 5, 0]})
    assert finding.rule is FindingRule.ZERO_BASELINE
    assert finding.text == "12 GB against a median of 0 over the last 4 months; usage on a zero baseline is reviewed"
    assert review({"storage_gb": 0}, {"storage_gb": [0, 0, 0]}) == []


def test_usage_that_drops_is_not_held():
    assert review({"api_calls": 0}, {"api_calls": HISTORY}) == []


def test_each_meter_is_reviewed_on_its_own():
    findings = review({"storage_gb": 100, "api_calls": 14200}, {"api_calls": HISTORY, "storage_gb": [10, 10, 10]})
    assert [(f.rule, f.meter) for f in findings] == [
        (FindingRule.SPIKE, "api_calls"),
        (FindingRule.SPIKE, "storage_gb"),
    ]
    assert findings[1].text == "100 GB is 10.0× the median of the last 3 months (10); the limit is 1.4×"


# -- first invoice and total ------------------------------------------------------------------


def test_the_first_usage_invoice_is_held():
    [finding] = review({"api_calls": 14200, "storage_gb": 3}, {}, previous=None)
    assert finding.rule is FindingRule.FIRST_INVOICE
    assert finding.meter == ""
    assert finding.text == (
        "first usage invoice on this subscription (14,200 API calls, 3 GB); no earlier period to compare"
    )
    assert review({"api_calls": 1}, {"api_calls": []}, previous=None)[0].rule is FindingRule.FIRST_INVOICE


def test_with_a_previous_invoice_an_empty_history_is_not_a_first_invoice():
    assert review({"api_calls": 0}, {}, previous="100.00") == []


def test_a_new_meter_on_an_old_subscription_is_held_as_its_first_usage():
    [finding] = review({"api_calls": 6000, "storage_gb": 7}, {"api_calls": HISTORY})
    assert finding.rule is FindingRule.FIRST_INVOICE
    assert finding.meter == "storage_gb"
    assert finding.text == "7 GB is the first usage of storage_gb on this subscription; no earlier period to compare"


def test_a_total_above_the_multiple_of_the_previous_is_held():
    assert review({}, {"api_calls": HISTORY}, total="250.00", previous="100.00") == []
    [finding] = review({}, {"api_calls": HISTORY}, total="250.01", previous="100.00")
    assert finding.rule is FindingRule.TOTAL_JUMP
    assert finding.text == (
        "the total 250.01 USD is 2.5001× the previous usage invoice (100.00 USD); the limit is 2.5×"
    )
    [big] = review({}, {"api_calls": HISTORY}, total="12345.00", previous="1000.00")
    assert big.text == "the total 12,345.00 USD is 12.3× the previous usage invoice (1,000.00 USD); the limit is 2.5×"
    assert big.ratio == Decimal("12.3450")


def test_a_total_after_a_zero_invoice_is_held():
    [finding] = review({}, {"api_calls": HISTORY}, total="0.01", previous="0.00")
    assert finding.text == "the total 0.01 USD is above the previous usage invoice of 0.00 USD"
    assert review({}, {"api_calls": HISTORY}, total="0.00", previous="0.00") == []


def test_the_total_multiple_is_the_policy_s():
    policy = UsagePolicy(total_multiple=Decimal(3))
    assert review({}, {"api_calls": HISTORY}, total="300.00", policy=policy) == []
    [finding] = review({}, {"api_calls": HISTORY}, total="301.00", policy=policy)
    assert finding.text.endswith("the limit is 3.0×")


def test_totals_in_two_currencies_are_an_error():
    with pytest.raises(CurrencyError, match="EUR"):
        review_usage(
            quantities={},
            history={"api_calls": HISTORY},
            meters=METERS,
            segment="default",
            total=usd("10.00"),
            previous_total=Money.of("10.00", "EUR"),
            policy=UsagePolicy(),
        )


def test_a_spike_and_a_total_jump_are_both_said():
    findings = review({"api_calls": 30000}, {"api_calls": HISTORY}, total="300.00", previous="100.00")
    assert [f.rule for f in findings] == [FindingRule.SPIKE, FindingRule.TOTAL_JUMP]


@given(
    history=st.lists(st.integers(min_value=1, max_value=10**7), min_size=1, max_size=6),
    quantity=st.integers(min_value=0, max_value=10**8),
)
def test_a_spike_is_exactly_usage_above_the_limit(history, quantity):
    findings = review({"api_calls": quantity}, {"api_calls": history})
    above = Decimal(quantity) > median(history) * Decimal("1.40")
    assert bool(findings) is above
    if findings:
        assert findings[0].rule is FindingRule.SPIKE
        assert Decimal(findings[0].text.split("× the median")[0].split(" is ")[1].replace(",", "")) > Decimal("1.4")
