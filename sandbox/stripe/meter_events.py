"""Meter events: `POST /v1/billing/meter_events` (synchronous checks of the event itself),
`POST /v1/billing/meter_event_adjustments` (cancel within 24 hours), and the validation
both APIs share with the v2 stream.

What Stripe checks when the event arrives (v1): its fields, the identifier's uniqueness
over 24 hours, the timestamp (the past 35 days to 5 minutes ahead) and a whole-number
value. What it checks later, reporting in v2 error events (both APIs): that a meter takes
the event name, that the meter is active, that the payload names a customer that exists.
Such an event is dropped, never counted. The v2 stream checks everything later.
"""

from __future__ import annotations

import re
import secrets
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from sandbox import clock
from sandbox.core import ApiError
from sandbox.store import Tx
from sandbox.stripe import SYSTEM
from sandbox.stripe.accounts import current_account
from sandbox.stripe.errors import error, invalid, missing
from sandbox.stripe.meter_store import cancel, record, seen_recently
from sandbox.stripe.meters import meter_by_event_name
from sandbox.stripe.params import integer
from sandbox.stripe.v2_events import emit_thin

MAX_IDENTIFIER = 100
PAST_LIMIT = 35 * 86400
FUTURE_LIMIT = 5 * 60
_WHOLE = re.compile(r"^-?[0-9]+$")


@dataclass
class Incoming:
    """One event as sent, before the later checks."""

    event_name: str
    payload: dict[str, str]
    identifier: str
    timestamp: int


@dataclass
class Rejected:
    event: Incoming
    code: str
    message: str
    meter: dict[str, Any] | None


def timestamp_problem(timestamp: int, now: int) -> tuple[str, str] | None:
    if timestamp < now - PAST_LIMIT:
        return "timestamp_too_far_in_past", "Timestamp must be within the past 35 calendar days."
    if timestamp > now + FUTURE_LIMIT:
        return "timestamp_in_future", "Timestamp must be no more than 5 minutes in the future."
    return None


def value_of(meter: dict[str, Any], payload: dict[str, str]) -> tuple[int | None, tuple[str, str] | None]:
    key = meter["value_settings"]["event_payload_key"]
    if meter["default_aggregation"]["formula"] == "count" and key not in payload:
        return 1, None  # a count meter counts the event; its value is not needed
    raw = payload.get(key)
    if raw is None:
        return None, ("meter_event_value_not_found", f"The payload has no value under '{key}'.")
    if not _WHOLE.match(str(raw).strip()):
        return None, ("meter_event_invalid_value", f"The value '{raw}' under '{key}' is not a whole number.")
    return int(str(raw).strip()), None


def accept(tx: Tx, events: list[Incoming], *, check_timestamps: bool) -> list[Rejected]:
    """Count the events a meter takes; return the ones dropped, with why. Duplicates of an
    identifier seen in the last 24 hours are dropped silently (counted once)."""
    account = current_account.get() or ""
    now = clock.now(tx)
    rejected: list[Rejected] = []
    meters: dict[str, dict[str, Any] | None] = {}
    for event in events:
        if event.event_name not in meters:
            meters[event.event_name] = meter_by_event_name(tx, event.event_name)
        meter = meters[event.event_name]
        if meter is None:
            rejected.append(Rejected(event, "no_meter", f"No meter takes event_name '{event.event_name}'.", None))
            continue
        if meter["status"] != "active":
            rejected.append(Rejected(event, "archived_meter", f"Meter {meter['id']} is inactive.", meter))
            continue
        if check_timestamps:
            problem = timestamp_problem(event.timestamp, now)
            if problem is not None:
                rejected.append(Rejected(event, *problem, meter))
                continue
        customer_key = meter["customer_mapping"]["event_payload_key"]
        customer_id = event.payload.get(customer_key)
        if not customer_id:
            rejected.append(
                Rejected(event, "meter_event_no_customer_defined", f"The payload has no '{customer_key}'.", meter)
            )
            continue
        customer = tx.get(SYSTEM, "customer", customer_id)
        if customer is None or (customer.get("_stripe_account") or "") != account:
            rejected.append(
                Rejected(event, "meter_event_customer_not_found", f"No customer '{customer_id}' exists.", meter)
            )
            continue
        value, problem = value_of(meter, event.payload)
        if problem is not None or value is None:
            rejected.append(Rejected(event, *(problem or ("meter_event_invalid_value", "invalid value")), meter))
            continue
        if seen_recently(tx, account, event.event_name, event.identifier, now):
            continue
        record(
            tx,
            account=account,
            event_name=event.event_name,
            identifier=event.identifier,
            customer=customer_id,
            value=value,
            timestamp=event.timestamp,
            received=now,
        )
    report_errors(tx, rejected, now)
    return rejected


