"""What every receivables record shares: the customers they name, the A/R documents
payments and credit memos are applied to, and the application links between them.

An A/R document is a journal entry with a debit on an Accounts Receivable account in a
customer's name, or an invoice record. Its open amount is what it debits (its total,
for an invoice) minus what payments and credit memos apply to it. Accounts Receivable
accounts are 1200 by default; `SANDBOX_NETSUITE_AR_ACCOUNTS` (comma-separated ids)
names others, as an account's chart of accounts would.

Applications are kept as NetSuite's transaction line links (what SuiteQL reads from
NextTransactionLineLink / PreviousTransactionLineLink): `previousdoc` is the document
applied to, `nextdoc` the one applying, `linktype` 'Payment'. For payments applied to
an invoice that is NetSuite's direction (previousdoc = invoice, nextdoc = payment); for
a credit memo applied to an invoice, and for a refund of a payment or a credit memo,
the same direction is assumed (unverified): the applying document is always `nextdoc`.

Customer references: `{"id": internal id}` must name a customer; `{"externalId": ...}`
names one by its external id. Sandbox leniency (unverified against a real account, which
refuses a reference it cannot resolve): an external id no customer has yet makes a
placeholder customer under it. o2c upserts a customer before booking its invoice, but
entries of processes started before it did, and tests that post entries directly, name
customers the ERP has never seen.
"""

from __future__ import annotations

import os
from decimal import Decimal
from typing import Any

from sandbox.netsuite import SYSTEM
from sandbox.netsuite.errors import checked_amount, error
from sandbox.netsuite.records import by_external_id
from sandbox.store import Tx

CUSTOMER = "customer"
AR_DOCUMENT = "arDocument"  # the index of A/R documents: amount, customer, currency
LINK = "transactionLink"
SEQUENCE = "sequence"
# Receivables records are numbered from here (NetSuite numbers all transactions in one
# sequence; the journal entries of this stand-in keep their own, from 101).
FIRST_TRANSACTION_ID = 900_001


def receivable_accounts() -> set[str]:
    raw = os.environ.get("SANDBOX_NETSUITE_AR_ACCOUNTS", "1200")
    return {part.strip() for part in raw.split(",") if part.strip()}


def next_transaction_id(tx: Tx) -> str:
    state = tx.get(SYSTEM, SEQUENCE, "transaction") or {"id": "transaction", "next": FIRST_TRANSACTION_ID}
    internal_id = int(state["next"])
    tx.put(SYSTEM, SEQUENCE, "transaction", {"id": "transaction", "next": internal_id + 1})
    return str(internal_id)


def customer_id(tx: Tx, ref: Any, path: str) -> str:
    """The internal id of the customer a reference names (see the module docstring)."""
    if not isinstance(ref, dict) or not (ref.get("id") or ref.get("externalId")):
        raise error(400, "USER_ERROR", "Please enter value(s) for: Customer", path=path)
    if ref.get("id"):
        internal_id = str(ref["id"])
        if tx.get(SYSTEM, CUSTOMER, internal_id) is None:
            raise error(400, "INVALID_KEY_OR_REF", f"Invalid {path} reference key {internal_id}.", path=path)
        return internal_id
    external_id = str(ref["externalId"])
    found = by_external_id(tx, CUSTOMER, external_id)
    if found is not None:
        return found
    internal_id = str(tx.count(SYSTEM, CUSTOMER) + 1001)
    tx.put(
        SYSTEM,
        "externalId",
        f"{CUSTOMER}:{external_id}",
        {"id": f"{CUSTOMER}:{external_id}", "internalId": internal_id},
    )
    tx.put(
        SYSTEM,
        CUSTOMER,
        internal_id,
        {
            "id": internal_id,
            "externalId": external_id,
            "entityId": external_id,
            "companyName": external_id,
            "isPerson": False,
            "placeholder": True,
            "addressBook": {"items": []},
        },
    )
    return internal_id


def customer_ref(tx: Tx, internal_id: str) -> dict[str, Any]:
    record = tx.get(SYSTEM, CUSTOMER, internal_id) or {}
    return {"id": internal_id, "refName": record.get("companyName") or record.get("entityId") or internal_id}


def currency_of(body: dict[str, Any]) -> str:
    ref = body.get("currency") or {}
    code = str(ref.get("refName") or ref.get("id") or "")
    if not code:
        raise error(400, "USER_ERROR", "Please enter value(s) for: Currency", path="currency")
    return code


# -- A/R documents ---------------------------------------------------------------------------


def index_ar_document(
    tx: Tx, internal_id: str, *, type_: str, entity: str, currency: str, subsidiary: str, amount: Decimal
) -> None:
    tx.put(
        SYSTEM,
        AR_DOCUMENT,
        internal_id,
        {
            "id": internal_id,
            "type": type_,
            "entity": entity,
            "currency": currency,
            "subsidiary": subsidiary,
            "amount": str(amount),
        },
    )


