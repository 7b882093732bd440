"""Stripe webhooks: signature verification and event mapping, nothing else.

Protocol knowledge only (no Temporal, no HTTP server): the ingress in
`starter/webhooks.py` reads the raw body, calls `verify_signature`, then
`parse_event` and `to_payment_event` (or, for a usage invoice's draft and its failed
finalisation, `to_usage_invoice_event`; for cash, `to_receipt`; for disputes,
`to_dispute_event`), and routes what comes out.

Signature, as Stripe specifies it: the header is
`Stripe-Signature: t=<unix seconds>,v1=<hex>[,v1=<hex>...][,v0=<hex>]`; the expected
signature is the hex HMAC-SHA256 of `"<t>." + raw body` keyed with the endpoint's
`whsec_...` secret, compared in constant time against every `v1` value (Stripe sends
several while a secret is being rolled). Other schemes (`v0`, test-mode legacy) are
ignored. A timestamp more than `tolerance` seconds away from now, in the past (a
replay) or in the future (a forged or badly skewed clock), is refused.
"""

from __future__ import annotations

import hashlib
import hmac
import inspect
import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from adapters.errors import AdapterError
from adapters.stripe_payments import to_dispute
from canonical.cash.models import OpenItem, Receipt, ReceiptSource
from canonical.credits import DisputeEvent
from canonical.models import DEFAULT_ENTITIES, LegalEntity, PaymentEvent, PaymentEventKind
from canonical.money import CurrencyError, Money
from canonical.usage.models import period_of

DEFAULT_TOLERANCE_SECONDS = 300
SIGNATURE_SCHEME = "v1"


class SignatureError(Exception):
    """The request is not provably from Stripe (or is a replay): answer 400, touch nothing."""

    def __init__(self, reason: str):
        self.reason = reason
        super().__init__(reason)


class EventError(ValueError):
    """A correctly signed body that is not a Stripe event o2c can read."""

    def __init__(self, reason: str):
        self.reason = reason
        super().__init__(reason)


# -- signatures ----------------------------------------------------------------------------


def _expected(payload: bytes, secret: str, timestamp: int) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + payload, hashlib.sha256).hexdigest()


def sign(payload: bytes, secret: str, timestamp: int) -> str:
    """A `Stripe-Signature` header value as Stripe would send it (for the sandbox and for
    tests of the ingress; the signature tests use independently computed vectors)."""
    return f"t={timestamp},{SIGNATURE_SCHEME}={_expected(payload, secret, timestamp)}"


def verify_signature(
    payload: bytes, header: str | None, secret: str, *, now: float, tolerance: int = DEFAULT_TOLERANCE_SECONDS
) -> None:
    """Raise SignatureError unless `header` signs exactly `payload` with `secret`
    at a time within `tolerance` seconds of `now`."""
    if not secret:
        raise SignatureError("no webhook secret is configured")
    if not header:
        raise SignatureError("missing Stripe-Signature header")
    timestamps: list[str] = []
    signatures: list[str] = []
    for element in header.split(","):
        key, sep, value = element.strip().partition("=")
        if not sep or not key:
            raise SignatureError("malformed Stripe-Signature header")
        if key == "t":
            timestamps.append(value)
        elif key == SIGNATURE_SCHEME:
            signatures.append(value)
        # any other scheme (v0, future ones) is ignored, as Stripe asks
    if len(timestamps) != 1:
        raise SignatureError(
            "Stripe-Signature has no timestamp" if not timestamps else "Stripe-Signature has more than one timestamp"
        )
    if not signatures:
        raise SignatureError("Stripe-Signature has no v1 signature")
    raw_t = timestamps[0]
    if not raw_t.isascii() or not raw_t.isdigit():
        raise SignatureError("Stripe-Signature timestamp is not an integer")
    timestamp = int(raw_t)
    if now - timestamp > tolerance:
        raise SignatureError("timestamp outside the tolerance (too old)")
    if timestamp - now > tolerance:
        raise SignatureError("timestamp outside the tolerance (in the future)")
    expected = _expected(payload, secret, timestamp).encode()
    # Compare against every v1 without stopping at the first match, as bytes (a header
    # may carry non-ASCII characters, which compare_digest refuses in a str).
    matched = False
    for candidate in signatures:
        matched |= hmac.compare_digest(expected, candidate.encode("utf-8", "surrogateescape"))
    if not matched:
        raise SignatureError("no v1 signature matches the payload")


