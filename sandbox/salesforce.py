"""A subset of the Salesforce REST API (sObjects), the CRM stand-in:

  PATCH /services/data/vXX.X/sobjects/Account/{id}            update fields -> 204
  GET   /services/data/vXX.X/sobjects/Account/{id}
  PATCH /services/data/vXX.X/sobjects/Task/O2c_Key__c/{key}   upsert by external ID
        -> 201 {id, success, errors, created: true} the first time, 200 (created: false) after
  GET   /services/data/vXX.X/sobjects/Task/{id}

Errors are a JSON array `[{message, errorCode, fields}]`, as Salesforce answers them.
Authentication: `Authorization: Bearer <token>`; a token starting with "invalid" is
refused with 401 INVALID_SESSION_ID.

Sandbox simplifications: an Account PATCHed for the first time is created (real
Salesforce answers 404 NOT_FOUND for an unknown Id, and Ids are 15/18-character keys,
not billing customer ids); `O2c_Dunning_Flag__c`, `O2c_Key__c` and the other `O2c_*`
custom fields are o2c's own names, which a real org would have to define. Task
`OwnerId` is kept as given (a real org needs a User Id).
"""

from __future__ import annotations

import hashlib
import time
from datetime import date
from decimal import Decimal
from typing import Any

from starlette.convertors import Convertor, register_url_convertor
from starlette.requests import Request
from starlette.responses import Response

from sandbox.core import ApiError, bearer_accepted, json_response
from sandbox.routing import System, run_in_one_unit_of_work
from sandbox.store import Tx

SYSTEM = "salesforce"

ACCOUNT_FIELDS = {
    "Name",
    "Description",
    "O2c_Dunning_Flag__c",
    "O2c_Dunning_Stage__c",
    "O2c_Dunning_Reason__c",
    # Receivables, written as cash is applied: a Number(16, 2) field, its currency as text
    # (a multi-currency org would use the record's CurrencyIsoCode), and a Date field.
    "O2c_Open_Balance__c",
    "O2c_Open_Balance_Currency__c",
    "O2c_Last_Payment_Date__c",
}
NUMBER_FIELDS = {"O2c_Open_Balance__c"}
TASK_PRIORITIES = ("High", "Normal", "Low")  # the standard Task Priority picklist
TASK_FIELDS = {"WhatId", "OwnerId", "Subject", "Description", "Status", "Priority", "ActivityDate", "O2c_Key__c"}


def error(status: int, code: str, message: str, fields: list[str] | None = None) -> ApiError:
    return ApiError(status, [{"message": message, "errorCode": code, "fields": fields or []}])


def fault_response(status: int) -> Response:
    if status == 429:
        err = error(429, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded. (injected fault)")
    else:
        err = error(status, "SERVER_UNAVAILABLE", "The server is temporarily unavailable (injected fault).")
    return json_response(err.status, err.body)


def authenticate(request: Request) -> Response | None:
    if bearer_accepted(request):
        return None
    err = error(401, "INVALID_SESSION_ID", "Session expired or invalid")
    return json_response(401, err.body)


def _sf_id(prefix: str, seed: str) -> str:
    return prefix + hashlib.sha256(seed.encode()).hexdigest()[:15].upper()


def _check_fields(body: Any, allowed: set[str], sobject: str) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise error(400, "JSON_PARSER_ERROR", "The request body must be a JSON object.")
    for name in body:
        if name not in allowed:
            raise error(400, "INVALID_FIELD", f"No such column '{name}' on sobject of type {sobject}", [name])
    return body


def _check_date(fields: dict[str, Any], name: str) -> None:
    """A Date field takes YYYY-MM-DD (or null, which clears it)."""
    value = fields.get(name)
    if value is None:
        return
    try:
        if not isinstance(value, str) or len(value) != 10:
            raise ValueError(value)
        date.fromisoformat(value)
    except ValueError:
        raise error(
            400, "JSON_PARSER_ERROR", f"Cannot deserialize instance of date from VALUE_STRING value {value!r}", [name]
        ) from None


def _check_number(fields: dict[str, Any], name: str) -> None:
    value = fields.get(name)
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, Decimal))):
        raise error(400, "JSON_PARSER_ERROR", f"Cannot deserialize instance of double from value {value!r}", [name])


