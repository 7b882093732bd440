"""SuiteQL over REST: POST /services/rest/query/v1/suiteql?limit=&offset=

With `Prefer: transient` (NetSuite refuses the call without it) and {"q": "SELECT ..."}.
The answer pages by limit/offset: {"links", "count", "hasMore", "items", "offset",
"totalResults"}, every value a string and NULLs left out. REST SuiteQL returns at most
100,000 rows of a query, so a listing pages by a key (id > last id), not by offset.
The subset of SuiteQL understood is described in suiteql.py. Unverified: the error
codes and wording for a missing Prefer header, an offset past the cap and a query
NetSuite cannot run (we answer INVALID_HEADER / INVALID_PARAMETER with a detail)."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from starlette.requests import Request

from sandbox.netsuite import suiteql
from sandbox.netsuite.errors import error
from sandbox.store import Tx

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
