"""Fakes for the bad-input tests: a Temporal client and a billing port that record every
call, so a test can assert that hostile input started nothing and wrote nothing."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from hypothesis import strategies as st

from canonical.models import Account, Address, Subscription
from canonical.money import MINOR_UNITS
from tests.fakes import seat_line


class RecordingClient:
    """Stands in for temporalio.client.Client: any call is recorded, nothing is done."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    async def start_workflow(self, *args: Any, **kwargs: Any) -> Any:
        self.calls.append("start_workflow")
        raise AssertionError("hostile input reached start_workflow")

    def get_workflow_handle(self, *args: Any, **kwargs: Any) -> Any:
        self.calls.append("get_workflow_handle")
        raise AssertionError("hostile input reached a workflow handle")

    def get_workflow_handle_for(self, *args: Any, **kwargs: Any) -> Any:
        self.calls.append("get_workflow_handle_for")
        raise AssertionError("hostile input reached a workflow handle")

    def list_workflows(self, *args: Any, **kwargs: Any) -> Any:
        self.calls.append("list_workflows")
        raise AssertionError("hostile input reached list_workflows")


ACME = Account(
    id="cus_acme",
    name="Acme Corp",
    email="billing@acme.test",
    billing_address=Address(line1="1 Market St", city="San Francisco", region="CA", postal_code="94105", country="US"),
)


class ReadOnlyBilling:
    """Billing as the starter functions see it: reads only. A write would be an
    AttributeError, so a test would notice."""

    def __init__(self, subscription: Subscription) -> None:
        self.subscription = subscription
        self.reads: list[str] = []

    async def get_subscription(self, subscription_id: str) -> Subscription | None:
        self.reads.append("get_subscription")
        return self.subscription if subscription_id == self.subscription.id else None

    async def get_account(self, account_id: str) -> Account | None:
        self.reads.append("get_account")
        return ACME if account_id == ACME.id else None


def amendment_subscription() -> Subscription:
    return Subscription(
        id="sub_acme",
        account_id="cus_acme",
        contract_id="C-100",
        currency="USD",
        status="active",
        lines=[seat_line(10)],
        current_period_start=date(2026, 11, 1),
        current_period_end=date(2026, 12, 1),
        term_start=date(2026, 1, 1),
        term_end=date(2027, 1, 1),
    )


def renewal_subscription(today: date) -> Subscription:
    end = today + timedelta(days=120)
    return Subscription(
        id="sub_acme",
        account_id="cus_acme",
        contract_id="C-100",
        currency="USD",
        status="active",
        lines=[seat_line(10)],
        current_period_start=today - timedelta(days=10),
        current_period_end=today + timedelta(days=20),
        term_start=end - timedelta(days=365),
        term_end=end,
    )


def amendment_dict(**overrides: Any) -> dict[str, Any]:
    """A valid amendment request against amendment_subscription(), as JSON-ready data."""
    line = {"product": "seats", "quantity": 12, "unit_price": "50.00", "discount_percent": "0"}
    line.update(overrides.pop("line", {}))
    body = {
        "amendment_id": "A-1",
        "contract_id": "C-100",
        "subscription_id": "sub_acme",
        "account_id": "cus_acme",
        "currency": "USD",
        "effective_date": "2026-11-16",
        "lines": [line],
        "requested_by": "sam.sales",
        "reason": "more seats",
    }
    body.update(overrides)
    return body


def renewal_dict(today: date, **overrides: Any) -> dict[str, Any]:
    """A valid renewal request against renewal_subscription(today)."""
    start = today + timedelta(days=120)
    line = {"product": "seats", "quantity": 12}
    line.update(overrides.pop("line", {}))
    body = {
        "contract_id": "C-100",
        "subscription_id": "sub_acme",
        "account_id": "cus_acme",
        "term": "next",
        "new_term_start": start.isoformat(),
        "new_term_end": (start + timedelta(days=365)).isoformat(),
        "uplift_percent": "5",
        "lines": [line],
        "requested_by": "sam.sales",
    }
    body.update(overrides)
    return body


# -- values that no lax reading can turn into the field's type ---------------------------------

json_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=20))
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)),
    max_leaves=8,
)
containers = st.one_of(
    st.lists(json_scalars, max_size=3), st.dictionaries(st.text(max_size=5), json_scalars, max_size=3)
)
not_a_string = st.one_of(st.none(), st.integers(), st.floats(allow_nan=False), st.booleans(), containers)
not_an_int = st.one_of(
    st.none(),
    containers,
    st.floats(allow_nan=False, allow_infinity=False).filter(lambda x: not x.is_integer()),
    st.text(alphabet="abcxyz!? ", min_size=1, max_size=10),
)
not_a_decimal = st.one_of(st.none(), containers, st.text(alphabet="abcxyz!? ,", min_size=1, max_size=10))
not_a_date = st.one_of(
    st.none(),
    containers,
    st.text(alphabet="abcxyz/-: ", min_size=1, max_size=12),
    st.sampled_from(["2026-13-01", "2026-02-30", "16/11/2026", "tomorrow", "2026-11-16T25:00"]),
)
not_a_list = st.one_of(
    st.none(), st.integers(), st.text(max_size=10), st.dictionaries(st.text(max_size=5), json_scalars, max_size=2)
)
unknown_currencies = st.text(
    alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 ", max_size=6
).filter(lambda c: c not in MINOR_UNITS)
negative_quantities = st.integers(max_value=-1) | st.integers(min_value=-(10**40), max_value=-1)
too_precise_usd = st.decimals(min_value=Decimal("0.001"), max_value=Decimal("100000"), places=4).filter(
    lambda d: d != d.quantize(Decimal("0.01"))
)
