"""Hostile and malformed statement files: each is refused whole, with a line and a reason,
before anything is built from it; no file makes the reader raise anything else."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.bank import StatementError, read_statements
from tests.bank_kit import fixture

CAMT = fixture("protocols_camt053_02.xml")
BAI2 = fixture("protocols_sample.bai2")
NS = b"urn:iso:std:iso:20022:tech:xsd:camt.053.001.02"

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE Document [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol9 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.02"><BkToCstmrStmt>&lol9;</BkToCstmrStmt></Document>
"""

EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE Document [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.02"><BkToCstmrStmt><GrpHdr><MsgId>&secret;</MsgId></GrpHdr></BkToCstmrStmt></Document>
"""

EXTERNAL_DTD = b"""<?xml version="1.0"?>
<!DOCTYPE Document SYSTEM "http://127.0.0.1:1/camt.dtd">
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.02"/>
"""

PARAMETER_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE Document [<!ENTITY % remote SYSTEM "http://127.0.0.1:1/x.dtd"> %remote;]>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.02"/>
"""

QUADRATIC_BLOWUP = (
    b'<?xml version="1.0"?>\n<!DOCTYPE Document [<!ENTITY a "' + b"x" * 50_000 + b'">]>\n'
    b'<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.02">' + b"&a;" * 10_000 + b"</Document>\n"
)


@pytest.mark.parametrize(
    ("data", "line", "reason"),
    [
        (BILLION_LAUGHS, 2, "refused: the file declares a DTD (entity expansion and external entities are not accepted)"),
        (EXTERNAL_ENTITY, 2, "refused: the file declares a DTD (entity expansion and external entities are not accepted)"),
        (EXTERNAL_DTD, 2, "refused: the file declares a DTD (entity expansion and external entities are not accepted)"),
        (PARAMETER_ENTITY, 2, "refused: the file declares a DTD (entity expansion and external entities are not accepted)"),
        (QUADRATIC_BLOWUP, 2, "refused: the file declares a DTD (entity expansion and external entities are not accepted)"),
    ],
    ids=["billion-laughs", "external-entity", "external-dtd", "parameter-entity", "quadratic-blowup"],
)  # fmt: skip
def test_hostile_xml_is_refused_before_anything_is_built(data, line, reason):
    with pytest.raises(StatementError) as err:
        read_statements(data, filename="hostile.xml")
    assert (err.value.line, err.value.reason, err.value.filename) == (line, reason, "hostile.xml")


@pytest.mark.parametrize(
    ("data", "line", "reason_starts"),
    [
        (CAMT.replace(NS, b"urn:iso:std:iso:20022:tech:xsd:camt.052.001.02"), 1, "namespace 'urn:iso:std:iso:20022:tech:xsd:camt.052.001.02' is neither"),
        (CAMT.replace(NS, b"urn:iso:std:iso:20022:tech:xsd:camt.053.001.02 "), 1, "namespace"),
        (CAMT.replace(b' xmlns="' + NS + b'"', b""), 1, "namespace '(none)' is neither"),
        (CAMT.replace(b"<Document", b"<Doc").replace(b"</Document>", b"</Doc>"), 1, "the root element is 'Doc'"),
        (CAMT.replace(b"</Ntry>", b"</Ntri>"), 8, "not well-formed XML: mismatched tag"),
        (CAMT[: len(CAMT) // 2], 5, "not well-formed XML: unclosed token"),
        (CAMT + b"<Document/>", 10, "not well-formed XML: junk after document element"),
        (CAMT.replace(b"ACME Corp", b"ACME \x01 Corp"), 8, "not well-formed XML: not well-formed (invalid token)"),
        (CAMT.replace(b"ACME Corp", b"ACME &amp Corp"), 8, "not well-formed XML"),
        (CAMT.replace(b"ACME Corp", b"ACME &nbsp; Corp"), 8, "not well-formed XML: undefined entity"),
        (CAMT.replace(b">150.00<", b">" + b"9" * 19 + b".00<"), 6, "entry amount '9999999999999999999.00' is not an unsigned decimal amount"),
        (CAMT.replace(b">150.00<", b">NaN<"), 6, "entry amount 'NaN' is not an unsigned decimal amount"),
        (CAMT.replace(b">150.00<", b">1e3<"), 6, "entry amount '1e3' is not an unsigned decimal amount"),
    ],
    ids=["camt052", "namespace-with-space", "no-namespace", "wrong-root", "mismatched-tag", "truncated",
         "junk-after-root", "control-character", "bare-ampersand", "undefined-entity", "huge-amount", "nan", "exponent"],
)  # fmt: skip
def test_malformed_camt_is_refused_with_line_and_reason(data, line, reason_starts):
    with pytest.raises(StatementError) as err:
        read_statements(data)
    assert err.value.line == line
    assert err.value.reason.startswith(reason_starts), err.value.reason


def test_a_prefixed_document_in_the_right_namespace_is_read():
    prefixed = (
        CAMT.replace(b'<Document xmlns="', b'<c:Document xmlns:c="').replace(b"<", b"<c:").replace(b"<c:/", b"</c:")
    )
    prefixed = prefixed.replace(b"<c:c:", b"<c:").replace(b"</c:c:", b"</c:")
    [statement] = read_statements(prefixed)
    assert statement.closing.amount == Decimal("250.00")


def test_an_xinclude_is_not_followed():
    included = CAMT.replace(
        b"<BkToCstmrStmt>",
        b'<BkToCstmrStmt><xi:include xmlns:xi="http://www.w3.org/2001/XInclude" href="file:///etc/passwd" parse="text"/>',
    )
    [statement] = read_statements(included)  # a foreign element is not read, let alone fetched
    assert "root" not in statement.model_dump_json()


@pytest.mark.parametrize(
    ("data", "line", "reason_starts"),
    [
        (BAI2.replace(b"ACME CORP", b"ACME\x00CORP").replace(b"\n", b"\r\n"), 4, ""),
        (
            BAI2.replace(b"16,165,150000,0,", b"16,165,150000,D,999999999,"),
            4,
            "funds type D announces 999999999 distributions",
        ),
        (BAI2 + b"\x00" * 10, 9, "'\\x00"),
        (BAI2.replace(b"49,2300000,4/", b"49," + b"9" * 400 + b",4/"), 6, "account 123456789 control total '999"),
        (b"01,1,2,240131,0600,1,,,2/\n" + b"02,X,Y,1,240130,,,2/\n" * 3, 3, "group header (02) where an account"),
    ],
    ids=["nul-byte", "huge-distribution-count", "trailing-nuls", "huge-control-total", "group-in-group"],
)
def test_malformed_bai2_is_refused_with_line_and_reason(data, line, reason_starts):
    try:
        read_statements(data)
    except StatementError as exc:
        assert exc.line == line
        assert exc.reason.startswith(reason_starts) or reason_starts in exc.reason, exc.reason
    else:
        # A NUL inside a detail's text is text; the file is still the balanced sample.
        assert reason_starts == ""


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    source=st.sampled_from([CAMT, BAI2]),
    at=st.integers(min_value=0, max_value=10_000),
    cut=st.integers(min_value=0, max_value=8),
    insert=st.binary(max_size=8),
)
def test_no_mangled_file_raises_anything_but_a_statement_error(source, at, cut, insert):
    at %= len(source)
    data = source[:at] + insert + source[at + cut :]
    try:
        statements = read_statements(data)
    except StatementError as exc:
        assert exc.line >= 1 and exc.reason
        return
    for statement in statements:  # what is accepted adds up
        credits = sum((e.amount.amount for e in statement.entries if e.credit), Decimal(0))
        debits = sum((e.amount.amount for e in statement.entries if not e.credit), Decimal(0))
        assert statement.opening.amount + credits - debits == statement.closing.amount
