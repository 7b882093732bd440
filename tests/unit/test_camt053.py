"""camt.053 (.001.02 and .001.08): the PROTOCOLS.md sample, a hand-written .08 file, and
round trips through the sandbox bank over real HTTP."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from adapters.bank import StatementError, read_statement, read_statements, receipts_of
from canonical.cash.models import ReceiptSource, StatementFormat
from canonical.money import Money
from tests.bank_kit import bank_statement, fixture, line_of

IBAN = "DE89370400440532013000"


def test_the_protocols_sample_reads_as_one_balanced_statement():
    statement = read_statement(fixture("protocols_camt053_02.xml"), filename="sample.xml")
    assert statement.format is StatementFormat.CAMT053_02
    assert statement.statement_id == f"camt053:{IBAN}:S1"
    assert statement.bank_account == IBAN and statement.currency == "EUR"
    assert statement.created_at == datetime(2024, 1, 31, 6, 0)
    assert (statement.opening, statement.closing) == (Money.of("100.00", "EUR"), Money.of("250.00", "EUR"))
    [entry] = statement.entries
    assert entry.line == 6  # the line the Ntry starts on
    assert entry.amount == Money.of("150.00", "EUR") and entry.credit and not entry.reversal
    assert (entry.bank_reference, entry.booked_on, entry.value_date) == ("B-1", date(2024, 1, 31), date(2024, 1, 31))
    assert entry.type_code == "PMNT/RCDT/ESCT"
    assert entry.payer_name == "ACME Corp"
    assert entry.references == ["INV-1001"]  # end-to-end id and remittance name the same invoice
    assert entry.remittance_text == "INV-1001"
    assert len(statement.digest) == 64


def test_receipts_of_the_sample_have_deterministic_ids():
    data = fixture("protocols_camt053_02.xml")
    first = receipts_of(read_statement(data), legal_entity="DE01")
    again = receipts_of(read_statement(data), legal_entity="DE01")
    assert first == again
    [receipt] = first
    assert receipt.receipt_id == f"camt053:{IBAN}:B-1"
    assert receipt.source is ReceiptSource.CAMT053
    assert receipt.legal_entity == "DE01" and receipt.statement_id == f"camt053:{IBAN}:S1"
    assert receipt.amount == Money.of("150.00", "EUR") and receipt.references == ["INV-1001"]


def test_a_pretty_printed_08_file_with_prcd_reversal_and_pending_entries():
    statement = read_statement(fixture("camt053_08_pretty.xml"))
    assert statement.format is StatementFormat.CAMT053_08
    assert statement.statement_id == "camt053:0532013000:STMT-2024-02-29-EUR"  # Othr/Id account
    assert statement.created_at == datetime(2024, 3, 1, 5, 30, tzinfo=timezone(timedelta(hours=1)))
    assert statement.opening == Money.of("1000.00", "EUR")  # PRCD stands in for OPBD
    assert statement.closing == Money.of("1309.50", "EUR")
    # The pending entry (PDNG) is not a booked entry; the reversal is.
    assert [(e.line, e.amount.amount, e.credit, e.reversal) for e in statement.entries] == [
        (57, Decimal("250.00"), True, False),
        (113, Decimal("99.50"), True, False),
        (148, Decimal("40.00"), False, True),
    ]
    structured, stripe_id, reversal = statement.entries
    # SCOR first, then the end-to-end id, then what the free text names (upper-cased).
    assert structured.references == ["RF18539007547034", "E2E-77", "INV-2001"]
    assert structured.payer_name == "Initech GmbH" and structured.payer_account == "DE02100100109307118603"
    assert structured.booked_on == date(2024, 2, 29)  # from BookgDt/DtTm
    assert stripe_id.references == ["in_1OaBcDeFgHiJkL"]  # NOTPROVIDED is no reference
    assert stripe_id.payer_account == "998877" and stripe_id.type_code == ""  # BkTxCd is optional in .08
    assert reversal.payer_name == "Initech GmbH"  # the counterparty of a debit is its creditor
    receipts = receipts_of(statement, legal_entity="DE01")
    assert [r.bank_reference for r in receipts] == ["2024022900001", "2024022900002"]


def test_each_version_refuses_the_other_versions_shapes():
    v02 = fixture("protocols_camt053_02.xml")
    with pytest.raises(StatementError) as err:
        read_statement(v02.replace(b"<Sts>BOOK</Sts>", b"<Sts><Cd>BOOK</Cd></Sts>"))
    assert err.value.line == 6 and "Sts must be a code" in err.value.reason
    with pytest.raises(StatementError) as err:
        read_statement(v02.replace(b"camt.053.001.02", b"camt.053.001.08"))
    assert err.value.line == 6 and "Sts must hold <Cd>" in err.value.reason
    start, end = v02.index(b"<BkTxCd>"), v02.index(b"</BkTxCd>") + len(b"</BkTxCd>")
    with pytest.raises(StatementError) as err:
        read_statement(v02[:start] + v02[end:])
    assert err.value.line == 6 and "BkTxCd" in err.value.reason and "required in camt.053.001.02" in err.value.reason


def _body(fmt: str, entries: list[dict[str, object]], **extra: object) -> dict[str, object]:
    return {
        "format": fmt,
        "date": "2024-01-31",
        "account": IBAN,
        "currency": "EUR",
        "opening_balance": "1000.00",
        "entries": entries,
        **extra,
    }


KINDS = [
    # exact reference, partial, one paying two invoices, unknown payer, duplicate settlement
    {"amount": "150.00", "payer_name": "ACME Corp", "payer_account": "DE02100100109307118603",
     "remittance": "INV-1001", "end_to_end_id": "INV-1001"},
    {"amount": "40.00", "payer_name": "ACME Corp", "remittance": "INV-1002", "end_to_end_id": "INV-1002"},
    {"amount": "300.00", "payer_name": "Globex", "remittance": "INV-1003 INV-1004"},
    {"amount": "75.25", "payer_name": "Unknown Payer Ltd", "remittance": "PAYMENT"},
    {"amount": "150.00", "payer_name": "ACME Corp", "remittance": "INV-1001", "end_to_end_id": "INV-1001"},
    {"amount": "12.00", "structured_reference": "RF71INV1005", "remittance": "see reference"},
    {"amount": "20.00", "credit": False, "payer_name": "Landlord", "remittance": "rent"},
    {"amount": "150.00", "credit": False, "reversal": True, "payer_name": "ACME Corp", "remittance": "INV-0999"},
    {"amount": "9.99", "status": "PDNG", "remittance": "INV-1006"},
]  # fmt: skip


@pytest.mark.parametrize("fmt", ["camt.053.001.02", "camt.053.001.08"])
def test_a_statement_written_by_the_sandbox_bank_reads_back(sandbox, fmt):
    data = bank_statement(sandbox, _body(fmt, KINDS))
    statement = read_statement(data, filename="bank.xml")
    assert statement.format == fmt
    # 1000.00 + credits (150 + 40 + 300 + 75.25 + 150 + 12) - debits (20 + 150); PDNG left out
    assert statement.closing == Money.of("1557.25", "EUR")
    assert len(statement.entries) == 8
    assert [e.line for e in statement.entries] == [line_of(data, b"<Ntry>", n) for n in range(1, 9)]
    receipts = receipts_of(statement, legal_entity="DE01")
    assert [r.amount.amount for r in receipts] == [
        Decimal(a) for a in ("150.00", "40.00", "300.00", "75.25", "150.00", "12.00")
    ]
    assert [r.references for r in receipts] == [
        ["INV-1001"],
        ["INV-1002"],
        ["INV-1003", "INV-1004"],
        [],
        ["INV-1001"],
        ["RF71INV1005"],
    ]
    exact = receipts[0]
    assert exact.payer_name == "ACME Corp" and exact.payer_account == "DE02100100109307118603"
    assert len({r.receipt_id for r in receipts}) == 6  # the duplicate settlement has its own bank reference
    # Written again, the same file: the same statement and the same receipts.
    again = bank_statement(sandbox, _body(fmt, KINDS))
    assert again == data
    assert receipts_of(read_statement(again), legal_entity="DE01") == receipts


def test_several_accounts_are_several_statements(sandbox):
    body = {
        "format": "camt.053.001.08",
        "date": "2024-01-31",
        "accounts": [
            {"account": IBAN, "currency": "EUR", "opening_balance": "0", "entries": [{"amount": "1.00"}]},
            {"account": "GB29NWBK60161331926819", "currency": "GBP", "opening_balance": "-10.00",
             "entries": [{"amount": "10.00", "remittance": "INV-7"}]},
        ],
    }  # fmt: skip
    data = bank_statement(sandbox, body)
    first, second = read_statements(data)
    assert (first.bank_account, first.currency, first.closing) == (IBAN, "EUR", Money.of("1.00", "EUR"))
    assert (second.currency, second.opening, second.closing) == ("GBP", Money.of("-10.00", "GBP"), Money.zero("GBP"))
    assert first.statement_id != second.statement_id
    with pytest.raises(StatementError) as err:
        read_statement(data)
    assert "holds 2 statements" in err.value.reason and err.value.line == line_of(data, b"GB29NWBK")


def test_a_second_day_of_the_same_account_is_another_statement(sandbox):
    one = read_statement(bank_statement(sandbox, _body("camt.053.001.02", [{"amount": "1.00"}])))
    two = read_statement(bank_statement(sandbox, _body("camt.053.001.02", [{"amount": "1.00"}], date="2024-02-01")))
    assert one.statement_id != two.statement_id
    assert receipts_of(one, legal_entity="DE01")[0].receipt_id != receipts_of(two, legal_entity="DE01")[0].receipt_id
