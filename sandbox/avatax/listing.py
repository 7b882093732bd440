"""ListTransactionsByCompany: one company's recorded transactions, filtered ($filter),
ordered ($orderBy) and paged ($top, $skip) in SQL.

`GET /api/v2/companies/{companyCode}/transactions` with OData-like query options:
`$filter`, `$top` (at most 1000), `$skip`, `$orderBy`, `$include`. The answer is a
FetchResult: {"@recordsetCount": total, "value": [...], "@nextLink": url of the next
page}. The $filter subset here: comparisons of date (eq ne gt ge lt le, and
`date between 'a' and 'b'`, inclusive) and equality of status, type, code and
customerCode, joined with `and`. Anything else is refused as AvaTax refuses a filter
it cannot parse (code SyntaxError, number 19, as in Avalara's published error list;
which code the service picks for each kind of mistake is unverified)."""

from __future__ import annotations

import re
from datetime import date
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from starlette.requests import Request

from sandbox.avatax import SYSTEM
from sandbox.avatax.errors import error
from sandbox.avatax.transactions import render
from sandbox.core import ApiError
from sandbox.store import Condition, Tx

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


def list_transactions(tx: Tx, request: Request, body: Any, company: str) -> tuple[int, Any]:
    """ListTransactionsByCompany: the recorded transactions (invoices and returns; never
    SalesOrder quotes, which AvaTax does not record) of one company.

    $include is accepted and ignored: every transaction comes with its lines, as the
    single GET renders it (unverified whether AvaTax omits lines unless $include=Lines;
    the adapter asks for them)."""
    query = request.query_params
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
        out["@nextLink"] = _with_skip(str(request.url), skip + len(value))
    return 200, out


def _with_skip(url: str, skip: int) -> str:
    parts = urlsplit(url)
    pairs = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "$skip"]
    pairs.append(("$skip", str(skip)))
    return urlunsplit(parts._replace(query=urlencode(pairs, quote_via=quote, safe="$'")))
