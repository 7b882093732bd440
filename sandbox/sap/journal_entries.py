"""Posting journal entries: the business checks of SAP's posting (company code, G/L
accounts, debtors in the company code, open period, balance per currency), document
numbers, reversal, and the items the OData cube reads.

Each posted item is a document of type `item` (id `CompanyCode:FiscalYear:Document:Item`)
holding the cube's fields, indexed by company code, posting date and a number that orders
items by AccountingDocument and AccountingDocumentItem, so the OData listing pages in SQL."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sandbox.currency import MINOR_UNITS
from sandbox.sap import SYSTEM
from sandbox.sap.business_partners import customer_in_company_code
from sandbox.sap.master import (
    RECEIVABLE_RECONCILIATION,
    company_code,
    gl_account_exists,
    period_closed,
)
from sandbox.sap.soap import Confirmation, EntryRequest, LogItem
from sandbox.store import Tx

ITEM = "item"
FIRST_DOCUMENT = 100000000


class Refused(Exception):
    """The posting is refused: the log items SAP writes (severity 3)."""

    def __init__(self, notes: list[LogItem]):
        self.notes = notes
        super().__init__("; ".join(n.note for n in notes))


def _error(type_id: str, note: str) -> LogItem:
    return LogItem(type_id, "3", note)


def edm_date(day: str) -> str:
    """Edm.DateTime as SAP's OData V2 JSON writes it: /Date(<ms since epoch>)/."""
    moment = datetime.fromisoformat(day).replace(tzinfo=UTC)
    return f"/Date({int(moment.timestamp() * 1000)})/"


def _next_document(tx: Tx, company: str) -> str:
    state = tx.get(SYSTEM, "numberRange", company) or {"next": FIRST_DOCUMENT}
    number = int(state["next"])
    tx.put(SYSTEM, "numberRange", company, {"next": number + 1})
    return f"{number:010d}"


def document_items(tx: Tx, company: str, fiscal_year: str, document: str) -> list[dict[str, Any]]:
    rows = tx.page(
        SYSTEM,
        ITEM,
        [("scope", "=", company), ("data.FiscalYear", "=", fiscal_year), ("data.AccountingDocument", "=", document)],
        order_by=(("num", False),),
    )
    return [row.data for row in rows]


def _common_checks(tx: Tx, request: EntryRequest) -> tuple[dict[str, Any], list[LogItem]]:
    errors: list[LogItem] = []
    company = company_code(tx, request.company_code)
    if company is None:
        raise Refused([_error("165(F5)", f"Company code {request.company_code} does not exist")])
    posting = request.posting_date
    if period_closed(tx, request.company_code, posting.strftime("%Y-%m")):
        errors.append(
            _error(
                "201(F5)",
                f"Posting period {posting.month:03d} {posting.year} is not open for company code "
                f"{request.company_code}",
            )
        )
    return company, errors


def _check_lines(tx: Tx, request: EntryRequest, company: dict[str, Any], errors: list[LogItem]) -> None:
    balances: dict[str, Decimal] = {}
    for line in request.lines:
        if (line.debit_credit == "S" and line.amount < 0) or (line.debit_credit == "H" and line.amount > 0):
            errors.append(_error("716(F5)", f"Sign of amount {line.amount} does not match debit/credit code"))
        if line.amount == 0:
            errors.append(_error("714(F5)", "Amounts of zero are not allowed in a line item"))
        exponent = line.amount.as_tuple().exponent
        if line.currency not in MINOR_UNITS:
            errors.append(_error("140(F5)", f"Currency {line.currency} is not defined"))
        elif isinstance(exponent, int) and -exponent > MINOR_UNITS[line.currency]:
            errors.append(_error("156(F5)", f"Amount {line.amount} has too many decimals for {line.currency}"))
        if line.currency != company["Currency"]:
            errors.append(
                _error(
                    "105(SG)",
                    f"Enter rate {line.currency} / {company['Currency']} rate type M in the system settings",
                )
            )
        balances[line.currency] = balances.get(line.currency, Decimal(0)) + line.amount
        if line.kind == "Item":
            if not gl_account_exists(tx, line.account):
                errors.append(
                    _error("271(F5)", f"Account {line.account} does not exist in company code {request.company_code}")
                )
            elif line.account == RECEIVABLE_RECONCILIATION:
                errors.append(
                    _error(
                        "283(F5)",
                        f"Reconciliation account {line.account} cannot be posted to directly; "
                        "post to the customer instead",
                    )
                )
        elif customer_in_company_code(tx, line.account, request.company_code) is None:
            errors.append(
                _error("102(F5)", f"Customer {line.account} is not defined in company code {request.company_code}")
            )
    for currency, balance in balances.items():
        if balance != 0:
            errors.append(_error("702(F5)", f"Balance in transaction currency {currency} is not zero: {balance}"))


