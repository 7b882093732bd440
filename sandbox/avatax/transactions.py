"""Transactions: create (quote, record), read, commit and void.

Tax = line amount x the rate of the address's region on the tax date, rounded half-up
to the cent per line; the document's tax is the sum of its lines. The tax date is the
document date, or the date of a `taxOverride` of type TaxDate (how a ReturnInvoice is
taxed at its original's rates; `reason` is required with it). A return's negative
amounts give negative tax. Like AvaTax, the sandbox checks a return against no original:
`referenceCode` is kept as given, and nothing limits what is returned."""

from __future__ import annotations

import time
import uuid
from datetime import date
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from starlette.requests import Request

from sandbox.avatax import SYSTEM
from sandbox.avatax.errors import error
from sandbox.avatax.rates import CENT, rate_for
from sandbox.store import Tx


def _money(value: Any, target: str) -> Decimal:
    try:
        result = Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise error(400, "ValueRequiredError", f"Invalid amount for {target}: {value!r}") from None
    if not result.is_finite():
        raise error(400, "ValueRequiredError", f"Invalid amount for {target}: {value!r}")
    return result


def _tax_date(override: Any, doc_date: date) -> tuple[date, dict[str, Any] | None]:
    """The date whose rates apply: the document date, or a TaxDate override's date (a
    return taxed as its original was). Only the TaxDate override is modelled here."""
    if override is None:
        return doc_date, None
    if not isinstance(override, dict) or override.get("type") != "TaxDate":
        raise error(400, "ValueRequiredError", "This sandbox supports only taxOverride type TaxDate.")
    if not str(override.get("reason") or "").strip():
        raise error(400, "ValueRequiredError", "Field reason is required for a tax override.")
    try:
        tax_date = date.fromisoformat(str(override.get("taxDate") or "")[:10])
    except ValueError:
        raise error(400, "ValueRequiredError", f"Invalid taxDate {override.get('taxDate')!r}.") from None
    return tax_date, {"type": "TaxDate", "taxDate": tax_date.isoformat(), "reason": str(override["reason"])}


def _key(company: str, code: str, type_: str) -> str:
    return f"{company}|{type_}|{code}"


