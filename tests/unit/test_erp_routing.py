"""Each legal entity's bookings reach its own ERP, and what an ERP cannot take is refused by name."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal

import pytest

from adapters.erp_routing import NOT_SUPPORTED, RoutedErp
from adapters.errors import BusinessError, IntegrationBug
from canonical.journal import JournalEntry, JournalLine
from canonical.models import Account, CollectionCase, LegalEntity, entity_problems, receivables_refusal
from canonical.money import Money
from canonical.receivables import CustomerPayment
from settings import InvalidSettings, Settings
from tests.fakes import FakeErp, Ledger
from tests.fakes_cash import FakeReceivables

US01 = LegalEntity(code="US01", company_code="US01", functional_currency="USD", erp_subsidiary="1")
DE01 = LegalEntity(code="DE01", company_code="1010", functional_currency="EUR", erp="sap", erp_subsidiary="1010")


def entry(external_id: str, subsidiary: str, currency: str = "EUR") -> JournalEntry:
    amount = Money.of(Decimal("100.00"), currency)
    return JournalEntry(
        external_id=external_id,
        subsidiary=subsidiary,
        currency=currency,
        posting_date=date(2026, 11, 30),
        memo="test",
        lines=[JournalLine(account="1200", debit=amount), JournalLine(account="2400", credit=amount)],
    )


@pytest.fixture
def erps() -> tuple[RoutedErp, FakeErp, FakeErp, FakeReceivables]:
    ledger = Ledger()
    netsuite, sap = FakeErp(ledger), FakeErp(ledger)
    receivables = FakeReceivables(ledger)
    routed = RoutedErp({"netsuite": netsuite, "sap": sap}, [US01, DE01], receivables={"netsuite": receivables})
    return routed, netsuite, sap, receivables


async def test_an_entry_is_posted_in_the_erp_of_its_entity(erps) -> None:
    routed, netsuite, sap, _ = erps
    await routed.post_journal_entry(entry("amendment-A-1-invoice", "1010"))
    await routed.post_journal_entry(entry("amendment-A-2-invoice", "1", "USD"))
    assert list(sap.entries) == ["amendment-A-1-invoice"]
    assert list(netsuite.entries) == ["amendment-A-2-invoice"]
    # A lookup by external id alone finds it wherever it is.
    found = await routed.get_journal_entry("amendment-A-1-invoice")
    assert found is not None and found.subsidiary == "1010"
    assert await routed.get_journal_entry("amendment-A-3-invoice") is None


async def test_customers_cases_and_listings_follow_the_ledger(erps) -> None:
    routed, netsuite, sap, _ = erps
    account = Account(id="cus_de", name="Berlin GmbH", legal_entity="DE01")
    await routed.upsert_customer(account, subsidiary="1010")
    assert sap.customers == {"cus_de": "1010"} and netsuite.customers == {}
    case = CollectionCase(
        external_id="dunning-1-case",
        account_id="cus_us",
        invoice_id="in_1",
        subsidiary="1",
        amount=Money.of("5.00", "USD"),
        stage="notice",
    )
    await routed.upsert_collection_case(case)
    assert list(netsuite.cases) == ["dunning-1-case"]
    await routed.post_journal_entry(entry("e-1", "1010"))
    page = await routed.list_journal_entries_page(
        subsidiary="1010", date_from=date(2026, 11, 1), date_to=date(2026, 12, 1)
    )
    assert [e.external_id for e in page.items] == ["e-1"]
    nothing = await routed.list_journal_entries_page(
        subsidiary="1", date_from=date(2026, 11, 1), date_to=date(2026, 12, 1)
    )
    assert nothing.items == []


async def test_a_ledger_no_configured_entity_names_books_in_the_first_entitys_erp(erps) -> None:
    """An entity handed to a process in its input only (a test's, a benchmark's) books where
    every booking went before routing: the first configured entity's ERP."""
    routed, netsuite, sap, _ = erps
    await routed.post_journal_entry(entry("e-1", "7"))
    assert list(netsuite.entries) == ["e-1"] and sap.entries == {}
    with pytest.raises(IntegrationBug, match="none is configured"):
        await RoutedErp({}, []).post_journal_entry(entry("e-2", "7"))


