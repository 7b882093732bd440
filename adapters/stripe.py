"""Stripe as o2c's billing system: wire format <-> canonical models, nothing else.

Every POST carries an `Idempotency-Key`. Operations that take several calls derive
their sub-keys deterministically from the caller's key (`{key}/invoice`,
`{key}/item/{i}`, `{key}/finalize`, ...), so a retry of the whole operation replays
each step instead of repeating it.
"""

from __future__ import annotations

import calendar
from collections.abc import Mapping
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import httpx

from adapters.errors import BusinessError, IntegrationBug
from adapters.http import read_json, send
from adapters.stripe_api import STRIPE_VERSION, SYSTEM, classify
from adapters.stripe_metering import is_metered, v2_url_of
from adapters.stripe_payments import StripePayments
from canonical.models import (
    TAX_PRODUCT,
    Account,
    Address,
    Invoice,
    InvoiceLine,
    InvoicePage,
    PaymentAttempt,
    PaymentOutcome,
    Subscription,
    SubscriptionLine,
    SubscriptionTerm,
)
from canonical.money import Money, minor_unit, total


def _ts(d: date) -> int:
    """A calendar date as the unix timestamp of its midnight, UTC."""
    return int(datetime(d.year, d.month, d.day, tzinfo=UTC).timestamp())


def add_month(d: date) -> date:
    """The same day next month, clamped to the month's last day (Jan 31 -> Feb 28),
    as Stripe places monthly billing dates."""
    year, month = (d.year + 1, 1) if d.month == 12 else (d.year, d.month + 1)
    return date(year, month, min(d.day, calendar.monthrange(year, month)[1]))


def _date(ts: int | None) -> date | None:
    return None if ts is None else datetime.fromtimestamp(int(ts), tz=UTC).date()


def _unit_amount_decimal(price: Money) -> str:
    """A major-unit price as Stripe's `unit_amount_decimal` (minor units, as a string)."""
    return format(price.amount.scaleb(minor_unit(price.currency)).normalize(), "f")


def _price_of(item: dict[str, Any], currency: str) -> Money:
    price = item.get("price") or {}
    minor = price.get("unit_amount_decimal")
    if minor is None:
        minor = price.get("unit_amount") or 0
    amount = Decimal(str(minor)).scaleb(-minor_unit(currency))
    try:
        return Money.of(amount, currency)
    except ValueError as exc:
        raise IntegrationBug(
            SYSTEM, f"price {price.get('id')} has sub-minor-unit precision ({minor}); o2c cannot represent it exactly"
        ) from exc


def _arr(metadata: dict[str, str], currency: str | None) -> Money | None:
    """`metadata[arr]`: annual recurring revenue as a decimal string in major units of
    the customer's currency (o2c's convention; Stripe has no such field)."""
    raw = metadata.get("arr")
    if not raw:
        return None
    try:
        return Money.of(Decimal(raw), (currency or "usd").upper(), rounded=True)
    except (InvalidOperation, ValueError) as exc:
        raise IntegrationBug(SYSTEM, f"customer metadata arr={raw!r} is not a decimal amount") from exc


def to_account(customer: dict[str, Any]) -> Account:
    address = customer.get("address") or {}
    metadata = customer.get("metadata") or {}
    return Account(
        id=customer["id"],
        name=customer.get("name") or "",
        email=customer.get("email") or "",
        billing_address=Address(
            line1=address.get("line1") or "",
            city=address.get("city") or "",
            region=address.get("state") or "",
            postal_code=address.get("postal_code") or "",
            country=address.get("country") or "",
        ),
        legal_entity=metadata.get("legal_entity") or "US01",
        segment=metadata.get("segment") or "default",
        annual_recurring_revenue=_arr(metadata, customer.get("currency")),
        success_owner=metadata.get("success_owner") or "",
    )