# -- events --------------------------------------------------------------------------------


@dataclass(frozen=True)
class StripeEvent:
    id: str
    type: str
    created: int
    object: dict[str, Any]
    previous_attributes: dict[str, Any] | None = None
    livemode: bool = False
    api_version: str = ""
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)


def parse_event(payload: bytes) -> StripeEvent:
    """The event envelope of a (snapshot) Stripe event; EventError if it is not one."""
    try:
        body = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise EventError(f"body is not JSON: {error}") from None
    if not isinstance(body, dict):
        raise EventError("body is not a JSON object")
    if body.get("object", "event") != "event":
        raise EventError(f"body is a {body.get('object')!r}, not an event")
    event_id, type_, created, data = body.get("id"), body.get("type"), body.get("created"), body.get("data")
    if not isinstance(event_id, str) or not event_id:
        raise EventError("event has no id")
    if not isinstance(type_, str) or not type_:
        raise EventError("event has no type")
    if isinstance(created, bool) or not isinstance(created, int):
        raise EventError("event has no integer created timestamp")
    if not isinstance(data, dict) or not isinstance(data.get("object"), dict):
        raise EventError("event has no data.object")
    previous = data.get("previous_attributes")
    if previous is not None and not isinstance(previous, dict):
        raise EventError("data.previous_attributes is not an object")
    return StripeEvent(
        id=event_id,
        type=type_,
        created=created,
        object=data["object"],
        previous_attributes=previous,
        livemode=bool(body.get("livemode", False)),
        api_version=str(body.get("api_version") or ""),
        raw=body,
    )


# A charge id -> the invoice it paid (None when it paid no invoice). Sync or async, so
# the billing adapter's `invoice_of_charge` and a plain dict's `get` both fit.
ChargeLookup = Callable[[str], "Awaitable[str | None] | str | None"]

INVOICE_PAID_TYPES = frozenset({"invoice.paid", "invoice.payment_succeeded"})
HANDLED_TYPES = frozenset(
    {
        "invoice.payment_failed",
        *INVOICE_PAID_TYPES,
        "invoice.updated",
        "charge.dispute.created",
        "charge.dispute.closed",
        "charge.dispute.funds_withdrawn",
        "charge.dispute.funds_reinstated",
        "charge.dispute.updated",
        "charge.succeeded",
        "payment_method.attached",
        "customer.updated",
    }
)


MAX_MINOR_UNITS = 10**12


def _id(value: Any) -> str:
    """An expandable field: either the id string or the expanded object."""
    if isinstance(value, dict):
        value = value.get("id")
    return value if isinstance(value, str) else ""


def _money(obj: dict[str, Any], key: str, currency: str) -> Money | None:
    minor = obj.get(key)
    if minor is None:
        return None
    if isinstance(minor, bool) or not isinstance(minor, int):
        raise EventError(f"{key} is not a whole number of minor units: {minor!r}")
    # Stripe's amounts are non-negative and at most eight digits for most currencies; a
    # generous bound still stops an absurd amount from reaching a workflow.
    if not 0 <= minor <= MAX_MINOR_UNITS:
        raise EventError(f"{key} of {minor} minor units is out of range")
    return Money.from_minor(minor, currency)


def _currency(obj: dict[str, Any]) -> str:
    currency = obj.get("currency")
    if not isinstance(currency, str) or not currency:
        raise EventError(f"{obj.get('object', 'object')} {obj.get('id', '')} has no currency")
    return currency.upper()


def _decline_code(invoice: dict[str, Any]) -> str:
    """Where a decline code can be found in the event itself.

    A Stripe invoice does not carry the decline: it lives on the PaymentIntent
    (`last_payment_error.decline_code`) and the Charge. o2c reads it from
    `last_payment_error` on the invoice object (where the o2c sandbox puts it), or on an
    expanded `payment_intent`. Otherwise it stays empty and the dunning workflow learns
    the decline from its own retry (unverified against live Stripe payloads)."""
    for holder in (invoice, invoice.get("payment_intent")):
        if isinstance(holder, dict):
            error = holder.get("last_payment_error")
            code = error.get("decline_code") if isinstance(error, dict) else None
            if isinstance(code, str):
                return code
    return ""