def report_errors(tx: Tx, rejected: list[Rejected], now: int) -> None:
    """One v2 error event per meter (and one for the events no meter takes), with the
    errors counted by code and a few samples, in the shape Stripe documents."""
    groups: dict[str, list[Rejected]] = defaultdict(list)
    for item in rejected:
        groups[item.meter["id"] if item.meter else ""].append(item)
    for meter_id, items in groups.items():
        by_code: dict[str, list[Rejected]] = defaultdict(list)
        for item in items:
            by_code[item.code].append(item)
        data = {
            "developer_message_summary": f"{len(items)} meter event(s) could not be processed: "
            + ", ".join(f"{code} ({len(found)})" for code, found in by_code.items()),
            "reason": {
                "error_count": len(items),
                "error_types": [
                    {
                        "code": code,
                        "error_count": len(found),
                        "sample_errors": [
                            {"error_message": item.message, "request": {"identifier": item.event.identifier}}
                            for item in found[:5]
                        ],
                    }
                    for code, found in by_code.items()
                ],
            },
            "validation_start": clock.rfc3339(now),
            "validation_end": clock.rfc3339(now),
        }
        if meter_id:
            related = {"id": meter_id, "type": "billing.meter", "url": f"/v1/billing/meters/{meter_id}"}
            emit_thin(tx, "v1.billing.meter.error_report_triggered", data, related)
        else:
            emit_thin(tx, "v1.billing.meter.no_meter_found", data)


def new_identifier() -> str:
    return secrets.token_hex(16)


def _payload(raw: Any, param: str = "payload") -> dict[str, str]:
    if not isinstance(raw, dict) or not raw:
        raise missing(param)
    return {str(k): str(v) for k, v in raw.items()}


def _identifier(raw: Any, param: str = "identifier") -> str:
    if raw in (None, ""):
        return new_identifier()
    text = str(raw)
    if len(text) > MAX_IDENTIFIER:
        raise invalid(f"identifier must be at most {MAX_IDENTIFIER} characters", param=param)
    return text


def duplicate(identifier: str) -> ApiError:
    """As Stripe answers it (observed, not documented; the code is unverified), with
    `Stripe-Should-Retry: false`: the event counted already."""
    return invalid(
        f"An event already exists with identifier {identifier}.", param="identifier", code="duplicate_meter_event"
    )


def create_meter_event(tx: Tx, params: dict[str, Any]) -> tuple[int, Any]:
    for name in params:
        if name not in ("event_name", "payload", "identifier", "timestamp"):
            raise invalid(f"Received unknown parameter: {name}", param=name, code="parameter_unknown")
    if not params.get("event_name"):
        raise missing("event_name")
    event_name = str(params["event_name"])
    if len(event_name) > 100:
        raise invalid("event_name must be at most 100 characters", param="event_name")
    payload = _payload(params.get("payload"))
    identifier = _identifier(params.get("identifier"))
    now = clock.now(tx)
    timestamp = integer(params["timestamp"], "timestamp") if params.get("timestamp") not in (None, "") else now
    problem = timestamp_problem(timestamp, now)
    if problem is not None:
        raise invalid(problem[1], param="timestamp", code=problem[0])
    meter = meter_by_event_name(tx, event_name)
    if meter is not None:
        _, value_problem = value_of(meter, payload)
        if value_problem is not None:
            raise invalid(value_problem[1], param=f"payload[{meter['value_settings']['event_payload_key']}]")
    if seen_recently(tx, current_account.get() or "", event_name, identifier, now):
        raise duplicate(identifier)
    accept(tx, [Incoming(event_name, payload, identifier, timestamp)], check_timestamps=False)
    return 200, {
        "object": "billing.meter_event",
        "created": now,
        "event_name": event_name,
        "identifier": identifier,
        "livemode": False,
        "payload": payload,
        "timestamp": timestamp,
    }


def create_meter_event_adjustment(tx: Tx, params: dict[str, Any]) -> tuple[int, Any]:
    if params.get("type", "cancel") != "cancel":
        raise invalid("Invalid type: must be cancel", param="type")
    if not params.get("event_name"):
        raise missing("event_name")
    spec = params.get("cancel")
    if not isinstance(spec, dict) or not spec.get("identifier"):
        raise missing("cancel[identifier]")
    event_name, identifier = str(params["event_name"]), str(spec["identifier"])
    if not cancel(tx, current_account.get() or "", event_name, identifier, clock.now(tx)):
        # Wording and code unverified: only an event received in the last 24 hours can be cancelled.
        raise error(
            400,
            "invalid_request_error",
            f"No meter event with identifier {identifier} received in the last 24 hours can be cancelled.",
            code="invalid_cancel_configuration",
            param="cancel[identifier]",
        )
    return 200, {
        "object": "billing.meter_event_adjustment",
        "cancel": {"identifier": identifier},
        "event_name": event_name,
        "livemode": False,
        "status": "pending",
        "type": "cancel",
    }
