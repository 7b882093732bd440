"""Recognised revenue posted per entity, month and currency, with true-ups, to the cent."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from canonical.journal import ChartOfAccounts
from canonical.money import Money
from canonical.revenue.posting import (
    PostedLine,
    Recognition,
    build_postings,
    covered_months,
    month_end,
    parse_posting_external_id,
    posted_by_month,
    posting_external_id,
)

CHART = ChartOfAccounts()


def eur(amount: str) -> Money:
    return Money.of(amount, "EUR")


def rec(period: str, obligation: str, amount: str, currency: str = "EUR") -> Recognition:
    return Recognition(period=period, obligation=obligation, amount=Money.of(amount, currency))


def post(period: str, recognised: list[Recognition], posted: list[PostedLine] = ()):  # type: ignore[assignment]
    return build_postings(
        legal_entity="DE01", subsidiary="1010", period=period, recognised=recognised, posted=list(posted), chart=CHART
    )


def lines_of(postings) -> list[PostedLine]:
    return [line for p in postings for line in p.lines]


def test_one_entry_per_currency_dated_the_last_day_of_the_month():
    # November: seats 1,000.00 + support 250.50 in EUR; seats 99.99 in USD.
    postings = post(
        "2026-11",
        [
            rec("2026-11", "seats", "600.00"),
            rec("2026-11", "seats", "400.00"),
            rec("2026-11", "support", "250.50"),
            rec("2026-11", "seats", "99.99", "USD"),
        ],
    )
    assert [(p.currency, p.entry.external_id) for p in postings] == [
        ("EUR", "revenue-DE01-2026-11-EUR"),
        ("USD", "revenue-DE01-2026-11-USD"),
    ]
    euro = postings[0].entry
    assert euro.posting_date == date(2026, 11, 30)
    assert euro.subsidiary == "1010"
    # Dr deferred revenue / Cr revenue per obligation: 1,000.00 (600 + 400) and 250.50.
    assert [(x.account, x.debit, x.credit) for x in euro.lines] == [
        ("2400", eur("1000.00"), None),
        ("4000", None, eur("1000.00")),
        ("2400", eur("250.50"), None),
        ("4000", None, eur("250.50")),
    ]
    assert euro.total_debits == eur("1250.50")
    assert "Revenue recognised by DE01 in November 2026: 1,250.50 EUR over 2 obligations" in euro.memo
    assert "seats" in euro.lines[0].memo


def test_a_late_amendment_is_trued_up_in_the_next_month_never_by_editing_the_posted_one():
    october = post("2026-10", [rec("2026-10", "seats", "310.00")])
    recorded = lines_of(october)
    # After October was posted an amendment back-dated into October adds 31.00 to it, and
    # November recognises 330.00: November's entry posts 330.00 and a true-up of 31.00.
    november = post("2026-11", [rec("2026-10", "seats", "341.00"), rec("2026-11", "seats", "330.00")], recorded)
    (entry,) = november
    assert [(x.recognised_period, x.line_key, x.amount) for x in entry.lines] == [
        ("2026-11", "seats", eur("330.00")),
        ("2026-10", "seats", eur("31.00")),
    ]
    assert entry.lines[1].label == "True-up of 2026-10: seats"
    assert entry.entry.lines[2].memo.startswith("True-up of 2026-10: seats")
    assert entry.entry.total_debits == eur("361.00")
    assert entry.entry.posting_date == date(2026, 11, 30)
    assert "true-ups of 2026-10" in entry.entry.memo


def test_a_credit_larger_than_the_month_reverses_revenue_on_the_other_side():
    # October posted 300.00 of support; a credit takes October down to 100.00 and November to 0.
    october = lines_of(post("2026-10", [rec("2026-10", "support", "300.00")]))
    (entry,) = post("2026-11", [rec("2026-10", "support", "100.00")], october)
    # Net -200.00 on the true-up: Dr revenue 200.00 / Cr deferred revenue 200.00.
    assert [(x.account, x.debit, x.credit) for x in entry.entry.lines] == [
        ("2400", None, eur("200.00")),
        ("4000", eur("200.00"), None),
    ]
    assert entry.revenue == eur("-200.00")
    assert "nothing new" in entry.entry.memo


def test_nothing_to_post_is_no_entry_and_zero_lines_are_left_out():
    assert post("2026-11", []) == []
    assert post("2026-11", [rec("2026-11", "seats", "10.00"), rec("2026-11", "seats", "-10.00")]) == []
    october = lines_of(post("2026-10", [rec("2026-10", "seats", "50.00"), rec("2026-10", "setup", "20.00")]))
    (entry,) = post(
        "2026-11",
        [rec("2026-10", "seats", "50.00"), rec("2026-10", "setup", "20.00"), rec("2026-11", "seats", "1.00")],
        october,
    )
    assert [(x.recognised_period, x.line_key) for x in entry.lines] == [("2026-11", "seats")]


def test_yen_and_dinar_keep_their_minor_units():
    postings = post("2026-02", [rec("2026-02", "seats", "1000", "JPY"), rec("2026-02", "seats", "1.005", "BHD")])
    assert [p.entry.total_debits for p in postings] == [Money.of("1.005", "BHD"), Money.of("1000", "JPY")]
    assert postings[0].entry.posting_date == date(2026, 2, 28)


def test_a_month_posted_already_is_not_posted_again():
    november = lines_of(post("2026-11", [rec("2026-11", "seats", "1.00")]))
    with pytest.raises(ValueError, match="posted already"):
        post("2026-11", [rec("2026-11", "seats", "1.00")], november)


def test_a_month_between_postings_that_was_never_posted_is_caught_up():
    september = lines_of(post("2026-09", [rec("2026-09", "seats", "10.00")]))
    november_lines = lines_of(
        post("2026-11", [rec("2026-09", "seats", "10.00"), rec("2026-11", "seats", "30.00")], september)
    )
    assert covered_months("2026-12", september + november_lines) == ["2026-09", "2026-10", "2026-11"]
    (december,) = post(
        "2026-12",
        [rec("2026-09", "seats", "10.00"), rec("2026-10", "seats", "20.00"), rec("2026-11", "seats", "30.00")],
        september + november_lines,
    )
    # October was skipped: its 20.00 is caught up in December as a true-up.
    assert [(x.recognised_period, x.amount) for x in december.lines] == [("2026-10", eur("20.00"))]


def test_external_ids_read_back():
    assert posting_external_id("DE01", "2026-11", "EUR") == "revenue-DE01-2026-11-EUR"
    assert parse_posting_external_id("revenue-DE-01-2026-11-EUR") == ("DE-01", "2026-11", "EUR")
    assert parse_posting_external_id("amendment-A-1-invoice") is None
    assert parse_posting_external_id("revenue-DE01-2026-13-EUR") is None
    assert month_end("2028-02") == date(2028, 2, 29)


MONTHS = ["2026-01", "2026-02", "2026-03", "2026-04", "2026-05"]
amounts = st.integers(min_value=-50_000, max_value=500_000)
recognition = st.dictionaries(
    st.tuples(st.sampled_from(MONTHS), st.sampled_from(["seats", "support", "setup"]), st.sampled_from(["EUR", "JPY"])),
    amounts,
    max_size=12,
)


@settings(max_examples=150, deadline=None)
@given(st.lists(recognition, min_size=len(MONTHS), max_size=len(MONTHS)), st.sets(st.sampled_from(MONTHS)))
def test_every_entry_balances_and_posted_plus_true_ups_equal_cumulative_recognition(states, skipped):
    """Month by month the schedules change arbitrarily (amendments, credits); some months are
    not posted. After each posting every month it covers holds exactly what the schedules
    recognise for it now, and every entry balances."""
    posted: list[PostedLine] = []
    for month, state in zip(MONTHS, states, strict=True):
        recognised = [
            Recognition(period=p, obligation=k, amount=Money.from_minor(m, c))
            for (p, k, c), m in state.items()
            if p <= month
        ]
        if month in skipped:
            continue
        postings = post(month, recognised, posted)
        for p in postings:
            debits = sum(x.amount.minor for x in p.entry.lines if x.debit)
            credits = sum(x.amount.minor for x in p.entry.lines if x.credit)
            assert debits == credits
            assert all(not x.amount.is_zero for x in p.lines)
        posted += lines_of(postings)
        held: dict[tuple[str, str, str], int] = {}
        for line in posted:
            slot = (line.recognised_period, line.line_key, line.amount.currency)
            held[slot] = held.get(slot, 0) + line.amount.minor
        expected: dict[tuple[str, str, str], int] = {}
        for r in recognised:
            slot = (r.period, r.obligation, r.amount.currency)
            expected[slot] = expected.get(slot, 0) + r.amount.minor
        covered = set(covered_months(month, posted)) | {month}
        for slot in set(held) | set(expected):
            if slot[0] in covered:
                assert held.get(slot, 0) == expected.get(slot, 0), slot
        totals = posted_by_month(posted)
        assert sum(m.minor for (p, _), m in totals.items() if p in covered) == sum(
            v for (p, _, _), v in expected.items() if p in covered
        )
