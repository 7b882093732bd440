"""The receivables side of the SuiteQL stand-in: `transaction` rows of customer payments
(CustPymt), credit memos (CustCred), refunds (CustRfnd) and invoices (CustInvc), the
receivable columns of A/R journal entries, and the application links
(`NextTransactionLineLink` / `PreviousTransactionLineLink`, the same rows seen from
either end).

Columns as public SuiteQL code names them: entity (the customer's internal id), status
(`BUILTIN.CF(status)` gives `CustCred:A` open / `CustCred:B` fully applied, `CustInvc:A`
open / `CustInvc:B` paid in full; a payment is `CustPymt:C` deposited, `CustPymt:B` to
undeposited funds), createdfrom, foreigntotal, foreignamountpaid / foreignamountunpaid
(A/R documents) and foreignpaymentamountused / foreignpaymentamountunused (payments and
credit memos). Unverified: the sign NetSuite gives the totals of credit memos and
refunds (positive here), whether a journal entry's `transaction.entity` carries the
customer of its A/R line (here it does; NetSuite keeps the name on the line), a
payment's status letters, and a refund's (none here).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import date
from decimal import Decimal
from typing import Any

from sandbox.netsuite import SYSTEM
from sandbox.netsuite.applications import AR_DOCUMENT, LINK, ar_document, links_from, links_to, open_amount
from sandbox.netsuite.receivables import CREDIT_MEMO, INVOICE, PAYMENT, REFUND, TYPES
from sandbox.store import Tx

RECEIVABLE_COLUMNS = (
    "entity",
    "status",
    "createdfrom",
    "foreigntotal",
    "foreignamountpaid",
    "foreignamountunpaid",
    "foreignpaymentamountused",
    "foreignpaymentamountunused",
)
LINK_TABLES = ("nexttransactionlinelink", "previoustransactionlinelink")
LINK_COLUMNS = (
    "previousdoc",
    "previousline",
    "previoustype",
    "nextdoc",
    "nextline",
    "nexttype",
    "linktype",
    "foreignamount",
    "lastmodifieddate",
)
RECORD_OF = {TYPES[kind]: kind for kind in (PAYMENT, CREDIT_MEMO, REFUND, INVOICE)}
RECEIVABLE_KINDS = tuple(RECORD_OF)


def _num(raw: Any) -> int | None:
    text = "" if raw is None else str(raw)
    return int(text) if text.isdigit() else None


def _sum(links: Iterable[dict[str, Any]]) -> Decimal:
    return sum((Decimal(link["foreignamount"]) for link in links), Decimal(0))


def journal_receivable_columns(tx: Tx | None, record: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = dict.fromkeys(RECEIVABLE_COLUMNS)
    document = ar_document(tx, str(record.get("id"))) if tx is not None else None
    if tx is None or document is None:
        return out
    amount = Decimal(document["amount"])
    still_open = open_amount(tx, document)
    out.update(
        entity=_num(document["entity"]),
        foreigntotal=amount,
        foreignamountpaid=amount - still_open,
        foreignamountunpaid=still_open,
    )
    return out


def journal_entries_of(tx: Tx, entity: str) -> list[int]:
    """The internal ids of the A/R journal entries in a customer's name."""
    where = [("data.entity", "=", entity), ("data.type", "=", "Journal")]
    return [int(row.id) for row in tx.page(SYSTEM, AR_DOCUMENT, where)]


def receivable_rows(tx: Tx, type_: str, *, count_only: bool = False) -> Any:
    """The `transaction` rows of one receivables type (or, with count_only, how many)."""
    kind = RECORD_OF.get(type_)
    if kind is None:
        return 0 if count_only else []
    if count_only:
        return tx.count(SYSTEM, kind)
    return [_row(tx, kind, row.data) for row in tx.page(SYSTEM, kind)]


def _row(tx: Tx, kind: str, record: dict[str, Any]) -> dict[str, Any]:
    internal_id = str(record["id"])
    applied = sum((Decimal(line["amount"]) for line in record["apply"]["items"]), Decimal(0))
    applied_to_it = _sum(links_to(tx, internal_id))
    name = "customer" if kind in (PAYMENT, REFUND) else "entity"
    row: dict[str, Any] = {
        "id": int(internal_id),
        "tranid": record.get("tranId"),
        "externalid": record.get("externalId") or None,
        "trandate": date.fromisoformat(record["tranDate"]),
        "type": TYPES[kind],
        "subsidiary": _num(record["subsidiary"]["id"]),
        "currency": record["currency"]["refName"],
        "memo": record.get("memo") or None,
        "custbody_o2c_invoice": record.get("custbody_o2c_invoice") or None,
        "custbody_o2c_contract": None,
        "custbody_o2c_reverses": None,
        **dict.fromkeys(RECEIVABLE_COLUMNS),
        "entity": _num(record[name]["id"]),
        "createdfrom": _num((record.get("createdFrom") or {}).get("id")),
    }
    if kind == PAYMENT:
        total = Decimal(record["payment"])
        used = applied + applied_to_it
        row.update(
            foreigntotal=total,
            foreignpaymentamountused=used,
            foreignpaymentamountunused=total - used,
            status="CustPymt:B" if record.get("undepFunds") else "CustPymt:C",
        )
    elif kind == CREDIT_MEMO:
        total = Decimal(record["total"])
        used = applied + applied_to_it
        row.update(
            foreigntotal=total,
            foreignpaymentamountused=used,
            foreignpaymentamountunused=total - used,
            status="CustCred:B" if used == total else "CustCred:A",
        )
    elif kind == INVOICE:
        total = Decimal(record["total"])
        row.update(
            foreigntotal=total,
            foreignamountpaid=applied_to_it,
            foreignamountunpaid=total - applied_to_it,
            status="CustInvc:B" if applied_to_it == total else "CustInvc:A",
        )
    else:
        row.update(foreigntotal=applied)
    return row


def link_rows(tx: Tx, where: Iterable[Any]) -> Iterator[dict[str, Any]]:
    """The links, narrowed in SQL by an equality on previousdoc or nextdoc if there is one."""
    links: Iterable[dict[str, Any]] | None = None
    for p in where:
        if p.ref.name in ("previousdoc", "nextdoc") and p.op == "=" and isinstance(p.value, Decimal):
            doc = str(int(p.value))
            links = links_to(tx, doc) if p.ref.name == "previousdoc" else links_from(tx, doc)
            break
    if links is None:
        links = (row.data for row in tx.page(SYSTEM, LINK))
    for link in links:
        yield {
            "previousdoc": int(link["previousdoc"]),
            "previousline": int(link["previousline"]),
            "previoustype": link["previoustype"],
            "nextdoc": int(link["nextdoc"]),
            "nextline": int(link["nextline"]),
            "nexttype": link["nexttype"],
            "linktype": link["linktype"],
            "foreignamount": Decimal(link["foreignamount"]),
            "lastmodifieddate": date.fromisoformat(link["lastmodifieddate"]),
        }