async def test_payments_for_an_entity_on_sap_are_refused_by_name(erps) -> None:
    routed, _, _, receivables = erps
    payment = CustomerPayment(
        external_id="cash-r-1",
        subsidiary="1010",
        customer="cus_de",
        amount=Money.of("10.00", "EUR"),
        tran_date=date(2026, 11, 30),
        account="1000",
    )
    with pytest.raises(BusinessError) as refused:
        await routed.post_customer_payment(payment)
    assert refused.value.code == NOT_SUPPORTED and not refused.value.fixable
    assert "DE01 books in SAP S/4HANA" in refused.value.message
    assert receivables.ledger.calls == []
    # The same payment for the NetSuite entity goes through.
    await routed.post_customer_payment(payment.model_copy(update={"subsidiary": "1"}))
    assert "cash-r-1" in receivables.payments


def test_every_entity_needs_its_erp_adapter() -> None:
    with pytest.raises(ValueError, match="no adapter for the ERP of every legal entity: sap"):
        RoutedErp({"netsuite": FakeErp(Ledger())}, [US01, DE01])


def test_two_entities_on_one_ledger_are_refused(tmp_path, monkeypatch) -> None:
    twin = DE01.model_copy(update={"code": "DE02"})
    assert entity_problems([US01, DE01]) == []
    assert entity_problems([US01, DE01, twin]) == ["legal entities 'DE01' and 'DE02' both book in ledger '1010'"]
    path = tmp_path / "entities.json"
    path.write_text(json.dumps([e.model_dump(mode="json") for e in (US01, DE01, twin)]))
    monkeypatch.setenv("O2C_LEGAL_ENTITIES_FILE", str(path))
    with pytest.raises(InvalidSettings, match="both book in ledger '1010'"):
        Settings.from_env()


def test_only_netsuite_entities_post_receivables() -> None:
    assert receivables_refusal(US01) == ""
    assert "apply cash and credits for it in the ERP itself" in receivables_refusal(DE01)


class OneAccount:
    """Billing that knows one customer, of the SAP entity."""

    async def get_account(self, account_id: str) -> Account | None:
        return Account(id=account_id, name="Berlin GmbH", legal_entity="DE01") if account_id == "cus_de" else None


async def test_a_credit_for_a_customer_booked_in_sap_is_refused_before_it_starts() -> None:
    from canonical.amendment import InvalidRequest
    from starter.credits import entity_of_customer, refuse_unless_receivables

    with pytest.raises(InvalidRequest) as refused:
        await refuse_unless_receivables("cus_de", OneAccount(), [US01, DE01])  # type: ignore[arg-type]
    assert refused.value.problems == [receivables_refusal(DE01)]
    # A refund books a journal entry only, which SAP takes: it is booked in the customer's entity.
    assert await entity_of_customer("cus_de", OneAccount(), [US01, DE01]) == DE01  # type: ignore[arg-type]
    assert await entity_of_customer("cus_other", OneAccount(), [US01, DE01]) == US01  # type: ignore[arg-type]


async def test_a_statement_for_an_entity_on_sap_is_refused_before_anything_is_kept() -> None:
    from starter.cash import StatementRefused, import_statement

    class Untouched:
        def __getattr__(self, name: str) -> None:
            raise AssertionError(f"{name} was called")

    with pytest.raises(StatementRefused) as refused:
        await import_statement(
            Untouched(),  # type: ignore[arg-type]
            b"not even read",
            legal_entity="DE01",
            store=Untouched(),  # type: ignore[arg-type]
            legal_entities=[US01, DE01],
        )
    assert receivables_refusal(DE01) in str(refused.value.problems)
