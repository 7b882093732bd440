"""A subset of Avalara AvaTax REST v2: create, commit, void and read transactions.

Tax = line amount x the rate of the address's region, rounded half-up to the cent per
line; the document's tax is the sum of its lines. The rate table is a documented
stand-in, not real jurisdiction data.

Error code names and numbers (MissingAddress 304, DocumentCodeConflict 303,
EntityNotFoundError 4, TransactionAlreadyCancelled 198, MissingLine 311,
AuthenticationException 30) come from the ErrorCodeId enum of Avalara's published
SDKs. Which of them the real service picks for a *partially* filled address
(we answer MissingAddress), and that voiding a voided document is an error rather
than a no-op, is unverified.
"""

from __future__ import annotations

import base64
import re
import time
import uuid
from datetime import date
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from starlette.requests import Request
from starlette.responses import Response

from sandbox.core import ApiError, json_response
from sandbox.store import Condition, Tx

SYSTEM = "avatax"

# Combined sales-tax rates (percent) by US state used by the sandbox. Illustrative only.
US_STATE_RATES: dict[str, Decimal] = {
    "CA": Decimal("7.25"),
    "NY": Decimal("8.875"),
    "WA": Decimal("6.5"),
    "TX": Decimal("6.25"),
    "FL": Decimal("6"),
    "IL": Decimal("6.25"),
    "MA": Decimal("6.25"),
    "OR": Decimal("0"),
    "DE": Decimal("0"),
    "MT": Decimal("0"),
    "NH": Decimal("0"),
}
DEFAULT_RATE = Decimal("5")  # any other region (US state or foreign region)

CENT = Decimal("0.01")

ERROR_NUMBERS = {
    "EntityNotFoundError": 4,
    "AuthenticationException": 30,
    "ModelRequiredException": 38,
    "ValueRequiredError": 5,
    "TransactionAlreadyCancelled": 198,
    "DocumentCodeConflict": 303,
    "MissingAddress": 304,
    "MissingLine": 311,
    "SyntaxError": 19,
    "ServerConfiguration": 1,
    "TooManyRequests": 0,  # unverified: the name AvaTax uses for throttling
}


def rate_for(country: str, region: str) -> Decimal:
    if country.upper() in ("US", "USA"):
        return US_STATE_RATES.get(region.upper(), DEFAULT_RATE)
    return DEFAULT_RATE


def error(
    status: int, code: str, message: str, *, target: str = "IncorrectData", description: str = "", fault: str = "Client"
) -> ApiError:
    return ApiError(
        status,
        {
            "error": {
                "code": code,
                "message": message,
                "target": target,
                "details": [
                    {
                        "code": code,
                        "number": ERROR_NUMBERS.get(code, 0),
                        "message": message,
                        "description": description or message,
                        "faultCode": fault,
                        "helpLink": f"https://developer.avalara.com/avatax/errors/{code}",
                        "severity": "Error",
                    }
                ],
            }
        },
    )


def fault_response(status: int) -> Response:
    if status == 429:
        err = error(429, "TooManyRequests", "Too many requests (injected fault)", target="HttpRequest", fault="Server")
    else:
        err = error(
            status,
            "ServerConfiguration",
            "The AvaTax service is unavailable (injected fault)",
            target="AvaTaxApiServer",
            fault="Server",
        )
    return json_response(err.status, err.body)


def authenticate(request: Request) -> Response | None:
    header = request.headers.get("authorization", "")
    ok = False
    if header.lower().startswith("basic "):
        try:
            account, _, license_key = base64.b64decode(header[6:].strip()).decode().partition(":")
            ok = bool(account) and bool(license_key) and not license_key.startswith("invalid")
        except Exception:
            ok = False
    elif header.lower().startswith("bearer "):
        token = header[7:].strip()
        ok = bool(token) and not token.startswith("invalid")
    if ok:
        return None
    err = error(
        401,
        "AuthenticationException",
        "Authentication failed.",
        target="HttpRequestHeaders",
        description="The account id / license key you provided were not accepted.",
    )
    return json_response(401, err.body)


def _money(value: Any, target: str) -> Decimal:
    try:
        result = Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise error(400, "ValueRequiredError", f"Invalid amount for {target}: {value!r}") from None
    if not result.is_finite():
        raise error(400, "ValueRequiredError", f"Invalid amount for {target}: {value!r}")
    return result


def _key(company: str, code: str, type_: str) -> str:
    return f"{company}|{type_}|{code}"


