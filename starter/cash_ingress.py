"""The bank statement ingress: `POST /v1/cash/statements` takes one statement file (camt.053
or BAI2) as the body, from a bank gateway or a treasury system, and starts its cash
application.

    Authorization: Bearer <the sender's API key>   (`o2c usage keys create NAME`: the same
                                                    keys as the usage ingress)
    POST /v1/cash/statements?entity=US01           the file's bytes as the body

The answers:

- 200 `{"statements": [{statement_id, workflow_id, receipts, total, new}]}`: kept and being
  applied; `new` is false when the statement was imported before (nothing changed).
- 400 `{"error": "invalid_statement", "message", "problems": [{"line", "reason"}]}`: the file
  is refused whole; nothing was kept and no workflow started.
- 401: no key, or one that is unknown or revoked; the body is not read.
- 413: the body is over the limit.
- 503 with Retry-After: the database or Temporal is unavailable; send the file again (a
  statement sent twice is one statement).
"""

from __future__ import annotations

from typing import Any

import structlog
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from temporalio.client import Client
from temporalio.service import RPCError

from adapters.errors import TransientError
from adapters.ports import CashStorePort
from adapters.storage.usage import UsageLedger, UsageUnavailable
from canonical.models import LegalEntity
from starter.cash import MAX_STATEMENT_BYTES, StatementRefused, import_statement
from starter.usage_ingress import _bearer
from starter.webhooks import BodyTooLarge, _read_body

log = structlog.get_logger("o2c.cash")

STATEMENTS_PATH = "/v1/cash/statements"
RETRY_AFTER_SECONDS = 5


def _answer(error: str, message: str, status: int, **extra: Any) -> JSONResponse:
    response = JSONResponse({"error": error, "message": message, **extra}, status_code=status)
    if status == 503:
        response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


def cash_routes(
    client: Client,
    store: CashStorePort,
    keys: UsageLedger,
    *,
    legal_entities: list[LegalEntity],
    task_queue: str = "o2c",
    max_body_bytes: int = MAX_STATEMENT_BYTES,
) -> list[Route]:
    async def statements(request: Request) -> Response:
        key = _bearer(request)
        if not key:
            return _answer("unauthorized", "send the API key as Authorization: Bearer <key>", 401)
        try:
            source = await keys.authenticate(key)
        except UsageUnavailable as down:
            log.error("cash_statement", outcome="unavailable", reason=str(down))
            return _answer("unavailable", "o2c's database is unavailable; send the file again", 503)
        if source is None:
            log.warning("cash_statement", outcome="unauthorized")
            return _answer("unauthorized", "the API key is unknown or revoked", 401)
        entity = request.query_params.get("entity") or legal_entities[0].code
        try:
            body = await _read_body(request, max_body_bytes)
        except BodyTooLarge:
            return _answer("too_large", f"the body exceeds {max_body_bytes} bytes", 413)
        except ClientDisconnect:
            return _answer("disconnected", "the client went away", 400)
        try:
            result = await import_statement(
                client,
                body,
                legal_entity=entity,
                store=store,
                legal_entities=legal_entities,
                task_queue=task_queue,
                name="the statement",
            )
        except StatementRefused as refused:
            log.warning("cash_statement", outcome="refused", source=source, problems=len(refused.problems))
            return _answer(
                "invalid_statement",
                str(refused),
                400,
                problems=[{"line": line, "reason": reason} for line, reason in refused.problems],
            )
        except (TransientError, RPCError) as down:
            log.error("cash_statement", outcome="unavailable", source=source, reason=str(down))
            return _answer("unavailable", "o2c's database or Temporal is unavailable; send the file again", 503)
        answer = [
            {
                "statement_id": s.statement_id,
                "workflow_id": s.workflow_id,
                "receipts": s.receipts,
                "total": s.total.model_dump(mode="json"),
                "new": s.new,
            }
            for s in result.statements
        ]
        log.info("cash_statement", outcome="imported", source=source, statements=[s["statement_id"] for s in answer])
        return JSONResponse({"statements": answer})

    return [Route(STATEMENTS_PATH, statements, methods=["POST"])]
