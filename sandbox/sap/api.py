"""The SAP stand-in's routes, its basic authentication and its answers to injected faults."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from sandbox.routing import Handler, Routes, System
from sandbox.sap import SYSTEM
from sandbox.sap.business_partners import (
    SERVICE as BP_SERVICE,
)
from sandbox.sap.business_partners import (
    create_customer_company,
    create_partner,
    csrf_fetch,
    get_partner,
    list_partners,
    update_partner,
)
from sandbox.sap.items import SERVICE as CUBE_SERVICE
from sandbox.sap.items import list_items
from sandbox.sap.journal_entries import post
from sandbox.sap.odata import ODataError, error_response, odata_json
from sandbox.sap.soap import SchemaError, confirmation, fault, read_request, xml_response
from sandbox.store import Store, Tx

SYNC_PATH = "/sap/bc/srt/scs_ext/sap/journalentrycreaterequestconfi"
# unverified: the async service's path on the tenant (named like the sync one's).
BULK_PATH = "/sap/bc/srt/scs_ext/sap/journalentrybulkcreationrequest"
MESSAGE = "bulkMessage"


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def post_sync(tx: Tx, request: Request, body: bytes) -> Response:
    bulk = read_request(body)
    results = [post(tx, entry) for entry in bulk.entries]
    return xml_response(200, confirmation(bulk.message_id, _now(), results))


def post_bulk(tx: Tx, request: Request, body: bytes) -> Response:
    """Accepted for processing (202, no body); each entry's outcome goes to the Message
    Dashboard (here: `bulkMessage` documents, read through the control plane). A reused
    MessageHeader/ID is rejected as a whole."""
    bulk = read_request(body, async_service=True)
    if tx.get(SYSTEM, MESSAGE, bulk.message_id) is not None:
        tx.put(
            SYSTEM,
            MESSAGE,
            f"{bulk.message_id}:rejected:{tx.count(SYSTEM, MESSAGE)}",
            {"MessageID": bulk.message_id, "status": "rejected", "note": "Message ID already processed"},
        )
        return Response(status_code=202)
    outcomes = []
    for entry in bulk.entries:
        result = post(tx, entry)
        outcomes.append(
            {
                "MessageID": entry.message_id,
                "AccountingDocument": result.accounting_document,
                "CompanyCode": result.company_code,
                "FiscalYear": result.fiscal_year,
                "MaximumLogItemSeverityCode": result.max_severity,
                "notes": [item.note for item in result.log],
            }
        )
    status = "error" if any(o["MaximumLogItemSeverityCode"] == "3" for o in outcomes) else "processed"
    tx.put(SYSTEM, MESSAGE, bulk.message_id, {"MessageID": bulk.message_id, "status": status, "entries": outcomes})
    return Response(status_code=202)


def _json(body: bytes) -> Any:
    try:
        return json.loads(body, parse_float=Decimal) if body else {}
    except json.JSONDecodeError:
        raise ODataError(400, "/IWBEP/CM_MGW_RT/004", "Malformed JSON in the request body") from None


def _odata_read(read: Callable[..., Response]) -> Handler:
    def handler(tx: Tx, request: Request, body: bytes, **params: str) -> Response:
        headers = csrf_fetch(tx, request)
        response = read(tx, request, **params)
        for name, value in headers.items():
            response.headers.append(name, value)
        return response

    return handler


def _odata_write(write: Callable[..., Response]) -> Handler:
    def handler(tx: Tx, request: Request, body: bytes, **params: str) -> Response:
        return write(tx, request, _json(body), **params)

    return handler


def _metadata(tx: Tx, request: Request) -> Response:
    # A CSRF token is commonly fetched with GET on the service root.
    return odata_json(200, {"d": {"EntitySets": ["A_BusinessPartner", "A_CustomerCompany"]}})


ROUTES: Routes = [
    ("POST", SYNC_PATH, post_sync),
    ("POST", BULK_PATH, post_bulk),
    ("GET", CUBE_SERVICE + "/A_OperationalAcctgDocItemCube", _odata_read(lambda tx, request: list_items(tx, request))),
    ("GET", BP_SERVICE, _odata_read(_metadata)),
    ("GET", BP_SERVICE + "/A_BusinessPartner", _odata_read(list_partners)),
    ("GET", BP_SERVICE + "/A_BusinessPartner('{number}')", _odata_read(get_partner)),
    ("POST", BP_SERVICE + "/A_BusinessPartner", _odata_write(create_partner)),
    ("PATCH", BP_SERVICE + "/A_BusinessPartner('{number}')", _odata_write(update_partner)),
    ("POST", BP_SERVICE + "/A_CustomerCompany", _odata_write(create_customer_company)),
]


def run(
    store: Store, handler: Handler, method: str, path: str, request: Request, body: Any, params: dict[str, str]
) -> Response:
    """Each request in one unit of work; a refusal writes nothing."""
    try:
        with store.tx() as tx:
            response: Response = handler(tx, request, body, **params)
            if response.status_code >= 400:
                raise _Undo(response)
        return response
    except _Undo as undo:
        return undo.response
    except SchemaError as exc:
        return fault(f"Web service processing error; more details in the web service error log: {exc}")
    except ODataError as exc:
        return error_response(exc)


class _Undo(Exception):
    """Roll back the unit of work of a refused write and answer its refusal."""

    def __init__(self, response: Response):
        self.response = response


def authenticate(request: Request) -> Response | None:
    """Basic auth of the communication user: any user, any password except those starting
    with "invalid" (so tests provoke a refusal)."""
    header = request.headers.get("authorization", "")
    if header.lower().startswith("basic "):
        try:
            user, _, password = base64.b64decode(header[6:].strip()).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            user, password = "", ""
        if user and password and not password.startswith("invalid"):
            return None
    return Response(
        b"<html><body>Logon failed</body></html>",
        status_code=401,
        headers={"www-authenticate": 'Basic realm="SAP NetWeaver Application Server [SBX/100]"'},
        media_type="text/html",
    )


def fault_response(status: int) -> Response:
    if status == 429:
        return Response(b"Too many requests", status_code=429, media_type="text/plain")
    return fault("Internal server error (injected fault)", "soap-env:Server", status)


def not_found(message: str) -> Response:
    return error_response(ODataError(404, "/IWFND/MED/170", f"No service found: {message}"))


SAP = System(SYSTEM, ROUTES, authenticate, fault_response, not_found, run, raw_body=True)
