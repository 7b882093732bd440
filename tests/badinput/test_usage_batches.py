"""Hostile batches at POST /v1/usage/events over real HTTP: each is refused with a clear error
and leaves the database as it was (events and quarantine counted before and after)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from starter.usage_ingress import MAX_BODY_BYTES, USAGE_PATH
from tests.ingress.usage_ingress_kit import UsageIngress, database_urls, serve_usage


@pytest.fixture
async def usage(tmp_path) -> AsyncIterator[UsageIngress]:
    async with serve_usage(database_urls(tmp_path)) as running:
        yield running


def good(cust: str, identifier: str = "e", value: Any = 1) -> dict[str, Any]:
    return {
        "identifier": f"{cust}-{identifier}",
        "meter": "api_calls",
        "customer": cust,
        "value": value,
        "timestamp": (datetime.now(UTC) - timedelta(minutes=1)).isoformat(),
    }


async def refused(usage: UsageIngress, body: bytes, *, status: int, error: str, headers: dict[str, str] | None = None):
    before = await usage.ledger.counts()
    sent = {"Content-Type": "application/json", **(usage.auth() if headers is None else headers)}
    response = await usage.http.post(USAGE_PATH, content=body, headers=sent)
    assert response.status_code == status, response.text
    answer = response.json()
    assert answer["error"] == error and answer["message"]
    assert await usage.ledger.counts() == before
    return answer


async def test_bodies_that_are_not_a_strict_json_batch_are_refused(usage: UsageIngress):
    c = usage.customer
    event = json.dumps(good(c))
    await refused(usage, b'{"events": [', status=400, error="invalid_json")
    await refused(usage, b"\xff\xfe not text", status=400, error="invalid_json")
    nan = await refused(
        usage,
        event.replace('"value": 1', '"value": NaN').join(['{"events": [', "]}"]).encode(),
        status=400,
        error="invalid_json",
    )
    assert "NaN is not JSON" in nan["message"]
    await refused(
        usage,
        event.replace('"value": 1', '"value": -Infinity').join(['{"events": [', "]}"]).encode(),
        status=400,
        error="invalid_json",
    )
    await refused(usage, b"[]", status=400, error="invalid_batch")
    await refused(usage, b'{"events": []}', status=400, error="invalid_batch")
    await refused(usage, b'{"events": {}}', status=400, error="invalid_batch")
    unknown = await refused(
        usage, f'{{"events": [{event}], "dry_run": true}}'.encode(), status=400, error="invalid_batch"
    )
    assert "dry_run" in unknown["message"]


async def test_events_of_the_wrong_shape_name_their_index_and_field(usage: UsageIngress):
    c = usage.customer
    cases = [
        ({**good(c, "s"), "value": "5"}, "value"),
        ({**good(c, "b"), "value": True}, "value"),
        ({**good(c, "n"), "customer": 42}, "customer"),
        ({**good(c, "d"), "dimensions": {"region": 1}}, "dimensions"),
        ({**good(c, "t"), "timestamp": "yesterday"}, "timestamp"),
        ({**good(c, "u"), "account": "acme"}, "account"),
        ({k: v for k, v in good(c, "m").items() if k != "meter"}, "meter"),
        ({**good(c, "l"), "identifier": "x" * 101}, "identifier"),
    ]
    for bad, field in cases:
        body = json.dumps({"events": [good(c, "fine-1"), good(c, "fine-2"), bad]}).encode()
        answer = await refused(usage, body, status=400, error="invalid_events")
        assert {"index": 2, "field": field} == {k: answer["problems"][0][k] for k in ("index", "field")}, answer
        assert "nothing of the batch was written" in answer["message"]


async def test_an_oversized_batch_is_refused_whole(usage: UsageIngress):
    c = usage.customer
    over = json.dumps({"events": [good(c, f"o{i}") for i in range(1001)]}).encode()
    assert len(over) < MAX_BODY_BYTES
    answer = await refused(usage, over, status=400, error="invalid_batch")
    assert "1 to 1000 events" in answer["message"]
    huge = json.dumps({"events": [{**good(c, "h"), "dimensions": {"pad": "x" * MAX_BODY_BYTES}}]}).encode()
    await refused(usage, huge, status=413, error="too_large")


async def test_ten_thousand_identical_identifiers_count_once(usage: UsageIngress):
    c = usage.customer
    same = good(c, "same", 3)
    # As one batch: refused for its size, nothing written.
    await refused(usage, json.dumps({"events": [same] * 10_000}).encode(), status=413, error="too_large")
    # As ten batches of 1,000: one counted, the rest duplicates.
    before = await usage.ledger.counts()
    accepted = duplicates = 0
    for _ in range(10):
        answer = (await usage.http.post(USAGE_PATH, json={"events": [same] * 1000}, headers=usage.auth())).json()
        accepted += answer["accepted"]
        duplicates += answer["duplicates"]
    assert (accepted, duplicates) == (1, 9_999)
    after = await usage.ledger.counts()
    assert after == {"events": before["events"] + 1, "quarantine": before["quarantine"]}
    period = f"{datetime.now(UTC) - timedelta(minutes=1):%Y-%m}"
    assert [(t.quantity, t.events) for t in await usage.ledger.period_totals(period, customer=c)] == [(3, 1)]


async def test_a_missing_wrong_or_revoked_key_is_refused(usage: UsageIngress):
    body = json.dumps({"events": [good(usage.customer)]}).encode()
    await refused(usage, body, status=401, error="unauthorized", headers={})
    await refused(usage, body, status=401, error="unauthorized", headers={"Authorization": "Bearer"})
    await refused(usage, body, status=401, error="unauthorized", headers={"Authorization": f"Basic {usage.key}"})
    await refused(usage, body, status=401, error="unauthorized", headers={"Authorization": f"Bearer {usage.key}x"})
    await refused(
        usage, body, status=401, error="unauthorized", headers={"Authorization": "Bearer o2c_usage_\u00e9".encode()}
    )  # type: ignore[dict-item]
    # Refused before the body is read: an oversized body with a wrong key is a 401, not a 413.
    await refused(
        usage, b"x" * (MAX_BODY_BYTES + 10), status=401, error="unauthorized", headers={"Authorization": "Bearer nope"}
    )
    name = next(k.name for k in await usage.ledger.keys() if k.name == f"platform-{usage.customer}")
    assert await usage.ledger.revoke_key(name)
    await refused(usage, body, status=401, error="unauthorized")


@pytest.mark.parametrize(
    ("field", "value", "said"),
    [
        ("identifier", "e-1\r\nX-Injected: yes", "U+000D a carriage return (CR)"),
        ("identifier", "e-\u200f1", "U+200F RIGHT-TO-LEFT MARK"),
        ("identifier", "e" * 5000, "is 5,000 characters long"),
        ("customer", "cus_\x00acme", "U+0000 NUL"),
    ],
)
async def test_an_event_whose_id_breaks_the_business_id_rule_refuses_the_batch_by_name(usage, field, value, said):
    events = [good(usage.customer, "a"), {**good(usage.customer, "b"), field: value}]
    answer = await refused(usage, json.dumps({"events": events}).encode(), status=400, error="invalid_events")
    assert answer["problems"][0]["index"] == 1 and answer["problems"][0]["field"] == field
    assert said in answer["problems"][0]["message"]
