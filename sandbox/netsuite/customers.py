"""Customer records (`/record/v1/customer`).

`PUT /customer/eid:{externalId}` upserts (204 + Location), `GET /customer/{id|eid:..}`
reads. Fields as far as we know NetSuite's REST customer record: companyName (required
for a company), isPerson, email, subsidiary {id} (required in OneWorld), currency,
and the addressBook sublist whose lines hold an addressBookAddress subrecord (addr1,
city, state, zip, country {id}). Simplification: a sent sublist replaces the stored
one (NetSuite merges sublist lines unless asked to replace them)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from sandbox.netsuite import SYSTEM
from sandbox.netsuite.errors import error
from sandbox.netsuite.records import by_external_id, external_id_for_put, internal_id_of, json_object, location
from sandbox.store import Tx

CUSTOMER = "customer"


def upsert_customer(tx: Tx, request: Request, body: Any, ref: str) -> tuple[int, Any, dict[str, str]]:
    external_id = external_id_for_put(ref)
    body = json_object(body)
    internal_id = by_external_id(tx, CUSTOMER, external_id)
    current = tx.get(SYSTEM, CUSTOMER, internal_id) if internal_id else None
    record = {**(current or {}), **{k: v for k, v in body.items() if k not in ("id", "links", "externalId")}}
    record.pop("placeholder", None)  # a customer a transaction named before it was upserted
    if not record.get("isPerson") and not record.get("companyName"):
        raise error(400, "USER_ERROR", "Please enter value(s) for: Company Name", path="companyName")
    if not str((record.get("subsidiary") or {}).get("id") or ""):
        raise error(400, "USER_ERROR", "Please enter value(s) for: Primary Subsidiary", path="subsidiary")
    items = (record.get("addressBook") or {}).get("items") or []
    if not isinstance(items, list):
        raise error(400, "INVALID_CONTENT", "addressBook.items must be an array.", path="addressBook")
    if internal_id is None:
        internal_id = str(tx.count(SYSTEM, CUSTOMER) + 1001)
        tx.put(
            SYSTEM,
            "externalId",
            f"{CUSTOMER}:{external_id}",
            {"id": f"{CUSTOMER}:{external_id}", "internalId": internal_id},
        )
    record.update(
        {
            "id": internal_id,
            "externalId": external_id,
            "entityId": record.get("entityId") or record.get("companyName") or external_id,
            "isPerson": bool(record.get("isPerson", False)),
            "subsidiary": {"id": str(record["subsidiary"]["id"])},
            "addressBook": {"items": [{**item, "id": index + 1} for index, item in enumerate(items)]},
        }
    )
    tx.put(SYSTEM, CUSTOMER, internal_id, record)
    return 204, None, {"Location": location(request, CUSTOMER, internal_id)}


def get_customer(tx: Tx, request: Request, body: Any, ref: str) -> tuple[int, Any, dict[str, str]]:
    internal_id = internal_id_of(tx, CUSTOMER, ref)
    record = tx.get(SYSTEM, CUSTOMER, internal_id) if internal_id else None
    if not internal_id or record is None:
        raise error(
            404,
            "NONEXISTENT_ID",
            f"The record instance does not exist. Provide a valid record instance ID ({ref}).",
            path="id",
        )
    items = record["addressBook"]["items"]
    out = {
        **record,
        "addressBook": {"items": items, "count": len(items), "totalResults": len(items), "hasMore": False},
        "links": [{"rel": "self", "href": location(request, CUSTOMER, internal_id)}],
    }
    return 200, out, {}
