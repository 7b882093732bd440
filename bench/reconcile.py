"""Reconciling 10,000 and 100,000 invoices, against the floor no orchestration can beat.

For each size: seeds a period in the sandbox (one legal entity of its own, one break of every
kind), starts a fresh `o2c worker` process (real HTTP adapters, o2c's tables in the same
database as the sandbox), runs ReconciliationWorkflow on the Temporal dev server until it has
read, matched and healed everything (it then waits for an operator: the bench answers skip),
and prints records per second, the worker's peak memory, and the ratio of its time to one SQL
statement that full-outer-joins the same three systems' documents in the same database
(see join_seconds); the last line is the same figures as one JSON object. Never asserts.

    .venv/bin/python bench/reconcile.py [--sizes 10000 100000] [--database-url URL]

The sandbox runs in its own process too, so the worker's memory is its own. SQLite (a scratch
file) by default; give a PostgreSQL URL to measure there.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from adapters.storage.db import engine_for, upgrade
from bench.measure import free_port, peak_rss_mib, wait_for_http
from canonical.models import LegalEntity
from sandbox import SandboxControl
from sandbox.store import documents
from starter import client as o2c
from starter.binaries import dev_server_binary
from workflows.kit.attention import OperatorAction
from workflows.kit.status import SEARCH_ATTRIBUTES, Status

PERIOD = "2026-10"
BREAKS = (
    "missing_in_erp",
    "missing_in_billing",
    "duplicate_posting",
    "amount_mismatch",
    "tax_mismatch",
    "currency_mismatch",
    "status_mismatch",
)
RUN_TIMEOUT = 3600.0  # seconds: no reconciliation here runs longer


def start_process(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, *args], env={**os.environ, **env}, cwd=ROOT, stdout=log.open("ab"), stderr=subprocess.STDOUT
    )


def join_seconds(database_url: str, entity: LegalEntity) -> tuple[float, int, str]:
    """One SQL statement that lines up billing's invoices, AvaTax's documents and NetSuite's
    entries of the entity by invoice id, every row fetched to the client: the floor.

    On PostgreSQL it is a FULL OUTER JOIN (hash joins). SQLite has no hash join and runs a
    FULL JOIN of unindexed JSON keys as nested loops (quadratic: hours at 100,000), so there
    the floor is the same full outer match written as UNION ALL ... GROUP BY invoice, which
    SQLite sorts in O(n log n)."""

    def side(system: str, type_: str, scope: str, key: str, amount: str):
        return sa.select(
            documents.c.data[key].as_string().label("invoice"), documents.c.data[amount].as_string().label("amount")
        ).where(documents.c.system == system, documents.c.type == type_, documents.c.scope == scope)

    billing = side("stripe", "invoice", entity.billing_account, "id", "total")
    tax = side("avatax", "transaction", entity.company_code, "code", "totalTax")
    erp = side("netsuite", "journalEntry", entity.erp_subsidiary, "custbody_o2c_invoice", "externalId")
    engine = engine_for(database_url)
    if engine.dialect.name == "postgresql":
        b, t, e = billing.subquery(), tax.subquery(), erp.subquery()
        key = sa.func.coalesce(b.c.invoice, e.c.invoice)
        query = sa.select(key, b.c.amount, t.c.amount, e.c.amount).select_from(
            b.join(e, b.c.invoice == e.c.invoice, full=True).join(t, key == t.c.invoice, full=True)
        )
        form = "FULL OUTER JOIN"
    else:

        def column(select, position: int):
            amounts = [sa.null(), sa.null(), sa.null()]
            amounts[position] = select.selected_columns.amount
            return select.with_only_columns(
                select.selected_columns.invoice, *(a.label(f"a{i}") for i, a in enumerate(amounts))
            )

        matched = sa.union_all(column(billing, 0), column(tax, 1), column(erp, 2)).subquery()
        query = sa.select(
            matched.c.invoice, sa.func.max(matched.c.a0), sa.func.max(matched.c.a1), sa.func.max(matched.c.a2)
        ).group_by(matched.c.invoice)
        form = "UNION ALL + GROUP BY"
    try:
        with engine.connect() as conn:
            started = time.perf_counter()
            rows = sum(1 for _ in conn.execution_options(stream_results=True).execute(query))
            return time.perf_counter() - started, rows, form
    finally:
        engine.dispose()


async def reconcile(env: WorkflowEnvironment, entity: LegalEntity, task_queue: str) -> tuple[float, dict]:
    started = time.perf_counter()
    handle = await o2c.start_reconciliation(
        env.client, legal_entity=entity.code, period=PERIOD, task_queue=task_queue, legal_entities=[entity]
    )
    state = await o2c.wait_for_status(env.client, handle.id, Status.NEEDS_ATTENTION, timeout=RUN_TIMEOUT)
    elapsed = time.perf_counter() - started
    await o2c.resolve(env.client, handle.id, OperatorAction.SKIP, operator="bench")
    await handle.result()
    state["history_events"] = len((await handle.fetch_history()).events)
    # Runs of the workflow (it continues as new between batches) and its batch children.
    state["runs"] = len([w async for w in env.client.list_workflows(f'WorkflowId = "{handle.id}"')])
    state["children"] = len(
        [
            w
            async for w in env.client.list_workflows(
                f'WorkflowType = "ReconciliationBatchWorkflow" AND WorkflowId STARTS_WITH "{handle.id}-"'
            )
        ]
    )
    return elapsed, state


async def main(sizes: list[int], database_url: str, logs: Path) -> None:
    upgrade(database_url)
    sandbox_port = free_port()
    sandbox_url = f"http://127.0.0.1:{sandbox_port}"
    sandbox = start_process(
        ["-m", "sandbox.server", "--port", str(sandbox_port), "--database-url", database_url, "--log-level", "warning"],
        {},
        logs / "sandbox.log",
    )
    print(f"dev server {dev_server_binary()}; sandbox and o2c tables in {database_url}; logs in {logs}", flush=True)
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=dev_server_binary(),
        search_attributes=SEARCH_ATTRIBUTES,
        data_converter=pydantic_data_converter,
        ip="127.0.0.1",
        dev_server_extra_args=["--headless"],
    )
    rows = []
    try:
        wait_for_http(f"{sandbox_url}/_sandbox/health", sandbox)
        control = SandboxControl(sandbox_url)
        for size in sizes:
            key = secrets.token_hex(3)
            entity = LegalEntity(
                code=f"B{key}",
                company_code=f"B{key}",
                functional_currency="USD",
                erp_subsidiary=str(800000 + int(key, 16) % 100000),
                billing_account=f"acct_b{key}",
            )
            started = time.perf_counter()
            control.seed_period(
                tag=entity.code,
                period=PERIOD,
                invoices=size,
                stripe_account=entity.billing_account,
                company_code=entity.company_code,
                subsidiary=entity.erp_subsidiary,
                breaks={kind: 1 for kind in BREAKS},
                timeout=RUN_TIMEOUT,
            )
            seeded = time.perf_counter() - started
            print(f"{size} invoices seeded in {seeded:.1f} s", flush=True)
            task_queue = f"bench-recon-{key}"
            worker = start_process(
                ["-m", "worker"],
                {
                    "O2C_TEMPORAL_ADDRESS": env.client.service_client.config.target_host,
                    "O2C_TASK_QUEUE": task_queue,
                    "O2C_SANDBOX_URL": sandbox_url,
                    "O2C_DATABASE_URL": database_url,
                    "O2C_HTTP_TIMEOUT_SECONDS": "120",
                },
                logs / f"worker-{size}.log",
            )
            try:
                elapsed, state = await reconcile(env, entity, task_queue)
                peak = peak_rss_mib(worker.pid)
            finally:
                worker.terminate()
                worker.wait(30)
            floor, joined, form = join_seconds(database_url, entity)
            read = sum(state["read"].values())
            rows.append(
                {
                    "invoices": size,
                    "seeded_s": seeded,
                    "records_read": read,
                    "seconds": elapsed,
                    "records_per_s": read / elapsed,
                    "peak_rss_mib": peak,
                    "sql_floor": form,
                    "sql_floor_s": floor,
                    "sql_floor_rows": joined,
                    "o2c_per_floor": elapsed / floor,
                    "batches": state["batches"],
                    "breaks": sum(state["found"].values()),
                    "history_events": state["history_events"],
                    "runs": state["runs"],
                    "children": state["children"],
                }
            )
            print(
                f"{size} invoices reconciled in {elapsed:.1f} s; worker peak RSS {peak:.0f} MiB; "
                f"the {form} took {floor:.2f} s",
                flush=True,
            )
        control.close()
    finally:
        await env.shutdown()
        sandbox.terminate()
        sandbox.wait(30)

    print()
    print(
        f"{'invoices':>9} {'records read':>12} {'seconds':>8} {'records/s':>9} {'peak RSS MiB':>12} "
        f"{'join s':>7} {'join rows':>9} {'recon/join':>10} {'batches':>7} {'breaks':>6} {'events':>6} {'runs':>4} "
        f"{'children':>8}"
    )
    for r in rows:
        print(
            f"{r['invoices']:>9} {r['records_read']:>12} {r['seconds']:>8.1f} {r['records_per_s']:>9.0f} "
            f"{r['peak_rss_mib']:>12.0f} {r['sql_floor_s']:>7.2f} {r['sql_floor_rows']:>9} {r['o2c_per_floor']:>9.0f}x "
            f"{r['batches']:>7} {r['breaks']:>6} {r['history_events']:>6} {r['runs']:>4} {r['children']:>8}"
        )
    # How time and memory grow from the first size to the last (none with a single size).
    time_growth = memory_growth = None
    if len(rows) > 1:
        time_growth = rows[-1]["seconds"] / rows[0]["seconds"]
        memory_growth = rows[-1]["peak_rss_mib"] / rows[0]["peak_rss_mib"]
        print(
            f"\nfrom {rows[0]['invoices']} to {rows[-1]['invoices']} invoices: time x{time_growth:.1f}, "
            f"worker peak memory x{memory_growth:.2f}"
        )
    print(
        "records read = billing invoices + tax documents + ERP entries + contracts' revenue; events = the "
        "history of the workflow's last run; runs = its runs (it continues as new between batches); children = "
        "its batch workflows, each with a history of its own."
    )
    print(
        json.dumps(
            {"bench": "reconcile", "sizes": rows, "time_growth": time_growth, "peak_rss_growth": memory_growth},
            sort_keys=True,
        )
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--database-url", help="default: a scratch SQLite file")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="o2c-bench-"))
    asyncio.run(main(args.sizes, args.database_url or f"sqlite:///{scratch / 'bench.sqlite'}", scratch))
    # The figures are out; leave before interpreter teardown, where Temporal's native runtime
    # can abort the process (as the o2c CLI does).
    sys.stdout.flush()
    os._exit(0)
