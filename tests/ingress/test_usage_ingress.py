"""POST /v1/usage/events over real HTTP (uvicorn on a free port): the answer per event, counted
once per period, committed before the answer, retried through a dropped connection, 503 when
the database stays away."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from adapters.storage.usage import UsageLedger
from starter.usage_ingress import USAGE_PATH
from tests.adapters.usage_kit import FailingInserts
from tests.ingress.usage_ingress_kit import UsageIngress, database_urls, serve_usage


@pytest.fixture
async def usage(tmp_path) -> AsyncIterator[UsageIngress]:
    async with serve_usage(database_urls(tmp_path)) as running:
        yield running


def wire(cust: str, identifier: str, value: Any = 1, *, at: datetime | None = None, **extra: Any) -> dict[str, Any]:
    moment = at or datetime.now(UTC) - timedelta(minutes=1)
    return {
        "identifier": f"{cust}-{identifier}",
        "meter": "api_calls",
        "customer": cust,
        "value": value,
        "timestamp": moment.isoformat(),
        **extra,
    }


async def totals(ledger: UsageLedger, cust: str, period: str) -> list[tuple[str, int, int]]:
    return [(t.meter, t.quantity, t.events) for t in await ledger.period_totals(period, customer=cust)]


async def test_a_batch_is_answered_per_event_and_counted_once(usage: UsageIngress):
    c = usage.customer
    now = datetime.now(UTC) - timedelta(minutes=1)
    period = f"{now:%Y-%m}"
    batch = {
        "events": [
            wire(c, "a", 5, dimensions={"region": "eu"}),
            wire(c, "b", 7),
            wire(c, "a", 5),  # twice in one batch
            wire(c, "c", 2_000_000),  # above the meter's bound
            wire("cus_unknown", "d", 1),
        ]
    }
    response = await usage.http.post(USAGE_PATH, json=batch, headers=usage.auth())
    assert response.status_code == 200, response.text
    answer = response.json()
    assert (answer["accepted"], answer["duplicates"], answer["refused"]) == (2, 1, 2)
    assert [r["outcome"] for r in answer["results"]] == ["accepted", "accepted", "duplicate", "refused", "refused"]
    assert answer["results"][0] == {"identifier": f"{c}-a", "outcome": "accepted", "period": period}
    assert answer["results"][3]["reason"] == "out_of_bounds" and answer["results"][3]["message"]
    assert answer["results"][4]["reason"] == "unknown_customer"

    # The producer retries the whole batch: nothing counts twice, the refused are refused again.
    again = (await usage.http.post(USAGE_PATH, json=batch, headers=usage.auth())).json()
    assert (again["accepted"], again["duplicates"], again["refused"]) == (0, 3, 2)
    assert await totals(usage.ledger, c, period) == [("api_calls", 12, 2)]
    # The same identifier in another period counts there.
    earlier = now.replace(day=1) - timedelta(days=3)
    other = await usage.http.post(USAGE_PATH, json={"events": [wire(c, "a", 4, at=earlier)]}, headers=usage.auth())
    assert other.json()["results"][0] == {"identifier": f"{c}-a", "outcome": "accepted", "period": f"{earlier:%Y-%m}"}
    assert await totals(usage.ledger, c, f"{earlier:%Y-%m}") == [("api_calls", 4, 1)]
    quarantined = [q for q in await usage.ledger.quarantine(limit=100_000) if q.identifier.startswith(c)]
    assert sorted(q.reason for q in quarantined) == ["out_of_bounds", "out_of_bounds"]
    assert {q.source for q in quarantined} == {f"platform-{c}"}


async def test_a_dropped_connection_is_retried_before_the_answer(usage: UsageIngress):
    c = usage.customer
    failing = FailingInserts(usage.ledger.engine, times=2)
    response = await usage.http.post(USAGE_PATH, json={"events": [wire(c, "r", 3)]}, headers=usage.auth())
    assert response.status_code == 200 and response.json()["accepted"] == 1
    assert failing.failed == 2
    fresh = UsageLedger(str(usage.ledger.engine.url.render_as_string(hide_password=False)), migrate=False)
    try:  # committed: another connection sees it
        assert await totals(fresh, c, f"{datetime.now(UTC) - timedelta(minutes=1):%Y-%m}") == [("api_calls", 3, 1)]
    finally:
        await fresh.aclose()


async def test_a_database_that_stays_down_answers_503_and_writes_nothing(usage: UsageIngress):
    c = usage.customer
    before = await usage.ledger.counts()
    FailingInserts(usage.ledger.engine, times=100)
    response = await usage.http.post(
        USAGE_PATH, json={"events": [wire(c, "down", 3), wire("cus_unknown", "x")]}, headers=usage.auth()
    )
    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"
    assert response.json()["error"] == "unavailable"
    assert await usage.ledger.counts() == before


async def test_the_event_loop_keeps_serving_while_a_batch_is_written(usage: UsageIngress):
    import asyncio

    c = usage.customer
    batches = [{"events": [wire(c, f"p{n}-{i}") for i in range(200)]} for n in range(4)]
    answers = await asyncio.gather(*(usage.http.post(USAGE_PATH, json=b, headers=usage.auth()) for b in batches))
    health = await usage.http.get("/healthz")
    assert health.status_code == 200
    assert [a.json()["accepted"] for a in answers] == [200] * 4
