"""OData V2 as SAP Gateway speaks it: system query options, the $filter subset the
stand-in evaluates (`eq ne ge gt le lt` joined by `and`; string, datetime'…', boolean and
number literals), JSON answers `{"d": {"results": [...]}}` and Gateway's error body."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from sandbox.core import dumps

OPS = {"eq": "=", "ne": "!=", "ge": ">=", "gt": ">", "le": "<=", "lt": "<"}
_TOKEN = re.compile(
    r"\s*(?:(?P<string>'(?:[^']|'')*')|(?P<datetime>datetime'[^']*')|(?P<word>[A-Za-z_][A-Za-z0-9_/]*)"
    r"|(?P<number>-?\d+(?:\.\d+)?)|(?P<paren>[()]))"
)
KNOWN_OPTIONS = ("$filter", "$top", "$skip", "$inlinecount", "$format", "$orderby", "$select", "$expand")


class ODataError(Exception):
    def __init__(self, status: int, code: str, message: str):
        self.status = status
        self.code = code
        self.message = message
        super().__init__(message)


@dataclass(frozen=True)
class Comparison:
    field: str
    op: str  # one of OPS' values
    value: Any  # str, bool, int, float, or an ISO date string for a datetime literal


def _tokens(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    position = 0
    text = text.strip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if not match or match.end() == position:
            raise ODataError(400, "/IWBEP/CM_MGW_RT/022", f"Invalid token at position {position} in $filter")
        kind = match.lastgroup or ""
        out.append((kind, match.group(kind)))
        position = match.end()
    return out


def _literal(kind: str, token: str) -> Any:
    if kind == "string":
        return token[1:-1].replace("''", "'")
    if kind == "datetime":
        raw = token[len("datetime'") : -1]
        try:
            return datetime.fromisoformat(raw).date().isoformat()
        except ValueError:
            raise ODataError(400, "/IWBEP/CM_MGW_RT/022", f"Invalid datetime literal {token}") from None
    if kind == "word" and token in ("true", "false"):
        return token == "true"
    if kind == "number":
        return float(token) if "." in token else int(token)
    raise ODataError(400, "/IWBEP/CM_MGW_RT/022", f"Invalid literal {token} in $filter")


def parse_filter(text: str, fields: frozenset[str]) -> list[Comparison]:
    """`A eq 'x' and B ge datetime'2024-04-01T00:00:00'` -> its comparisons (all must hold)."""
    tokens = [t for t in _tokens(text) if t[0] != "paren"]
    out: list[Comparison] = []
    index = 0
    while index < len(tokens):
        if len(tokens) < index + 3:
            raise ODataError(400, "/IWBEP/CM_MGW_RT/022", "Incomplete comparison in $filter")
        (kind, name), (_, op), (value_kind, value) = tokens[index : index + 3]
        if kind != "word" or name not in fields:
            raise ODataError(400, "/IWBEP/CM_MGW_RT/021", f"Property {name} not found or not filterable")
        if op not in OPS:
            raise ODataError(400, "/IWBEP/CM_MGW_RT/022", f"Operator {op} is not supported")
        out.append(Comparison(name, OPS[op], _literal(value_kind, value)))
        index += 3
        if index < len(tokens):
            if tokens[index] != ("word", "and"):
                raise ODataError(400, "/IWBEP/CM_MGW_RT/022", f"Only 'and' joins comparisons, not {tokens[index][1]}")
            index += 1
    return out


@dataclass
class Query:
    filters: list[Comparison]
    top: int | None
    skip: int
    inline_count: bool
    orderby: str


def read_query(request: Request, fields: frozenset[str], *, max_top: int = 5000) -> Query:
    params = request.query_params
    for name in params:
        if name.startswith("$") and name not in KNOWN_OPTIONS:
            raise ODataError(400, "/IWBEP/CM_MGW_RT/020", f"System query option {name} is not supported")
    if params.get("$format", "json") != "json":
        raise ODataError(400, "/IWBEP/CM_MGW_RT/020", "Only $format=json is supported by this stand-in")

    def whole(name: str) -> int | None:
        raw = params.get(name)
        if raw is None:
            return None
        if not raw.isdigit():
            raise ODataError(400, "/IWBEP/CM_MGW_RT/020", f"{name} must be a non-negative integer")
        return int(raw)

    top = whole("$top")
    if top is not None:
        top = min(top, max_top)
    inline = params.get("$inlinecount", "none")
    if inline not in ("allpages", "none"):
        raise ODataError(400, "/IWBEP/CM_MGW_RT/020", "$inlinecount is allpages or none")
    return Query(
        filters=parse_filter(params["$filter"], fields) if params.get("$filter") else [],
        top=top,
        skip=whole("$skip") or 0,
        inline_count=inline == "allpages",
        orderby=params.get("$orderby", "").replace(" asc", "").replace(" ", ""),
    )


def odata_json(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(dumps(body).encode(), status_code=status, headers=headers, media_type="application/json")


def results(rows: list[dict[str, Any]], count: int | None = None) -> Response:
    d: dict[str, Any] = {"results": rows}
    if count is not None:
        d["__count"] = str(count)
    return odata_json(200, {"d": d})


def error_response(error: ODataError) -> Response:
    body = {"error": {"code": error.code, "message": {"lang": "en", "value": error.message}}}
    return odata_json(error.status, body)
