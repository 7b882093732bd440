"""Credit notes, refunds, disputes and invoices paid outside Stripe: the billing adapter's
PaymentsPort against the Stripe stand-in over HTTP, and the webhooks it sends, signed."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from adapters.errors import BusinessError, TransientError
from adapters.stripe import StripeBilling
from adapters.stripe_webhooks import parse_event, to_dispute_event, to_receipt
from canonical.credits import CreditedLine, CreditNoteOrder, CreditSettlement, DisputeStatus
from canonical.models import TAX_PRODUCT, InvoiceLine
from canonical.money import Money

API_KEY = "sk_test_o2c_adapters"  # the key the fixtures use
CUSTOMER = {"id": "cus_acme", "name": "Acme Corp", "email": "ap@acme.test", "currency": "usd"}
SUBSCRIPTION = {
    "id": "sub_acme",
    "contract_id": "C-100",
    "currency": "USD",
    "items": [{"product": "prod_seats", "quantity": 10, "unit_price": "50.00"}],
    "current_period_start": "2025-03-01",
    "current_period_end": "2025-04-01",
}


def usd(amount: str) -> Money:
    return Money.of(amount, "USD")


@pytest.fixture
def customer(sandbox) -> dict:
    return sandbox.seed(customer={**CUSTOMER, "payment_method": "pm_card_visa"}, subscription=SUBSCRIPTION)


async def invoice_of(stripe, sandbox, key: str, seats: str = "100.00", tax: str = "8.25") -> dict:
    """An open invoice of two lines, seats and their sales tax, as o2c bills them."""
    invoice = await stripe.create_proration_invoice(
        account_id="cus_acme",
        subscription_id="sub_acme",
        currency="USD",
        lines=[
            InvoiceLine(product="prod_seats", description="Seats", amount=usd(seats)),
            InvoiceLine(product=TAX_PRODUCT, description="Sales tax", amount=usd(tax)),
        ],
        description="Seats",
        metadata={"contract_id": "C-100"},
        idempotency_key=f"test-{key}",
    )
    assert invoice.status == "open"
    return raw(f"/invoices/{invoice.id}", sandbox_url=sandbox.stripe_url)


def raw(path: str, *, sandbox_url: str, **params: Any) -> dict:
    response = httpx.get(f"{sandbox_url}{path}", params=params, auth=(API_KEY, ""))
    response.raise_for_status()
    body: dict = response.json()
    return body


def seats_line(invoice: dict) -> str:
    return next(line["id"] for line in invoice["lines"]["data"] if line["metadata"]["product"] == "prod_seats")


def order(invoice: dict, *, lines: list[tuple[str, str]] = (), amount: str | None = None, **fields: Any):
    return CreditNoteOrder(
        invoice_id=invoice["id"],
        stripe_reason=fields.pop("stripe_reason", "order_change"),
        lines=[CreditedLine(line_id=line_id, amount=usd(value)) for line_id, value in lines],
        amount=usd(amount) if amount is not None else None,
        **fields,
    )


async def pay_by_card(stripe, sandbox, invoice: dict) -> dict:
    attempt = await stripe.retry_payment(invoice["id"], idempotency_key=f"pay-{invoice['id']}")
    assert attempt.outcome == "succeeded"
    return raw(f"/invoices/{invoice['id']}", sandbox_url=sandbox.stripe_url)


# -- credit notes ----------------------------------------------------------------------------


async def test_credit_on_an_open_invoice_lowers_what_is_due_with_its_tax(stripe, sandbox, customer):
    invoice = await invoice_of(stripe, sandbox, "open")
    note = await stripe.create_credit_note(
        order(invoice, lines=[(seats_line(invoice), "50.00")], memo="Two seats removed"),
        idempotency_key="credit-open",
    )
    # 8.25 tax on 100.00 of seats: 50.00 credited carries 4.125 -> 4.13 (half up).
    assert (note.type, note.status) == ("pre_payment", "issued")
    assert (note.subtotal, note.tax, note.total) == (usd("50.00"), usd("4.13"), usd("54.13"))
    assert (note.pre_payment_amount, note.post_payment_amount) == (usd("54.13"), usd("0.00"))
    assert note.number.endswith("-CN-01") and not note.customer_balance_transaction
    after = raw(f"/invoices/{invoice['id']}", sandbox_url=sandbox.stripe_url)
    assert (after["amount_remaining"], after["pre_payment_credit_notes_amount"]) == (10825 - 5413, 5413)
    assert after["status"] == "open"
    stored = raw(f"/credit_notes/{note.credit_note_id}", sandbox_url=sandbox.stripe_url)
    assert stored["memo"] == "Two seats removed"
    assert [(x["type"], x["amount"]) for x in stored["lines"]["data"]] == [
        ("invoice_line_item", 5000),
        ("invoice_line_item", 413),
    ]
    listed = raw("/credit_notes", sandbox_url=sandbox.stripe_url, invoice=invoice["id"])
    assert [n["id"] for n in listed["data"]] == [note.credit_note_id]
    assert "credit_note.created" in [e["type"] for e in sandbox.records("stripe", "event")]


async def test_credit_on_a_paid_invoice_goes_to_the_customer_balance(stripe, sandbox, customer):
    invoice = await pay_by_card(stripe, sandbox, await invoice_of(stripe, sandbox, "balance"))
    note = await stripe.create_credit_note(order(invoice, amount="20.00"), idempotency_key="credit-balance")
    assert note.type == "post_payment"
    assert (note.total, note.tax, note.post_payment_amount) == (usd("21.65"), usd("1.65"), usd("21.65"))
    txns = raw("/customers/cus_acme/balance_transactions", sandbox_url=sandbox.stripe_url)["data"]
    credit = next(t for t in txns if t["type"] == "credit_note")
    assert (credit["id"], credit["amount"], credit["credit_note"]) == (
        note.customer_balance_transaction,
        -2165,
        note.credit_note_id,
    )
    assert raw("/customers/cus_acme", sandbox_url=sandbox.stripe_url)["balance"] == -2165
    after = raw(f"/invoices/{invoice['id']}", sandbox_url=sandbox.stripe_url)
    assert (after["post_payment_credit_notes_amount"], after["amount_remaining"]) == (2165, 0)


async def test_credit_on_a_paid_invoice_refunded_to_the_card(stripe, sandbox, customer):
    invoice = await pay_by_card(stripe, sandbox, await invoice_of(stripe, sandbox, "refund"))
    note = await stripe.create_credit_note(
        order(invoice, lines=[(seats_line(invoice), "100.00")], settlement=CreditSettlement.REFUND),
        idempotency_key="credit-refund",
    )
    assert (note.type, note.total) == ("post_payment", usd("108.25"))
    assert note.refund_id.startswith("re_") and not note.customer_balance_transaction
    charge = raw(f"/charges/{invoice['charge']}", sandbox_url=sandbox.stripe_url)
    assert (charge["amount_refunded"], charge["refunded"]) == (10825, True)
    refund = raw(f"/refunds/{note.refund_id}", sandbox_url=sandbox.stripe_url)
    assert (refund["amount"], refund["charge"], refund["status"]) == (10825, invoice["charge"], "succeeded")


async def test_credit_on_a_partly_paid_invoice_is_mixed(stripe, sandbox, customer):
    invoice = await invoice_of(stripe, sandbox, "mixed")
    sandbox.partial_payment(invoice["id"], 4000)  # 40.00 arrived by bank; 68.25 still due
    note = await stripe.create_credit_note(
        order(invoice, lines=[(seats_line(invoice), "80.00")]), idempotency_key="credit-mixed"
    )
    # 80.00 + 6.60 tax: 68.25 lowers what is due, the 18.35 already paid is balance credit.
    assert (note.type, note.total) == ("mixed", usd("86.60"))
    assert (note.pre_payment_amount, note.post_payment_amount) == (usd("68.25"), usd("18.35"))
    after = raw(f"/invoices/{invoice['id']}", sandbox_url=sandbox.stripe_url)
    assert (after["status"], after["amount_remaining"]) == ("paid", 0)
    assert raw("/customers/cus_acme", sandbox_url=sandbox.stripe_url)["balance"] == -1835


async def test_refund_of_an_invoice_paid_outside_stripe_is_recorded_out_of_band(stripe, sandbox, customer):
    invoice = await invoice_of(stripe, sandbox, "oob")
    await stripe.mark_paid_out_of_band(invoice["id"], idempotency_key="oob-paid")
    note = await stripe.create_credit_note(
        order(invoice, amount="10.00", settlement=CreditSettlement.REFUND), idempotency_key="credit-oob"
    )
    stored = raw(f"/credit_notes/{note.credit_note_id}", sandbox_url=sandbox.stripe_url)
    assert (stored["out_of_band_amount"], note.refund_id, note.post_payment_amount) == (1083, "", usd("10.83"))


async def test_over_crediting_is_refused_and_creates_nothing(stripe, sandbox, customer):
    invoice = await invoice_of(stripe, sandbox, "over")
    line = seats_line(invoice)
    await stripe.create_credit_note(order(invoice, lines=[(line, "90.00")]), idempotency_key="credit-90")
    with pytest.raises(BusinessError) as too_much_of_a_line:
        await stripe.create_credit_note(order(invoice, lines=[(line, "20.00")]), idempotency_key="credit-20")
    assert too_much_of_a_line.value.status == 400
    with pytest.raises(BusinessError):  # 20.00 + its tax is more than the 10.83 left on the invoice
        await stripe.create_credit_note(order(invoice, amount="20.00"), idempotency_key="credit-amount-20")
    with pytest.raises(BusinessError, match="has no line"):
        await stripe.create_credit_note(order(invoice, lines=[("il_nothere", "1.00")]), idempotency_key="c-x")
    assert len(sandbox.records("stripe", "credit_note")) == 1
    after = raw(f"/invoices/{invoice['id']}", sandbox_url=sandbox.stripe_url)
    assert after["amount_remaining"] == 10825 - 9000 - 743


async def test_void_restores_what_the_note_did(stripe, sandbox, customer):
    invoice = await invoice_of(stripe, sandbox, "void-open")
    note = await stripe.create_credit_note(order(invoice, amount="100.00"), idempotency_key="credit-all")
    settled = raw(f"/invoices/{invoice['id']}", sandbox_url=sandbox.stripe_url)
    assert (settled["status"], settled["amount_remaining"]) == ("paid", 0)  # credited in full
    voided = await stripe.void_credit_note(note.credit_note_id, idempotency_key="void-all")
    assert voided.status == "void"
    restored = raw(f"/invoices/{invoice['id']}", sandbox_url=sandbox.stripe_url)
    assert (restored["status"], restored["amount_remaining"], restored["pre_payment_credit_notes_amount"]) == (
        "open",
        10825,
        0,
    )
    again = await stripe.void_credit_note(note.credit_note_id, idempotency_key="void-all-again")
    assert again == voided  # a void note is returned as it is

    paid = await pay_by_card(stripe, sandbox, await invoice_of(stripe, sandbox, "void-paid"))
    balance_note = await stripe.create_credit_note(order(paid, amount="10.00"), idempotency_key="credit-10")
    assert raw("/customers/cus_acme", sandbox_url=sandbox.stripe_url)["balance"] == -1083
    await stripe.void_credit_note(balance_note.credit_note_id, idempotency_key="void-10")
    assert raw("/customers/cus_acme", sandbox_url=sandbox.stripe_url)["balance"] == 0


async def test_a_note_that_refunded_cannot_be_voided(stripe, sandbox, customer):
    invoice = await pay_by_card(stripe, sandbox, await invoice_of(stripe, sandbox, "void-refund"))
    note = await stripe.create_credit_note(
        order(invoice, amount="10.00", settlement=CreditSettlement.REFUND), idempotency_key="credit-r"
    )
    with pytest.raises(BusinessError, match="refund cannot be undone"):
        await stripe.void_credit_note(note.credit_note_id, idempotency_key="void-r")


async def test_preview_creates_nothing(stripe, sandbox, customer):
    invoice = await pay_by_card(stripe, sandbox, await invoice_of(stripe, sandbox, "preview"))
    events_before = len(sandbox.records("stripe", "event"))
    credit = order(invoice, lines=[(seats_line(invoice), "25.00")], settlement=CreditSettlement.REFUND)
    preview = await stripe.preview_credit_note(credit)
    assert (preview.type, preview.total, preview.tax) == ("post_payment", usd("27.06"), usd("2.06"))
    assert sandbox.records("stripe", "credit_note") == [] and sandbox.records("stripe", "refund") == []
    assert len(sandbox.records("stripe", "event")) == events_before
    assert raw(f"/charges/{invoice['charge']}", sandbox_url=sandbox.stripe_url)["amount_refunded"] == 0
    lines = raw(
        "/credit_notes/preview/lines",
        sandbox_url=sandbox.stripe_url,
        invoice=invoice["id"],
        **{"lines[0][type]": "custom_line_item", "lines[0][description]": "x", "lines[0][unit_amount]": "500"},
        credit_amount="500",
    )
    assert [x["amount"] for x in lines["data"]] == [500]
    issued = await stripe.create_credit_note(credit, idempotency_key="credit-preview")
    assert (issued.total, issued.tax, issued.type) == (preview.total, preview.tax, preview.type)


async def test_the_same_key_issues_one_note(stripe, sandbox, customer):
    invoice = await invoice_of(stripe, sandbox, "replay")
    credit = order(invoice, amount="5.00")
    first = await stripe.create_credit_note(credit, idempotency_key="credit-once")
    second = await stripe.create_credit_note(credit, idempotency_key="credit-once")
    assert first.credit_note_id == second.credit_note_id
    assert len(sandbox.records("stripe", "credit_note")) == 1


async def test_bad_orders_are_refused_before_anything_is_sent(stripe, sandbox, customer):
    invoice = await invoice_of(stripe, sandbox, "bad")
    with pytest.raises(BusinessError, match="currency"):
        await stripe.create_credit_note(
            CreditNoteOrder(invoice_id=invoice["id"], stripe_reason="duplicate", amount=Money.of("5", "EUR")),
            idempotency_key="bad-eur",
        )
    with pytest.raises(BusinessError, match="not a Stripe credit note reason"):
        await stripe.create_credit_note(order(invoice, amount="5.00", stripe_reason="goodwill"), idempotency_key="b")
    with pytest.raises(BusinessError, match="the invoice's tax"):
        tax_line = next(x["id"] for x in invoice["lines"]["data"] if x["metadata"]["product"] == TAX_PRODUCT)
        await stripe.create_credit_note(order(invoice, lines=[(tax_line, "1.00")]), idempotency_key="bad-tax")
    with pytest.raises(BusinessError, match="does not exist"):
        await stripe.create_credit_note(
            CreditNoteOrder(invoice_id="in_missing", stripe_reason="duplicate", amount=usd("1")), idempotency_key="m"
        )
    assert sandbox.records("stripe", "credit_note") == []


# -- refunds -------------------------------------------------------------------------------------


async def test_refunds_stop_at_what_is_unrefunded(stripe, sandbox, customer):
    invoice = await pay_by_card(stripe, sandbox, await invoice_of(stripe, sandbox, "refunds"))
    charge = invoice["charge"]
    with pytest.raises(BusinessError) as too_much:
        await stripe.create_refund(
            charge_id=charge, amount=usd("200.00"), reason="requested_by_customer", metadata={}, idempotency_key="r0"
        )
    assert "greater than unrefunded" in too_much.value.message
    part = await stripe.create_refund(
        charge_id=charge, amount=usd("8.25"), reason="goodwill", metadata={"case": "42"}, idempotency_key="r1"
    )
    assert (part.amount, part.status, part.charge_id, part.reason) == (usd("8.25"), "succeeded", charge, "goodwill")
    stored = raw(f"/refunds/{part.refund_id}", sandbox_url=sandbox.stripe_url)
    assert (stored["reason"], stored["metadata"]) == ("requested_by_customer", {"case": "42", "reason": "goodwill"})
    await stripe.create_refund(
        charge_id=charge, amount=usd("100.00"), reason="duplicate", metadata={}, idempotency_key="r2"
    )
    assert raw(f"/charges/{charge}", sandbox_url=sandbox.stripe_url)["refunded"] is True
    with pytest.raises(BusinessError) as again:
        await stripe.create_refund(
            charge_id=charge, amount=usd("0.01"), reason="duplicate", metadata={}, idempotency_key="r3"
        )
    assert again.value.code == "charge_already_refunded"
    assert len(sandbox.records("stripe", "refund")) == 2


# -- disputes and webhooks -----------------------------------------------------------------------


class Receiver:
    """A webhook endpoint on a free local port that records what it receives."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                outer.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/stripe/webhooks"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def types(self) -> list[str]:
        return [json.loads(body)["type"] for _, body in self.received]

    def wait_for(self, *types: str, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while not all(t in self.types() for t in types):
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out; received {self.types()}")
            time.sleep(0.02)

    def bodies(self, type_: str) -> list[bytes]:
        return [body for _, body in self.received if json.loads(body)["type"] == type_]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def register(sandbox, url: str, events: list[str]) -> str:
    form = {"url": url, **{f"enabled_events[{i}]": e for i, e in enumerate(events)}}
    response = httpx.post(f"{sandbox.stripe_url}/webhook_endpoints", data=form, auth=(API_KEY, ""))
    response.raise_for_status()
    secret: str = response.json()["secret"]
    return secret


def signed(header: str, body: bytes, secret: str) -> bool:
    """Stripe's scheme, written here independently of the sandbox's signer."""
    items = [part.split("=", 1) for part in header.split(",")]
    timestamp = int(next(v for k, v in items if k == "t"))
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return abs(time.time() - timestamp) <= 300 and any(hmac.compare_digest(expected, v) for k, v in items if k == "v1")


DISPUTE_EVENTS = [
    "charge.dispute.created",
    "charge.dispute.funds_withdrawn",
    "charge.dispute.closed",
    "charge.dispute.funds_reinstated",
]


async def test_dispute_won_withdraws_with_the_fee_and_reinstates(stripe, sandbox, customer, receiver):
    secret = register(sandbox, receiver.url, DISPUTE_EVENTS)
    invoice = await pay_by_card(stripe, sandbox, await invoice_of(stripe, sandbox, "dispute-won"))
    opened = sandbox.open_dispute(invoice["charge"], reason="fraudulent", evidence_due_days=10)
    assert opened["evidence_details"]["due_by"] - opened["created"] == 10 * 86400
    withdrawal = opened["balance_transactions"][0]
    assert (withdrawal["amount"], withdrawal["fee"], withdrawal["net"]) == (-10825, 1500, -12325)

    dispute = await stripe.get_dispute(opened["id"])
    assert dispute is not None
    assert (dispute.status, dispute.invoice_id, dispute.customer) == (
        DisputeStatus.NEEDS_RESPONSE,
        invoice["id"],
        "cus_acme",
    )
    assert (dispute.amount, dispute.fee, dispute.reason) == (usd("108.25"), usd("15.00"), "fraudulent")
    assert (
        dispute.evidence_due_by is not None
        and int(dispute.evidence_due_by.timestamp()) == opened["evidence_details"]["due_by"]
    )
    assert await stripe.get_dispute("dp_missing") is None

    receiver.wait_for("charge.dispute.created", "charge.dispute.funds_withdrawn")
    sandbox.close_dispute(opened["id"], "won")
    receiver.wait_for("charge.dispute.closed", "charge.dispute.funds_reinstated")
    assert all(signed(h["stripe-signature"], body, secret) for h, body in receiver.received)
    lookup = {invoice["charge"]: invoice["id"]}.get
    mapped = [await to_dispute_event(parse_event(receiver.bodies(t)[0]), lookup) for t in DISPUTE_EVENTS]
    assert all(m is not None for m in mapped)
    assert [m.type for m in mapped if m] == DISPUTE_EVENTS
    withdrawn, closed = mapped[1], mapped[2]
    assert withdrawn and withdrawn.dispute.fee == usd("15.00") and withdrawn.dispute.invoice_id == invoice["id"]
    assert closed and closed.dispute.status == DisputeStatus.WON and closed.dispute.closed
    won = await stripe.get_dispute(opened["id"])
    assert won is not None and won.status == DisputeStatus.WON
    assert [
        t["amount"] for t in raw(f"/disputes/{opened['id']}", sandbox_url=sandbox.stripe_url)["balance_transactions"]
    ] == [-10825, 10825]


async def test_dispute_lost_sends_no_reinstatement(stripe, sandbox, customer, receiver):
    register(sandbox, receiver.url, DISPUTE_EVENTS)
    invoice = await pay_by_card(stripe, sandbox, await invoice_of(stripe, sandbox, "dispute-lost"))
    opened = sandbox.open_dispute(invoice["charge"])
    sandbox.close_dispute(opened["id"], "lost")
    receiver.wait_for("charge.dispute.closed")
    time.sleep(0.3)  # a reinstatement, if one were sent, would have arrived by now
    assert "charge.dispute.funds_reinstated" not in receiver.types()
    lost = await stripe.get_dispute(opened["id"])
    assert lost is not None and lost.status == DisputeStatus.LOST
    with pytest.raises(BusinessError):  # a disputed charge is not refunded as well
        await stripe.create_refund(
            charge_id=invoice["charge"], amount=usd("1.00"), reason="duplicate", metadata={}, idempotency_key="rd"
        )


async def test_merchant_submits_evidence_or_accepts(stripe, sandbox, customer):
    invoice = await pay_by_card(stripe, sandbox, await invoice_of(stripe, sandbox, "dispute-api"))
    opened = sandbox.open_dispute(invoice["charge"])
    with httpx.Client(base_url=sandbox.stripe_url, auth=(API_KEY, "")) as http:
        submitted = http.post(
            f"/disputes/{opened['id']}",
            data={"evidence[uncategorized_text]": "Seats were used all month"},
            headers={"Idempotency-Key": "evidence-1"},
        ).json()
        assert submitted["status"] == "under_review"
        assert submitted["evidence_details"] == {
            **opened["evidence_details"],
            "has_evidence": True,
            "submission_count": 1,
        }
        accepted = http.post(f"/disputes/{opened['id']}/close", headers={"Idempotency-Key": "accept-1"}).json()
        assert accepted["status"] == "lost"
        refused = http.post(f"/disputes/{opened['id']}/close", headers={"Idempotency-Key": "accept-2"})
        assert refused.status_code == 400
        listed = http.get("/disputes", params={"charge": invoice["charge"]}).json()
        assert [d["id"] for d in listed["data"]] == [opened["id"]]


# -- cash: paid out of band, receipts, open invoices -------------------------------------------


async def test_paid_out_of_band_marks_paid_without_a_charge(stripe, sandbox, customer, receiver):
    register(sandbox, receiver.url, ["invoice.paid", "charge.succeeded"])
    invoice = await invoice_of(stripe, sandbox, "oob-paid")
    paid = await stripe.mark_paid_out_of_band(invoice["id"], idempotency_key="oob-1")
    assert (paid.status, paid.amount_remaining) == ("paid", usd("0.00"))
    again = await stripe.mark_paid_out_of_band(invoice["id"], idempotency_key="oob-2")
    assert again.status == "paid"
    stored = raw(f"/invoices/{invoice['id']}", sandbox_url=sandbox.stripe_url)
    assert (stored["paid_out_of_band"], stored["charge"]) == (True, None)
    assert sandbox.records("stripe", "charge") == []
    receiver.wait_for("invoice.paid")
    assert to_receipt(parse_event(receiver.bodies("invoice.paid")[0])) is None  # no cash reached Stripe


async def test_a_card_payment_is_one_receipt_from_either_event(stripe, sandbox, customer, receiver):
    register(sandbox, receiver.url, ["invoice.paid", "charge.succeeded"])
    invoice = await pay_by_card(stripe, sandbox, await invoice_of(stripe, sandbox, "receipt"))
    receiver.wait_for("invoice.paid", "charge.succeeded")
    charge_event = json.loads(receiver.bodies("charge.succeeded")[0])["data"]["object"]
    assert charge_event["balance_transaction"].startswith("txn_")
    assert (charge_event["invoice"], charge_event["customer"], charge_event["amount"]) == (
        invoice["id"],
        "cus_acme",
        10825,
    )
    from_charge = to_receipt(parse_event(receiver.bodies("charge.succeeded")[0]))
    from_invoice = to_receipt(parse_event(receiver.bodies("invoice.paid")[0]))
    assert from_charge is not None and from_invoice is not None
    assert from_charge.receipt_id == from_invoice.receipt_id == f"stripe:platform:{invoice['charge']}"
    assert (from_charge.amount, from_charge.invoice_hint, from_charge.customer_hint, from_charge.legal_entity) == (
        usd("108.25"),
        invoice["id"],
        "cus_acme",
        "US01",
    )


async def test_open_invoices_page_by_page(stripe, sandbox, customer):
    ids = {(await invoice_of(stripe, sandbox, f"page-{i}"))["id"] for i in range(3)}
    paid = await pay_by_card(stripe, sandbox, await invoice_of(stripe, sandbox, "page-paid"))
    first = await stripe.open_invoices_page(limit=2)
    assert len(first.items) == 2 and first.next_cursor
    second = await stripe.open_invoices_page(cursor=first.next_cursor, limit=2)
    assert second.next_cursor == ""
    seen = [i.id for i in first.items + second.items]
    assert set(seen) == ids and paid["id"] not in seen
    assert all(i.status == "open" and i.tax == usd("8.25") for i in first.items + second.items)


async def test_a_line_is_credited_by_the_id_the_canonical_invoice_gives_it(stripe, sandbox, customer):
    invoice = await invoice_of(stripe, sandbox, "canonical-line")
    canonical = await stripe.get_invoice(invoice["id"])
    assert canonical is not None
    seats = next(line for line in canonical.lines if line.product == "prod_seats")
    assert seats.line_id.startswith("ii_")  # the invoice item's id, as usage invoices give it
    note = await stripe.create_credit_note(
        CreditNoteOrder(
            invoice_id=canonical.id,
            stripe_reason="duplicate",
            lines=[CreditedLine(line_id=seats.line_id, amount=usd("10.00"))],
        ),
        idempotency_key="credit-canonical",
    )
    assert (note.subtotal, note.tax) == (usd("10.00"), usd("0.83"))


async def test_a_note_whose_answer_is_lost_converges_on_retry(sandbox, customer):
    stripe = StripeBilling(sandbox.stripe_url, API_KEY, timeout=1)
    try:
        invoice = await invoice_of(stripe, sandbox, "lost")
        sandbox.fault(
            "stripe", "commit_then_timeout", method="POST", path_contains="/v1/credit_notes", times=1, hold_seconds=2
        )
        credit = order(invoice, lines=[(seats_line(invoice), "50.00")], metadata={"credit_id": "CR-9"})
        with pytest.raises(TransientError):
            await stripe.create_credit_note(credit, idempotency_key="credit-lost")
        # The first note lowered what is due: computed again, the retry would differ.
        again = await stripe.create_credit_note(credit, idempotency_key="credit-lost")
    finally:
        await stripe.aclose()
    [stored] = sandbox.records("stripe", "credit_note")
    assert again.credit_note_id == stored["id"] and again.total == usd("54.13")
    assert stored["metadata"] == {"credit_id": "CR-9", "o2c_idempotency_key": "credit-lost"}
