"""Validation before anything is billed: the checks one event must pass to be counted."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from canonical.usage.models import EventVerdict, Meter, UsageCustomer, UsageEvent, UsagePolicy


def validate_event(
    event: UsageEvent,
    *,
    meters: Mapping[str, Meter],
    customers: Mapping[str, UsageCustomer],
    closed_periods: frozenset[tuple[str, str]] | set[tuple[str, str]],
    open_period: Mapping[str, str],
    policy: UsagePolicy,
    now: datetime,
) -> EventVerdict:
    """ACCEPTED (with the period it counts in) or REFUSED with its reason in words. Never
    DUPLICATE: that is the store's answer, once the identifier is looked up.

    `closed_periods` holds (customer, period) pairs already released; `open_period` maps a
    customer to its earliest open period, where a late event's adjustment counts under
    LatePolicy.NEXT_INVOICE."""
    raise NotImplementedError
