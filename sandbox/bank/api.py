"""The bank's HTTP face, mounted at /bank:

    POST /bank/v1/statements          write a statement file for a period; answers the file
    GET  /bank/v1/statements          the files written so far (without their content)
    GET  /bank/v1/statements/{id}     one file again, as written

The POST body (JSON; unknown fields are refused):
    {"format": "camt.053.001.02" | "camt.053.001.08" | "bai2",
     "date": "2024-01-31",                  # the period: booking / as-of date
     "file_id": "1", "created_at": "2024-02-01T06:00:00",         # optional
     "account": "DE89…", "currency": "EUR", "opening_balance": "100.00",
     "statement_id": "…",                   # optional, camt Stmt/Id
     "entries": [{"amount": "150.00", "credit": true, "payer_name": "ACME Corp",
                  "payer_account": "DE02…", "remittance": "INV-1001",
                  "end_to_end_id": "INV-1001", "bank_reference": "B-1", …}]}
or, for a file of several accounts, "accounts": [{"account", "currency",
"opening_balance", "statement_id", "entries"}, …] in place of the single account's fields.
The answer is 201 with the file itself (application/xml or text/plain) and its id in
`Statement-Id`; the same body always writes the same file, kept once.
"""

from __future__ import annotations

import hashlib
import time
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from sandbox.bank.writer import FORMATS, Account, Entry, StatementFile, write_statement
from sandbox.core import ApiError, json_response
from sandbox.routing import Handler, Routes, System
from sandbox.store import Store

_FILE_FIELDS = {"format", "date", "file_id", "created_at", "sender", "receiver", "accounts"}
_ACCOUNT_FIELDS = {"account", "currency", "opening_balance", "statement_id", "entries"}
_ENTRY_FIELDS = {
    "amount",
    "credit",
    "payer_name",
    "payer_account",
    "remittance",
    "end_to_end_id",
    "bank_reference",
    "structured_reference",
    "customer_reference",
    "type_code",
    "value_date",
    "reversal",
    "status",
}
_MEDIA = {"bai2": "text/plain", "camt.053.001.02": "application/xml", "camt.053.001.08": "application/xml"}


def _bad(message: str) -> ApiError:
    return ApiError(400, {"error": {"code": "invalid_request", "message": message}})


