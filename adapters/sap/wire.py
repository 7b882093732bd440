"""The SOAP 1.1 messages of the journal entry services (SAP_COM_0002): the request o2c
builds for an entry and the confirmation SAP answers.

SAP has no upsert, so an entry is known by a reference derived from its external id:
DocumentReferenceID (16 characters, BKPF-XBLNR) and OriginalReferenceDocument (20,
the AWKEY o2c sends) both carry "O2C" and 13 characters of the id's SHA-256 in base32.
The keys SAP has no field for ride in the item texts (DocumentItemText, 50 characters):
the first items carry `E:<external id>`, `I:<invoice id>` and `C:<contract id>`, in that
order and only those the entry has; the other items carry their line's memo. The entry's
memo goes to DocumentHeaderText (25 characters, cut to fit)."""

from __future__ import annotations

import base64
import hashlib
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import date

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from adapters.errors import IntegrationBug
from adapters.sap.errors import SYSTEM
from canonical.journal import JournalEntry

SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
SFIN = "http://sap.com/xi/SAPSCORE/SFIN"
SOAP_ACTION = (
    "http://sap.com/xi/SAPSCORE/SFIN/JournalEntryCreateRequestConfirmation_In/"
    "JournalEntryCreateRequestConfirmation_InRequest"
)
SYNC_PATH = "/sap/bc/srt/scs_ext/sap/journalentrycreaterequestconfi"
# unverified: the asynchronous service's path on a tenant (its binding is generated per
# arrangement; this is the name the sync one's pattern gives).
BULK_PATH = "/sap/bc/srt/scs_ext/sap/journalentrybulkcreationrequest"
TEXT_LIMIT = 50
HEADER_TEXT_LIMIT = 25
MESSAGE_ID_LIMIT = 35
TAGS = ("E:", "I:", "C:")  # external id, invoice, contract
# SAP's reversal reason 01: reversal in current period (standard customising).
REVERSAL_REASON = "01"
# A G/L account document: the document type of manual postings (standard customising).
DOCUMENT_TYPE = "SA"

ET.register_namespace("soapenv", SOAP_ENV)
ET.register_namespace("sfin", SFIN)


def document_reference(external_id: str) -> str:
    digest = base64.b32encode(hashlib.sha256(external_id.encode()).digest()).decode()
    return "O2C" + digest[:13]


def message_id(reference: str) -> str:
    return f"O2C-{reference}"


def document_key(accounting_document: str, company_code: str, fiscal_year: str) -> str:
    """The 18 characters SAP names a posted document by (and a reversal refers to)."""
    return f"{accounting_document}{company_code}{fiscal_year}"


def item_tags(entry: JournalEntry) -> list[str]:
    """The item texts that carry the entry's keys, in item order."""
    tags = [
        f"{tag}{value}"
        for tag, value in zip(TAGS, (entry.external_id, entry.invoice_id, entry.contract_id), strict=True)
        if value
    ]
    for text in tags:
        if len(text) > TEXT_LIMIT:
            raise IntegrationBug(
                SYSTEM,
                f"{text[2:]!r} is longer than the {TEXT_LIMIT - 2} characters an SAP item text keeps for it "
                f"(entry {entry.external_id})",
            )
    if len(tags) > len(entry.lines):
        raise IntegrationBug(
            SYSTEM,
            f"entry {entry.external_id} has {len(entry.lines)} lines for {len(tags)} keys; SAP keeps a key per item",
        )
    return tags


@dataclass(frozen=True)
class WireLine:
    """A line as SAP takes it: a G/L item, or a debtor item naming the SAP customer."""

    gl_account: str
    debtor: str
    amount: str  # signed: a credit is negative
    currency: str
    debit: bool
    text: str


def _add(parent: ET.Element, tag: str, text: str) -> ET.Element:
    element = ET.SubElement(parent, tag)
    element.text = text
    return element


@dataclass(frozen=True)
class Header:
    reference: str
    company_code: str
    posting_date: date
    header_text: str
    user: str
    logical_system: str
    reversal_of: str = ""  # the 18-character key of the document a reversal reverses