def _occurred_at(event: StripeEvent) -> datetime:
    try:
        return datetime.fromtimestamp(event.created, tz=UTC)
    except (OverflowError, OSError, ValueError):
        raise EventError(f"created {event.created} is not a point in time") from None


def _invoice_event(event: StripeEvent, kind: PaymentEventKind) -> PaymentEvent:
    invoice = event.object
    invoice_id = _id(invoice)
    if not invoice_id:
        raise EventError(f"{event.type} {event.id} names no invoice")
    currency = _currency(invoice)
    return PaymentEvent(
        event_id=event.id,
        kind=kind,
        occurred_at=_occurred_at(event),
        invoice_id=invoice_id,
        account_id=_id(invoice.get("customer")),
        subscription_id=_id(invoice.get("subscription")),
        amount_due=_money(invoice, "amount_due", currency),
        amount_remaining=_money(invoice, "amount_remaining", currency),
        decline_code=_decline_code(invoice) if kind == PaymentEventKind.PAYMENT_FAILED else "",
    )


async def _dispute_event(
    event: StripeEvent, kind: PaymentEventKind, lookup_charge_invoice: ChargeLookup | None
) -> PaymentEvent | None:
    dispute = event.object
    charge = dispute.get("charge")
    invoice_id = ""
    if isinstance(charge, dict):  # expanded: older API versions name the invoice on the charge
        invoice_id = _id(charge.get("invoice"))
    charge_id = _id(charge)
    if not invoice_id and charge_id and lookup_charge_invoice is not None:
        found = lookup_charge_invoice(charge_id)
        if inspect.isawaitable(found):
            found = await found
        invoice_id = found or ""
    if not invoice_id:  # a dispute over a charge that paid no invoice: nothing dunning follows
        return None
    currency = _currency(dispute)
    return PaymentEvent(
        event_id=event.id,
        kind=kind,
        occurred_at=_occurred_at(event),
        invoice_id=invoice_id,
        account_id=_id(charge.get("customer")) if isinstance(charge, dict) else "",
        amount_due=_money(dispute, "amount", currency),
        dispute_id=_id(dispute),
        dispute_won=(dispute.get("status") == "won") if kind == PaymentEventKind.DISPUTE_CLOSED else None,
    )


def _default_payment_method_changed(event: StripeEvent) -> bool:
    previous = (event.previous_attributes or {}).get("invoice_settings")
    if not isinstance(previous, dict) or "default_payment_method" not in previous:
        return False
    current = (event.object.get("invoice_settings") or {}).get("default_payment_method")
    # Removing the default gives dunning nothing new to try.
    return bool(_id(current)) and _id(current) != _id(previous["default_payment_method"])


async def to_payment_event(
    event: StripeEvent, lookup_charge_invoice: ChargeLookup | None = None
) -> PaymentEvent | None:
    """The PaymentEvent an event means to o2c, or None for events o2c acknowledges and
    ignores. Disputes name a charge, not an invoice: `lookup_charge_invoice` resolves
    it (without one, or when the charge paid no invoice, a dispute maps to None).
    Raises EventError when a handled event lacks what o2c needs."""
    kind_of = PaymentEventKind
    try:
        if event.type == "invoice.payment_failed":
            return _invoice_event(event, kind_of.PAYMENT_FAILED)
        if event.type in INVOICE_PAID_TYPES:
            return _invoice_event(event, kind_of.PAID)
        if event.type == "invoice.updated":
            if "amount_remaining" not in (event.previous_attributes or {}):
                return None
            return _invoice_event(event, kind_of.BALANCE_CHANGED)
        if event.type == "charge.dispute.created":
            return await _dispute_event(event, kind_of.DISPUTE_OPENED, lookup_charge_invoice)
        if event.type == "charge.dispute.closed":
            return await _dispute_event(event, kind_of.DISPUTE_CLOSED, lookup_charge_invoice)
        if event.type == "payment_method.attached":
            account_id = _id(event.object.get("customer"))
            if not account_id:
                return None
            return PaymentEvent(
                event_id=event.id,
                kind=kind_of.PAYMENT_METHOD_UPDATED,
                occurred_at=_occurred_at(event),
                account_id=account_id,
            )
        if event.type == "customer.updated":
            if not _default_payment_method_changed(event):
                return None
            return PaymentEvent(
                event_id=event.id,
                kind=kind_of.PAYMENT_METHOD_UPDATED,
                occurred_at=_occurred_at(event),
                account_id=_id(event.object),
            )
    except CurrencyError as error:
        raise EventError(str(error)) from None
    return None


