"""Spans of time in the words a person reads them: how long an approval waits, a day lasts."""

from __future__ import annotations

from datetime import timedelta

_UNITS = (("day", 86400), ("hour", 3600), ("minute", 60))
# Up to three days a span reads in hours, as approval policies state them ("72 hours").
_HOURS_UP_TO = 72 * 3600


def in_words(span: timedelta) -> str:
    """The largest unit that states `span` exactly: "7 days", "72 hours", "90 minutes",
    "30 seconds", "1.5 seconds"."""
    seconds = span.total_seconds()
    for name, size in _UNITS:
        if name == "day" and seconds <= _HOURS_UP_TO:
            continue
        count, rest = divmod(seconds, size)
        if count and not rest:
            return _plural(int(count), name)
    return f"{seconds:g} second" + ("" if seconds == 1 else "s")


def _plural(count: int, name: str) -> str:
    return f"{count} {name}" + ("" if count == 1 else "s")
