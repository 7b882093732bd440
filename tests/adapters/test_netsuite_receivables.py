"""NetSuite receivables over real HTTP against the sandbox: payments, credit memos and
refunds applied to the A/R journal entries that book invoices."""

from __future__ import annotations

from datetime import date

import httpx
import pytest

from adapters.errors import BusinessError
from canonical.journal import ChartOfAccounts, invoice_entry
from canonical.models import Account
from canonical.money import Money
from canonical.receivables import (
    AppliedDocument,
    CreditMemoLine,
    CreditMemoPosting,
    CustomerPayment,
    CustomerRefundPosting,
)

CHART = ChartOfAccounts()
DAY = date(2026, 11, 2)
RECORD = "/record/v1"


def usd(amount: str) -> Money:
    return Money.of(amount, "USD")


@pytest.fixture
async def http(sandbox):
    async with httpx.AsyncClient(
        base_url=sandbox.netsuite_url, headers={"Authorization": "Bearer sandbox-token"}, timeout=5
    ) as client:
        yield client


async def book(netsuite, invoice_id: str, revenue: str, tax: str, customer: str = "cus_acme") -> str:
    entry = invoice_entry(
        external_id=f"amendment-{invoice_id}-invoice",
        subsidiary="1",
        posting_date=DAY,
        memo=f"invoice {invoice_id}",
        revenue=usd(revenue),
        tax=usd(tax),
        chart=CHART,
        invoice_id=invoice_id,
        customer=customer,
    )
    await netsuite.post_journal_entry(entry)
    document = await netsuite.receivable_document(invoice_id, subsidiary="1")
    assert document is not None
    return document


def payment(external_id: str, amount: str, *applied: tuple[str, str, str], customer: str = "cus_acme"):
    return CustomerPayment(
        external_id=external_id,
        customer=customer,
        subsidiary="1",
        amount=usd(amount),
        tran_date=date(2026, 11, 20),
        account=CHART.bank,
        applications=[AppliedDocument(erp_document=d, invoice_id=i, amount=usd(a)) for d, i, a in applied],
        memo="Bank receipt",
        receipt_id=f"rcpt-{external_id}",
    )


async def test_the_invoice_entry_names_its_customer_and_is_a_receivable(netsuite, http):
    document = await book(netsuite, "in_1", "100.00", "8.25")
    entry = await netsuite.get_journal_entry("amendment-in_1-invoice")
    assert entry.customer == "cus_acme"
    record = (await http.get(f"{RECORD}/journalEntry/{document}")).json()
    assert all(line["entity"]["id"] for line in record["line"]["items"])
    assert await netsuite.open_amount(document) == usd("108.25")
    # The reversal and a document of another invoice are not this invoice's receivable.
    await netsuite.post_journal_entry(entry.reversal("amendment-in_1-invoice-reversal", DAY))
    assert await netsuite.receivable_document("in_1", subsidiary="1") == document
    assert await netsuite.receivable_document("in_1", subsidiary="2") is None
    assert await netsuite.receivable_document("in_unknown", subsidiary="1") is None


async def test_the_receivables_of_many_invoices_in_one_lookup_answer_as_one_by_one(netsuite, monkeypatch):
    import adapters.netsuite_receivables as receivables

    monkeypatch.setattr(receivables, "RECEIVABLE_CHUNK", 2)  # three invoices: two IN lists
    documents = {i: await book(netsuite, i, "10.00", "0.00") for i in ("in_m1", "in_m2", "in_m3")}
    entry = await netsuite.get_journal_entry("amendment-in_m2-invoice")
    await netsuite.post_journal_entry(entry.reversal("amendment-in_m2-invoice-reversal", DAY))
    found = await netsuite.receivable_documents(["in_m3", "in_m1", "in_m2", "in_m1", "in_none"], subsidiary="1")
    assert found == documents
    assert await netsuite.receivable_documents(["in_m1"], subsidiary="2") == {}


async def test_a_payment_applied_to_two_invoices_posted_twice_is_one_payment(netsuite, sandbox):
    first = await book(netsuite, "in_a", "100.00", "0.00")
    second = await book(netsuite, "in_b", "50.00", "0.00")
    posted = payment("cash-r1", "130.00", (first, "in_a", "100.00"), (second, "in_b", "20.00"))
    internal_id = await netsuite.post_customer_payment(posted)
    again = await netsuite.post_customer_payment(posted)
    assert again == internal_id
    assert sandbox.count("netsuite", "customerPayment") == 1
    assert await netsuite.open_amount(first) == usd("0.00")
    assert await netsuite.open_amount(second) == usd("30.00")
    assert await netsuite.open_amount(internal_id) == usd("10.00")  # unapplied on the customer

    read = await netsuite.get_customer_payment("cash-r1")
    assert read == posted
    assert await netsuite.get_customer_payment("cash-never") is None

    # Re-posting with other lines replaces the applications: nothing is counted twice.
    moved = payment("cash-r1", "130.00", (second, "in_b", "50.00"))
    await netsuite.post_customer_payment(moved)
    assert await netsuite.open_amount(first) == usd("100.00")
    assert await netsuite.open_amount(second) == usd("0.00")
    assert await netsuite.open_amount(internal_id) == usd("80.00")


