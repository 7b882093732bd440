"""Salesforce as o2c's CRM: account flags and tasks, over the REST API (sObjects).

- Flags are plain field updates, `PATCH /sobjects/Account/{id}` (204): repeating one
  changes nothing. A dunning flag is the checkbox `O2c_Dunning_Flag__c`. The account's
  receivables (open balance, last payment date) are field updates the same way.
- Tasks are upserted by an external ID field, `PATCH /sobjects/Task/O2c_Key__c/{key}`,
  with the caller's idempotency key as the external ID: 201 the first time, 200 after,
  one task either way. A task with a deadline carries `ActivityDate` (its due date) and
  `Priority` (High, Normal or Low: the standard picklist).
- Errors come as a JSON array `[{message, errorCode, fields}]`. Timeouts, connection
  failures, 5xx, 429 and REQUEST_LIMIT_EXCEEDED (Salesforce answers an exhausted API
  limit with 403) are transient; 401/403 otherwise are integration bugs (token, profile
  permissions); other 4xx are business errors.

The `O2c_*` custom fields are o2c's names; an org must define them (and `O2c_Key__c` as
an External ID field on Task). Account ids are passed through as given: mapping billing
customers to Salesforce Account Ids is the org's configuration, not this adapter's.
"""

from __future__ import annotations

from datetime import date
from typing import Any
from urllib.parse import quote

import httpx

from adapters.errors import TRANSIENT, AdapterError, Answer, ErrorKind, ErrorTable, IntegrationBug, Rule
from adapters.http import JSON_HEADERS, HttpAdapter, json_content, read_json, send
from canonical.models import CrmTask
from canonical.money import Money

SYSTEM = "salesforce"
FLAG_FIELDS = {"dunning": "O2c_Dunning_Flag__c"}
TASK_KEY_FIELD = "O2c_Key__c"
# The account's receivables as o2c last applied cash: o2c's own custom fields (a Number,
# its currency as text, and a Date), which an org defines beside the dunning ones.
OPEN_BALANCE_FIELD = "O2c_Open_Balance__c"
OPEN_BALANCE_CURRENCY_FIELD = "O2c_Open_Balance_Currency__c"
LAST_PAYMENT_FIELD = "O2c_Last_Payment_Date__c"
MAX_EXTERNAL_ID = 255  # the longest a text External ID field can be


ERRORS = ErrorTable(
    SYSTEM,
    credentials=Rule(ErrorKind.BUG, "Salesforce rejected o2c's session or permissions: {message}"),
    refused=Rule(ErrorKind.BUSINESS, "Salesforce refused the change: {message}"),
    # Transient whatever the status: an exhausted API limit comes as a 403.
    codes={code: TRANSIENT for code in ("REQUEST_LIMIT_EXCEEDED", "SERVER_UNAVAILABLE", "UNABLE_TO_LOCK_ROW")},
)


def read_error(response: httpx.Response) -> Answer:
    """Salesforce's error answer: `[{message, errorCode, fields}]`; the fields named join the message."""
    status = response.status_code
    body = read_json(response)
    first: dict[str, Any] = {}
    if isinstance(body, list) and body and isinstance(body[0], dict):
        first = body[0]
    message = str(first.get("message") or f"HTTP {status}")
    fields = first.get("fields") or []
    if fields:
        message = f"{message} (fields: {', '.join(map(str, fields))})"
    return Answer(status, str(first.get("errorCode") or ""), message)


def classify(response: httpx.Response) -> AdapterError:
    return ERRORS.classify(read_error(response))


class SalesforceCrm(HttpAdapter):
    """CrmPort over the Salesforce REST API. `base_url` ends in `/services/data/vXX.X`."""

    def __init__(self, base_url: str, token: str, timeout: float = 10.0, *, client: httpx.AsyncClient | None = None):
        super().__init__(base_url, timeout, {"Authorization": f"Bearer {token}", **JSON_HEADERS}, client)

    async def flag_account(self, account_id: str, *, flag: str, on: bool) -> None:
        field = FLAG_FIELDS.get(flag)
        if field is None:
            raise IntegrationBug(SYSTEM, f"no CRM field for flag {flag!r}; known: {', '.join(FLAG_FIELDS)}")
        response = await send(
            self._client,
            SYSTEM,
            "PATCH",
            f"/sobjects/Account/{quote(account_id, safe='')}",
            content=json_content({field: on}),
        )
        if response.status_code >= 400:
            raise classify(response)

    async def update_receivables(self, account_id: str, *, open_balance: Money, last_payment_on: date | None) -> None:
        """PATCH the account's receivables fields: repeating it changes nothing. Without a
        payment date the stored one is kept (a credit moves the balance, not the date)."""
        body: dict[str, Any] = {
            OPEN_BALANCE_FIELD: open_balance.amount,
            OPEN_BALANCE_CURRENCY_FIELD: open_balance.currency,
        }
        if last_payment_on is not None:
            body[LAST_PAYMENT_FIELD] = last_payment_on.isoformat()
        response = await send(
            self._client,
            SYSTEM,
            "PATCH",
            f"/sobjects/Account/{quote(account_id, safe='')}",
            content=json_content(body),
        )
        if response.status_code >= 400:
            raise classify(response)

    async def get_account(self, account_id: str) -> dict[str, Any] | None:
        response = await send(self._client, SYSTEM, "GET", f"/sobjects/Account/{quote(account_id, safe='')}")
        if response.status_code == 404:
            return None
        if response.status_code >= 400:
            raise classify(response)
        return read_json(response)

    async def create_task(self, task: CrmTask, *, idempotency_key: str) -> str:
        if not idempotency_key or len(idempotency_key) > MAX_EXTERNAL_ID:
            raise IntegrationBug(SYSTEM, f"a task key must be 1..{MAX_EXTERNAL_ID} characters")
        body: dict[str, Any] = {"WhatId": task.account_id, "Subject": task.subject, "Description": task.body}
        if task.owner:
            body["OwnerId"] = task.owner
        if task.due_on is not None:
            body["ActivityDate"] = task.due_on.isoformat()
        if task.priority:
            body["Priority"] = task.priority
        response = await send(
            self._client,
            SYSTEM,
            "PATCH",
            f"/sobjects/Task/{TASK_KEY_FIELD}/{quote(idempotency_key, safe='')}",
            content=json_content(body),
        )
        if response.status_code >= 400:
            raise classify(response)
        data = read_json(response)
        task_id = data.get("id") if isinstance(data, dict) else None
        if not task_id:
            # 204 (older API versions answer an update by external ID without a body):
            # read the task back by its key.
            found = await send(
                self._client, SYSTEM, "GET", f"/sobjects/Task/{TASK_KEY_FIELD}/{quote(idempotency_key, safe='')}"
            )
            if found.status_code >= 400:
                raise classify(found)
            task_id = read_json(found).get("Id")
        if not task_id:
            raise IntegrationBug(SYSTEM, f"Salesforce answered {response.status_code} without a task id")
        return str(task_id)
