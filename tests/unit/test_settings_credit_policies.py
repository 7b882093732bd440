"""The credit and dispute policies from their files, and the front doors that take them: a
credit or refund in a currency the policy does not state is refused before anything starts."""

from __future__ import annotations

import json
import os
from datetime import timedelta
from decimal import Decimal

import pytest

from canonical.amendment import InvalidRequest
from canonical.credit import CreditPolicy, RefundRequest
from canonical.credits import CreditReason, CreditRequest
from canonical.dispute import DisputePolicy, LostDisputeBooking, WriteOffMethod
from canonical.money import Money
from settings import InvalidSettings, Settings
from starter.credits import start_credit, start_refund


@pytest.fixture(autouse=True)
def environment(monkeypatch):
    """No O2C_* variable from the machine running the tests."""
    for name in os.environ:
        if name.startswith("O2C_"):
            monkeypatch.delenv(name)
    return monkeypatch


class Untouchable:
    """A Temporal client or billing port that fails the test when a refused request reaches it."""

    def __getattr__(self, name: str):
        raise AssertionError(f"a refused request reached {name}")


# Only USD and EUR: a yen credit has no threshold to be approved by.
# The plain tables of docs/policies.md, and the model's own shape, both read.
USD_EUR = {
    "finance": {"USD": 0, "EUR": 0},
    "controller": {"USD": 2000, "EUR": 1800},
    "service_controller": {"amounts": {"USD": 500, "EUR": 450}},
}


def policy_file(environment, tmp_path, variable: str, body: object) -> None:
    path = tmp_path / f"{variable.lower()}.json"
    path.write_text(json.dumps(body))
    environment.setenv(variable, str(path))


def test_unset_the_canonical_policies_apply():
    settings = Settings.from_env()
    assert settings.credit_policy == CreditPolicy()
    assert settings.dispute_policy == DisputePolicy()


def test_credit_policy_from_a_file_per_currency(environment, tmp_path):
    policy_file(environment, tmp_path, "O2C_CREDIT_POLICY_FILE", USD_EUR)
    policy = Settings.from_env().credit_policy
    assert policy.controller.of("EUR") == Money.of("1800", "EUR")
    assert policy.thresholds(CreditReason.SERVICE_CREDIT)[1].of("USD") == Money.of("500", "USD")
    assert policy.uncovered(CreditReason.ORDER_CHANGE, "USD") is None
    assert "JPY" in (policy.uncovered(CreditReason.ORDER_CHANGE, "JPY") or "")


def test_dispute_policy_from_a_file(environment, tmp_path):
    body = {
        "lost_booking": "revenue_reversal",
        "write_off_lost": True,
        "write_off_method": "allowance",
        "escalate_before": "PT36H",
    }
    policy_file(environment, tmp_path, "O2C_DISPUTE_POLICY_FILE", body)
    policy = Settings.from_env().dispute_policy
    assert policy.lost_booking == LostDisputeBooking.REVENUE_REVERSAL
    assert policy.write_off_lost and policy.write_off_method == WriteOffMethod.ALLOWANCE
    assert policy.escalate_before == timedelta(hours=36)


@pytest.mark.parametrize(
    ("variable", "body", "says"),
    [
        ("O2C_CREDIT_POLICY_FILE", {"controler": {"amounts": {"USD": 1}}}, "unknown field(s) controler"),
        ("O2C_CREDIT_POLICY_FILE", {"finance": 0}, "O2C_CREDIT_POLICY_FILE.finance"),
        ("O2C_CREDIT_POLICY_FILE", {"finance": {"USD": -5}}, "O2C_CREDIT_POLICY_FILE.finance"),
        ("O2C_CREDIT_POLICY_FILE", {"controller": {"XYZ": 5}}, "O2C_CREDIT_POLICY_FILE.controller"),
        ("O2C_DISPUTE_POLICY_FILE", {"lost_booking": "shrug"}, "O2C_DISPUTE_POLICY_FILE.lost_booking"),
        ("O2C_DISPUTE_POLICY_FILE", {"write_off": True}, "unknown field(s) write_off"),
    ],
)
def test_a_bad_policy_file_fails_at_start_naming_the_variable(environment, tmp_path, variable, body, says):
    policy_file(environment, tmp_path, variable, body)
    with pytest.raises(InvalidSettings) as refused:
        Settings.from_env()
    assert says in str(refused.value)


def test_a_policy_file_that_cannot_be_read_names_the_variable(environment, tmp_path):
    environment.setenv("O2C_DISPUTE_POLICY_FILE", str(tmp_path / "missing.json"))
    with pytest.raises(InvalidSettings, match=r"O2C_DISPUTE_POLICY_FILE: .*cannot read"):
        Settings.from_env()


async def test_a_credit_in_a_currency_the_policy_does_not_state_is_refused_before_billing_is_asked(
    environment, tmp_path
):
    policy_file(environment, tmp_path, "O2C_CREDIT_POLICY_FILE", USD_EUR)
    request = CreditRequest(
        credit_id="K-yen",
        invoice_id="in_yen",
        reason=CreditReason.ORDER_CHANGE,
        explanation="seats removed",
        requested_by="sam.sales",
        amount=Money.of("5000", "JPY"),
    )
    with pytest.raises(InvalidRequest) as refused:
        await start_credit(Untouchable(), request, billing=Untouchable())  # type: ignore[arg-type]
    assert any("JPY" in problem for problem in refused.value.problems)


async def test_a_refund_in_a_currency_the_policy_does_not_state_is_refused_before_it_starts(environment, tmp_path):
    policy_file(environment, tmp_path, "O2C_CREDIT_POLICY_FILE", USD_EUR)
    request = RefundRequest(
        refund_id="R-gbp",
        charge_id="ch_1",
        amount=Money.of(Decimal("12.50"), "GBP"),
        reason="requested_by_customer",
        explanation="cancelled within the trial",
        requested_by="olga.ops",
    )
    with pytest.raises(InvalidRequest) as refused:
        await start_refund(Untouchable(), request, billing=Untouchable())  # type: ignore[arg-type]
    assert any("GBP" in problem for problem in refused.value.problems)
    # The same refund in a currency the file states passes validation and reaches Temporal.
    with pytest.raises(AssertionError, match="reached"):
        await start_refund(
            Untouchable(), request.model_copy(update={"amount": Money.of("12.50", "EUR")}), billing=Untouchable()
        )  # type: ignore[arg-type]