async def test_over_application_is_refused_before_anything_changes(netsuite, sandbox):
    document = await book(netsuite, "in_c", "100.00", "0.00")
    await netsuite.post_customer_payment(payment("cash-r2", "60.00", (document, "in_c", "60.00")))
    with pytest.raises(BusinessError, match=r"only 40\.00 is open"):
        await netsuite.post_customer_payment(payment("cash-r3", "50.00", (document, "in_c", "50.00")))
    assert sandbox.count("netsuite", "customerPayment") == 1
    assert await netsuite.open_amount(document) == usd("40.00")
    # Re-posting the first payment for its own amount is not over-application.
    await netsuite.post_customer_payment(payment("cash-r2", "60.00", (document, "in_c", "60.00")))
    assert await netsuite.open_amount(document) == usd("40.00")


async def test_applying_more_than_the_payment_is_refused_on_the_wire(netsuite, http, sandbox):
    document = await book(netsuite, "in_d", "100.00", "0.00")
    body = {
        "customer": {"externalId": "cus_acme"},
        "payment": 10,
        "tranDate": "2026-11-20",
        "subsidiary": {"id": "1"},
        "currency": {"refName": "USD"},
        "account": {"id": "1000"},
        "apply": {"items": [{"doc": {"id": document}, "apply": True, "amount": 20}]},
    }
    response = await http.put(f"{RECORD}/customerPayment/eid:cash-raw", json=body)
    assert response.status_code == 400
    detail = response.json()["o:errorDetails"][0]
    assert detail["o:errorCode"] == "USER_ERROR"
    assert "cannot exceed the payment amount" in detail["detail"]
    assert sandbox.count("netsuite", "customerPayment") == 0

    # Another customer's document cannot be applied either.
    other = await book(netsuite, "in_e", "10.00", "0.00", customer="cus_other")
    body["apply"]["items"] = [{"doc": {"id": other}, "amount": 5}]
    response = await http.put(f"{RECORD}/customerPayment/eid:cash-raw", json=body)
    assert response.status_code == 400
    assert "another customer" in response.json()["o:errorDetails"][0]["detail"]


async def test_unapplying_by_apply_false_or_amount_zero(netsuite, http):
    document = await book(netsuite, "in_f", "100.00", "0.00")
    internal_id = await netsuite.post_customer_payment(payment("cash-r4", "70.00", (document, "in_f", "70.00")))
    # Without replace=apply, a sent line merges into the stored ones by doc.
    response = await http.patch(
        f"{RECORD}/customerPayment/{internal_id}", json={"apply": {"items": [{"doc": {"id": document}, "amount": 0}]}}
    )
    assert response.status_code == 204
    assert await netsuite.open_amount(document) == usd("100.00")
    await http.patch(
        f"{RECORD}/customerPayment/{internal_id}", json={"apply": {"items": [{"doc": {"id": document}, "amount": 30}]}}
    )
    assert await netsuite.open_amount(document) == usd("70.00")
    await http.patch(
        f"{RECORD}/customerPayment/{internal_id}",
        json={"apply": {"items": [{"doc": {"id": document}, "apply": False, "amount": 30}]}},
    )
    assert await netsuite.open_amount(document) == usd("100.00")
    read = (await http.get(f"{RECORD}/customerPayment/{internal_id}")).json()
    assert (read["applied"], read["unapplied"], read["balance"]) == (0, 70, 100)