def to_subscription(sub: dict[str, Any]) -> Subscription:
    currency = sub["currency"].upper()
    metadata = sub.get("metadata") or {}
    lines = []
    for item in sub["items"]["data"]:
        if is_metered(item.get("price") or {}):
            continue  # usage, billed in arrears by its meter (MeteringPort), not a seat line
        item_meta = item.get("metadata") or {}
        product = (item.get("price") or {}).get("product") or ""
        lines.append(
            SubscriptionLine(
                item_id=item["id"],
                product=product,
                description=item_meta.get("description") or product,
                quantity=int(item.get("quantity") or 0),
                unit_price=_price_of(item, currency),
                discount_percent=Decimal(item_meta.get("discount_percent") or "0"),
            )
        )
    period_start = _date(sub.get("current_period_start"))
    period_end = _date(sub.get("current_period_end"))
    return Subscription(
        id=sub["id"],
        account_id=sub["customer"],
        contract_id=metadata.get("contract_id", ""),
        currency=currency,
        status=sub["status"],
        lines=lines,
        current_period_start=period_start,
        current_period_end=period_end,
        term_start=date.fromisoformat(metadata["term_start"]) if metadata.get("term_start") else period_start,
        term_end=date.fromisoformat(metadata["term_end"]) if metadata.get("term_end") else period_end,
    )


def _invoice_tax(invoice: dict[str, Any], lines: list[InvoiceLine], currency: str) -> Money:
    """Stripe's `tax` when it computed one (Stripe Tax), else what the o2c tax lines
    (metadata product = TAX_PRODUCT) charge; zero when there are none."""
    if invoice.get("tax") is not None:
        return Money.from_minor(int(invoice["tax"]), currency)
    return total((line.amount for line in lines if line.product == TAX_PRODUCT), currency)


def _line_fields(line: dict[str, Any], meters: Mapping[str, str]) -> dict[str, Any]:
    """A metered line's meter (its event name; the meter id when `meters` lacks it), quantity,
    id and service period. Every line carries its id: an invoice item's is the item's, which
    MeteringPort.remove_invoice_line takes and a credit note (PaymentsPort) names a line by."""
    price = line.get("price") or {}
    if not is_metered(price):
        return {"line_id": line.get("invoice_item") or line.get("id") or ""}
    meter_id = str((price.get("recurring") or {}).get("meter") or "")
    period = line.get("period") or {}
    return {
        "meter": meters.get(meter_id, meter_id),
        "quantity": int(line.get("quantity") or 0),
        "line_id": line.get("id") or "",
        "period_start": _date(period.get("start")),
        "period_end": _date(period.get("end")),
    }


def to_invoice(
    invoice: dict[str, Any], *, billing_account: str = "", meters: Mapping[str, str] | None = None
) -> Invoice:
    """The canonical invoice; `billing_account` is the Stripe account it was read from
    (Stripe does not say it in the object), `meters` the event names of meter ids."""
    currency = invoice["currency"].upper()
    raw_lines = (invoice.get("lines") or {}).get("data", [])
    lines = [
        InvoiceLine(
            product=(line.get("metadata") or {}).get("product", ""),
            description=line.get("description") or "",
            amount=Money.from_minor(int(line["amount"]), currency),
            **_line_fields(line, meters or {}),
        )
        for line in raw_lines
    ]
    return Invoice(
        id=invoice["id"],
        number=invoice.get("number") or "",
        account_id=invoice["customer"],
        subscription_id=invoice.get("subscription") or "",
        status=invoice["status"],
        currency=currency,
        total=Money.from_minor(int(invoice.get("total") or 0), currency),
        lines=lines,
        amount_paid=Money.from_minor(int(invoice.get("amount_paid") or 0), currency),
        amount_remaining=Money.from_minor(int(invoice.get("amount_remaining") or 0), currency),
        created=_date(invoice.get("created")),
        due_date=_date(invoice.get("due_date")),
        metadata={str(k): str(v) for k, v in (invoice.get("metadata") or {}).items()},
        tax=_invoice_tax(invoice, lines, currency),
        billing_account=billing_account,
    )


