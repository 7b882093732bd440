"""Stripe's usage-based billing (Billing Meters) as o2c's MeteringPort, on the v1 calls and
error table of adapters/stripe_api.py; StripeBilling builds on it.

- Meters and metered prices are read from Stripe (`/v1/billing/meters`, subscription items
  on `recurring[usage_type]=metered` prices); a meter is known in o2c by its event name.
- Usage goes out on the v2 meter event stream: a session token (`POST
  /v2/billing/meter_event_session`, valid 15 minutes) is kept until shortly before it
  expires and renewed when Stripe says it expired; at most 100 events a request. The
  stream validates later: an event Stripe drops arrives as a v2 error event, not here.
  The session call carries no Idempotency-Key: a session creates nothing billable and a
  second one is harmless. Each event carries its identifier, so sending it again counts
  nothing (the stream drops the repeat; v1 answers "An event already exists", which is not
  an error for o2c either).
- The usage draft is the subscription's invoice whose metered lines bill the period; its
  lines are canonical InvoiceLines with the meter's event name, quantity, line id and period.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from adapters.errors import BusinessError, IntegrationBug
from adapters.http import json_content, read_json, send
from adapters.stripe_api import SESSION_EXPIRED, SYSTEM, StripeApi, classify
from canonical.models import Invoice
from canonical.money import Money, minor_unit
from canonical.usage.models import Aggregation, Meter, MeteredPrice, MeterReport, UsageCustomer

# The v2 API needs a version that has it (the v1 calls keep theirs); unverified whether
# Stripe refuses the older pinned version on v2.
STRIPE_V2_VERSION = "2024-09-30.acacia"
MAX_STREAM_EVENTS = 100
# A session token is renewed this long before Stripe's expiry, so a request never races it.
SESSION_MARGIN_SECONDS = 60
DUPLICATE_EVENT = "An event already exists with identifier"
AGGREGATIONS = {"sum": Aggregation.SUM, "count": Aggregation.COUNT}


def v2_url_of(stripe_base_url: str) -> str:
    """Stripe's v2 API beside its v1 (…/v1 -> …/v2)."""
    base = stripe_base_url.rstrip("/")
    return (base[: -len("/v1")] if base.endswith("/v1") else base) + "/v2"


def is_metered(price: Mapping[str, Any]) -> bool:
    return (price.get("recurring") or {}).get("usage_type") == "metered"


def unit_amount_decimal(price: Mapping[str, Any], currency: str) -> Decimal:
    """The price per unit in major units, exact (Stripe's unit_amount_decimal is in minor units)."""
    minor = price.get("unit_amount_decimal")
    if minor is None:
        minor = price.get("unit_amount") or 0
    return Decimal(str(minor)).scaleb(-minor_unit(currency))


