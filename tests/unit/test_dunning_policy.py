"""The dunning policy's limits: the card networks' ceiling, per-currency ARR thresholds and
the declines that retrying cannot cure."""

from datetime import date

import pytest
from pydantic import ValidationError

from canonical.dunning import DunningPolicies, DunningPolicy, is_hard_decline
from canonical.journal import ChartOfAccounts, JournalEntry, JournalLine
from canonical.matching import initial_status
from canonical.money import Money
from canonical.policy_amounts import UncoveredCurrency
from canonical.reconciliation import Break, BreakKind, ReconciliationPolicy


def heal_of(amount: Money) -> Break:
    chart = ChartOfAccounts()
    heal = JournalEntry(
        external_id="heal-1",
        subsidiary="1",
        currency=amount.currency,
        posting_date=date(2027, 1, 31),
        memo="missing invoice entry",
        lines=[
            JournalLine(account=chart.receivable, debit=amount),
            JournalLine(account=chart.deferred_revenue, credit=amount),
        ],
    )
    return Break(kind=BreakKind.MISSING_IN_ERP, key="in_1", currency=amount.currency, explanation="missing", heal=heal)


def test_a_policy_above_the_card_networks_limit_is_refused():
    with pytest.raises(ValidationError, match="at most 15 attempts per card in 30 days"):
        DunningPolicy(max_attempts_per_30_days=16)
    with pytest.raises(ValidationError, match="at most 15"):
        DunningPolicies.model_validate({"segments": {"smb": {"max_attempts_per_30_days": 20}}})
    assert DunningPolicy(max_attempts_per_30_days=8).max_attempts_per_30_days == 8


@pytest.mark.parametrize("code", ["transaction_not_allowed", "revocation_of_all_authorizations"])
def test_new_hard_declines_apply_to_runs_since_the_cash_release(code):
    assert is_hard_decline(code)
    assert not is_hard_decline(code, since_cash=False)
    assert is_hard_decline("stolen_card", since_cash=False)


def test_strategic_threshold_is_read_in_the_arr_currency():
    policy = DunningPolicy()
    assert policy.is_strategic(Money.of(100_000, "USD"))
    assert not policy.is_strategic(Money.of(200_000, "JPY"))  # about 1,300 dollars
    assert policy.is_strategic(Money.of(200_000, "JPY"), per_currency=False)  # how old runs read it
    assert policy.is_strategic(Money.of(15_000_000, "JPY"))
    assert not policy.is_strategic(None)
    with pytest.raises(UncoveredCurrency, match="strategic ARR threshold is not stated in CHF"):
        policy.is_strategic(Money.of(1, "CHF"))
    loaded = DunningPolicy.model_validate({"strategic_arr_thresholds": {"EUR": 50_000}})
    assert loaded.is_strategic(Money.of(50_000, "EUR"))


def test_heal_limit_is_per_currency_and_an_unstated_currency_waits_for_approval():
    policy = ReconciliationPolicy(per_currency=True)
    assert initial_status(heal_of(Money.of(120_000, "JPY")), policy.heal_limit_rule()).value == "healing"
    assert initial_status(heal_of(Money.of(120_000, "JPY")), ReconciliationPolicy().heal_limit_rule()).value == (
        "awaiting_approval"  # the bare 1,000 of runs before the release
    )
    assert initial_status(heal_of(Money.of(1_001, "USD")), policy.heal_limit_rule()).value == "awaiting_approval"
    assert initial_status(heal_of(Money.of(5, "CHF")), policy.heal_limit_rule()).value == "awaiting_approval"
    assert policy.uncovered("CHF") is not None and policy.uncovered("GBP") is None
    loaded = ReconciliationPolicy.model_validate({"heal_limits": {"CHF": 900}})
    assert loaded.uncovered("CHF") is None and loaded.uncovered("USD") is not None
