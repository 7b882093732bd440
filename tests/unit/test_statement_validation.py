"""A statement is validated whole before anything is applied: each bad file is refused
with the line at fault and the reason."""

from __future__ import annotations

import pytest

from adapters.bank import StatementError, bai2, read_statement, read_statements
from adapters.bank.statement import sniff
from tests.bank_kit import bank_statement, fixture, line_of

CAMT = fixture("protocols_camt053_02.xml")
BAI2 = fixture("protocols_sample.bai2")


def refused(data: bytes, **kwargs: object) -> StatementError:
    with pytest.raises(StatementError) as err:
        read_statements(data, **kwargs)  # type: ignore[arg-type]
    return err.value


def test_the_error_names_the_file_the_line_and_the_reason():
    error = refused(CAMT.replace(b"250.00", b"250.01"), filename="jan.xml")
    assert (error.filename, error.line) == ("jan.xml", 5)  # the CLBD balance
    assert error.reason == (
        "balances do not add up on account DE89370400440532013000: opening 100.00 + credits 150.00 "
        "- debits 0.00 = 250.00, but the closing balance is 250.01"
    )
    assert str(error) == f"jan.xml, line 5: {error.reason}"


# -- camt.053 -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "line", "reason"),
    [
        ((b"<Amt Ccy=\"EUR\">150.00", b"<Amt Ccy=\"EUR\">1S0.00"), 6, "entry amount '1S0.00' is not an unsigned decimal amount"),
        ((b"<Amt Ccy=\"EUR\">150.00", b"<Amt Ccy=\"EUR\">-150.00"), 6, "entry amount '-150.00' is not an unsigned decimal amount"),
        ((b"<Amt Ccy=\"EUR\">150.00", b"<Amt Ccy=\"EUR\">150.001"), 6, "entry amount '150.001' has more decimals than EUR allows"),
        ((b"<Ccy>EUR</Ccy>", b"<Ccy>EUX</Ccy>"), 3, "unknown currency code 'EUX'"),
        ((b"<Amt Ccy=\"EUR\">150.00", b"<Amt Ccy=\"XAU\">150.00"), 6, "unknown currency code 'XAU'"),
        ((b"<Amt Ccy=\"EUR\">150.00", b"<Amt Ccy=\"USD\">150.00"), 6, "entry in USD on account DE89370400440532013000 kept in EUR"),
        ((b"<BookgDt><Dt>2024-01-31", b"<BookgDt><Dt>2024-02-30"), 6, "booking date '2024-02-30' is not a valid date (YYYY-MM-DD)"),
        ((b"<CdtDbtInd>CRDT</CdtDbtInd><Sts>", b"<CdtDbtInd>CREDIT</CdtDbtInd><Sts>"), 6, "CdtDbtInd is 'CREDIT', not CRDT or DBIT"),
        ((b"<Cd>CLBD</Cd>", b"<Cd>CLAV</Cd>"), 3, "statement S1 has no closing booked balance (CLBD)"),
        ((b"<Cd>OPBD</Cd>", b"<Cd>ITBD</Cd>"), 3, "statement S1 has no opening booked balance (OPBD or PRCD)"),
        ((b"<Cd>OPBD</Cd>", b"<Cd>CLBD</Cd>"), 5, "balance CLBD given twice (first on line 4)"),
        ((b"<AcctSvcrRef>B-1</AcctSvcrRef>", b""), 6, "credit entry without a bank reference: its receipt has no id"),
        ((b"<Id>S1</Id>", b"<Id></Id>"), 3, "statement without an Id"),
        ((b"<IBAN>DE89370400440532013000</IBAN>", b""), 3, "statement account has neither an IBAN nor an Othr/Id"),
    ],
)  # fmt: skip
def test_camt_refusals(change, line, reason):
    error = refused(CAMT.replace(*change))
    assert (error.line, error.reason) == (line, reason)


def test_an_error_inside_an_entry_names_the_elements_own_line():
    data = fixture("camt053_08_pretty.xml")
    bad = data.replace(b"<Dt>2024-02-29</Dt>\n        </ValDt>", b"<Dt>29.02.2024</Dt>\n        </ValDt>")
    error = refused(bad)
    assert error.line == line_of(bad, b"29.02.2024")  # the Dt element, not its Ntry
    assert error.reason == "value date '29.02.2024' is not a valid date (YYYY-MM-DD)"
    bad = data.replace(b'<Amt Ccy="EUR">99.50</Amt>', b'<Amt Ccy="EUR">99,50</Amt>')
    assert refused(bad).line == 114


