"""A subset of NetSuite SuiteTalk REST: the record service (journal entries, customers,
o2c's AR collection cases as a custom record) and SuiteQL queries over journal entries.

`POST /journalEntry` creates and `PUT /journalEntry/eid:{externalId}` upserts; both
answer 204 with a `Location` header holding the record's internal id. Entries must
balance, and a posting date inside a closed accounting period of the subsidiary is
refused (periods are closed through the sandbox's control plane).

Error codes: NONEXISTENT_ID, USER_ERROR and INVALID_LOGIN_ATTEMPT are NetSuite's
usual codes as far as we know; the exact code and wording NetSuite uses for a closed
period and an unbalanced entry are unverified (we answer USER_ERROR with
o:errorPath `postingPeriod` and `line`).
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from starlette.requests import Request
from starlette.responses import Response

from sandbox import suiteql
from sandbox.core import ApiError, bearer_accepted, json_response
from sandbox.store import Tx

SYSTEM = "netsuite"

_TYPES = {
    400: "https://www.rfc-editor.org/rfc/rfc9110.html#section-15.5.1",
    401: "https://www.rfc-editor.org/rfc/rfc9110.html#section-15.5.2",
    404: "https://www.rfc-editor.org/rfc/rfc9110.html#section-15.5.5",
    429: "https://www.rfc-editor.org/rfc/rfc6585.html#section-4",
    500: "https://www.rfc-editor.org/rfc/rfc9110.html#section-15.6.1",
}
_TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
}


def error(status: int, code: str, detail: str, *, path: str | None = None) -> ApiError:
    item: dict[str, Any] = {"detail": detail, "o:errorCode": code}
    if path:
        item["o:errorPath"] = path
    return ApiError(
        status,
        {
            "type": _TYPES.get(status, _TYPES[500] if status >= 500 else _TYPES[400]),
            "title": _TITLES.get(status, "Error"),
            "status": status,
            "o:errorDetails": [item],
        },
    )


def fault_response(status: int) -> Response:
    if status == 429:
        # unverified: NetSuite's concurrency-limit answer; PROTOCOLS.md assumes 429.
        err = error(429, "CONCURRENCY_LIMIT_EXCEEDED", "Concurrent request limit exceeded (injected fault).")
    else:
        err = error(status, "UNEXPECTED_ERROR", "An unexpected error occurred (injected fault).")
    return json_response(err.status, err.body)


def authenticate(request: Request) -> Response | None:
    if bearer_accepted(request):
        return None
    err = error(401, "INVALID_LOGIN_ATTEMPT", "Invalid login attempt. For more details, see the Login Audit Trail.")
    return json_response(401, err.body)


def period_key(subsidiary: str, period: str) -> str:
    return f"{subsidiary}:{period}"


def _amount(value: Any, path: str) -> Decimal:
    try:
        result = Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise error(400, "INVALID_VALUE", f"Invalid number {value!r}.", path=path) from None
    if not result.is_finite() or result < 0:
        raise error(400, "INVALID_VALUE", f"Invalid amount {value!r}.", path=path)
    return result


def _validate(tx: Tx, body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise error(400, "INVALID_CONTENT", "The request body must be a JSON object.")
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
        debit = _amount(item["debit"], f"line.items[{index}].debit") if item.get("debit") is not None else None
        credit = _amount(item["credit"], f"line.items[{index}].credit") if item.get("credit") is not None else None
        if (debit is None) == (credit is None):
            raise error(400, "USER_ERROR", "Each line needs either a debit or a credit.", path=f"line.items[{index}]")
        debits += debit or 0
        credits += credit or 0
        lines.append(
            {
                "line": index,
                "account": {"id": account},
                "debit": None if debit is None else str(debit),
                "credit": None if credit is None else str(credit),
                "memo": item.get("memo") or "",
            }
        )
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


def _location(request: Request, internal_id: str) -> str:
    base = str(request.base_url).rstrip("/")
    return f"{base}/netsuite/services/rest/record/v1/journalEntry/{internal_id}"


def _save(tx: Tx, record: dict[str, Any], internal_id: str | None) -> str:
    if internal_id is None:
        internal_id = str(tx.count(SYSTEM, "journalEntry") + 101)
    record["id"] = internal_id
    record["tranId"] = f"JE{int(internal_id):06d}"
    tx.put(SYSTEM, "journalEntry", internal_id, record)
    if record.get("externalId"):
        tx.put(
            SYSTEM,
            "externalId",
            f"journalEntry:{record['externalId']}",
            {"id": f"journalEntry:{record['externalId']}", "internalId": internal_id},
        )
    return internal_id


def _by_external(tx: Tx, external_id: str) -> str | None:
    ref = tx.get(SYSTEM, "externalId", f"journalEntry:{external_id}")
    return None if ref is None else ref["internalId"]


def create(tx: Tx, request: Request, body: Any) -> tuple[int, Any, dict[str, str]]:
    record = _validate(tx, body)
    external_id = record.get("externalId")
    if external_id and _by_external(tx, str(external_id)):
        raise error(400, "DUP_RCRD", f"A record with external ID {external_id} already exists.", path="externalId")
    internal_id = _save(tx, record, None)
    return 204, None, {"Location": _location(request, internal_id)}


def upsert(tx: Tx, request: Request, body: Any, external_id: str) -> tuple[int, Any, dict[str, str]]:
    record = _validate(tx, body)
    record["externalId"] = external_id
    internal_id = _save(tx, record, _by_external(tx, external_id))
    return 204, None, {"Location": _location(request, internal_id)}


def _render(record: dict[str, Any], request: Request) -> dict[str, Any]:
    out = dict(record)
    items = [
        {
            **item,
            "debit": None if item["debit"] is None else Decimal(item["debit"]),
            "credit": None if item["credit"] is None else Decimal(item["credit"]),
        }
        for item in record["line"]["items"]
    ]
    out["line"] = {"items": items, "count": len(items), "totalResults": len(items), "hasMore": False}
    out["links"] = [{"rel": "self", "href": _location(request, record["id"])}]
    return out


def get(tx: Tx, request: Request, body: Any, ref: str) -> tuple[int, Any, dict[str, str]]:
    internal_id = _by_external(tx, ref[4:]) if ref.startswith("eid:") else ref
    record = tx.get(SYSTEM, "journalEntry", internal_id) if internal_id else None
    if record is None:
        raise error(
            404,
            "NONEXISTENT_ID",
            f"The record instance does not exist. Provide a valid record instance ID ({ref}).",
            path="id",
        )
    return 200, _render(record, request), {}


def put_by_ref(tx: Tx, request: Request, body: Any, ref: str) -> tuple[int, Any, dict[str, str]]:
    if not ref.startswith("eid:"):
        raise error(400, "INVALID_REQUEST", "PUT is only supported with an external id (eid:...).")
    return upsert(tx, request, body, ref[4:])


# -- collection cases: custom record customrecord_o2c_collection_case ----------------------
#
# NetSuite exposes custom record types through the same REST record service
# (`/record/v1/customrecord_<id>`), with the same external-ID upsert. The record type
# and its field ids (custrecord_o2c_*) are o2c's own: an account would define them.

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
        _amount(body["custrecord_o2c_amount"], "custrecord_o2c_amount")
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
    if record is None:
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


# -- customers --------------------------------------------------------------------------
#
# `PUT /customer/eid:{externalId}` upserts (204 + Location), `GET /customer/{id|eid:..}`
# reads. Fields as far as we know NetSuite's REST customer record: companyName (required
# for a company), isPerson, email, subsidiary {id} (required in OneWorld), currency,
# and the addressBook sublist whose lines hold an addressBookAddress subrecord (addr1,
# city, state, zip, country {id}). Simplification: a sent sublist replaces the stored
# one (NetSuite merges sublist lines unless asked to replace them).

CUSTOMER = "customer"


def _customer_location(request: Request, internal_id: str) -> str:
    base = str(request.base_url).rstrip("/")
    return f"{base}/netsuite/services/rest/record/v1/customer/{internal_id}"


def _customer_by_external(tx: Tx, external_id: str) -> str | None:
    ref = tx.get(SYSTEM, "externalId", f"{CUSTOMER}:{external_id}")
    return None if ref is None else ref["internalId"]


def upsert_customer(tx: Tx, request: Request, body: Any, ref: str) -> tuple[int, Any, dict[str, str]]:
    if not ref.startswith("eid:"):
        raise error(400, "INVALID_REQUEST", "PUT is only supported with an external id (eid:...).")
    external_id = ref[4:]
    if not isinstance(body, dict):
        raise error(400, "INVALID_CONTENT", "The request body must be a JSON object.")
    internal_id = _customer_by_external(tx, external_id)
    current = tx.get(SYSTEM, CUSTOMER, internal_id) if internal_id else None
    record = {**(current or {}), **{k: v for k, v in body.items() if k not in ("id", "links", "externalId")}}
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
    return 204, None, {"Location": _customer_location(request, internal_id)}


def get_customer(tx: Tx, request: Request, body: Any, ref: str) -> tuple[int, Any, dict[str, str]]:
    internal_id = _customer_by_external(tx, ref[4:]) if ref.startswith("eid:") else ref
    record = tx.get(SYSTEM, CUSTOMER, internal_id) if internal_id else None
    if record is None:
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
        "links": [{"rel": "self", "href": _customer_location(request, internal_id)}],
    }
    return 200, out, {}


# -- SuiteQL: POST /services/rest/query/v1/suiteql?limit=&offset= ----------------------------
#
# With `Prefer: transient` (NetSuite refuses the call without it) and {"q": "SELECT ..."}.
# The answer pages by limit/offset: {"links", "count", "hasMore", "items", "offset",
# "totalResults"}, every value a string and NULLs left out. REST SuiteQL returns at most
# 100,000 rows of a query, so a listing pages by a key (id > last id), not by offset.
# The subset of SuiteQL understood is described in suiteql.py. Unverified: the error
# codes and wording for a missing Prefer header, an offset past the cap and a query
# NetSuite cannot run (we answer INVALID_HEADER / INVALID_PARAMETER with a detail).

SUITEQL_MAX_LIMIT = 1000
SUITEQL_MAX_RESULTS = 100_000


def _query_int(request: Request, name: str, default: int) -> int:
    raw = request.query_params.get(name)
    if raw in (None, ""):
        return default
    try:
        return int(raw)
    except ValueError:
        raise error(400, "INVALID_PARAMETER", f"Invalid value {raw!r} for query parameter {name}.", path=name) from None


def _with_offset(request: Request, offset: int) -> str:
    parts = urlsplit(str(request.url))
    pairs = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "offset"]
    pairs.append(("offset", str(offset)))
    return urlunsplit(parts._replace(query=urlencode(pairs)))


def suiteql_query(tx: Tx, request: Request, body: Any) -> tuple[int, Any, dict[str, str]]:
    prefer = [p.strip().lower() for p in request.headers.get("prefer", "").split(",")]
    if "transient" not in prefer:
        raise error(400, "INVALID_HEADER", "SuiteQL queries need the header 'Prefer: transient'.", path="Prefer")
    limit = _query_int(request, "limit", SUITEQL_MAX_LIMIT)
    offset = _query_int(request, "offset", 0)
    if not 1 <= limit <= SUITEQL_MAX_LIMIT:
        raise error(400, "INVALID_PARAMETER", f"The limit must be between 1 and {SUITEQL_MAX_LIMIT}.", path="limit")
    if offset < 0:
        raise error(400, "INVALID_PARAMETER", "The offset must not be negative.", path="offset")
    if offset + limit > SUITEQL_MAX_RESULTS:
        raise error(
            400,
            "INVALID_PARAMETER",
            f"A SuiteQL query returns at most {SUITEQL_MAX_RESULTS:,} results through REST web services; "
            f"offset {offset} + limit {limit} goes past them. Page by a key (e.g. id > last id) instead.",
            path="offset",
        )
    if not isinstance(body, dict) or not isinstance(body.get("q"), str):
        raise error(400, "INVALID_CONTENT", 'The request body must be a JSON object with the query in "q".')
    try:
        query = suiteql.parse(body["q"])
        rows, total = suiteql.execute(tx, query, offset=offset, limit=limit)
        items = [suiteql.project(query, row) for row in rows]
    except suiteql.SuiteQLError as exc:
        raise error(
            400, "INVALID_PARAMETER", f"Invalid search query. Detailed unprocessed description follows. {exc}", path="q"
        ) from None
    has_more = offset + len(items) < total
    links = [{"rel": "self", "href": str(request.url)}]
    if has_more:
        links.append({"rel": "next", "href": _with_offset(request, offset + limit)})
    return (
        200,
        {
            "links": links,
            "count": len(items),
            "hasMore": has_more,
            "items": items,
            "offset": offset,
            "totalResults": total,
        },
        {},
    )


_RECORD = r"/services/rest/record/v1/journalEntry"
_CASE = r"/services/rest/record/v1/" + CASE_TYPE

ROUTES: list[tuple[str, str, Any]] = [
    ("POST", _RECORD, create),
    ("PUT", _RECORD + r"/(?P<ref>[^/]+)", put_by_ref),
    ("GET", _RECORD + r"/(?P<ref>[^/]+)", get),
    ("PUT", r"/services/rest/record/v1/customer/(?P<ref>[^/]+)", upsert_customer),
    ("GET", r"/services/rest/record/v1/customer/(?P<ref>[^/]+)", get_customer),
    ("PUT", _CASE + r"/(?P<ref>[^/]+)", upsert_case),
    ("GET", _CASE + r"/(?P<ref>[^/]+)", get_case),
    ("POST", r"/services/rest/query/v1/suiteql", suiteql_query),
]


def run(store, handler, method: str, path: str, request: Request, body: Any, groups: dict[str, str]) -> Response:
    try:
        with store.tx() as tx:
            status, out, headers = handler(tx, request, body, **groups)
        return json_response(status, out, headers)
    except ApiError as exc:
        return json_response(exc.status, exc.body, exc.headers)
