"""API_OPLACCTGDOCITEMCUBE_SRV/A_OperationalAcctgDocItemCube: the posted items, read-only,
filtered and paged in SQL (company code and posting date are indexed columns)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from sandbox.sap import SYSTEM
from sandbox.sap.journal_entries import ITEM, edm_date
from sandbox.sap.odata import Comparison, ODataError, read_query, results
from sandbox.store import Condition, Tx

SERVICE = "/sap/opu/odata/sap/API_OPLACCTGDOCITEMCUBE_SRV"
STRING_FIELDS = frozenset(
    {
        "FiscalYear",
        "AccountingDocument",
        "AccountingDocumentItem",
        "AccountingDocumentType",
        "DocumentReferenceID",
        "OriginalReferenceDocument",
        "ReferenceDocumentLogicalSystem",
        "GLAccount",
        "Customer",
        "DebitCreditCode",
        "TransactionCurrency",
        "AssignmentReference",
        "ReverseDocument",
    }
)
FILTERABLE = STRING_FIELDS | {"CompanyCode", "PostingDate"}
DATE_FIELDS = ("PostingDate", "DocumentDate", "ClearingDate")
ORDERINGS = ("", "AccountingDocument,AccountingDocumentItem", "CompanyCode,AccountingDocument,AccountingDocumentItem")


def _condition(comparison: Comparison) -> Condition:
    if comparison.field == "CompanyCode":
        return ("scope", comparison.op, str(comparison.value))
    if comparison.field == "PostingDate":
        if not isinstance(comparison.value, str) or len(comparison.value) != 10:
            raise ODataError(400, "/IWBEP/CM_MGW_RT/022", "PostingDate compares with a datetime'…' literal")
        return ("day", comparison.op, comparison.value)
    if not isinstance(comparison.value, str):
        raise ODataError(400, "/IWBEP/CM_MGW_RT/022", f"{comparison.field} compares with a string literal")
    return (f"data.{comparison.field}", comparison.op, comparison.value)


def render(item: dict[str, Any]) -> dict[str, Any]:
    key = (
        f"CompanyCode='{item['CompanyCode']}',FiscalYear='{item['FiscalYear']}',"
        f"AccountingDocument='{item['AccountingDocument']}',AccountingDocumentItem='{item['AccountingDocumentItem']}'"
    )
    uri = f"{SERVICE}/A_OperationalAcctgDocItemCube({key})"
    out: dict[str, Any] = {
        "__metadata": {"id": uri, "uri": uri, "type": "API_OPLACCTGDOCITEMCUBE_SRV.A_OperationalAcctgDocItemCubeType"}
    }
    for name, value in item.items():
        out[name] = edm_date(value) if name in DATE_FIELDS and value else (None if name in DATE_FIELDS else value)
    return out


def list_items(tx: Tx, request: Request) -> Response:
    query = read_query(request, FILTERABLE)
    if query.orderby not in ORDERINGS:
        raise ODataError(400, "/IWBEP/CM_MGW_RT/020", f"$orderby {query.orderby} is not supported by this stand-in")
    where = [_condition(c) for c in query.filters]
    rows = tx.page(SYSTEM, ITEM, where, order_by=(("scope", False), ("num", False)), limit=query.top, offset=query.skip)
    found = [render(row.data) for row in rows]
    count = tx.count_where(SYSTEM, ITEM, where) if query.inline_count else None
    return results(found, count)