def test_a_transaction_summary_that_disagrees_with_the_entries_is_refused():
    data = fixture("camt053_08_pretty.xml")
    error = refused(data.replace(b"<NbOfNtries>3</NbOfNtries>", b"<NbOfNtries>2</NbOfNtries>"))
    assert (error.line, error.reason) == (49, "TtlCdtNtries counts 2 entries, the file has 3")
    error = refused(data.replace(b"<Sum>40.00</Sum>", b"<Sum>41.00</Sum>"))
    assert (error.line, error.reason) == (54, "TtlDbtNtries sums to 41.00, the entries to 40.00")


def test_the_same_bank_reference_twice_is_refused(sandbox):
    entries = [{"amount": "1.00", "bank_reference": "R-1"}, {"amount": "2.00", "bank_reference": "R-1"}]
    body = {"date": "2024-01-31", "account": "DE1", "currency": "EUR", "opening_balance": "0", "entries": entries}
    for fmt, entry_start in (("camt.053.001.02", b"<Ntry>"), ("bai2", b"16,")):
        data = bank_statement(sandbox, {**body, "format": fmt})
        first_line = line_of(data, entry_start)
        error = refused(data)
        assert error.line == line_of(data, entry_start, 2) == first_line + 1
        assert error.reason == f"bank reference 'R-1' appears twice on account DE1 (line {first_line})"


def test_the_same_statement_twice_in_one_file_is_refused():
    start = CAMT.index(b"<Stmt>")
    end = CAMT.index(b"</Stmt>") + len(b"</Stmt>")
    doubled = CAMT[:end] + b"\n" + CAMT[start:end] + CAMT[end:]
    error = refused(doubled)
    assert error.line == 10
    assert error.reason == "statement camt053:DE89370400440532013000:S1 appears twice in the file (first on line 3)"


def test_a_document_without_statements_is_refused():
    error = refused(b'<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.08"><BkToCstmrStmt/></Document>')
    assert (error.line, error.reason) == (1, "the document holds no statement (BkToCstmrStmt/Stmt)")


# -- BAI2 -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "line", "reason"),
    [
        ((b"49,2300000,4/", b"49,2300100,4/"), 6, "account 123456789 control total 2300100 does not match the amounts in the file (2300000)"),
        ((b"98,2300000,1,6/", b"98,2300001,1,6/"), 7, "group control total 2300001 does not match the amounts in the file (2300000)"),
        ((b"99,2300000,1,8/", b"99,230000,1,8/"), 8, "file control total 230000 does not match the amounts in the file (2300000)"),
        ((b"49,2300000,4/", b"49,2300000,3/"), 6, "account trailer (49) counts 3 records, the file has 4"),
        ((b"98,2300000,1,6/", b"98,2300000,1,5/"), 7, "group trailer (98) counts 5 records, the file has 6"),
        ((b"98,2300000,1,6/", b"98,2300000,2,6/"), 7, "group trailer (98) counts 2 accounts, the file has 1"),
        ((b"99,2300000,1,8/", b"99,2300000,1,9/"), 8, "file trailer (99) counts 9 records, the file has 8"),
        ((b"99,2300000,1,8/", b"99,2300000,2,8/"), 8, "file trailer (99) counts 2 groups, the file has 1"),
        ((b"16,165,150000,", b"16,165,15O000,"), 4, "amount '15O000' is not an unsigned whole number (BAI2 amounts are in minor units)"),
        ((b"16,165,150000,", b"16,165,+150000,"), 4, "amount '+150000' is not an unsigned whole number (BAI2 amounts are in minor units)"),
        ((b"015,1150000", b"015,1150001"), 6, "account 123456789 control total 2300000 does not match the amounts in the file (2300001)"),
        ((b"03,123456789,USD,", b"03,123456789,USX,"), 3, "unknown currency code 'USX'"),
        ((b"1,240130,2400", b"1,240230,2400"), 2, "as-of date '240230' is not a valid date (YYMMDD)"),
        ((b"1,240130,2400", b"1,240130,2561"), 2, "as-of time '2561' is not a valid time (HHMM)"),
        ((b"16,165,", b"16,765,"), 4, "type code 765 is neither a credit (100-399) nor a debit (400-699)"),
        ((b",0,BANKREF1", b",X,BANKREF1"), 4, "funds type 'X' is not one of 0, 1, 2, Z, S, V, D"),
        ((b"49,2300000,4/", b"49,2300000,4"), 6, "record 49 does not end with '/' (truncated?)"),
        ((b"88,INV-1001\n", b"88,INV-1001\n\n"), 6, "empty record"),
        ((b"88,INV-1001\n", b"88,INV-1001\n17,X/\n"), 6, "unknown record (17) where a transaction detail (16) or the account trailer (49) was expected"),
    ],
)  # fmt: skip
def test_bai2_refusals(change, line, reason):
    bad = BAI2.replace(*change)
    assert bad != BAI2
    error = refused(bad)
    assert (error.line, error.reason) == (line, reason)