def create_transaction(tx: Tx, body: dict[str, Any]) -> tuple[int, Any]:
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
    rate = rate_for(str(address["country"]), str(address["region"]))
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


def get_transaction(tx: Tx, body: Any, company: str, code: str, doc_type: str) -> tuple[int, Any]:
    return 200, render(_find(tx, company, code, doc_type))


def commit_transaction(tx: Tx, body: Any, company: str, code: str, doc_type: str) -> tuple[int, Any]:
    document = _find(tx, company, code, doc_type)
    if document["status"] == "Cancelled":
        raise error(400, "TransactionAlreadyCancelled", f"Transaction {code} is cancelled and cannot be committed.")
    if body.get("commit", True):
        document["status"] = "Committed"
    elif document["status"] == "Committed":
        document["status"] = "Saved"
    tx.put(SYSTEM, "transaction", _key(company, code, doc_type), document)
    return 200, render(document)


def void_transaction(tx: Tx, body: Any, company: str, code: str, doc_type: str) -> tuple[int, Any]:
    document = _find(tx, company, code, doc_type)
    reason = (body or {}).get("code")
    if reason not in ("DocVoided", "DocDeleted", "AdjustmentCancelled", "PostFailed"):
        raise error(400, "ValueRequiredError", "A void reason code (e.g. DocVoided) is required.")
    if document["status"] == "Cancelled":
        raise error(400, "TransactionAlreadyCancelled", f"Transaction {code} is already cancelled.")
    document["status"] = "Cancelled"
    tx.put(SYSTEM, "transaction", _key(company, code, doc_type), document)
    return 200, render(document)


# -- listing: ListTransactionsByCompany --------------------------------------------------------
#
# `GET /api/v2/companies/{companyCode}/transactions` with OData-like query options:
# `$filter`, `$top` (at most 1000), `$skip`, `$orderBy`, `$include`. The answer is a
# FetchResult: {"@recordsetCount": total, "value": [...], "@nextLink": url of the next
# page}. The $filter subset here: comparisons of date (eq ne gt ge lt le, and
# `date between 'a' and 'b'`, inclusive) and equality of status, type, code and
# customerCode, joined with `and`. Anything else is refused as AvaTax refuses a filter
# it cannot parse (code SyntaxError, number 19, as in Avalara's published error list;
# which code the service picks for each kind of mistake is unverified).

MAX_TOP = 1000  # unverified whether AvaTax refuses a larger $top or caps it; we refuse
_FILTER_FIELDS = {"date": "date", "status": "status", "type": "type", "code": "code", "customercode": "customerCode"}
_FILTER_OPS = {"eq": "=", "ne": "!=", "gt": ">", "ge": ">=", "lt": "<", "le": "<="}
_ORDER_FIELDS = {"id": "seq", "date": "day", "code": "data.code"}
_FILTER_TOKEN = re.compile(r"'(?:[^']|'')*'|[^\s']+|'")


def _filter_error(message: str) -> ApiError:
    return error(400, "SyntaxError", "Incorrect $filter parameter.", target="IncorrectData", description=message)


def _literal(token: str, field: str) -> str:
    if len(token) < 2 or token[0] != "'" or token[-1] != "'":
        raise _filter_error(f"Expected a quoted value after {field}, found {token!r}.")
    value = token[1:-1].replace("''", "'")
    if field == "date":
        try:
            date.fromisoformat(value)
        except ValueError:
            raise _filter_error(f"Invalid date {value!r}: use 'YYYY-MM-DD'.") from None
    return value


def parse_filter(text: str) -> list[Condition]:
    """A $filter as Tx.page conditions: date on the indexed day, the rest on the document."""
    tokens = _FILTER_TOKEN.findall(text)
    conditions: list[Condition] = []
    i = 0
    while i < len(tokens):
        if conditions:
            if tokens[i].lower() != "and":
                raise _filter_error(
                    f"Expected 'and' between conditions, found {tokens[i]!r} (only 'and' is supported)."
                )
            i += 1
        if i + 2 >= len(tokens):
            raise _filter_error(f"Incomplete condition at the end of the filter: {' '.join(tokens[i:])!r}.")
        name = _FILTER_FIELDS.get(tokens[i].lower())
        if name is None:
            raise _filter_error(
                f"Unsupported filter field {tokens[i]!r}: use one of date, status, type, code, customerCode."
            )
        op = tokens[i + 1].lower()
        if name == "date" and op == "between":
            if i + 4 >= len(tokens) or tokens[i + 3].lower() != "and":
                raise _filter_error("Use date between 'YYYY-MM-DD' and 'YYYY-MM-DD'.")
            low, high = _literal(tokens[i + 2], name), _literal(tokens[i + 4], name)
            conditions += [("day", ">=", low), ("day", "<=", high)]
            i += 5
            continue
        if op not in _FILTER_OPS or (name != "date" and op not in ("eq", "ne")):
            raise _filter_error(f"Unsupported operator {tokens[i + 1]!r} for {tokens[i]}.")
        value = _literal(tokens[i + 2], name)
        conditions.append(("day" if name == "date" else f"data.{name}", _FILTER_OPS[op], value))
        i += 3
    return conditions


