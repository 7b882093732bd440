"""The SOAP 1.1 envelope of the journal entry services: reading a request against the
service's schema (what a schema violation is answers a SOAP Fault, HTTP 500) and writing
the confirmation."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring
from starlette.responses import Response

from sandbox.sap import SFIN, SOAP_ENV

# Header elements of JournalEntry the stand-in knows, with their maximum lengths.
HEADER_FIELDS = {
    "OriginalReferenceDocumentType": 5,
    "OriginalReferenceDocument": 20,
    "OriginalReferenceDocumentLogicalSystem": 10,
    "BusinessTransactionType": 4,
    "AccountingDocumentType": 2,
    "DocumentReferenceID": 16,
    "DocumentHeaderText": 25,
    "CreatedByUser": 12,
    "CompanyCode": 4,
    "DocumentDate": 10,
    "PostingDate": 10,
    "TaxDeterminationDate": 10,
    "ReversalReason": 2,
    "ReversalReferenceDocument": 18,
}
REQUIRED_HEADER = (
    "OriginalReferenceDocumentType",
    "BusinessTransactionType",
    "AccountingDocumentType",
    "CreatedByUser",
    "CompanyCode",
    "DocumentDate",
    "PostingDate",
)
ITEM_FIELDS = {"ReferenceDocumentItem": 10, "GLAccount": 10, "DocumentItemText": 50, "AssignmentReference": 18}
DEBTOR_FIELDS = {"ReferenceDocumentItem": 10, "Debtor": 10, "DocumentItemText": 50, "AssignmentReference": 18}
MESSAGE_ID_MAX = 35


class SchemaError(Exception):
    """The request does not meet the service's schema: a SOAP Fault."""


@dataclass
class Line:
    kind: str  # "Item" or "DebtorItem"
    account: str  # the GL account of an Item, the customer of a DebtorItem
    amount: Decimal
    currency: str
    debit_credit: str
    text: str = ""
    assignment: str = ""
    reference_item: str = ""


@dataclass
class EntryRequest:
    message_id: str
    header: dict[str, str]
    lines: list[Line] = field(default_factory=list)

    @property
    def company_code(self) -> str:
        return self.header["CompanyCode"]

    @property
    def posting_date(self) -> date:
        return date.fromisoformat(self.header["PostingDate"])


@dataclass
class BulkRequest:
    message_id: str
    entries: list[EntryRequest]


def _text(element: ET.Element, what: str, limit: int) -> str:
    if len(element):
        raise SchemaError(f"{what} is a simple element, it has children")
    value = (element.text or "").strip()
    if len(value) > limit:
        raise SchemaError(f"{what} '{value}' is longer than {limit} characters")
    return value


def _message_id(parent: ET.Element, what: str, *, required: bool) -> str:
    header = parent.find("MessageHeader")
    if header is None:
        raise SchemaError(f"{what}: MessageHeader is missing")
    for child in header:
        if child.tag not in ("ID", "UUID", "ReferenceID", "CreationDateTime"):
            raise SchemaError(f"{what}: unknown element MessageHeader/{child.tag}")
    if header.find("CreationDateTime") is None:
        raise SchemaError(f"{what}: MessageHeader/CreationDateTime is missing")
    found = header.find("ID")
    value = "" if found is None else _text(found, f"{what}: MessageHeader/ID", MESSAGE_ID_MAX)
    if required and not value:
        raise SchemaError(f"{what}: MessageHeader/ID is mandatory for the asynchronous service")
    return value


