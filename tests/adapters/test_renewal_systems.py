"""Renewals against the sandbox over real HTTP: a customer in another legal entity's
Stripe (Connect) account, the new term's subscription, ending the old one at the term
boundary (and undoing that), and the customer in NetSuite."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from adapters.errors import BusinessError, TransientError
from adapters.stripe import StripeBilling, add_month
from canonical.models import Account, Address, InvoiceLine, SubscriptionLine, SubscriptionTerm
from canonical.money import Money

API_KEY = "sk_test_o2c_adapters"


def usd(amount: str) -> Money:
    return Money.of(amount, "USD")


def ts(d: date) -> int:
    return int(datetime(d.year, d.month, d.day, tzinfo=UTC).timestamp())


ACME = Account(
    id="cus_acme",
    name="Acme Corp",
    email="ap@acme.test",
    billing_address=Address(line1="1 Market St", city="San Francisco", region="CA", postal_code="94105", country="US"),
    legal_entity="EU01",
    segment="enterprise",
    annual_recurring_revenue=usd("120000.00"),
    success_owner="dana@o2c.test",
)


def term(account_id: str, start: date = date(2026, 1, 1)) -> SubscriptionTerm:
    return SubscriptionTerm(
        account_id=account_id,
        contract_id="C-100",
        currency="USD",
        term_start=start,
        term_end=date(start.year + 1, start.month, start.day),
        legal_entity="EU01",
        lines=[
            SubscriptionLine(product="prod_seats", description="Platform seats", quantity=12, unit_price=usd("52.50")),
            SubscriptionLine(
                product="prod_support",
                description="Premium support",
                quantity=1,
                unit_price=usd("214.00"),
                discount_percent=Decimal("10"),
            ),
        ],
    )


def test_add_month_clamps_to_the_end_of_the_month():
    assert add_month(date(2026, 1, 1)) == date(2026, 2, 1)
    assert add_month(date(2026, 1, 31)) == date(2026, 2, 28)
    assert add_month(date(2028, 1, 31)) == date(2028, 2, 29)
    assert add_month(date(2026, 12, 15)) == date(2027, 1, 15)


# -- customers in a connected account ---------------------------------------------------------


async def test_create_customer_in_a_connected_account(stripe, sandbox):
    created = await stripe.create_customer(ACME, billing_account="acct_eu01", idempotency_key="renewal-C-100/cust")
    assert created.id.startswith("cus_") and created.id != ACME.id
    assert created.model_dump(exclude={"id"}) == ACME.model_dump(exclude={"id"})
    [record] = sandbox.records("stripe", "customer")
    assert record["_stripe_account"] == "acct_eu01"
    assert record["metadata"]["o2c_account"] == "cus_acme"
    assert record["metadata"]["arr"] == "120000.00"
    assert record["address"]["state"] == "CA"


async def test_customer_idempotency_keys_are_scoped_per_account(stripe, sandbox):
    first = await stripe.create_customer(ACME, billing_account="acct_eu01", idempotency_key="k/customer")
    again = await stripe.create_customer(ACME, billing_account="acct_eu01", idempotency_key="k/customer")
    assert again.id == first.id
    assert sandbox.count("stripe", "customer") == 1

    other = await stripe.create_customer(ACME, billing_account="acct_uk01", idempotency_key="k/customer")
    platform = await stripe.create_customer(ACME, billing_account="", idempotency_key="k/customer")
    assert len({first.id, other.id, platform.id}) == 3
    accounts = {r["id"]: r.get("_stripe_account") for r in sandbox.records("stripe", "customer")}
    assert accounts == {first.id: "acct_eu01", other.id: "acct_uk01", platform.id: None}


async def test_customer_creation_whose_answer_is_lost_converges_on_retry(sandbox):
    sandbox.fault(
        "stripe", "commit_then_timeout", method="POST", path_contains="/v1/customers", times=1, hold_seconds=2
    )
    client = StripeBilling(sandbox.stripe_url, API_KEY, timeout=1)
    try:
        with pytest.raises(TransientError):
            await client.create_customer(ACME, billing_account="acct_eu01", idempotency_key="lost/customer")
        created = await client.create_customer(ACME, billing_account="acct_eu01", idempotency_key="lost/customer")
    finally:
        await client.aclose()
    [record] = sandbox.records("stripe", "customer")
    assert record["id"] == created.id


# -- the new term's subscription --------------------------------------------------------------


async def test_create_subscription_for_the_new_term(stripe, sandbox):
    customer = await stripe.create_customer(ACME, billing_account="acct_eu01", idempotency_key="r/customer")
    sub = await stripe.create_subscription(
        term(customer.id), billing_account="acct_eu01", idempotency_key="r/subscription"
    )
    assert sub.id.startswith("sub_") and sub.account_id == customer.id
    assert (sub.status, sub.contract_id, sub.currency) == ("active", "C-100", "USD")
    assert (sub.current_period_start, sub.current_period_end) == (date(2026, 1, 1), date(2026, 2, 1))
    assert (sub.term_start, sub.term_end) == (date(2026, 1, 1), date(2027, 1, 1))
    assert [
        (line.product, line.description, line.quantity, line.unit_price, line.discount_percent) for line in sub.lines
    ] == [
        ("prod_seats", "Platform seats", 12, usd("52.50"), Decimal("0")),
        ("prod_support", "Premium support", 1, usd("214.00"), Decimal("10")),
    ]
    assert await stripe.get_subscription(sub.id) == sub

    [record] = sandbox.records("stripe", "subscription")
    assert record["_stripe_account"] == "acct_eu01"
    assert record["metadata"] == {
        "contract_id": "C-100",
        "term_start": "2026-01-01",
        "term_end": "2027-01-01",
        "legal_entity": "EU01",
    }
    assert record["billing_cycle_anchor"] == ts(date(2026, 2, 1))
    assert record["items"]["data"][0]["price"]["unit_amount_decimal"] == "5250"
    assert record["items"]["data"][0]["price"]["recurring"]["interval"] == "month"
    [creation] = sandbox.records("stripe", "subscription_creation")
    assert creation["proration_behavior"] == "none"
    # o2c invoices the first period itself (with tax): billing creates no invoice.
    assert sandbox.count("stripe", "invoice") == 0
    assert sandbox.count("stripe", "invoiceitem") == 0
    [event] = [e for e in sandbox.records("stripe", "event") if e["type"] == "customer.subscription.created"]
    assert event["account"] == "acct_eu01"
    # Stripe fixes the customer's currency with its first subscription.
    assert (await stripe.get_account(customer.id)).annual_recurring_revenue == usd("120000.00")

    again = await stripe.create_subscription(
        term(customer.id), billing_account="acct_eu01", idempotency_key="r/subscription"
    )
    assert again == sub
    assert sandbox.count("stripe", "subscription") == 1


async def test_subscription_anchor_on_the_31st_lands_on_the_last_day_of_next_month(stripe, sandbox):
    customer = await stripe.create_customer(ACME, billing_account="", idempotency_key="r31/customer")
    sub = await stripe.create_subscription(
        term(customer.id, date(2026, 1, 31)), billing_account="", idempotency_key="r31/subscription"
    )
    assert (sub.current_period_start, sub.current_period_end) == (date(2026, 1, 31), date(2026, 2, 28))


async def test_subscription_needs_its_customer_in_the_same_account(stripe, sandbox):
    customer = await stripe.create_customer(ACME, billing_account="acct_eu01", idempotency_key="x/customer")
    with pytest.raises(BusinessError) as info:
        await stripe.create_subscription(
            term(customer.id), billing_account="acct_uk01", idempotency_key="x/subscription"
        )
    assert info.value.code == "resource_missing"
    assert sandbox.count("stripe", "subscription") == 0


async def test_subscription_lines_must_be_in_the_term_currency(stripe, sandbox):
    bad = term("cus_x").model_copy(
        update={"lines": [SubscriptionLine(product="p", quantity=1, unit_price=Money.of("10.00", "EUR"))]}
    )
    with pytest.raises(BusinessError) as info:
        await stripe.create_subscription(bad, billing_account="", idempotency_key="cur/subscription")
    assert info.value.code == "currency_mismatch"


# -- ending the old subscription at the term boundary ----------------------------------------


async def test_end_subscription_at_the_boundary_and_undo_it(stripe, sandbox, seeded):
    boundary = date(2026, 1, 1)
    ended = await stripe.end_subscription_at("sub_acme", boundary, idempotency_key="r/end-old")
    assert ended.status == "active"
    [record] = sandbox.records("stripe", "subscription")
    assert record["cancel_at"] == ts(boundary)
    [update] = sandbox.records("stripe", "subscription_update")
    assert update["proration_behavior"] == "none"

    again = await stripe.end_subscription_at("sub_acme", boundary, idempotency_key="r/end-old")
    assert again == ended
    assert sandbox.count("stripe", "subscription_update") == 1  # already ending then: nothing sent

    resumed = await stripe.cancel_subscription_end("sub_acme", idempotency_key="r/end-old/undo")
    assert resumed.status == "active"
    [record] = sandbox.records("stripe", "subscription")
    assert record["cancel_at"] is None
    updates = sandbox.records("stripe", "subscription_update")
    assert updates[-1]["params"] == {"cancel_at": ""}
    await stripe.cancel_subscription_end("sub_acme", idempotency_key="r/end-old/undo")
    assert sandbox.count("stripe", "subscription_update") == 2

    events = [e for e in sandbox.records("stripe", "event") if e["type"] == "customer.subscription.updated"]
    assert [e["data"]["previous_attributes"] for e in events] == [{"cancel_at": None}, {"cancel_at": ts(boundary)}]


async def test_the_same_end_key_replays_even_after_a_lost_answer(sandbox, seeded):
    sandbox.fault(
        "stripe",
        "commit_then_timeout",
        method="POST",
        path_contains="/v1/subscriptions/sub_acme",
        times=1,
        hold_seconds=2,
    )
    client = StripeBilling(sandbox.stripe_url, API_KEY, timeout=1)
    try:
        with pytest.raises(TransientError):
            await client.end_subscription_at("sub_acme", date(2026, 1, 1), idempotency_key="lost/end")
        await client.end_subscription_at("sub_acme", date(2026, 1, 1), idempotency_key="lost/end")
    finally:
        await client.aclose()
    assert sandbox.count("stripe", "subscription_update") == 1
    assert sandbox.records("stripe", "subscription")[0]["cancel_at"] == ts(date(2026, 1, 1))


async def test_ending_a_canceled_subscription_changes_nothing_and_cannot_be_undone(stripe, sandbox, seeded):
    await stripe.cancel_subscription("sub_acme", idempotency_key="dunning/cancel")
    ended = await stripe.end_subscription_at("sub_acme", date(2026, 1, 1), idempotency_key="r/end")
    assert ended.status == "canceled"
    assert sandbox.count("stripe", "subscription_update") == 0
    sandbox_sub = sandbox.records("stripe", "subscription")[0]
    assert sandbox_sub.get("cancel_at") is None
    # Nothing to undo on a canceled subscription without a cancel_at: returned as it is.
    assert (await stripe.cancel_subscription_end("sub_acme", idempotency_key="r/undo")).status == "canceled"


async def test_missing_subscription_is_a_business_error(stripe, sandbox):
    with pytest.raises(BusinessError):
        await stripe.end_subscription_at("sub_missing", date(2026, 1, 1), idempotency_key="m/end")
    with pytest.raises(BusinessError):
        await stripe.cancel_subscription_end("sub_missing", idempotency_key="m/undo")


# -- NetSuite customers ------------------------------------------------------------------------


async def test_netsuite_customer_upsert_by_external_id(netsuite, sandbox):
    internal_id = await netsuite.upsert_customer(ACME, subsidiary="3")
    assert internal_id.isdigit()
    moved = ACME.model_copy(update={"email": "billing@acme.test"})
    assert await netsuite.upsert_customer(moved, subsidiary="3") == internal_id
    [record] = sandbox.records("netsuite", "customer")
    assert record["externalId"] == "cus_acme"
    assert record["companyName"] == "Acme Corp"
    assert record["subsidiary"] == {"id": "3"}
    assert record["email"] == "billing@acme.test"
    [address] = record["addressBook"]["items"]
    assert address["defaultBilling"] is True
    assert address["addressBookAddress"]["zip"] == "94105"

    read = await netsuite.get_customer("cus_acme")
    assert (read.id, read.name, read.email) == ("cus_acme", "Acme Corp", "billing@acme.test")
    assert read.billing_address == ACME.billing_address
    assert await netsuite.get_customer("cus_never") is None


async def test_netsuite_customer_needs_a_name(netsuite, sandbox):
    with pytest.raises(BusinessError) as info:
        await netsuite.upsert_customer(ACME.model_copy(update={"name": ""}), subsidiary="1")
    assert info.value.code == "USER_ERROR"
    assert sandbox.count("netsuite", "customer") == 0


async def test_an_end_that_took_effect_cannot_be_undone(stripe, sandbox, seeded):
    await stripe.end_subscription_at("sub_acme", date(2026, 1, 1), idempotency_key="e/end")
    await stripe.cancel_subscription("sub_acme", idempotency_key="e/cancel")  # as Stripe does at cancel_at
    with pytest.raises(BusinessError) as info:
        await stripe.cancel_subscription_end("sub_acme", idempotency_key="e/undo")
    assert info.value.code == "subscription_canceled"


async def test_the_first_period_is_invoiced_in_the_connected_account(stripe, sandbox):
    customer = await stripe.create_customer(ACME, billing_account="acct_eu01", idempotency_key="i/customer")
    sub = await stripe.create_subscription(
        term(customer.id), billing_account="acct_eu01", idempotency_key="i/subscription"
    )
    args = dict(
        account_id=customer.id,
        subscription_id=sub.id,
        currency="USD",
        lines=[InvoiceLine(product="prod_seats", description="Seats, first month", amount=usd("630.00"))],
        description="Renewal C-100, first period",
        metadata={"contract_id": "C-100"},
    )
    with pytest.raises(BusinessError) as info:  # without the account, the customer does not exist
        await stripe.create_proration_invoice(**args, idempotency_key="i/invoice-platform")
    assert info.value.code == "resource_missing"
    invoice = await stripe.create_proration_invoice(**args, idempotency_key="i/invoice", billing_account="acct_eu01")
    assert (invoice.status, invoice.total) == ("open", usd("630.00"))
    [record] = sandbox.records("stripe", "invoice")
    assert record["_stripe_account"] == "acct_eu01"
    voided = await stripe.void_invoice(invoice.id, idempotency_key="i/void", billing_account="acct_eu01")
    assert voided.status == "void"
