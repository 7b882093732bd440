"""BAI2: the PROTOCOLS.md sample, a hand-written file with every funds type and
continuations, and round trips through the sandbox bank over real HTTP."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

import pytest

from adapters.bank import StatementError, read_statement, read_statements, receipts_of
from canonical.cash.models import ReceiptSource, StatementFormat
from canonical.money import Money
from tests.bank_kit import bank_statement, fixture, line_of


def test_the_protocols_sample_reads_with_its_continuation():
    statement = read_statement(fixture("protocols_sample.bai2"))
    assert statement.format is StatementFormat.BAI2
    assert statement.statement_id == "bai2:123456789:1:2024-01-30"  # file id and as-of date
    assert statement.created_at == datetime(2024, 1, 31, 6, 0)
    assert (statement.opening, statement.closing) == (Money.of("10000.00", "USD"), Money.of("11500.00", "USD"))
    [entry] = statement.entries
    assert (entry.line, entry.amount, entry.credit, entry.type_code) == (4, Money.of("1500.00", "USD"), True, "165")
    assert entry.bank_reference == "BANKREF1" and entry.booked_on == date(2024, 1, 30)
    # The text goes on in the 88; the customer reference comes before what the text names.
    assert entry.remittance_text == "ACH CREDIT ACME CORP,INV-1001"
    assert entry.references == ["CUSTREF1", "INV-1001"]
    [receipt] = receipts_of(statement, legal_entity="US01")
    assert receipt.receipt_id == "bai2:123456789:BANKREF1" and receipt.source is ReceiptSource.BAI2


def test_funds_types_signed_balances_continued_summaries_and_information_records():
    checking, savings = read_statements(fixture("funds_types.bai2"))
    assert checking.statement_id == "bai2:0975312468:7:2024-03-04"
    assert (checking.opening, checking.closing) == (Money.of("5000.00", "USD"), Money.of("-750.00", "USD"))
    lockbox, ach, wire, check, wire_out = checking.entries  # the 890 information record is no entry
    assert (lockbox.line, lockbox.amount.amount, lockbox.bank_reference) == (5, Decimal("10000.00"), "LBX-1")
    assert lockbox.references == ["INV-3001"] and lockbox.remittance_text == "LOCKBOX DEPOSIT"  # S: 3 amounts skipped
    assert ach.value_date == date(2024, 3, 5) and ach.booked_on == date(2024, 3, 4)  # V: value date and time
    assert (ach.payer_name, ach.payer_account) == ("Initech Corp", "1234567890")
    assert ach.references == ["INV-3002", "INV-3003"]
    assert wire.bank_reference == "WIRE-3" and wire.references == ["in_1PqRsTuVwXyZ12"]  # D: 2 distributions
    assert [(e.credit, e.type_code) for e in (check, wire_out)] == [(False, "475"), (False, "495")]
    assert savings.currency == "CAD" and savings.closing == Money.of("123.45", "CAD")
    assert savings.entries[0].line == 14
    assert [r.bank_reference for r in receipts_of(checking, legal_entity="US01")] == ["LBX-1", "ACH-2", "WIRE-3"]


def _body(entries: list[dict[str, object]], **extra: object) -> dict[str, object]:
    return {
        "format": "bai2",
        "date": "2024-01-31",
        "account": "123456789",
        "currency": "USD",
        "opening_balance": "2500.00",
        "entries": entries,
        **extra,
    }


KINDS = [
    {"amount": "150.00", "payer_name": "ACME Corp", "payer_account": "9876543210", "remittance": "INV-1001"},
    {"amount": "40.00", "payer_name": "ACME Corp", "remittance": "INV-1002 partial"},
    {"amount": "300.00", "payer_name": "Globex Corporation", "remittance": "INV-1003 INV-1004",
     "customer_reference": "PO-55", "type_code": "195"},
    {"amount": "75.25", "remittance": "WIRE FROM AN UNKNOWN PAYER " + "WITH A LONG TEXT " * 8},
    {"amount": "150.00", "payer_name": "ACME Corp", "remittance": "INV-1001", "value_date": "2024-02-01"},
    {"amount": "20.00", "credit": False, "remittance": "BANK FEE"},
]  # fmt: skip


def test_a_statement_written_by_the_sandbox_bank_reads_back(sandbox):
    data = bank_statement(sandbox, _body(KINDS))
    assert b"\n88," in data  # the long text ran into continuation records
    statement = read_statement(data)
    assert statement.closing == Money.of("3195.25", "USD")
    assert [e.line for e in statement.entries] == [line_of(data, b"\n16,", n) + 1 for n in range(1, 7)]
    receipts = receipts_of(statement, legal_entity="US01")
    assert [r.amount.amount for r in receipts] == [Decimal(a) for a in ("150.00", "40.00", "300.00", "75.25", "150.00")]
    assert [r.references for r in receipts] == [
        ["INV-1001"],
        ["INV-1002"],
        ["PO-55", "INV-1003", "INV-1004"],
        [],
        ["INV-1001"],
    ]
    assert receipts[0].payer_name == "ACME Corp" and receipts[0].payer_account == "9876543210"
    assert receipts[2].payer_name == "Globex Corporation"
    assert receipts[3].remittance_text == str(KINDS[3]["remittance"]).strip()
    assert receipts[4].value_date == date(2024, 2, 1)
    assert statement.entries[-1].type_code == "495" and not statement.entries[-1].credit
    assert bank_statement(sandbox, _body(KINDS)) == data  # the same body, the same file


def test_several_accounts_in_one_group(sandbox):
    body = {
        "format": "bai2",
        "date": "2024-01-31",
        "file_id": "42",
        "accounts": [
            {"account": "111", "currency": "USD", "opening_balance": "0", "entries": [{"amount": "1.00"}]},
            {"account": "222", "currency": "JPY", "opening_balance": "1000", "entries": [{"amount": "500"}]},
        ],
    }
    data = bank_statement(sandbox, body)
    usd, jpy = read_statements(data)
    assert usd.statement_id == "bai2:111:42:2024-01-31"
    assert jpy.closing == Money.of("1500", "JPY")  # JPY amounts have no minor digits
    assert jpy.entries[0].amount == Money.of("500", "JPY")
    with pytest.raises(StatementError) as err:
        read_statement(data)
    assert err.value.line == line_of(data, b"03,222")


def test_only_version_2_and_update_groups_are_read():
    data = fixture("protocols_sample.bai2")
    with pytest.raises(StatementError) as err:
        read_statement(data.replace(b",,,2/", b",,,3/", 1))
    assert (err.value.line, err.value.reason) == (1, "BAI version '3' is not 2")
    with pytest.raises(StatementError) as err:
        read_statement(data.replace(b",1,240130", b",4,240130"))
    assert err.value.line == 2 and "test-only (4)" in err.value.reason
