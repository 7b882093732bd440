"""Hostile dispute events at POST /webhooks/stripe, correctly signed (create_webhook_app in
process, with billing resolving charges and a Temporal client that records every call): a
dispute with no id or no charge, an amount that is not whole minor units or not positive, a
currency or a status nobody knows. Each is refused with 400 and reaches no dispute workflow."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.stripe_webhooks import sign
from canonical.money import MINOR_UNITS
from starter.webhooks import STRIPE_PATH, create_webhook_app
from tests.badinput.kit import RecordingClient

SECRET = "whsec_disputes"
NOW = 1_800_000_000
SETTINGS = settings(deadline=None, max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
TYPES = ["charge.dispute.created", "charge.dispute.closed", "charge.dispute.funds_withdrawn"]


class ChargeBilling:
    """Billing as the ingress sees it for a dispute: which invoice a charge paid."""

    def __init__(self) -> None:
        self.lookups: list[str] = []

    async def invoice_of_charge(self, charge_id: str) -> str | None:
        self.lookups.append(charge_id)
        return "in_1" if charge_id == "ch_1" else None

    async def get_invoice(self, invoice_id: str) -> None:
        return None  # the ingress asks whose invoice it is; this billing does not say


async def post(body: bytes) -> tuple[httpx.Response, RecordingClient]:
    client = RecordingClient()
    app = create_webhook_app(
        client,  # type: ignore[arg-type]
        secret=SECRET,
        billing=ChargeBilling(),  # type: ignore[arg-type]
        clock=lambda: NOW,
    )
    headers = {"Content-Type": "application/json", "Stripe-Signature": sign(body, SECRET, NOW)}
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://ingress") as http:
        return await http.post(STRIPE_PATH, content=body, headers=headers), client


def event(type_: str, **dispute: Any) -> bytes:
    obj = {
        "id": "dp_1",
        "object": "dispute",
        "charge": "ch_1",
        "amount": 5000,
        "currency": "usd",
        "reason": "fraudulent",
        "status": "needs_response" if type_ != "charge.dispute.closed" else "lost",
        **dispute,
    }
    obj = {k: v for k, v in obj.items() if v is not ...}
    return json.dumps(
        {
            "id": "evt_1",
            "object": "event",
            "api_version": "2024-06-20",
            "created": NOW,
            "livemode": False,
            "type": type_,
            "data": {"object": obj},
        }
    ).encode()


def refused(response: httpx.Response, client: RecordingClient) -> None:
    assert client.calls == [], f"{client.calls}: a workflow was reached"
    assert response.status_code == 400, response.text
    answer = response.json()
    assert answer["received"] is False and answer["reason"]


HOSTILE = {
    "no dispute id": {"id": ...},
    "an empty dispute id": {"id": ""},
    "no charge": {"charge": ...},
    "a charge that is a number": {"charge": 42},
    "no amount": {"amount": ...},
    "an amount in a string": {"amount": "5000"},
    "an amount of fractions": {"amount": 50.5},
    "a boolean amount": {"amount": True},
    "a negative amount": {"amount": -5000},
    "no currency": {"currency": ...},
    "an unknown status": {"status": "maybe"},
}


@pytest.mark.parametrize("type_", TYPES)
@pytest.mark.parametrize("why", sorted(HOSTILE))
async def test_a_hostile_dispute_is_refused_and_reaches_no_workflow(type_, why):
    refused(*await post(event(type_, **HOSTILE[why])))


@SETTINGS
@given(
    type_=st.sampled_from(TYPES),
    currency=st.one_of(
        st.text(max_size=6).filter(lambda c: c.upper() not in MINOR_UNITS),
        st.integers(),
        st.lists(st.text(), max_size=2),
    ),
)
async def test_a_dispute_in_an_unknown_currency_is_refused(type_, currency):
    refused(*await post(event(type_, currency=currency)))


async def test_the_baseline_dispute_does_reach_temporal():
    # The recording client refuses every call, so reaching it at all is the proof.
    response, client = await post(event("charge.dispute.created"))
    assert client.calls, (response.status_code, response.text)