def _line(element: ET.Element, index: int) -> Line:
    kind = element.tag
    fields = ITEM_FIELDS if kind == "Item" else DEBTOR_FIELDS
    where = f"JournalEntry/{kind}[{index}]"
    values: dict[str, str] = {}
    amount: Decimal | None = None
    currency = ""
    debit_credit = ""
    for child in element:
        if child.tag == "AmountInTransactionCurrency":
            currency = child.get("currencyCode") or ""
            if not currency:
                raise SchemaError(f"{where}/AmountInTransactionCurrency needs the attribute currencyCode")
            try:
                amount = Decimal(_text(child, f"{where}/AmountInTransactionCurrency", 30))
            except InvalidOperation:
                raise SchemaError(f"{where}/AmountInTransactionCurrency is not a decimal") from None
        elif child.tag == "DebitCreditCode":
            debit_credit = _text(child, f"{where}/DebitCreditCode", 1)
            if debit_credit not in ("S", "H"):
                raise SchemaError(f"{where}/DebitCreditCode must be S or H, not '{debit_credit}'")
        elif child.tag in fields:
            values[child.tag] = _text(child, f"{where}/{child.tag}", fields[child.tag])
        elif child.tag in ("AccountAssignment", "Tax"):
            continue  # accepted, not modelled
        else:
            raise SchemaError(f"{where}: unknown element {child.tag}")
    account_field = "GLAccount" if kind == "Item" else "Debtor"
    if not values.get(account_field):
        raise SchemaError(f"{where}/{account_field} is missing")
    if amount is None:
        raise SchemaError(f"{where}/AmountInTransactionCurrency is missing")
    return Line(
        kind=kind,
        account=values[account_field],
        amount=amount,
        currency=currency,
        debit_credit=debit_credit,
        text=values.get("DocumentItemText", ""),
        assignment=values.get("AssignmentReference", ""),
        reference_item=values.get("ReferenceDocumentItem", ""),
    )


def _entry(element: ET.Element, index: int, *, async_service: bool) -> EntryRequest:
    what = f"JournalEntryCreateRequest[{index}]"
    message_id = _message_id(element, what, required=async_service)
    journal = element.find("JournalEntry")
    if journal is None:
        raise SchemaError(f"{what}: JournalEntry is missing")
    for child in element:
        if child.tag not in ("MessageHeader", "JournalEntry"):
            raise SchemaError(f"{what}: unknown element {child.tag}")
    header: dict[str, str] = {}
    lines: list[Line] = []
    for child in journal:
        if child.tag in HEADER_FIELDS:
            header[child.tag] = _text(child, f"JournalEntry/{child.tag}", HEADER_FIELDS[child.tag])
        elif child.tag in ("Item", "DebtorItem"):
            lines.append(_line(child, len(lines) + 1))
        elif child.tag in ("CreditorItem", "ProductTaxItem"):
            raise SchemaError(f"JournalEntry/{child.tag} is not supported by this stand-in")
        else:
            raise SchemaError(f"JournalEntry: unknown element {child.tag}")
    for name in REQUIRED_HEADER:
        if not header.get(name):
            raise SchemaError(f"JournalEntry/{name} is missing")
    for name in ("DocumentDate", "PostingDate", "TaxDeterminationDate"):
        if name in header:
            try:
                date.fromisoformat(header[name])
            except ValueError:
                raise SchemaError(f"JournalEntry/{name} '{header[name]}' is not a date (YYYY-MM-DD)") from None
    reversal = bool(header.get("ReversalReferenceDocument"))
    if reversal and lines:
        raise SchemaError("a reversal (ReversalReferenceDocument) carries no items")
    if reversal and not header.get("ReversalReason"):
        raise SchemaError("JournalEntry/ReversalReason is missing for a reversal")
    if reversal and len(header["ReversalReferenceDocument"]) != 18:
        raise SchemaError("ReversalReferenceDocument is AccountingDocument(10) + CompanyCode(4) + FiscalYear(4)")
    if not reversal and not lines:
        raise SchemaError("JournalEntry needs items")
    return EntryRequest(message_id=message_id, header=header, lines=lines)


