"""Stripe's Billing Meters in the sandbox: meters, meter events (v1 and the v2 session and
stream), their refusals, summaries, cancellation, and the period end that bills them."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

AUTH = {"Authorization": "Bearer sk_test_meters"}
TODAY = datetime.now(tz=UTC).date()
PERIOD_START = TODAY - timedelta(days=10)
PERIOD_END = TODAY + timedelta(days=20)


def ts(d: date) -> int:
    return int(datetime(d.year, d.month, d.day, tzinfo=UTC).timestamp())


def rfc3339(unix: int) -> str:
    return datetime.fromtimestamp(unix, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Receiver:
    """A webhook endpoint on a free port that keeps what it is sent."""

    def __init__(self) -> None:
        received = self.received = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.append((self.headers["Stripe-Signature"], body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def events(self, type_: str, timeout: float = 5.0) -> list[tuple[str, dict[str, Any], bytes]]:
        deadline = time.monotonic() + timeout
        while True:
            found = [(sig, json.loads(body), body) for sig, body in self.received if json.loads(body)["type"] == type_]
            if found or time.monotonic() > deadline:
                return found
            time.sleep(0.05)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def stripe(sandbox) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sandbox.url + "/stripe", headers=AUTH, timeout=10) as client:
        yield client


def endpoint(stripe: httpx.Client, url: str, events: list[str]) -> str:
    data = {"url": url, **{f"enabled_events[{i}]": e for i, e in enumerate(events)}}
    response = stripe.post("/v1/webhook_endpoints", data=data)
    assert response.status_code == 200, response.text
    secret: str = response.json()["secret"]
    return secret


def verify(secret: str, signature: str, body: bytes) -> bool:
    parts = dict(part.split("=", 1) for part in signature.split(","))
    expected = hmac.new(secret.encode(), f"{parts['t']}.".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, parts["v1"])


@pytest.fixture
def metered(sandbox) -> dict[str, Any]:
    """A customer on a subscription with two metered items (one priced below a cent)."""
    return sandbox.seed(
        meters=[{"event_name": "api_calls", "display_name": "API calls"}, {"event_name": "seats_active"}],
        customer={"id": "cus_meter", "name": "Meter Co", "currency": "USD"},
        subscription={
            "id": "sub_meter",
            "currency": "USD",
            "items": [
                {"id": "si_api", "product": "api", "meter": "api_calls", "unit_amount_decimal": "0.25"},
                {"id": "si_seats", "product": "seats", "meter": "seats_active", "unit_price": "3.00"},
            ],
            "current_period_start": PERIOD_START.isoformat(),
            "current_period_end": PERIOD_END.isoformat(),
        },
    )


def send_v1(stripe: httpx.Client, event_name: str, value: Any, identifier: str, when: int, **extra: str):
    data = {
        "event_name": event_name,
        "payload[stripe_customer_id]": extra.pop("customer", "cus_meter"),
        "payload[value]": str(value),
        "identifier": identifier,
        "timestamp": str(when),
        **extra,
    }
    return stripe.post("/v1/billing/meter_events", data=data)


def session(stripe: httpx.Client) -> dict[str, Any]:
    response = stripe.post("/v2/billing/meter_event_session")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def stream(sandbox, token: str, events: list[dict[str, Any]]) -> httpx.Response:
    return httpx.post(
        f"{sandbox.url}/stripe/v2/billing/meter_event_stream",
        json={"events": events},
        headers={"Authorization": f"Bearer {token}"},
    )


def summary(stripe: httpx.Client, meter_id: str, start: int, end: int, customer: str = "cus_meter") -> int:
    response = stripe.get(
        f"/v1/billing/meters/{meter_id}/event_summaries",
        params={"customer": customer, "start_time": start, "end_time": end},
    )
    assert response.status_code == 200, response.text
    [found] = response.json()["data"]
    value: int = found["aggregated_value"]
    return value


# -- meters ----------------------------------------------------------------------------------


def test_a_meter_is_created_unique_and_immutable_but_for_its_name(stripe):
    data = {"display_name": "Tokens", "event_name": "tokens", "default_aggregation[formula]": "count"}
    created = stripe.post("/v1/billing/meters", data=data)
    assert created.status_code == 200, created.text
    meter = created.json()
    assert meter["object"] == "billing.meter" and meter["id"].startswith("mtr_")
    assert meter["customer_mapping"] == {"event_payload_key": "stripe_customer_id", "type": "by_id"}
    assert meter["value_settings"] == {"event_payload_key": "value"} and meter["status"] == "active"
    assert stripe.post("/v1/billing/meters", data=data).status_code == 400  # one meter per event name
    missing = stripe.post("/v1/billing/meters", data={"display_name": "x", "event_name": "y"})
    assert missing.json()["error"]["param"] == "default_aggregation[formula]"
    assert stripe.post(f"/v1/billing/meters/{meter['id']}", data={"event_name": "other"}).status_code == 400
    renamed = stripe.post(f"/v1/billing/meters/{meter['id']}", data={"display_name": "Model tokens"}).json()
    assert renamed["display_name"] == "Model tokens" and renamed["event_name"] == "tokens"
    off = stripe.post(f"/v1/billing/meters/{meter['id']}/deactivate").json()
    assert off["status"] == "inactive" and off["status_transitions"]["deactivated_at"]
    assert [m["id"] for m in stripe.get("/v1/billing/meters", params={"status": "inactive"}).json()["data"]] == [
        meter["id"]
    ]
    assert stripe.post(f"/v1/billing/meters/{meter['id']}/reactivate").json()["status"] == "active"
    assert stripe.get(f"/v1/billing/meters/{meter['id']}").json()["status"] == "active"


# -- v1 meter events and their refusals ------------------------------------------------------


def test_v1_events_count_once_and_old_or_future_ones_are_refused(stripe, metered):
    meter_id = metered["meter_ids"]["api_calls"]
    now = int(time.time())
    assert send_v1(stripe, "api_calls", 40, "evt-1", now - 60).status_code == 200
    duplicate = send_v1(stripe, "api_calls", 40, "evt-1", now - 60)
    assert duplicate.status_code == 400
    assert duplicate.headers["stripe-should-retry"] == "false"
    assert duplicate.json()["error"]["message"].startswith("An event already exists with identifier evt-1")
    old = send_v1(stripe, "api_calls", 5, "evt-old", now - 36 * 86400)
    assert old.status_code == 400 and old.json()["error"]["param"] == "timestamp"
    future = send_v1(stripe, "api_calls", 5, "evt-future", now + 600)
    assert future.status_code == 400
    assert send_v1(stripe, "api_calls", "2.5", "evt-fraction", now).status_code == 400
    assert send_v1(stripe, "api_calls", 2, "evt-2", now + 120).status_code == 200  # within 5 minutes ahead
    assert summary(stripe, meter_id, ts(PERIOD_START), ts(PERIOD_END)) == 42


def test_a_cancelled_event_stops_counting(stripe, metered):
    meter_id = metered["meter_ids"]["api_calls"]
    now = int(time.time())
    send_v1(stripe, "api_calls", 7, "evt-keep", now)
    send_v1(stripe, "api_calls", 9, "evt-cancel", now)
    data = {"type": "cancel", "event_name": "api_calls", "cancel[identifier]": "evt-cancel"}
    adjustment = stripe.post("/v1/billing/meter_event_adjustments", data=data)
    assert adjustment.status_code == 200 and adjustment.json()["object"] == "billing.meter_event_adjustment"
    assert stripe.post("/v1/billing/meter_event_adjustments", data=data).status_code == 400  # once
    assert summary(stripe, meter_id, ts(PERIOD_START), ts(PERIOD_END)) == 7


def test_summaries_need_minute_aligned_times_and_group_by_window(stripe, metered):
    meter_id = metered["meter_ids"]["api_calls"]
    hour = int(time.time()) // 3600 * 3600
    send_v1(stripe, "api_calls", 3, "a", hour - 3600 + 10)
    send_v1(stripe, "api_calls", 4, "b", hour + 5)
    url = f"/v1/billing/meters/{meter_id}/event_summaries"
    unaligned = stripe.get(url, params={"customer": "cus_meter", "start_time": hour + 1, "end_time": hour + 7200})
    assert unaligned.status_code == 400
    assert stripe.get(url, params={"customer": "cus_meter", "start_time": hour}).status_code == 400
    grouped = stripe.get(
        url,
        params={
            "customer": "cus_meter",
            "start_time": hour - 7200,
            "end_time": hour + 3600,
            "value_grouping_window": "hour",
        },
    ).json()["data"]
    assert [(s["start_time"], s["aggregated_value"]) for s in grouped] == [(hour - 3600, 3), (hour, 4)]


# -- v2 session and stream -------------------------------------------------------------------


def test_the_stream_takes_a_session_token_for_15_minutes_and_at_most_100_events(sandbox, stripe, metered):
    meter_id = metered["meter_ids"]["api_calls"]
    opened = session(stripe)
    assert opened["object"] == "v2.billing.meter_event_session"
    created = datetime.fromisoformat(opened["created"].replace("Z", "+00:00"))
    expires = datetime.fromisoformat(opened["expires_at"].replace("Z", "+00:00"))
    assert expires - created == timedelta(minutes=15)
    now = int(time.time())
    event = {"event_name": "api_calls", "payload": {"stripe_customer_id": "cus_meter", "value": "10"}}
    batch = [{**event, "identifier": f"s-{i}", "timestamp": rfc3339(now - i)} for i in range(100)]
    accepted = stream(sandbox, opened["authentication_token"], batch)
    assert accepted.status_code == 200 and accepted.json() == {}
    too_many = stream(sandbox, opened["authentication_token"], [*batch, {**event, "identifier": "s-100"}])
    assert too_many.status_code == 400
    assert stream(sandbox, opened["authentication_token"], batch[:10]).status_code == 200  # duplicates: once
    assert stripe.post("/v2/billing/meter_event_stream", json={"events": batch[:1]}).status_code == 401
    sandbox.advance_clock(15 * 60)
    expired = stream(sandbox, opened["authentication_token"], [{**event, "identifier": "late"}])
    assert expired.status_code == 401
    assert expired.json()["error"]["code"] == "billing_meter_event_session_expired"
    assert summary(stripe, meter_id, ts(PERIOD_START), ts(PERIOD_END)) == 1000


def test_the_stream_drops_unknown_customers_and_meters_and_reports_them(sandbox, stripe, metered, receiver):
    secret = endpoint(
        stripe, receiver.url, ["v1.billing.meter.error_report_triggered", "v1.billing.meter.no_meter_found"]
    )
    token = session(stripe)["authentication_token"]
    now = int(time.time())
    events = [
        {"event_name": "api_calls", "identifier": "ok", "payload": {"stripe_customer_id": "cus_meter", "value": "5"}},
        {"event_name": "api_calls", "identifier": "who", "payload": {"stripe_customer_id": "cus_nobody", "value": "5"}},
        {
            "event_name": "api_calls",
            "identifier": "old",
            "timestamp": rfc3339(now - 40 * 86400),
            "payload": {"stripe_customer_id": "cus_meter", "value": "5"},
        },
        {"event_name": "no_such_meter", "identifier": "what", "payload": {"stripe_customer_id": "cus_meter"}},
    ]
    assert stream(sandbox, token, events).status_code == 200
    [(signature, thin, body)] = receiver.events("v1.billing.meter.error_report_triggered")
    assert verify(secret, signature, body)
    assert thin["object"] == "v2.core.event" and "data" not in thin
    assert thin["related_object"]["id"] == metered["meter_ids"]["api_calls"]
    full = stripe.get(f"/v2/core/events/{thin['id']}").json()
    codes = {t["code"]: t for t in full["data"]["reason"]["error_types"]}
    assert set(codes) == {"meter_event_customer_not_found", "timestamp_too_far_in_past"}
    assert codes["meter_event_customer_not_found"]["sample_errors"][0]["request"]["identifier"] == "who"
    assert full["data"]["reason"]["error_count"] == 2
    [(_, no_meter, _)] = receiver.events("v1.billing.meter.no_meter_found")
    assert stripe.get(f"/v2/core/events/{no_meter['id']}").json()["data"]["reason"]["error_types"][0]["code"] == (
        "no_meter"
    )
    meter_id = metered["meter_ids"]["api_calls"]
    assert summary(stripe, meter_id, ts(PERIOD_START), ts(PERIOD_END)) == 5  # only the valid one counts


# -- period end, grace, finalisation ---------------------------------------------------------


def _usage(stripe: httpx.Client, calls: int, seats: int, tag: str) -> None:
    now = int(time.time())
    assert send_v1(stripe, "api_calls", calls, f"calls-{tag}", now - 30).status_code == 200
    assert send_v1(stripe, "seats_active", seats, f"seats-{tag}", now - 30).status_code == 200


def test_period_end_creates_the_draft_from_the_meters_and_announces_it_signed(sandbox, stripe, metered, receiver):
    secret = endpoint(stripe, receiver.url, ["invoice.created"])
    _usage(stripe, 1001, 12, "a")
    ended = sandbox.end_period("sub_meter")
    invoice = ended["invoice"]
    assert invoice["status"] == "draft" and invoice["auto_advance"] is True
    assert invoice["billing_reason"] == "subscription_cycle"
    lines = {line["subscription_item"]: line for line in invoice["lines"]["data"]}
    assert lines["si_api"]["quantity"] == 1001 and lines["si_api"]["amount"] == 250  # 1001 x 0.25 = 250.25 cents
    assert lines["si_seats"]["quantity"] == 12 and lines["si_seats"]["amount"] == 3600
    assert lines["si_api"]["period"] == {"start": ts(PERIOD_START), "end": ts(PERIOD_END)}
    assert lines["si_api"]["price"]["recurring"]["meter"] == metered["meter_ids"]["api_calls"]
    assert invoice["total"] == 3850
    assert ended["subscription"]["current_period_start"] == ts(PERIOD_END)
    [(signature, event, body)] = receiver.events("invoice.created")
    assert verify(secret, signature, body) and event["data"]["object"]["id"] == invoice["id"]


def test_an_unheld_draft_finalises_after_the_grace_with_late_usage_and_a_held_one_waits(sandbox, stripe, metered):
    _usage(stripe, 100, 1, "a")
    unheld = sandbox.end_period("sub_meter")["invoice"]
    sandbox.seed(
        customer={"id": "cus_held", "currency": "USD"},
        subscription={
            "id": "sub_held",
            "currency": "USD",
            "items": [{"product": "api", "meter": "api_calls", "unit_amount_decimal": "1"}],
            "current_period_start": PERIOD_START.isoformat(),
            "current_period_end": PERIOD_END.isoformat(),
        },
    )
    send_v1(stripe, "api_calls", 5, "held-1", int(time.time()), customer="cus_held")
    held = sandbox.end_period("sub_held")["invoice"]
    assert stripe.post(f"/v1/invoices/{held['id']}", data={"auto_advance": "false"}).json()["auto_advance"] is False
    _usage(stripe, 50, 0, "grace")  # sent during the grace: still counts
    assert sandbox.advance_clock(1800)["finalized"] == []
    assert sandbox.advance_clock(1801)["finalized"] == [unheld["id"]]
    final = stripe.get(f"/v1/invoices/{unheld['id']}").json()
    assert final["status"] == "open" and final["number"]
    lines = {line["subscription_item"]: line for line in final["lines"]["data"]}
    assert (lines["si_api"]["quantity"], lines["si_api"]["amount"]) == (150, 38)  # 37.5 cents, half up
    assert (lines["si_seats"]["quantity"], lines["si_seats"]["amount"]) == (1, 300)
    assert final["total"] == 338
    assert stripe.get(f"/v1/invoices/{held['id']}").json()["status"] == "draft"
    credit = stripe.post(
        "/v1/invoiceitems",
        data={"customer": "cus_held", "invoice": held["id"], "currency": "usd", "amount": "-2", "description": "x"},
    )
    assert credit.status_code == 200
    assert stripe.get(f"/v1/invoices/{held['id']}").json()["total"] == 3
    assert stripe.delete(f"/v1/invoiceitems/{credit.json()['id']}").json()["deleted"] is True
    finalized = stripe.post(f"/v1/invoices/{held['id']}/finalize", headers={"Idempotency-Key": "fin-held"})
    assert finalized.json()["status"] == "open" and finalized.json()["total"] == 5
    late = stripe.post(
        "/v1/invoiceitems",
        data={"customer": "cus_held", "invoice": held["id"], "currency": "usd", "amount": "-1"},
    )
    assert late.status_code == 400  # drafts only


def test_a_failed_finalisation_answers_the_error_sends_the_event_and_can_be_retried(sandbox, stripe, metered, receiver):
    endpoint(stripe, receiver.url, ["invoice.finalization_failed"])
    _usage(stripe, 10, 1, "a")
    invoice = sandbox.end_period("sub_meter")["invoice"]
    stripe.post(f"/v1/invoices/{invoice['id']}", data={"auto_advance": "false"})
    sandbox.fail_finalization(invoice["id"])
    failed = stripe.post(f"/v1/invoices/{invoice['id']}/finalize", headers={"Idempotency-Key": "fin-1"})
    assert failed.status_code == 400 and failed.json()["error"]["code"] == "failed_tax_calculation"
    [(_, event, _)] = receiver.events("invoice.finalization_failed")
    assert event["data"]["object"]["last_finalization_error"]["code"] == "failed_tax_calculation"
    assert stripe.get(f"/v1/invoices/{invoice['id']}").json()["status"] == "draft"
    sandbox.clear_finalization_failure(invoice["id"])
    retried = stripe.post(f"/v1/invoices/{invoice['id']}/finalize", headers={"Idempotency-Key": "fin-1"})
    assert retried.status_code == 200 and retried.json()["status"] == "open"


def test_metered_items_carry_no_quantity(stripe, metered):
    meter_id = metered["meter_ids"]["api_calls"]
    price = stripe.post(
        "/v1/prices",
        data={
            "currency": "usd",
            "product": "api",
            "unit_amount_decimal": "0.5",
            "recurring[interval]": "month",
            "recurring[usage_type]": "metered",
            "recurring[meter]": meter_id,
        },
    ).json()
    assert price["recurring"]["usage_type"] == "metered" and price["recurring"]["meter"] == meter_id
    refused = stripe.post(
        "/v1/subscriptions", data={"customer": "cus_meter", "items[0][price]": price["id"], "items[0][quantity]": "3"}
    )
    assert refused.status_code == 400
    sub = stripe.post("/v1/subscriptions", data={"customer": "cus_meter", "items[0][price]": price["id"]}).json()
    assert "quantity" not in sub["items"]["data"][0]


def test_the_usage_seed_example_sets_up_usage_billing_in_one_file(sandbox, stripe):
    spec = json.loads((Path(__file__).parents[2] / "examples" / "usage-seed.json").read_text())
    seeded = sandbox.seed(**spec)
    assert set(seeded["meter_ids"]) == {"api_calls", "storage_gb_hours"}
    items = {item["id"]: item for item in seeded["subscription"]["items"]["data"]}
    assert "quantity" not in items["si_initech_api"]
    assert items["si_initech_api"]["price"]["recurring"]["meter"] == seeded["meter_ids"]["api_calls"]
    assert items["si_initech_api"]["price"]["unit_amount_decimal"] == "0.25"
    assert stripe.get(f"/v1/billing/meters/{seeded['meter_ids']['api_calls']}").json()["display_name"] == "API calls"
