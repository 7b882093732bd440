"""The ledger checks catch what they are for, against the sandbox NetSuite and o2c's store: a
customer payment the cash store never applied (cash posted twice, or by hand) and cash in
suspense the store does not hold, each named with both figures; books that agree pass."""

from __future__ import annotations

import uuid
from datetime import date

import pytest

from activities.cash import suspense_entry
from adapters.netsuite import NetSuiteErp
from canonical.cash.models import Receipt, ReceiptSource
from canonical.journal import ChartOfAccounts, invoice_entry, write_off_entry
from canonical.models import Account, LegalEntity
from canonical.money import Money
from canonical.receivables import AppliedDocument, CustomerPayment
from tests.integration.ledger_checks import ledger_failures

pytestmark = pytest.mark.integration

CHART = ChartOfAccounts()


@pytest.fixture
async def erp(settings):
    adapter = NetSuiteErp(settings.netsuite_base_url, settings.netsuite_token, timeout=5)
    yield adapter
    await adapter.aclose()


async def booked(erp: NetSuiteErp, customer: str, invoice_id: str, amount: str, subsidiary: str = "1") -> str:
    await erp.upsert_customer(Account(id=customer, name=f"Ledger {customer}"), subsidiary=subsidiary)
    await erp.post_journal_entry(
        invoice_entry(
            external_id=f"ledger-{invoice_id}-invoice",
            subsidiary=subsidiary,
            posting_date=date(2026, 11, 1),
            memo=f"Invoice {invoice_id}",
            revenue=Money.of(amount, "USD"),
            tax=Money.zero("USD"),
            chart=CHART,
            invoice_id=invoice_id,
            customer=customer,
        )
    )
    document = await erp.receivable_document(invoice_id, subsidiary=subsidiary)
    assert document is not None
    return document


async def test_a_payment_o2c_never_applied_is_named_with_both_figures(erp, settings):
    key = uuid.uuid4().hex[:8]
    customer, invoice_id = f"cus_ledger{key}", f"in_ledger{key}"
    document = await booked(erp, customer, invoice_id, "120.00")
    assert await ledger_failures(settings, customers=[customer]) == []

    await erp.post_customer_payment(
        CustomerPayment(
            external_id=f"cash-ledger-{key}",
            customer=customer,
            subsidiary="1",
            amount=Money.of("120.00", "USD"),
            tran_date=date(2026, 11, 20),
            account=CHART.bank,
            applications=[
                AppliedDocument(erp_document=document, invoice_id=invoice_id, amount=Money.of("120.00", "USD"))
            ],
        )
    )
    failures = await ledger_failures(settings, customers=[customer])
    assert failures == [
        f"{customer} USD: the ERP's receivable is 0.00, but invoiced 120.00 - cash applied 0 - credits 0 "
        "- write-offs 0 = 120.00",
        f"{customer} USD: the ERP's customer payments apply 120.00, o2c's cash store applied 0",
    ]


async def test_a_write_off_takes_the_receivable_down_and_the_books_agree(erp, settings):
    key = uuid.uuid4().hex[:8]
    customer, invoice_id = f"cus_ledger{key}", f"in_ledger{key}"
    await booked(erp, customer, invoice_id, "80.00")
    entry = write_off_entry(
        external_id=f"ledger-{invoice_id}-write-off",
        subsidiary="1",
        posting_date=date(2026, 11, 30),
        memo=f"Write-off of {invoice_id}",
        amount=Money.of("80.00", "USD"),
        chart=CHART,
        invoice_id=invoice_id,
    )
    await erp.post_journal_entry(entry)
    assert await ledger_failures(settings, customers=[customer]) == []


async def test_cash_in_suspense_the_store_does_not_hold_is_named_by_entity(erp, settings):
    key = uuid.uuid4().hex[:6]
    subsidiary = str(700000 + int(key, 16) % 100000)
    entity = LegalEntity(code=f"LC{key}", company_code=f"LC{key}", functional_currency="USD", erp_subsidiary=subsidiary)
    ours = settings.model_copy(update={"legal_entities_in_file": [entity]})
    assert await ledger_failures(ours, entities=[entity.code]) == []

    receipt = Receipt(
        receipt_id=f"camt053:LEDGER-{key}:1",
        source=ReceiptSource.CAMT053,
        legal_entity=entity.code,
        amount=Money.of("45.50", "USD"),
        value_date=date(2026, 11, 30),
        bank_reference="1",
    )
    await erp.post_journal_entry(suspense_entry(receipt, subsidiary=subsidiary, chart=CHART))
    assert await ledger_failures(ours, entities=[entity.code]) == [
        f"{entity.code} USD: unapplied receipts 0 in o2c's cash store, 0 in the exception queue, 45.50 in the ERP"
    ]
