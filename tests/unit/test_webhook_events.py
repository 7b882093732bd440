"""Stripe events -> PaymentEvent, from payloads shaped like the ones Stripe sends
(trimmed to the fields that matter, plus a few that do not)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from adapters.stripe_webhooks import EventError, StripeEvent, parse_event, to_payment_event
from canonical.models import PaymentEventKind
from canonical.money import Money

CREATED = 1767225600  # 2026-01-01T00:00:00Z


def envelope(type_: str, obj: dict, previous: dict | None = None, event_id: str = "evt_1QdTestAbC") -> bytes:
    data: dict = {"object": obj}
    if previous is not None:
        data["previous_attributes"] = previous
    return json.dumps(
        {
            "id": event_id,
            "object": "event",
            "api_version": "2024-06-20",
            "created": CREATED,
            "data": data,
            "livemode": False,
            "pending_webhooks": 1,
            "request": {"id": None, "idempotency_key": None},
            "type": type_,
        }
    ).encode()


def invoice(**overrides) -> dict:
    obj = {
        "id": "in_1QdInv",
        "object": "invoice",
        "account_country": "US",
        "amount_due": 120000,
        "amount_paid": 0,
        "amount_remaining": 120000,
        "attempt_count": 1,
        "attempted": True,
        "billing_reason": "subscription_cycle",
        "charge": "ch_3QdCharge",
        "collection_method": "charge_automatically",
        "currency": "usd",
        "customer": "cus_Acme",
        "customer_email": "billing@acme.test",
        "lines": {"object": "list", "data": [], "has_more": False},
        "next_payment_attempt": CREATED + 3 * 86400,
        "number": "ACME-0042",
        "paid": False,
        "payment_intent": "pi_3QdIntent",
        "status": "open",
        "subscription": "sub_1QdAcme",
        "total": 120000,
    }
    obj.update(overrides)
    return obj


def dispute(status: str = "needs_response", charge: object = "ch_3QdCharge") -> dict:
    return {
        "id": "dp_1QdDispute",
        "object": "dispute",
        "amount": 120000,
        "charge": charge,
        "currency": "usd",
        "evidence_details": {"due_by": CREATED + 7 * 86400, "has_evidence": False},
        "is_charge_refundable": False,
        "livemode": False,
        "payment_intent": "pi_3QdIntent",
        "reason": "fraudulent",
        "status": status,
    }


async def mapped(payload: bytes, lookup=None):
    return await to_payment_event(parse_event(payload), lookup)


def usd(amount: str) -> Money:
    return Money.of(Decimal(amount), "USD")


async def test_payment_failed():
    event = await mapped(
        envelope(
            "invoice.payment_failed",
            invoice(
                last_payment_error={"type": "card_error", "code": "card_declined", "decline_code": "insufficient_funds"}
            ),
        )
    )
    assert event.kind == PaymentEventKind.PAYMENT_FAILED
    assert event.event_id == "evt_1QdTestAbC"
    assert event.occurred_at == datetime(2026, 1, 1, tzinfo=UTC)
    assert (event.invoice_id, event.account_id, event.subscription_id) == ("in_1QdInv", "cus_Acme", "sub_1QdAcme")
    assert event.amount_due == usd("1200.00")
    assert event.amount_remaining == usd("1200.00")
    assert event.decline_code == "insufficient_funds"


async def test_payment_failed_without_decline_code_in_the_payload():
    event = await mapped(envelope("invoice.payment_failed", invoice()))
    assert event.kind == PaymentEventKind.PAYMENT_FAILED
    assert event.decline_code == ""


async def test_payment_failed_decline_code_on_an_expanded_payment_intent():
    intent = {
        "id": "pi_3QdIntent",
        "object": "payment_intent",
        "last_payment_error": {"type": "card_error", "code": "expired_card", "decline_code": "expired_card"},
    }
    event = await mapped(envelope("invoice.payment_failed", invoice(payment_intent=intent)))
    assert event.decline_code == "expired_card"


async def test_amounts_use_the_invoice_currency_minor_unit():
    jpy = await mapped(
        envelope("invoice.payment_failed", invoice(currency="jpy", amount_due=50000, amount_remaining=20000))
    )
    assert jpy.amount_due == Money.of(50000, "JPY")
    assert jpy.amount_remaining == Money.of(20000, "JPY")
    bhd = await mapped(
        envelope("invoice.payment_failed", invoice(currency="bhd", amount_due=12345, amount_remaining=12345))
    )
    assert bhd.amount_due == Money.of(Decimal("12.345"), "BHD")


async def test_expanded_customer_and_subscription():
    event = await mapped(
        envelope(
            "invoice.payment_failed",
            invoice(customer={"id": "cus_Acme", "object": "customer"}, subscription={"id": "sub_1QdAcme"}),
        )
    )
    assert (event.account_id, event.subscription_id) == ("cus_Acme", "sub_1QdAcme")


@pytest.mark.parametrize("type_", ["invoice.paid", "invoice.payment_succeeded"])
async def test_paid(type_):
    event = await mapped(envelope(type_, invoice(amount_paid=120000, amount_remaining=0, paid=True, status="paid")))
    assert event.kind == PaymentEventKind.PAID
    assert event.invoice_id == "in_1QdInv"
    assert event.amount_remaining == usd("0")
    assert event.decline_code == ""


async def test_partial_payment_changes_the_balance():
    event = await mapped(
        envelope(
            "invoice.updated",
            invoice(amount_paid=50000, amount_remaining=70000),
            previous={"amount_paid": 0, "amount_remaining": 120000},
        )
    )
    assert event.kind == PaymentEventKind.BALANCE_CHANGED
    assert event.amount_remaining == usd("700.00")
    assert event.amount_due == usd("1200.00")


async def test_other_invoice_updates_are_ignored():
    assert await mapped(envelope("invoice.updated", invoice(), previous={"metadata": {}})) is None
    assert await mapped(envelope("invoice.updated", invoice())) is None


async def test_dispute_opened_resolves_the_invoice_through_an_async_lookup():
    asked = []

    async def invoice_of_charge(charge_id: str) -> str | None:
        asked.append(charge_id)
        return "in_1QdInv"

    event = await mapped(envelope("charge.dispute.created", dispute()), invoice_of_charge)
    assert asked == ["ch_3QdCharge"]
    assert event.kind == PaymentEventKind.DISPUTE_OPENED
    assert (event.invoice_id, event.dispute_id) == ("in_1QdInv", "dp_1QdDispute")
    assert event.amount_due == usd("1200.00")
    assert event.dispute_won is None


@pytest.mark.parametrize(("status", "won"), [("won", True), ("lost", False), ("warning_closed", False)])
async def test_dispute_closed_with_a_sync_lookup(status, won):
    event = await mapped(envelope("charge.dispute.closed", dispute(status)), {"ch_3QdCharge": "in_1QdInv"}.get)
    assert event.kind == PaymentEventKind.DISPUTE_CLOSED
    assert event.invoice_id == "in_1QdInv"
    assert event.dispute_won is won


async def test_dispute_with_an_expanded_charge_needs_no_lookup():
    charge = {"id": "ch_3QdCharge", "object": "charge", "customer": "cus_Acme", "invoice": "in_1QdInv"}
    event = await mapped(envelope("charge.dispute.created", dispute(charge=charge)))
    assert (event.invoice_id, event.account_id) == ("in_1QdInv", "cus_Acme")


async def test_dispute_over_a_charge_without_invoice_is_ignored():
    assert await mapped(envelope("charge.dispute.created", dispute()), {}.get) is None
    assert await mapped(envelope("charge.dispute.created", dispute())) is None  # no lookup given


async def test_payment_method_attached():
    pm = {
        "id": "pm_1QdCard",
        "object": "payment_method",
        "type": "card",
        "card": {"brand": "visa", "last4": "4242", "exp_month": 12, "exp_year": 2030},
        "customer": "cus_Acme",
    }
    event = await mapped(envelope("payment_method.attached", pm))
    assert event.kind == PaymentEventKind.PAYMENT_METHOD_UPDATED
    assert event.account_id == "cus_Acme"
    assert event.invoice_id == ""


def customer(default_pm: str | None) -> dict:
    return {
        "id": "cus_Acme",
        "object": "customer",
        "email": "billing@acme.test",
        "invoice_settings": {"custom_fields": None, "default_payment_method": default_pm, "footer": None},
    }


async def test_customer_default_payment_method_changed():
    event = await mapped(
        envelope(
            "customer.updated", customer("pm_new"), previous={"invoice_settings": {"default_payment_method": "pm_old"}}
        )
    )
    assert event.kind == PaymentEventKind.PAYMENT_METHOD_UPDATED
    assert event.account_id == "cus_Acme"
    first = await mapped(
        envelope(
            "customer.updated", customer("pm_new"), previous={"invoice_settings": {"default_payment_method": None}}
        )
    )
    assert first.kind == PaymentEventKind.PAYMENT_METHOD_UPDATED


async def test_other_customer_updates_are_ignored():
    assert await mapped(envelope("customer.updated", customer("pm_1"), previous={"email": "old@acme.test"})) is None
    assert (
        await mapped(
            envelope(
                "customer.updated",
                customer(None),  # default removed: nothing to retry with
                previous={"invoice_settings": {"default_payment_method": "pm_old"}},
            )
        )
        is None
    )


@pytest.mark.parametrize(
    "type_", ["invoice.finalized", "customer.subscription.updated", "payment_intent.payment_failed", "charge.succeeded"]
)
async def test_unhandled_types_are_ignored(type_):
    assert await mapped(envelope(type_, {"id": "x_1", "object": "thing"})) is None


def test_parse_event_envelope():
    event = parse_event(envelope("invoice.updated", invoice(), previous={"amount_remaining": 1}))
    assert isinstance(event, StripeEvent)
    assert (event.id, event.type, event.created) == ("evt_1QdTestAbC", "invoice.updated", CREATED)
    assert event.object["id"] == "in_1QdInv"
    assert event.previous_attributes == {"amount_remaining": 1}
    assert event.api_version == "2024-06-20"


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b"\xff\xfe",
        b"[]",
        b'"evt"',
        b'{"object":"invoice","id":"in_1","type":"x","created":1,"data":{"object":{}}}',
        b'{"type":"invoice.paid","created":1,"data":{"object":{}}}',
        b'{"id":"evt_1","created":1,"data":{"object":{}}}',
        b'{"id":"evt_1","type":"invoice.paid","created":"1","data":{"object":{}}}',
        b'{"id":"evt_1","type":"invoice.paid","created":1}',
        b'{"id":"evt_1","type":"invoice.paid","created":1,"data":{"object":[]}}',
        b'{"id":"evt_1","type":"invoice.paid","created":1,"data":{"object":{},"previous_attributes":[]}}',
    ],
)
def test_parse_event_refuses_what_is_not_an_event(body):
    with pytest.raises(EventError):
        parse_event(body)


@pytest.mark.parametrize(
    "obj",
    [
        invoice(currency="xxx"),
        invoice(currency=None),
        invoice(id=None),
        invoice(amount_due="120000"),
        invoice(amount_due=1200.5),
    ],
)
async def test_handled_event_without_what_o2c_needs_is_an_event_error(obj):
    with pytest.raises(EventError):
        await mapped(envelope("invoice.payment_failed", obj))
