"""Stripe's v2 meter event API, served under /stripe/v2 (in Stripe: api.stripe.com/v2 for
the session, meter-events.stripe.com/v2 for the stream).

- `POST /v2/billing/meter_event_session` (the secret key, an empty body): a session whose
  `authentication_token` is valid for 15 minutes on the sandbox's clock.
- `POST /v2/billing/meter_event_stream` (`Authorization: Bearer <authentication_token>`):
  JSON `{"events": [...]}`, at most 100, answered `{}`. Only the request's shape is checked
  at once (401 `billing_meter_event_session_expired` for an expired token); everything else
  later, reported as v2 error events (meter_events.accept).
- `GET /v2/core/events/{id}`: a v2 event with its data.

Bodies and answers are JSON; errors `{"error": {type, code, message}}` (the v2 error's
`type` values are unverified).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from sandbox import clock
from sandbox.core import ApiError, new_id
from sandbox.routing import Handler
from sandbox.store import Tx
from sandbox.stripe import SYSTEM
from sandbox.stripe.accounts import current_account
from sandbox.stripe.meter_events import MAX_IDENTIFIER, Incoming, accept, new_identifier
from sandbox.stripe.v2_events import get_v2_event

SESSION_SECONDS = 15 * 60
MAX_EVENTS = 100
STREAM_PATH = "/v2/billing/meter_event_stream"
EVENT_FIELDS = frozenset({"event_name", "payload", "identifier", "timestamp"})


def v2_error(status: int, code: str, message: str, type_: str = "invalid_request_error") -> ApiError:
    retry = "true" if status >= 500 or status in (409, 429) else "false"
    return ApiError(
        status, {"error": {"type": type_, "code": code, "message": message}}, {"Stripe-Should-Retry": retry}
    )


def _invalid(message: str) -> ApiError:
    return v2_error(400, "invalid_request", message)  # code unverified


def create_session(tx: Tx, request: Request, body: Any) -> tuple[int, Any]:
    if body not in ({}, None):
        raise _invalid("This request takes no parameters.")
    now = clock.now(tx)
    token = new_id("mes_token_test")
    session: dict[str, Any] = {
        "id": new_id("mes"),
        "object": "v2.billing.meter_event_session",
        "authentication_token": token,
        "created": clock.rfc3339(now),
        "expires_at": clock.rfc3339(now + SESSION_SECONDS),
        "livemode": False,
    }
    # Sandbox-only: the expiry in unix seconds and the account the token acts for.
    tx.put(
        SYSTEM,
        "meter_event_session",
        token,
        {**session, "_expires": now + SESSION_SECONDS, "_account": current_account.get()},
    )
    return 200, session


def _token(request: Request) -> str:
    header = request.headers.get("authorization", "")
    return header[7:].strip() if header.lower().startswith("bearer ") else ""


def _incoming(index: int, raw: Any, now: int) -> Incoming:
    where = f"events[{index}]"
    if not isinstance(raw, dict):
        raise _invalid(f"{where} must be an object.")
    unknown = set(raw) - EVENT_FIELDS
    if unknown:
        raise _invalid(f"{where} has unknown field(s): {', '.join(sorted(unknown))}.")
    event_name = raw.get("event_name")
    if not isinstance(event_name, str) or not event_name or len(event_name) > 100:
        raise _invalid(f"{where}.event_name is required (at most 100 characters).")
    payload = raw.get("payload")
    if not isinstance(payload, dict) or not all(isinstance(v, str) for v in payload.values()):
        raise _invalid(f"{where}.payload is required: an object of strings.")
    identifier = raw.get("identifier")
    if identifier is None:
        identifier = new_identifier()
    if not isinstance(identifier, str) or not identifier or len(identifier) > MAX_IDENTIFIER:
        raise _invalid(f"{where}.identifier must be a string of 1 to {MAX_IDENTIFIER} characters.")
    timestamp = now
    if raw.get("timestamp") is not None:
        parsed = clock.parse_rfc3339(raw["timestamp"]) if isinstance(raw["timestamp"], str) else None
        if parsed is None:
            raise _invalid(f"{where}.timestamp must be an RFC 3339 timestamp.")
        timestamp = parsed
    return Incoming(event_name, {str(k): v for k, v in payload.items()}, identifier, timestamp)


def stream_events(tx: Tx, request: Request, body: Any) -> tuple[int, Any]:
    session = tx.get(SYSTEM, "meter_event_session", _token(request))
    if session is None:
        raise v2_error(
            401, "billing_meter_event_session_invalid", "The authentication token is not valid."
        )  # code unverified
    now = clock.now(tx)
    if now >= int(session["_expires"]):
        raise v2_error(
            401,
            "billing_meter_event_session_expired",
            "The meter event session has expired; create a new one.",
        )
    if not isinstance(body, dict) or set(body) - {"events"}:
        raise _invalid("The body is an object with `events` only.")
    events = body.get("events")
    if not isinstance(events, list) or not events:
        raise _invalid("events is required: a list of 1 to 100 meter events.")
    if len(events) > MAX_EVENTS:
        raise _invalid(f"A request takes at most {MAX_EVENTS} events; this one has {len(events)}.")
    incoming = [_incoming(i, raw, now) for i, raw in enumerate(events)]
    token = current_account.set(session.get("_account"))
    try:
        accept(tx, incoming, check_timestamps=True)
    finally:
        current_account.reset(token)
    return 200, {}


def get_event(tx: Tx, request: Request, body: Any, id: str) -> tuple[int, Any]:
    return get_v2_event(tx, {}, id)


V2_ROUTES: list[tuple[str, str, Handler]] = [
    ("POST", "/v2/billing/meter_event_session", create_session),
    ("POST", STREAM_PATH, stream_events),
    ("GET", "/v2/core/events/{id}", get_event),
]
