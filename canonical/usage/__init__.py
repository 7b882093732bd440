"""Usage to invoice: the events, their validation, the review before release and the booking."""

from canonical.usage.booking import usage_entries, usage_schedule
from canonical.usage.review import MAD_SCALE, completeness, mad, median, review_usage
from canonical.usage.validation import EventValidator, validate_event

__all__ = [
    "MAD_SCALE",
    "EventValidator",
    "completeness",
    "mad",
    "median",
    "review_usage",
    "usage_entries",
    "usage_schedule",
    "validate_event",
]
