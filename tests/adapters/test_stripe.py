from __future__ import annotations

from datetime import date
from decimal import Decimal

import httpx
import pytest

from adapters.errors import BusinessError, IntegrationBug, TransientError
from adapters.stripe import StripeBilling
from adapters.stripe_api import encode_form
from canonical.models import InvoiceLine, SubscriptionLine
from canonical.money import Money
from sandbox.core import parse_nested

API_KEY = "sk_test_o2c_adapters"  # the same key the fixtures use


def usd(amount: str) -> Money:
    return Money.of(amount, "USD")


def test_form_encoding_of_nested_params_round_trips():
    params = {
        "items": [
            {
                "id": "si_1",
                "quantity": 3,
                "price_data": {
                    "currency": "usd",
                    "product": "prod_a",
                    "unit_amount_decimal": Decimal("1250.5"),
                    "recurring": {"interval": "month"},
                },
            },
            {"id": "si_2", "deleted": True},
        ],
        "metadata": {"contract_id": "C-1"},
        "proration_behavior": "none",
        "absent": None,
    }
    pairs = encode_form(params)
    assert ("items[0][price_data][unit_amount_decimal]", "1250.5") in pairs
    assert ("items[1][deleted]", "true") in pairs
    assert ("metadata[contract_id]", "C-1") in pairs
    assert not any(key.startswith("absent") for key, _ in pairs)
    decoded = parse_nested(pairs)
    assert decoded["items"][0]["price_data"]["recurring"]["interval"] == "month"
    assert decoded["items"][1] == {"id": "si_2", "deleted": "true"}


async def test_reads_customer_and_subscription(stripe, seeded):
    account = await stripe.get_account("cus_acme")
    assert account.billing_address.region == "CA"
    assert account.billing_address.postal_code == "94105"
    assert account.legal_entity == "US01"
    assert await stripe.get_account("cus_missing") is None

    sub = await stripe.get_subscription("sub_acme")
    assert sub.contract_id == "C-100"
    assert (sub.current_period_start, sub.current_period_end) == (date(2025, 3, 1), date(2025, 4, 1))
    assert (sub.term_start, sub.term_end) == (date(2025, 1, 1), date(2026, 1, 1))
    seats, support = sub.lines
    assert (seats.product, seats.quantity, seats.unit_price) == ("prod_seats", 10, usd("50.00"))
    assert support.discount_percent == Decimal("10")
    assert seats.item_id == seeded["item_ids"][0]
    assert await stripe.get_subscription("sub_missing") is None


async def test_update_subscription_lines_sends_the_full_line_set_once(stripe, sandbox, seeded):
    sub = await stripe.get_subscription("sub_acme")
    seats, _support = sub.lines
    wanted = [
        seats.model_copy(update={"quantity": 15}),
        SubscriptionLine(
            product="prod_addon",
            description="Analytics add-on",
            quantity=2,
            unit_price=usd("12.34"),
            discount_percent=Decimal("5"),
        ),
    ]
    updated = await stripe.update_subscription_lines("sub_acme", wanted, idempotency_key="amend-1/lines")
    assert {(line.product, line.quantity, line.unit_price.amount, line.discount_percent) for line in updated.lines} == {
        ("prod_seats", 15, Decimal("50.00"), Decimal("0")),
        ("prod_addon", 2, Decimal("12.34"), Decimal("5")),
    }
    [update] = sandbox.records("stripe", "subscription_update")
    assert update["proration_behavior"] == "none"
    items = update["params"]["items"]
    assert items[0]["id"] == seats.item_id and items[0]["quantity"] == "15"
    assert "price_data" not in items[0]  # unchanged price: no new price
    assert items[1]["price_data"]["unit_amount_decimal"] == "1234"
    assert items[1]["metadata"]["discount_percent"] == "5"
    assert items[2] == {"id": sub.lines[1].item_id, "deleted": "true"}

    # A retry (e.g. after a lost response) converges without a second update.
    again = await stripe.update_subscription_lines("sub_acme", wanted, idempotency_key="amend-1/lines")
    assert again == updated
    assert sandbox.count("stripe", "subscription_update") == 1


async def test_idempotent_replay_and_key_reuse(sandbox, seeded):
    async with httpx.AsyncClient(base_url=sandbox.stripe_url, auth=(API_KEY, "")) as http:
        headers = {"Idempotency-Key": "k-1"}
        first = await http.post("/invoices", data={"customer": "cus_acme", "metadata[x]": "1"}, headers=headers)
        second = await http.post("/invoices", data={"customer": "cus_acme", "metadata[x]": "1"}, headers=headers)
        assert first.status_code == second.status_code == 200
        assert first.json()["id"] == second.json()["id"]
        assert "idempotent-replayed" not in first.headers
        assert second.headers["idempotent-replayed"] == "true"
        other = await http.post("/invoices", data={"customer": "cus_acme", "metadata[x]": "2"}, headers=headers)
        assert other.status_code == 400
        assert other.json()["error"]["type"] == "idempotency_error"
        assert other.headers["stripe-should-retry"] == "false"
        # Validation errors store nothing: the key stays usable.
        bad = await http.post("/invoiceitems", data={"customer": "cus_acme"}, headers={"Idempotency-Key": "k-2"})
        assert bad.status_code == 400 and bad.json()["error"]["param"] == "currency"
        good = await http.post(
            "/invoiceitems",
            data={"customer": "cus_acme", "currency": "usd", "amount": "5"},
            headers={"Idempotency-Key": "k-2"},
        )
        assert good.status_code == 200
    assert sandbox.count("stripe", "invoice") == 1


