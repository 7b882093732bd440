"""What o2c's amendment saga costs on top of a bare Temporal workflow.

Runs the real Temporal dev server (loopback only) and one in-process worker that hosts
both o2c's AmendmentWorkflow (real activities over the in-memory fakes of tests/fakes.py)
and a bare workflow with as many no-op activities as a happy-path amendment schedules.
Prints latency, throughput, worker CPU, history events, actions and a cost estimate,
each with the o2c/bare ratio, and as its last line the same figures as one JSON object.
Never asserts timings.

    .venv/bin/python bench/overhead.py [--n 50]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import sys
import time
import urllib.request
import uuid
from collections import Counter
from datetime import date, timedelta

from temporalio import activity, workflow

# The sandbox re-imports this module to validate BareWorkflow: plain string work only here.
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.measure import free_port

with workflow.unsafe.imports_passed_through():
    from temporalio.api.enums.v1 import EventType
    from temporalio.common import SearchAttributePair, TypedSearchAttributes
    from temporalio.contrib.pydantic import pydantic_data_converter
    from temporalio.testing import WorkflowEnvironment
    from temporalio.worker import Worker

    from activities.registry import all_activities
    from canonical.models import Account, Address, AmendedLine, AmendmentRequest, Subscription
    from starter.binaries import dev_server_binary
    from tests.fakes import FakeSystems, seat_line
    from workflows.amendment import AmendmentInput, AmendmentResult, AmendmentWorkflow
    from workflows.kit.status import CONTRACT, CUSTOMER, PROCESS, SEARCH_ATTRIBUTES, STATUS, Status

# ASSUMPTION — check it: Temporal Cloud's list price per million actions. Cloud pricing is
# tiered and changes; $50 per million is the entry list rate quoted here as a round figure.
PRICE_PER_MILLION_ACTIONS_USD = 50.0
TASK_QUEUE = "bench-overhead"
PHASE_TIMEOUT = 300.0  # seconds: no phase runs longer than this


# -- the bare workflow ----------------------------------------------------------------------


@activity.defn(name="bench_noop")
async def noop(step: int) -> int:
    return step


@workflow.defn(name="BareWorkflow", sandboxed=True)
class BareWorkflow:
    @workflow.run
    async def run(self, activities: int) -> int:
        for i in range(activities):
            await workflow.execute_activity(noop, i, start_to_close_timeout=timedelta(seconds=30))
        return activities


# -- helpers ----------------------------------------------------------------------------------


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


def fresh_amendment(systems: FakeSystems) -> AmendmentRequest:
    """A new amendment id on its own freshly seeded subscription (10 seats → 12), so every
    run prorates, invoices and posts exactly like the first one."""
    key = uuid.uuid4().hex[:10]
    sub_id = f"sub_{key}"
    systems.billing.subscriptions[sub_id] = Subscription(
        id=sub_id,
        account_id="cus_acme",
        contract_id="C-100",
        currency="USD",
        status="active",
        lines=[seat_line(10)],
        current_period_start=date(2026, 11, 1),
        current_period_end=date(2026, 12, 1),
        term_start=date(2026, 1, 1),
        term_end=date(2027, 1, 1),
    )
    return AmendmentRequest(
        amendment_id=f"A-{key}",
        contract_id="C-100",
        subscription_id=sub_id,
        account_id="cus_acme",
        currency="USD",
        effective_date=date(2026, 11, 16),
        lines=[AmendedLine(product="seats", quantity=12, unit_price="50.00", discount_percent="0")],
        requested_by="sam.sales",
        reason="benchmark: customer added seats",
    )


class Kind:
    def __init__(self, env: WorkflowEnvironment, systems: FakeSystems, activities: int = 0):
        self.env, self.systems, self.activities = env, systems, activities

    async def start(self):
        raise NotImplementedError


class Amendment(Kind):
    name = "o2c amendment"

    async def start(self):
        request = fresh_amendment(self.systems)
        # As o2c's starter does: the search attributes an operator filters on come with the start.
        return await self.env.client.start_workflow(
            AmendmentWorkflow.run,
            AmendmentInput(request=request),
            id=f"amendment-{request.amendment_id}",
            task_queue=TASK_QUEUE,
            result_type=AmendmentResult,
            search_attributes=TypedSearchAttributes(
                [
                    SearchAttributePair(PROCESS, "amendment"),
                    SearchAttributePair(CUSTOMER, request.account_id),
                    SearchAttributePair(CONTRACT, request.contract_id),
                    SearchAttributePair(STATUS, "running"),
                ]
            ),
        )

    @staticmethod
    def check(result) -> None:
        if result.status != Status.COMPLETED:
            raise RuntimeError(f"amendment did not complete: {result.status}: {result.message}")


class Bare(Kind):
    name = "bare workflow"

    async def start(self):
        return await self.env.client.start_workflow(
            BareWorkflow.run,
            self.activities,
            id=f"bare-{uuid.uuid4().hex[:10]}",
            task_queue=TASK_QUEUE,
            result_type=int,
        )

    @staticmethod
    def check(result) -> None:
        pass


async def one(kind: Kind):
    handle = await kind.start()
    kind.check(await handle.result())
    return handle


async def latency(kind: Kind, n: int) -> tuple[list[float], float, list]:
    """n runs one at a time: seconds from start request to result; worker CPU-seconds."""
    times, handles = [], []
    cpu = time.process_time()
    for _ in range(n):
        t = time.perf_counter()
        handles.append(await one(kind))
        times.append(time.perf_counter() - t)
    return times, time.process_time() - cpu, handles


async def throughput(kind: Kind, n: int) -> tuple[float, float]:
    """n started at once; processes per second from the first start to the last result."""
    cpu = time.process_time()
    t = time.perf_counter()
    await asyncio.gather(*(one(kind) for _ in range(n)))
    return n / (time.perf_counter() - t), time.process_time() - cpu


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * p
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


ACTION_EVENTS = {  # history events that Temporal Cloud bills as an action (an estimate)
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED,
    EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED,
    EventType.EVENT_TYPE_TIMER_STARTED,
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED,
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED,
    EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES,
    EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED,
    EventType.EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED,
    EventType.EVENT_TYPE_MARKER_RECORDED,
    EventType.EVENT_TYPE_WORKFLOW_PROPERTIES_MODIFIED,
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW,
}


async def history_figures(handles: list) -> tuple[float, float, Counter]:
    events, actions, kinds = [], [], Counter()
    for h in handles:
        history = await h.fetch_history()
        events.append(len(history.events))
        billed = [e.event_type for e in history.events if e.event_type in ACTION_EVENTS]
        actions.append(len(billed))
        kinds.update(EventType.Name(t).removeprefix("EVENT_TYPE_") for t in billed)
    return statistics.mean(events), statistics.mean(actions), kinds


def scrape_actions(url: str) -> Counter | None:
    """The dev server's `action` counter for the default namespace, by action_type, or None
    when the endpoint or the metric is missing (system-namespace actions are left out)."""
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            text = r.read().decode()
    except OSError:
        return None
    counts, seen = Counter(), False
    for line in text.splitlines():
        if not (line.startswith("action{") or line.startswith("action ")):
            continue
        seen = True
        labels = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}", 1)[0]))
        if labels.get("namespace", "default") != "default":
            continue
        counts[labels.get("action_type", "?")] += float(line.rsplit(" ", 1)[1])
    return counts if seen else None


async def scrape_settled(url: str) -> Counter | None:
    await asyncio.sleep(1.0)  # let the server finish counting what just completed
    return scrape_actions(url)


async def phase(coro, what: str):
    try:
        return await asyncio.wait_for(coro, PHASE_TIMEOUT)
    except TimeoutError:
        raise SystemExit(f"{what} took longer than {PHASE_TIMEOUT:.0f}s; aborting the benchmark") from None


def quotient(a: float, b: float) -> float | None:
    return a / b if b else None


def ratio(a: float, b: float) -> str:
    q = quotient(a, b)
    return f"{q:.2f}x" if q is not None else "n/a"


def table(rows: list[tuple[str, str, str, str]]) -> str:
    header = ("measure", "o2c amendment", "bare workflow", "o2c / bare")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(4)]

    def line(r):
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=False)))

    return "\n".join([line(header), line(tuple("-" * w for w in widths)), *map(line, rows)])


# -- the run ------------------------------------------------------------------------------------


async def main(n: int, concurrency: int, warmup: int) -> None:
    metrics_port = free_port()
    metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
    print(f"starting the Temporal dev server ({dev_server_binary()}), metrics on {metrics_url}", flush=True)
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=dev_server_binary(),
        search_attributes=SEARCH_ATTRIBUTES,
        data_converter=pydantic_data_converter,
        ip="127.0.0.1",
        dev_server_extra_args=["--metrics-port", str(metrics_port), "--headless"],
    )
    systems = seeded_systems()
    try:
        async with Worker(
            env.client,
            task_queue=TASK_QUEUE,
            workflows=[AmendmentWorkflow, BareWorkflow],
            activities=[*all_activities(**systems.ports()), noop],
        ):
            amendment, bare = Amendment(env, systems), Bare(env, systems)

            # Count what a happy-path amendment schedules, and give the bare workflow as many.
            probe = await phase(one(amendment), "the probe amendment")
            history = await probe.fetch_history()
            scheduled = sum(e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED for e in history.events)
            bare.activities = scheduled
            print(f"a happy-path amendment schedules {scheduled} activities; the bare workflow runs {scheduled} no-ops")

            for _ in range(warmup):
                await phase(one(amendment), "warm-up")
                await phase(one(bare), "warm-up")

            results = {}
            for kind in (amendment, bare):
                before = await scrape_settled(metrics_url)
                times, cpu, handles = await phase(latency(kind, n), f"{kind.name} latency")
                after = await scrape_settled(metrics_url)
                print(f"{kind.name}: {n} sequential runs done", flush=True)
                tput, tcpu = await phase(throughput(kind, concurrency), f"{kind.name} throughput")
                print(f"{kind.name}: {concurrency} concurrent runs done", flush=True)
                events, actions, kinds = await history_figures(handles)
                delta = after - before if before is not None and after is not None else None
                metric = sum(delta.values()) / n if delta is not None else None
                results[kind.name] = dict(
                    p50=percentile(times, 0.50) * 1000,
                    p95=percentile(times, 0.95) * 1000,
                    tput=tput,
                    cpu=cpu / n,
                    tcpu=tcpu / concurrency,
                    events=events,
                    actions=actions,
                    metric=metric,
                    kinds=kinds,
                    delta=delta,
                )
    finally:
        await env.shutdown()

    a, b = results[amendment.name], results[bare.name]
    billed = "metric" if a["metric"] is not None and b["metric"] is not None else "actions"

    def cost(r):
        return r[billed] * PRICE_PER_MILLION_ACTIONS_USD

    # (label, JSON key, o2c figure, bare figure, format): the table and the JSON line both come from these.
    measures = [
        ("latency p50, ms (one at a time)", "latency_p50_ms", a["p50"], b["p50"], ".1f"),
        ("latency p95, ms (one at a time)", "latency_p95_ms", a["p95"], b["p95"], ".1f"),
        (f"throughput, processes/s ({concurrency} at once)", "throughput_per_s", a["tput"], b["tput"], ".1f"),
        ("worker CPU-s per process (sequential)", "cpu_s_sequential", a["cpu"], b["cpu"], ".4f"),
        ("worker CPU-s per process (saturated)", "cpu_s_saturated", a["tcpu"], b["tcpu"], ".4f"),
        ("history events per process", "history_events", a["events"], b["events"], ".1f"),
        ("actions per process (history estimate)", "actions_history", a["actions"], b["actions"], ".1f"),
    ]
    if billed == "metric":
        measures.append(
            ("actions per process (server `action` metric)", "actions_metric", a["metric"], b["metric"], ".1f")
        )
    measures.append(
        (
            f"USD per million processes at ${PRICE_PER_MILLION_ACTIONS_USD:.0f}/M actions",
            "usd_per_million_processes",
            cost(a),
            cost(b),
            ",.0f",
        )
    )
    rows = [(label, format(x, spec), format(y, spec), ratio(x, y)) for label, _, x, y, spec in measures]

    print()
    print(
        f"n={n} sequential, {concurrency} concurrent, {warmup} warm-up each; one worker in this process, "
        f"dev server on loopback"
    )
    print(table(rows))
    print()
    # Actions per run by kind: from the histories, and from the server's metric when it has one.
    sides = {"o2c": (a, "amendment"), "bare": (b, "bare run")}
    history_kinds = {side: {k.lower(): v / n for k, v in sorted(r["kinds"].items())} for side, (r, _) in sides.items()}
    metric_kinds = {
        side: {k.removeprefix("grpc_"): v / n for k, v in sorted(r["delta"].items())}
        for side, (r, _) in sides.items()
        if r["delta"]
    }
    for side, (_, label) in sides.items():
        print(
            f"actions per {label} (history estimate): "
            + ", ".join(f"{k} {v:g}" for k, v in history_kinds[side].items())
        )
    for side, (_, label) in sides.items():
        if side in metric_kinds:
            print(
                f"actions per {label} (server metric, by action_type): "
                + ", ".join(f"{k} {v:g}" for k, v in metric_kinds[side].items())
            )
    if billed == "metric":
        print("cost uses the dev server's `action` metric (delta over the sequential phase / n).")
    else:
        print(
            "the dev server exposed no `action` metric; actions and cost are estimated from the histories "
            "(start + activities + timers + signals/updates + search-attribute upserts + markers + children)."
        )
    print(
        f"price is an ASSUMPTION (${PRICE_PER_MILLION_ACTIONS_USD:.0f} per million actions): check Temporal "
        "Cloud's current list price and your tier. Worker CPU includes this process's client calls."
    )
    print(
        json.dumps(
            {
                "bench": "overhead",
                "n": n,
                "concurrency": concurrency,
                "warmup": warmup,
                "activities": scheduled,
                "price_per_million_actions_usd": PRICE_PER_MILLION_ACTIONS_USD,
                "cost_from": "server action metric" if billed == "metric" else "history estimate",
                **{key: {"o2c": x, "bare": y, "o2c_per_bare": quotient(x, y)} for _, key, x, y, _ in measures},
                "actions_by_kind_history": history_kinds,
                "actions_by_type_metric": metric_kinds,
            },
            sort_keys=True,
        )
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50, help="sequential runs per workflow (latency, CPU, history)")
    parser.add_argument("--concurrency", type=int, default=None, help="concurrent starts (default: n)")
    parser.add_argument("--warmup", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(main(args.n, args.concurrency or args.n, args.warmup))