async def test_a_credit_memo_applied_to_the_original_then_reversed(netsuite, sandbox):
    document = await book(netsuite, "in_g", "200.00", "16.50")
    memo = CreditMemoPosting(
        external_id="credit-K1-memo",
        customer="cus_acme",
        subsidiary="1",
        currency="USD",
        tran_date=date(2026, 11, 25),
        invoice_id="in_g",
        lines=[CreditMemoLine(account=CHART.credit_clearing, amount=usd("50.00"), memo="Service credit")],
        tax=usd("4.13"),
        apply_to=document,
        apply_amount=usd("54.13"),
    )
    internal_id = await netsuite.post_credit_memo(memo)
    assert await netsuite.post_credit_memo(memo) == internal_id
    assert sandbox.count("netsuite", "creditMemo") == 1
    assert await netsuite.open_amount(document) == usd("162.37")
    assert await netsuite.open_amount(internal_id) == usd("0.00")

    too_much = memo.model_copy(update={"external_id": "credit-K2-memo", "apply_amount": usd("60.00")})
    with pytest.raises(BusinessError, match="cannot exceed the credit memo total"):
        await netsuite.post_credit_memo(too_much)

    await netsuite.reverse_credit_memo("credit-K1-memo")
    await netsuite.reverse_credit_memo("credit-K1-memo")  # nothing left: no error
    assert sandbox.count("netsuite", "creditMemo") == 0
    assert await netsuite.open_amount(document) == usd("216.50")


async def test_a_refund_of_unapplied_cash_and_of_a_credit_memo(netsuite, sandbox):
    document = await book(netsuite, "in_h", "100.00", "0.00")
    paid = await netsuite.post_customer_payment(payment("cash-r5", "150.00", (document, "in_h", "100.00")))
    memo = await netsuite.post_credit_memo(
        CreditMemoPosting(
            external_id="credit-K3-memo",
            customer="cus_acme",
            subsidiary="1",
            currency="USD",
            tran_date=date(2026, 11, 25),
            invoice_id="in_h",
            lines=[CreditMemoLine(account=CHART.credit_clearing, amount=usd("25.00"))],
            tax=usd("0.00"),
        )
    )
    assert await netsuite.open_amount(memo) == usd("25.00")

    def refund(amount: str, *applied: tuple[str, str]) -> CustomerRefundPosting:
        return CustomerRefundPosting(
            external_id="refund-R1",
            customer="cus_acme",
            subsidiary="1",
            amount=usd(amount),
            tran_date=date(2026, 11, 28),
            account=CHART.bank,
            applications=[AppliedDocument(erp_document=d, invoice_id="in_h", amount=usd(a)) for d, a in applied],
        )

    with pytest.raises(BusinessError, match=r"only 50\.00 is open"):
        await netsuite.post_customer_refund(refund("60.00", (paid, "60.00")))
    with pytest.raises(BusinessError, match="refund exactly what its lines name"):
        await netsuite.post_customer_refund(refund("70.00", (paid, "50.00")))
    internal_id = await netsuite.post_customer_refund(refund("75.00", (paid, "50.00"), (memo, "25.00")))
    assert await netsuite.post_customer_refund(refund("75.00", (paid, "50.00"), (memo, "25.00"))) == internal_id
    assert sandbox.count("netsuite", "customerRefund") == 1
    assert await netsuite.open_amount(paid) == usd("0.00")
    assert await netsuite.open_amount(memo) == usd("0.00")
    # A refunded credit memo cannot be deleted from under its refund.
    with pytest.raises(BusinessError, match="dependent records"):
        await netsuite.reverse_credit_memo("credit-K3-memo")


async def test_receivables_of_a_customer(netsuite):
    first = await book(netsuite, "in_i", "100.00", "5.00")
    second = await book(netsuite, "in_j", "40.00", "0.00")
    await book(netsuite, "in_k", "99.00", "0.00", customer="cus_other")
    await netsuite.post_customer_payment(payment("cash-r6", "45.00", (first, "in_i", "45.00")))
    found = await netsuite.receivables_of_customer("cus_acme")
    assert [(r.erp_document, r.invoice_id, r.original, r.open) for r in found] == [
        (first, "in_i", usd("105.00"), usd("60.00")),
        (second, "in_j", usd("40.00"), usd("40.00")),
    ]
    assert await netsuite.receivables_of_customer("cus_nobody") == []


async def test_transform_an_invoice_record_to_a_credit_memo(http, netsuite):
    body = {
        "entity": {"externalId": "cus_acme"},
        "tranDate": "2026-11-02",
        "subsidiary": {"id": "1"},
        "currency": {"refName": "USD"},
        "item": {"items": [{"account": {"id": "4000"}, "amount": 80}]},
    }
    created = await http.post(f"{RECORD}/invoice", json=body)
    assert created.status_code == 204
    invoice = created.headers["location"].rsplit("/", 1)[-1]
    transformed = await http.post(f"{RECORD}/invoice/{invoice}/!transform/creditMemo", json={"memo": "returned"})
    assert transformed.status_code == 204
    memo = transformed.headers["location"].rsplit("/", 1)[-1]
    record = (await http.get(f"{RECORD}/creditMemo/{memo}")).json()
    assert record["createdFrom"] == {"id": invoice}
    assert (record["total"], record["applied"], record["status"]["id"]) == (80, 80, "B")
    assert await netsuite.open_amount(invoice) == usd("0.00")
    # Nothing is left to credit: a second transform that applies would over-apply.
    again = await http.post(
        f"{RECORD}/invoice/{invoice}/!transform/creditMemo",
        json={"apply": {"items": [{"doc": {"id": invoice}, "amount": 1}]}},
    )
    assert again.status_code == 400


