"""Stripe events -> receipts (cash) and dispute events, from payloads shaped like the ones
Stripe sends (trimmed to the fields that matter)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import pytest

from adapters.stripe_webhooks import EventError, parse_event, to_dispute_event, to_payment_event, to_receipt
from canonical.cash.models import ReceiptSource
from canonical.credits import DisputeStatus
from canonical.models import LegalEntity
from canonical.money import Money

CREATED = 1767225600  # 2026-01-01T00:00:00Z
ENTITIES = [
    LegalEntity(code="US01", company_code="US01", functional_currency="USD"),
    LegalEntity(code="DE01", company_code="DE01", functional_currency="EUR", billing_account="acct_1DeGmbH"),
]


def envelope(type_: str, obj: dict, *, account: str | None = None, previous: dict | None = None) -> bytes:
    body: dict = {
        "id": "evt_1QdCash",
        "object": "event",
        "api_version": "2024-06-20",
        "created": CREATED,
        "data": {"object": obj, **({"previous_attributes": previous} if previous else {})},
        "livemode": False,
        "type": type_,
    }
    if account:
        body["account"] = account
    return json.dumps(body).encode()


def charge(**overrides) -> dict:
    obj = {
        "id": "ch_3QdCharge",
        "object": "charge",
        "amount": 120000,
        "amount_refunded": 0,
        "balance_transaction": "txn_3QdBalance",
        "currency": "usd",
        "customer": "cus_Acme",
        "invoice": "in_1QdInv",
        "created": CREATED - 86400,
        "paid": True,
        "payment_intent": "pi_3QdIntent",
        "status": "succeeded",
    }
    obj.update(overrides)
    return obj


def paid_invoice(**overrides) -> dict:
    obj = {
        "id": "in_1QdInv",
        "object": "invoice",
        "amount_due": 120000,
        "amount_paid": 120000,
        "amount_remaining": 0,
        "charge": "ch_3QdCharge",
        "currency": "usd",
        "customer": "cus_Acme",
        "paid": True,
        "paid_out_of_band": False,
        "status": "paid",
        "status_transitions": {"paid_at": CREATED - 86400},
    }
    obj.update(overrides)
    return obj


def dispute(status: str = "needs_response", **overrides) -> dict:
    obj = {
        "id": "dp_1QdDispute",
        "object": "dispute",
        "amount": 120000,
        "balance_transactions": [
            {
                "id": "txn_1QdWithdrawal",
                "object": "balance_transaction",
                "amount": -120000,
                "currency": "usd",
                "fee": 1500,
                "fee_details": [
                    {"amount": 1500, "currency": "usd", "description": "Dispute fee", "type": "stripe_fee"}
                ],
                "net": -121500,
                "type": "adjustment",
            }
        ],
        "charge": "ch_3QdCharge",
        "created": CREATED - 60,
        "currency": "usd",
        "evidence_details": {
            "due_by": CREATED + 7 * 86400,
            "has_evidence": False,
            "past_due": False,
            "submission_count": 0,
        },
        "payment_intent": "pi_3QdIntent",
        "reason": "fraudulent",
        "status": status,
    }
    obj.update(overrides)
    return obj


# -- receipts ---------------------------------------------------------------------------------


def test_a_succeeded_charge_is_a_receipt_of_the_platform_entity():
    receipt = to_receipt(parse_event(envelope("charge.succeeded", charge())), ENTITIES)
    assert receipt is not None
    assert receipt.receipt_id == "stripe:platform:ch_3QdCharge"
    assert (receipt.source, receipt.legal_entity, receipt.amount) == (
        ReceiptSource.STRIPE,
        "US01",
        Money.of("1200.00", "USD"),
    )
    assert (receipt.customer_hint, receipt.invoice_hint, receipt.charge_id, receipt.bank_reference) == (
        "cus_Acme",
        "in_1QdInv",
        "ch_3QdCharge",
        "ch_3QdCharge",
    )
    # The day the charge was made, not the day its event was sent.
    assert receipt.value_date == date(2025, 12, 31) and receipt.references == ["in_1QdInv"]


def test_invoice_paid_by_that_charge_is_the_same_receipt():
    from_charge = to_receipt(parse_event(envelope("charge.succeeded", charge())), ENTITIES)
    from_invoice = to_receipt(parse_event(envelope("invoice.paid", paid_invoice())), ENTITIES)
    assert from_charge == from_invoice


def test_a_connected_account_names_its_legal_entity():
    event = parse_event(envelope("charge.succeeded", charge(currency="eur"), account="acct_1DeGmbH"))
    receipt = to_receipt(event, ENTITIES)
    assert receipt is not None
    assert (receipt.receipt_id, receipt.legal_entity) == ("stripe:acct_1DeGmbH:ch_3QdCharge", "DE01")
    with pytest.raises(EventError, match="no legal entity"):
        to_receipt(parse_event(envelope("charge.succeeded", charge(), account="acct_1Unknown")), ENTITIES)


@pytest.mark.parametrize(
    "obj",
    [
        paid_invoice(paid_out_of_band=True, charge=None, amount_paid=120000),  # a bank transfer
        paid_invoice(charge=None),
        paid_invoice(amount_paid=0, charge="ch_3QdFailed"),  # settled by a credit note after a decline
    ],
)
def test_an_invoice_paid_without_cash_in_stripe_is_no_receipt(obj):
    assert to_receipt(parse_event(envelope("invoice.paid", obj)), ENTITIES) is None


def test_other_events_and_failed_charges_are_no_receipts():
    assert to_receipt(parse_event(envelope("charge.failed", charge(status="failed"))), ENTITIES) is None
    assert to_receipt(parse_event(envelope("charge.succeeded", charge(status="failed"))), ENTITIES) is None
    assert to_receipt(parse_event(envelope("invoice.payment_failed", paid_invoice())), ENTITIES) is None


@pytest.mark.parametrize(
    "obj",
    [charge(amount=0), charge(amount=-5), charge(amount="12.00"), charge(currency=None), charge(id=None)],
)
def test_an_unreadable_charge_is_refused(obj):
    with pytest.raises(EventError):
        to_receipt(parse_event(envelope("charge.succeeded", obj)), ENTITIES)


# -- disputes ---------------------------------------------------------------------------------


async def test_dispute_created_maps_with_fee_deadline_and_invoice():
    lookups: list[str] = []

    async def invoice_of_charge(charge_id: str) -> str | None:
        lookups.append(charge_id)
        return "in_1QdInv"

    event = await to_dispute_event(parse_event(envelope("charge.dispute.created", dispute())), invoice_of_charge)
    assert event is not None and lookups == ["ch_3QdCharge"]
    assert (event.type, event.event_id, event.occurred_at) == (
        "charge.dispute.created",
        "evt_1QdCash",
        datetime(2026, 1, 1, tzinfo=UTC),
    )
    d = event.dispute
    assert (d.dispute_id, d.charge_id, d.invoice_id, d.status) == (
        "dp_1QdDispute",
        "ch_3QdCharge",
        "in_1QdInv",
        DisputeStatus.NEEDS_RESPONSE,
    )
    assert (d.amount, d.fee, d.reason) == (Money.of("1200.00", "USD"), Money.of("15.00", "USD"), "fraudulent")
    assert d.evidence_due_by == datetime(2026, 1, 8, tzinfo=UTC) and not d.closed


@pytest.mark.parametrize(
    ("type_", "status"),
    [
        ("charge.dispute.funds_withdrawn", "needs_response"),
        ("charge.dispute.updated", "under_review"),
        ("charge.dispute.closed", "won"),
        ("charge.dispute.closed", "lost"),
        ("charge.dispute.funds_reinstated", "won"),
    ],
)
async def test_every_dispute_event_maps(type_, status):
    event = await to_dispute_event(parse_event(envelope(type_, dispute(status))), {"ch_3QdCharge": "in_1QdInv"}.get)
    assert event is not None and event.type == type_ and event.dispute.status == status
    assert event.dispute.closed is (status in ("won", "lost"))


async def test_an_expanded_charge_gives_invoice_and_customer_without_a_lookup():
    expanded = {"id": "ch_3QdCharge", "object": "charge", "invoice": "in_1QdInv", "customer": "cus_Acme"}
    event = await to_dispute_event(parse_event(envelope("charge.dispute.created", dispute(charge=expanded))))
    assert event is not None and (event.dispute.invoice_id, event.dispute.customer) == ("in_1QdInv", "cus_Acme")


async def test_a_dispute_over_a_charge_without_invoice_still_maps():
    event = await to_dispute_event(parse_event(envelope("charge.dispute.created", dispute())), {}.get)
    assert event is not None and event.dispute.invoice_id == ""


@pytest.mark.parametrize(
    "obj", [dispute(status="mystery"), dispute(amount=None), dispute(currency=None), dispute(charge=None)]
)
async def test_an_unreadable_dispute_is_refused(obj):
    with pytest.raises(EventError):
        await to_dispute_event(parse_event(envelope("charge.dispute.created", obj)))


async def test_non_dispute_events_are_none_and_dunning_still_gets_its_events():
    assert await to_dispute_event(parse_event(envelope("charge.succeeded", charge()))) is None
    created = parse_event(envelope("charge.dispute.created", dispute()))
    payment_event = await to_payment_event(created, {"ch_3QdCharge": "in_1QdInv"}.get)
    assert payment_event is not None and payment_event.dispute_id == "dp_1QdDispute"
    # The new events are for the dispute workflow; dunning ignores them.
    assert await to_payment_event(parse_event(envelope("charge.dispute.funds_withdrawn", dispute()))) is None
    assert await to_payment_event(parse_event(envelope("charge.succeeded", charge()))) is None
