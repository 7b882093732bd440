"""Billing meters (`/v1/billing/meters`): what usage events a meter counts and how it
aggregates them, and its event summaries.

A meter's `event_name` is unique in its account (among active and inactive meters, as
Stripe keeps one meter per name); everything but `display_name` is fixed at creation.
There is no delete: a meter is deactivated (its events are refused as `archived_meter`)
and may be reactivated. Simplification: `event_time_window` is kept as given, but events
are not pre-aggregated per window.
"""

from __future__ import annotations

import hashlib
from typing import Any

from sandbox import clock
from sandbox.core import new_id
from sandbox.store import Tx
from sandbox.stripe import SYSTEM
from sandbox.stripe.accounts import current_account, customer_here
from sandbox.stripe.errors import invalid, missing, no_such
from sandbox.stripe.meter_store import aggregate
from sandbox.stripe.params import integer, list_object

FORMULAS = ("sum", "count", "last")
TIME_WINDOWS = ("day", "hour")
CREATE_PARAMS = frozenset(
    {"display_name", "event_name", "default_aggregation", "customer_mapping", "value_settings", "event_time_window"}
)


def _unknown(params: dict[str, Any], allowed: frozenset[str]) -> None:
    for name in params:
        if name not in allowed and name != "expand":
            raise invalid(f"Received unknown parameter: {name}", param=name, code="parameter_unknown")


def _account_of(meter: dict[str, Any]) -> str | None:
    return meter.get("_stripe_account") or None


def meter_here(tx: Tx, id_: str) -> dict[str, Any]:
    meter = tx.get(SYSTEM, "meter", id_)
    if meter is None or _account_of(meter) != current_account.get():
        raise no_such("billing.meter", id_)
    return meter


def meter_by_event_name(tx: Tx, event_name: str) -> dict[str, Any] | None:
    """The account's meter for an event name, active or not."""
    account = current_account.get()
    for row in tx.page(SYSTEM, "meter", [("data.event_name", "=", event_name)]):
        if _account_of(row.data) == account:
            return row.data
    return None


def _payload_key(spec: Any, param: str, default: str) -> str:
    if spec is None:
        return default
    if not isinstance(spec, dict):
        raise invalid(f"Invalid {param}: must be a hash", param=param)
    key = spec.get("event_payload_key", default)
    if not isinstance(key, str) or not key or len(key) > 100:
        raise invalid(f"Invalid {param}[event_payload_key]", param=f"{param}[event_payload_key]")
    return key


def create_meter(tx: Tx, params: dict[str, Any]) -> tuple[int, Any]:
    _unknown(params, CREATE_PARAMS)
    for name in ("display_name", "event_name"):
        if not params.get(name):
            raise missing(name)
    display_name, event_name = str(params["display_name"]), str(params["event_name"])
    if len(display_name) > 250:
        raise invalid("display_name must be at most 250 characters", param="display_name")
    if len(event_name) > 100:
        raise invalid("event_name must be at most 100 characters", param="event_name")
    aggregation = params.get("default_aggregation")
    if not isinstance(aggregation, dict) or not aggregation.get("formula"):
        raise missing("default_aggregation[formula]")
    if aggregation["formula"] not in FORMULAS:
        raise invalid(
            f"Invalid default_aggregation[formula]: must be one of {', '.join(FORMULAS)}",
            param="default_aggregation[formula]",
        )
    mapping = params.get("customer_mapping")
    if mapping is not None and isinstance(mapping, dict) and mapping.get("type", "by_id") != "by_id":
        raise invalid("Invalid customer_mapping[type]: must be by_id", param="customer_mapping[type]")
    window = params.get("event_time_window") or None
    if window is not None and window not in TIME_WINDOWS:
        raise invalid("Invalid event_time_window: must be one of day, hour", param="event_time_window")
    if meter_by_event_name(tx, event_name) is not None:
        # Wording unverified: Stripe keeps one meter per event name.
        raise invalid(
            f"A meter with event_name '{event_name}' already exists.",
            param="event_name",
            code="resource_already_exists",
        )
    now = clock.now(tx)
    meter_id = new_id("mtr")
    meter: dict[str, Any] = {
        "id": meter_id,
        "object": "billing.meter",
        "created": now,
        "customer_mapping": {
            "event_payload_key": _payload_key(mapping, "customer_mapping", "stripe_customer_id"),
            "type": "by_id",
        },
        "default_aggregation": {"formula": aggregation["formula"]},
        "display_name": display_name,
        "event_name": event_name,
        "event_time_window": window,
        "livemode": False,
        "status": "active",
        "status_transitions": {"deactivated_at": None},
        "updated": now,
        "value_settings": {"event_payload_key": _payload_key(params.get("value_settings"), "value_settings", "value")},
    }
    tx.put(SYSTEM, "meter", meter_id, meter)
    return 200, meter


def get_meter(tx: Tx, params: dict[str, Any], id: str) -> tuple[int, Any]:
    return 200, meter_here(tx, id)