# -- usage invoices ----------------------------------------------------------------------------

# The draft a metered subscription's period end creates, and billing failing to finalise it.
USAGE_INVOICE_TYPES = frozenset({"invoice.created", "invoice.finalization_failed"})


@dataclass(frozen=True)
class UsageInvoiceEvent:
    """What a usage invoice's event tells the release of its subscription and period."""

    event_id: str
    type: str
    invoice_id: str
    subscription_id: str
    customer: str
    period: str  # the usage period ("YYYY-MM") the metered lines bill
    reason: str = ""  # invoice.finalization_failed: billing's last_finalization_error


def _metered(line: dict[str, Any]) -> bool:
    """A line billing a metered price: `price.recurring.usage_type` (or the legacy `plan.usage_type`)."""
    price, plan = line.get("price"), line.get("plan")
    recurring = price.get("recurring") if isinstance(price, dict) else None
    if isinstance(recurring, dict) and recurring.get("usage_type") == "metered":
        return True
    return isinstance(plan, dict) and plan.get("usage_type") == "metered"


def _subscription_of(invoice: dict[str, Any], lines: list[dict[str, Any]]) -> str:
    """The invoice's subscription: `subscription`, or `parent.subscription_details` (newer
    API versions), or that of its metered lines."""
    found = _id(invoice.get("subscription"))
    parent = invoice.get("parent")
    if not found and isinstance(parent, dict) and isinstance(parent.get("subscription_details"), dict):
        found = _id(parent["subscription_details"].get("subscription"))
    for line in lines:
        if found:
            break
        found = _id(line.get("subscription"))
        line_parent = line.get("parent")
        if (
            not found
            and isinstance(line_parent, dict)
            and isinstance(line_parent.get("subscription_item_details"), dict)
        ):
            found = _id(line_parent["subscription_item_details"].get("subscription"))
    return found


def _usage_period(event: StripeEvent, lines: list[dict[str, Any]]) -> str:
    starts = []
    for line in lines:
        period = line.get("period")
        start = period.get("start") if isinstance(period, dict) else None
        if isinstance(start, bool) or not isinstance(start, int):
            raise EventError(f"{event.type} {event.id}: a metered line has no integer period.start")
        starts.append(start)
    try:
        return period_of(datetime.fromtimestamp(min(starts), tz=UTC))
    except (OverflowError, OSError, ValueError):
        raise EventError(f"{event.type} {event.id}: period.start {min(starts)} is not a point in time") from None


def to_usage_invoice_event(event: StripeEvent) -> UsageInvoiceEvent | None:
    """The usage release an invoice event concerns, or None when it is not a subscription
    invoice with metered lines (a seat invoice, a one-off invoice) or not a usage type.
    Raises EventError when a metered invoice lacks what the routing needs."""
    if event.type not in USAGE_INVOICE_TYPES:
        return None
    invoice = event.object
    listing = invoice.get("lines")
    data = listing.get("data") if isinstance(listing, dict) else None
    lines = [x for x in data if isinstance(x, dict) and _metered(x)] if isinstance(data, list) else []
    if not lines:
        return None
    invoice_id = _id(invoice)
    if not invoice_id:
        raise EventError(f"{event.type} {event.id} names no invoice")
    subscription_id = _subscription_of(invoice, lines)
    if not subscription_id:
        raise EventError(f"{event.type} {event.id}: invoice {invoice_id} has metered lines but no subscription")
    reason = ""
    if event.type == "invoice.finalization_failed":
        error = invoice.get("last_finalization_error")
        if isinstance(error, dict):
            reason = str(error.get("message") or error.get("code") or "")
        reason = reason or "billing could not finalise the invoice (no reason given)"
    return UsageInvoiceEvent(
        event_id=event.id,
        type=event.type,
        invoice_id=invoice_id,
        subscription_id=subscription_id,
        customer=_id(invoice.get("customer")),
        period=_usage_period(event, lines),
        reason=reason,
    )


