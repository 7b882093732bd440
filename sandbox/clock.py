"""The sandbox's clock: the real time plus an offset the control plane moves forward, so a
test can let an hour of Stripe's time pass (a draft's finalisation grace, a meter event
session's 15 minutes) in no time. Kept in the store, so every request of one sandbox sees
the same time and a reset puts it back.

What runs on it: meter events (their timestamps' window, duplicates, cancellations), meter
event sessions, usage invoices (the period end's draft and its finalisation). The older
flows and webhook signatures keep the real time (a receiver checks a signature against its
own clock).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

from sandbox.store import Tx

SYSTEM = "sandbox"
_TYPE, _ID = "clock", "offset"


def offset(tx: Tx) -> int:
    found = tx.get(SYSTEM, _TYPE, _ID)
    return 0 if found is None else int(found["seconds"])


def now(tx: Tx) -> int:
    """Unix seconds on the sandbox's clock."""
    return int(time.time()) + offset(tx)


def advance(tx: Tx, seconds: int) -> int:
    """Move the clock forward (never back: what happened stays in the past). Returns now."""
    if seconds < 0:
        raise ValueError("the sandbox's clock only moves forward")
    tx.put(SYSTEM, _TYPE, _ID, {"id": _ID, "seconds": offset(tx) + seconds})
    return now(tx)


def rfc3339(unix_seconds: int) -> str:
    """A moment as Stripe's v2 API writes it."""
    return datetime.fromtimestamp(unix_seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def parse_rfc3339(text: str) -> int | None:
    """Unix seconds of an RFC 3339 timestamp with an offset; None when it is not one."""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        return None
    return int(moment.timestamp())
