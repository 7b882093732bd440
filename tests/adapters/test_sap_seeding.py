"""A period seeded in the SAP stand-in reads back through the adapter as o2c's own postings do:
invoice, payment and revenue documents with their keys, customers and breaks, paged, and a
post after the seeding numbers after it."""

from __future__ import annotations

import secrets
import string
from datetime import date
from decimal import ROUND_HALF_UP, Decimal

import httpx
import pytest

from adapters.sap import SapErp
from canonical.journal import ChartOfAccounts, invoice_entry
from canonical.money import Money
from sandbox.control.period_seed_sap import document_reference as seeded_reference

CHART = ChartOfAccounts()


def company_code() -> str:
    """A company code of the test's own: the sandbox's database outlives the run."""
    return "".join(secrets.choice(string.ascii_uppercase + string.digits) for _ in range(4))


@pytest.fixture
async def sap(sandbox):
    client = SapErp(sandbox.sap_url, "O2C_COMM", "sandbox-password", logical_system="O2C", timeout=10)
    yield client
    await client.aclose()


async def all_entries(sap: SapErp, code: str, limit: int) -> tuple[list, int]:
    entries, cursor, pages = [], "", 0
    while True:
        page = await sap.list_journal_entries_page(
            subsidiary=code, date_from=date(2026, 10, 1), date_to=date(2026, 11, 1), cursor=cursor, limit=limit
        )
        entries += page.items
        pages += 1
        if not page.next_cursor:
            return entries, pages
        cursor = page.next_cursor


def test_the_reference_is_the_adapters() -> None:
    from adapters.sap.wire import document_reference

    assert seeded_reference("amendment-recon-x-000001-invoice") == document_reference(
        "amendment-recon-x-000001-invoice"
    )


async def test_a_seeded_sap_period_reads_back_as_posted_documents(sandbox, sap):
    code, tag = company_code(), f"S{secrets.token_hex(3)}"
    sandbox.sap_company_code(code, "EUR")
    seeded = sandbox.seed_period(
        tag=tag,
        period="2026-10",
        invoices=40,
        currency="EUR",
        tax_rate="19",
        erp="sap",
        subsidiary=code,
        company_code=f"DE{tag}",
        breaks={kind: 1 for kind in ("duplicate_posting", "amount_mismatch", "currency_mismatch", "missing_in_erp")},
        revenue=[{"contract_id": f"C-{tag}", "amount": "500.00"}],
    )
    assert seeded["erp"] == "sap"
    # 40 invoices less the missing one (paid: its payment is missing too), 19 payments, a duplicate, the revenue
    assert seeded["created"]["journal_entries"] == 39 + 19 + 1 + 1

    entries, pages = await all_entries(sap, code, limit=7)
    assert len(entries) == 60 and pages == 9
    by_id = {e.external_id: e for e in entries}
    assert len(by_id) == 60
    first = by_id[f"amendment-recon-{tag}-000000-invoice"]
    assert first.invoice_id == f"in_recon_{tag}_000000" and first.customer == f"cus_recon_{tag}_0"
    assert first.subsidiary == code and first.posting_date == date(2026, 10, 1) and first.currency == "EUR"
    assert [(x.account, x.debit, x.credit) for x in first.lines] == [
        ("1200", Money.of("119.00", "EUR"), None),
        ("2400", None, Money.of("100.00", "EUR")),
        ("2200", None, Money.of("19.00", "EUR")),
    ]
    payment = by_id[f"payment-in_recon_{tag}_000000"]
    assert payment.invoice_id == first.invoice_id and payment.customer == first.customer
    assert [(x.account, x.debit is not None) for x in payment.lines] == [("1010", True), ("1200", False)]
    [revenue] = [e for e in entries if e.contract_id]
    assert revenue.external_id == f"revrec-C-{tag}-2026-10" and revenue.posting_date == date(2026, 10, 31)
    for e in entries:  # JournalEntry refuses an unbalanced one; the figures, once more
        assert sum(x.amount.minor for x in e.lines if x.debit) == sum(x.amount.minor for x in e.lines if x.credit)

    breaks = seeded["breaks"]
    assert f"amendment-recon-{tag}-{breaks['missing_in_erp'][0][-6:]}-invoice" not in by_id
    assert f"manual-{breaks['duplicate_posting'][0]}" in by_id
    [odd] = [e for e in entries if e.invoice_id == breaks["currency_mismatch"][0]]
    assert odd.currency == "USD"
    [more] = [e for e in entries if e.invoice_id == breaks["amount_mismatch"][0]]
    i = int(breaks["amount_mismatch"][0][-6:])
    billed = Decimal("100.00") + (i % 97) * Decimal("3.17")
    total = billed + (billed * Decimal("0.19")).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    assert more.lines[0].debit == Money.of(total + 1, "EUR")

    # o2c's own lookup finds a seeded entry by its reference, and a new post numbers after the seeding.
    assert (await sap.get_journal_entry(first.external_id)).internal_id == first.internal_id  # type: ignore[union-attr]
    posted = await sap.post_journal_entry(
        invoice_entry(
            external_id=f"test-{tag}-invoice",
            subsidiary=code,
            posting_date=date(2026, 10, 31),
            memo="after the seeding",
            revenue=Money.of("10.00", "EUR"),
            tax=Money.of("1.90", "EUR"),
            chart=CHART,
            invoice_id=f"in_after_{tag}",
            customer=f"cus_recon_{tag}_7",
        )
    )
    assert posted.internal_id > max(e.internal_id for e in entries)


def test_sap_seeding_refuses_what_sap_would_not_hold(sandbox):
    code, tag = company_code(), f"R{secrets.token_hex(3)}"

    def refusal(**body) -> str:
        spec = {"tag": tag, "period": "2026-10", "invoices": 2, "erp": "sap", "subsidiary": code, **body}
        response = httpx.post(f"{sandbox.url}/_sandbox/seed/period", json=spec)
        assert response.status_code == 400
        return response.text

    assert "does not exist" in refusal(currency="EUR")
    sandbox.sap_company_code(code, "EUR")
    assert "books in EUR, not USD" in refusal()
    assert "at most 7 characters" in refusal(tag="toolongtag", currency="EUR")
    assert "unknown field(s) ledger" in refusal(currency="EUR", ledger="x")
    assert not [i for i in sandbox.records("sap", "item") if i["CompanyCode"] == code]
