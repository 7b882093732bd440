"""Usage ingest through the HTTP ingress on PostgreSQL: events per second, exactly once.

Serves the usage ingress with uvicorn in a child process (`--workers` processes, on a free
loopback port, against the PostgreSQL database of `--database-url` or O2C_DATABASE_URL),
seeds a meter and `--customers` customers of this run's own, and sends `--events` events in
batches of 1,000 from `--senders` concurrent senders, 1 % of them with an identifier sent
before (a producer's retry) and 0.5 % invalid (an unknown customer, a negative value). Prints
events per second accepted (first request to last answer), the p99 batch latency, the peak
RSS of the ingress processes, whether every (customer, meter) total equals the bench's own
count (`totals_exact`), and the time to aggregate the period; the last line is the same
figures as one JSON object. Never asserts.

`--review N` adds the period end of N metered subscriptions through the real UsageReleaseWorkflow
on the Temporal dev server (see docs/benchmarks.md); `--events 0` skips the ingest.

    .venv/bin/python bench/usage.py [--events 1000000] [--senders 4] [--workers 2] [--database-url URL]
    .venv/bin/python bench/usage.py --events 0 --review [N] [--cache 100] [--in-flight 50]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from adapters.storage.db import engine_for, upgrade
from adapters.storage.usage import UsageLedger, period_totals
from bench.measure import free_port, rss_mib, wait_for_http
from canonical.models import Account, Address
from canonical.money import Money
from canonical.usage.models import (
    MAX_BATCH,
    Meter,
    MeteredPrice,
    UsageCustomer,
    UsageRelease,
    period_end,
    previous_period,
)
from starter.usage_ingress import USAGE_PATH

DUPLICATE_SHARE = 0.01
INVALID_SHARE = 0.005
METERS = ("api_calls", "storage_gb")


def process_tree(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        try:
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children") as children:
                    todo += [int(child) for child in children.read().split()]
        except OSError:
            continue
    return found


def peak_rss_mib(pid: int) -> tuple[float, float]:
    """(the sum over the ingress processes, the largest one) of their peak resident memory."""
    peaks = []
    for member in process_tree(pid):
        try:
            with open(f"/proc/{member}/status") as status:
                for line in status:
                    if line.startswith("VmHWM:"):
                        peaks.append(int(line.split()[1]) / 1024)
        except OSError:
            continue
    return round(sum(peaks), 1), round(max(peaks, default=0.0), 1)


def cpu_seconds(pid: int) -> float:
    """User and system CPU the ingress processes have used so far: a figure the other work on
    a shared machine does not move, unlike the wall clock."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for member in process_tree(pid):
        try:
            with open(f"/proc/{member}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
    return total


@dataclass
class Plan:
    """What the bench sends and what it expects o2c to count."""

    run: str
    customers: list[str]
    moment: datetime
    expected: Counter[tuple[str, str]] = field(default_factory=Counter)
    sent_ids: list[str] = field(default_factory=list)
    unique_valid: int = 0
    duplicates: int = 0
    invalid: int = 0

    def batch(self, number: int, size: int, rng: random.Random) -> bytes:
        stamp = self.moment.isoformat()
        events = []
        for i in range(size):
            n = number * size + i
            roll = rng.random()
            customer = self.customers[n % len(self.customers)]
            meter = METERS[n % len(METERS)]
            if roll < INVALID_SHARE:
                self.invalid += 1
                bad = {"customer": "cus_nobody"} if roll < INVALID_SHARE / 2 else {"value": -1}
                events.append(
                    {
                        "identifier": f"{self.run}-bad-{n}",
                        "meter": meter,
                        "customer": customer,
                        "value": 1,
                        "timestamp": stamp,
                    }
                    | bad
                )
                continue
            if roll < INVALID_SHARE + DUPLICATE_SHARE and self.sent_ids:
                # A producer's retry: an event sent before, exactly as it was.
                self.duplicates += 1
                events.append(json.loads(rng.choice(self.sent_ids)))
                continue
            value = 1 + n % 7
            event = {
                "identifier": f"{self.run}-{n}",
                "meter": meter,
                "customer": customer,
                "value": value,
                "timestamp": stamp,
            }
            self.expected[(customer, meter)] += value
            self.unique_valid += 1
            if len(self.sent_ids) < 10_000 or rng.random() < 0.01:
                text = json.dumps(event)
                if len(self.sent_ids) < 10_000:
                    self.sent_ids.append(text)
                else:
                    self.sent_ids[rng.randrange(len(self.sent_ids))] = text
            events.append(event)
        return json.dumps({"events": events}).encode()


def seed(database_url: str, run: str, customers: int) -> tuple[list[str], str]:
    """This run's customers and meters in the master data, and an API key."""
    ledger = UsageLedger(database_url)
    names = [f"cus_{run}_{n:04d}" for n in range(customers)]
    usage_customers = [
        UsageCustomer(
            customer=name,
            subscription_id=f"sub_{name}",
            currency="USD",
            legal_entity="US01",
            prices=[MeteredPrice(meter=m, price_id=f"price_{m}", unit_amount=Money.of("0.01", "USD")) for m in METERS],
        )
        for name in names
    ]

    async def go() -> str:
        await ledger.upsert_meters([Meter(event_name=m, display_name=m) for m in METERS])
        await ledger.upsert_customers(usage_customers)
        key = await ledger.create_key(f"bench-{run}")
        await ledger.aclose()
        return key

    return names, asyncio.run(go())


def start_ingress(database_url: str, port: int, workers: int, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "O2C_DATABASE_URL": database_url, "O2C_USAGE_MIGRATE": "0", "PYTHONPATH": str(ROOT)}
    command = [
        sys.executable, "-m", "uvicorn", "starter.usage_ingress:app_from_env", "--factory",
        "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers),
        "--no-access-log", "--log-level", "warning",
    ]  # fmt: skip
    return subprocess.Popen(command, env=env, cwd=ROOT, stdout=log.open("wb"), stderr=subprocess.STDOUT)


async def send_all(url: str, key: str, plan: Plan, events: int, senders: int) -> dict[str, Any]:
    batches = (events + MAX_BATCH - 1) // MAX_BATCH
    rng = random.Random(11)
    # Encoded before the clock starts: the senders share the machine's cores with the ingress
    # and the database, and building JSON is their cost, not o2c's.
    bodies = [plan.batch(number, min(MAX_BATCH, events - number * MAX_BATCH), rng) for number in range(batches)]
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)
    del bodies
    latencies: list[float] = []
    answered: Counter[str] = Counter()
    failures: Counter[int] = Counter()
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}

    async def sender(http: httpx.AsyncClient) -> None:
        while not queue.empty():
            body = queue.get_nowait()
            while True:
                started = time.perf_counter()
                response = await http.post(USAGE_PATH, content=body, headers=headers)
                if response.status_code == 503:  # the database is busy: send it again, as a producer would
                    failures[503] += 1
                    await asyncio.sleep(float(response.headers.get("retry-after", "1")))
                    continue
                break
            latencies.append(time.perf_counter() - started)
            if response.status_code != 200:
                failures[response.status_code] += 1
                continue
            answer = response.json()
            for outcome in ("accepted", "duplicates", "refused"):
                answered[outcome] += answer[outcome]

    limits = httpx.Limits(max_connections=senders, max_keepalive_connections=senders)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as http:
        started = time.perf_counter()
        await asyncio.gather(*(sender(http) for _ in range(senders)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] if latencies else 0.0
    return {"elapsed": elapsed, "p99": p99, "answered": answered, "failures": failures, "batches": batches}


def ingest_phase(args: argparse.Namespace, logs: Path) -> dict[str, Any]:
    database_url = args.database_url
    upgrade(database_url)
    run = uuid.uuid4().hex[:8]
    customers, key = seed(database_url, run, args.customers)
    moment = datetime.now(UTC) - timedelta(minutes=1)
    period = f"{moment:%Y-%m}"
    plan = Plan(run=run, customers=customers, moment=moment)
    port = free_port()
    ingress = start_ingress(database_url, port, args.workers, logs / "usage-ingress.log")
    try:
        wait_for_http(f"http://127.0.0.1:{port}/healthz", ingress)
        cpu_before = cpu_seconds(ingress.pid)
        sent = asyncio.run(send_all(f"http://127.0.0.1:{port}", key, plan, args.events, args.senders))
        ingress_cpu = cpu_seconds(ingress.pid) - cpu_before
        peak_total, peak_worker = peak_rss_mib(ingress.pid)
    finally:
        ingress.terminate()
        try:
            ingress.wait(timeout=30)
        except subprocess.TimeoutExpired:
            ingress.kill()
    engine = engine_for(database_url)
    try:
        started = time.perf_counter()
        totals = period_totals(engine, period)
        aggregate_seconds = time.perf_counter() - started
    finally:
        engine.dispose()
    mine = set(customers)
    counted = {(t.customer, t.meter): t.quantity for t in totals if t.customer in mine}
    answered = sent["answered"]
    return {
        "events": args.events,
        "period": period,
        "batches": sent["batches"],
        "senders": args.senders,
        "workers": args.workers,
        "seconds": round(sent["elapsed"], 2),
        "events_per_second": round(args.events / sent["elapsed"]),
        "accepted_per_second": round(answered["accepted"] / sent["elapsed"]),
        "p99_batch_ms": round(sent["p99"] * 1000, 1),
        "ingress_cpu_ms_per_batch": round(ingress_cpu * 1000 / sent["batches"], 1),
        "peak_rss_mib": peak_total,
        "peak_rss_worker_mib": peak_worker,
        "accepted": answered["accepted"],
        "duplicates": answered["duplicates"],
        "refused": answered["refused"],
        "expected_accepted": plan.unique_valid,
        "expected_duplicates": plan.duplicates,
        "expected_refused": plan.invalid,
        "http_failures": dict(sent["failures"]),
        "totals_exact": counted == dict(plan.expected),
        "aggregate_seconds": round(aggregate_seconds, 3),
        "aggregate_rows": len(totals),
    }


def report(figures: dict[str, Any]) -> None:
    print(f"usage ingest: {figures['events']:,} events in {figures['seconds']} s "
          f"({figures['senders']} senders, {figures['workers']} ingress workers, batches of {MAX_BATCH})")  # fmt: skip
    print(f"  events/s (first request to last answer): {figures['events_per_second']:,}"
          f"  (accepted/s {figures['accepted_per_second']:,})")  # fmt: skip
    print(f"  p99 batch latency: {figures['p99_batch_ms']} ms")
    print(f"  ingress CPU per batch (user + system, all its processes): {figures['ingress_cpu_ms_per_batch']} ms")
    print(
        f"  peak RSS of the ingress: {figures['peak_rss_mib']} MiB in all, {figures['peak_rss_worker_mib']} MiB the largest process"
    )
    print(f"  accepted {figures['accepted']:,} (expected {figures['expected_accepted']:,}), "
          f"duplicates {figures['duplicates']:,} (expected {figures['expected_duplicates']:,}), "
          f"refused {figures['refused']:,} (expected {figures['expected_refused']:,})")  # fmt: skip
    print(f"  totals exact per customer and meter: {figures['totals_exact']}")
    print(
        f"  aggregating the period {figures['period']}: {figures['aggregate_seconds']} s ({figures['aggregate_rows']} totals)"
    )
    if figures["http_failures"]:
        print(f"  HTTP failures: {figures['http_failures']}")


# -- the review of many subscriptions' period end ----------------------------------------------

REVIEW_QUEUE = "bench-usage-review"
REVIEW_PERIOD = "2026-10"
REVIEW_HISTORY = (9800, 10100, 9900, 10200, 10000, 10050)  # six released months before it
SPIKE_EVERY = 20  # one subscription in 20 spikes 42 % above its median and waits for a person
START_CONCURRENCY = 50
REVIEW_PHASE_TIMEOUT = 1800.0


def review_world(systems: Any, number: int) -> Any:
    """Subscription `number`: its own customer (so totals and history are its own), one metered
    price, six released months of about 10,000 API calls, and the usage o2c counted in the period."""
    from tests.fakes import usd
    from workflows.usage import UsageReleaseInput

    customer = f"cus_r{number:05d}"
    subscription_id = f"sub_r{number:05d}"
    systems.billing.accounts[customer] = Account(
        id=customer,
        name=f"Customer {number}",
        email=f"billing+{number}@example.test",
        billing_address=Address(
            line1="1 Market St", city="San Francisco", region="CA", postal_code="94105", country="US"
        ),
    )
    systems.metering.subscribe(
        UsageCustomer(
            customer=customer,
            subscription_id=subscription_id,
            currency="USD",
            legal_entity="US01",
            prices=[MeteredPrice(meter="api_calls", price_id="price_api", item_id="si_api", unit_amount=usd("0.01"))],
        )
    )
    quantity = 14_200 if number % SPIKE_EVERY == SPIKE_EVERY - 1 else 9_900 + number % 300
    systems.usage.count(customer, REVIEW_PERIOD, "api_calls", quantity, events=quantity // 10)
    period = REVIEW_PERIOD
    for past in reversed(REVIEW_HISTORY):
        period = previous_period(period)
        subtotal = Money.of(Decimal(past) / 100, "USD")
        release = UsageRelease(
            workflow_id=f"usage-{subscription_id}-{period}",
            subscription_id=subscription_id,
            customer=customer,
            legal_entity="US01",
            period=period,
            invoice_id=f"in_{subscription_id}_{period}",
            currency="USD",
            quantities={"api_calls": past},
            subtotal=subtotal,
            credit=usd("0.00"),
            tax=subtotal.times(Decimal("0.10")),
            total=subtotal.times(Decimal("1.10")),
            released_at=period_end(period),
        )
        systems.usage.released[release.workflow_id] = release
    return UsageReleaseInput(
        subscription_id=subscription_id,
        customer=customer,
        period=REVIEW_PERIOD,
        legal_entity="US01",
        currency="USD",
        meters=[Meter(event_name="api_calls", display_name="API calls", unit="API calls")],
    )


def forget(systems: Any, number: int) -> None:
    """Drop a released subscription's records from the in-memory fakes. Real systems keep them,
    but not in the worker's memory: what the bench measures is the worker, so the stand-ins
    must not grow with every release either."""
    customer, subscription_id = f"cus_r{number:05d}", f"sub_r{number:05d}"
    prefix = f"usage-{subscription_id}-"
    invoices = {i for i, x in systems.billing.invoices.items() if x.account_id == customer}
    systems.billing.accounts.pop(customer, None)
    for i in invoices:
        systems.billing.invoices.pop(i, None)
        systems.tax.documents.pop(i, None)
        systems.metering.held.discard(i)
    systems.metering.customers.pop(subscription_id, None)
    for store, keep in (
        (systems.metering.events, lambda k, v: v.customer != customer),
        (systems.metering._lines, lambda k, v: v[0] not in invoices),
        (systems.metering._finalized, lambda k, v: v.id not in invoices),
        (systems.tax.documents, lambda k, v: not k.startswith(prefix)),
        (systems.erp.entries, lambda k, v: not k.startswith(prefix)),
        (systems.schedules.schedules, lambda k, v: not k.startswith(prefix)),
        (systems.notifications.outbox, lambda k, v: v.account_id != customer),
        (systems.usage.quantities, lambda k, v: k[0] != customer),
        (systems.usage.released, lambda k, v: v.customer != customer),
    ):
        for key in [k for k, v in store.items() if not keep(k, v)]:
            del store[key]
    systems.usage.closed = {x for x in systems.usage.closed if x[0] != customer}


async def forget_released(client: Any, systems: Any, forgotten: set[str]) -> None:
    """Forget every release the server says has completed since the last time (see forget)."""
    async for execution in client.list_workflows("O2cProcess = 'usage' AND O2cStatus = 'completed'"):
        if execution.id not in forgotten:
            forgotten.add(execution.id)
            forget(systems, int(execution.id.split("-")[1].removeprefix("sub_r")))
    systems.ledger.calls.clear()  # the call log only serves the tests' counts


async def review_counts(client: Any) -> Counter[str]:
    """The releases by o2c status, from the server's visibility (querying each workflow would
    pull it back into the worker's cache)."""
    counts: Counter[str] = Counter()
    for status in ("completed", "awaiting_approval", "needs_attention", "rolled_back", "failed", "rejected"):
        found = await client.count_workflows(f"O2cProcess = 'usage' AND O2cStatus = '{status}'")
        counts[status] = found.count
    return counts


# How many releases may complete before the bench drops their records from the fakes.
FORGET_EVERY = 200
DONE_OR_WAITING = "('completed', 'awaiting_approval', 'needs_attention', 'rolled_back', 'failed', 'rejected')"


async def reviewed(client: Any) -> int:
    found = await client.count_workflows(f"O2cProcess = 'usage' AND O2cStatus IN {DONE_OR_WAITING}")
    return int(found.count)


async def review_run(subscriptions: int, cache: int, in_flight: int) -> dict[str, Any]:
    from temporalio.contrib.pydantic import pydantic_data_converter
    from temporalio.testing import WorkflowEnvironment
    from temporalio.worker import Worker

    from activities.registry import all_activities
    from starter.binaries import dev_server_binary
    from starter.client import start_usage_release
    from tests.fakes import FakeSystems
    from workflows.kit.status import SEARCH_ATTRIBUTES
    from workflows.usage import UsageReleaseWorkflow

    print(f"starting the Temporal dev server ({dev_server_binary()})", flush=True)
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=dev_server_binary(),
        search_attributes=SEARCH_ATTRIBUTES,
        data_converter=pydantic_data_converter,
        ip="127.0.0.1",
        dev_server_extra_args=["--headless"],
    )
    systems = FakeSystems()
    forgotten: set[str] = set()
    held_expected = sum(1 for n in range(subscriptions) if n % SPIKE_EVERY == SPIKE_EVERY - 1)
    checkpoints = sorted({max(1, subscriptions // 4), max(1, subscriptions // 2), subscriptions})
    rows: list[dict[str, Any]] = []
    gate = asyncio.Semaphore(START_CONCURRENCY)

    async def start(release: Any) -> None:
        async with gate:
            await start_usage_release(env.client, release, task_queue=REVIEW_QUEUE)

    try:
        gc.collect()
        baseline = rss_mib()
        async with Worker(
            env.client,
            task_queue=REVIEW_QUEUE,
            workflows=[UsageReleaseWorkflow],
            activities=all_activities(**systems.ports()),
            max_cached_workflows=cache,
        ):
            started = 0
            counts: Counter[str] = Counter()
            first = time.perf_counter()
            for target in checkpoints:
                # At most `in_flight` releases between their start and their end or the review: as
                # the period close would pace them, and so that the cache holds every one of them.
                deadline = time.monotonic() + REVIEW_PHASE_TIMEOUT
                while time.monotonic() < deadline:
                    done = await reviewed(env.client)
                    if done - len(forgotten) >= FORGET_EVERY:
                        await forget_released(env.client, systems, forgotten)
                    if done >= target:
                        break
                    room = min(in_flight - (started - done), target - started)
                    if room > 0:
                        worlds = [review_world(systems, n) for n in range(started, started + room)]
                        await asyncio.gather(*(start(release) for release in worlds))
                        started += room
                    await asyncio.sleep(0.5)
                counts = await review_counts(env.client)
                elapsed = time.perf_counter() - first
                await forget_released(env.client, systems, forgotten)
                gc.collect()
                rows.append({"subscriptions": started, "rss_mib": round(rss_mib(), 1), "elapsed_s": round(elapsed, 1)})
                print(f"{started} reviewed, {dict(counts)}, worker RSS {rows[-1]['rss_mib']} MiB", flush=True)
    finally:
        await env.shutdown()
    seconds = rows[-1]["elapsed_s"]
    growth = (
        (rows[-1]["rss_mib"] - rows[0]["rss_mib"]) * 1024 / max(1, rows[-1]["subscriptions"] - rows[0]["subscriptions"])
    )
    return {
        "review_subscriptions": subscriptions,
        "review_cache": cache,
        "review_in_flight": in_flight,
        "review_seconds": seconds,
        "review_starts_per_second": round(subscriptions / seconds, 1) if seconds else None,
        "review_released": counts["completed"],
        "review_held": counts["awaiting_approval"],
        "review_held_expected": held_expected,
        "review_other": {k: v for k, v in counts.items() if k not in ("completed", "awaiting_approval") and v},
        "review_rss_before_worker_mib": round(baseline, 1),
        "review_rss_mib": [row["rss_mib"] for row in rows],
        "review_checkpoints": rows,
        "review_kib_per_subscription": round(growth, 2),
        "review_fake_invoices": len(systems.billing.invoices),
    }


def review_report(figures: dict[str, Any]) -> None:
    print(f"usage review: the period end of {figures['review_subscriptions']:,} metered subscriptions "
          f"(UsageReleaseWorkflow, worker max_cached_workflows={figures['review_cache']}, "
          f"at most {figures['review_in_flight']} in flight)")  # fmt: skip
    print(f"  first start to the last one released or waiting at the review: {figures['review_seconds']} s "
          f"({figures['review_starts_per_second']} subscriptions/s)")  # fmt: skip
    print(f"  released without a person {figures['review_released']:,}, held for review "
          f"{figures['review_held']:,} (expected {figures['review_held_expected']:,}), other {figures['review_other']}")  # fmt: skip
    print(f"  worker RSS before the worker {figures['review_rss_before_worker_mib']} MiB; at checkpoints:")
    for row in figures["review_checkpoints"]:
        print(f"    {row['subscriptions']:>8,} subscriptions  {row['rss_mib']:>8.1f} MiB  {row['elapsed_s']:>8.1f} s")
    print(f"  growth from the first checkpoint to the last: {figures['review_kib_per_subscription']} KiB per subscription "
          "(the fakes keep every invoice, event and release in memory too, so a little growth is theirs)")  # fmt: skip


def main(args: argparse.Namespace) -> None:
    """Each part measures and reports on its own; the last line merges their figures."""
    logs = Path(args.logs)
    logs.mkdir(parents=True, exist_ok=True)
    figures: dict[str, Any] = {"bench": "usage"}
    if args.events:
        ingest = ingest_phase(args, logs)
        report(ingest)
        figures.update(ingest)
    if args.review:
        review = asyncio.run(review_run(args.review, args.cache, args.in_flight))
        review_report(review)
        figures.update(review)
    print(json.dumps(figures, sort_keys=True))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="0: no ingest")
    parser.add_argument(
        "--review", type=int, nargs="?", const=10_000, default=0, help="subscriptions whose period end is reviewed"
    )
    parser.add_argument("--cache", type=int, default=100, help="the review worker's max_cached_workflows")
    parser.add_argument("--in-flight", type=int, default=50, help="releases between their start and the review at once")
    parser.add_argument("--senders", type=int, default=4, help="concurrent senders")
    parser.add_argument("--workers", type=int, default=2, help="uvicorn worker processes of the ingress")
    parser.add_argument("--customers", type=int, default=50)
    parser.add_argument("--database-url", default=os.environ.get("O2C_DATABASE_URL", ""))
    parser.add_argument("--logs", default=os.path.join(tempfile.gettempdir(), "o2c-bench-usage"))
    parser.add_argument("--json", action="store_true", help="the JSON object is the last line in any case")
    parsed = parser.parse_args()
    if parsed.events and not parsed.database_url.startswith(("postgresql://", "postgres://", "postgresql+psycopg://")):
        raise SystemExit("give a PostgreSQL database: --database-url or O2C_DATABASE_URL")
    main(parsed)