def create_transaction(tx: Tx, request: Request, body: dict[str, Any]) -> tuple[int, Any]:
    if not isinstance(body, dict) or not body:
        raise error(400, "ModelRequiredException", "A request body is required.")
    type_ = body.get("type") or "SalesOrder"
    if type_ not in ("SalesOrder", "SalesInvoice", "ReturnOrder", "ReturnInvoice"):
        raise error(400, "ValueRequiredError", f"Unsupported document type {type_}.")
    company = body.get("companyCode") or "DEFAULT"
    lines = body.get("lines") or []
    if not lines:
        raise error(400, "MissingLine", "A transaction needs at least one line.")
    addresses = body.get("addresses") or {}
    address = addresses.get("SingleLocation") or addresses.get("ShipTo") or {}
    missing = [name for name in ("region", "postalCode", "country") if not str(address.get(name) or "").strip()]
    if missing:
        raise error(
            400,
            "MissingAddress",
            "An address is incomplete: " + ", ".join(missing) + " missing.",
            description="A tax jurisdiction needs at least a country, a region and a postal code.",
        )
    for name in ("customerCode", "date"):
        if not body.get(name):
            raise error(400, "ValueRequiredError", f"Field {name} is required.")
    try:
        doc_date = date.fromisoformat(str(body["date"])[:10])
    except ValueError:
        raise error(400, "ValueRequiredError", f"Invalid date {body['date']!r}.") from None
    tax_date, override = _tax_date(body.get("taxOverride"), doc_date)
    rate = rate_for(str(address["country"]), str(address["region"]), tax_date)
    out_lines = []
    total_amount = Decimal(0)
    total_tax = Decimal(0)
    for index, line in enumerate(lines):
        amount = _money(line.get("amount", 0), f"lines[{index}].amount")
        tax = (amount * rate / 100).quantize(CENT, rounding=ROUND_HALF_UP)
        total_amount += amount
        total_tax += tax
        out_lines.append(
            {
                "id": index + 1,
                "lineNumber": str(line.get("number") or index + 1),
                "quantity": _money(line.get("quantity", 1), f"lines[{index}].quantity"),
                "lineAmount": amount,
                "tax": tax,
                "taxableAmount": amount,
                "taxCode": line.get("taxCode") or "P0000000",
                "itemCode": line.get("itemCode") or "",
                "description": line.get("description") or "",
                "rate": rate / 100,
            }
        )
    code = body.get("code") or str(uuid.uuid4())
    commit = bool(body.get("commit"))
    document = {
        "id": 0,
        "code": code,
        "companyCode": company,
        "type": type_,
        "date": doc_date.isoformat(),
        "status": "Temporary",
        "customerCode": body["customerCode"],
        "currencyCode": body.get("currencyCode") or "USD",
        # AvaTax makes no association with the original document: referenceCode is the
        # caller's note, checked against nothing (developer.avalara.com, handling returns).
        "referenceCode": body.get("referenceCode") or None,
        "taxDate": tax_date.isoformat(),
        "totalAmount": str(total_amount),
        "totalTax": str(total_tax),
        "totalTaxable": str(total_amount),
        "lines": [
            {**line, **{k: str(line[k]) for k in ("quantity", "lineAmount", "tax", "taxableAmount", "rate")}}
            for line in out_lines
        ],
        "addresses": [{**address, "boundaryLevel": "Zip5"}],
        "summary": [
            {
                "country": address["country"],
                "region": address["region"],
                "rate": str(rate / 100),
                "tax": str(total_tax),
                "taxName": f"{address['region']} sales tax",
            }
        ],
        "modifiedDate": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    if override is not None:
        document["taxOverride"] = override
    if type_ in ("SalesInvoice", "ReturnInvoice"):
        key = _key(company, code, type_)
        existing = tx.get(SYSTEM, "transaction", key)
        if existing and existing["status"] in ("Committed", "Cancelled"):
            raise error(
                400,
                "DocumentCodeConflict",
                f"Document code {code} of type {type_} already exists and is {existing['status'].lower()}.",
                description="A committed or voided document cannot be replaced; use a new code or adjust it.",
            )
        document["status"] = "Committed" if commit else "Saved"
        document["id"] = existing["id"] if existing else tx.count(SYSTEM, "transaction") + 1
        tx.put(SYSTEM, "transaction", key, document)
    return 201 if type_ in ("SalesInvoice", "ReturnInvoice") else 200, render(document)


def render(document: dict[str, Any]) -> dict[str, Any]:
    """Amounts are stored as decimal strings and sent as JSON numbers."""
    out = dict(document)
    for name in ("totalAmount", "totalTax", "totalTaxable"):
        out[name] = Decimal(out[name])
    out["lines"] = [
        {**line, **{k: Decimal(line[k]) for k in ("quantity", "lineAmount", "tax", "taxableAmount", "rate")}}
        for line in document["lines"]
    ]
    out["summary"] = [{**s, "rate": Decimal(s["rate"]), "tax": Decimal(s["tax"])} for s in document["summary"]]
    return out


def document_type(request: Request) -> str:
    """The `documentType` a document's URL names (AvaTax's default: a sales invoice)."""
    return request.query_params.get("documentType", "SalesInvoice")


def _find(tx: Tx, company: str, code: str, doc_type: str) -> dict[str, Any]:
    document = tx.get(SYSTEM, "transaction", _key(company, code, doc_type))
    if document is None:
        raise error(
            404,
            "EntityNotFoundError",
            f"Transaction with code '{code}' not found.",
            description=f"No {doc_type} document {code} exists in company {company}.",
        )
    return document


def get_transaction(tx: Tx, request: Request, body: Any, company: str, code: str) -> tuple[int, Any]:
    doc_type = document_type(request)
    return 200, render(_find(tx, company, code, doc_type))


def commit_transaction(tx: Tx, request: Request, body: Any, company: str, code: str) -> tuple[int, Any]:
    doc_type = document_type(request)
    document = _find(tx, company, code, doc_type)
    if document["status"] == "Cancelled":
        raise error(400, "TransactionAlreadyCancelled", f"Transaction {code} is cancelled and cannot be committed.")
    if body.get("commit", True):
        document["status"] = "Committed"
    elif document["status"] == "Committed":
        document["status"] = "Saved"
    tx.put(SYSTEM, "transaction", _key(company, code, doc_type), document)
    return 200, render(document)


def void_transaction(tx: Tx, request: Request, body: Any, company: str, code: str) -> tuple[int, Any]:
    doc_type = document_type(request)
    document = _find(tx, company, code, doc_type)
    reason = (body or {}).get("code")
    if reason not in ("DocVoided", "DocDeleted", "AdjustmentCancelled", "PostFailed"):
        raise error(400, "ValueRequiredError", "A void reason code (e.g. DocVoided) is required.")
    if document["status"] == "Cancelled":
        raise error(400, "TransactionAlreadyCancelled", f"Transaction {code} is already cancelled.")
    document["status"] = "Cancelled"
    tx.put(SYSTEM, "transaction", _key(company, code, doc_type), document)
    return 200, render(document)
