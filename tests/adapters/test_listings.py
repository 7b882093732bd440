"""Reconciliation's listings over real HTTP against the sandbox: Stripe invoices, AvaTax
transactions and NetSuite journal entries of a period, page by page, and the period
seeder's breaks as the listings show them."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal

import httpx
import pytest

from adapters import netsuite as netsuite_adapter
from adapters.errors import IntegrationBug
from adapters.stripe import to_invoice
from canonical.journal import ChartOfAccounts, JournalEntry, JournalLine, invoice_entry
from canonical.models import TAX_PRODUCT, Address, InvoiceLine
from canonical.money import Money

OCT, NOV, DEC = date(2026, 10, 1), date(2026, 11, 1), date(2026, 12, 1)
ALL_BREAKS = {
    "missing_in_erp": 1,
    "missing_in_billing": 1,
    "duplicate_posting": 1,
    "amount_mismatch": 1,
    "tax_mismatch": 1,
    "currency_mismatch": 1,
    "status_mismatch": 1,
}


def usd(amount: str) -> Money:
    return Money.of(amount, "USD")


def seeded_amounts(i: int, rate: str = "7.25") -> tuple[Money, Money, Money]:
    """What the seeder bills for invoice i: revenue, tax, total."""
    revenue = Decimal("100.00") + (i % 97) * Decimal("3.17")
    tax = (revenue * Decimal(rate) / 100).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    return usd(str(revenue)), usd(str(tax)), usd(str(revenue + tax))


async def drain(fetch, key=None):
    """Every item of a listing, page by page, and the cursors it handed out; with `key`, each
    cursor must name the last item of its page."""
    items, cursors, cursor = [], [], ""
    while True:
        page = await fetch(cursor)
        items.extend(page.items)
        if not page.next_cursor:
            return items, cursors
        if key is not None:
            assert page.next_cursor == key(page.items[-1])
        cursors.append(page.next_cursor)
        cursor = page.next_cursor


def all_invoices(stripe, *, start=OCT, end=NOV, account="", limit=100):
    return drain(
        lambda cursor: stripe.list_invoices_page(
            created_from=start, created_to=end, billing_account=account, cursor=cursor, limit=limit
        ),
        key=lambda i: i.id,
    )


def all_tax_documents(avatax, company="US01", *, start=OCT, end=NOV, limit=1000):
    return drain(
        lambda cursor: avatax.list_documents_page(
            company_code=company, date_from=start, date_to=end, cursor=cursor, limit=limit
        )
    )


def all_entries(netsuite, subsidiary="1", *, start=OCT, end=NOV, limit=1000):
    return drain(
        lambda cursor: netsuite.list_journal_entries_page(
            subsidiary=subsidiary, date_from=start, date_to=end, cursor=cursor, limit=limit
        ),
        key=lambda e: e.internal_id,
    )


# -- Stripe ----------------------------------------------------------------------------------


async def test_stripe_pages_every_invoice_of_the_period_once_in_its_account(stripe, sandbox):
    sandbox.seed_period(tag="s1", period="2026-10", invoices=230)
    sandbox.seed_period(tag="s2", period="2026-10", invoices=40, stripe_account="acct_recon_eu")
    sandbox.seed_period(tag="s3", period="2026-11", invoices=25)
    sandbox.seed_period(tag="s4", period="2026-09", invoices=25)

    invoices, cursors = await all_invoices(stripe, limit=7)
    assert len(cursors) == 32  # 230 invoices, 7 a page
    ids = [i.id for i in invoices]
    assert len(ids) == len(set(ids)) == 230
    assert set(ids) == {f"in_recon_s1_{i:06d}" for i in range(230)}
    assert all(OCT <= i.created < NOV and i.billing_account == "" for i in invoices)
    assert ids[0] == "in_recon_s1_000229" and ids[-1] == "in_recon_s1_000000"  # newest first

    by_id = {i.id: i for i in invoices}
    first = by_id["in_recon_s1_000000"]
    assert (first.status, first.created, first.account_id) == ("paid", OCT, "cus_recon_s1_0")
    assert (first.total, first.tax, first.amount_paid, first.amount_remaining) == (
        usd("107.25"),
        usd("7.25"),
        usd("107.25"),
        usd("0.00"),
    )
    fifth = by_id["in_recon_s1_000005"]
    revenue, tax, total = seeded_amounts(5)
    assert (revenue, tax, total) == (usd("115.85"), usd("8.40"), usd("124.25"))
    assert (fifth.status, fifth.total, fifth.tax, fifth.amount_remaining) == ("open", total, tax, total)
    assert [(x.product, x.amount) for x in fifth.lines] == [("seats", revenue), (TAX_PRODUCT, tax)]
    assert fifth.metadata == {"o2c_workflow": "amendment-recon-s1-000005", "contract_id": "C-recon-s1-5"}

    connected, _ = await all_invoices(stripe, account="acct_recon_eu", limit=100)
    assert {i.id for i in connected} == {f"in_recon_s2_{i:06d}" for i in range(40)}
    assert {i.billing_account for i in connected} == {"acct_recon_eu"}
    november, _ = await all_invoices(stripe, start=NOV, end=DEC)
    assert {i.id for i in november} == {f"in_recon_s3_{i:06d}" for i in range(25)}
    assert (await all_invoices(stripe, account="acct_nobody"))[0] == []


async def test_stripe_created_bounds_are_exact(stripe, sandbox):
    sandbox.seed_period(tag="b1", period="2026-10", invoices=62)
    everything, _ = await all_invoices(stripe)
    inside, _ = await all_invoices(stripe, start=date(2026, 10, 10), end=date(2026, 10, 12), limit=3)
    expected = [i.id for i in everything if date(2026, 10, 10) <= i.created < date(2026, 10, 12)]
    assert [i.id for i in inside] == expected and len(expected) == 4  # two invoices a day

    ts = int(datetime(2026, 10, 10, tzinfo=UTC).timestamp())
    raw = {i["id"]: i for i in sandbox.records("stripe", "invoice")}
    async with httpx.AsyncClient(base_url=sandbox.stripe_url, auth=("sk_test_x", "")) as http:
        exact = (await http.get("/invoices", params={"created": raw[expected[-1]]["created"]})).json()
        assert [i["id"] for i in exact["data"]] == [expected[-1]]
        gt = (
            await http.get(
                "/invoices",
                params={"created[gt]": raw[expected[-1]]["created"], "created[lte]": raw[expected[0]]["created"]},
            )
        ).json()
        assert [i["id"] for i in gt["data"]] == expected[:-1]
        assert all(ts <= i["created"] for i in gt["data"])
        page = (await http.get("/invoices", params={"limit": 2, "created[gte]": ts})).json()
        rest = (
            await http.get(
                "/invoices", params={"limit": 100, "created[gte]": ts, "starting_after": page["data"][-1]["id"]}
            )
        ).json()
        assert page["has_more"] and not rest["has_more"]
        assert [i["id"] for i in page["data"] + rest["data"]] == [
            i.id for i in everything if i.created >= date(2026, 10, 10)
        ]
        for params in (
            {"limit": 101},
            {"limit": 0},
            {"created[after]": ts},
            {"created[gte]": "soon"},
            {"starting_after": "in_missing"},
        ):
            refused = await http.get("/invoices", params=params)
            assert refused.status_code == 400, params
            assert refused.json()["error"]["type"] == "invalid_request_error"
        # A cursor from another account's listing does not exist in this one.
        refused = await http.get(
            "/invoices", params={"starting_after": expected[0]}, headers={"Stripe-Account": "acct_other"}
        )
        assert refused.status_code == 400 and refused.json()["error"]["param"] == "starting_after"


async def test_invoices_o2c_creates_list_with_their_tax_line(stripe, sandbox, seeded):
    invoice = await stripe.create_proration_invoice(
        account_id="cus_acme",
        subscription_id="sub_acme",
        currency="USD",
        lines=[
            InvoiceLine(product="prod_seats", description="2 seats", amount=usd("80.65")),
            InvoiceLine(product=TAX_PRODUCT, description="Sales tax", amount=usd("5.85")),
        ],
        description="Amendment A-1",
        metadata={"o2c_workflow": "amendment-C-100-A-1"},
        idempotency_key="A-1",
    )
    today = datetime.now(UTC).date()
    page = await stripe.list_invoices_page(created_from=today, created_to=date.fromordinal(today.toordinal() + 1))
    [listed] = page.items
    assert listed.id == invoice.id and page.next_cursor == ""
    assert (listed.created, listed.tax, listed.total) == (today, usd("5.85"), usd("86.50"))
    assert listed.metadata == {"o2c_workflow": "amendment-C-100-A-1"}
    assert invoice.tax == usd("5.85") and invoice.created == today


def test_stripe_tax_field_wins_over_the_tax_lines():
    raw = {
        "id": "in_1",
        "customer": "cus_1",
        "status": "open",
        "currency": "eur",
        "total": 1190,
        "tax": 190,
        "created": 1790812800,
        "metadata": {"k": "v"},
        "lines": {"data": [{"amount": 1000, "metadata": {"product": "seats"}}]},
    }
    invoice = to_invoice(raw, billing_account="acct_eu01")
    assert (invoice.tax, invoice.created, invoice.billing_account) == (
        Money.of("1.90", "EUR"),
        date(2026, 10, 1),
        "acct_eu01",
    )
    assert to_invoice({**raw, "tax": None}).tax == Money.zero("EUR")


# -- AvaTax ----------------------------------------------------------------------------------

ADDRESS = Address(line1="1 Market St", city="San Francisco", region="CA", postal_code="94105", country="US")


async def test_avatax_lists_a_companys_recorded_documents_page_by_page(avatax, sandbox):
    seeded = sandbox.seed_period(
        tag="a1", period="2026-10", invoices=120, breaks={"tax_mismatch": 1, "missing_in_billing": 1}
    )
    sandbox.seed_period(tag="a2", period="2026-10", invoices=10, company_code="DE01", currency="EUR", subsidiary="2")
    sandbox.seed_period(tag="a3", period="2026-11", invoices=10)
    lines = [InvoiceLine(product="prod_seats", description="seats", amount=usd("100.00"))]
    await avatax.quote(
        code="quote-1",
        customer_code="cus_q",
        document_date=date(2026, 10, 5),
        currency="USD",
        address=ADDRESS,
        lines=lines,
    )
    committed = await avatax.commit(
        code="in_api_1",
        customer_code="cus_q",
        document_date=date(2026, 10, 5),
        currency="USD",
        address=ADDRESS,
        lines=lines,
    )

    documents, cursors = await all_tax_documents(avatax, limit=50)
    assert cursors == ["50", "100"]
    codes = [d.code for d in documents]
    assert len(codes) == len(set(codes)) == 122
    assert set(codes) == {f"in_recon_a1_{i:06d}" for i in range(120)} | {"in_recon_a1_ghost_0", "in_api_1"}
    assert "quote-1" not in codes
    assert [d.document_date for d in documents] == sorted(d.document_date for d in documents)
    by_code = {d.code: d for d in documents}
    revenue, tax, _ = seeded_amounts(7)
    seventh = by_code["in_recon_a1_000007"]
    assert (seventh.type, seventh.status, seventh.total_amount, seventh.total_tax) == (
        "SalesInvoice",
        "Committed",
        revenue,
        tax,
    )
    assert (seventh.customer_code, seventh.company_code) == ("cus_recon_a1_7", "US01")
    assert [(x.number, x.amount, x.tax) for x in seventh.lines] == [("1", revenue, tax)]
    [mismatched] = seeded["breaks"]["tax_mismatch"]
    i = int(mismatched.rsplit("_", 1)[1])
    assert by_code[mismatched].total_tax == seeded_amounts(i)[1] + usd("0.01")
    assert by_code["in_api_1"] == committed.model_copy(
        update={"document_date": date(2026, 10, 5), "customer_code": "cus_q", "company_code": "US01"}
    )

    german, _ = await all_tax_documents(avatax, "DE01")
    assert {d.code for d in german} == {f"in_recon_a2_{i:06d}" for i in range(10)}
    assert {d.total_amount.currency for d in german} == {"EUR"}
    first_days, _ = await all_tax_documents(avatax, start=OCT, end=date(2026, 10, 3))
    assert {d.document_date for d in first_days} == {date(2026, 10, 1), date(2026, 10, 2)}
    assert len(first_days) == 8  # 120 invoices over 31 days: 3 or 4 a day


async def test_avatax_listing_wire_format(avatax, sandbox):
    sandbox.seed_period(tag="w1", period="2026-10", invoices=31)
    lines = [InvoiceLine(product="prod_seats", description="seats", amount=usd("10.00"))]
    await avatax.commit(
        code="late",
        customer_code="cus_q",
        document_date=date(2026, 11, 2),
        currency="USD",
        address=ADDRESS,
        lines=lines,
    )
    async with httpx.AsyncClient(base_url=sandbox.avatax_url, auth=("o2c", "license")) as http:
        url = "/api/v2/companies/US01/transactions"
        first = (
            await http.get(
                url,
                params={"$filter": "date between '2026-10-01' and '2026-10-31'", "$top": 10, "$orderBy": "date DESC"},
            )
        ).json()
        assert first["@recordsetCount"] == 31 and len(first["value"]) == 10
        assert [d["code"] for d in first["value"]][:2] == ["in_recon_w1_000030", "in_recon_w1_000029"]
        assert first["value"][0]["totalAmount"] == 195.1 and first["value"][0]["lines"][0]["tax"] == 14.14
        assert "$skip=10" in first["@nextLink"] and "$top=10" in first["@nextLink"]
        second = (await http.get(first["@nextLink"])).json()
        assert next(d["code"] for d in second["value"]) == "in_recon_w1_000020"
        last = (
            await http.get(
                url, params={"$filter": "date between '2026-10-01' and '2026-10-31'", "$top": 10, "$skip": 30}
            )
        ).json()
        assert len(last["value"]) == 1 and "@nextLink" not in last

        async def codes(filter_: str, **extra) -> list[str]:
            response = await http.get(url, params={"$filter": filter_, **extra})
            assert response.status_code == 200, response.text
            return [d["code"] for d in response.json()["value"]]

        assert await codes("date ge '2026-10-31'") == ["in_recon_w1_000030", "late"]
        assert await codes("date gt '2026-10-30' and date lt '2026-11-02'") == ["in_recon_w1_000030"]
        assert await codes("date le '2026-10-01'") == ["in_recon_w1_000000"]
        assert await codes("date eq '2026-11-02' AND status eq 'Committed' and type eq 'SalesInvoice'") == ["late"]
        assert await codes("code eq 'late'") == ["late"]
        assert await codes("status ne 'Committed'") == []
        assert len(await codes("customerCode eq 'cus_recon_w1_3'")) == 1
        assert len(await codes("")) == 32
        assert await codes("date ge '2026-10-30'", **{"$orderBy": "code DESC"}) == [
            "late",
            "in_recon_w1_000030",
            "in_recon_w1_000029",
        ]
        for bad in (
            "date between '2026-10-01'",
            "totalAmount gt 5",
            "date ge 2026-10-01",
            "status gt 'A'",
            "date ge '2026-10-01' or date le '2026-10-02'",
            "date ge '2026-13-01'",
            "(date ge '2026-10-01')",
        ):
            refused = await http.get(url, params={"$filter": bad})
            assert refused.status_code == 400, bad
            error = refused.json()["error"]
            assert error["code"] == "SyntaxError" and error["details"][0]["faultCode"] == "Client", bad
        for params in ({"$top": 0}, {"$top": 1001}, {"$skip": -1}, {"$top": "ten"}, {"$orderBy": "amount"}):
            assert (await http.get(url, params=params)).status_code == 400, params
        # The single-document routes under the same prefix still answer.
        assert (await http.get(url + "/late")).json()["code"] == "late"
        assert (await http.get(url + "/")).status_code == 200


async def test_avatax_listing_errors_and_empty_ranges(avatax, sandbox):
    assert (await avatax.list_documents_page(company_code="US01", date_from=NOV, date_to=OCT)).items == []
    with pytest.raises(IntegrationBug):
        await avatax.list_documents_page(company_code="US01", date_from=OCT, date_to=NOV, cursor="page-2")
    empty = await avatax.list_documents_page(company_code="NOPE", date_from=OCT, date_to=NOV)
    assert (empty.items, empty.next_cursor) == ([], "")


# -- NetSuite ----------------------------------------------------------------------------------


def _as_listed(entry: JournalEntry, internal_id: str) -> JournalEntry:
    """What a listing reads back: the same entry with its internal id, without line memos
    (transactionaccountingline has none)."""
    return entry.model_copy(
        update={"internal_id": internal_id, "lines": [x.model_copy(update={"memo": ""}) for x in entry.lines]}
    )


async def test_netsuite_lists_posted_entries_with_their_keys_by_keyset(netsuite, sandbox):
    chart = ChartOfAccounts()
    posted = []
    for n, day in enumerate(
        [
            date(2026, 10, 1),
            date(2026, 10, 15),
            date(2026, 10, 31),
            date(2026, 10, 20),
            date(2026, 11, 1),
            date(2026, 9, 30),
        ]
    ):
        entry = invoice_entry(
            external_id=f"amendment-C-{n}-A-1-invoice",
            subsidiary="7",
            posting_date=day,
            memo=f"Invoice {n}",
            revenue=usd(f"{100 + n}.10"),
            tax=usd(f"{n}.05"),
            chart=chart,
            invoice_id=f"in_{n}",
        )
        posted.append((entry, await netsuite.post_journal_entry(entry)))
    revenue = JournalEntry(
        external_id="revrec-C-1-2026-10",
        subsidiary="7",
        currency="USD",
        posting_date=date(2026, 10, 31),
        memo="Revenue C-1",
        lines=[JournalLine(account="2400", debit=usd("33.33")), JournalLine(account="4000", credit=usd("33.33"))],
        contract_id="C-1",
    )
    posted.append((revenue, await netsuite.post_journal_entry(revenue)))
    reversal = posted[1][0].reversal("amendment-C-1-A-1-invoice/reversal", date(2026, 10, 16))
    posted.append((reversal, await netsuite.post_journal_entry(reversal)))
    other = invoice_entry(
        external_id="elsewhere",
        subsidiary="8",
        posting_date=date(2026, 10, 2),
        memo="x",
        revenue=usd("1.00"),
        tax=usd("0.00"),
        chart=chart,
        invoice_id="in_x",
    )
    await netsuite.post_journal_entry(other)
    # Posting again upserts by external ID: still one entry, same internal id.
    assert (await netsuite.post_journal_entry(posted[0][0])).internal_id == posted[0][1].internal_id

    listed, cursors = await all_entries(netsuite, "7", limit=2)
    expected = [_as_listed(e, ref.internal_id) for e, ref in posted if OCT <= e.posting_date < NOV]
    assert listed == expected  # internal-id order, every field read back
    assert cursors == [e.internal_id for e in expected[1:-1:2]]
    assert listed[-1].reverses == "amendment-C-1-A-1-invoice" and listed[-1].invoice_id == "in_1"
    assert listed[4].contract_id == "C-1" and listed[4].invoice_id == ""
    assert [e.external_id for e in (await all_entries(netsuite, "8"))[0]] == ["elsewhere"]

    # The record service reads the custom fields back too.
    read = await netsuite.get_journal_entry("revrec-C-1-2026-10")
    assert (read.contract_id, read.invoice_id) == ("C-1", "")
    assert (await netsuite.get_journal_entry("amendment-C-0-A-1-invoice")).invoice_id == "in_0"


@pytest.mark.parametrize("chunk", [300, 1000])
async def test_netsuite_listing_reads_every_line_of_a_page(netsuite, sandbox, monkeypatch, chunk):
    # 400 invoice entries of three lines and one payment of two (only invoice 0 is paid):
    # with 1000 ids per IN list, the lines (1202) take two responses (hasMore, offset).
    monkeypatch.setattr(netsuite_adapter, "LINES_CHUNK", chunk)
    sandbox.seed_period(tag="n1", period="2026-10", invoices=400, paid_every=1000)
    page = await netsuite.list_journal_entries_page(subsidiary="1", date_from=OCT, date_to=NOV, limit=1000)
    assert len(page.items) == 401 and page.next_cursor == ""
    assert sum(len(e.lines) for e in page.items) == 1202
    assert page.items[1].external_id == "payment-in_recon_n1_000000"
    entry = page.items[-1]
    revenue, tax, total = seeded_amounts(399)
    assert entry.external_id == "amendment-recon-n1-000399-invoice" and entry.invoice_id == "in_recon_n1_000399"
    assert [(x.account, x.debit, x.credit) for x in entry.lines] == [
        ("1200", total, None),
        ("2400", None, revenue),
        ("2200", None, tax),
    ]


async def test_netsuite_listing_refuses_a_foreign_cursor(netsuite):
    with pytest.raises(IntegrationBug):
        await netsuite.list_journal_entries_page(subsidiary="1", date_from=OCT, date_to=NOV, cursor="in_1")
    assert (await netsuite.list_journal_entries_page(subsidiary="1", date_from=NOV, date_to=OCT)).items == []


# -- the period seeder -------------------------------------------------------------------------


async def test_seeded_breaks_show_in_the_listings(stripe, avatax, netsuite, sandbox):
    seeded = sandbox.seed_period(
        tag="r1",
        period="2026-10",
        invoices=60,
        paid_every=2,
        breaks=ALL_BREAKS,
        revenue=[{"contract_id": "C-9", "amount": "123.45"}],
    )
    breaks = seeded["breaks"]
    assert breaks == {  # from the last invoices; paid ones are even, open ones odd
        "status_mismatch": ["in_recon_r1_000058"],  # needs a paid invoice
        "duplicate_posting": ["in_recon_r1_000059"],  # these three need open ones
        "amount_mismatch": ["in_recon_r1_000057"],
        "currency_mismatch": ["in_recon_r1_000055"],
        "missing_in_erp": ["in_recon_r1_000056"],
        "tax_mismatch": ["in_recon_r1_000054"],
        "missing_in_billing": ["in_recon_r1_ghost_0"],
    }
    # Entries: 59 invoices (one missing), 1 duplicate, 28 payments (30 paid: one is the
    # status mismatch, one is missing in the ERP), the ghost's, the revenue's; each with
    # its external-ID reference.
    assert seeded["created"] == {
        "customers": 100,
        "invoices": 60,
        "paid_invoices": 30,
        "tax_documents": 61,
        "journal_entries": 90,
        "revenue_entries": 1,
        "documents": 100 + 60 + 61 + 2 * 90,
    }
    invoices = {i.id: i for i in (await all_invoices(stripe))[0]}
    documents = {d.code: d for d in (await all_tax_documents(avatax))[0]}
    entries, _ = await all_entries(netsuite, limit=25)
    booked: dict[str, list[JournalEntry]] = {}
    for entry in entries:
        booked.setdefault(entry.invoice_id or entry.contract_id, []).append(entry)
    assert len(invoices) == 60 and len(documents) == 61 and len(entries) == 90
    assert seeded["totals"] == {
        "revenue": str(sum((seeded_amounts(i)[0] for i in range(60)), usd("0")).amount),
        "tax": str(sum((seeded_amounts(i)[1] for i in range(60)), usd("0")).amount),
        "total": str(sum((seeded_amounts(i)[2] for i in range(60)), usd("0")).amount),
    }

    def invoice_entries(invoice_id: str) -> list[JournalEntry]:
        return [e for e in booked.get(invoice_id, []) if not e.external_id.startswith("payment-")]

    def payments(invoice_id: str) -> list[JournalEntry]:
        return [e for e in booked.get(invoice_id, []) if e.external_id.startswith("payment-")]

    clean = "in_recon_r1_000010"
    revenue, tax, total = seeded_amounts(10)
    [entry] = invoice_entries(clean)
    assert (entry.external_id, entry.currency, entry.posting_date) == (
        "amendment-recon-r1-000010-invoice",
        "USD",
        invoices[clean].created,
    )
    assert [(x.account, x.debit or x.credit) for x in entry.lines] == [
        ("1200", total),
        ("2400", revenue),
        ("2200", tax),
    ]
    [payment] = payments(clean)
    assert [(x.account, x.debit, x.credit) for x in payment.lines] == [("1010", total, None), ("1200", None, total)]
    assert documents[clean].total_tax == tax == invoices[clean].tax

    missing = breaks["missing_in_erp"][0]
    assert invoices[missing].status == "paid" and missing in documents and not booked.get(missing)
    ghost = breaks["missing_in_billing"][0]
    assert ghost not in invoices and ghost in documents and len(invoice_entries(ghost)) == 1
    duplicated = invoice_entries(breaks["duplicate_posting"][0])
    assert sorted(e.external_id for e in duplicated) == [
        "amendment-recon-r1-000059-invoice",
        "manual-in_recon_r1_000059",
    ]
    assert duplicated[0].lines == duplicated[1].lines and payments(breaks["duplicate_posting"][0]) == []
    revenue, tax, total = seeded_amounts(57)
    [higher] = invoice_entries(breaks["amount_mismatch"][0])
    assert [(x.account, x.debit or x.credit) for x in higher.lines] == [
        ("1200", total + usd("1.00")),
        ("2400", revenue + usd("1.00")),
        ("2200", tax),
    ]
    assert invoices[breaks["amount_mismatch"][0]].total == total
    revenue, tax, total = seeded_amounts(54)
    assert documents[breaks["tax_mismatch"][0]].total_tax == tax + usd("0.01")
    assert [x.credit for x in invoice_entries(breaks["tax_mismatch"][0])[0].lines[2:]] == [tax]
    [foreign] = invoice_entries(breaks["currency_mismatch"][0])
    revenue, tax, total = seeded_amounts(55)
    assert foreign.currency == "EUR" and foreign.lines[0].debit == Money.of(total.amount, "EUR")
    unpaid_in_erp = breaks["status_mismatch"][0]
    assert invoices[unpaid_in_erp].status == "paid" and payments(unpaid_in_erp) == []
    assert len(invoice_entries(unpaid_in_erp)) == 1
    paid = [i for i in invoices.values() if i.status == "paid"]
    assert len(paid) == 30 and sum(1 for i in paid if payments(i.id)) == 28
    [recognised] = booked["C-9"]
    assert (recognised.external_id, recognised.posting_date) == ("revrec-C-9-2026-10", date(2026, 10, 31))
    assert [(x.account, x.debit, x.credit) for x in recognised.lines] == [
        ("2400", usd("123.45"), None),
        ("4000", None, usd("123.45")),
    ]


async def test_seeded_entries_work_with_the_record_service(netsuite, sandbox):
    seeded = sandbox.seed_period(tag="e1", period="2026-10", invoices=4)
    entry = await netsuite.get_journal_entry("amendment-recon-e1-000001-invoice")
    assert entry.invoice_id == "in_recon_e1_000001" and entry.total_debits == seeded_amounts(1)[2]
    listed = (await all_entries(netsuite))[0]
    internal_id = next(e.internal_id for e in listed if e.external_id == entry.external_id)
    ref = await netsuite.post_journal_entry(entry.model_copy(update={"memo": "corrected"}))
    assert ref.internal_id == internal_id
    assert (await netsuite.get_journal_entry(entry.external_id)).memo == "corrected"
    assert sandbox.count("netsuite", "journalEntry") == len(listed) == 6
    assert seeded["invoice_ids"] == {"first": "in_recon_e1_000000", "last": "in_recon_e1_000003"}


def test_seed_period_validates_and_keeps_tags_apart(sandbox):
    sandbox.seed_period(
        tag="v1",
        period="2026-10",
        invoices=3,
        stripe_account="acct_recon_v",
        company_code="GB01",
        subsidiary="3",
        currency="GBP",
        tax_rate="20",
        paid_every=1,
    )
    again = httpx.post(f"{sandbox.url}/_sandbox/seed/period", json={"tag": "v1", "period": "2026-10", "invoices": 3})
    assert again.status_code == 400 and "already seeded" in again.json()["error"]
    for body in (
        {"period": "2026-10"},
        {"tag": "x", "period": "2026-13"},
        {"tag": "x", "period": "2026-10", "invoices": -1},
        {"tag": "x y", "period": "2026-10"},
        {"tag": "x", "period": "2026-10", "currency": "XXX"},
        {"tag": "x", "period": "2026-10", "breaks": {"bogus": 1}},
        {"tag": "x", "period": "2026-10", "invoices": 1, "breaks": {"missing_in_erp": 2}},
        {"tag": "x", "period": "2026-10", "invoices": 2, "paid_every": 2, "breaks": {"status_mismatch": 2}},
        {"tag": "x", "period": "2026-10", "invoices": 5, "paid_every": 1, "breaks": {"amount_mismatch": 1}},
        {"tag": "x", "period": "2026-10", "revenue": [{"contract_id": "C", "amount": "-1"}]},
    ):
        refused = httpx.post(f"{sandbox.url}/_sandbox/seed/period", json=body)
        assert refused.status_code == 400, body
    [invoice] = [i for i in sandbox.records("stripe", "invoice") if i["id"] == "in_recon_v1_000002"]
    assert (invoice["_stripe_account"], invoice["currency"], invoice["status"], invoice["total"]) == (
        "acct_recon_v",
        "gbp",
        "paid",
        12761,
    )  # 106.34 + 20% tax (21.27)
    assert sandbox.records("stripe", "customer")[0]["_stripe_account"] == "acct_recon_v"


# -- one document read back by its key, whatever its period -------------------------------------


async def test_documents_of_another_period_are_read_back_by_their_keys(stripe, avatax, sandbox):
    """What a period's listing lacks, reconciliation looks up by key: a Stripe invoice in its
    account (None in another one, or when there is none), an AvaTax document by its code."""
    sandbox.seed_period(tag="k1", period="2026-09", invoices=3)
    sandbox.seed_period(tag="k2", period="2026-09", invoices=2, stripe_account="acct_recon_k2")

    found = await stripe.find_invoice("in_recon_k1_000001")
    assert found is not None and found.created is not None and found.created < OCT
    assert found.metadata["o2c_workflow"] == "amendment-recon-k1-000001"
    connected = await stripe.find_invoice("in_recon_k2_000001", billing_account="acct_recon_k2")
    assert connected is not None and connected.billing_account == "acct_recon_k2"
    assert await stripe.find_invoice("in_nobody_has") is None

    document = await avatax.get_document(code="in_recon_k1_000002")
    assert document is not None and document.status == "Committed"
    assert document.document_date is not None and document.document_date < OCT
    assert document.total_tax == seeded_amounts(2)[1]
    assert await avatax.get_document(code="in_nobody_has") is None
