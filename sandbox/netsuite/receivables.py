"""Customer payments, credit memos, customer refunds and a minimal invoice record, with
their `apply` sublists (see applications.py for documents, open amounts and links).

- `customerPayment`: customer, payment, tranDate, subsidiary, currency, account (or
  undepFunds), aracct, externalId, memo, apply{items:[{doc{id}, apply, amount}]};
  read-only applied / unapplied / balance (the customer's open A/R balance, unverified).
  Each line may apply at most the document's open amount, all lines at most the payment.
- `creditMemo`: entity, tranDate, subsidiary, currency, item{items:[{account{id} or
  item{id}, amount, description}]}, externally computed tax as `taxDetailsOverride: true`
  with taxDetails{items:[{taxAmount, ...}]} (SuiteTax; the shape is unverified), the apply
  sublist, createdFrom; read-only total, taxTotal, applied, unapplied, status. Sandbox
  simplification: this account has no items, so item lines may name a GL account
  directly (a real account maps each credited account to a non-inventory item).
  `POST /invoice/{id}/!transform/creditMemo` makes one from an invoice: its entity,
  lines and currency, createdFrom = the invoice, applied to it (unless the body says).
- `customerRefund`: customer, tranDate, subsidiary, currency, account, apply sublist over
  the customer's payments and credit memos, at most each one's unapplied amount.
- `invoice`: entity, tranDate, subsidiary, currency, item lines as a credit memo's; an
  A/R document for its total (tax left out: the sandbox computes none).

POST creates (204 + Location), PUT eid:{externalId} upserts, GET and DELETE by id or
eid:, PATCH by id merges the body into the record. On an upsert or a PATCH, a sent
apply sublist is merged into the stored one by doc, unless the request says
`?replace=apply` (then it replaces it), NetSuite's rule for sublists; the open amounts
are recomputed from the lines, never counted twice.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from decimal import Decimal
from typing import Any

from starlette.requests import Request

from sandbox.netsuite import SYSTEM
from sandbox.netsuite.applications import (
    applied_to,
    apply_lines,
    ar_document,
    check_total,
    currency_of,
    customer_id,
    customer_ref,
    drop_links,
    index_ar_document,
    links_from,
    links_to,
    next_transaction_id,
    open_amount,
    receivable_accounts,
    render_apply,
    replace_links,
    stored_lines,
)
from sandbox.netsuite.errors import checked_amount, error
from sandbox.netsuite.records import by_external_id, external_id_for_put, internal_id_of, json_object, location
from sandbox.store import Tx

PAYMENT = "customerPayment"
CREDIT_MEMO = "creditMemo"
REFUND = "customerRefund"
INVOICE = "invoice"
# SuiteQL's transaction.type of each record type.
TYPES = {PAYMENT: "CustPymt", CREDIT_MEMO: "CustCred", REFUND: "CustRfnd", INVOICE: "CustInvc", "Journal": "Journal"}
_TRAN_PREFIX = {PAYMENT: "PYMT", CREDIT_MEMO: "CM", REFUND: "RFND", INVOICE: "INV"}
_READ_ONLY = ("id", "links", "applied", "unapplied", "balance", "total", "taxTotal", "status", "tranId")

Answer = tuple[int, Any, dict[str, str]]


def _missing(ref: str) -> Exception:
    return error(
        404,
        "NONEXISTENT_ID",
        f"The record instance does not exist. Provide a valid record instance ID ({ref}).",
        path="id",
    )


def _header(tx: Tx, body: dict[str, Any], name_field: str) -> dict[str, Any]:
    """The body fields every one of these records checks the same way."""
    subsidiary = str((body.get("subsidiary") or {}).get("id") or "")
    if not subsidiary:
        raise error(400, "USER_ERROR", "Please enter value(s) for: Subsidiary", path="subsidiary")
    try:
        date.fromisoformat(str(body.get("tranDate") or ""))
    except ValueError:
        raise error(400, "INVALID_VALUE", f"Invalid date {body.get('tranDate')!r}.", path="tranDate") from None
    return {
        name_field: {"id": customer_id(tx, body.get(name_field), name_field)},
        "subsidiary": {"id": subsidiary},
        "currency": {"refName": currency_of(body)},
        "tranDate": str(body["tranDate"]),
    }


def _item_lines(body: dict[str, Any]) -> list[dict[str, Any]]:
    items = (body.get("item") or {}).get("items") or []
    if not isinstance(items, list) or not items:
        raise error(400, "USER_ERROR", "You must enter at least one line item for this transaction.", path="item")
    lines = []
    for index, item in enumerate(items):
        path = f"item.items[{index}]"
        account = str((item.get("account") or {}).get("id") or "")
        product = str((item.get("item") or {}).get("id") or "")
        if not (account or product):
            raise error(400, "USER_ERROR", "Please enter value(s) for: Item", path=f"{path}.item")
        amount = checked_amount(item.get("amount"), f"{path}.amount")
        line: dict[str, Any] = {"line": index + 1, "amount": str(amount), "description": item.get("description") or ""}
        if account:
            line["account"] = {"id": account}
        if product:
            line["item"] = {"id": product}
        lines.append(line)
    return lines


def _tax_total(body: dict[str, Any]) -> Decimal:
    if not body.get("taxDetailsOverride"):
        return Decimal(0)
    items = (body.get("taxDetails") or {}).get("items") or []
    return sum(
        (checked_amount(item.get("taxAmount", 0), f"taxDetails.items[{i}].taxAmount") for i, item in enumerate(items)),
        Decimal(0),
    )


def _applications(
    tx: Tx,
    lines: list[dict[str, Any]],
    *,
    internal_id: str,
    customer: str,
    currency: str,
    kinds: tuple[str, ...],
) -> list[dict[str, Any]]:
    """Check each apply line against its document: the customer's, in the currency, and
    at most what is still open on it (what this record applied before left out)."""
    out = []
    for line in lines:
        path = f"apply.items[{line.get('index', 0)}]"
        doc = line["doc"]
        found = _applicable(tx, doc, kinds)
        if found is None:
            raise error(400, "INVALID_KEY_OR_REF", f"Invalid apply reference key {doc}.", path=f"{path}.doc")
        kind, link_type, entity, doc_currency, available = found
        if entity != customer or doc_currency != currency:
            raise error(
                400,
                "USER_ERROR",
                f"Document {doc} belongs to another customer or currency and cannot be applied here.",
                path=f"{path}.doc",
            )
        available -= applied_to(tx, doc, excluding=internal_id)
        if kind in (PAYMENT, CREDIT_MEMO):
            available -= sum((Decimal(x["foreignamount"]) for x in links_from(tx, doc)), Decimal(0))
        if line["amount"] > available:
            # unverified: NetSuite's exact code and wording for applying more than is due.
            raise error(
                400,
                "USER_ERROR",
                f"You cannot apply {line['amount']} to document {doc}: only {available} is open on it.",
                path=f"{path}.amount",
            )
        out.append({"doc": doc, "type": link_type, "amount": line["amount"]})
    return out


def _applicable(tx: Tx, doc: str, kinds: tuple[str, ...]) -> tuple[str, str, str, str, Decimal] | None:
    """(kind, SuiteQL type, customer, currency, total) of a document of one of these kinds."""
    if "ar" in kinds:
        found = ar_document(tx, doc)
        if found is not None:
            return "ar", found["type"], found["entity"], found["currency"], Decimal(found["amount"])
    for kind in kinds:
        if kind in (PAYMENT, CREDIT_MEMO):
            record = tx.get(SYSTEM, kind, doc)
            if record is not None:
                name = "customer" if kind == PAYMENT else "entity"
                total = Decimal(record["payment"] if kind == PAYMENT else record["total"])
                return kind, TYPES[kind], record[name]["id"], record["currency"]["refName"], total
    return None


def _save(tx: Tx, kind: str, record: dict[str, Any], internal_id: str | None) -> str:
    if internal_id is None:
        internal_id = next_transaction_id(tx)
    record["id"] = internal_id
    record.setdefault("tranId", f"{_TRAN_PREFIX[kind]}{int(internal_id):07d}")
    if record.get("externalId"):
        key = f"{kind}:{record['externalId']}"
        tx.put(SYSTEM, "externalId", key, {"id": key, "internalId": internal_id})
    return internal_id


def _store_apply(record: dict[str, Any], applications: list[dict[str, Any]]) -> None:
    record["apply"] = {
        "items": [
            {"doc": {"id": a["doc"]}, "apply": True, "amount": str(a["amount"]), "type": a["type"]}
            for a in applications
        ]
    }


# -- customer payments -----------------------------------------------------------------------


def _payment(tx: Tx, body: Any, current: dict[str, Any] | None, internal_id: str, *, replace: bool) -> dict[str, Any]:
    body = json_object(body)
    merged = {**(current or {}), **{k: v for k, v in body.items() if k not in _READ_ONLY}}
    record = {**merged, **_header(tx, merged, "customer")}
    payment = checked_amount(merged.get("payment"), "payment") if merged.get("payment") is not None else None
    if not payment:
        raise error(400, "USER_ERROR", "Please enter value(s) for: Payment Amount", path="payment")
    if not (merged.get("account") or {}).get("id") and not merged.get("undepFunds"):
        raise error(400, "USER_ERROR", "Please enter value(s) for: Account", path="account")
    record["payment"] = str(payment)
    record["aracct"] = {"id": str((merged.get("aracct") or {}).get("id") or sorted(receivable_accounts())[0])}
    lines = apply_lines(body, stored_lines(current), replace=replace or current is None)
    applications = _applications(
        tx,
        lines,
        internal_id=internal_id,
        customer=record["customer"]["id"],
        currency=record["currency"]["refName"],
        kinds=("ar",),
    )
    check_total(sum((a["amount"] for a in applications), Decimal(0)), payment, "payment amount")
    _store_apply(record, applications)
    return record


def _put_record(
    tx: Tx,
    request: Request,
    kind: str,
    build: Callable[..., dict[str, Any]],
    body: Any,
    external_id: str | None,
    internal_id: str | None,
) -> Answer:
    current = tx.get(SYSTEM, kind, internal_id) if internal_id else None
    new_id = internal_id or next_transaction_id(tx)
    replace = request.query_params.get("replace", "") == "apply"
    record = build(tx, body, current, new_id, replace=replace)
    if external_id is not None:
        record["externalId"] = external_id
    record = _stored(record)
    _save(tx, kind, record, new_id)
    applications = [
        {"doc": line["doc"]["id"], "type": line["type"], "amount": Decimal(line["amount"])}
        for line in record["apply"]["items"]
    ]
    replace_links(tx, new_id, TYPES[kind], applications, today=record["tranDate"])
    tx.put(SYSTEM, kind, new_id, record)
    if kind == INVOICE:
        index_ar_document(
            tx,
            new_id,
            type_="CustInvc",
            entity=record["entity"]["id"],
            currency=record["currency"]["refName"],
            subsidiary=record["subsidiary"]["id"],
            amount=Decimal(record["total"]),
        )
    return 204, None, {"Location": location(request, kind, new_id)}


def _stored(value: Any) -> Any:
    """The record as JSON keeps it: numbers the request sent in fields passed through
    (taxDetails, custom fields) as decimal strings."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dict):
        return {k: _stored(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_stored(v) for v in value]
    return value


def _create(kind: str, build: Callable[..., dict[str, Any]]) -> Callable[..., Answer]:
    def create(tx: Tx, request: Request, body: Any) -> Answer:
        external_id = json_object(body).get("externalId")
        if external_id and by_external_id(tx, kind, str(external_id)):
            raise error(400, "DUP_RCRD", f"A record with external ID {external_id} already exists.", path="externalId")
        return _put_record(tx, request, kind, build, body, None, None)

    return create


def _upsert(kind: str, build: Callable[..., dict[str, Any]]) -> Callable[..., Answer]:
    def upsert(tx: Tx, request: Request, body: Any, ref: str) -> Answer:
        external_id = external_id_for_put(ref)
        return _put_record(tx, request, kind, build, body, external_id, by_external_id(tx, kind, external_id))

    return upsert


def _patch(kind: str, build: Callable[..., dict[str, Any]]) -> Callable[..., Answer]:
    def patch(tx: Tx, request: Request, body: Any, ref: str) -> Answer:
        internal_id = internal_id_of(tx, kind, ref)
        if not internal_id or tx.get(SYSTEM, kind, internal_id) is None:
            raise _missing(ref)
        return _put_record(tx, request, kind, build, body, None, internal_id)

    return patch


def _render(tx: Tx, request: Request, kind: str, record: dict[str, Any]) -> dict[str, Any]:
    out = dict(record)
    internal_id = record["id"]
    applied = sum((Decimal(line["amount"]) for line in record["apply"]["items"]), Decimal(0))
    refunded = sum((Decimal(x["foreignamount"]) for x in links_to(tx, internal_id)), Decimal(0))
    name = "customer" if kind in (PAYMENT, REFUND) else "entity"
    out[name] = customer_ref(tx, record[name]["id"])
    out["apply"] = render_apply(record)
    if kind == PAYMENT:
        out["payment"] = Decimal(record["payment"])
        out["applied"] = applied + refunded
        out["unapplied"] = Decimal(record["payment"]) - applied - refunded
        out["balance"] = _customer_balance(tx, record["customer"]["id"])
    elif kind in (CREDIT_MEMO, INVOICE):
        out["total"] = Decimal(record["total"])
        out["taxTotal"] = Decimal(record.get("taxTotal") or 0)
        out["item"] = {
            "items": [{**line, "amount": Decimal(line["amount"])} for line in record["item"]["items"]],
            "count": len(record["item"]["items"]),
            "hasMore": False,
        }
        if kind == CREDIT_MEMO:
            out["applied"] = applied + refunded
            out["unapplied"] = Decimal(record["total"]) - applied - refunded
            out["status"] = {"id": "B" if out["unapplied"] == 0 else "A"}
        else:
            due = Decimal(record["total"]) - refunded
            out["amountRemaining"] = due
            out["status"] = {"id": "B" if due == 0 else "A"}
    else:
        out["total"] = applied
    out["links"] = [{"rel": "self", "href": location(request, kind, internal_id)}]
    return out


def _customer_balance(tx: Tx, customer: str) -> Decimal:
    documents = [row.data for row in tx.page(SYSTEM, "arDocument", [("data.entity", "=", customer)])]
    return sum((open_amount(tx, d) for d in documents), Decimal(0))


def _get(kind: str) -> Callable[..., Answer]:
    def get(tx: Tx, request: Request, body: Any, ref: str) -> Answer:
        internal_id = internal_id_of(tx, kind, ref)
        record = tx.get(SYSTEM, kind, internal_id) if internal_id else None
        if record is None:
            raise _missing(ref)
        return 200, _render(tx, request, kind, record), {}

    return get


def _delete(kind: str) -> Callable[..., Answer]:
    def delete(tx: Tx, request: Request, body: Any, ref: str) -> Answer:
        internal_id = internal_id_of(tx, kind, ref)
        record = tx.get(SYSTEM, kind, internal_id) if internal_id else None
        if not internal_id or record is None:
            raise _missing(ref)
        if links_to(tx, internal_id):
            # unverified: NetSuite's code for deleting a transaction others are applied to.
            raise error(
                400,
                "USER_ERROR",
                f"This record cannot be deleted because it has dependent records (transaction {internal_id} "
                "is applied to by others; unapply them first).",
            )
        drop_links(tx, internal_id)
        tx.delete(SYSTEM, kind, internal_id)
        if record.get("externalId"):
            tx.delete(SYSTEM, "externalId", f"{kind}:{record['externalId']}")
        if kind == INVOICE:
            tx.delete(SYSTEM, "arDocument", internal_id)
        return 204, None, {}

    return delete


# -- credit memos and invoices ---------------------------------------------------------------


def _credit_memo(
    tx: Tx, body: Any, current: dict[str, Any] | None, internal_id: str, *, replace: bool
) -> dict[str, Any]:
    body = json_object(body)
    merged = {**(current or {}), **{k: v for k, v in body.items() if k not in _READ_ONLY}}
    record = {**merged, **_header(tx, merged, "entity")}
    record["item"] = {"items": _item_lines(merged)}
    tax = _tax_total(merged) if "taxDetails" in body or current is None else Decimal(current.get("taxTotal") or 0)
    total = sum((Decimal(line["amount"]) for line in record["item"]["items"]), Decimal(0)) + tax
    record["taxTotal"] = str(tax)
    record["total"] = str(total)
    lines = apply_lines(body, stored_lines(current), replace=replace or current is None)
    applications = _applications(
        tx,
        lines,
        internal_id=internal_id,
        customer=record["entity"]["id"],
        currency=record["currency"]["refName"],
        kinds=("ar",),
    )
    check_total(sum((a["amount"] for a in applications), Decimal(0)), total, "credit memo total")
    _store_apply(record, applications)
    return record


def _invoice(tx: Tx, body: Any, current: dict[str, Any] | None, internal_id: str, *, replace: bool) -> dict[str, Any]:
    body = json_object(body)
    merged = {**(current or {}), **{k: v for k, v in body.items() if k not in _READ_ONLY and k != "apply"}}
    record = {**merged, **_header(tx, merged, "entity")}
    record["item"] = {"items": _item_lines(merged)}
    record["taxTotal"] = "0"
    record["total"] = str(sum((Decimal(line["amount"]) for line in record["item"]["items"]), Decimal(0)))
    record["apply"] = {"items": []}
    return record


def transform_to_credit_memo(tx: Tx, request: Request, body: Any, ref: str) -> Answer:
    """`POST /invoice/{id}/!transform/creditMemo`: a memo of the invoice's customer, lines
    and currency, created from it and applied to what is open on it, unless the body
    sets those fields itself."""
    internal_id = internal_id_of(tx, INVOICE, ref)
    invoice = tx.get(SYSTEM, INVOICE, internal_id) if internal_id else None
    if not internal_id or invoice is None:
        raise _missing(ref)
    body = json_object(body)
    document = ar_document(tx, internal_id)
    still_open = open_amount(tx, document) if document else Decimal(0)
    memo: dict[str, Any] = {
        "entity": invoice["entity"],
        "subsidiary": invoice["subsidiary"],
        "currency": invoice["currency"],
        "tranDate": body.get("tranDate") or invoice["tranDate"],
        "item": {"items": [{k: v for k, v in line.items() if k != "line"} for line in invoice["item"]["items"]]},
        **{k: v for k, v in body.items() if k not in _READ_ONLY},
        "createdFrom": {"id": internal_id},
    }
    if "apply" not in body:
        total = sum((Decimal(str(line["amount"])) for line in memo["item"]["items"]), Decimal(0))
        amount = min(total, still_open)
        memo["apply"] = {"items": [{"doc": {"id": internal_id}, "apply": True, "amount": amount}] if amount else []}
    external_id = memo.get("externalId")
    if external_id and by_external_id(tx, CREDIT_MEMO, str(external_id)):
        raise error(400, "DUP_RCRD", f"A record with external ID {external_id} already exists.", path="externalId")
    return _put_record(tx, request, CREDIT_MEMO, _credit_memo, memo, None, None)


# -- customer refunds ------------------------------------------------------------------------


def _refund(tx: Tx, body: Any, current: dict[str, Any] | None, internal_id: str, *, replace: bool) -> dict[str, Any]:
    body = json_object(body)
    merged = {**(current or {}), **{k: v for k, v in body.items() if k not in _READ_ONLY}}
    record = {**merged, **_header(tx, merged, "customer")}
    if not (merged.get("account") or {}).get("id"):
        raise error(400, "USER_ERROR", "Please enter value(s) for: Account", path="account")
    lines = apply_lines(body, stored_lines(current), replace=replace or current is None)
    if not lines:
        raise error(400, "USER_ERROR", "A refund must apply to at least one payment or credit memo.", path="apply")
    applications = _applications(
        tx,
        lines,
        internal_id=internal_id,
        customer=record["customer"]["id"],
        currency=record["currency"]["refName"],
        kinds=(PAYMENT, CREDIT_MEMO),
    )
    _store_apply(record, applications)
    return record


ROUTES_BY_KIND: dict[str, Callable[..., dict[str, Any]]] = {
    PAYMENT: _payment,
    CREDIT_MEMO: _credit_memo,
    REFUND: _refund,
    INVOICE: _invoice,
}


def routes(base: str) -> list[tuple[str, str, Callable[..., Answer]]]:
    out: list[tuple[str, str, Callable[..., Answer]]] = []
    for kind, build in ROUTES_BY_KIND.items():
        path = f"{base}/{kind}"
        out += [
            ("POST", path, _create(kind, build)),
            ("PUT", path + "/{ref}", _upsert(kind, build)),
            ("GET", path + "/{ref}", _get(kind)),
            ("PATCH", path + "/{ref}", _patch(kind, build)),
            ("DELETE", path + "/{ref}", _delete(kind)),
        ]
    out.append(("POST", f"{base}/{INVOICE}/{{ref}}/!transform/creditMemo", transform_to_credit_memo))
    return out
