"""The SAP stand-in on its own: what it refuses and how it answers, as SAP would, over HTTP."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator

import httpx
import pytest

SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
SFIN = "http://sap.com/xi/SAPSCORE/SFIN"
SYNC = "/sap/bc/srt/scs_ext/sap/journalentrycreaterequestconfi"
BULK = "/sap/bc/srt/scs_ext/sap/journalentrybulkcreationrequest"
CUBE = "/sap/opu/odata/sap/API_OPLACCTGDOCITEMCUBE_SRV/A_OperationalAcctgDocItemCube"
BP = "/sap/opu/odata/sap/API_BUSINESS_PARTNER"

HEADER = {
    "OriginalReferenceDocumentType": "BKPFF",
    "OriginalReferenceDocument": "REF-1",
    "OriginalReferenceDocumentLogicalSystem": "O2C",
    "BusinessTransactionType": "RFBU",
    "AccountingDocumentType": "SA",
    "DocumentReferenceID": "REF-1",
    "CreatedByUser": "CC0000000001",
    "CompanyCode": "1010",
    "DocumentDate": "2025-03-01",
    "PostingDate": "2025-03-01",
}
LINES = [("Item", "0000002400", "10.00", "S"), ("Item", "0000004000", "-10.00", "H")]


def request(
    header: dict[str, str] | None = None,
    lines: list[tuple[str, str, str, str]] | None = None,
    *,
    message_id: str | None = "MSG-1",
    entries: int = 1,
    root_ns: str = SFIN,
    extra: str = "",
) -> bytes:
    fields = HEADER if header is None else header
    head = "".join(f"<{k}>{v}</{k}>" for k, v in fields.items())
    items = ""
    for n, (kind, account, amount, side) in enumerate(LINES if lines is None else lines, start=1):
        key = "GLAccount" if kind == "Item" else "Debtor"
        items += (
            f"<{kind}><ReferenceDocumentItem>{n}</ReferenceDocumentItem><{key}>{account}</{key}>"
            f'<AmountInTransactionCurrency currencyCode="EUR">{amount}</AmountInTransactionCurrency>'
            f"<DebitCreditCode>{side}</DebitCreditCode></{kind}>"
        )
    ident = "" if message_id is None else f"<ID>{message_id}</ID>"
    sub = f"<MessageHeader>{ident}<CreationDateTime>2025-03-01T10:00:00Z</CreationDateTime></MessageHeader>"
    entry = (
        f"<JournalEntryCreateRequest>{sub}<JournalEntry>{head}{items}{extra}</JournalEntry></JournalEntryCreateRequest>"
    )
    return (
        f'<soapenv:Envelope xmlns:soapenv="{SOAP}" xmlns:sfin="{root_ns}"><soapenv:Body>'
        f"<sfin:JournalEntryBulkCreateRequest>{sub}{entry * entries}</sfin:JournalEntryBulkCreateRequest>"
        "</soapenv:Body></soapenv:Envelope>"
    ).encode()


@pytest.fixture
def http(sandbox) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sandbox.sap_url, auth=("O2C_COMM", "secret"), timeout=5) as client:
        yield client


def post(http: httpx.Client, body: bytes, path: str = SYNC) -> httpx.Response:
    return http.post(path, content=body, headers={"Content-Type": "text/xml"})


def confirmations(response: httpx.Response) -> list[dict[str, str | list[str]]]:
    root = ET.fromstring(response.content)
    out = []
    for element in root.iter("JournalEntryCreateConfirmation"):
        inner = element.find("JournalEntryCreateConfirmation")
        if inner is None:
            continue
        log = element.find("Log")
        assert log is not None
        out.append(
            {
                "document": inner.findtext("AccountingDocument") or "",
                "year": inner.findtext("FiscalYear") or "",
                "severity": log.findtext("MaximumLogItemSeverityCode") or "",
                "notes": [i.findtext("Note") or "" for i in log.iter("Item")],
            }
        )
    return out


def fault_string(response: httpx.Response) -> str:
    assert response.status_code == 500 and "xml" in response.headers["content-type"]
    return ET.fromstring(response.content).findtext(f".//{{{SOAP}}}Fault/faultstring") or ""


def cube(http: httpx.Client, **params: str) -> httpx.Response:
    return http.get(CUBE, params={"$format": "json", **params})


def test_a_balanced_entry_posts_and_the_cube_lists_it(http, sandbox):
    response = post(http, request())
    assert response.status_code == 200
    [confirmation] = confirmations(response)
    assert confirmation["severity"] == "1" and confirmation["year"] == "2025"
    assert re.fullmatch(r"\d{10}", str(confirmation["document"])) and confirmation["document"] != "0000000000"
    assert any("Document posted successfully" in n for n in confirmation["notes"])

    listed = cube(
        http, **{"$filter": "CompanyCode eq '1010' and DocumentReferenceID eq 'REF-1'", "$inlinecount": "allpages"}
    )
    body = listed.json()["d"]
    assert body["__count"] == "2"
    assert [r["AccountingDocumentItem"] for r in body["results"]] == ["001", "002"]
    assert body["results"][0]["PostingDate"] == "/Date(1740787200000)/"
    assert body["results"][1]["AmountInTransactionCurrency"] == "-10.00"


def test_business_refusals_answer_200_with_a_severity_3_log(http, sandbox):
    cases = [
        ({**HEADER, "CompanyCode": "9999"}, LINES, "Company code 9999 does not exist"),
        (HEADER, [("Item", "0000002400", "10.00", "S"), ("Item", "0000004000", "-9.00", "H")], "is not zero"),
        (
            HEADER,
            [("Item", "0000002400", "10.00", "S"), ("Item", "0000009999", "-10.00", "H")],
            "Account 0000009999 does not exist",
        ),
        (
            HEADER,
            [("DebtorItem", "4711", "10.00", "S"), ("Item", "0000004000", "-10.00", "H")],
            "Customer 4711 is not defined",
        ),
        (
            HEADER,
            [("Item", "0000001200", "10.00", "S"), ("Item", "0000004000", "-10.00", "H")],
            "cannot be posted to directly",
        ),
        (HEADER, [("Item", "0000002400", "10.00", "H"), ("Item", "0000004000", "-10.00", "S")], "does not match"),
        (HEADER, [("Item", "0000002400", "10.001", "S"), ("Item", "0000004000", "-10.001", "H")], "too many decimals"),
    ]
    for header, lines, words in cases:
        response = post(http, request(header, lines))
        assert response.status_code == 200
        [confirmation] = confirmations(response)
        assert confirmation["document"] == "0000000000" and confirmation["year"] == "0000"
        assert confirmation["severity"] == "3"
        assert any(words in n for n in confirmation["notes"]), (words, confirmation["notes"])
    sandbox.sap_set_period("1010", "2025-03")
    [closed] = confirmations(post(http, request()))
    assert closed["severity"] == "3" and any("Posting period 003 2025 is not open" in n for n in closed["notes"])
    assert sandbox.summary()["sap"]["postingPeriod"]["by_status"] == {"closed": 1}
    assert sandbox.records("sap", "item") == []


def test_schema_violations_are_soap_faults(http, sandbox):
    assert "not a SOAP 1.1 envelope" in fault_string(post(http, b"<Envelope/>"))
    assert "not well-formed" in fault_string(post(http, b"<soapenv:Envelope"))
    assert "unknown request" in fault_string(post(http, request(root_ns="urn:other")))
    missing = {k: v for k, v in HEADER.items() if k != "CompanyCode"}
    assert "CompanyCode is missing" in fault_string(post(http, request(missing)))
    too_long = {**HEADER, "DocumentReferenceID": "X" * 17}
    assert "longer than 16" in fault_string(post(http, request(too_long)))
    assert "unknown element Surprise" in fault_string(post(http, request(extra="<Surprise>1</Surprise>")))
    assert "must be S or H" in fault_string(post(http, request(lines=[("Item", "0000002400", "1.00", "X")])))
    assert "not a date" in fault_string(post(http, request({**HEADER, "PostingDate": "01.03.2025"})))
    doctype = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e "boom">]><x>&e;</x>'
    assert "not well-formed" in fault_string(post(http, doctype))
    assert sandbox.records("sap", "item") == []


def test_the_async_service_wants_a_message_id_and_rejects_a_reused_one(http, sandbox):
    assert "mandatory" in fault_string(post(http, request(message_id=None), BULK))
    assert "longer than 35" in fault_string(post(http, request(message_id="M" * 36), BULK))
    accepted = post(http, request(message_id="BULK-1", entries=2), BULK)
    assert accepted.status_code == 202 and accepted.content == b""
    assert len(sandbox.records("sap", "item")) == 4
    assert post(http, request(message_id="BULK-1", entries=2), BULK).status_code == 202
    assert len(sandbox.records("sap", "item")) == 4
    statuses = sorted(m["status"] for m in sandbox.sap_messages())
    assert statuses == ["processed", "rejected"]


def test_reversal_mirrors_the_original_once(http, sandbox):
    [original] = confirmations(post(http, request()))
    key = f"{original['document']}1010{original['year']}"
    reversal_header = {
        **HEADER,
        "DocumentReferenceID": "REF-1-R",
        "ReversalReason": "01",
        "ReversalReferenceDocument": key,
    }
    assert "carries no items" in fault_string(post(http, request(reversal_header)))
    [reversal] = confirmations(post(http, request(reversal_header, [])))
    assert reversal["severity"] == "1"
    rows = cube(http, **{"$filter": "DocumentReferenceID eq 'REF-1-R'"}).json()["d"]["results"]
    assert [(r["DebitCreditCode"], r["AmountInTransactionCurrency"]) for r in rows] == [("H", "-10.00"), ("S", "10.00")]
    assert all(r["IsReversal"] and r["ReverseDocument"] == original["document"] for r in rows)
    [again] = confirmations(post(http, request(reversal_header, [])))
    assert again["severity"] == "3" and any("already been reversed" in n for n in again["notes"])
    unknown = {**reversal_header, "ReversalReferenceDocument": "012345678910102025"}
    [missing] = confirmations(post(http, request(unknown, [])))
    assert any("does not exist" in n for n in missing["notes"])


def test_odata_paging_filters_and_errors(http, sandbox):
    for n in range(3):
        post(http, request({**HEADER, "DocumentReferenceID": f"P-{n}", "PostingDate": f"2025-04-0{n + 1}"}))
    march = "CompanyCode eq '1010' and PostingDate ge datetime'2025-04-02T00:00:00' and PostingDate lt datetime'2025-04-04T00:00:00'"
    page = cube(http, **{"$filter": march, "$top": "3", "$skip": "1", "$inlinecount": "allpages"}).json()["d"]
    assert page["__count"] == "4"
    assert [(r["DocumentReferenceID"], r["AccountingDocumentItem"]) for r in page["results"]] == [
        ("P-1", "002"),
        ("P-2", "001"),
        ("P-2", "002"),
    ]
    assert cube(http, **{"$filter": "CompanyCode eq '1710'"}).json() == {"d": {"results": []}}
    for bad, words in [
        ({"$filter": "Nonsense eq 'x'"}, "not found"),
        ({"$filter": "CompanyCode eq '1010' or CompanyCode eq '1710'"}, "Only 'and'"),
        ({"$filter": "CompanyCode sw '1010'"}, "not supported"),
        ({"$top": "-1"}, "non-negative"),
        ({"$orderby": "PostingDate"}, "not supported"),
        ({"$search": "x"}, "not supported"),
    ]:
        response = cube(http, **bad)
        assert response.status_code == 400, bad
        assert words in response.json()["error"]["message"]["value"]
    assert http.get(CUBE, params={"$format": "xml"}).status_code == 400


def test_basic_auth_is_required(sandbox):
    for auth in (None, ("O2C_COMM", "invalid-secret")):
        response = httpx.post(sandbox.sap_url + SYNC, content=request(), auth=auth)
        assert response.status_code == 401 and "Basic" in response.headers["www-authenticate"]
    assert sandbox.records("sap", "item") == []


def test_injected_faults_and_lost_answers(http, sandbox):
    sandbox.fault("sap", "5xx", times=1)
    assert "injected" in fault_string(post(http, request()))
    sandbox.fault("sap", "commit_then_timeout", path_contains="journalentry", times=1, hold_seconds=2)
    with pytest.raises(httpx.ReadTimeout):
        http.post(SYNC, content=request(), headers={"Content-Type": "text/xml"}, timeout=0.5)
    assert len(sandbox.records("sap", "item")) == 2  # posted, the answer lost


def test_business_partners_need_the_csrf_token(http, sandbox):
    partner = {
        "BusinessPartnerCategory": "2",
        "OrganizationBPName1": "Acme GmbH",
        "BusinessPartnerIDByExtSystem": "cus_1",
        "to_BusinessPartnerRole": {"results": [{"BusinessPartnerRole": "FLCU00"}, {"BusinessPartnerRole": "FLCU01"}]},
        "to_Customer": {"to_CustomerCompany": {"results": [{"CompanyCode": "1010"}]}},
    }
    refused = http.post(BP + "/A_BusinessPartner", json=partner)
    assert refused.status_code == 403 and refused.headers["x-csrf-token"] == "Required"
    fetched = http.get(BP, headers={"x-csrf-token": "Fetch"})
    token = fetched.headers["x-csrf-token"]
    assert token and "SAP_SESSIONID_SBX_100" in http.cookies
    with httpx.Client(base_url=sandbox.sap_url, auth=("O2C_COMM", "secret")) as stranger:
        assert (
            stranger.post(BP + "/A_BusinessPartner", json=partner, headers={"x-csrf-token": token}).status_code == 403
        )
    bad = http.post(BP + "/A_BusinessPartner", json={**partner, "Colour": "red"}, headers={"x-csrf-token": token})
    assert bad.status_code == 400 and "Colour" in bad.json()["error"]["message"]["value"]
    created = http.post(BP + "/A_BusinessPartner", json=partner, headers={"x-csrf-token": token})
    assert created.status_code == 201
    number = created.json()["d"]["Customer"]
    found = http.get(
        BP + "/A_BusinessPartner",
        params={
            "$filter": "BusinessPartnerIDByExtSystem eq 'cus_1'",
            "$expand": "to_Customer/to_CustomerCompany",
            "$format": "json",
        },
    ).json()["d"]["results"]
    assert [p["Customer"] for p in found] == [number]
    assert found[0]["to_Customer"]["to_CustomerCompany"]["results"][0]["CompanyCode"] == "1010"
    # The customer can now be posted to in 1010, not in 1710 until extended.
    debtor = [("DebtorItem", number, "10.00", "S"), ("Item", "0000004000", "-10.00", "H")]
    assert confirmations(post(http, request(lines=debtor)))[0]["severity"] == "1"
    us = {**HEADER, "CompanyCode": "1710"}
    debtor_usd = [("DebtorItem", number, "10.00", "S"), ("Item", "0000004000", "-10.00", "H")]
    notes = confirmations(post(http, request(us, debtor_usd)))[0]["notes"]
    assert any(f"Customer {number} is not defined in company code 1710" in n for n in notes)
    assert any("rate type M" in n for n in notes)  # EUR items in a USD company code
    extended = http.post(
        BP + "/A_CustomerCompany", json={"Customer": number, "CompanyCode": "1710"}, headers={"x-csrf-token": token}
    )
    assert extended.status_code == 201
    twice = http.post(
        BP + "/A_CustomerCompany", json={"Customer": number, "CompanyCode": "1710"}, headers={"x-csrf-token": token}
    )
    assert twice.status_code == 400


def test_control_plane_adds_company_codes_and_accounts(http, sandbox):
    sandbox.sap_company_code("3010", "JPY", "Japan")
    sandbox.sap_gl_account("0000070000")
    header = {**HEADER, "CompanyCode": "3010"}
    lines = [("Item", "0000070000", "1000", "S"), ("Item", "0000004000", "-1000", "H")]
    body = request(header, lines).replace(b'currencyCode="EUR"', b'currencyCode="JPY"')
    assert confirmations(post(http, body))[0]["severity"] == "1"
    with pytest.raises(httpx.HTTPStatusError):
        sandbox.sap_company_code("30100", "JPY")
    sandbox.reset()
    assert confirmations(post(http, body))[0]["severity"] == "3"  # what the control plane added is gone
