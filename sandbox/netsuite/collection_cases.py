"""o2c's AR collection cases, custom record customrecord_o2c_collection_case.

NetSuite exposes custom record types through the same REST record service
(`/record/v1/customrecord_<id>`), with the same external-ID upsert. The record type
and its field ids (custrecord_o2c_*) are o2c's own: an account would define them."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from starlette.requests import Request

from sandbox.netsuite import SYSTEM
from sandbox.netsuite.errors import checked_amount, error
from sandbox.netsuite.records import by_external_id, external_id_for_put, internal_id_of, json_object, location
from sandbox.store import Tx

CASE_TYPE = "customrecord_o2c_collection_case"
CASE_STAGES_OPEN = ("open", "closed")


def upsert_case(tx: Tx, request: Request, body: Any, ref: str) -> tuple[int, Any, dict[str, str]]:
    external_id = external_id_for_put(ref)
    body = json_object(body)
    for name in ("custrecord_o2c_customer", "custrecord_o2c_invoice", "custrecord_o2c_stage"):
        if not body.get(name):
            raise error(400, "USER_ERROR", f"Please enter value(s) for: {name}", path=name)
    if body.get("custrecord_o2c_amount") is not None:
        checked_amount(body["custrecord_o2c_amount"], "custrecord_o2c_amount")
    status = body.get("custrecord_o2c_status") or "open"
    if status not in CASE_STAGES_OPEN:
        raise error(400, "INVALID_VALUE", f"Invalid status {status!r}: open or closed.", path="custrecord_o2c_status")
    internal_id = by_external_id(tx, CASE_TYPE, external_id)
    current = tx.get(SYSTEM, CASE_TYPE, internal_id) if internal_id else None
    if internal_id is None:
        internal_id = str(tx.count(SYSTEM, CASE_TYPE) + 1)
        tx.put(
            SYSTEM,
            "externalId",
            f"{CASE_TYPE}:{external_id}",
            {"id": f"{CASE_TYPE}:{external_id}", "internalId": internal_id},
        )
    record = {**(current or {}), **{k: v for k, v in body.items() if k not in ("id", "links")}}
    amount = record.get("custrecord_o2c_amount")
    record.update(
        {
            "id": internal_id,
            "externalId": external_id,
            "custrecord_o2c_status": status,
            "custrecord_o2c_amount": None if amount is None else str(amount),
            "name": record.get("name") or f"Collection {record['custrecord_o2c_invoice']}",
        }
    )
    tx.put(SYSTEM, CASE_TYPE, internal_id, record)
    history = tx.get(SYSTEM, "collectionCaseHistory", internal_id) or {"id": internal_id, "stages": []}
    history["stages"].append(record["custrecord_o2c_stage"])
    tx.put(SYSTEM, "collectionCaseHistory", internal_id, history)
    return 204, None, {"Location": location(request, CASE_TYPE, internal_id)}


def get_case(tx: Tx, request: Request, body: Any, ref: str) -> tuple[int, Any, dict[str, str]]:
    internal_id = internal_id_of(tx, CASE_TYPE, ref)
    record = tx.get(SYSTEM, CASE_TYPE, internal_id) if internal_id else None
    if not internal_id or record is None:
        raise error(
            404,
            "NONEXISTENT_ID",
            f"The record instance does not exist. Provide a valid record instance ID ({ref}).",
            path="id",
        )
    out = dict(record)
    if out.get("custrecord_o2c_amount") is not None:
        out["custrecord_o2c_amount"] = Decimal(out["custrecord_o2c_amount"])
    out["links"] = [{"rel": "self", "href": location(request, CASE_TYPE, internal_id)}]
    return 200, out, {}