def rfc3339(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("a meter event's timestamp carries a time zone")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _date(ts: Any) -> date | None:
    return None if ts is None else datetime.fromtimestamp(int(ts), tz=UTC).date()


@dataclass
class _Session:
    token: str
    expires_at: float  # unix seconds


@dataclass(frozen=True)
class _MeterKeys:
    """How a meter reads an event's payload."""

    customer: str
    value: str


class StripeMetering(StripeApi):
    """MeteringPort over Stripe's Billing Meters; StripeBilling (adapters/stripe.py) adds the
    billing port and how an invoice reads."""

    def _to_invoice(self, invoice: dict[str, Any], meters: Mapping[str, str], *, billing_account: str = "") -> Invoice:
        raise NotImplementedError  # StripeBilling's: the invoice mapping lives with the billing adapter

    def _init_metering(self, api_key: str, v2_url: str, meter_events_url: str) -> None:
        self._api_key = api_key
        self._v2_url = v2_url.rstrip("/")
        self._meter_events_url = meter_events_url.rstrip("/")
        # One meter event session per billing account: a token acts for the account it was made in.
        self._sessions: dict[str, _Session] = {}
        self._session_lock = asyncio.Lock()
        # Meter id -> event name, and (account, event name) -> meter id and payload keys: all fixed at
        # a meter's creation. Meter ids are unique across accounts; event names only within one.
        self._meter_names: dict[str, str] = {}
        self._meter_ids: dict[tuple[str, str], str] = {}
        self._meter_keys: dict[tuple[str, str], _MeterKeys] = {}

    # -- meters ---------------------------------------------------------------------------

    async def _raw_meters(self, billing_account: str = "") -> list[dict[str, Any]]:
        """The meters of a billing account (a legal entity's Connect account has its own)."""
        meters: list[dict[str, Any]] = []
        after: str | None = None
        while True:
            page = await self._call(
                "GET", "/billing/meters", {"limit": 100, "starting_after": after}, stripe_account=billing_account
            )
            meters.extend(page["data"])
            for meter in page["data"]:
                self._meter_names[meter["id"]] = meter["event_name"]
                self._meter_ids[(billing_account, meter["event_name"])] = meter["id"]
                self._meter_keys[(billing_account, meter["event_name"])] = _MeterKeys(
                    customer=(meter.get("customer_mapping") or {}).get("event_payload_key") or "stripe_customer_id",
                    value=(meter.get("value_settings") or {}).get("event_payload_key") or "value",
                )
            if not page.get("has_more") or not page["data"]:
                return meters
            after = page["data"][-1]["id"]

    async def list_meters(self) -> list[Meter]:
        """Every meter of the account, active or not. A meter aggregating by `last` is left
        out: o2c bills sums and counts only."""
        out = []
        for raw in await self._raw_meters():
            aggregation = AGGREGATIONS.get((raw.get("default_aggregation") or {}).get("formula", ""))
            if aggregation is None:
                continue
            out.append(
                Meter(
                    event_name=raw["event_name"],
                    display_name=raw.get("display_name") or raw["event_name"],
                    aggregation=aggregation,
                    stripe_meter_id=raw["id"],
                    active=raw.get("status") == "active",
                )
            )
        return out

    async def _names_of(self, meter_ids: set[str], billing_account: str = "") -> Mapping[str, str]:
        # Meter ids are unique across accounts, so one map serves them all.
        if meter_ids - set(self._meter_names):
            await self._raw_meters(billing_account)
        return self._meter_names

    async def _read_invoice(self, invoice: dict[str, Any], *, billing_account: str = "") -> Invoice:
        """The canonical invoice, its metered lines named by their meters' event names."""
        ids = {
            str((line.get("price") or {}).get("recurring", {}).get("meter"))
            for line in (invoice.get("lines") or {}).get("data", [])
            if is_metered(line.get("price") or {})
        }
        names = await self._names_of(ids, billing_account) if ids else {}
        return self._to_invoice(invoice, names, billing_account=billing_account)

    # -- customers ------------------------------------------------------------------------

    async def usage_customers(
        self, *, billing_account: str = "", after: str = "", limit: int = 0
    ) -> list[UsageCustomer]:
        """Active subscriptions with metered items, page by page from the subscription `after`
        on (Stripe's `starting_after`), with their customers' legal entity and segment
        (metadata, as to_account reads them); at most `limit` when it is above 0."""
        found: list[UsageCustomer] = []
        customers: dict[str, dict[str, Any]] = {}
        cursor: str | None = after or None
        while True:
            page = await self._call(
                "GET",
                "/subscriptions",
                {"status": "active", "limit": 100, "starting_after": cursor},
                stripe_account=billing_account,
            )
            for sub in page["data"]:
                usage = await self._usage_customer(sub, customers, billing_account)
                if usage is not None:
                    found.append(usage)
                    if len(found) == limit:
                        return found
            if not page.get("has_more") or not page["data"]:
                return found
            cursor = page["data"][-1]["id"]

    async def _usage_customer(
        self, sub: dict[str, Any], customers: dict[str, dict[str, Any]], billing_account: str
    ) -> UsageCustomer | None:
        items = [item for item in sub["items"]["data"] if is_metered(item.get("price") or {})]
        if not items:
            return None
        currency = sub["currency"].upper()
        names = await self._names_of({str(item["price"]["recurring"].get("meter")) for item in items}, billing_account)
        prices = []
        for item in items:
            price = item["price"]
            meter_id = str(price["recurring"].get("meter"))
            if meter_id not in names:
                raise IntegrationBug(
                    SYSTEM, f"price {price.get('id')} bills meter {meter_id}, which Stripe does not list"
                )
            exact = unit_amount_decimal(price, currency)
            prices.append(
                MeteredPrice(
                    meter=names[meter_id],
                    price_id=price["id"],
                    item_id=item["id"],
                    unit_amount=Money.of(exact, currency, rounded=True),
                    unit_amount_decimal=exact,
                )
            )
        customer_id = sub["customer"]
        if customer_id not in customers:
            customers[customer_id] = await self._call(
                "GET", f"/customers/{customer_id}", stripe_account=billing_account
            )
        metadata = customers[customer_id].get("metadata") or {}
        started = sub.get("start_date") or sub.get("created")
        return UsageCustomer(
            customer=customer_id,
            subscription_id=sub["id"],
            currency=currency,
            legal_entity=metadata.get("legal_entity") or "US01",
            segment=metadata.get("segment") or "default",
            prices=prices,
            active_from=None if started is None else datetime.fromtimestamp(int(started), tz=UTC),
        )

    # -- usage ----------------------------------------------------------------------------

    async def _session_token(self, billing_account: str, *, renew: bool = False) -> str:
        async with self._session_lock:
            session = self._sessions.get(billing_account)
            if renew or session is None or session.expires_at - SESSION_MARGIN_SECONDS <= time.time():
                response = await send(
                    self._client,
                    SYSTEM,
                    "POST",
                    f"{self._v2_url}/billing/meter_event_session",
                    headers={
                        "Authorization": f"Bearer {self._api_key}",
                        "Stripe-Version": STRIPE_V2_VERSION,
                        "Content-Type": "application/json",
                        # v2's way of naming the connected account a request acts for.
                        **({"Stripe-Context": billing_account} if billing_account else {}),
                    },
                    content=b"",
                )
                if response.status_code >= 400:
                    raise classify(response)
                body = read_json(response)
                expires = datetime.fromisoformat(str(body["expires_at"]).replace("Z", "+00:00"))
                session = self._sessions[billing_account] = _Session(
                    str(body["authentication_token"]), expires.timestamp()
                )
            return session.token

    async def _keys(self, event_name: str, billing_account: str) -> _MeterKeys:
        if (billing_account, event_name) not in self._meter_keys:
            await self._raw_meters(billing_account)
        # An event name no meter takes goes out with Stripe's default keys; Stripe reports it
        # in a `no_meter_found` event.
        return self._meter_keys.get((billing_account, event_name), _MeterKeys("stripe_customer_id", "value"))

    async def report_usage(self, reports: Sequence[MeterReport], *, billing_account: str = "") -> None:
        """Send the reports on the v2 stream of the billing account, 100 a request."""
        for start in range(0, len(reports), MAX_STREAM_EVENTS):
            chunk = reports[start : start + MAX_STREAM_EVENTS]
            events = []
            for report in chunk:
                keys = await self._keys(report.event_name, billing_account)
                events.append(
                    {
                        "event_name": report.event_name,
                        "identifier": report.identifier,
                        "timestamp": rfc3339(report.timestamp),
                        "payload": {keys.customer: report.customer, keys.value: str(report.value)},
                    }
                )
            await self._stream({"events": events}, billing_account)

    async def _stream(self, body: dict[str, Any], billing_account: str) -> None:
        content = json_content(body)
        for attempt in (1, 2):
            token = await self._session_token(billing_account, renew=attempt == 2)
            response = await send(
                self._client,
                SYSTEM,
                "POST",
                f"{self._meter_events_url}/billing/meter_event_stream",
                headers={
                    "Authorization": f"Bearer {token}",
                    "Stripe-Version": STRIPE_V2_VERSION,
                    "Content-Type": "application/json",
                },
                content=content,
            )
            if response.status_code < 400:
                return
            failure = classify(response)
            if failure.code == SESSION_EXPIRED and attempt == 1:
                continue  # renew the session and send the same events again
            if response.status_code == 400 and DUPLICATE_EVENT in failure.message:
                return  # counted already
            raise failure

    async def metered_quantity(
        self, event_name: str, *, customer: str, start: datetime, end: datetime, billing_account: str = ""
    ) -> int:
        """The meter's aggregate for the customer over [start, end) from its event summaries
        (Stripe wants minute-aligned bounds; usage periods start on the hour)."""
        meter_id = self._meter_ids.get((billing_account, event_name))
        if meter_id is None:
            await self._raw_meters(billing_account)  # a meter created since the last read
            meter_id = self._meter_ids.get((billing_account, event_name))
        if meter_id is None:
            raise BusinessError(SYSTEM, f"billing has no meter for {event_name!r}", code="no_meter", fixable=True)
        total, after = 0, None
        while True:
            page = await self._call(
                "GET",
                f"/billing/meters/{meter_id}/event_summaries",
                {
                    "customer": customer,
                    "start_time": int(start.timestamp()),
                    "end_time": int(end.timestamp()),
                    "limit": 100,
                    "starting_after": after,
                },
                stripe_account=billing_account,
            )
            total += sum(int(Decimal(str(s["aggregated_value"]))) for s in page["data"])
            if not page.get("has_more") or not page["data"]:
                return total
            after = page["data"][-1]["id"]

    # -- the usage draft --------------------------------------------------------------------

    async def find_usage_draft(
        self, subscription_id: str, *, period_start: date, period_end: date, billing_account: str = ""
    ) -> Invoice | None:
        """The newest invoice of the subscription (not void, unless only a void one is there)
        whose metered lines bill [period_start, period_end)."""
        fallback: dict[str, Any] | None = None
        after: str | None = None
        while True:
            page = await self._call(
                "GET",
                "/invoices",
                {"subscription": subscription_id, "limit": 100, "starting_after": after},
                stripe_account=billing_account,
            )
            for raw in page["data"]:
                if not _bills_period(raw, period_start, period_end):
                    continue
                if raw["status"] != "void":
                    return await self._read_invoice(raw, billing_account=billing_account)
                fallback = fallback or raw
            if not page.get("has_more") or not page["data"]:
                return None if fallback is None else await self._read_invoice(fallback, billing_account=billing_account)
            after = page["data"][-1]["id"]

    async def _draft_or_missing(self, invoice_id: str, billing_account: str) -> dict[str, Any]:
        raw = await self._call("GET", f"/invoices/{invoice_id}", not_found_none=True, stripe_account=billing_account)
        if raw is None:
            raise BusinessError(
                SYSTEM, f"invoice {invoice_id} does not exist in billing", code="resource_missing", status=404
            )
        return raw

    async def hold_invoice(self, invoice_id: str, *, billing_account: str = "") -> Invoice:
        """`auto_advance=false` on a draft. Idempotent by state: a held draft, or an invoice
        that is no longer a draft (the caller reads its status), is returned as it is."""
        raw = await self._draft_or_missing(invoice_id, billing_account)
        if raw["status"] != "draft" or raw.get("auto_advance") is False:
            return await self._read_invoice(raw, billing_account=billing_account)
        held = await self._call(
            "POST",
            f"/invoices/{invoice_id}",
            {"auto_advance": False},
            idempotency_key=f"o2c-hold-{invoice_id}",
            stripe_account=billing_account,
        )
        return await self._read_invoice(held, billing_account=billing_account)

    async def add_invoice_line(
        self,
        invoice_id: str,
        *,
        customer: str,
        amount: Money,
        description: str,
        metadata: dict[str, str],
        idempotency_key: str,
        billing_account: str = "",
    ) -> Invoice:
        """An invoice item on the draft (a negative amount is a credit); its line's
        `line_id` is the item's id, which remove_invoice_line takes."""
        raw = await self._draft_or_missing(invoice_id, billing_account)
        if raw["currency"].upper() != amount.currency:
            raise BusinessError(
                SYSTEM,
                f"the line is in {amount.currency}, invoice {invoice_id} in {raw['currency'].upper()}",
                code="currency_mismatch",
            )
        await self._call(
            "POST",
            "/invoiceitems",
            {
                "customer": customer,
                "invoice": invoice_id,
                "amount": amount.minor,
                "currency": amount.currency.lower(),
                "description": description,
                "metadata": metadata,
            },
            idempotency_key=idempotency_key,
            stripe_account=billing_account,
        )
        raw = await self._draft_or_missing(invoice_id, billing_account)
        return await self._read_invoice(raw, billing_account=billing_account)

    async def remove_invoice_line(self, line_id: str, *, idempotency_key: str, billing_account: str = "") -> None:
        """Delete the invoice item; one already gone is removed (idempotent by state)."""
        found = await self._call("GET", f"/invoiceitems/{line_id}", not_found_none=True, stripe_account=billing_account)
        if found is None:
            return
        await self._call(
            "DELETE", f"/invoiceitems/{line_id}", idempotency_key=idempotency_key, stripe_account=billing_account
        )

    async def finalize_invoice(self, invoice_id: str, *, idempotency_key: str, billing_account: str = "") -> Invoice:
        """Finalise the held draft. Idempotent by state: an invoice no longer a draft is
        returned as it is. A draft Stripe cannot finalise is a business error with Stripe's
        reason, fixable when it is the customer's tax location."""
        raw = await self._draft_or_missing(invoice_id, billing_account)
        if raw["status"] != "draft":
            return await self._read_invoice(raw, billing_account=billing_account)
        final = await self._call(
            "POST",
            f"/invoices/{invoice_id}/finalize",
            {},
            idempotency_key=idempotency_key,
            stripe_account=billing_account,
        )
        return await self._read_invoice(final, billing_account=billing_account)


def _bills_period(invoice: dict[str, Any], start: date, end: date) -> bool:
    for line in (invoice.get("lines") or {}).get("data", []):
        period = line.get("period") or {}
        if is_metered(line.get("price") or {}) and (_date(period.get("start")), _date(period.get("end"))) == (
            start,
            end,
        ):
            return True
    return False