def _object(value: Any, where: str, allowed: set[str]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _bad(f"{where} must be a JSON object")
    unknown = sorted(set(value) - allowed)
    if unknown:
        raise _bad(f"{where}: unknown field(s) {', '.join(unknown)}")
    return value


def _text(body: dict[str, Any], name: str, where: str, *, required: bool = False) -> str:
    value = body.get(name, "")
    if not isinstance(value, str):
        raise _bad(f"{where}.{name} must be a string")
    if required and not value:
        raise _bad(f"{where}.{name} is required")
    return value


def _amount(value: Any, where: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (str, int, Decimal)):
        raise _bad(f"{where} must be a decimal number or a string holding one")
    try:
        amount = Decimal(value)
    except InvalidOperation:
        raise _bad(f"{where} {value!r} is not a number") from None
    if not amount.is_finite():
        raise _bad(f"{where} must be finite")
    return amount


def _day(value: Any, where: str) -> date:
    try:
        return date.fromisoformat(value)
    except (TypeError, ValueError):
        raise _bad(f"{where} must be a date (YYYY-MM-DD)") from None


def _entry(value: Any, where: str) -> Entry:
    body = _object(value, where, _ENTRY_FIELDS)
    if "amount" not in body:
        raise _bad(f"{where}.amount is required")
    amount = _amount(body["amount"], f"{where}.amount")
    if amount <= 0:
        raise _bad(f"{where}.amount must be positive; credit says which way it goes")
    for flag in ("credit", "reversal"):
        if flag in body and not isinstance(body[flag], bool):
            raise _bad(f"{where}.{flag} must be true or false")
    status = _text(body, "status", where) or "BOOK"
    if status not in ("BOOK", "PDNG", "INFO"):
        raise _bad(f"{where}.status must be BOOK, PDNG or INFO")
    return Entry(
        amount=amount,
        credit=body.get("credit", True),
        payer_name=_text(body, "payer_name", where),
        payer_account=_text(body, "payer_account", where),
        remittance=_text(body, "remittance", where),
        end_to_end_id=_text(body, "end_to_end_id", where),
        bank_reference=_text(body, "bank_reference", where),
        structured_reference=_text(body, "structured_reference", where),
        customer_reference=_text(body, "customer_reference", where),
        type_code=_text(body, "type_code", where),
        value_date=_day(body["value_date"], f"{where}.value_date") if body.get("value_date") else None,
        reversal=body.get("reversal", False),
        status=status,
    )


def _account(body: dict[str, Any], where: str) -> Account:
    entries = body.get("entries", [])
    if not isinstance(entries, list):
        raise _bad(f"{where}.entries must be a list")
    if "opening_balance" not in body:
        raise _bad(f"{where}.opening_balance is required")
    return Account(
        account=_text(body, "account", where, required=True),
        currency=_text(body, "currency", where, required=True).upper(),
        opening_balance=_amount(body["opening_balance"], f"{where}.opening_balance"),
        entries=[_entry(entry, f"{where}.entries[{n}]") for n, entry in enumerate(entries)],
        statement_id=_text(body, "statement_id", where),
    )


def statement_file(body: Any) -> StatementFile:
    """The request body as the writer takes it; 400 for anything it does not say plainly."""
    body = _object(body, "body", _FILE_FIELDS | _ACCOUNT_FIELDS)
    fmt = _text(body, "format", "body", required=True)
    if fmt not in FORMATS:
        raise _bad(f"format must be one of {', '.join(FORMATS)}")
    if "accounts" in body:
        if set(body) & _ACCOUNT_FIELDS:
            raise _bad("give either accounts or one account's fields, not both")
        if not isinstance(body["accounts"], list) or not body["accounts"]:
            raise _bad("accounts must be a non-empty list")
        accounts = [
            _account(_object(a, f"accounts[{n}]", _ACCOUNT_FIELDS), f"accounts[{n}]")
            for n, a in enumerate(body["accounts"])
        ]
    else:
        accounts = [_account(body, "body")]
    created_at = None
    if body.get("created_at"):
        try:
            created_at = datetime.fromisoformat(_text(body, "created_at", "body"))
        except ValueError:
            raise _bad("created_at must be an ISO date and time") from None
    return StatementFile(
        format=fmt,
        day=_day(body.get("date"), "date"),
        accounts=accounts,
        file_id=_text(body, "file_id", "body") or "1",
        created_at=created_at,
        sender=_text(body, "sender", "body") or "122000661",
        receiver=_text(body, "receiver", "body") or "O2C",
    )


def post_statement(store: Store, request: Request, body: Any) -> Response:
    spec = statement_file(body)
    try:
        content = write_statement(spec)
    except ValueError as exc:
        raise _bad(str(exc)) from None
    statement_id = "stmt_" + hashlib.sha256(content).hexdigest()[:24]
    with store.tx() as tx:
        if tx.get("bank", "statement", statement_id) is None:
            tx.put(
                "bank",
                "statement",
                statement_id,
                {
                    "id": statement_id,
                    "format": spec.format,
                    "date": spec.day.isoformat(),
                    "accounts": [a.account for a in spec.accounts],
                    "entries": sum(len(a.entries) for a in spec.accounts),
                    "bytes": len(content),
                    "content": content.decode(),
                    "created": time.time(),
                },
            )
    return Response(content, 201, {"Statement-Id": statement_id}, media_type=_MEDIA[spec.format])


def list_statements(store: Store, request: Request, body: Any) -> Response:
    with store.tx() as tx:
        rows = tx.list("bank", "statement")
    return json_response(200, {"data": [{k: v for k, v in row.items() if k != "content"} for row in rows]})


def get_statement(store: Store, request: Request, body: Any, statement_id: str) -> Response:
    with store.tx() as tx:
        row = tx.get("bank", "statement", statement_id)
    if row is None:
        raise ApiError(404, {"error": {"code": "not_found", "message": f"No statement {statement_id}"}})
    return Response(row["content"].encode(), 200, {"Statement-Id": statement_id}, media_type=_MEDIA[row["format"]])


def _run(
    store: Store, handler: Handler, method: str, path: str, request: Request, body: Any, params: dict[str, str]
) -> Response:
    try:
        response: Response = handler(store, request, body, **params)
        return response
    except ApiError as exc:
        return json_response(exc.status, exc.body, exc.headers)


def _authenticate(request: Request) -> Response | None:
    return None  # the customer's bank channel is outside o2c; no credentials in the sandbox


def _fault(status: int) -> Response:
    code = "rate_limited" if status == 429 else "unavailable"
    return json_response(status, {"error": {"code": code, "message": "Injected fault"}})


def _not_found(message: str) -> Response:
    return json_response(404, {"error": {"code": "not_found", "message": message}})


ROUTES: Routes = [
    ("POST", "/v1/statements", post_statement),
    ("GET", "/v1/statements", list_statements),
    ("GET", "/v1/statements/{statement_id}", get_statement),
]

BANK = System("bank", ROUTES, _authenticate, _fault, _not_found, _run)
