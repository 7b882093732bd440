"""What every record type of the REST record service shares: its URL, the external-id index,
and the refusals of a reference or body it cannot take."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from sandbox.netsuite import SYSTEM
from sandbox.netsuite.errors import error
from sandbox.store import Tx


def location(request: Request, record_type: str, internal_id: str) -> str:
    base = str(request.base_url).rstrip("/")
    return f"{base}/netsuite/services/rest/record/v1/{record_type}/{internal_id}"


def by_external_id(tx: Tx, record_type: str, external_id: str) -> str | None:
    """The internal id of the record of `record_type` with that external id, if any."""
    ref = tx.get(SYSTEM, "externalId", f"{record_type}:{external_id}")
    return None if ref is None else ref["internalId"]


def internal_id_of(tx: Tx, record_type: str, ref: str) -> str | None:
    """A reference in a path: an internal id, or `eid:` and an external id."""
    return by_external_id(tx, record_type, ref[4:]) if ref.startswith("eid:") else ref


def external_id_for_put(ref: str) -> str:
    if not ref.startswith("eid:"):
        raise error(400, "INVALID_REQUEST", "PUT is only supported with an external id (eid:...).")
    return ref[4:]


def json_object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise error(400, "INVALID_CONTENT", "The request body must be a JSON object.")
    return body
