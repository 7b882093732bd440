from __future__ import annotations

from datetime import date

import pytest

from adapters.avatax import AvaTaxTax
from adapters.errors import BusinessError, IntegrationBug, TransientError
from canonical.models import Address, InvoiceLine
from canonical.money import Money

CA = Address(line1="1 Market St", city="San Francisco", region="CA", postal_code="94105", country="US")
NY = Address(line1="1 Broadway", city="New York", region="NY", postal_code="10004", country="US")


def usd(amount: str) -> Money:
    return Money.of(amount, "USD")


def lines(*amounts: str) -> list[InvoiceLine]:
    return [InvoiceLine(product=f"prod_{i}", description=f"line {i}", amount=usd(a)) for i, a in enumerate(amounts)]


def doc(**overrides):
    args = dict(
        code="inv-A1",
        customer_code="cus_acme",
        document_date=date(2025, 3, 15),
        currency="USD",
        address=CA,
        lines=lines("100.00", "-40.00"),
    )
    args.update(overrides)
    return args


async def test_quote_rates_lines_half_up_and_records_nothing(avatax, sandbox):
    quote = await avatax.quote(**doc(address=NY, lines=lines("100.00", "-10.00")))
    assert quote.type == "SalesOrder"
    assert [line.tax for line in quote.lines] == [usd("8.88"), usd("-0.89")]  # 8.875 % half-up per line
    assert quote.total_tax == usd("7.99")
    assert quote.total_amount == usd("90.00")
    assert sandbox.count("avatax", "transaction") == 0


async def test_commit_records_once_and_a_repeat_reads_it_back(avatax, sandbox):
    committed = await avatax.commit(**doc())
    assert (committed.type, committed.status) == ("SalesInvoice", "Committed")
    assert committed.total_tax == usd("4.35")  # 7.25 % of 60.00
    again = await avatax.commit(**doc())  # DocumentCodeConflict -> read back by code
    assert again == committed
    assert sandbox.summary()["avatax"]["transaction"] == {"total": 1, "by_status": {"SalesInvoice/Committed": 1}}


async def test_void_cancels_and_is_idempotent(avatax, sandbox):
    await avatax.commit(**doc())
    voided = await avatax.void(code="inv-A1")
    assert voided.status == "Cancelled"
    assert (await avatax.void(code="inv-A1")).status == "Cancelled"
    # A compensation may void a document whose commit never happened: nothing to undo.
    assert await avatax.void(code="never-created") is None


async def test_missing_jurisdiction_is_a_fixable_business_error(avatax, sandbox):
    with pytest.raises(BusinessError) as info:
        await avatax.commit(**doc(address=Address(line1="1 Main", city="Springfield", country="US")))
    error = info.value
    assert error.fixable
    assert error.code == "MissingAddress"
    assert "customer master of cus_acme has no tax jurisdiction" in error.message
    assert sandbox.count("avatax", "transaction") == 0


async def test_wrong_license_is_an_integration_bug(sandbox):
    client = AvaTaxTax(sandbox.avatax_url, "o2c", "invalid-license", "US01", timeout=5)
    try:
        with pytest.raises(IntegrationBug):
            await client.quote(**doc())
    finally:
        await client.aclose()


@pytest.mark.parametrize("kind", ["5xx", "429"])
async def test_server_faults_are_transient(avatax, sandbox, kind):
    sandbox.fault("avatax", kind, times=1)
    with pytest.raises(TransientError):
        await avatax.commit(**doc())
    assert sandbox.count("avatax", "transaction") == 0
    assert (await avatax.commit(**doc())).status == "Committed"


async def test_commit_then_timeout_converges_to_one_committed_document(sandbox):
    sandbox.fault("avatax", "commit_then_timeout", path_contains="/transactions/create", times=1, hold_seconds=2)
    client = AvaTaxTax(sandbox.avatax_url, "o2c", "sandbox-license", "US01", timeout=1)
    try:
        with pytest.raises(TransientError):
            await client.commit(**doc())
        result = await client.commit(**doc())
    finally:
        await client.aclose()
    assert result.status == "Committed"
    assert sandbox.count("avatax", "transaction", "SalesInvoice/Committed") == 1
    [record] = sandbox.records("avatax", "transaction")
    assert record["code"] == "inv-A1"


async def test_each_entity_files_in_its_own_company_and_a_document_is_undone_where_it_is(sandbox):
    """US01 and DE01 on one AvaTax account: a commit names DE01's company; voiding and reading
    by code alone find the document there, and US01's listing never shows it."""
    tax = AvaTaxTax(sandbox.avatax_url, "o2c", "sandbox-license", "US01", timeout=5, companies=["US01", "1010"])
    try:
        committed = await tax.commit(**doc(code="inv-DE-1"), company_code="1010")
        assert committed.company_code == "1010"
        again = await tax.commit(**doc(code="inv-DE-1"), company_code="1010")  # a retry reads it back
        assert again == committed
        assert (await tax.get_document(code="inv-DE-1")) == committed
        window = dict(date_from=date(2025, 3, 1), date_to=date(2025, 4, 1))
        assert [d.code for d in (await tax.list_documents_page(company_code="1010", **window)).items] == ["inv-DE-1"]
        assert (await tax.list_documents_page(company_code="US01", **window)).items == []
        voided = await tax.void(code="inv-DE-1")
        assert voided is not None and voided.status == "Cancelled"
        assert await tax.void(code="inv-nowhere") is None
    finally:
        await tax.aclose()
