"""The world a usage release starts from, shared by the workflow tests and the recorded histories:
Acme's metered subscription billing API calls at one cent each, six released months of about
10,000 calls, and the usage o2c counted in October 2026."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal

from canonical.approval import ApprovalPolicy
from canonical.models import LegalEntity
from canonical.money import Money
from canonical.usage.models import Meter, MeteredPrice, UsageCustomer, UsagePolicy, UsageRelease
from tests.fakes import FakeSystems, usd
from workflows.usage import UsageReleaseInput

PERIOD = "2026-10"
HISTORY = {"2026-04": 9800, "2026-05": 10100, "2026-06": 9900, "2026-07": 10200, "2026-08": 10000, "2026-09": 10050}
API_CALLS = Meter(event_name="api_calls", display_name="API calls", unit="API calls")
ENTITIES = [
    LegalEntity(code="US01", company_code="US01", functional_currency="USD", erp_subsidiary="1"),
    LegalEntity(
        code="US02", company_code="US02", functional_currency="USD", erp_subsidiary="2", billing_account="acct_us02"
    ),
]


API_PRICE = MeteredPrice(meter="api_calls", price_id="price_api", item_id="si_api", unit_amount=usd("0.01"))


def metered_customer(subscription_id: str, customer: str = "cus_acme", legal_entity: str = "US01") -> UsageCustomer:
    return UsageCustomer(
        customer=customer,
        subscription_id=subscription_id,
        currency="USD",
        legal_entity=legal_entity,
        prices=[API_PRICE],
    )


def released(subscription_id: str, period: str, quantity: int) -> UsageRelease:
    subtotal = Money.of(Decimal(quantity) / 100, "USD")
    return UsageRelease(
        workflow_id=f"usage-{subscription_id}-{period}",
        subscription_id=subscription_id,
        customer="cus_acme",
        legal_entity="US01",
        period=period,
        invoice_id=f"in_{period}",
        currency="USD",
        quantities={"api_calls": quantity},
        subtotal=subtotal,
        credit=usd("0.00"),
        tax=subtotal.times(Decimal("0.10")),
        total=subtotal.times(Decimal("1.10")),
        released_at=datetime(2026, 11, 1, tzinfo=UTC),
    )


def usage_world(systems: FakeSystems, quantity: int, *, history: bool = True) -> str:
    """A metered subscription with `quantity` API calls counted in PERIOD; returns its id."""
    subscription_id = f"sub_m{uuid.uuid4().hex[:6]}"
    systems.metering.subscribe(metered_customer(subscription_id))
    systems.usage.count("cus_acme", PERIOD, "api_calls", quantity, events=quantity // 10)
    for period, past in HISTORY.items() if history else ():
        release = released(subscription_id, period, past)
        systems.usage.released[release.workflow_id] = release
    return subscription_id


def release_input(subscription_id: str, **fields: object) -> UsageReleaseInput:
    values: dict[str, object] = dict(
        subscription_id=subscription_id,
        customer="cus_acme",
        period=PERIOD,
        legal_entity="US01",
        currency="USD",
        meters=[API_CALLS],
        prices=[API_PRICE],
        policy=UsagePolicy(),
        approvals=ApprovalPolicy(),
        legal_entities=ENTITIES,
    )
    values.update(fields)
    return UsageReleaseInput.model_validate(values)
