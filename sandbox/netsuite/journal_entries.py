"""Journal entries (`/record/v1/journalEntry`): create, upsert by external id, read.

Entries must balance, and a posting date inside a closed accounting period of the
subsidiary is refused (periods are closed through the sandbox's control plane)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

from starlette.requests import Request

from sandbox.netsuite import SYSTEM
from sandbox.netsuite.applications import customer_id, customer_ref, index_journal_entry
from sandbox.netsuite.errors import checked_amount, error
from sandbox.netsuite.records import by_external_id, external_id_for_put, internal_id_of, json_object, location
from sandbox.store import Tx

JOURNAL_ENTRY = "journalEntry"


def period_key(subsidiary: str, period: str) -> str:
    return f"{subsidiary}:{period}"


def _validate(tx: Tx, body: Any) -> dict[str, Any]:
    body = json_object(body)
    subsidiary = str((body.get("subsidiary") or {}).get("id") or "")
    if not subsidiary:
        raise error(400, "USER_ERROR", "Please enter value(s) for: Subsidiary", path="subsidiary")
    currency = body.get("currency") or {}
    if not (currency.get("id") or currency.get("refName")):
        raise error(400, "USER_ERROR", "Please enter value(s) for: Currency", path="currency")
    try:
        tran_date = date.fromisoformat(str(body.get("tranDate") or ""))
    except ValueError:
        raise error(400, "INVALID_VALUE", f"Invalid date {body.get('tranDate')!r}.", path="tranDate") from None
    items = ((body.get("line") or {}).get("items")) or []
    if not items:
        raise error(400, "USER_ERROR", "A journal entry needs at least two lines.", path="line")
    debits = Decimal(0)
    credits = Decimal(0)
    lines = []
    for index, item in enumerate(items):
        account = str((item.get("account") or {}).get("id") or "")
        if not account:
            raise error(400, "USER_ERROR", "Please enter value(s) for: Account", path=f"line.items[{index}].account")
        debit = checked_amount(item["debit"], f"line.items[{index}].debit") if item.get("debit") is not None else None
        credit = (
            checked_amount(item["credit"], f"line.items[{index}].credit") if item.get("credit") is not None else None
        )
        if (debit is None) == (credit is None):
            raise error(400, "USER_ERROR", "Each line needs either a debit or a credit.", path=f"line.items[{index}]")
        debits += debit or 0
        credits += credit or 0
        line = {
            "line": index,
            "account": {"id": account},
            "debit": None if debit is None else str(debit),
            "credit": None if credit is None else str(credit),
            "memo": item.get("memo") or "",
        }
        if item.get("entity") is not None:
            line["entity"] = {"id": customer_id(tx, item["entity"], f"line.items[{index}].entity")}
        lines.append(line)
    if debits != credits:
        raise error(
            400,
            "USER_ERROR",
            f"The total of the debit lines ({debits}) must equal the total of the credit lines ({credits}).",
            path="line",
        )
    period = tran_date.strftime("%Y-%m")
    state = tx.get(SYSTEM, "accountingPeriod", period_key(subsidiary, period))
    if state and state.get("closed"):
        raise error(
            400,
            "USER_ERROR",
            f"The accounting period {period} is closed for subsidiary {subsidiary}; "
            f"you cannot post a transaction dated {tran_date.isoformat()} in it.",
            path="postingPeriod",
        )
    record = {k: v for k, v in body.items() if k not in ("line", "id")}
    record.update(
        {
            "subsidiary": {"id": subsidiary},
            "currency": currency,
            "tranDate": tran_date.isoformat(),
            "memo": body.get("memo") or "",
            "line": {"items": lines},
        }
    )
    return record


def _save(tx: Tx, record: dict[str, Any], internal_id: str | None) -> str:
    if internal_id is None:
        internal_id = str(tx.count(SYSTEM, JOURNAL_ENTRY) + 101)
    record["id"] = internal_id
    record["tranId"] = f"JE{int(internal_id):06d}"
    tx.put(SYSTEM, JOURNAL_ENTRY, internal_id, record)
    index_journal_entry(tx, record)
    if record.get("externalId"):
        tx.put(
            SYSTEM,
            "externalId",
            f"{JOURNAL_ENTRY}:{record['externalId']}",
            {"id": f"{JOURNAL_ENTRY}:{record['externalId']}", "internalId": internal_id},
        )
    return internal_id


def create(tx: Tx, request: Request, body: Any) -> tuple[int, Any, dict[str, str]]:
    record = _validate(tx, body)
    external_id = record.get("externalId")
    if external_id and by_external_id(tx, JOURNAL_ENTRY, str(external_id)):
        raise error(400, "DUP_RCRD", f"A record with external ID {external_id} already exists.", path="externalId")
    internal_id = _save(tx, record, None)
    return 204, None, {"Location": location(request, JOURNAL_ENTRY, internal_id)}


def upsert(tx: Tx, request: Request, body: Any, external_id: str) -> tuple[int, Any, dict[str, str]]:
    record = _validate(tx, body)
    record["externalId"] = external_id
    internal_id = _save(tx, record, by_external_id(tx, JOURNAL_ENTRY, external_id))
    return 204, None, {"Location": location(request, JOURNAL_ENTRY, internal_id)}


def _render(tx: Tx, record: dict[str, Any], request: Request) -> dict[str, Any]:
    out = dict(record)
    items = [
        {
            **item,
            "debit": None if item["debit"] is None else Decimal(item["debit"]),
            "credit": None if item["credit"] is None else Decimal(item["credit"]),
            **({"entity": customer_ref(tx, item["entity"]["id"])} if item.get("entity") else {}),
        }
        for item in record["line"]["items"]
    ]
    out["line"] = {"items": items, "count": len(items), "totalResults": len(items), "hasMore": False}
    out["links"] = [{"rel": "self", "href": location(request, JOURNAL_ENTRY, record["id"])}]
    return out


def get(tx: Tx, request: Request, body: Any, ref: str) -> tuple[int, Any, dict[str, str]]:
    internal_id = internal_id_of(tx, JOURNAL_ENTRY, ref)
    record = tx.get(SYSTEM, JOURNAL_ENTRY, internal_id) if internal_id else None
    if record is None:
        raise error(
            404,
            "NONEXISTENT_ID",
            f"The record instance does not exist. Provide a valid record instance ID ({ref}).",
            path="id",
        )
    return 200, _render(tx, record, request), {}


def put_by_ref(tx: Tx, request: Request, body: Any, ref: str) -> tuple[int, Any, dict[str, str]]:
    return upsert(tx, request, body, external_id_for_put(ref))