def parse_order(text: str) -> list[tuple[str, bool]]:
    order: list[tuple[str, bool]] = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        words = part.split()
        field = _ORDER_FIELDS.get(words[0].lower())
        direction = words[1].upper() if len(words) > 1 else "ASC"
        if field is None or len(words) > 2 or direction not in ("ASC", "DESC"):
            raise error(
                400,
                "SyntaxError",
                "Incorrect $orderBy parameter.",
                description=f"Cannot sort by {part!r}: use id, date or code, ASC or DESC.",
            )
        order.append((field, direction == "DESC"))
    # Ties in insertion order (AvaTax's id order), so $skip pages never overlap.
    return [*order, ("seq", False)]


def _int_option(query: Any, name: str, default: int) -> int:
    raw = query.get(name)
    if raw in (None, ""):
        return default
    try:
        return int(raw)
    except ValueError:
        raise error(400, "ValueRequiredError", f"{name} must be a whole number, not {raw!r}.") from None


def list_transactions(tx: Tx, body: Any, company: str, query: Any, url: str) -> tuple[int, Any]:
    """ListTransactionsByCompany: the recorded transactions (invoices and returns; never
    SalesOrder quotes, which AvaTax does not record) of one company.

    $include is accepted and ignored: every transaction comes with its lines, as the
    single GET renders it (unverified whether AvaTax omits lines unless $include=Lines;
    the adapter asks for them)."""
    top = _int_option(query, "$top", MAX_TOP)
    skip = _int_option(query, "$skip", 0)
    if not 1 <= top <= MAX_TOP:
        raise error(400, "ValueRequiredError", f"$top must be between 1 and {MAX_TOP}.")
    if skip < 0:
        raise error(400, "ValueRequiredError", "$skip must not be negative.")
    where = [("scope", "=", company), *parse_filter(query.get("$filter") or "")]
    order = parse_order(query.get("$orderBy") or query.get("$orderby") or "")
    total = tx.count_where(SYSTEM, "transaction", where)
    value = [render(row.data) for row in tx.page(SYSTEM, "transaction", where, order_by=order, limit=top, offset=skip)]
    out: dict[str, Any] = {"@recordsetCount": total, "value": value}
    if skip + len(value) < total:
        out["@nextLink"] = _with_skip(url, skip + len(value))
    return 200, out


def _with_skip(url: str, skip: int) -> str:
    parts = urlsplit(url)
    pairs = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "$skip"]
    pairs.append(("$skip", str(skip)))
    return urlunsplit(parts._replace(query=urlencode(pairs, quote_via=quote, safe="$'")))


_COMPANY = r"/api/v2/companies/(?P<company>[^/]+)/transactions"
_DOC = _COMPANY + r"/(?P<code>[^/]+)"

ROUTES: list[tuple[str, str, Any]] = [
    ("POST", r"/api/v2/transactions/create", create_transaction),
    ("GET", _COMPANY, list_transactions),
    ("GET", _DOC, get_transaction),
    ("POST", _DOC + r"/commit", commit_transaction),
    ("POST", _DOC + r"/void", void_transaction),
]


def run(store, handler, method: str, path: str, request: Request, body: Any, groups: dict[str, str]) -> Response:
    if handler is list_transactions:
        groups = {**groups, "query": request.query_params, "url": str(request.url)}
    elif "company" in groups:
        groups = {**groups, "doc_type": request.query_params.get("documentType", "SalesInvoice")}
    try:
        with store.tx() as tx:
            status, out = handler(tx, body, **groups)
        return json_response(status, out)
    except ApiError as exc:
        return json_response(exc.status, exc.body, exc.headers)