# -- cash: receipts ----------------------------------------------------------------------------

RECEIPT_TYPES = frozenset({"charge.succeeded", "invoice.paid"})
PLATFORM = "platform"  # the receipt id's account part for the platform's own Stripe account


def billing_account_of(event: StripeEvent) -> str:
    """The Connect account the event happened in (Stripe's `account`), empty for the platform."""
    account = event.raw.get("account")
    return account if isinstance(account, str) else ""


def _entity_of(event: StripeEvent, entities: Sequence[LegalEntity]) -> str:
    account = billing_account_of(event)
    for entity in entities:
        if entity.billing_account == account:
            return entity.code
    raise EventError(f"{event.type} {event.id}: no legal entity bills from Stripe account {account or PLATFORM!r}")


def _value_date(event: StripeEvent, when: Any) -> date:
    """When the money moved: the charge's `created` (or the invoice's `paid_at`), else the event's."""
    if isinstance(when, int) and not isinstance(when, bool):
        try:
            return datetime.fromtimestamp(when, tz=UTC).date()
        except (OverflowError, OSError, ValueError):
            pass
    return _occurred_at(event).date()


def _receipt(
    event: StripeEvent,
    *,
    charge_id: str,
    amount: Money,
    customer: str,
    invoice: str,
    paid_at: Any,
    entities: Sequence[LegalEntity],
) -> Receipt:
    account = billing_account_of(event)
    return Receipt(
        receipt_id=f"{ReceiptSource.STRIPE.value}:{account or PLATFORM}:{charge_id}",
        source=ReceiptSource.STRIPE,
        legal_entity=_entity_of(event, entities),
        amount=amount,
        value_date=_value_date(event, paid_at),
        bank_reference=charge_id,
        customer_hint=customer,
        charge_id=charge_id,
        invoice_hint=invoice,
        references=[invoice] if invoice else [],
    )


def to_receipt(event: StripeEvent, entities: Sequence[LegalEntity] = DEFAULT_ENTITIES) -> Receipt | None:
    """The cash a `charge.succeeded` or `invoice.paid` event brings, or None (another type,
    or an invoice paid without a charge: out of band, by credit notes, by balance).

    Both events of one payment map to the same receipt (its id is the charge's), so the
    cash store counts it once whichever arrives first. `charge.succeeded` is the primary
    source: its amount is the charge's. From `invoice.paid` the amount is `amount_paid`,
    which equals the charge when one charge paid the invoice (unverified for invoices
    paid in parts). `entities` says which legal entity bills from which Stripe account
    (the event's `account`; none for the platform)."""
    if event.type not in RECEIPT_TYPES:
        return None
    obj = event.object
    try:
        if event.type == "charge.succeeded":
            if obj.get("status", "succeeded") != "succeeded":
                return None
            charge_id = _id(obj)
            if not charge_id:
                raise EventError(f"{event.type} {event.id} names no charge")
            amount = _money(obj, "amount", _currency(obj))
            if amount is None or amount.is_zero:
                raise EventError(f"{event.type} {event.id}: charge {charge_id} has no amount")
            return _receipt(
                event,
                charge_id=charge_id,
                amount=amount,
                customer=_id(obj.get("customer")),
                invoice=_id(obj.get("invoice")),
                paid_at=obj.get("created"),
                entities=entities,
            )
        charge_id = _id(obj.get("charge"))
        if obj.get("paid_out_of_band") or not charge_id:
            return None
        amount = _money(obj, "amount_paid", _currency(obj))
        if amount is None or amount.is_zero:
            return None  # settled by credit notes or the customer's balance: no cash
        return _receipt(
            event,
            charge_id=charge_id,
            amount=amount,
            customer=_id(obj.get("customer")),
            invoice=_id(obj),
            paid_at=(obj.get("status_transitions") or {}).get("paid_at"),
            entities=entities,
        )
    except CurrencyError as error:
        raise EventError(str(error)) from None


# -- disputes --------------------------------------------------------------------------------

DISPUTE_TYPES = frozenset(
    {
        "charge.dispute.created",
        "charge.dispute.updated",
        "charge.dispute.closed",
        "charge.dispute.funds_withdrawn",
        "charge.dispute.funds_reinstated",
    }
)