def update_meter(tx: Tx, params: dict[str, Any], id: str) -> tuple[int, Any]:
    meter = meter_here(tx, id)
    _unknown(params, frozenset({"display_name"}))  # everything else is fixed at creation
    if "display_name" in params:
        if not params["display_name"] or len(str(params["display_name"])) > 250:
            raise invalid("Invalid display_name", param="display_name")
        meter["display_name"] = str(params["display_name"])
        meter["updated"] = clock.now(tx)
        tx.put(SYSTEM, "meter", id, meter)
    return 200, meter


def _set_status(tx: Tx, id_: str, status: str) -> dict[str, Any]:
    meter = meter_here(tx, id_)
    if meter["status"] == status:
        # Wording unverified.
        raise invalid(f"This meter is already {status}.", code="meter_already_" + status)
    now = clock.now(tx)
    meter["status"] = status
    meter["status_transitions"] = {"deactivated_at": now if status == "inactive" else None}
    meter["updated"] = now
    tx.put(SYSTEM, "meter", id_, meter)
    return meter


def deactivate_meter(tx: Tx, params: dict[str, Any], id: str) -> tuple[int, Any]:
    return 200, _set_status(tx, id, "inactive")


def reactivate_meter(tx: Tx, params: dict[str, Any], id: str) -> tuple[int, Any]:
    return 200, _set_status(tx, id, "active")


def _limit(params: dict[str, Any]) -> int:
    limit = integer(params.get("limit", 10), "limit")
    if not 1 <= limit <= 100:
        raise invalid("limit must be between 1 and 100", param="limit")
    return limit


def _cursor_page(
    items: list[dict[str, Any]], params: dict[str, Any], kind: str, url: str
) -> tuple[int, dict[str, Any]]:
    limit = _limit(params)
    ids = [item["id"] for item in items]
    after, before = params.get("starting_after"), params.get("ending_before")
    if after:
        if after not in ids:
            raise no_such(kind, str(after), status=400, param="starting_after")
        items = items[ids.index(after) + 1 :]
        return 200, list_object(url, items[:limit], has_more=len(items) > limit)
    if before:
        if before not in ids:
            raise no_such(kind, str(before), status=400, param="ending_before")
        items = items[: ids.index(before)]
        return 200, list_object(url, items[-limit:], has_more=len(items) > limit)
    return 200, list_object(url, items[:limit], has_more=len(items) > limit)


def list_meters(tx: Tx, params: dict[str, Any]) -> tuple[int, Any]:
    """Newest first, optionally by status."""
    account = current_account.get()
    meters = [m for m in reversed(tx.list(SYSTEM, "meter")) if _account_of(m) == account]
    if params.get("status"):
        if params["status"] not in ("active", "inactive"):
            raise invalid("Invalid status: must be active or inactive", param="status")
        meters = [m for m in meters if m["status"] == params["status"]]
    return _cursor_page(meters, params, "billing.meter", "/v1/billing/meters")


def _minute_aligned(params: dict[str, Any], name: str) -> int:
    if params.get(name) in (None, ""):
        raise missing(name)
    value = integer(params[name], name)
    if value % 60:
        raise invalid(f"{name} must be aligned with minute boundaries", param=name)
    return value


def _window_start(moment: int, window: str) -> int:
    size = 3600 if window == "hour" else 86400  # UTC hours and days
    return moment - moment % size


def list_event_summaries(tx: Tx, params: dict[str, Any], id: str) -> tuple[int, Any]:
    """`GET /v1/billing/meters/{id}/event_summaries`: the meter's aggregate of one customer's
    events with timestamps in [start_time, end_time), as one summary, or one per UTC hour
    or day (`value_grouping_window`; only windows with events are listed, oldest first:
    both unverified). Stripe's summaries lag behind ingestion; the sandbox's do not."""
    meter = meter_here(tx, id)
    if not params.get("customer"):
        raise missing("customer")
    customer = str(params["customer"])
    customer_here(tx, customer)
    start, end = _minute_aligned(params, "start_time"), _minute_aligned(params, "end_time")
    if end <= start:
        raise invalid("end_time must be after start_time", param="end_time")
    window = params.get("value_grouping_window") or None
    if window is not None and window not in TIME_WINDOWS:
        raise invalid("Invalid value_grouping_window: must be one of day, hour", param="value_grouping_window")
    formula = meter["default_aggregation"]["formula"]
    account = current_account.get() or ""
    if window is None:
        bounds = [(start, end)]
    else:
        size = 3600 if window == "hour" else 86400
        bounds = []
        cursor = _window_start(start, window)
        while cursor < end:
            bounds.append((max(cursor, start), min(cursor + size, end)))
            cursor += size
    summaries = []
    for low, high in bounds:
        value, events = aggregate(tx, account, meter["event_name"], customer, low, high, formula)
        if window is not None and not events:
            continue
        digest = hashlib.sha256(f"{meter['id']}|{customer}|{low}|{high}".encode()).hexdigest()[:20]
        summaries.append(
            {
                "id": f"mtrusg_{digest}",
                "object": "billing.meter_event_summary",
                "aggregated_value": value,
                "end_time": high,
                "livemode": False,
                "meter": meter["id"],
                "start_time": low,
            }
        )
    return _cursor_page(summaries, params, "billing.meter_event_summary", f"/v1/billing/meters/{id}/event_summaries")