def test_balances_must_add_up_in_bai2_even_when_the_totals_do():
    # Closing ledger one cent off, with the control totals made to agree: still refused.
    bad = BAI2.replace(b"015,1150000", b"015,1150001").replace(b"2300000", b"2300001")
    error = refused(bad)
    assert error.line == 3
    assert error.reason.startswith("balances do not add up on account 123456789: opening 10000.00 + credits 1500.00")


def test_a_truncated_or_unterminated_bai2_file_is_refused():
    lines = BAI2.splitlines(keepends=True)
    error = refused(b"".join(lines[:-1]))  # no 99
    assert (error.line, error.reason) == (7, "the file ends before its file trailer (99): truncated?")
    error = refused(b"".join(lines[:4]))  # cut inside the account
    assert (error.line, error.reason) == (4, "the file ends before its account trailer (49): truncated?")
    error = refused(BAI2 + b"01,122000661,CUSTID,240131,0600,2,,,2/\n")
    assert (error.line, error.reason) == (9, "record 01 after the file trailer (99)")


def test_the_envelope_is_checked():
    error = refused(BAI2.replace(b"02,CUSTID,122000661,1,240130,2400,USD,2/\n", b""))
    assert (error.line, error.reason) == (
        2,
        "account identifier (03) where a group header (02) or the file trailer (99) was expected",
    )
    with pytest.raises(StatementError) as err:
        bai2.parse(b"88,X/\n")  # past the sniffing, which wants an 01 first
    assert (err.value.line, err.value.reason) == (1, "continuation record (88) with no record to continue")
    no_opening = BAI2.replace(b"010,1000000,,,", b"").replace(b"2300000", b"1300000")
    error = refused(no_opening)
    assert (error.line, error.reason) == (3, "account 123456789 has no opening ledger balance (010)")
    error = refused(BAI2.replace(b"\n88,", b"\n88,").replace(b"ACME CORP/", "ACME CÖRP/".encode("latin-1")))
    assert (error.line, error.reason) == (4, "the file is not text (invalid UTF-8)")


def test_a_summary_of_total_credits_must_match_the_details(sandbox):
    data = bank_statement(
        sandbox,
        {"format": "bai2", "date": "2024-01-31", "account": "1", "currency": "USD", "opening_balance": "0",
         "entries": [{"amount": "1.00"}, {"amount": "2.00"}]},
    )  # fmt: skip
    assert b",100,300,2,," in data
    bad = data.replace(b",100,300,2,,", b",100,300,3,,")
    error = refused(bad)
    assert (error.line, error.reason) == (3, "total credits (100) counts 3 items, not 2")


# -- any file -------------------------------------------------------------------------------


def test_what_is_neither_format_is_refused():
    for data in (b"", b"   \n", b"ID;AMOUNT\n1;2\n", b"\x00\x01\x02"):
        error = refused(data)
        assert error.line == 1
    assert refused(b"hello").reason == (
        "neither a camt.053 XML document nor a BAI2 file (which starts with an 01 record)"
    )
    assert sniff(b"\xef\xbb\xbf  <Document/>") == "camt053" and sniff(b"01,1,2/") == "bai2"


def test_the_file_size_is_capped_before_parsing():
    error = refused(CAMT, max_bytes=100)
    assert (error.line, error.reason) == (1, f"the file has {len(CAMT)} bytes, more than the 100 accepted")


def test_read_statement_refuses_what_read_statements_refuses():
    with pytest.raises(StatementError):
        read_statement(CAMT.replace(b"250.00", b"1.00"))
