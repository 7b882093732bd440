"""AvaTax ReturnInvoice over real HTTP against the sandbox: a credit's tax returned at the
original's rates, referencing it, once per code."""

from __future__ import annotations

from datetime import date

import httpx
import pytest

from adapters.errors import BusinessError
from canonical.credits import ReturnLine, TaxReturnRequest
from canonical.models import Address, InvoiceLine
from canonical.money import Money

CA = Address(line1="1 Market St", city="San Francisco", region="CA", postal_code="94105", country="US")
# The sandbox's Illinois rate changed on 2026-07-01 (6 % before, 6.25 % after).
IL = Address(line1="1 Wacker Dr", city="Chicago", region="IL", postal_code="60601", country="US")


def usd(amount: str) -> Money:
    return Money.of(amount, "USD")


async def original(avatax, code: str, address: Address, on: date, *amounts: str) -> None:
    await avatax.commit(
        code=code,
        customer_code="cus_acme",
        document_date=on,
        currency="USD",
        address=address,
        lines=[InvoiceLine(product=f"prod_{i}", description=f"line {i}", amount=usd(a)) for i, a in enumerate(amounts)],
    )


def request(code: str, original_code: str, original_date: date, address: Address, *amounts: str) -> TaxReturnRequest:
    return TaxReturnRequest(
        code=code,
        original_code=original_code,
        customer_code="cus_acme",
        return_date=date(2026, 11, 25),
        original_date=original_date,
        currency="USD",
        address=address,
        lines=[ReturnLine(number=str(i + 1), amount=usd(a), product="prod_0") for i, a in enumerate(amounts)],
    )


async def test_a_return_is_taxed_at_the_rates_of_the_original_date(avatax, sandbox):
    await original(avatax, "in_il", IL, date(2026, 3, 10), "200.00")
    returned = await avatax.return_invoice(request("credit-K1-tax", "in_il", date(2026, 3, 10), IL, "50.00"))
    assert (returned.type, returned.status) == ("ReturnInvoice", "Committed")
    assert returned.total_amount == usd("-50.00")
    assert returned.total_tax == usd("-3.00")  # 6 %, Illinois's rate in March, not 6.25 % today
    assert returned.document_date == date(2026, 11, 25)  # reported in the period it was made

    stored = sandbox.records("avatax", "transaction")
    [wire] = [d for d in stored if d["type"] == "ReturnInvoice"]
    assert wire["referenceCode"] == "in_il"
    assert wire["taxOverride"] == {"type": "TaxDate", "taxDate": "2026-03-10", "reason": "Return of invoice in_il"}
    assert [line["quantity"] for line in wire["lines"]] == ["1"]


async def test_the_same_code_again_is_the_same_return(avatax, sandbox):
    await original(avatax, "in_ca", CA, date(2026, 10, 1), "100.00", "20.00")
    first = await avatax.return_invoice(request("credit-K2-tax", "in_ca", date(2026, 10, 1), CA, "30.00", "20.00"))
    again = await avatax.return_invoice(request("credit-K2-tax", "in_ca", date(2026, 10, 1), CA, "30.00", "20.00"))
    assert again == first
    assert first.total_tax == usd("-3.63")  # 7.25 % per line: -2.175 rounds half away from zero to -2.18, -1.45
    returns = [d for d in sandbox.records("avatax", "transaction") if d["type"] == "ReturnInvoice"]
    assert len(returns) == 1
    # The return may reuse the original's own code once: codes are unique per type.
    same_code = await avatax.return_invoice(request("in_ca", "in_ca", date(2026, 10, 1), CA, "10.00"))
    assert same_code.type == "ReturnInvoice"
    assert (await avatax._read("in_ca"))["type"] == "SalesInvoice"


async def test_returns_list_beside_invoices_for_reconciliation(avatax):
    await original(avatax, "in_list", CA, date(2026, 11, 3), "100.00")
    await avatax.return_invoice(request("credit-K3-tax", "in_list", date(2026, 11, 3), CA, "100.00"))
    page = await avatax.list_documents_page(company_code="US01", date_from=date(2026, 11, 1), date_to=date(2026, 12, 1))
    assert [(d.code, d.type, d.total_tax) for d in page.items] == [
        ("in_list", "SalesInvoice", usd("7.25")),
        ("credit-K3-tax", "ReturnInvoice", usd("-7.25")),
    ]


async def test_a_return_without_an_original_or_larger_than_it_is_refused_before_recording(avatax, sandbox):
    with pytest.raises(BusinessError, match="no recorded tax document"):
        await avatax.return_invoice(request("credit-K4-tax", "in_missing", date(2026, 10, 1), CA, "10.00"))
    await original(avatax, "in_small", CA, date(2026, 10, 1), "40.00")
    with pytest.raises(BusinessError, match=r"more than the 40\.00"):
        await avatax.return_invoice(request("credit-K5-tax", "in_small", date(2026, 10, 1), CA, "40.01"))
    with pytest.raises(BusinessError, match="positive USD amount"):
        await avatax.return_invoice(request("credit-K6-tax", "in_small", date(2026, 10, 1), CA, "-5.00"))
    assert [d["code"] for d in sandbox.records("avatax", "transaction")] == ["in_small"]


async def test_real_avatax_checks_no_reference_so_neither_does_the_sandbox(sandbox):
    """AvaTax makes no association with the original invoice (Avalara's guide to returns):
    a ReturnInvoice naming an unknown referenceCode is recorded. The adapter refuses it."""
    body = {
        "type": "ReturnInvoice",
        "companyCode": "US01",
        "code": "raw-return",
        "customerCode": "cus_acme",
        "date": "2026-11-25",
        "referenceCode": "no-such-invoice",
        "commit": True,
        "taxOverride": {"type": "TaxDate", "taxDate": "2026-03-10", "reason": "Return"},
        "addresses": {"SingleLocation": {"region": "IL", "country": "US", "postalCode": "60601"}},
        "lines": [{"number": "1", "quantity": 1, "amount": -100}],
    }
    async with httpx.AsyncClient(base_url=sandbox.avatax_url, auth=("o2c", "key"), timeout=5) as http:
        created = await http.post("/api/v2/transactions/create", json=body)
        assert created.status_code == 201
        assert created.json()["totalTax"] == -6
        without_reason = await http.post(
            "/api/v2/transactions/create", json={**body, "code": "raw-2", "taxOverride": {"type": "TaxDate"}}
        )
        assert without_reason.status_code == 400


async def test_a_voided_return_is_undone_once(avatax):
    await original(avatax, "in_void", CA, date(2026, 10, 1), "100.00")
    await avatax.return_invoice(request("credit-K7-tax", "in_void", date(2026, 10, 1), CA, "10.00"))
    assert (await avatax.void_return(code="credit-K7-tax")).status == "Cancelled"
    assert (await avatax.void_return(code="credit-K7-tax")).status == "Cancelled"
    assert await avatax.void_return(code="credit-never") is None
    assert (await avatax._read("in_void"))["status"] == "Committed"  # the original stays