def read_request(raw: bytes, *, async_service: bool = False) -> BulkRequest:
    try:
        root = fromstring(raw, forbid_dtd=True)
    except (ET.ParseError, DefusedXmlException) as exc:
        raise SchemaError(f"the request is not well-formed XML: {exc}") from None
    if root.tag != f"{{{SOAP_ENV}}}Envelope":
        raise SchemaError(f"not a SOAP 1.1 envelope: root element {root.tag}")
    body = root.find(f"{{{SOAP_ENV}}}Body")
    if body is None or len(body) != 1:
        raise SchemaError("the SOAP Body must hold exactly one request")
    request = body[0]
    if request.tag != f"{{{SFIN}}}JournalEntryBulkCreateRequest":
        raise SchemaError(f"unknown request {request.tag}; expected {{{SFIN}}}JournalEntryBulkCreateRequest")
    message_id = _message_id(request, "JournalEntryBulkCreateRequest", required=async_service)
    entries: list[EntryRequest] = []
    for child in request:
        if child.tag == "JournalEntryCreateRequest":
            entries.append(_entry(child, len(entries) + 1, async_service=async_service))
        elif child.tag != "MessageHeader":
            raise SchemaError(f"JournalEntryBulkCreateRequest: unknown element {child.tag}")
    if not entries:
        raise SchemaError("JournalEntryBulkCreateRequest holds no JournalEntryCreateRequest")
    return BulkRequest(message_id=message_id, entries=entries)


# -- answers ------------------------------------------------------------------------------


def _envelope(content: ET.Element) -> bytes:
    ET.register_namespace("soap-env", SOAP_ENV)
    ET.register_namespace("n0", SFIN)
    envelope = ET.Element(f"{{{SOAP_ENV}}}Envelope")
    ET.SubElement(envelope, f"{{{SOAP_ENV}}}Header")
    ET.SubElement(envelope, f"{{{SOAP_ENV}}}Body").append(content)
    written: bytes = ET.tostring(envelope, encoding="utf-8", xml_declaration=True)
    return written


def xml_response(status: int, content: bytes) -> Response:
    return Response(content=content, status_code=status, media_type="text/xml; charset=utf-8")


def fault(message: str, code: str = "soap-env:Client", status: int = 500) -> Response:
    element = ET.Element(f"{{{SOAP_ENV}}}Fault")
    ET.SubElement(element, "faultcode").text = code
    ET.SubElement(element, "faultstring", {"xml:lang": "en"}).text = message
    return xml_response(status, _envelope(element))


@dataclass
class LogItem:
    type_id: str
    severity: str
    note: str


@dataclass
class Confirmation:
    reference_id: str
    accounting_document: str
    company_code: str
    fiscal_year: str
    log: list[LogItem]

    @property
    def max_severity(self) -> str:
        return max((item.severity for item in self.log), default="1")


def _log(parent: ET.Element, items: list[LogItem]) -> None:
    log = ET.SubElement(parent, "Log")
    ET.SubElement(log, "MaximumLogItemSeverityCode").text = max((i.severity for i in items), default="1")
    for item in items:
        element = ET.SubElement(log, "Item")
        ET.SubElement(element, "TypeID").text = item.type_id
        ET.SubElement(element, "SeverityCode").text = item.severity
        ET.SubElement(element, "Note").text = item.note


def confirmation(message_id: str, created: str, results: list[Confirmation]) -> bytes:
    root = ET.Element(f"{{{SFIN}}}JournalEntryBulkCreateConfirmation")
    header = ET.SubElement(root, "MessageHeader")
    ET.SubElement(header, "UUID").text = f"sandbox-{message_id or 'message'}"
    ET.SubElement(header, "ReferenceID").text = message_id
    ET.SubElement(header, "CreationDateTime").text = created
    ET.SubElement(header, "SenderBusinessSystemID").text = "SANDBOX_S4HC"
    for result in results:
        element = ET.SubElement(root, "JournalEntryCreateConfirmation")
        sub = ET.SubElement(element, "MessageHeader")
        ET.SubElement(sub, "ReferenceID").text = result.reference_id
        ET.SubElement(sub, "CreationDateTime").text = created
        inner = ET.SubElement(element, "JournalEntryCreateConfirmation")
        ET.SubElement(inner, "AccountingDocument").text = result.accounting_document
        ET.SubElement(inner, "CompanyCode").text = result.company_code
        ET.SubElement(inner, "FiscalYear").text = result.fiscal_year
        _log(element, result.log)
    _log(root, [LogItem("", max((r.max_severity for r in results), default="1"), "Bulk request processed")])
    return _envelope(root)