def entry_request(header: Header, lines: list[WireLine], created: str) -> ET.Element:
    request = ET.Element("JournalEntryCreateRequest")
    message = ET.SubElement(request, "MessageHeader")
    _add(message, "ID", message_id(header.reference))
    _add(message, "CreationDateTime", created)
    journal = ET.SubElement(request, "JournalEntry")
    _add(journal, "OriginalReferenceDocumentType", "BKPFF")
    _add(journal, "OriginalReferenceDocument", header.reference)
    _add(journal, "OriginalReferenceDocumentLogicalSystem", header.logical_system)
    _add(journal, "BusinessTransactionType", "RFBU")
    _add(journal, "AccountingDocumentType", DOCUMENT_TYPE)
    _add(journal, "DocumentReferenceID", header.reference)
    _add(journal, "DocumentHeaderText", header.header_text[:HEADER_TEXT_LIMIT])
    _add(journal, "CreatedByUser", header.user)
    _add(journal, "CompanyCode", header.company_code)
    _add(journal, "DocumentDate", header.posting_date.isoformat())
    _add(journal, "PostingDate", header.posting_date.isoformat())
    if header.reversal_of:
        _add(journal, "ReversalReason", REVERSAL_REASON)
        _add(journal, "ReversalReferenceDocument", header.reversal_of)
    for number, line in enumerate(lines, start=1):
        item = ET.SubElement(journal, "DebtorItem" if line.debtor else "Item")
        _add(item, "ReferenceDocumentItem", str(number))
        if line.debtor:
            _add(item, "Debtor", line.debtor)
        else:
            _add(item, "GLAccount", line.gl_account)
        _add(item, "AmountInTransactionCurrency", line.amount).set("currencyCode", line.currency)
        _add(item, "DebitCreditCode", "S" if line.debit else "H")
        if line.text:
            _add(item, "DocumentItemText", line.text[:TEXT_LIMIT])
    return request


def envelope(requests: list[ET.Element], bulk_id: str, created: str) -> bytes:
    root = ET.Element(f"{{{SOAP_ENV}}}Envelope")
    ET.SubElement(root, f"{{{SOAP_ENV}}}Header")
    body = ET.SubElement(root, f"{{{SOAP_ENV}}}Body")
    bulk = ET.SubElement(body, f"{{{SFIN}}}JournalEntryBulkCreateRequest")
    message = ET.SubElement(bulk, "MessageHeader")
    _add(message, "ID", bulk_id)
    _add(message, "CreationDateTime", created)
    bulk.extend(requests)
    content: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return content


# -- the confirmation ------------------------------------------------------------------------


@dataclass(frozen=True)
class Confirmation:
    accounting_document: str
    company_code: str
    fiscal_year: str
    max_severity: str
    notes: list[tuple[str, str]]  # (TypeID, Note) of the items of severity 3

    @property
    def posted(self) -> bool:
        return self.max_severity != "3" and self.accounting_document.strip("0") != ""


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _child(element: ET.Element, name: str) -> ET.Element | None:
    return next((c for c in element if _local(c.tag) == name), None)


def _text(element: ET.Element | None, name: str) -> str:
    found = None if element is None else _child(element, name)
    return "" if found is None else (found.text or "").strip()


def read_confirmations(content: bytes) -> list[Confirmation]:
    try:
        root = fromstring(content, forbid_dtd=True)
    except (ET.ParseError, DefusedXmlException) as exc:
        raise IntegrationBug(SYSTEM, f"the journal entry service answered no readable XML: {exc}") from exc
    bulk = next((e for e in root.iter() if _local(e.tag) == "JournalEntryBulkCreateConfirmation"), None)
    if bulk is None:
        raise IntegrationBug(SYSTEM, "the journal entry service answered without JournalEntryBulkCreateConfirmation")
    out = []
    for element in bulk:
        if _local(element.tag) != "JournalEntryCreateConfirmation":
            continue
        inner = _child(element, "JournalEntryCreateConfirmation")
        log = _child(element, "Log")
        notes = []
        for item in [] if log is None else [i for i in log if _local(i.tag) == "Item"]:
            if _text(item, "SeverityCode") == "3":
                notes.append((_text(item, "TypeID"), _text(item, "Note")))
        out.append(
            Confirmation(
                accounting_document=_text(inner, "AccountingDocument"),
                company_code=_text(inner, "CompanyCode"),
                fiscal_year=_text(inner, "FiscalYear"),
                max_severity=_text(log, "MaximumLogItemSeverityCode") or "1",
                notes=notes,
            )
        )
    return out