def index_journal_entry(tx: Tx, record: dict[str, Any]) -> None:
    """Keep the A/R index in step with a saved journal entry: its debits net of credits
    on Accounts Receivable lines that name a customer."""
    accounts = receivable_accounts()
    amount = Decimal(0)
    entity = ""
    for line in (record.get("line") or {}).get("items") or []:
        if line["account"]["id"] in accounts and line.get("entity"):
            entity = entity or line["entity"]["id"]
            amount += Decimal(line["debit"] or 0) - Decimal(line["credit"] or 0)
    if entity and amount > 0:
        index_ar_document(
            tx,
            record["id"],
            type_="Journal",
            entity=entity,
            currency=str((record.get("currency") or {}).get("refName") or (record.get("currency") or {}).get("id")),
            subsidiary=str(record["subsidiary"]["id"]),
            amount=amount,
        )
    elif tx.get(SYSTEM, AR_DOCUMENT, record["id"]) is not None:
        tx.delete(SYSTEM, AR_DOCUMENT, record["id"])


def ar_document(tx: Tx, internal_id: str) -> dict[str, Any] | None:
    return tx.get(SYSTEM, AR_DOCUMENT, internal_id)


# -- links -----------------------------------------------------------------------------------


def links_to(tx: Tx, previousdoc: str) -> list[dict[str, Any]]:
    """The applications made to a document (by payments, credit memos, refunds)."""
    return [row.data for row in tx.page(SYSTEM, LINK, [("data.previousdoc", "=", previousdoc)])]


def links_from(tx: Tx, nextdoc: str) -> list[dict[str, Any]]:
    """The applications a document makes."""
    return [row.data for row in tx.page(SYSTEM, LINK, [("data.nextdoc", "=", nextdoc)])]


def applied_to(tx: Tx, previousdoc: str, *, excluding: str = "") -> Decimal:
    return sum(
        (Decimal(link["foreignamount"]) for link in links_to(tx, previousdoc) if link["nextdoc"] != excluding),
        Decimal(0),
    )


def replace_links(tx: Tx, nextdoc: str, nexttype: str, applications: list[dict[str, Any]], *, today: str) -> None:
    for link in links_from(tx, nextdoc):
        tx.delete(SYSTEM, LINK, link["id"])
    for line, application in enumerate(applications):
        link_id = f"{nextdoc}:{application['doc']}"
        tx.put(
            SYSTEM,
            LINK,
            link_id,
            {
                "id": link_id,
                "previousdoc": application["doc"],
                "previoustype": application["type"],
                "previousline": 0,
                "nextdoc": nextdoc,
                "nexttype": nexttype,
                "nextline": line + 1,
                "linktype": "Payment",
                "foreignamount": str(application["amount"]),
                "lastmodifieddate": today,
            },
        )


def drop_links(tx: Tx, nextdoc: str) -> None:
    for link in links_from(tx, nextdoc):
        tx.delete(SYSTEM, LINK, link["id"])


def open_amount(tx: Tx, document: dict[str, Any], *, excluding: str = "") -> Decimal:
    """What is still open on an A/R document, leaving out what `excluding` applies."""
    return Decimal(document["amount"]) - applied_to(tx, document["id"], excluding=excluding)


# -- apply sublists --------------------------------------------------------------------------


def apply_lines(body: dict[str, Any], current: list[dict[str, Any]], *, replace: bool) -> list[dict[str, Any]]:
    """The apply sublist after this request: lines are keyed by `doc`; a sent line
    replaces the stored one of its doc, and the others stay unless the request replaces
    the sublist (`replace=apply`, or a new record). `apply: false` or amount 0 unapplies."""
    sent = (body.get("apply") or {}).get("items")
    if sent is None:
        return current
    if not isinstance(sent, list):
        raise error(400, "INVALID_CONTENT", "apply.items must be an array.", path="apply")
    lines = {} if replace else {line["doc"]: line for line in current}
    for index, item in enumerate(sent):
        path = f"apply.items[{index}]"
        if not isinstance(item, dict):
            raise error(400, "INVALID_CONTENT", f"{path} must be an object.", path=path)
        doc = str((item.get("doc") or {}).get("id") or "")
        if not doc:
            raise error(400, "USER_ERROR", "Please enter value(s) for: Document", path=f"{path}.doc")
        applying = item.get("apply", True)
        if not isinstance(applying, bool):
            raise error(400, "INVALID_VALUE", f"Invalid value {applying!r} for apply: true or false.", path=path)
        amount = checked_amount(item.get("amount", 0), f"{path}.amount")
        if not applying or amount == 0:
            lines.pop(doc, None)
            continue
        lines[doc] = {"doc": doc, "amount": amount, "index": index}
    return list(lines.values())


def check_total(applied: Decimal, available: Decimal, what: str) -> None:
    if applied > available:
        # unverified: NetSuite's exact code and wording for an over-applied transaction.
        raise error(
            400,
            "USER_ERROR",
            f"The total amount applied ({applied}) cannot exceed the {what} ({available}).",
            path="apply",
        )


def stored_lines(record: dict[str, Any] | None) -> list[dict[str, Any]]:
    if record is None:
        return []
    return [
        {"doc": line["doc"]["id"], "amount": Decimal(line["amount"])}
        for line in (record.get("apply") or {}).get("items") or []
    ]


def render_apply(record: dict[str, Any]) -> dict[str, Any]:
    items = [
        {**line, "amount": Decimal(line["amount"]), "total": Decimal(line.get("total") or line["amount"])}
        for line in (record.get("apply") or {}).get("items") or []
    ]
    return {"items": items, "count": len(items), "totalResults": len(items), "hasMore": False}
