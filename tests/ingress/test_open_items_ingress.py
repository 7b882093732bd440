"""Billing's invoices into o2c's cash store at the webhook ingress, over real HTTP: a
finalised invoice becomes an open item in the legal entity of its Stripe account; voided,
uncollectible or paid without a card charge, its balance goes down; a card payment's
`invoice.paid` leaves the balance to the receipt's cash application."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, date, datetime

import pytest

from adapters.storage.cash import SqlCashStore
from canonical.models import LegalEntity
from canonical.money import Money
from tests.ingress.ingress_kit import serve
from tests.ingress.test_stripe_ingress import event, post, terminated_afterwards

ENTITIES = [
    LegalEntity(code="US01", company_code="US01", functional_currency="USD"),
    LegalEntity(code="GB01", company_code="GB01", functional_currency="GBP", billing_account="acct_gb"),
]
DUE = int(datetime(2026, 12, 31, tzinfo=UTC).timestamp())
FINALIZED = int(datetime(2026, 12, 1, 9, tzinfo=UTC).timestamp())


@pytest.fixture
def store(tmp_path) -> SqlCashStore:
    return SqlCashStore(f"sqlite:///{tmp_path / 'cash.sqlite'}")


def invoice(invoice_id: str, *, total: int = 48000, remaining: int | None = None, **fields) -> dict:
    return {
        "id": invoice_id,
        "object": "invoice",
        "number": f"ACME-{invoice_id[-4:].upper()}",
        "customer": "cus_Acme",
        "currency": "usd",
        "status": "open",
        "total": total,
        "amount_due": total,
        "amount_remaining": total if remaining is None else remaining,
        "due_date": DUE,
        "created": FINALIZED - 3600,
        "status_transitions": {"finalized_at": FINALIZED},
        **fields,
    }


def in_account(body: bytes, account: str) -> bytes:
    """The event as Stripe sends it from a connected account (`account` at the top)."""
    return body.replace(b'"object": "event"', f'"object": "event", "account": "{account}"'.encode(), 1)


def new_invoice_id() -> str:
    return f"in_{uuid.uuid4().hex[:12]}"


async def test_a_finalised_invoice_becomes_an_open_item_once_however_often_it_arrives(ingress_env, store):
    invoice_id = new_invoice_id()
    async with serve(ingress_env.client, cash=store, legal_entities=ENTITIES) as ingress:
        body = event("invoice.finalized", invoice(invoice_id))
        for _ in range(2):
            response = await post(ingress, body)
            assert response.status_code == 200, response.text
            assert response.json() == {"received": True, "workflows": []}
    [item] = await store.open_items(invoice_refs=[invoice_id])
    assert (item.customer, item.legal_entity, item.number) == ("cus_Acme", "US01", f"ACME-{invoice_id[-4:].upper()}")
    assert item.total == item.balance == Money.of("480.00", "USD")
    assert (item.issued_on, item.due_on) == (date(2026, 12, 1), date(2026, 12, 31))
    # Found by the customer as well as by the number a remittance would quote.
    assert [i.invoice_id for i in await store.open_items(customer="cus_Acme")] == [invoice_id]
    assert [i.invoice_id for i in await store.open_items(invoice_refs=[item.number])] == [invoice_id]


async def test_an_invoice_of_a_connected_account_is_kept_in_the_entity_billing_from_it(ingress_env, store):
    invoice_id = new_invoice_id()
    async with serve(ingress_env.client, cash=store, legal_entities=ENTITIES) as ingress:
        body = in_account(event("invoice.finalized", invoice(invoice_id, currency="gbp")), "acct_gb")
        assert (await post(ingress, body)).status_code == 200
        unknown = in_account(event("invoice.finalized", invoice(new_invoice_id())), "acct_nobody")
        refused = await post(ingress, unknown)
    [item] = await store.open_items(invoice_refs=[invoice_id])
    assert item.legal_entity == "GB01" and item.balance == Money.of("480.00", "GBP")
    # No legal entity bills from that account: refused, nothing kept.
    assert refused.status_code == 400 and "acct_nobody" in refused.json()["reason"]


@pytest.mark.parametrize("type_", ["invoice.voided", "invoice.marked_uncollectible"])
async def test_a_voided_or_uncollectible_invoice_has_nothing_left_to_receive(ingress_env, store, type_):
    invoice_id = new_invoice_id()
    async with serve(ingress_env.client, cash=store, legal_entities=ENTITIES) as ingress:
        await post(ingress, event("invoice.finalized", invoice(invoice_id)))
        status = "void" if type_ == "invoice.voided" else "uncollectible"
        assert (await post(ingress, event(type_, invoice(invoice_id, status=status)))).status_code == 200
    [item] = await store.open_items(invoice_refs=[invoice_id])
    assert item.balance == Money.zero("USD") and item.total == Money.of("480.00", "USD")
    assert await store.open_items(customer="cus_Acme") == []


async def test_paid_without_a_card_charge_lowers_the_balance_and_a_late_finalized_does_not_raise_it(ingress_env, store):
    invoice_id = new_invoice_id()
    async with serve(ingress_env.client, cash=store, legal_entities=ENTITIES) as ingress:
        await post(ingress, event("invoice.finalized", invoice(invoice_id)))
        paid = invoice(invoice_id, remaining=0, status="paid", amount_paid=48000, paid_out_of_band=True)
        assert (await post(ingress, event("invoice.paid", paid))).status_code == 200
        # Stripe delivers out of order: the finalisation arriving again changes nothing.
        await post(ingress, event("invoice.finalized", invoice(invoice_id)))
    [item] = await store.open_items(invoice_refs=[invoice_id])
    assert item.balance == Money.zero("USD")


async def test_a_card_payments_invoice_paid_leaves_the_balance_to_its_cash_application(ingress_env, store):
    """Lowered here, the receipt would find its invoice settled and wait as a duplicate."""
    invoice_id, charge_id = new_invoice_id(), f"ch_{uuid.uuid4().hex[:10]}"
    workflow_id = f"cash-stripe:platform:{charge_id}"
    async with (
        serve(ingress_env.client, cash=store, legal_entities=ENTITIES) as ingress,
        terminated_afterwards(ingress_env.client, workflow_id),
    ):
        await post(ingress, event("invoice.finalized", invoice(invoice_id)))
        paid = invoice(
            invoice_id,
            remaining=0,
            status="paid",
            amount_paid=48000,
            charge=charge_id,
            status_transitions={"finalized_at": FINALIZED, "paid_at": int(time.time())},
        )
        response = await post(ingress, event("invoice.paid", paid))
        assert response.json()["workflows"] == [workflow_id]
    [item] = await store.open_items(invoice_refs=[invoice_id])
    assert item.balance == Money.of("480.00", "USD")
    assert (await store.receipt(f"stripe:platform:{charge_id}")) is not None


@pytest.mark.parametrize(
    ("fields", "says"),
    [
        ({"customer": None}, "names no customer"),
        ({"total": "480.00"}, "whole-number total"),
        ({"currency": "zzz"}, "ZZZ"),
    ],
)
async def test_an_invoice_missing_what_the_store_needs_is_refused_and_nothing_kept(ingress_env, store, fields, says):
    invoice_id = new_invoice_id()
    async with serve(ingress_env.client, cash=store, legal_entities=ENTITIES) as ingress:
        response = await post(ingress, event("invoice.finalized", invoice(invoice_id, **fields)))
    assert response.status_code == 400 and says in response.json()["reason"]
    assert await store.open_items(invoice_refs=[invoice_id]) == []


async def test_an_invoice_with_nothing_to_receive_is_acknowledged_and_not_kept(ingress_env, store):
    invoice_id = new_invoice_id()
    async with serve(ingress_env.client, cash=store, legal_entities=ENTITIES) as ingress:
        response = await post(ingress, event("invoice.finalized", invoice(invoice_id, total=0)))
    assert response.json() == {"received": True, "workflows": []}
    assert await store.open_items(invoice_refs=[invoice_id]) == []


async def test_a_bad_signature_keeps_nothing(ingress_env, store):
    invoice_id = new_invoice_id()
    async with serve(ingress_env.client, cash=store, legal_entities=ENTITIES) as ingress:
        response = await post(ingress, event("invoice.finalized", invoice(invoice_id)), secret="whsec_other")
    assert response.status_code == 400
    assert await store.open_items(invoice_refs=[invoice_id]) == []
