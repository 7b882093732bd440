"""The SAP S/4HANA Cloud adapter against the sandbox's SAP stand-in, over real HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date

import httpx
import pytest

from adapters.errors import BusinessError, IntegrationBug, TransientError
from adapters.sap import SapErp
from adapters.sap.errors import refusal
from adapters.sap.wire import document_reference, read_confirmations
from canonical.journal import ChartOfAccounts, JournalEntry, JournalLine, invoice_entry
from canonical.models import Account, Address, CollectionCase
from canonical.money import Money

CHART = ChartOfAccounts()


def eur(amount: str) -> Money:
    return Money.of(amount, "EUR")


ACME = Account(
    id="cus_acme_sap",
    name="Acme GmbH",
    email="ap@acme.test",
    billing_address=Address(line1="Dietmar-Hopp-Allee 16", city="Walldorf", postal_code="69190", country="DE"),
)


def sale(
    external_id: str = "amendment-C1-A1-invoice", *, posting: date = date(2025, 3, 15), **extra: str
) -> JournalEntry:
    return invoice_entry(
        external_id=external_id,
        subsidiary="1010",
        posting_date=posting,
        memo="Proration A1 for Acme GmbH, March",
        revenue=eur("80.65"),
        tax=eur("15.32"),
        chart=CHART,
        invoice_id=extra.get("invoice_id", "in_1PqRsTuVwXyZ0123456789ab"),
        customer=extra.get("customer", ACME.id),
    )


def revenue(external_id: str, contract: str, amount: str, day: date = date(2025, 3, 31)) -> JournalEntry:
    return JournalEntry(
        external_id=external_id,
        subsidiary="1010",
        currency="EUR",
        posting_date=day,
        memo=f"Revenue of {contract}",
        lines=[
            JournalLine(account=CHART.deferred_revenue, debit=eur(amount), memo="Deferred revenue released"),
            JournalLine(account=CHART.revenue, credit=eur(amount), memo="Subscription revenue"),
        ],
        contract_id=contract,
    )


@pytest.fixture
async def sap(sandbox) -> AsyncIterator[SapErp]:
    client = SapErp(sandbox.sap_url, "O2C_COMM", "sandbox-password", logical_system="O2C", timeout=5)
    yield client
    await client.aclose()


@pytest.fixture
async def customer(sap) -> str:
    return await sap.upsert_customer(ACME, subsidiary="1010")


def items(sandbox) -> list[dict]:
    return sandbox.records("sap", "item")


async def test_post_reads_back_with_keys_and_customer(sap, sandbox, customer):
    posted = await sap.post_journal_entry(sale())
    assert posted.internal_id.endswith("10102025") and len(posted.internal_id) == 18
    stored = items(sandbox)
    assert [i["DocumentReferenceID"] for i in stored] == [document_reference("amendment-C1-A1-invoice")] * 3
    debtor = next(i for i in stored if i["Customer"])
    assert debtor["Customer"] == customer and debtor["GLAccount"] == "0000001200"
    assert sorted(i["GLAccount"] for i in stored) == ["0000001200", "0000002200", "0000002400"]

    read = await sap.get_journal_entry("amendment-C1-A1-invoice")
    expected = sale()
    assert read is not None
    assert (read.external_id, read.invoice_id, read.customer, read.subsidiary) == (
        expected.external_id,
        expected.invoice_id,
        ACME.id,
        "1010",
    )
    assert read.posting_date == expected.posting_date and read.internal_id == posted.internal_id
    assert [(x.account, x.debit, x.credit) for x in read.lines] == [
        (x.account, x.debit, x.credit) for x in expected.lines
    ]
    assert read.memo == expected.memo[:25]
    assert await sap.get_journal_entry("never-posted") is None


async def test_posting_twice_posts_once(sap, sandbox, customer):
    first = await sap.post_journal_entry(sale())
    again = await sap.post_journal_entry(sale())
    assert again == first
    assert len(items(sandbox)) == 3


async def test_a_lost_answer_is_transient_and_the_retry_posts_nothing(sandbox, customer):
    impatient = SapErp(sandbox.sap_url, "O2C_COMM", "sandbox-password", logical_system="O2C", timeout=0.5)
    try:
        sandbox.fault(
            "sap", "commit_then_timeout", path_contains="journalentrycreaterequestconfi", times=1, hold_seconds=2
        )
        with pytest.raises(TransientError) as lost:
            await impatient.post_journal_entry(sale())
        assert lost.value.code == "timeout"
        assert len(items(sandbox)) == 3  # SAP posted it; the answer never came
        retried = await impatient.post_journal_entry(sale())
        assert len(items(sandbox)) == 3
        assert retried.internal_id == items(sandbox)[0]["AccountingDocument"] + "10102025"
    finally:
        await impatient.aclose()


async def test_reversal_posts_sap_reversal_and_links_back(sap, sandbox, customer):
    original = sale()
    posted = await sap.post_journal_entry(original)
    reversal = original.reversal(f"{original.external_id}-reversal", date(2025, 3, 20))
    reversed_ref = await sap.post_journal_entry(reversal)
    assert reversed_ref.internal_id != posted.internal_id
    stored = items(sandbox)
    originals = [i for i in stored if i["AccountingDocument"] == posted.internal_id[:10]]
    reversals = [i for i in stored if i["AccountingDocument"] == reversed_ref.internal_id[:10]]
    assert all(i["IsReversed"] and i["ReverseDocument"] == reversed_ref.internal_id[:10] for i in originals)
    assert all(i["IsReversal"] and i["ReversalReason"] == "01" for i in reversals)

    read = await sap.get_journal_entry(reversal.external_id)
    assert read is not None and read.reverses == original.external_id
    assert read.lines[0].credit == original.lines[0].debit
    assert await sap.post_journal_entry(reversal) == reversed_ref  # once
    page = await sap.list_journal_entries_page(subsidiary="1010", date_from=date(2025, 3, 1), date_to=date(2025, 4, 1))
    listed = {e.external_id: e for e in page.items}
    assert listed[reversal.external_id].reverses == original.external_id


async def test_a_reversal_must_mirror_and_its_original_be_posted(sap, customer):
    original = sale()
    with pytest.raises(BusinessError) as missing:
        await sap.post_journal_entry(original.reversal("r-of-nothing", date(2025, 3, 20)))
    assert missing.value.code == "NOT_POSTED"
    await sap.post_journal_entry(original)
    total = original.total_debits
    lumped = JournalEntry(
        external_id="r-lumped",
        subsidiary="1010",
        currency="EUR",
        posting_date=date(2025, 3, 20),
        memo="not the original's lines",
        lines=[
            JournalLine(account=CHART.receivable, credit=total),
            JournalLine(account=CHART.deferred_revenue, debit=total),
        ],
        reverses=original.external_id,
        customer=ACME.id,
    )
    with pytest.raises(IntegrationBug, match="mirror"):
        await sap.post_journal_entry(lumped)


async def test_closed_period_parks_like_netsuites(sap, sandbox, customer):
    sandbox.sap_set_period("1010", "2025-02")
    with pytest.raises(BusinessError) as refused:
        await sap.post_journal_entry(sale(posting=date(2025, 2, 10)))
    assert refused.value.fixable and refused.value.code == "PERIOD_CLOSED"
    assert "is not open" in refused.value.message and "2025-02-10" in refused.value.message
    assert items(sandbox) == []


async def test_customer_not_in_company_code_is_fixable(sap, sandbox, customer):
    sandbox.sap_company_code("1020", "EUR")
    entry = sale().model_copy(update={"subsidiary": "1020"})
    with pytest.raises(BusinessError) as refused:
        await sap.post_journal_entry(entry)
    assert refused.value.fixable and refused.value.code == "CUSTOMER_NOT_IN_COMPANY_CODE"
    assert f"Customer {customer} is not defined in company code 1020" in refused.value.message
    await sap.upsert_customer(ACME, subsidiary="1020")  # a person extends the customer
    assert (await sap.post_journal_entry(entry)).internal_id.endswith("10202025")


async def test_unknown_gl_account_and_company_code(sandbox, customer):
    mapped = SapErp(
        sandbox.sap_url,
        "O2C_COMM",
        "sandbox-password",
        logical_system="O2C",
        gl_accounts={"2400": "0000002400", "4000": "0000049999"},
    )
    try:
        with pytest.raises(BusinessError) as refused:
            await mapped.post_journal_entry(revenue("revrec-C9-2025-03", "C9", "10.00"))
        assert refused.value.fixable and refused.value.code == "GL_ACCOUNT_UNKNOWN"
        assert "0000049999" in refused.value.message
        with pytest.raises(IntegrationBug, match="no SAP G/L account"):
            await mapped.post_journal_entry(sale())  # 1200 and 2200 are not mapped
        with pytest.raises(BusinessError) as unknown:
            await mapped.post_journal_entry(
                revenue("revrec-C9-2025-03", "C9", "10.00").model_copy(update={"subsidiary": "9999"})
            )
        assert unknown.value.code == "COMPANY_CODE_UNKNOWN"
    finally:
        await mapped.aclose()
    assert items(sandbox) == []


async def test_an_unknown_customer_is_refused_before_posting(sap, sandbox):
    with pytest.raises(BusinessError) as refused:
        await sap.post_journal_entry(sale(customer="cus_never_seen"))
    assert refused.value.code == "CUSTOMER_UNKNOWN" and refused.value.fixable


async def test_unbalanced_in_sap_is_a_business_error(sandbox, customer):
    # A canonical entry cannot be unbalanced: send one whose amounts SAP adds differently.
    async with httpx.AsyncClient(base_url=sandbox.sap_url, auth=("O2C_COMM", "pw")) as http:
        response = await http.post(
            "/sap/bc/srt/scs_ext/sap/journalentrycreaterequestconfi",
            content=_envelope("1010", [("0000002400", "10.00", "S"), ("0000004000", "-9.99", "H")]),
            headers={"Content-Type": "text/xml"},
        )
    assert response.status_code == 200
    confirmation = read_confirmations(response.content)[0]
    assert not confirmation.posted and confirmation.accounting_document == "0000000000"
    error = refusal(confirmation.notes, what="the test entry")
    assert isinstance(error, BusinessError) and error.code == "UNBALANCED" and not error.fixable
    assert "Balance in transaction currency EUR is not zero" in error.message


def _envelope(company: str, lines: list[tuple[str, str, str]]) -> bytes:
    items = "".join(
        f"<Item><ReferenceDocumentItem>{n}</ReferenceDocumentItem><GLAccount>{gl}</GLAccount>"
        f'<AmountInTransactionCurrency currencyCode="EUR">{amount}</AmountInTransactionCurrency>'
        f"<DebitCreditCode>{side}</DebitCreditCode></Item>"
        for n, (gl, amount, side) in enumerate(lines, start=1)
    )
    return (
        '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
        'xmlns:sfin="http://sap.com/xi/SAPSCORE/SFIN"><soapenv:Body><sfin:JournalEntryBulkCreateRequest>'
        "<MessageHeader><ID>MSG-1</ID><CreationDateTime>2025-03-01T10:00:00Z</CreationDateTime></MessageHeader>"
        "<JournalEntryCreateRequest><MessageHeader><ID>SUB-1</ID><CreationDateTime>2025-03-01T10:00:00Z"
        "</CreationDateTime></MessageHeader><JournalEntry><OriginalReferenceDocumentType>BKPFF"
        "</OriginalReferenceDocumentType><BusinessTransactionType>RFBU</BusinessTransactionType>"
        "<AccountingDocumentType>SA</AccountingDocumentType><DocumentReferenceID>TEST-1</DocumentReferenceID>"
        f"<CreatedByUser>CC0000000001</CreatedByUser><CompanyCode>{company}</CompanyCode>"
        "<DocumentDate>2025-03-01</DocumentDate><PostingDate>2025-03-01</PostingDate>"
        f"{items}</JournalEntry></JournalEntryCreateRequest></sfin:JournalEntryBulkCreateRequest>"
        "</soapenv:Body></soapenv:Envelope>"
    ).encode()


async def test_transport_errors_are_classified(sap, sandbox, customer):
    sandbox.fault("sap", "5xx", path_contains="journalentrycreaterequestconfi", times=1, status=503)
    with pytest.raises(TransientError):
        await sap.post_journal_entry(sale())
    assert len(items(sandbox)) == 0
    sandbox.fault("sap", "5xx", path_contains="API_OPLACCTGDOCITEMCUBE_SRV", times=1)
    with pytest.raises(TransientError):
        await sap.get_journal_entry("anything")
    sandbox.fault("sap", "429", times=1)
    with pytest.raises(TransientError):
        await sap.get_journal_entry("anything")
    locked_out = SapErp(sandbox.sap_url, "O2C_COMM", "invalid-password", logical_system="O2C")
    try:
        with pytest.raises(IntegrationBug) as bug:
            await locked_out.post_journal_entry(revenue("revrec-C1-2025-03", "C1", "5.00"))
        assert bug.value.status == 401
    finally:
        await locked_out.aclose()
    gone = SapErp("http://127.0.0.1:9", "u", "p", logical_system="O2C", timeout=1)
    try:
        with pytest.raises(TransientError) as down:
            await gone.get_journal_entry("anything")
        assert down.value.code == "connection"
    finally:
        await gone.aclose()


async def test_keys_that_do_not_fit_sap_are_refused_before_sending(sap, sandbox):
    with pytest.raises(IntegrationBug, match="item text"):
        await sap.post_journal_entry(revenue("revrec-" + "x" * 60, "C1", "5.00"))
    with pytest.raises(IntegrationBug, match="no SAP G/L account"):
        await sap.post_journal_entry(
            revenue("revrec-C1", "C1", "5.00").model_copy(
                update={
                    "lines": [
                        JournalLine(account="DEFREV", debit=eur("5.00")),
                        JournalLine(account="4000", credit=eur("5.00")),
                    ]
                }
            )
        )
    assert items(sandbox) == []


async def test_listing_pages_never_split_an_entry(sap, sandbox, customer):
    posted = []
    for n in range(7):
        if n % 2:
            entry = revenue(f"revrec-C{n}-2025-03", f"C{n}", f"{n}.00", date(2025, 3, 10 + n))
        else:
            entry = sale(f"amendment-C{n}-invoice", posting=date(2025, 3, 10 + n), invoice_id=f"in_{n}")
        await sap.post_journal_entry(entry)
        posted.append(entry)
    await sap.post_journal_entry(revenue("revrec-C1-2025-04", "C1", "1.00", date(2025, 4, 1)))  # outside
    seen: list[JournalEntry] = []
    cursor = ""
    pages = 0
    while True:
        page = await sap.list_journal_entries_page(
            subsidiary="1010", date_from=date(2025, 3, 1), date_to=date(2025, 4, 1), cursor=cursor, limit=2
        )
        pages += 1
        assert len(page.items) <= 2
        seen.extend(page.items)
        cursor = page.next_cursor
        if not cursor:
            break
    assert pages >= 4
    assert [e.external_id for e in seen] == [e.external_id for e in posted]
    for read, expected in zip(seen, posted, strict=True):
        assert read.total_debits == expected.total_debits and len(read.lines) == len(expected.lines)
        assert (read.invoice_id, read.contract_id) == (expected.invoice_id, expected.contract_id)
        assert read.customer == expected.customer
    other = await sap.list_journal_entries_page(subsidiary="1710", date_from=date(2025, 3, 1), date_to=date(2025, 4, 1))
    assert other.items == [] and other.next_cursor == ""
    with pytest.raises(IntegrationBug):
        await sap.list_journal_entries_page(
            subsidiary="1010", date_from=date(2025, 3, 1), date_to=date(2025, 4, 1), cursor="x"
        )


async def test_bulk_posts_through_the_async_service_once(sandbox, customer):
    bulk = SapErp(sandbox.sap_url, "O2C_COMM", "sandbox-password", logical_system="O2C", bulk_threshold=3, bulk_wait=2)
    try:
        entries = [revenue(f"revrec-B{n}-2025-03", f"B{n}", f"{n + 1}.00") for n in range(4)]
        await bulk.post_journal_entry(entries[0])  # already there: not sent again
        refs = await bulk.post_journal_entries(entries)
        assert [r.external_id for r in refs] == [e.external_id for e in entries]
        assert len({r.internal_id for r in refs}) == 4
        assert len(items(sandbox)) == 8
        messages = sandbox.sap_messages()
        assert len(messages) == 1 and messages[0]["status"] == "processed" and len(messages[0]["entries"]) == 3
        assert await bulk.post_journal_entries(entries) == refs  # nothing left to send
        assert len(sandbox.sap_messages()) == 1

        sandbox.sap_set_period("1010", "2025-05")
        late = [revenue(f"revrec-L{n}-2025-05", f"L{n}", "1.00", date(2025, 5, 31)) for n in range(3)]
        with pytest.raises(BusinessError) as missing:
            await bulk.post_journal_entries(late)
        assert missing.value.code == "BULK_NOT_POSTED" and missing.value.fixable
        assert any(m["status"] == "error" for m in sandbox.sap_messages())
    finally:
        await bulk.aclose()


async def test_customer_upsert_is_idempotent_and_extends_company_codes(sap, sandbox):
    number = await sap.upsert_customer(ACME, subsidiary="1010")
    assert await sap.upsert_customer(ACME, subsidiary="1010") == number
    renamed = ACME.model_copy(update={"name": "Acme Deutschland GmbH"})
    assert await sap.upsert_customer(renamed, subsidiary="1710") == number
    partners = sandbox.records("sap", "businessPartner")
    assert len(partners) == 1
    assert partners[0]["BusinessPartnerIDByExtSystem"] == ACME.id
    assert partners[0]["OrganizationBPName1"] == "Acme Deutschland GmbH"
    assert sorted(c["CompanyCode"] for c in partners[0]["companies"]) == ["1010", "1710"]
    # A fresh adapter (no cache) finds the partner by its external id.
    fresh = SapErp(sandbox.sap_url, "O2C_COMM", "sandbox-password", logical_system="O2C")
    try:
        assert await fresh.upsert_customer(ACME, subsidiary="1010") == number
    finally:
        await fresh.aclose()
    assert len(sandbox.records("sap", "businessPartner")) == 1


async def test_customer_upsert_after_a_lost_answer_creates_one_partner(sandbox):
    impatient = SapErp(sandbox.sap_url, "O2C_COMM", "sandbox-password", logical_system="O2C", timeout=0.5)
    try:
        sandbox.fault(
            "sap", "commit_then_timeout", method="POST", path_contains="A_BusinessPartner", times=1, hold_seconds=2
        )
        with pytest.raises(TransientError):
            await impatient.upsert_customer(ACME, subsidiary="1010")
        number = await impatient.upsert_customer(ACME, subsidiary="1010")
        assert [p["Customer"] for p in sandbox.records("sap", "businessPartner")] == [number]
    finally:
        await impatient.aclose()


async def test_customer_with_an_id_sap_cannot_hold(sap, sandbox):
    with pytest.raises(IntegrationBug, match="BusinessPartnerIDByExtSystem"):
        await sap.upsert_customer(ACME.model_copy(update={"id": "cus_" + "x" * 30}), subsidiary="1010")
    with pytest.raises(BusinessError) as refused:
        await sap.upsert_customer(ACME, subsidiary="9999")
    assert "9999" in refused.value.message
    assert sandbox.records("sap", "businessPartner") == []


async def test_collection_cases_are_not_kept_in_sap(sap):
    case = CollectionCase(
        external_id="dunning-in_1-case",
        account_id=ACME.id,
        invoice_id="in_1",
        subsidiary="1010",
        amount=eur("10.00"),
        stage="reminder",
    )
    with pytest.raises(BusinessError) as refused:
        await sap.upsert_collection_case(case)
    assert refused.value.code == "not_supported" and not refused.value.fixable
    assert "NetSuite" in refused.value.message


async def test_get_searches_the_company_codes_it_was_given(sap, sandbox):
    await sap.post_journal_entry(revenue("revrec-C7-2025-03", "C7", "7.00"))
    for codes, found in ((["1710", "1010"], True), (["1710"], False), ([], True)):
        reader = SapErp(sandbox.sap_url, "O2C_COMM", "pw", logical_system="O2C", company_codes=codes)
        try:
            read = await reader.get_journal_entry("revrec-C7-2025-03")
            assert (read is not None) is found, codes
            if read is not None:
                assert read.contract_id == "C7" and read.subsidiary == "1010"
        finally:
            await reader.aclose()
    other = SapErp(sandbox.sap_url, "O2C_COMM", "pw", logical_system="OTHER")
    try:
        assert await other.get_journal_entry("revrec-C7-2025-03") is None  # another system's documents
    finally:
        await other.aclose()
