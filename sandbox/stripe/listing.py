"""`GET /v1/invoices`: an account's invoices by period, page by page, pushed down to SQL."""

from __future__ import annotations

from typing import Any

from sandbox.store import Condition, Tx, utc_day
from sandbox.stripe import SYSTEM
from sandbox.stripe.accounts import current_account
from sandbox.stripe.errors import invalid, no_such
from sandbox.stripe.params import integer, list_object


def _created_range(params: dict[str, Any]) -> tuple[int | None, int | None]:
    """`created` as Stripe takes it on lists: an exact unix timestamp, or a hash of
    gt/gte/lt/lte bounds. Returns inclusive (low, high) bounds, None when open."""
    created = params.get("created")
    if created is None:
        return None, None
    if not isinstance(created, dict):
        exact = integer(created, "created")
        return exact, exact
    low = high = None
    for op, raw in created.items():
        value = integer(raw, f"created[{op}]")
        if op == "gte":
            low = value if low is None else max(low, value)
        elif op == "gt":
            low = value + 1 if low is None else max(low, value + 1)
        elif op == "lte":
            high = value if high is None else min(high, value)
        elif op == "lt":
            high = value - 1 if high is None else min(high, value - 1)
        else:
            raise invalid(
                f"Received unknown parameter: created[{op}]", param=f"created[{op}]", code="parameter_unknown"
            )
    return low, high


def list_invoices(tx: Tx, params: dict[str, Any]) -> tuple[int, Any]:
    """`GET /v1/invoices`: the invoices of the account the request acts for (its
    `Stripe-Account`, else the platform's), newest first, filtered by `created` bounds,
    customer, subscription and status, a page of `limit` after `starting_after`.

    The account and the UTC days the `created` bounds cover are pushed down to the
    indexed columns (store.INDEXERS), and `starting_after` becomes a keyset on (day,
    insertion order): the rest of its day, then the days before. `created` itself is
    checked here, which only ever skips invoices of the two boundary days, so a page
    costs O(limit) however many invoices there are. Order: by day, then by insertion,
    newest first, which is `created` order whenever invoices are inserted as they are
    created (the API does; so does the period seeder)."""
    limit = integer(params.get("limit", 10), "limit")
    if not 1 <= limit <= 100:
        raise invalid("limit must be between 1 and 100", param="limit")
    account = current_account.get() or ""
    low, high = _created_range(params)
    where: list[Condition] = [("scope", "=", account)]
    if low is not None:
        where.append(("day", ">=", utc_day(low)))
    for name in ("customer", "subscription", "status"):
        if params.get(name):
            where.append((f"data.{name}", "=", str(params[name])))
    newest_first = (("day", True), ("seq", True))
    after = params.get("starting_after")
    if after:
        row = tx.row(SYSTEM, "invoice", str(after))
        if row is None or row.scope != account or row.day is None:
            raise no_such("invoice", str(after), status=400, param="starting_after")
        segments = [[*where, ("day", "=", row.day), ("seq", "<", row.seq)], [*where, ("day", "<", row.day)]]
        if high is not None and utc_day(high) < row.day:
            segments = [[*where, ("day", "<=", utc_day(high))]]
    else:
        segments = [[*where, *([("day", "<=", utc_day(high))] if high is not None else [])]]
    invoices: list[dict[str, Any]] = []
    for segment in segments:
        rows = tx.page(SYSTEM, "invoice", segment, order_by=newest_first, batch=limit + 1)
        try:
            for found in rows:
                created = int(found.data.get("created") or 0)
                if (low is None or created >= low) and (high is None or created <= high):
                    invoices.append(found.data)
                    if len(invoices) > limit:
                        break
        finally:
            rows.close()
        if len(invoices) > limit:
            break
    return 200, list_object("/v1/invoices", invoices[:limit], has_more=len(invoices) > limit)
