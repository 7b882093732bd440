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
from sandbox.store import Tx

CASE_TYPE = "customrecord_o2c_collection_case"
CASE_STAGES_OPEN = ("open", "closed")


def _case_location(request: Request, internal_id: str) -> str:
    base = str(request.base_url).rstrip("/")
    return f"{base}/netsuite/services/rest/record/v1/{CASE_TYPE}/{internal_id}"


def _case_by_external(tx: Tx, external_id: str) -> str | None:
    ref = tx.get(SYSTEM, "externalId", f"{CASE_TYPE}:{external_id}")
    return None if ref is None else ref["internalId"]


def upsert_case(tx: Tx, request: Request, body: Any, ref: str) -> tuple[int, Any, dict[str, str]]:
    if not ref.startswith("eid:"):
        raise error(400, "INVALID_REQUEST", "PUT is only supported with an external id (eid:...).")
    external_id = ref[4:]
    if not isinstance(body, dict):
        raise error(400, "INVALID_CONTENT", "The request body must be a JSON object.")
    for name in ("custrecord_o2c_customer", "custrecord_o2c_invoice", "custrecord_o2c_stage"):
        if not body.get(name):
            raise error(400, "USER_ERROR", f"Please enter value(s) for: {name}", path=name)
    if body.get("custrecord_o2c_amount") is not None:
        checked_amount(body["custrecord_o2c_amount"], "custrecord_o2c_amount")
    status = body.get("custrecord_o2c_status") or "open"
    if status not in CASE_STAGES_OPEN:
        raise error(400, "INVALID_VALUE", f"Invalid status {status!r}: open or closed.", path="custrecord_o2c_status")
    internal_id = _case_by_external(tx, external_id)
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
    return 204, None, {"Location": _case_location(request, internal_id)}


def get_case(tx: Tx, request: Request, body: Any, ref: str) -> tuple[int, Any, dict[str, str]]:
    internal_id = _case_by_external(tx, ref[4:]) if ref.startswith("eid:") else ref
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
    out["links"] = [{"rel": "self", "href": _case_location(request, internal_id)}]
    return 200, out, {}