def patch_account(tx: Tx, request: Request, body: Any, version: str, id: str) -> tuple[int, Any]:
    fields = _check_fields(body, ACCOUNT_FIELDS, "Account")
    for name in NUMBER_FIELDS:
        _check_number(fields, name)
    _check_date(fields, "O2c_Last_Payment_Date__c")
    flag = fields.get("O2c_Dunning_Flag__c")
    if flag is not None and not isinstance(flag, bool):
        raise error(
            400,
            "JSON_PARSER_ERROR",
            f"Cannot deserialize instance of boolean from value {flag!r}",
            ["O2c_Dunning_Flag__c"],
        )
    account = tx.get(SYSTEM, "Account", id) or {
        "attributes": {"type": "Account", "url": f"/services/data/{version}/sobjects/Account/{id}"},
        "Id": id,
        "Name": id,
        "O2c_Dunning_Flag__c": False,
        "CreatedDate": time.time(),
    }
    account.update({k: str(v) if k in NUMBER_FIELDS and v is not None else v for k, v in fields.items()})
    account["LastModifiedDate"] = time.time()
    tx.put(SYSTEM, "Account", id, account)
    return 204, None


def get_account(tx: Tx, request: Request, body: Any, version: str, id: str) -> tuple[int, Any]:
    account = tx.get(SYSTEM, "Account", id)
    if account is None:
        raise error(404, "NOT_FOUND", "The requested resource does not exist")
    # Numbers are kept as decimal strings and answered as JSON numbers.
    return 200, {k: Decimal(v) if k in NUMBER_FIELDS and v is not None else v for k, v in account.items()}


def upsert_task(tx: Tx, request: Request, body: Any, version: str, key: str) -> tuple[int, Any]:
    fields = _check_fields(body, TASK_FIELDS, "Task")
    _check_date(fields, "ActivityDate")
    if fields.get("Priority") is not None and fields["Priority"] not in TASK_PRIORITIES:
        raise error(
            400,
            "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
            f"Priority: bad value for restricted picklist field: {fields['Priority']}",
            ["Priority"],
        )
    if fields.get("O2c_Key__c") not in (None, key):
        raise error(400, "INVALID_FIELD", "The external ID in the body differs from the one in the URL", ["O2c_Key__c"])
    existing_id = (tx.get(SYSTEM, "taskKey", key) or {}).get("taskId")
    task = tx.get(SYSTEM, "Task", existing_id) if existing_id else None
    if task is None and not fields.get("Subject"):
        raise error(400, "REQUIRED_FIELD_MISSING", "Required fields are missing: [Subject]", ["Subject"])
    created = task is None
    if task is None:
        task_id = _sf_id("00T", key)
        task = {
            "attributes": {"type": "Task", "url": f"/services/data/{version}/sobjects/Task/{task_id}"},
            "Id": task_id,
            "Status": "Not Started",
            "Priority": "Normal",
            "CreatedDate": time.time(),
        }
        tx.put(SYSTEM, "taskKey", key, {"key": key, "taskId": task_id})
    task.update(fields)
    task["O2c_Key__c"] = key
    task["LastModifiedDate"] = time.time()
    tx.put(SYSTEM, "Task", task["Id"], task)
    return (201 if created else 200), {"id": task["Id"], "success": True, "errors": [], "created": created}


def get_task(tx: Tx, request: Request, body: Any, version: str, id: str) -> tuple[int, Any]:
    task = tx.get(SYSTEM, "Task", id)
    if task is None:
        raise error(404, "NOT_FOUND", "The requested resource does not exist")
    return 200, task


def get_task_by_key(tx: Tx, request: Request, body: Any, version: str, key: str) -> tuple[int, Any]:
    task_id = (tx.get(SYSTEM, "taskKey", key) or {}).get("taskId")
    if not task_id:
        raise error(404, "NOT_FOUND", "The requested resource does not exist")
    return get_task(tx, request, body, version, task_id)


class _ApiVersion(Convertor[str]):
    """A REST API version in a URL, e.g. v60.0."""

    regex = r"v[0-9]+\.[0-9]+"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("salesforce_api_version", _ApiVersion())
_BASE = "/services/data/{version:salesforce_api_version}/sobjects"

ROUTES = [
    ("PATCH", _BASE + "/Account/{id}", patch_account),
    ("GET", _BASE + "/Account/{id}", get_account),
    ("PATCH", _BASE + "/Task/O2c_Key__c/{key}", upsert_task),
    ("GET", _BASE + "/Task/O2c_Key__c/{key}", get_task_by_key),
    ("GET", _BASE + "/Task/{id}", get_task),
]


def not_found(message: str) -> Response:
    return json_response(404, error(404, "NOT_FOUND", message).body)


SALESFORCE = System(SYSTEM, ROUTES, authenticate, fault_response, not_found, run_in_one_unit_of_work)
