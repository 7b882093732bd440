"""The Stripe adapter's MeteringPort against the sandbox over real HTTP: meters, metered
customers, usage on the v2 stream (its session renewed when it expires), the usage draft,
holding it, a credit line, and finalising it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest

from adapters.errors import BusinessError
from adapters.stripe import StripeBilling
from canonical.models import Invoice
from canonical.money import Money
from canonical.usage.models import Aggregation, MeterReport

API_KEY = "sk_test_o2c_usage"
TODAY = datetime.now(tz=UTC).date()
PERIOD_START = TODAY - timedelta(days=10)
PERIOD_END = TODAY + timedelta(days=20)


def usd(amount: str) -> Money:
    return Money.of(amount, "USD")


@pytest.fixture
def usage_seed(sandbox) -> dict[str, Any]:
    """Initech on seats, API calls at 0.25 cents a call and storage at 2 cents a GB-hour."""
    seeded = sandbox.seed(
        meters=[
            {"event_name": "api_calls", "display_name": "API calls"},
            {"event_name": "storage_gb_hours", "display_name": "Storage", "customer_key": "account"},
            {"event_name": "peak_users", "formula": "last"},
        ],
        customer={"id": "cus_initech", "name": "Initech", "currency": "USD", "legal_entity": "UK01", "segment": "smb"},
        subscription={
            "id": "sub_initech",
            "currency": "USD",
            "items": [
                {"product": "seats", "quantity": 5, "unit_price": "40.00"},
                {"id": "si_api", "product": "api", "meter": "api_calls", "unit_amount_decimal": "0.25"},
                {"id": "si_storage", "product": "storage", "meter": "storage_gb_hours", "unit_price": "0.02"},
            ],
            "current_period_start": PERIOD_START.isoformat(),
            "current_period_end": PERIOD_END.isoformat(),
        },
    )
    sandbox.seed(
        customer={"id": "cus_seats_only", "currency": "USD"},
        subscription={
            "id": "sub_seats_only",
            "currency": "USD",
            "items": [{"product": "seats", "quantity": 1, "unit_price": "10.00"}],
            "current_period_start": PERIOD_START.isoformat(),
            "current_period_end": PERIOD_END.isoformat(),
        },
    )
    return seeded


@pytest.fixture
async def billing(sandbox) -> AsyncIterator[StripeBilling]:
    client = StripeBilling(sandbox.stripe_url, API_KEY, timeout=5, meter_events_url=sandbox.stripe_v2_url)
    yield client
    await client.aclose()


def ts(d: date) -> int:
    return int(datetime(d.year, d.month, d.day, tzinfo=UTC).timestamp())


def aggregated(sandbox, meter_id: str, customer: str = "cus_initech") -> int:
    response = httpx.get(
        f"{sandbox.stripe_url}/billing/meters/{meter_id}/event_summaries",
        params={"customer": customer, "start_time": ts(PERIOD_START), "end_time": ts(PERIOD_END)},
        auth=(API_KEY, ""),
    )
    assert response.status_code == 200, response.text
    value: int = response.json()["data"][0]["aggregated_value"]
    return value


def reports(meter: str, count: int, value: int, tag: str) -> list[MeterReport]:
    when = datetime.now(tz=UTC) - timedelta(minutes=1)
    return [
        MeterReport(identifier=f"{tag}-{i}", event_name=meter, customer="cus_initech", value=value, timestamp=when)
        for i in range(count)
    ]


def sessions(sandbox) -> int:
    return sum(1 for _ in sandbox.records("stripe", "meter_event_session"))


async def test_meters_are_read_by_event_name_and_last_value_meters_left_out(billing, usage_seed):
    meters = {m.event_name: m for m in await billing.list_meters()}
    assert set(meters) == {"api_calls", "storage_gb_hours"}
    assert meters["api_calls"].aggregation is Aggregation.SUM and meters["api_calls"].active
    assert meters["api_calls"].stripe_meter_id == usage_seed["meter_ids"]["api_calls"]


async def test_usage_customers_are_the_active_metered_subscriptions_with_exact_prices(billing, usage_seed):
    [customer] = await billing.usage_customers()
    assert (customer.customer, customer.subscription_id, customer.currency) == ("cus_initech", "sub_initech", "USD")
    assert (customer.legal_entity, customer.segment) == ("UK01", "smb")
    prices = {p.meter: p for p in customer.prices}
    assert set(prices) == {"api_calls", "storage_gb_hours"}
    assert prices["api_calls"].unit_amount_decimal == Decimal("0.0025")  # a quarter of a cent, exact
    assert prices["api_calls"].unit_amount == usd("0.00") and prices["api_calls"].item_id == "si_api"
    assert prices["storage_gb_hours"].unit_amount == usd("0.02")
    assert customer.active_from is not None


async def test_usage_customers_page_from_a_subscription_on(sandbox, billing, usage_seed):
    for n in range(3):
        sandbox.seed(
            customer={"id": f"cus_page{n}", "currency": "USD"},
            subscription={
                "id": f"sub_page{n}",
                "currency": "USD",
                "items": [{"product": "api", "meter": "api_calls", "unit_amount_decimal": "0.25"}],
                "current_period_start": PERIOD_START.isoformat(),
                "current_period_end": PERIOD_END.isoformat(),
            },
        )
    every = [c.subscription_id for c in await billing.usage_customers()]
    assert sorted(every) == ["sub_initech", "sub_page0", "sub_page1", "sub_page2"]
    first = await billing.usage_customers(limit=2)
    rest = await billing.usage_customers(after=first[-1].subscription_id)
    assert [c.subscription_id for c in first + rest] == every  # the seats-only one is skipped, not counted


async def test_usage_goes_out_100_a_request_counts_once_and_survives_an_expired_session(sandbox, billing, usage_seed):
    api = usage_seed["meter_ids"]["api_calls"]
    storage = usage_seed["meter_ids"]["storage_gb_hours"]
    await billing.report_usage(reports("api_calls", 250, 4, "a") + reports("storage_gb_hours", 3, 7, "s"))
    assert aggregated(sandbox, api) == 1000
    assert aggregated(sandbox, storage) == 21  # the meter's own customer key ("account") was used
    assert sessions(sandbox) == 1  # one session for all three requests
    await billing.report_usage(reports("api_calls", 250, 4, "a"))  # a retry counts nothing
    assert aggregated(sandbox, api) == 1000
    sandbox.advance_clock(16 * 60)  # the token expired on Stripe's clock; the adapter renews it
    await billing.report_usage(reports("api_calls", 1, 5, "b"))
    assert aggregated(sandbox, api) == 1005
    assert sessions(sandbox) == 2


async def test_the_metered_quantity_is_what_the_meter_counted_in_the_window(billing, usage_seed):
    start = datetime(PERIOD_START.year, PERIOD_START.month, PERIOD_START.day, tzinfo=UTC)
    end = datetime(PERIOD_END.year, PERIOD_END.month, PERIOD_END.day, tzinfo=UTC)
    assert await billing.metered_quantity("api_calls", customer="cus_initech", start=start, end=end) == 0
    await billing.report_usage(reports("api_calls", 3, 40, "q"))
    assert await billing.metered_quantity("api_calls", customer="cus_initech", start=start, end=end) == 120
    assert await billing.metered_quantity("api_calls", customer="cus_seats_only", start=start, end=end) == 0
    with pytest.raises(BusinessError, match="no meter for 'nothing'"):
        await billing.metered_quantity("nothing", customer="cus_initech", start=start, end=end)


async def _period_end(sandbox, billing: StripeBilling) -> Invoice:
    await billing.report_usage(reports("api_calls", 1, 1001, "calls") + reports("storage_gb_hours", 1, 30, "gb"))
    sandbox.end_period("sub_initech")
    draft = await billing.find_usage_draft("sub_initech", period_start=PERIOD_START, period_end=PERIOD_END)
    assert draft is not None
    return draft


async def test_the_usage_draft_carries_its_metered_lines(sandbox, billing, usage_seed):
    assert await billing.find_usage_draft("sub_initech", period_start=PERIOD_START, period_end=PERIOD_END) is None
    draft = await _period_end(sandbox, billing)
    assert draft.status == "draft"
    lines = {line.meter: line for line in draft.lines}
    assert set(lines) == {"api_calls", "storage_gb_hours"}
    assert (lines["api_calls"].quantity, lines["api_calls"].amount) == (1001, usd("2.50"))
    assert (lines["storage_gb_hours"].quantity, lines["storage_gb_hours"].amount) == (30, usd("0.60"))
    assert lines["api_calls"].line_id.startswith("il_")
    assert (lines["api_calls"].period_start, lines["api_calls"].period_end) == (PERIOD_START, PERIOD_END)
    assert draft.total == usd("3.10")
    later = PERIOD_END + timedelta(days=31)
    assert await billing.find_usage_draft("sub_initech", period_start=PERIOD_END, period_end=later) is None
    read = await billing.get_invoice(draft.id)
    assert read is not None and {line.meter for line in read.lines} == {"api_calls", "storage_gb_hours"}
    subscription = await billing.get_subscription("sub_initech")
    assert subscription is not None and [line.product for line in subscription.lines] == ["seats"]


async def test_a_held_draft_waits_takes_a_credit_line_and_is_finalised_once(sandbox, billing, usage_seed):
    draft = await _period_end(sandbox, billing)
    held = await billing.hold_invoice(draft.id)
    assert (await billing.hold_invoice(draft.id)).status == "draft"
    sandbox.advance_clock(2 * 3600)  # past the grace: a held draft stays a draft
    assert held.status == "draft" and (await billing.get_invoice(draft.id)).status == "draft"
    common = {"customer": "cus_initech", "description": "Spike credit", "metadata": {"o2c_workflow": "usage-1"}}
    credited = await billing.add_invoice_line(draft.id, amount=usd("-1.00"), idempotency_key="usage-1/credit", **common)
    again = await billing.add_invoice_line(draft.id, amount=usd("-1.00"), idempotency_key="usage-1/credit", **common)
    assert credited.total == again.total == usd("2.10")
    [credit] = [line for line in again.lines if not line.meter]
    assert credit.line_id.startswith("ii_") and credit.amount == usd("-1.00")
    await billing.remove_invoice_line(credit.line_id, idempotency_key="usage-1/credit/undo")
    await billing.remove_invoice_line(credit.line_id, idempotency_key="usage-1/credit/undo")
    assert (await billing.get_invoice(draft.id)).total == usd("3.10")
    final = await billing.finalize_invoice(draft.id, idempotency_key="usage-1/finalize")
    assert final.status == "open" and final.number
    assert (await billing.finalize_invoice(draft.id, idempotency_key="usage-1/finalize")).number == final.number


async def test_a_draft_billing_cannot_finalise_is_a_fixable_business_error(sandbox, billing, usage_seed):
    draft = await _period_end(sandbox, billing)
    await billing.hold_invoice(draft.id)
    sandbox.fail_finalization(draft.id)
    with pytest.raises(BusinessError) as failure:
        await billing.finalize_invoice(draft.id, idempotency_key="usage-2/finalize")
    assert failure.value.code == "failed_tax_calculation" and failure.value.fixable
    assert "could not finalise" in failure.value.message
    sandbox.clear_finalization_failure(draft.id)
    assert (await billing.finalize_invoice(draft.id, idempotency_key="usage-2/finalize")).status == "open"


async def test_an_unheld_draft_finalises_on_its_own_with_usage_sent_in_the_grace(sandbox, billing, usage_seed):
    draft = await _period_end(sandbox, billing)
    late = datetime.fromtimestamp(ts(PERIOD_START) + 60, tz=UTC)
    await billing.report_usage(
        [MeterReport(identifier="grace", event_name="api_calls", customer="cus_initech", value=999, timestamp=late)]
    )
    sandbox.advance_clock(3601)
    final = await billing.get_invoice(draft.id)
    assert final is not None and final.status == "open"
    assert {line.meter: line.quantity for line in final.lines}["api_calls"] == 2000


async def test_a_legal_entitys_own_billing_account_meters_and_invoices_its_usage(sandbox, billing):
    """Everything of a Connect account's customer happens in that account: its meter (an
    event name of its own there), the v2 stream (Stripe-Context), the summaries, the draft."""
    account = "acct_usage_uk01"
    seeded = sandbox.seed(
        stripe_account=account,
        meters=[{"event_name": "api_calls", "display_name": "API calls"}],
        customer={"id": "cus_uk_usage", "currency": "USD", "legal_entity": "UK01"},
        subscription={
            "id": "sub_uk_usage",
            "currency": "USD",
            "items": [{"product": "api", "meter": "api_calls", "unit_amount_decimal": "1"}],
            "current_period_start": PERIOD_START.isoformat(),
            "current_period_end": PERIOD_END.isoformat(),
        },
    )
    assert await billing.usage_customers() == []  # not the platform's
    [customer] = await billing.usage_customers(billing_account=account)
    assert customer.subscription_id == "sub_uk_usage" and customer.prices[0].meter == "api_calls"
    when = datetime.now(tz=UTC) - timedelta(minutes=1)
    reports = [
        MeterReport(identifier="uk-1", event_name="api_calls", customer="cus_uk_usage", value=700, timestamp=when)
    ]
    await billing.report_usage(reports, billing_account=account)
    await billing.report_usage(reports, billing_account=account)  # once, however often
    start = datetime(PERIOD_START.year, PERIOD_START.month, PERIOD_START.day, tzinfo=UTC)
    end = datetime(PERIOD_END.year, PERIOD_END.month, PERIOD_END.day, tzinfo=UTC)
    counted = await billing.metered_quantity(
        "api_calls", customer="cus_uk_usage", start=start, end=end, billing_account=account
    )
    assert counted == 700 and seeded["meter_ids"]["api_calls"].startswith("mtr_")
    sandbox.end_period("sub_uk_usage")
    assert await billing.find_usage_draft("sub_uk_usage", period_start=PERIOD_START, period_end=PERIOD_END) is None
    draft = await billing.find_usage_draft(
        "sub_uk_usage", period_start=PERIOD_START, period_end=PERIOD_END, billing_account=account
    )
    assert draft is not None and draft.billing_account == account
    held = await billing.hold_invoice(draft.id, billing_account=account)
    credited = await billing.add_invoice_line(
        held.id,
        customer="cus_uk_usage",
        amount=usd("-1.00"),
        description="Credit: goodwill",
        metadata={},
        idempotency_key="uk-credit",
        billing_account=account,
    )
    final = await billing.finalize_invoice(credited.id, idempotency_key="uk-final", billing_account=account)
    assert final.status == "open" and final.total == usd("6.00")  # 700 calls at a cent, less the credit
