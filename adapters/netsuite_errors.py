"""NetSuite's error answers, classified once for every NetSuite adapter module."""

from __future__ import annotations

import httpx

from adapters.errors import AdapterError, Answer, ErrorKind, ErrorTable, Rule
from adapters.http import read_json
from canonical.journal import JournalEntry

SYSTEM = "netsuite"


PERIOD_CLOSED = "PERIOD_CLOSED"
ERRORS = ErrorTable(
    SYSTEM,
    credentials=Rule(ErrorKind.BUG, "NetSuite rejected o2c's token or role: {message}"),
    refused=Rule(ErrorKind.BUSINESS, "NetSuite refused {what}: {message}"),
    business={
        PERIOD_CLOSED: Rule(
            ErrorKind.BUSINESS,
            "The ERP accounting period{when} is closed: reopen it in NetSuite or move the posting date. ({message})",
            fixable=True,
            code=PERIOD_CLOSED,
        )
    },
)


def read_error(response: httpx.Response) -> Answer:
    """NetSuite's error answer: `{"o:errorDetails": [{o:errorCode, o:errorPath, detail}]}`.
    A closed period comes as a generic code; only its path or its words tell it."""
    status = response.status_code
    body = read_json(response)
    details = (body.get("o:errorDetails") or []) if isinstance(body, dict) else []
    first = details[0] if details else {}
    detail = first.get("detail") or f"HTTP {status}"
    text = detail.lower()
    closed = first.get("o:errorPath") == "postingPeriod" or (
        "period" in text and ("closed" in text or "locked" in text)
    )
    return Answer(status, first.get("o:errorCode", ""), detail, reason=PERIOD_CLOSED if closed else "")


def classify(
    response: httpx.Response, entry: JournalEntry | None = None, *, what: str = "the journal entry"
) -> AdapterError:
    when = f" for {entry.posting_date.isoformat()} (subsidiary {entry.subsidiary})" if entry else ""
    return ERRORS.classify(read_error(response), what=what, when=when)