async def test_same_key_with_other_lines_is_an_integration_bug(stripe, seeded):
    common = dict(
        account_id="cus_acme",
        subscription_id="sub_acme",
        currency="USD",
        description="Proration",
        metadata={"amendment": "A1"},
        idempotency_key="amend-A1/invoice",
    )
    await stripe.create_proration_invoice(
        lines=[InvoiceLine(product="p", description="d", amount=usd("10.00"))], **common
    )
    with pytest.raises(IntegrationBug) as info:
        await stripe.create_proration_invoice(
            lines=[InvoiceLine(product="p", description="d", amount=usd("11.00"))], **common
        )
    assert info.value.code == "idempotency_error"


async def test_proration_invoice_charge_then_void(stripe, sandbox, seeded):
    # A pending item of another process must not be swept into this invoice.
    async with httpx.AsyncClient(base_url=sandbox.stripe_url, auth=(API_KEY, "")) as http:
        await http.post("/invoiceitems", data={"customer": "cus_acme", "currency": "usd", "amount": "999"})
    lines = [
        InvoiceLine(product="prod_seats", description="Unused time on 10 seats", amount=usd("-161.29")),
        InvoiceLine(product="prod_seats", description="Remaining time on 15 seats", amount=usd("241.94")),
    ]
    invoice = await stripe.create_proration_invoice(
        account_id="cus_acme",
        subscription_id="sub_acme",
        currency="USD",
        lines=lines,
        description="Amendment A2",
        metadata={"amendment_id": "A2"},
        idempotency_key="amend-A2/invoice",
    )
    assert invoice.status == "open"
    assert invoice.total == usd("80.65")
    assert [line.amount for line in invoice.lines] == [usd("-161.29"), usd("241.94")]
    assert invoice.lines[0].product == "prod_seats"
    assert invoice.number

    # The whole operation retried with the same key converges on the same invoice.
    again = await stripe.create_proration_invoice(
        account_id="cus_acme",
        subscription_id="sub_acme",
        currency="USD",
        lines=lines,
        description="Amendment A2",
        metadata={"amendment_id": "A2"},
        idempotency_key="amend-A2/invoice",
    )
    assert again.id == invoice.id
    assert sandbox.count("stripe", "invoice") == 1
    assert sandbox.count("stripe", "invoiceitem") == 3

    voided = await stripe.void_invoice(invoice.id, idempotency_key="amend-A2/void")
    assert voided.status == "void"
    assert (await stripe.void_invoice(invoice.id, idempotency_key="amend-A2/void")).status == "void"


async def test_net_credit_invoice_is_paid_to_balance_and_void_reverses_it(stripe, sandbox, seeded):
    lines = [InvoiceLine(product="prod_seats", description="Unused time on 5 seats", amount=usd("-120.00"))]
    invoice = await stripe.create_proration_invoice(
        account_id="cus_acme",
        subscription_id="sub_acme",
        currency="USD",
        lines=lines,
        description="Downgrade",
        metadata={},
        idempotency_key="amend-A3/invoice",
    )
    assert invoice.status == "paid"
    [customer] = sandbox.records("stripe", "customer")
    assert customer["balance"] == -12000
    for _ in range(2):  # idempotent
        result = await stripe.void_invoice(invoice.id, idempotency_key="amend-A3/void")
        assert result.id == invoice.id
    [customer] = sandbox.records("stripe", "customer")
    assert customer["balance"] == 0
    assert sandbox.count("stripe", "customer_balance_transaction") == 1


async def test_paid_charge_cannot_be_voided(stripe, sandbox, seeded):
    invoice = await stripe.create_proration_invoice(
        account_id="cus_acme",
        subscription_id="sub_acme",
        currency="USD",
        lines=[InvoiceLine(product="p", description="d", amount=usd("10.00"))],
        description="x",
        metadata={},
        idempotency_key="k/inv",
    )
    # Mark it paid behind the adapter's back (the sandbox has no /pay yet): void then
    # check that voiding a void works, and that an unknown invoice is a business error.
    with pytest.raises(BusinessError):
        await stripe.void_invoice("in_missing", idempotency_key="k/void")
    assert (await stripe.void_invoice(invoice.id, idempotency_key="k/void")).status == "void"


