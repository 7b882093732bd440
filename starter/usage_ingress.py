"""The usage ingress: `POST /v1/usage/events` takes a batch of usage events from a product
platform and answers, per event, accepted, duplicate or refused (and why).

    Authorization: Bearer <the sending system's API key>   (`o2c usage keys create NAME`)
    {"events": [{"identifier", "meter", "customer", "value", "timestamp", "dimensions"?}, ...]}

The answers:

- 200 `{"accepted", "duplicates", "refused", "results": [{identifier, outcome, reason?,
  message?, period}]}`: the batch is committed (a refused event is in the quarantine with its
  reason, listed by `o2c usage quarantine`). Sending the batch again counts nothing twice.
- 400 `{"error", "message", "problems"?}`: not strict JSON (NaN is not JSON), not an object
  with exactly `events`, 0 or more than 1,000 events, or an event of the wrong shape (each
  problem names the event's index and field). Nothing of the batch was written.
- 401: no key, or a key that is unknown or revoked; the body is not read.
- 413: the body is over the limit.
- 503 with Retry-After: the database stayed unavailable through the retries; nothing of the
  batch was written, send it again.

The database work runs in worker threads, so the event loop keeps taking requests.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from typing import Any

import structlog
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from adapters.storage.usage import UsageLedger, UsageUnavailable
from canonical.usage.models import MAX_BATCH, EventOutcome, EventVerdict, Refusal, UsageEvent
from starter.webhooks import BodyTooLarge, _read_body

log = structlog.get_logger("o2c.usage")

USAGE_PATH = "/v1/usage/events"
# 1,000 events of a few hundred bytes each, with room for dimensions.
MAX_BODY_BYTES = 1024 * 1024
RETRY_AFTER_SECONDS = 5

_EVENTS = TypeAdapter(list[UsageEvent])


class _NotJson(ValueError):
    pass


def _no_constants(name: str) -> Any:
    raise _NotJson(f"{name} is not JSON")


def _refused(error: str, message: str, status: int = 400, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": error, "message": message, **extra}, status_code=status)


def _problems(error: ValidationError) -> list[dict[str, Any]]:
    """One problem per event and field (a union's branches say the same thing twice)."""
    seen: dict[tuple[int, str], dict[str, Any]] = {}
    for problem in error.errors(include_url=False):
        loc = problem["loc"]
        index = loc[0] if loc and isinstance(loc[0], int) else -1
        field = str(loc[1]) if len(loc) > 1 else "event"
        seen.setdefault((index, field), {"index": index, "field": field, "message": problem["msg"]})
    return list(seen.values())


class _Batch(BaseModel):
    """A well-formed batch, validated straight from the body's bytes in one pass."""

    model_config = ConfigDict(extra="forbid", strict=True)

    events: list[UsageEvent] = Field(min_length=1, max_length=MAX_BATCH)


# Words JSON does not have but pydantic's parser would read as numbers.
_CONSTANTS = (b"NaN", b"Infinity")


def parse_batch(body: bytes) -> list[UsageEvent] | JSONResponse:
    """The events of a batch, or the 400 that says what is wrong with it.

    A good batch is validated from the bytes in one pass, without building the dicts first.
    Anything that pass refuses (and any body that names a JSON-less constant, even inside a
    string) takes the step-by-step path below, which says exactly what is wrong."""
    if not any(word in body for word in _CONSTANTS):
        try:
            return _Batch.model_validate_json(body).events
        except ValidationError:
            pass
    try:
        document = json.loads(body, parse_constant=_no_constants)
    except _NotJson as bad:
        return _refused("invalid_json", str(bad))
    except (ValueError, UnicodeDecodeError) as bad:
        return _refused("invalid_json", f"the body is not JSON: {bad}")
    if not isinstance(document, dict):
        return _refused("invalid_batch", 'the body is a JSON object {"events": [...]}')
    unknown = sorted(set(document) - {"events"})
    if unknown:
        return _refused("invalid_batch", f"unknown fields {', '.join(unknown)}; a batch has only events")
    items = document.get("events")
    if not isinstance(items, list):
        return _refused("invalid_batch", "events is a list of usage events")
    if not 1 <= len(items) <= MAX_BATCH:
        return _refused("invalid_batch", f"a batch has 1 to {MAX_BATCH} events, this one {len(items)}")
    try:
        return _EVENTS.validate_python(items)
    except ValidationError as bad:
        problems = _problems(bad)
        first = problems[0]
        return _refused(
            "invalid_events",
            f"{len(problems)} problem(s), first: event {first['index']}, {first['field']}: {first['message']}; "
            "nothing of the batch was written",
            problems=problems,
        )


# An enum's .value is a property lookup; a batch asks for one or two per event.
_OUTCOME = {outcome: outcome.value for outcome in EventOutcome}
_REASON = {reason: reason.value for reason in Refusal}


def verdicts_json(verdicts: list[EventVerdict]) -> dict[str, Any]:
    counts = dict.fromkeys(EventOutcome, 0)
    results = []
    for verdict in verdicts:
        outcome = verdict.outcome
        counts[outcome] += 1
        result: dict[str, Any] = {
            "identifier": verdict.identifier,
            "outcome": _OUTCOME[outcome],
            "period": verdict.period,
        }
        if verdict.reason is not None:
            result["reason"] = _REASON[verdict.reason]
        if verdict.message:
            result["message"] = verdict.message
        results.append(result)
    return {
        "accepted": counts[EventOutcome.ACCEPTED],
        "duplicates": counts[EventOutcome.DUPLICATE],
        "refused": counts[EventOutcome.REFUSED],
        "results": results,
    }


def _bearer(request: Request) -> str:
    scheme, _, key = request.headers.get("authorization", "").partition(" ")
    return key.strip() if scheme.lower() == "bearer" else ""


def usage_routes(ledger: UsageLedger, *, max_body_bytes: int = MAX_BODY_BYTES) -> list[Route]:
    async def usage_events(request: Request) -> Response:
        key = _bearer(request)
        if not key:
            return _refused("unauthorized", "send the API key as Authorization: Bearer <key>", 401)
        try:
            source = await ledger.authenticate(key)
        except UsageUnavailable as down:
            log.error("usage_events", outcome="unavailable", reason=str(down))
            return _unavailable()
        if source is None:
            log.warning("usage_events", outcome="unauthorized")
            return _refused("unauthorized", "the API key is unknown or revoked", 401)
        try:
            body = await _read_body(request, max_body_bytes)
        except BodyTooLarge:
            log.warning("usage_events", outcome="too_large", source=source, limit=max_body_bytes)
            return _refused(
                "too_large", f"the body exceeds {max_body_bytes} bytes; send at most {MAX_BATCH} events", 413
            )
        except ClientDisconnect:
            return _refused("disconnected", "the client went away")
        events = parse_batch(body)
        if isinstance(events, JSONResponse):
            log.warning("usage_events", outcome="invalid", source=source)
            return events
        try:
            verdicts = await run_in_threadpool(ledger.ingest_sync, events, source=source, now=datetime.now(UTC))
        except UsageUnavailable as down:
            log.error("usage_events", outcome="unavailable", source=source, reason=str(down))
            return _unavailable()
        answer = verdicts_json(verdicts)
        if answer["refused"]:
            log.info(
                "usage_events",
                outcome="received",
                source=source,
                accepted=answer["accepted"],
                duplicates=answer["duplicates"],
                refused=answer["refused"],
            )
        return JSONResponse(answer)

    return [Route(USAGE_PATH, usage_events, methods=["POST"])]


def _unavailable() -> JSONResponse:
    response = _refused("unavailable", "o2c's database is unavailable; nothing was written, send the batch again", 503)
    response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


def create_usage_app(ledger: UsageLedger, *, max_body_bytes: int = MAX_BODY_BYTES) -> Starlette:
    async def healthz(request: Request) -> JSONResponse:
        return JSONResponse({"ok": True})

    return Starlette(
        routes=[*usage_routes(ledger, max_body_bytes=max_body_bytes), Route("/healthz", healthz, methods=["GET"])]
    )


def app_from_env() -> Starlette:
    """For `uvicorn --factory starter.usage_ingress:app_from_env` (several worker processes):
    the usage ingress alone, on O2C_DATABASE_URL, its schema migrated by whoever started it."""
    from settings import Settings

    settings = Settings.from_env()
    migrate = os.environ.get("O2C_USAGE_MIGRATE", "1") != "0"
    return create_usage_app(UsageLedger(settings.database_url, policy=settings.usage_policy, migrate=migrate))
