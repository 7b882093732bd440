"""Rules of the Stripe stand-in's credit notes, refunds and disputes that the adapter never
provokes: refusals of malformed requests, idempotency, and the control plane's disputes."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from sandbox.stripe.credit_notes import _proportional_tax

AUTH = ("sk_test_credits", "")


@pytest.fixture
def http(sandbox) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sandbox.stripe_url, auth=AUTH) as client:
        yield client


@pytest.fixture
def control(sandbox) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"{sandbox.url}/_sandbox") as client:
        yield client


def ok(response: httpx.Response) -> dict:
    assert response.status_code == 200, response.text
    body: dict = response.json()
    return body


def refused(response: httpx.Response, status: int = 400) -> dict:
    assert response.status_code == status, response.text
    error: dict = response.json()["error"]
    return error


def open_invoice(sandbox, http: httpx.Client, amounts: tuple[int, ...] = (10000, 825), card: bool = True) -> dict:
    sandbox.seed(
        customer={"id": "cus_credits", "currency": "usd", **({"payment_method": "pm_card_visa"} if card else {})}
    )
    draft = ok(http.post("/invoices", data={"customer": "cus_credits", "currency": "usd"}))
    for amount in amounts:
        ok(
            http.post(
                "/invoiceitems",
                data={"customer": "cus_credits", "invoice": draft["id"], "currency": "usd", "amount": amount},
            )
        )
    return ok(http.post(f"/invoices/{draft['id']}/finalize"))


def test_a_note_names_exactly_one_of_amount_and_lines(sandbox, http):
    invoice = open_invoice(sandbox, http)
    line = invoice["lines"]["data"][0]["id"]
    both = {"invoice": invoice["id"], "amount": 100, "lines[0][type]": "invoice_line_item"}
    assert "exactly one" in refused(http.post("/credit_notes", data=both))["message"]
    assert "exactly one" in refused(http.post("/credit_notes", data={"invoice": invoice["id"]}))["message"]
    unknown = refused(http.post("/credit_notes", data={"invoice": invoice["id"], "amount": 100, "colour": "red"}))
    assert (unknown["code"], unknown["param"]) == ("parameter_unknown", "colour")
    bad_reason = refused(http.post("/credit_notes", data={"invoice": invoice["id"], "amount": 1, "reason": "whim"}))
    assert bad_reason["param"] == "reason"
    no_amount = {"invoice": invoice["id"], "lines[0][type]": "invoice_line_item", "lines[0][invoice_line_item]": line}
    assert refused(http.post("/credit_notes", data=no_amount))["param"] == "lines[0][amount]"
    custom = {"invoice": invoice["id"], "lines[0][type]": "custom_line_item", "lines[0][unit_amount]": 100}
    assert refused(http.post("/credit_notes", data=custom))["code"] == "parameter_missing"
    assert sandbox.records("stripe", "credit_note") == []


def test_credit_by_quantity_and_custom_lines(sandbox, http):
    invoice = open_invoice(sandbox, http)
    line = invoice["lines"]["data"][0]["id"]
    note = ok(
        http.post(
            "/credit_notes",
            data={
                "invoice": invoice["id"],
                "lines[0][type]": "invoice_line_item",
                "lines[0][invoice_line_item]": line,
                "lines[0][quantity]": 1,
                "lines[1][type]": "custom_line_item",
                "lines[1][description]": "Goodwill",
                "lines[1][unit_amount]": 200,
                "lines[1][quantity]": 2,
                "metadata[case]": "42",
            },
        )
    )
    assert [(x["type"], x["amount"]) for x in note["lines"]["data"]] == [
        ("invoice_line_item", 10000),
        ("custom_line_item", 400),
    ]
    assert (note["total"], note["type"], note["metadata"]) == (10400, "pre_payment", {"case": "42"})


def test_the_paid_part_must_be_settled_exactly(sandbox, http):
    invoice = open_invoice(sandbox, http)
    sandbox.pay_out_of_band(invoice["id"])
    unsettled = refused(http.post("/credit_notes", data={"invoice": invoice["id"], "amount": 500}))
    assert "post-payment amount (500)" in unsettled["message"] and unsettled["param"] == "out_of_band_amount"
    too_much = {"invoice": invoice["id"], "amount": 500, "credit_amount": 300, "out_of_band_amount": 300}
    assert refused(http.post("/credit_notes", data=too_much))["param"] == "credit_amount"
    nothing_to_refund = {"invoice": invoice["id"], "amount": 500, "refund_amount": 500}
    assert "not paid by a charge" in refused(http.post("/credit_notes", data=nothing_to_refund))["message"]
    split = ok(
        http.post(
            "/credit_notes",
            data={"invoice": invoice["id"], "amount": 500, "credit_amount": 200, "out_of_band_amount": 300},
        )
    )
    assert (split["type"], split["post_payment_amount"], split["out_of_band_amount"]) == ("post_payment", 500, 300)


def test_nothing_already_paid_takes_no_settlement(sandbox, http):
    invoice = open_invoice(sandbox, http)
    error = refused(http.post("/credit_notes", data={"invoice": invoice["id"], "amount": 500, "credit_amount": 500}))
    assert "post-payment amount (0)" in error["message"]


def test_only_finalized_invoices_that_are_not_void_are_credited(sandbox, http):
    sandbox.seed(customer={"id": "cus_credits", "currency": "usd"})
    draft = ok(http.post("/invoices", data={"customer": "cus_credits", "currency": "usd"}))
    assert refused(http.post("/credit_notes", data={"invoice": draft["id"], "amount": 1}))["param"] == "invoice"
    voided = open_invoice(sandbox, http)
    ok(http.post(f"/invoices/{voided['id']}/void"))
    assert (
        refused(http.post("/credit_notes", data={"invoice": voided["id"], "amount": 1}))["code"] == "invoice_not_open"
    )
    missing = refused(http.post("/credit_notes", data={"invoice": "in_missing", "amount": 1}))
    assert missing["code"] == "resource_missing"


def test_a_key_issues_one_note_and_refuses_other_parameters(sandbox, http):
    invoice = open_invoice(sandbox, http)
    first = http.post(
        "/credit_notes", data={"invoice": invoice["id"], "amount": 100}, headers={"Idempotency-Key": "k1"}
    )
    again = http.post(
        "/credit_notes", data={"invoice": invoice["id"], "amount": 100}, headers={"Idempotency-Key": "k1"}
    )
    assert ok(first)["id"] == ok(again)["id"] and again.headers["idempotent-replayed"] == "true"
    other = http.post(
        "/credit_notes", data={"invoice": invoice["id"], "amount": 200}, headers={"Idempotency-Key": "k1"}
    )
    assert refused(other)["type"] == "idempotency_error"
    assert len(sandbox.records("stripe", "credit_note")) == 1
    assert ok(http.get(f"/invoices/{invoice['id']}"))["amount_remaining"] == 10825 - 100


def test_voiding_twice_is_refused(sandbox, http):
    invoice = open_invoice(sandbox, http)
    note = ok(http.post("/credit_notes", data={"invoice": invoice["id"], "amount": 100}))
    assert ok(http.post(f"/credit_notes/{note['id']}/void"))["status"] == "void"
    assert refused(http.post(f"/credit_notes/{note['id']}/void"))["code"] == "credit_note_already_voided"
    assert refused(http.post("/credit_notes/cn_missing/void"), 404)["code"] == "resource_missing"
    # A void note no longer counts against what is left to credit.
    assert ok(http.post("/credit_notes", data={"invoice": invoice["id"], "amount": 10825}))["total"] == 10825


def test_tax_amounts_of_a_line_are_credited_in_proportion_half_up():
    line = {"amount": 10000, "tax_amounts": [{"amount": 825, "inclusive": False, "tax_rate": "txr_1"}]}
    assert _proportional_tax(line, 5000) == [{"amount": 413, "inclusive": False, "tax_rate": "txr_1"}]
    assert _proportional_tax(line, 10000)[0]["amount"] == 825
    assert _proportional_tax({"amount": 10000}, 5000) == []


def test_refunds_by_payment_intent_and_their_refusals(sandbox, http):
    invoice = ok(http.post(f"/invoices/{open_invoice(sandbox, http)['id']}/pay"))
    charge = invoice["charge"]
    both = refused(http.post("/refunds", data={"charge": charge, "payment_intent": invoice["payment_intent"]}))
    assert both["param"] == "payment_intent"
    assert refused(http.post("/refunds", data={}))["code"] == "parameter_missing"
    assert refused(http.post("/refunds", data={"charge": charge, "reason": "whim"}))["param"] == "reason"
    assert refused(http.post("/refunds", data={"charge": "ch_missing"}))["code"] == "resource_missing"
    refund = ok(http.post("/refunds", data={"payment_intent": invoice["payment_intent"], "amount": 825}))
    assert (refund["charge"], refund["amount"]) == (charge, 825)
    txn = ok(http.get(f"/balance_transactions/{refund['balance_transaction']}"))
    assert (txn["amount"], txn["type"], txn["source"]) == (-825, "refund", refund["id"])
    rest = ok(http.post("/refunds", data={"charge": charge}))  # no amount: all that is left
    assert rest["amount"] == 10000
    assert refused(http.post("/refunds", data={"charge": charge}))["code"] == "charge_already_refunded"
    assert ok(http.get(f"/charges/{charge}"))["amount_refunded"] == 10825
    types = [e["type"] for e in sandbox.records("stripe", "event")]
    assert types.count("charge.refunded") == 2 and types.count("refund.created") == 2


def test_control_plane_disputes_refuse_what_a_network_would_not_do(sandbox, http, control):
    invoice = ok(http.post(f"/invoices/{open_invoice(sandbox, http)['id']}/pay"))
    assert control.post("/stripe/disputes", json={"charge": "ch_missing"}).status_code == 404
    assert control.post("/stripe/disputes", json={"charge": invoice["charge"], "reason": "whim"}).status_code == 400
    too_much = {"charge": invoice["charge"], "amount": 10826}
    assert control.post("/stripe/disputes", json=too_much).status_code == 400
    opened = sandbox.open_dispute(invoice["charge"], amount=5000, fee=2000)
    assert [(t["amount"], t["fee"], t["net"]) for t in opened["balance_transactions"]] == [(-5000, 2000, -7000)]
    assert control.post("/stripe/disputes", json={"charge": invoice["charge"]}).status_code == 400  # already
    assert control.post(f"/stripe/disputes/{opened['id']}/close", json={"status": "maybe"}).status_code == 400
    unknown = http.post(f"/disputes/{opened['id']}", data={"evidence[colour]": "red"})
    assert (refused(unknown)["code"], refused(unknown)["param"]) == ("parameter_unknown", "evidence[colour]")
    sandbox.close_dispute(opened["id"], "lost")
    assert control.post(f"/stripe/disputes/{opened['id']}/close", json={"status": "won"}).status_code == 400
    closed_update = http.post(f"/disputes/{opened['id']}", data={"evidence[uncategorized_text]": "late"})
    assert refused(closed_update)["code"] == "dispute_already_closed"
