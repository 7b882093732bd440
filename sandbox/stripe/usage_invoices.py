"""What Stripe does at a metered subscription's period end (the control plane calls these):
the draft invoice for the ended period from the meters, and its automatic finalisation
once the draft's grace has passed on the sandbox's clock.

At period end Stripe creates a `subscription_cycle` draft with one line per metered item
(metered_lines.py), `auto_advance=true`, sends `invoice.created`, and moves the
subscription to its next period. The draft finalises itself an hour later (Stripe: about
an hour after `invoice.created` was delivered; the sandbox counts from creation), its
quantities measured again, so usage sent during the grace counts; a draft held with
`auto_advance=false` waits for `/finalize`. Licensed items are not billed here (the
sandbox bills them through the renewal charge).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sandbox import clock
from sandbox.store import Tx
from sandbox.stripe import SYSTEM
from sandbox.stripe.accounts import current_account
from sandbox.stripe.errors import invalid, no_such
from sandbox.stripe.events import emit
from sandbox.stripe.invoices import create_invoice, finalize_invoice, recompute_totals
from sandbox.stripe.metered_lines import is_metered, metered_line
from sandbox.stripe.params import add_month, timestamp

GRACE_SECONDS = 3600
SCHEDULE = "scheduled_finalization"


def _next_end(start: int, interval: str) -> int:
    day = datetime.fromtimestamp(start, tz=UTC).date()
    months = 12 if interval == "year" else 1
    for _ in range(months):
        day = add_month(day)
    return timestamp(date(day.year, day.month, day.day))


def end_period(tx: Tx, id: str, body: dict[str, Any]) -> dict[str, Any]:
    """End the subscription's current period: its usage draft, and the next period."""
    subscription = tx.get(SYSTEM, "subscription", id)
    if subscription is None:
        raise no_such("subscription", id)
    if subscription["status"] not in ("active", "past_due"):
        raise invalid(f"subscription {id} is {subscription['status']}; only a running subscription bills a period")
    metered = [item for item in subscription["items"]["data"] if is_metered(item.get("price") or {})]
    if not metered:
        raise invalid(f"subscription {id} has no metered items")
    start, end = int(subscription["current_period_start"]), int(subscription["current_period_end"])
    account = subscription.get("_stripe_account") or None
    token = current_account.set(account)
    # The draft is the connected account's, as the API would have made it in that account.
    fields = tx.insert_fields.get(SYSTEM)
    if account:
        tx.insert_fields[SYSTEM] = {"_stripe_account": account}
    try:
        _, invoice = create_invoice(
            tx, {"customer": subscription["customer"], "subscription": id, "currency": subscription["currency"]}
        )
    finally:
        current_account.reset(token)
        if fields is None:
            tx.insert_fields.pop(SYSTEM, None)
        else:
            tx.insert_fields[SYSTEM] = fields
    now = clock.now(tx)
    invoice.update(
        {
            "billing_reason": "subscription_cycle",
            "auto_advance": True,
            "created": now,
            "period_start": start,
            "period_end": end,
            "automatically_finalizes_at": now + GRACE_SECONDS,
            "last_finalization_error": None,
        }
    )
    invoice["lines"]["data"] = [metered_line(tx, invoice, item, start, end, account or "") for item in metered]
    recompute_totals(invoice)
    tx.put(SYSTEM, "invoice", invoice["id"], invoice)
    tx.put(SYSTEM, SCHEDULE, invoice["id"], {"id": invoice["id"], "at": now + GRACE_SECONDS})
    interval = ((metered[0].get("price") or {}).get("recurring") or {}).get("interval", "month")
    previous = {
        "current_period_start": start,
        "current_period_end": end,
        "latest_invoice": subscription.get("latest_invoice"),
    }
    subscription.update(
        {"current_period_start": end, "current_period_end": _next_end(end, interval), "latest_invoice": invoice["id"]}
    )
    tx.put(SYSTEM, "subscription", id, subscription)
    emit(tx, "invoice.created", invoice)
    emit(tx, "customer.subscription.updated", subscription, previous_attributes=previous)
    return {"invoice": invoice, "subscription": subscription}


def finalize_due(tx: Tx) -> list[str]:
    """Finalise every draft whose grace has passed and that is not held; returns their ids.
    A held draft keeps its place (it finalises on its own once it is let go again); one
    that failed to finalise is tried again next time (its failure was sent as an event)."""
    now = clock.now(tx)
    finalized = []
    for entry in tx.list(SYSTEM, SCHEDULE):
        if int(entry["at"]) > now:
            continue
        invoice = tx.get(SYSTEM, "invoice", entry["id"])
        if invoice is None or invoice["status"] != "draft":
            tx.delete(SYSTEM, SCHEDULE, entry["id"])
            continue
        if not invoice.get("auto_advance"):
            continue
        token = current_account.set(invoice.get("_stripe_account") or None)
        try:
            status = finalize_invoice(tx, {}, entry["id"])[0]
        finally:
            current_account.reset(token)
        if status == 200:
            tx.delete(SYSTEM, SCHEDULE, entry["id"])
            finalized.append(entry["id"])
    return finalized


def fail_finalization(tx: Tx, id: str, body: dict[str, Any]) -> dict[str, Any]:
    """Make the invoice's finalisation fail (`times` times, or until cleared with
    `clear: true`), as Stripe fails one it cannot compute tax for."""
    if tx.get(SYSTEM, "invoice", id) is None:
        raise no_such("invoice", id)
    if body.get("clear"):
        tx.delete(SYSTEM, "finalization_failure", id)
        return {"invoice": id, "cleared": True}
    times = body.get("times")
    fault = {
        "id": id,
        "code": str(body.get("code") or "failed_tax_calculation"),
        "message": str(
            body.get("message")
            or "Tax could not be calculated for this invoice: the customer's location is missing or invalid."
        ),
        "times": None if times is None else int(times),
    }
    tx.put(SYSTEM, "finalization_failure", id, fault)
    return fault