async def to_dispute_event(
    event: StripeEvent, lookup_charge_invoice: ChargeLookup | None = None
) -> DisputeEvent | None:
    """The dispute an event reports, or None for other types. The invoice comes from an
    expanded charge or from `lookup_charge_invoice` (as for to_payment_event; the billing
    adapter's `invoice_of_charge` fits); a dispute over a charge that paid no invoice
    still maps, with an empty invoice. Raises EventError when the dispute is unreadable."""
    if event.type not in DISPUTE_TYPES:
        return None
    dispute = event.object
    charge = dispute.get("charge")
    invoice_id = _id(charge.get("invoice")) if isinstance(charge, dict) else ""
    if not invoice_id and _id(charge) and lookup_charge_invoice is not None:
        found = lookup_charge_invoice(_id(charge))
        if inspect.isawaitable(found):
            found = await found
        invoice_id = found or ""
    try:
        _currency(dispute)
        _money(dispute, "amount", _currency(dispute))
        if not _id(dispute) or not _id(charge):
            raise EventError(f"{event.type} {event.id}: the dispute names no id or no charge")
        canonical = to_dispute(dispute, invoice_id=invoice_id)
    except (KeyError, TypeError, ValueError, AdapterError) as error:
        if isinstance(error, EventError):
            raise
        raise EventError(f"{event.type} {event.id}: unreadable dispute ({error})") from None
    return DisputeEvent(event_id=event.id, type=event.type, dispute=canonical, occurred_at=_occurred_at(event))


# -- cash: open items ------------------------------------------------------------------------

# The invoice events that change what is still due on an invoice, as o2c's cash store keeps it.
OPEN_ITEM_TYPES = frozenset({"invoice.finalized", "invoice.paid", "invoice.voided", "invoice.marked_uncollectible"})
# Nothing more is to be received on these: the open item's balance goes to zero. An invoice
# marked uncollectible has been written off; cash that arrives for it later is a recovery
# for a person to decide (matching flags it as paying a settled invoice), not a match.
CLOSED_TYPES = frozenset({"invoice.voided", "invoice.marked_uncollectible"})


def _day(value: Any) -> date | None:
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            return datetime.fromtimestamp(value, tz=UTC).date()
        except (OverflowError, OSError, ValueError):
            return None
    return None


def to_open_item(event: StripeEvent, entities: Sequence[LegalEntity] = DEFAULT_ENTITIES) -> OpenItem | None:
    """The open item an invoice event reports, or None (another type, or an invoice with
    nothing to receive: a zero or negative total). `invoice.finalized` and `invoice.paid`
    carry billing's `amount_remaining` as the balance; voided and uncollectible invoices
    have none left. The legal entity is the one that bills from the event's Stripe account.
    Raises EventError when the invoice lacks what the store needs."""
    if event.type not in OPEN_ITEM_TYPES:
        return None
    invoice = event.object
    invoice_id = _id(invoice)
    if not invoice_id:
        raise EventError(f"{event.type} {event.id} names no invoice")
    customer = _id(invoice.get("customer"))
    if not customer:
        raise EventError(f"{event.type} {event.id}: invoice {invoice_id} names no customer")
    try:
        currency = _currency(invoice)
        total_minor = invoice.get("total")
        if isinstance(total_minor, bool) or not isinstance(total_minor, int):
            raise EventError(f"{event.type} {event.id}: invoice {invoice_id} has no whole-number total")
        if total_minor <= 0:
            return None  # nothing to receive (a credit-only or zero invoice)
        total = _money(invoice, "total", currency)
        remaining = _money(invoice, "amount_remaining", currency)
    except CurrencyError as error:
        raise EventError(str(error)) from None
    assert total is not None
    if event.type in CLOSED_TYPES or remaining is None:
        balance = Money.zero(currency) if event.type in CLOSED_TYPES else total
    else:
        balance = min(remaining, total, key=lambda m: m.amount)
    transitions = invoice.get("status_transitions")
    finalized_at = transitions.get("finalized_at") if isinstance(transitions, dict) else None
    return OpenItem(
        invoice_id=invoice_id,
        number=str(invoice.get("number") or ""),
        customer=customer,
        legal_entity=_entity_of(event, entities),
        total=total,
        balance=balance,
        issued_on=_day(finalized_at) or _day(invoice.get("created")),
        due_on=_day(invoice.get("due_date")),
    )
