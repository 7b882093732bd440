"""Reading Stripe's form parameters: booleans, integers, decimals, timestamps, metadata
(merged as Stripe merges it) and list objects."""

from __future__ import annotations

import calendar
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from sandbox.stripe.errors import invalid


def timestamp(d: date | str) -> int:
    if isinstance(d, str):
        d = date.fromisoformat(d)
    return int(datetime(d.year, d.month, d.day, tzinfo=UTC).timestamp())


def add_month(d: date) -> date:
    """The same day next month, clamped to the month's last day (Jan 31 -> Feb 28)."""
    year, month = (d.year + 1, 1) if d.month == 12 else (d.year, d.month + 1)
    return date(year, month, min(d.day, calendar.monthrange(year, month)[1]))


def boolean(value: Any, param: str) -> bool:
    if isinstance(value, bool):
        return value
    if value in ("true", "false"):
        return bool(value == "true")
    raise invalid(f"Invalid boolean: {value}", param=param)


def integer(value: Any, param: str) -> int:
    try:
        if isinstance(value, bool):
            raise ValueError
        return int(str(value))
    except (TypeError, ValueError):
        raise invalid(f"Invalid integer: {value}", param=param) from None


def decimal_amount(value: Any, param: str) -> Decimal:
    try:
        result = Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise invalid(f"Invalid decimal: {value}", param=param) from None
    if not result.is_finite():
        raise invalid(f"Invalid decimal: {value}", param=param)
    return result


def merge_metadata(current: dict[str, str], update: Any, param: str = "metadata") -> dict[str, str]:
    """Stripe merges metadata; an empty value unsets a key; an empty string unsets all."""
    if update is None:
        return current
    if update == "":
        return {}
    if not isinstance(update, dict):
        raise invalid("Invalid metadata: must be a hash", param=param)
    merged = dict(current)
    for key, value in update.items():
        if value == "":
            merged.pop(key, None)
        else:
            merged[key] = str(value)
    return merged


def list_object(url: str, data: list[dict[str, Any]], has_more: bool = False) -> dict[str, Any]:
    return {"object": "list", "url": url, "has_more": has_more, "data": data}