async def test_suiteql_reads_payments_memos_and_their_links(netsuite, http):
    document = await book(netsuite, "in_l", "100.00", "0.00")
    paid = await netsuite.post_customer_payment(payment("cash-r7", "60.00", (document, "in_l", "60.00")))
    await netsuite.post_credit_memo(
        CreditMemoPosting(
            external_id="credit-K4-memo",
            customer="cus_acme",
            subsidiary="1",
            currency="USD",
            tran_date=date(2026, 11, 25),
            invoice_id="in_l",
            lines=[CreditMemoLine(account=CHART.credit_clearing, amount=usd("30.00"))],
            tax=usd("0.00"),
            apply_to=document,
            apply_amount=usd("10.00"),
        )
    )

    async def query(q: str) -> list[dict]:
        response = await http.post("/query/v1/suiteql", json={"q": q}, headers={"Prefer": "transient"})
        assert response.status_code == 200, response.text
        return [{k: v for k, v in item.items() if k != "links"} for item in response.json()["items"]]

    rows = await query(
        "SELECT t.id, t.type, t.foreignpaymentamountused AS used, t.foreignpaymentamountunused AS unused, "
        "BUILTIN.CF(t.status) AS status FROM transaction t WHERE t.type IN ('CustPymt', 'CustCred') ORDER BY t.id"
    )
    assert [(r["type"], r["used"], r["unused"], r["status"]) for r in rows] == [
        ("CustPymt", "60.00", "0.00", "CustPymt:C"),
        ("CustCred", "10.00", "20.00", "CustCred:A"),
    ]
    links = await query(
        f"SELECT nextdoc, nexttype, linktype, foreignamount FROM NextTransactionLineLink WHERE previousdoc = {document}"
    )
    assert sorted((r["nexttype"], r["linktype"], r["foreignamount"]) for r in links) == [
        ("CustCred", "Payment", "10.00"),
        ("CustPymt", "Payment", "60.00"),
    ]
    assert str(paid) in {r["nextdoc"] for r in links}
    journal = await query(f"SELECT t.foreignamountunpaid AS unpaid FROM transaction t WHERE t.id = {document}")
    assert journal == [{"unpaid": "30.00"}]


async def test_a_customer_named_before_it_is_upserted_becomes_that_customer(netsuite, sandbox):
    document = await book(netsuite, "in_m", "10.00", "0.00", customer="cus_late")
    internal_id = await netsuite.upsert_customer(Account(id="cus_late", name="Late Ltd"), subsidiary="1")
    [record] = [c for c in sandbox.records("netsuite", "customer") if c["externalId"] == "cus_late"]
    assert record["id"] == internal_id and "placeholder" not in record
    assert [r.erp_document for r in await netsuite.receivables_of_customer("cus_late")] == [document]


async def test_post_creates_once_by_external_id_and_delete_restores_the_open_amount(netsuite, http, sandbox):
    document = await book(netsuite, "in_n", "90.00", "0.00")
    body = {
        "externalId": "cash-posted",
        "customer": {"externalId": "cus_acme"},
        "payment": 90,
        "tranDate": "2026-11-20",
        "subsidiary": {"id": "1"},
        "currency": {"refName": "USD"},
        "account": {"id": "1000"},
        "apply": {"items": [{"doc": {"id": document}, "apply": True, "amount": 90}]},
    }
    created = await http.post(f"{RECORD}/customerPayment", json=body)
    assert created.status_code == 204 and created.content == b""
    internal_id = created.headers["location"].rsplit("/", 1)[-1]
    duplicate = await http.post(f"{RECORD}/customerPayment", json=body)
    assert duplicate.status_code == 400 and duplicate.json()["o:errorDetails"][0]["o:errorCode"] == "DUP_RCRD"
    assert await netsuite.open_amount(document) == usd("0.00")
    missing_customer = await http.post(f"{RECORD}/customerPayment", json={**body, "externalId": "x", "customer": None})
    assert missing_customer.status_code == 400

    deleted = await http.delete(f"{RECORD}/customerPayment/{internal_id}")
    assert deleted.status_code == 204
    assert (await http.get(f"{RECORD}/customerPayment/{internal_id}")).status_code == 404
    assert await netsuite.open_amount(document) == usd("90.00")
    assert sandbox.count("netsuite", "customerPayment") == 0
