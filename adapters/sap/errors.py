"""SAP's refusals, classified once for every SAP module.

The journal entry service answers HTTP 200 to a refused posting: the refusal is in the
confirmation's log (severity 3), whose Notes say why; only their words and message numbers
tell a closed period from missing master data (message numbers unverified but for F5 102,
so the words decide). Transport trouble, a SOAP Fault and 5xx are transient; 401/403 mean
the communication user or its arrangement is wrong."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import httpx
from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from adapters.errors import AdapterError, Answer, ErrorKind, ErrorTable, Rule
from adapters.http import read_json

SYSTEM = "sap"

# The code a closed period is reported with, the same as NetSuite's, so the exception
# queue reads both alike.
PERIOD_CLOSED = "PERIOD_CLOSED"
CUSTOMER_NOT_IN_COMPANY_CODE = "CUSTOMER_NOT_IN_COMPANY_CODE"
GL_ACCOUNT_UNKNOWN = "GL_ACCOUNT_UNKNOWN"
COMPANY_CODE_UNKNOWN = "COMPANY_CODE_UNKNOWN"
UNBALANCED = "UNBALANCED"

ERRORS = ErrorTable(
    SYSTEM,
    credentials=Rule(ErrorKind.BUG, "SAP refused o2c's communication user or its arrangement: {message}"),
    refused=Rule(ErrorKind.BUSINESS, "SAP refused {what}: {message}"),
    business={
        PERIOD_CLOSED: Rule(
            ErrorKind.BUSINESS,
            "The ERP accounting period{when} is closed: open it in SAP (Manage Posting Periods) or move the "
            "posting date. ({message})",
            fixable=True,
            code=PERIOD_CLOSED,
        ),
        CUSTOMER_NOT_IN_COMPANY_CODE: Rule(
            ErrorKind.BUSINESS,
            "SAP refused {what}: the customer is not set up in the company code; extend the business partner "
            "to it. ({message})",
            fixable=True,
            code=CUSTOMER_NOT_IN_COMPANY_CODE,
        ),
        GL_ACCOUNT_UNKNOWN: Rule(
            ErrorKind.BUSINESS,
            "SAP refused {what}: a G/L account is not created in the company code; create it or correct o2c's "
            "G/L mapping. ({message})",
            fixable=True,
            code=GL_ACCOUNT_UNKNOWN,
        ),
        COMPANY_CODE_UNKNOWN: Rule(
            ErrorKind.BUSINESS,
            "SAP refused {what}: the company code does not exist; correct the legal entity's company code. ({message})",
            fixable=True,
            code=COMPANY_CODE_UNKNOWN,
        ),
        UNBALANCED: Rule(ErrorKind.BUSINESS, "SAP refused {what}: {message}", code=UNBALANCED),
    },
)


def reason_of(note: str) -> str:
    """What a log Note is about, by its words (SAP's message texts in English)."""
    text = note.lower()
    if "period" in text and ("not open" in text or "closed" in text):
        return PERIOD_CLOSED
    if "customer" in text and "not defined in company code" in text:
        return CUSTOMER_NOT_IN_COMPANY_CODE
    if "account" in text and "does not exist in company code" in text:
        return GL_ACCOUNT_UNKNOWN
    if "company code" in text and "does not exist" in text:
        return COMPANY_CODE_UNKNOWN
    if "balance" in text and "not zero" in text:
        return UNBALANCED
    return ""


def refusal(notes: list[tuple[str, str]], *, what: str, when: str = "") -> AdapterError:
    """A posting refused in the log: (TypeID, Note) of its severity-3 items. The generic
    "Error in document" note only says that the others follow."""
    specific = [(t, n) for t, n in notes if not n.lower().startswith("error in document")] or notes
    message = "; ".join(f"{n} [{t}]" if t else n for t, n in specific) or "the posting was refused without a reason"
    reason = next((r for r in (reason_of(n) for _, n in specific) if r), "")
    # A refusal o2c recognises is reported by its reason (PERIOD_CLOSED as NetSuite's is),
    # any other by SAP's message number; the numbers stay in the message.
    code = reason or (specific[0][0] if specific else "")
    return ERRORS.classify(Answer(200, code, message, reason=reason), what=what, when=when)


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def read_error(response: httpx.Response) -> Answer:
    """An HTTP error answer: a SOAP Fault (faultstring), an OData error
    (`{"error": {"code", "message": {"value"}}}`) or Gateway's bare text (403 CSRF)."""
    status = response.status_code
    kind = response.headers.get("content-type", "")
    if "xml" in kind and response.content:
        try:
            root = fromstring(response.content, forbid_dtd=True)
        except (ET.ParseError, DefusedXmlException):
            return Answer(status, "", response.text[:300] or f"HTTP {status}")
        text = next((e.text or "" for e in root.iter() if _local(e.tag) == "faultstring"), "")
        code = next((e.text or "" for e in root.iter() if _local(e.tag) == "faultcode"), "")
        return Answer(status, code, text or f"HTTP {status}")
    body = read_json(response)
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        message = error.get("message")
        text = message.get("value", "") if isinstance(message, dict) else str(message or "")
        return Answer(status, str(error.get("code") or ""), text or f"HTTP {status}", reason=reason_of(text))
    return Answer(status, "", (response.text or "")[:300] or f"HTTP {status}")


def classify(response: httpx.Response, *, what: str = "the journal entry", when: str = "") -> AdapterError:
    return ERRORS.classify(read_error(response), what=what, when=when)
