"""Stripe's payment side for dunning: test cards, /pay, cancel, uncollectible, webhooks."""

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

from adapters.errors import BusinessError
from canonical.models import PaymentOutcome
from canonical.money import Money

API_KEY = "sk_test_o2c_adapters"  # the key the fixtures use
CUSTOMER = {"id": "cus_acme", "name": "Acme Corp", "email": "ap@acme.test"}
SUBSCRIPTION = {
    "id": "sub_acme",
    "contract_id": "C-100",
    "currency": "USD",
    "items": [{"product": "prod_seats", "quantity": 10, "unit_price": "50.00"}],
    "current_period_start": "2025-03-01",
    "current_period_end": "2025-04-01",
}


def seed(sandbox, payment_method: str = "pm_card_visa", **customer: Any) -> dict:
    return sandbox.seed(
        customer={**CUSTOMER, "currency": "usd", "payment_method": payment_method, **customer},
        subscription=SUBSCRIPTION,
    )


def failed_invoice(sandbox, payment_method: str, amount: int = 12000) -> dict:
    seed(sandbox, payment_method)
    return sandbox.renewal_charge("sub_acme", amount=amount)


def new_card(sandbox, token: str) -> str:
    """The customer supplies a new card: attach it, make it the invoices' default."""
    with httpx.Client(base_url=sandbox.stripe_url, auth=(API_KEY, "")) as http:
        pm = http.post(f"/payment_methods/{token}/attach", data={"customer": "cus_acme"}).json()
        assert pm["customer"] == "cus_acme" and pm["id"] != token
        customer = http.post("/customers/cus_acme", data={"invoice_settings[default_payment_method]": pm["id"]})
        assert customer.json()["invoice_settings"]["default_payment_method"] == pm["id"]
    return pm["id"]


def event_types(sandbox) -> list[str]:
    return [e["type"] for e in sandbox.records("stripe", "event")]


