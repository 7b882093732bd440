"""Worker memory with thousands of dunning and renewal workflows parked on their timers.

Starts the real Temporal dev server (loopback only) and one in-process worker with a
bounded workflow cache, then parks K workflows, half dunnings and half renewals, with the
real activities over the in-memory fakes of tests/fakes.py. A dunning starts through the
same function the webhook ingress uses (deliver_payment_event with a failed payment), reads
its invoice, opens its case and parks on a timer days away; a renewal starts through
start_renewal, is priced, ends the current term at its boundary and parks until the new
term, months away. At checkpoints (K/4, K/2, K) it prints the worker's RSS: with the cache
bounded, RSS should track the cache size, not the number of parked workflows. The last line
is the same figures as one JSON object.

    .venv/bin/python bench/parked.py [--k 2000] [--cache 100]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import sys
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from temporalio.api.enums.v1 import EventType
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.registry import all_activities
from bench.measure import rss_mib
from canonical.models import Account, Address, Invoice, PaymentEvent, PaymentEventKind, Subscription
from canonical.renewal import RenewalRequest, RenewedLine
from starter.binaries import dev_server_binary
from starter.client import deliver_payment_event, start_renewal
from tests.fakes import FakeSystems, seat_line, usd
from workflows.dunning import DunningWorkflow, dunning_workflow_id
from workflows.kit.status import SEARCH_ATTRIBUTES
from workflows.renewal import RenewalWorkflow

TASK_QUEUE = "bench-parked"
START_CONCURRENCY = 50
PHASE_TIMEOUT = 900.0


def seeded_systems() -> FakeSystems:
    s = FakeSystems()
    s.billing.accounts["cus_acme"] = Account(
        id="cus_acme",
        name="Acme Corp",
        email="billing@acme.test",
        billing_address=Address(
            line1="1 Market St", city="San Francisco", region="CA", postal_code="94105", country="US"
        ),
    )
    return s


def new_invoice(systems: FakeSystems) -> str:
    invoice_id = f"in_{uuid.uuid4().hex[:12]}"
    systems.billing.invoices[invoice_id] = Invoice(
        id=invoice_id,
        account_id="cus_acme",
        subscription_id="sub_acme",
        status="open",
        currency="USD",
        total=usd("500.00"),
        amount_paid=usd("0.00"),
        amount_remaining=usd("500.00"),
    )
    return invoice_id


async def start_dunnings(env: WorkflowEnvironment, systems: FakeSystems, count: int) -> list[str]:
    gate = asyncio.Semaphore(START_CONCURRENCY)

    async def one() -> str:
        invoice_id = new_invoice(systems)
        event = PaymentEvent(
            event_id=f"evt_{invoice_id}",
            kind=PaymentEventKind.PAYMENT_FAILED,
            occurred_at=datetime.now(UTC),
            invoice_id=invoice_id,
            account_id="cus_acme",
            subscription_id="sub_acme",
            decline_code="insufficient_funds",
        )
        async with gate:
            await deliver_payment_event(env.client, event, task_queue=TASK_QUEUE)
        return dunning_workflow_id(invoice_id)

    return await asyncio.gather(*(one() for _ in range(count)))


async def start_renewals(env: WorkflowEnvironment, systems: FakeSystems, count: int) -> list[str]:
    """Renewals of subscriptions whose term ends in 120 days: they park until then."""
    gate = asyncio.Semaphore(START_CONCURRENCY)
    term_end = date.today() + timedelta(days=120)

    async def one() -> str:
        key = uuid.uuid4().hex[:12]
        systems.billing.subscriptions[f"sub_{key}"] = Subscription(
            id=f"sub_{key}",
            account_id="cus_acme",
            contract_id=f"C-{key}",
            currency="USD",
            status="active",
            lines=[seat_line(10)],
            current_period_start=term_end - timedelta(days=30),
            current_period_end=term_end,
            term_start=term_end - timedelta(days=365),
            term_end=term_end,
        )
        request = RenewalRequest(
            contract_id=f"C-{key}",
            subscription_id=f"sub_{key}",
            account_id="cus_acme",
            term="next",
            new_term_start=term_end,
            new_term_end=term_end.replace(year=term_end.year + 1),
            uplift_percent=Decimal(3),
            lines=[RenewedLine(product="seats", quantity=12)],
            requested_by="sam.sales",
        )
        async with gate:
            handle = await start_renewal(env.client, request, billing=systems.billing, task_queue=TASK_QUEUE)
        return handle.id

    return await asyncio.gather(*(one() for _ in range(count)))


async def is_parked(env: WorkflowEnvironment, workflow_id: str) -> bool:
    """A timer outstanding, and nothing after the last completed workflow task but timers."""
    history = await env.client.get_workflow_handle(workflow_id).fetch_history()
    events = history.events
    started = {e.event_id for e in events if e.event_type == EventType.EVENT_TYPE_TIMER_STARTED}
    done = {
        e.timer_fired_event_attributes.started_event_id
        for e in events
        if e.event_type == EventType.EVENT_TYPE_TIMER_FIRED
    }
    done |= {
        e.timer_canceled_event_attributes.started_event_id
        for e in events
        if e.event_type == EventType.EVENT_TYPE_TIMER_CANCELED
    }
    tail = [e.event_type for e in events if e.event_type != EventType.EVENT_TYPE_TIMER_STARTED][-1:]
    return bool(started - done) and tail == [EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED]


async def until_parked(env: WorkflowEnvironment, workflow_ids: list[str]) -> None:
    """Every given workflow parked (checked from the server's histories, not by querying the
    workflows, which would pull them back into the worker's cache)."""
    pending = list(workflow_ids)
    while pending:
        gate = asyncio.Semaphore(START_CONCURRENCY)

        async def check(i: str) -> bool:
            async with gate:
                return await is_parked(env, i)

        flags = await asyncio.gather(*(check(i) for i in pending))
        pending = [i for i, parked in zip(pending, flags, strict=False) if not parked]
        if pending:
            await asyncio.sleep(2.0)  # the checks share the worker's CPU: poll gently


async def main(k: int, cache: int) -> None:
    print(f"starting the Temporal dev server ({dev_server_binary()})", flush=True)
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=dev_server_binary(),
        search_attributes=SEARCH_ATTRIBUTES,
        data_converter=pydantic_data_converter,
        ip="127.0.0.1",
        dev_server_extra_args=["--headless"],
    )
    systems = seeded_systems()
    checkpoints = sorted({max(1, k // 4), max(1, k // 2), k})
    rows = []
    try:
        gc.collect()
        baseline = rss_mib()
        async with Worker(
            env.client,
            task_queue=TASK_QUEUE,
            workflows=[DunningWorkflow, RenewalWorkflow],
            activities=all_activities(**systems.ports()),
            max_cached_workflows=cache,
        ):
            started: list[str] = []
            t0 = time.perf_counter()
            for target in checkpoints:
                wanted = target - len(started)
                batch = await asyncio.wait_for(
                    asyncio.gather(
                        start_dunnings(env, systems, wanted - wanted // 2), start_renewals(env, systems, wanted // 2)
                    ),
                    PHASE_TIMEOUT,
                )
                batch = [*batch[0], *batch[1]]
                await asyncio.wait_for(until_parked(env, batch), PHASE_TIMEOUT)
                started += batch
                gc.collect()
                rows.append((len(started), rss_mib(), time.perf_counter() - t0))
                print(f"{len(started)} parked, worker RSS {rows[-1][1]:.1f} MiB", flush=True)
    finally:
        await env.shutdown()

    checkpoints = [
        {"parked": count, "rss_mib": rss, "vs_first_mib": rss - rows[0][1], "elapsed_s": elapsed}
        for count, rss, elapsed in rows
    ]
    first, last = checkpoints[0], checkpoints[-1]
    per = (last["rss_mib"] - first["rss_mib"]) * 1024 / max(1, last["parked"] - first["parked"])
    invoices, ledger_calls = len(systems.billing.invoices), len(systems.ledger.calls)

    print()
    print(
        f"DunningWorkflow and RenewalWorkflow (half each) parked on timers; worker max_cached_workflows={cache}; "
        f"RSS before the worker started {baseline:.1f} MiB"
    )
    print(f"{'parked workflows':>16}  {'worker RSS MiB':>14}  {'vs first':>8}  {'elapsed s':>9}")
    for c in checkpoints:
        print(f"{c['parked']:>16}  {c['rss_mib']:>14.1f}  {c['vs_first_mib']:>+8.1f}  {c['elapsed_s']:>9.1f}")
    print(
        f"growth from {first['parked']} to {last['parked']} parked: {per:.2f} KiB per extra parked workflow "
        "(the fakes keep every invoice and call in memory too, so a little growth is theirs)"
    )
    print(f"fake billing holds {invoices} invoices; ledger {ledger_calls} calls")
    print(
        json.dumps(
            {
                "bench": "parked",
                "k": k,
                "cache": cache,
                "rss_before_worker_mib": baseline,
                "checkpoints": checkpoints,
                "kib_per_parked_workflow": per,
                "fake_invoices": invoices,
                "fake_ledger_calls": ledger_calls,
            },
            sort_keys=True,
        )
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", type=int, default=2000, help="workflows to park, half dunnings, half renewals")
    parser.add_argument("--cache", type=int, default=100, help="worker max_cached_workflows")
    args = parser.parse_args()
    asyncio.run(main(args.k, args.cache))