def _items_of(request: EntryRequest, company: dict[str, Any], document: str) -> list[dict[str, Any]]:
    header = request.header
    fiscal_year = str(request.posting_date.year)
    items = []
    for index, line in enumerate(request.lines, start=1):
        customer = line.account if line.kind == "DebtorItem" else ""
        items.append(
            {
                "CompanyCode": request.company_code,
                "FiscalYear": fiscal_year,
                "AccountingDocument": document,
                "AccountingDocumentItem": f"{index:03d}",
                "FiscalPeriod": f"{request.posting_date.month:03d}",
                "PostingDate": header["PostingDate"],
                "DocumentDate": header["DocumentDate"],
                "AccountingDocumentType": header["AccountingDocumentType"],
                "DocumentReferenceID": header.get("DocumentReferenceID", ""),
                "OriginalReferenceDocument": header.get("OriginalReferenceDocument", ""),
                "ReferenceDocumentType": header["OriginalReferenceDocumentType"],
                "ReferenceDocumentLogicalSystem": header.get("OriginalReferenceDocumentLogicalSystem", ""),
                "AccountingDocumentHeaderText": header.get("DocumentHeaderText", ""),
                "AccountingDocCreatedByUser": header["CreatedByUser"],
                "BusinessTransactionType": header["BusinessTransactionType"],
                "FinancialAccountType": "D" if customer else "S",
                "GLAccount": RECEIVABLE_RECONCILIATION if customer else line.account,
                "Customer": customer,
                "Supplier": "",
                "DebitCreditCode": line.debit_credit,
                "AmountInTransactionCurrency": str(line.amount),
                "TransactionCurrency": line.currency,
                "AmountInCompanyCodeCurrency": str(line.amount),
                "CompanyCodeCurrency": company["Currency"],
                "DocumentItemText": line.text,
                "AssignmentReference": line.assignment,
                "IsCleared": False,
                "ClearingAccountingDocument": "",
                "ReverseDocument": "",
                "ReverseDocumentFiscalYear": "",
                "ReversalReason": "",
                "IsReversal": False,
                "IsReversed": False,
            }
        )
    return items


def _save(tx: Tx, items: list[dict[str, Any]]) -> None:
    for item in items:
        key = (
            f"{item['CompanyCode']}:{item['FiscalYear']}:{item['AccountingDocument']}:{item['AccountingDocumentItem']}"
        )
        tx.put(SYSTEM, ITEM, key, item)


def _reverse(tx: Tx, request: EntryRequest, company: dict[str, Any], errors: list[LogItem]) -> list[dict[str, Any]]:
    reference = request.header["ReversalReferenceDocument"]
    document, code, fiscal_year = reference[:10], reference[10:14], reference[14:]
    if code != request.company_code:
        raise Refused([_error("046(F5)", f"Document {document} {code} {fiscal_year} is not in company code {code}")])
    original = document_items(tx, code, fiscal_year, document)
    if not original:
        raise Refused([_error("006(F5)", f"Document {document} does not exist in company code {code} {fiscal_year}")])
    if original[0]["IsReversed"]:
        raise Refused([_error("191(F5)", f"Document {document} {code} {fiscal_year} has already been reversed")])
    if errors:
        raise Refused(errors)
    number = _next_document(tx, code)
    header = request.header
    posting = request.posting_date
    items = []
    for item in original:
        amount = -Decimal(item["AmountInTransactionCurrency"])
        items.append(
            {
                **item,
                "FiscalYear": str(posting.year),
                "AccountingDocument": number,
                "FiscalPeriod": f"{posting.month:03d}",
                "PostingDate": header["PostingDate"],
                "DocumentDate": header["DocumentDate"],
                "AccountingDocumentType": header["AccountingDocumentType"],
                # unverified: SAP takes the reversal's reference and header text from the
                # request (or copies the original's when the request names none).
                "DocumentReferenceID": header.get("DocumentReferenceID") or item["DocumentReferenceID"],
                "OriginalReferenceDocument": header.get("OriginalReferenceDocument")
                or item["OriginalReferenceDocument"],
                "AccountingDocumentHeaderText": header.get("DocumentHeaderText")
                or item["AccountingDocumentHeaderText"],
                "DebitCreditCode": "H" if item["DebitCreditCode"] == "S" else "S",
                "AmountInTransactionCurrency": str(amount),
                "AmountInCompanyCodeCurrency": str(amount),
                "ReverseDocument": document,
                "ReverseDocumentFiscalYear": fiscal_year,
                "ReversalReason": header["ReversalReason"],
                "IsReversal": True,
                "IsReversed": False,
            }
        )
    for item in original:
        item.update({"IsReversed": True, "ReverseDocument": number, "ReverseDocumentFiscalYear": str(posting.year)})
    _save(tx, original)
    _save(tx, items)
    return items


def post(tx: Tx, request: EntryRequest) -> Confirmation:
    """Post one entry, or refuse it with SAP's log; nothing is written when refused."""
    try:
        company, errors = _common_checks(tx, request)
        if request.header.get("ReversalReferenceDocument"):
            items = _reverse(tx, request, company, errors)
        else:
            _check_lines(tx, request, company, errors)
            if errors:
                raise Refused(errors)
            items = _items_of(request, company, _next_document(tx, request.company_code))
            _save(tx, items)
    except Refused as refused:
        header_note = _error(
            "003(RW)",
            f"Error in document: {request.header['OriginalReferenceDocumentType']} $ "
            f"{request.header.get('OriginalReferenceDocumentLogicalSystem', '')}",
        )
        return Confirmation(
            request.message_id, "0000000000", request.company_code, "0000", [header_note, *refused.notes]
        )
    first = items[0]
    note = (
        f"Document posted successfully: {request.header['OriginalReferenceDocumentType']} "
        f"{first['AccountingDocument']}{first['CompanyCode']}{first['FiscalYear']} "
        f"{request.header.get('OriginalReferenceDocumentLogicalSystem', '')}"
    )
    return Confirmation(
        request.message_id,
        first["AccountingDocument"],
        first["CompanyCode"],
        first["FiscalYear"],
        [LogItem("605(RW)", "1", note.strip())],
    )