class Receiver:
    """A webhook endpoint on a free local port that records what it receives; it can be
    told to fail the first N deliveries."""

    def __init__(self, fail_first: int = 0):
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.fail_first = fail_first
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                outer.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                status = 500 if len(outer.received) <= outer.fail_first else 200
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/stripe/webhooks"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def events(self) -> list[dict]:
        return [json.loads(body) for _, body in self.received]

    def wait_for(self, predicate, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out; received {[e['type'] for e in self.events()]}")
            time.sleep(0.02)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def register(sandbox, url: str, events: list[str]) -> dict:
    form = {"url": url, **{f"enabled_events[{i}]": e for i, e in enumerate(events)}}
    response = httpx.post(f"{sandbox.stripe_url}/webhook_endpoints", data=form, auth=(API_KEY, ""))
    response.raise_for_status()
    return response.json()


def verify(header: str, body: bytes, secret: str, tolerance: int = 300) -> bool:
    """Stripe's scheme, written here independently of the sandbox's signer."""
    items = [part.split("=", 1) for part in header.split(",")]
    timestamp = int(next(v for k, v in items if k == "t"))
    signatures = [v for k, v in items if k == "v1"]
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return abs(time.time() - timestamp) <= tolerance and any(hmac.compare_digest(expected, s) for s in signatures)


# -- payments ---------------------------------------------------------------------------------


async def test_successful_retry_pays_the_invoice(stripe, sandbox):
    invoice = failed_invoice(sandbox, "pm_card_chargeDeclinedInsufficientFunds")
    assert (invoice["status"], invoice["attempt_count"], invoice["amount_remaining"]) == ("open", 1, 12000)
    new_card(sandbox, "pm_card_visa")
    attempt = await stripe.retry_payment(invoice["id"], idempotency_key="dunning-x/retry/1")
    assert attempt.outcome is PaymentOutcome.SUCCEEDED
    assert attempt.amount_paid == Money.of("120.00", "USD") and attempt.amount_remaining.is_zero
    read = await stripe.get_invoice(invoice["id"])
    assert read.status == "paid" and read.amount_remaining == Money.zero("USD")
    charges = sandbox.records("stripe", "charge")
    assert [c["status"] for c in charges] == ["failed", "succeeded"]
    assert charges[1]["invoice"] == invoice["id"]
    assert charges[1]["payment_method_details"]["card"]["last4"] == "4242"
    assert await stripe.invoice_of_charge(charges[1]["id"]) == invoice["id"]
    assert await stripe.invoice_of_charge("ch_missing") is None
    assert {"invoice.paid", "invoice.payment_succeeded", "charge.succeeded"} <= set(event_types(sandbox))
    [sub] = sandbox.records("stripe", "subscription")
    assert sub["status"] == "active"  # past_due after the failure, active again once paid


@pytest.mark.parametrize(
    "pm, decline",
    [
        ("pm_card_chargeDeclinedInsufficientFunds", "insufficient_funds"),
        ("pm_card_chargeDeclined", "generic_decline"),
        ("pm_card_chargeDeclinedLostCard", "lost_card"),
        ("pm_card_chargeDeclinedStolenCard", "stolen_card"),
        ("pm_card_chargeDeclinedExpiredCard", "expired_card"),
    ],
)
async def test_declines_are_outcomes_with_their_codes(stripe, sandbox, pm, decline):
    invoice = failed_invoice(sandbox, pm)
    attempt = await stripe.retry_payment(invoice["id"], idempotency_key=f"dunning-{pm}/retry/1")
    assert attempt.outcome is PaymentOutcome.DECLINED
    assert attempt.decline_code == decline and attempt.message
    assert attempt.amount_remaining == Money.of("120.00", "USD") and attempt.amount_paid.is_zero
    [_first, second] = sandbox.records("stripe", "charge")
    assert second["status"] == "failed" and second["outcome"]["reason"] == decline
    assert second["failure_code"] == ("expired_card" if decline == "expired_card" else "card_declined")
    assert (await stripe.get_invoice(invoice["id"])).status == "open"


async def test_pay_is_idempotent_per_key(sandbox):
    invoice = failed_invoice(sandbox, "pm_card_chargeDeclinedLostCard")
    async with httpx.AsyncClient(base_url=sandbox.stripe_url, auth=(API_KEY, "")) as http:
        first = await http.post(f"/invoices/{invoice['id']}/pay", headers={"Idempotency-Key": "pay-1"})
        # The customer fixes the card meanwhile; the same key still replays the stored 402.
        new_card(sandbox, "pm_card_visa")
        again = await http.post(f"/invoices/{invoice['id']}/pay", headers={"Idempotency-Key": "pay-1"})
        assert first.status_code == again.status_code == 402
        assert first.json() == again.json()
        assert again.headers["idempotent-replayed"] == "true"
        assert again.headers["stripe-should-retry"] == "false"
        err = first.json()["error"]
        assert (err["type"], err["code"], err["decline_code"]) == ("card_error", "card_declined", "lost_card")
        assert err["charge"].startswith("ch_")
        assert len(sandbox.records("stripe", "charge")) == 2  # the renewal's and this one: no third
        paid = await http.post(f"/invoices/{invoice['id']}/pay", headers={"Idempotency-Key": "pay-2"})
        assert paid.status_code == 200 and paid.json()["status"] == "paid"
        replay = await http.post(f"/invoices/{invoice['id']}/pay", headers={"Idempotency-Key": "pay-2"})
        assert replay.json() == paid.json()
        already = await http.post(f"/invoices/{invoice['id']}/pay", headers={"Idempotency-Key": "pay-3"})
        assert already.status_code == 400 and already.json()["error"]["type"] == "invalid_request_error"
    assert sandbox.count("stripe", "charge", "succeeded") == 1


async def test_retry_of_a_paid_invoice_reports_success(stripe, sandbox):
    invoice = failed_invoice(sandbox, "pm_card_chargeDeclined")
    sandbox.pay_out_of_band(invoice["id"])
    attempt = await stripe.retry_payment(invoice["id"], idempotency_key="dunning-y/retry/2")
    assert attempt.outcome is PaymentOutcome.SUCCEEDED and attempt.amount_remaining.is_zero


async def test_customer_without_payment_method_is_a_decline(stripe, sandbox):
    sandbox.seed(customer={**CUSTOMER, "currency": "usd"}, subscription=SUBSCRIPTION)
    invoice = sandbox.renewal_charge("sub_acme", amount=500)
    assert invoice["status"] == "open" and invoice["attempt_count"] == 0
    attempt = await stripe.retry_payment(invoice["id"], idempotency_key="k")
    assert (attempt.outcome, attempt.decline_code) == (PaymentOutcome.DECLINED, "no_payment_method")


async def test_account_carries_dunning_metadata(stripe, sandbox):
    seed(sandbox, segment="enterprise", arr="250000.00", success_owner="dana@vendor.test")
    account = await stripe.get_account("cus_acme")
    assert account.segment == "enterprise"
    assert account.annual_recurring_revenue == Money.of("250000.00", "USD")
    assert account.success_owner == "dana@vendor.test"
    sandbox.seed(customer={"id": "cus_plain", "name": "Plain"})
    plain = await stripe.get_account("cus_plain")
    assert (plain.segment, plain.annual_recurring_revenue, plain.success_owner) == ("default", None, "")


async def test_cancel_and_uncollectible_are_idempotent(stripe, sandbox):
    invoice = failed_invoice(sandbox, "pm_card_chargeDeclined")
    first = await stripe.cancel_subscription("sub_acme", idempotency_key="dunning-z/cancel")
    again = await stripe.cancel_subscription("sub_acme", idempotency_key="dunning-z/cancel")
    assert first.status == again.status == "canceled"
    assert event_types(sandbox).count("customer.subscription.deleted") == 1
    marked = await stripe.mark_uncollectible(invoice["id"], idempotency_key="dunning-z/uncollectible")
    again_marked = await stripe.mark_uncollectible(invoice["id"], idempotency_key="dunning-z/uncollectible")
    assert marked.status == again_marked.status == "uncollectible"
    assert event_types(sandbox).count("invoice.marked_uncollectible") == 1
    sandbox.pay_out_of_band(invoice["id"])  # an uncollectible invoice can still be paid
    with pytest.raises(BusinessError):
        await stripe.mark_uncollectible(invoice["id"], idempotency_key="dunning-z/uncollectible-2")


# -- events and webhooks ------------------------------------------------------------------------


def test_invoice_payment_failed_names_the_charge_that_holds_the_decline(sandbox):
    invoice = failed_invoice(sandbox, "pm_card_chargeDeclinedInsufficientFunds")
    events = sandbox.records("stripe", "event")
    failed = next(e for e in events if e["type"] == "invoice.payment_failed")
    assert (failed["object"], failed["api_version"], failed["livemode"]) == ("event", "2024-06-20", False)
    assert failed["id"].startswith("evt_") and failed["request"] == {"id": None, "idempotency_key": None}
    obj = failed["data"]["object"]
    assert (obj["object"], obj["id"], obj["status"], obj["attempt_count"]) == ("invoice", invoice["id"], "open", 1)
    assert obj["next_payment_attempt"] is None and obj["amount_remaining"] == 12000
    # As in Stripe: the invoice names the charge and payment intent; the decline code is on them.
    with httpx.Client(base_url=sandbox.stripe_url, auth=(API_KEY, "")) as http:
        charge = http.get(f"/charges/{obj['charge']}").json()
        intent = http.get(f"/payment_intents/{obj['payment_intent']}").json()
        assert charge["outcome"]["reason"] == "insufficient_funds" and charge["invoice"] == invoice["id"]
        assert intent["last_payment_error"]["decline_code"] == "insufficient_funds"
        listed = http.get("/events", params={"type": "invoice.payment_failed"}).json()
        assert [e["id"] for e in listed["data"]] == [failed["id"]]
        assert http.get(f"/events/{failed['id']}").json() == failed
    assert {
        "charge.failed",
        "payment_intent.payment_failed",
        "customer.subscription.updated",
        "invoice.finalized",
    } <= set(event_types(sandbox))


def test_webhooks_are_signed_and_delivered(sandbox, receiver):
    endpoint = register(sandbox, receiver.url, ["invoice.payment_failed", "invoice.paid"])
    assert endpoint["secret"].startswith("whsec_") and endpoint["status"] == "enabled"
    invoice = failed_invoice(sandbox, "pm_card_chargeDeclined")
    receiver.wait_for(lambda: len(receiver.received) == 1)
    headers, body = receiver.received[0]
    assert verify(headers["stripe-signature"], body, endpoint["secret"])
    assert not verify(headers["stripe-signature"], body.replace(b"open", b"paid"), endpoint["secret"])
    assert not verify(headers["stripe-signature"], body, "whsec_wrong")
    event = json.loads(body)
    assert event["type"] == "invoice.payment_failed" and event["data"]["object"]["id"] == invoice["id"]
    sandbox.pay_out_of_band(invoice["id"])
    receiver.wait_for(lambda: len(receiver.received) == 2)
    assert receiver.events()[1]["type"] == "invoice.paid"
    [shown] = httpx.get(f"{sandbox.stripe_url}/webhook_endpoints", auth=(API_KEY, "")).json()["data"]
    assert "secret" not in shown
    deleted = httpx.delete(f"{sandbox.stripe_url}/webhook_endpoints/{endpoint['id']}", auth=(API_KEY, ""))
    assert deleted.json()["deleted"] is True


def test_failed_deliveries_are_retried_and_recorded(sandbox):
    receiver = Receiver(fail_first=2)
    try:
        register(sandbox, receiver.url, ["*"])
        seed(sandbox)  # attaching the card emits payment_method.attached
        receiver.wait_for(lambda: len(receiver.received) == 3)
        event_id = receiver.events()[0]["id"]
        assert {e["id"] for e in receiver.events()} == {event_id}
        deadline = time.monotonic() + 5
        while len(sandbox.deliveries(event=event_id)) < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        statuses = [(d["attempt"], d["status"], d["succeeded"]) for d in sandbox.deliveries(event=event_id)]
        assert statuses == [(1, 500, False), (2, 500, False), (3, 200, True)]
        assert sandbox.count("stripe", "webhook_delivery", "succeeded") == 1
    finally:
        receiver.close()


def test_redelivery_repeats_the_same_event(sandbox, receiver):
    endpoint = register(sandbox, receiver.url, ["invoice.payment_failed"])
    failed_invoice(sandbox, "pm_card_chargeDeclined")
    receiver.wait_for(lambda: len(receiver.received) == 1)
    event_id = receiver.events()[0]["id"]
    result = sandbox.redeliver(event_id, times=4)
    assert result["deliveries_scheduled"] == 4
    receiver.wait_for(lambda: len(receiver.received) == 5)
    assert {e["id"] for e in receiver.events()} == {event_id}
    assert all(verify(h["stripe-signature"], b, endpoint["secret"]) for h, b in receiver.received)


def test_partial_payment_event_shape(sandbox):
    invoice = failed_invoice(sandbox, "pm_card_chargeDeclined", amount=10000)
    updated = sandbox.partial_payment(invoice["id"], 4000)
    assert (updated["status"], updated["amount_paid"], updated["amount_remaining"]) == ("open", 4000, 6000)
    event = [e for e in sandbox.records("stripe", "event") if e["type"] == "invoice.updated"][-1]
    assert event["data"]["previous_attributes"] == {"amount_paid": 0, "amount_remaining": 10000}
    assert event["data"]["object"]["amount_remaining"] == 6000
    paid = sandbox.partial_payment(invoice["id"], 6000)
    assert paid["status"] == "paid"
    assert event_types(sandbox)[-1] == "invoice.paid"
    too_much = httpx.post(f"{sandbox.url}/_sandbox/stripe/invoices/{invoice['id']}/partial_payment", json={"amount": 1})
    assert too_much.status_code == 400


async def test_dispute_events(stripe, sandbox):
    seed(sandbox, "pm_card_visa")
    invoice = sandbox.renewal_charge("sub_acme", amount=5000)
    assert invoice["status"] == "paid"
    dispute = sandbox.open_dispute(invoice["charge"])
    assert dispute["status"] == "needs_response" and dispute["amount"] == 5000
    created = next(e for e in sandbox.records("stripe", "event") if e["type"] == "charge.dispute.created")
    assert created["data"]["object"]["charge"] == invoice["charge"]
    assert await stripe.invoice_of_charge(created["data"]["object"]["charge"]) == invoice["id"]
    closed = sandbox.close_dispute(dispute["id"], "won")
    assert closed["status"] == "won"
    event = next(e for e in sandbox.records("stripe", "event") if e["type"] == "charge.dispute.closed")
    assert event["data"]["previous_attributes"] == {"status": "needs_response"}


def test_summary_counts_payments_and_events(sandbox):
    failed_invoice(sandbox, "pm_card_chargeDeclined")
    summary = sandbox.summary()["stripe"]
    assert summary["charge"]["by_status"] == {"failed": 1}
    assert summary["event"]["by_status"]["invoice.payment_failed"] == 1


async def test_an_open_invoice_names_the_card_it_is_charged_to(stripe, sandbox):
    invoice = failed_invoice(sandbox, "pm_card_chargeDeclinedInsufficientFunds")
    [declined_pm] = [pm for pm in sandbox.records("stripe", "payment_method")]
    read = await stripe.get_invoice(invoice["id"])
    assert read.status == "open"
    assert read.payment_method == declined_pm["card"]["fingerprint"] != ""
    # The charge carries the same fingerprint, as Stripe's payment_method_details do.
    [charge] = sandbox.records("stripe", "charge")
    assert charge["payment_method_details"]["card"]["fingerprint"] == read.payment_method
    # A new default card: the next charge, and so the attempts, go to that card.
    new_card(sandbox, "pm_card_chargeDeclined")
    moved = await stripe.get_invoice(invoice["id"])
    assert moved.payment_method not in ("", read.payment_method)
    # The same card number attached again is the same card, whichever payment method holds it.
    new_card(sandbox, "pm_card_chargeDeclined")
    assert (await stripe.get_invoice(invoice["id"])).payment_method == moved.payment_method


async def test_a_paid_invoice_names_no_card(stripe, sandbox):
    invoice = failed_invoice(sandbox, "pm_card_chargeDeclined")
    sandbox.pay_out_of_band(invoice["id"])
    assert (await stripe.get_invoice(invoice["id"])).payment_method == ""