def _same_line(item: dict[str, Any], line: SubscriptionLine, currency: str) -> bool:
    meta = item.get("metadata") or {}
    return (
        int(item.get("quantity") or 0) == line.quantity
        and _price_of(item, currency) == line.unit_price
        and Decimal(meta.get("discount_percent") or "0") == line.discount_percent
    )


class StripeBilling(StripePayments):
    """BillingPort, MeteringPort (adapters/stripe_metering.py) and PaymentsPort
    (adapters/stripe_payments.py) over the Stripe API.
    `meter_events_url` is the v2 meter event stream's base (default: the v2 beside `base_url`)."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        timeout: float = 10.0,
        *,
        client: httpx.AsyncClient | None = None,
        meter_events_url: str | None = None,
    ):
        super().__init__(
            base_url,
            timeout,
            {"Authorization": f"Bearer {api_key}", "Stripe-Version": STRIPE_VERSION, "User-Agent": "o2c/0.1"},
            client,
        )
        self._init_metering(api_key, v2_url_of(base_url), meter_events_url or v2_url_of(base_url))

    def _to_invoice(self, invoice: dict[str, Any], meters: Mapping[str, str], *, billing_account: str = "") -> Invoice:
        return to_invoice(invoice, billing_account=billing_account, meters=meters)

    # -- reads ----------------------------------------------------------------------------

    async def get_account(self, account_id: str) -> Account | None:
        customer = await self._call("GET", f"/customers/{account_id}", not_found_none=True)
        return None if customer is None else to_account(customer)

    async def get_subscription(self, subscription_id: str) -> Subscription | None:
        sub = await self._call("GET", f"/subscriptions/{subscription_id}", not_found_none=True)
        return None if sub is None else to_subscription(sub)

    async def subscriptions_ending(self, start: date, end: date, *, page_size: int = 100) -> list[Subscription]:
        """Active subscriptions whose term (metadata[term_end]) ends in [start, end), following
        the list cursor: Stripe cannot filter on metadata, so o2c filters the pages."""
        found: list[Subscription] = []
        after: str | None = None
        while True:
            page = await self._call(
                "GET", "/subscriptions", {"status": "active", "limit": page_size, "starting_after": after}
            )
            for raw in page["data"]:
                subscription = to_subscription(raw)
                if start <= subscription.term_end < end:
                    found.append(subscription)
            if not page.get("has_more") or not page["data"]:
                return found
            after = page["data"][-1]["id"]

    async def get_invoice(self, invoice_id: str) -> Invoice | None:
        invoice = await self._call("GET", f"/invoices/{invoice_id}", not_found_none=True)
        if invoice is None:
            return None
        result = await self._read_invoice(invoice)
        charge_id = invoice.get("charge")
        if result.status == "open" and isinstance(charge_id, str) and charge_id:
            # Stripe keeps the decline on the charge, not the invoice (outcome.reason carries
            # the decline code, failure_code the broader class).
            charge = await self._call("GET", f"/charges/{charge_id}", not_found_none=True)
            if charge and charge.get("status") == "failed":
                reason = (charge.get("outcome") or {}).get("reason") or charge.get("failure_code") or ""
                result = result.model_copy(update={"last_decline_code": reason})
        if result.status == "open":
            result = result.model_copy(update={"payment_method": await self._card_of(invoice)})
        return result

    async def _card_of(self, invoice: dict[str, Any]) -> str:
        """The card the invoice's next charge goes to, as its fingerprint. Stripe charges the
        invoice's own default payment method, else the customer's invoice default; failing
        both, the card the last charge was attempted on (the payment intent's)."""
        pm_id = invoice.get("default_payment_method")
        if not pm_id:
            customer = await self._call("GET", f"/customers/{invoice['customer']}", not_found_none=True) or {}
            pm_id = (customer.get("invoice_settings") or {}).get("default_payment_method")
        if not pm_id and invoice.get("payment_intent"):
            intent = await self._call("GET", f"/payment_intents/{invoice['payment_intent']}", not_found_none=True)
            pm_id = (intent or {}).get("payment_method")
        if isinstance(pm_id, dict):  # expanded
            pm_id = pm_id.get("id")
        if not pm_id:
            return ""
        pm = await self._call("GET", f"/payment_methods/{pm_id}", not_found_none=True)
        return str(((pm or {}).get("card") or {}).get("fingerprint") or pm_id)

    async def list_invoices(self, account_id: str, *, page_size: int = 100) -> list[Invoice]:
        """Every invoice of a customer, newest first, following the cursor."""
        out: list[Invoice] = []
        after: str | None = None
        while True:
            page = await self._call(
                "GET", "/invoices", {"customer": account_id, "limit": page_size, "starting_after": after}
            )
            out.extend(to_invoice(i) for i in page["data"])
            if not page.get("has_more") or not page["data"]:
                return out
            after = page["data"][-1]["id"]

    async def list_invoices_page(
        self, *, created_from: date, created_to: date, billing_account: str = "", cursor: str = "", limit: int = 100
    ) -> InvoicePage:
        """One page of the invoices created in [created_from, created_to) (UTC days) in
        `billing_account` (a Connect account; empty = the platform), newest first.
        The cursor is the last invoice id of the previous page (`starting_after`); Stripe
        pages hold at most 100 invoices."""
        page = await self._call(
            "GET",
            "/invoices",
            {
                "created": {"gte": _ts(created_from), "lt": _ts(created_to)},
                "limit": max(1, min(limit, 100)),
                "starting_after": cursor or None,
            },
            stripe_account=billing_account,
        )
        data = page["data"]
        return InvoicePage(
            items=[await self._read_invoice(i, billing_account=billing_account) for i in data],
            next_cursor=data[-1]["id"] if page.get("has_more") and data else "",
        )

    async def find_invoice(self, invoice_id: str, *, billing_account: str = "") -> Invoice | None:
        invoice = await self._call(
            "GET", f"/invoices/{invoice_id}", not_found_none=True, stripe_account=billing_account
        )
        return None if invoice is None else await self._read_invoice(invoice, billing_account=billing_account)

    # -- changes ----------------------------------------------------------------------------

    async def update_subscription_lines(
        self, subscription_id: str, lines: list[SubscriptionLine], *, idempotency_key: str
    ) -> Subscription:
        raw = await self._call("GET", f"/subscriptions/{subscription_id}", not_found_none=True)
        if raw is None:
            raise BusinessError(
                SYSTEM, f"subscription {subscription_id} does not exist in billing", code="resource_missing", status=404
            )
        currency = raw["currency"].upper()
        existing = list(raw["items"]["data"])
        remaining = {item["id"]: item for item in existing}
        matched: list[tuple[SubscriptionLine, dict[str, Any] | None]] = []
        for line in lines:
            item = remaining.pop(line.item_id, None) if line.item_id else None
            if item is None:
                item = next(
                    (i for i in remaining.values() if (i.get("price") or {}).get("product") == line.product), None
                )
                if item is not None:
                    remaining.pop(item["id"])
            matched.append((line, item))
        # Converge by state: if billing already holds exactly these lines (a retry after
        # a lost response), change nothing. Otherwise the payload below is the same as
        # the first attempt's, so the idempotency key replays it.
        if not remaining and all(item is not None and _same_line(item, line, currency) for line, item in matched):
            return to_subscription(raw)
        items: list[dict[str, Any]] = []
        for line, item in matched:
            if line.unit_price.currency != currency:
                raise BusinessError(
                    SYSTEM,
                    f"line {line.product} is priced in {line.unit_price.currency}, the subscription in {currency}",
                    code="currency_mismatch",
                )
            # Stripe has no per-item percentage discount without coupons; o2c keeps the
            # discount in the item's metadata and bills the proration itself.
            spec: dict[str, Any] = {
                "quantity": line.quantity,
                "metadata": {
                    "discount_percent": format(line.discount_percent, "f"),
                    "description": line.description or line.product,
                },
            }
            if item is not None:
                spec = {"id": item["id"], **spec}
            if item is None or _price_of(item, currency) != line.unit_price:
                interval = ((item or {}).get("price") or {}).get("recurring", {}).get("interval", "month")
                spec["price_data"] = {
                    "currency": currency.lower(),
                    "product": line.product,
                    "unit_amount_decimal": _unit_amount_decimal(line.unit_price),
                    "recurring": {"interval": interval},
                }
            items.append(spec)
        for item in remaining.values():
            items.append({"id": item["id"], "deleted": True})
        sub = await self._call(
            "POST",
            f"/subscriptions/{subscription_id}",
            {"items": items, "proration_behavior": "none"},
            idempotency_key=idempotency_key,
        )
        return to_subscription(sub)

    async def create_proration_invoice(
        self,
        *,
        account_id: str,
        subscription_id: str,
        currency: str,
        lines: list[InvoiceLine],
        description: str,
        metadata: dict[str, str],
        idempotency_key: str,
        billing_account: str = "",
    ) -> Invoice:
        """The draft invoice first (excluding pending items), then its items attached
        to it by id, then finalisation: concurrent amendments never sweep each other's
        items into their invoices. All in `billing_account` (a Connect account) when given."""
        draft = await self._call(
            "POST",
            "/invoices",
            {
                "customer": account_id,
                "subscription": subscription_id or None,
                "currency": currency.lower(),
                "description": description,
                "auto_advance": False,
                "collection_method": "charge_automatically",
                "pending_invoice_items_behavior": "exclude",
                "metadata": metadata,
            },
            idempotency_key=f"{idempotency_key}/invoice",
            stripe_account=billing_account,
        )
        invoice_id = draft["id"]
        for index, line in enumerate(lines):
            if line.amount.currency != currency:
                raise BusinessError(
                    SYSTEM,
                    f"invoice line {line.product} is in {line.amount.currency}, the invoice in {currency}",
                    code="currency_mismatch",
                )
            await self._call(
                "POST",
                "/invoiceitems",
                {
                    "customer": account_id,
                    "invoice": invoice_id,
                    "amount": line.amount.minor,
                    "currency": currency.lower(),
                    "description": line.description,
                    "subscription": subscription_id or None,
                    "metadata": {**metadata, "product": line.product},
                },
                idempotency_key=f"{idempotency_key}/item/{index}",
                stripe_account=billing_account,
            )
        current = await self._call("GET", f"/invoices/{invoice_id}", stripe_account=billing_account)
        if current["status"] != "draft":
            return to_invoice(current)
        final = await self._call(
            "POST",
            f"/invoices/{invoice_id}/finalize",
            {"auto_advance": False},
            idempotency_key=f"{idempotency_key}/finalize",
            stripe_account=billing_account,
        )
        return to_invoice(final)

    async def void_invoice(self, invoice_id: str, *, idempotency_key: str, billing_account: str = "") -> Invoice:
        """Void an open invoice. Idempotent: a void invoice is returned as it is; a paid
        net-credit invoice (its credit went to the customer balance) is reversed with a
        customer balance transaction and returned (Stripe still shows it paid)."""
        invoice = await self._call(
            "GET", f"/invoices/{invoice_id}", not_found_none=True, stripe_account=billing_account
        )
        if invoice is None:
            raise BusinessError(
                SYSTEM, f"invoice {invoice_id} does not exist in billing", code="resource_missing", status=404
            )
        status = invoice["status"]
        if status == "void":
            return to_invoice(invoice)
        if status in ("open", "uncollectible"):
            return to_invoice(
                await self._call(
                    "POST",
                    f"/invoices/{invoice_id}/void",
                    {},
                    idempotency_key=idempotency_key,
                    stripe_account=billing_account,
                )
            )
        if status == "paid" and int(invoice.get("total") or 0) <= 0:
            total = int(invoice.get("total") or 0)
            if total < 0:
                await self._call(
                    "POST",
                    f"/customers/{invoice['customer']}/balance_transactions",
                    {
                        "amount": -total,
                        "currency": invoice["currency"],
                        "description": f"Reversal of credit from invoice {invoice.get('number') or invoice_id}",
                        "metadata": {"reverses_invoice": invoice_id},
                    },
                    idempotency_key=f"{idempotency_key}/balance",
                    stripe_account=billing_account,
                )
            return to_invoice(invoice)
        if status == "draft":
            raise BusinessError(
                SYSTEM,
                f"invoice {invoice_id} is still a draft; a draft is deleted, not voided",
                code="invoice_not_open",
            )
        raise BusinessError(
            SYSTEM,
            f"invoice {invoice.get('number') or invoice_id} is {status}; it cannot be voided "
            "and needs a credit note instead",
            code="invoice_not_open",
        )

    # -- dunning ----------------------------------------------------------------------------

    async def _invoice_or_missing(self, invoice_id: str) -> dict[str, Any]:
        invoice = await self._call("GET", f"/invoices/{invoice_id}", not_found_none=True)
        if invoice is None:
            raise BusinessError(
                SYSTEM, f"invoice {invoice_id} does not exist in billing", code="resource_missing", status=404
            )
        return invoice

    async def retry_payment(self, invoice_id: str, *, idempotency_key: str) -> PaymentAttempt:
        """`POST /v1/invoices/{id}/pay` with the customer's default payment method.

        A 402 card error is a DECLINED attempt with its decline code (Stripe stores the
        402 for the key, so a retry with the same key replays the same decline without a
        second charge). An invoice that is already paid (paid by webhook-reported
        transfer, or by this very call whose answer was lost) is a SUCCEEDED attempt.
        A customer without a payment method is DECLINED with `no_payment_method`."""
        response = await send(
            self._client,
            SYSTEM,
            "POST",
            f"/invoices/{invoice_id}/pay",
            headers={"Content-Type": "application/x-www-form-urlencoded", "Idempotency-Key": idempotency_key},
            content=b"",
        )
        if response.status_code < 400:
            return self._attempt(read_json(response), PaymentOutcome.SUCCEEDED)
        body = read_json(response)
        err = body.get("error", {}) if isinstance(body, dict) else {}
        if response.status_code == 402 and err.get("type") == "card_error":
            invoice = await self._invoice_or_missing(invoice_id)
            return self._attempt(
                invoice,
                PaymentOutcome.DECLINED,
                decline_code=err.get("decline_code") or err.get("code") or "card_declined",
                message=err.get("message") or "",
            )
        failure = classify(response)
        if response.status_code == 400 and isinstance(failure, BusinessError):
            invoice = await self._invoice_or_missing(invoice_id)
            if invoice["status"] == "paid":
                return self._attempt(invoice, PaymentOutcome.SUCCEEDED)
            if invoice["status"] in ("open", "uncollectible") and "payment method" in (err.get("message") or ""):
                return self._attempt(
                    invoice, PaymentOutcome.DECLINED, decline_code="no_payment_method", message=err.get("message") or ""
                )
        raise failure

    @staticmethod
    def _attempt(
        invoice: dict[str, Any], outcome: PaymentOutcome, *, decline_code: str = "", message: str = ""
    ) -> PaymentAttempt:
        currency = invoice["currency"].upper()
        return PaymentAttempt(
            invoice_id=invoice["id"],
            outcome=outcome,
            decline_code=decline_code,
            message=message,
            amount_paid=Money.from_minor(int(invoice.get("amount_paid") or 0), currency),
            amount_remaining=Money.from_minor(int(invoice.get("amount_remaining") or 0), currency),
        )

    async def cancel_subscription(self, subscription_id: str, *, idempotency_key: str) -> Subscription:
        """Cancel at once (`DELETE /v1/subscriptions/{id}`). Idempotent by state: a
        canceled subscription is returned as it is. (DELETE needs no idempotency key:
        repeating it cannot cancel twice; the key is accepted for the port's contract.)"""
        raw = await self._call("GET", f"/subscriptions/{subscription_id}", not_found_none=True)
        if raw is None:
            raise BusinessError(
                SYSTEM, f"subscription {subscription_id} does not exist in billing", code="resource_missing", status=404
            )
        if raw["status"] == "canceled":
            return to_subscription(raw)
        try:
            return to_subscription(await self._call("DELETE", f"/subscriptions/{subscription_id}"))
        except BusinessError:
            again = await self._call("GET", f"/subscriptions/{subscription_id}")
            if again["status"] == "canceled":  # a concurrent or lost earlier call did it
                return to_subscription(again)
            raise

    async def mark_uncollectible(self, invoice_id: str, *, idempotency_key: str) -> Invoice:
        """Idempotent by state: an uncollectible invoice is returned as it is. A paid or
        void invoice is refused as a business error (there is nothing to write off)."""
        invoice = await self._invoice_or_missing(invoice_id)
        if invoice["status"] == "uncollectible":
            return to_invoice(invoice)
        if invoice["status"] != "open":
            raise BusinessError(
                SYSTEM,
                f"invoice {invoice.get('number') or invoice_id} is {invoice['status']}; "
                "only an open invoice can be marked uncollectible",
                code="invoice_not_open",
            )
        try:
            return to_invoice(
                await self._call(
                    "POST", f"/invoices/{invoice_id}/mark_uncollectible", {}, idempotency_key=idempotency_key
                )
            )
        except BusinessError:
            again = await self._invoice_or_missing(invoice_id)
            if again["status"] == "uncollectible":
                return to_invoice(again)
            raise

    # -- renewals ----------------------------------------------------------------------------

    async def create_customer(self, account: Account, *, billing_account: str, idempotency_key: str) -> Account:
        """`POST /v1/customers` in `billing_account` (a Connect account id; empty = the
        platform). The o2c account id it copies goes into `metadata[o2c_account]`.
        Idempotent through the key only, which Stripe scopes per account and may prune
        after 24 hours."""
        address = account.billing_address
        arr = account.annual_recurring_revenue
        customer = await self._call(
            "POST",
            "/customers",
            {
                "name": account.name,
                "email": account.email or None,
                "address": {
                    "line1": address.line1 or None,
                    "city": address.city or None,
                    "state": address.region or None,
                    "postal_code": address.postal_code or None,
                    "country": address.country or None,
                },
                "metadata": {
                    "segment": account.segment,
                    "success_owner": account.success_owner or None,
                    "arr": format(arr.amount, "f") if arr is not None else None,
                    "legal_entity": account.legal_entity,
                    "o2c_account": account.id,
                },
            },
            idempotency_key=idempotency_key,
            stripe_account=billing_account,
        )
        return to_account(customer)

    async def create_subscription(
        self, term: SubscriptionTerm, *, billing_account: str, idempotency_key: str
    ) -> Subscription:
        """`POST /v1/subscriptions` for the term: monthly prices per line, the billing
        cycle anchored one month after the term start and `proration_behavior=none`,
        so Stripe bills nothing for the first period (o2c invoices it, with tax) and
        bills each later period itself. The term's dates go into the metadata."""
        if not term.lines:
            raise BusinessError(
                SYSTEM, f"the new term of contract {term.contract_id} has no lines to bill", code="no_lines"
            )
        currency = term.currency.upper()
        items = []
        for line in term.lines:
            if line.unit_price.currency != currency:
                raise BusinessError(
                    SYSTEM,
                    f"line {line.product} is priced in {line.unit_price.currency}, the term in {currency}",
                    code="currency_mismatch",
                )
            items.append(
                {
                    "price_data": {
                        "currency": currency.lower(),
                        "product": line.product,
                        "unit_amount_decimal": _unit_amount_decimal(line.unit_price),
                        "recurring": {"interval": "month"},
                    },
                    "quantity": line.quantity,
                    "metadata": {
                        "discount_percent": format(line.discount_percent, "f"),
                        "description": line.description or line.product,
                    },
                }
            )
        sub = await self._call(
            "POST",
            "/subscriptions",
            {
                "customer": term.account_id,
                "currency": currency.lower(),
                "items": items,
                "metadata": {
                    "contract_id": term.contract_id,
                    "term_start": term.term_start.isoformat(),
                    "term_end": term.term_end.isoformat(),
                    "legal_entity": term.legal_entity,
                },
                "billing_cycle_anchor": _ts(add_month(term.term_start)),
                "proration_behavior": "none",
            },
            idempotency_key=idempotency_key,
            stripe_account=billing_account,
        )
        return to_subscription(sub)

    async def _subscription_or_missing(self, subscription_id: str, billing_account: str = "") -> dict[str, Any]:
        raw = await self._call(
            "GET", f"/subscriptions/{subscription_id}", not_found_none=True, stripe_account=billing_account
        )
        if raw is None:
            raise BusinessError(
                SYSTEM, f"subscription {subscription_id} does not exist in billing", code="resource_missing", status=404
            )
        return raw

    async def end_subscription_at(
        self, subscription_id: str, at: date, *, idempotency_key: str, billing_account: str = ""
    ) -> Subscription:
        """Set `cancel_at` to midnight UTC of `at` (the term boundary): Stripe ends the
        subscription then and bills no period after it. Idempotent by state: already
        ending then, or already canceled (nothing more will be billed), changes nothing."""
        raw = await self._subscription_or_missing(subscription_id, billing_account)
        when = _ts(at)
        if raw["status"] == "canceled" or raw.get("cancel_at") == when:
            return to_subscription(raw)
        sub = await self._call(
            "POST",
            f"/subscriptions/{subscription_id}",
            {"cancel_at": when, "proration_behavior": "none"},
            idempotency_key=idempotency_key,
            stripe_account=billing_account,
        )
        return to_subscription(sub)

    async def cancel_subscription_end(
        self, subscription_id: str, *, idempotency_key: str, billing_account: str = ""
    ) -> Subscription:
        """Clear `cancel_at` (an empty value unsets a Stripe field): the subscription runs
        on. Idempotent by state: no end set changes nothing (also when something else,
        e.g. dunning, canceled it at once). A subscription that already ended at its
        `cancel_at` cannot be revived: a business error for a person to resolve."""
        raw = await self._subscription_or_missing(subscription_id, billing_account)
        if raw.get("cancel_at") is None:
            return to_subscription(raw)
        if raw["status"] == "canceled":
            raise BusinessError(
                SYSTEM,
                f"subscription {subscription_id} has already ended; it cannot be resumed, "
                "the customer needs a new subscription",
                code="subscription_canceled",
            )
        sub = await self._call(
            "POST",
            f"/subscriptions/{subscription_id}",
            {"cancel_at": ""},
            idempotency_key=idempotency_key,
            stripe_account=billing_account,
        )
        return to_subscription(sub)

    async def invoice_of_charge(self, charge_id: str) -> str | None:
        charge = await self._call("GET", f"/charges/{charge_id}", not_found_none=True)
        return None if charge is None else (charge.get("invoice") or None)