async def test_wrong_api_key_is_an_integration_bug(sandbox, seeded):
    client = StripeBilling(sandbox.stripe_url, "rk_live_wrong", timeout=5)
    try:
        with pytest.raises(IntegrationBug) as info:
            await client.get_account("cus_acme")
        assert info.value.status == 401
    finally:
        await client.aclose()


@pytest.mark.parametrize("kind,status", [("5xx", 500), ("429", 429)])
async def test_rejecting_faults_are_transient_and_store_nothing(stripe, sandbox, seeded, kind, status):
    sandbox.fault("stripe", kind, method="POST", path_contains="/invoices", times=1)
    lines = [InvoiceLine(product="p", description="d", amount=usd("10.00"))]
    args = dict(
        account_id="cus_acme",
        subscription_id="sub_acme",
        currency="USD",
        lines=lines,
        description="x",
        metadata={},
        idempotency_key="fault/inv",
    )
    with pytest.raises(TransientError) as info:
        await stripe.create_proration_invoice(**args)
    assert info.value.status == status
    assert sandbox.count("stripe", "invoice") == 0
    invoice = await stripe.create_proration_invoice(**args)  # the retry goes through
    assert invoice.status == "open"
    [fault] = sandbox.faults()
    assert fault["fired"] == 1


async def test_commit_then_timeout_converges_to_one_invoice(sandbox, seeded):
    sandbox.fault("stripe", "commit_then_timeout", method="POST", path_contains="/finalize", times=1, hold_seconds=2)
    client = StripeBilling(sandbox.stripe_url, API_KEY, timeout=1)
    args = dict(
        account_id="cus_acme",
        subscription_id="sub_acme",
        currency="USD",
        lines=[InvoiceLine(product="p", description="d", amount=usd("10.00"))],
        description="x",
        metadata={},
        idempotency_key="ctt/inv",
    )
    try:
        with pytest.raises(TransientError) as info:
            await client.create_proration_invoice(**args)
        assert info.value.code == "timeout"
        invoice = await client.create_proration_invoice(**args)
    finally:
        await client.aclose()
    assert invoice.status == "open"
    assert sandbox.count("stripe", "invoice") == 1
    assert sandbox.count("stripe", "invoice", "open") == 1
    assert sandbox.count("stripe", "invoiceitem") == 1


async def test_latency_and_every_nth_faults(stripe, sandbox, seeded):
    sandbox.fault("stripe", "latency", method="GET", latency_ms=150)
    assert (await stripe.get_account("cus_acme")).id == "cus_acme"
    sandbox.clear_faults()
    sandbox.fault("stripe", "5xx", method="GET", path_contains="/customers/", every=2)
    await stripe.get_account("cus_acme")
    with pytest.raises(TransientError):
        await stripe.get_account("cus_acme")
    await stripe.get_account("cus_acme")
    [fault] = sandbox.faults()
    assert (fault["matched"], fault["fired"]) == (3, 1)


async def test_list_invoices_follows_the_cursor(sandbox, seeded):
    client = StripeBilling(sandbox.stripe_url, API_KEY, timeout=5)
    try:
        for n in range(3):
            await client.create_proration_invoice(
                account_id="cus_acme",
                subscription_id="sub_acme",
                currency="USD",
                lines=[InvoiceLine(product="p", description="d", amount=usd(f"{n + 1}.00"))],
                description=f"n{n}",
                metadata={},
                idempotency_key=f"list/{n}",
            )
        invoices = await client.list_invoices("cus_acme", page_size=2)
    finally:
        await client.aclose()
    assert [i.total for i in invoices] == [usd("3.00"), usd("2.00"), usd("1.00")]  # newest first
    async with httpx.AsyncClient(base_url=sandbox.stripe_url, auth=(API_KEY, "")) as http:
        page = (await http.get("/invoices", params={"customer": "cus_acme", "limit": 2})).json()
    assert page["has_more"] is True and len(page["data"]) == 2


def test_stripe_should_retry_header_overrides_the_status():
    from adapters.stripe_api import classify

    body = {"error": {"type": "api_error", "message": "boom"}}
    assert isinstance(classify(httpx.Response(500, json=body, headers={"Stripe-Should-Retry": "false"})), BusinessError)
    assert isinstance(classify(httpx.Response(400, json=body, headers={"Stripe-Should-Retry": "true"})), TransientError)
    assert isinstance(classify(httpx.Response(409, json=body)), TransientError)
    declined = {
        "error": {
            "type": "card_error",
            "code": "card_declined",
            "decline_code": "insufficient_funds",
            "message": "Your card has insufficient funds.",
        }
    }
    error = classify(httpx.Response(402, json=declined, headers={"Stripe-Should-Retry": "false"}))
    assert isinstance(error, BusinessError) and error.code == "insufficient_funds"
