"""Reconciling 10,000 and 100,000 invoices, against the floor no orchestration can beat, for
an entity on each ERP.

For each size and ERP: seeds a period in the sandbox (one legal entity of its own, one break of
every kind; the NetSuite entity in USD, the SAP one in EUR in a company code of its own, its
entries SAP documents read through the OData item cube), starts a fresh `o2c worker` process
that books for that entity (real HTTP adapters, o2c's tables in the same database as the
sandbox), runs ReconciliationWorkflow on the Temporal dev server until it has read, matched and
healed everything (it then waits for an operator: the bench answers skip), and prints records
per second, the worker's peak memory, and the ratio of its time to one SQL statement that
full-outer-joins the same three systems' documents in the same database (see join_seconds),
the ERPs side by side; the last line is the same figures as one JSON object, per ERP. Never
asserts.

    .venv/bin/python bench/reconcile.py [--sizes 10000 100000] [--erps netsuite sap] [--database-url URL]

The sandbox runs in its own process too, so the worker's memory is its own. SQLite (a scratch
file) by default; give a PostgreSQL URL to measure there.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import string
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
    """One SQL statement that lines up billing's invoices, AvaTax's documents and the ERP's
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
    if entity.erp == "sap":
        # An SAP document names its invoice in an item's text, `I:<invoice id>`.
        text = documents.c.data["DocumentItemText"].as_string()
        erp = sa.select(
            sa.func.substr(text, 3).label("invoice"),
            documents.c.data["DocumentReferenceID"].as_string().label("amount"),
        ).where(
            documents.c.system == "sap",
            documents.c.type == "item",
            documents.c.scope == entity.erp_subsidiary,
            text.like("I:%"),
        )
    else:
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


def bench_entity(erp: str) -> LegalEntity:
    """A legal entity of the run's own: NetSuite in USD, or SAP in EUR in a company code of its own."""
    key = secrets.token_hex(3)
    if erp == "sap":
        code = "".join(secrets.choice(string.ascii_uppercase + string.digits) for _ in range(4))
        return LegalEntity(
            code=f"S{key}",
            company_code=f"S{key}",
            functional_currency="EUR",
            erp="sap",
            erp_subsidiary=code,
            billing_account=f"acct_s{key}",
            country="DE",
        )
    return LegalEntity(
        code=f"B{key}",
        company_code=f"B{key}",
        functional_currency="USD",
        erp_subsidiary=str(800000 + int(key, 16) % 100000),
        billing_account=f"acct_b{key}",
    )


async def measure(
    env: WorkflowEnvironment,
    control: SandboxControl,
    size: int,
    erp: str,
    sandbox_url: str,
    database_url: str,
    logs: Path,
) -> dict:
    entity = bench_entity(erp)
    spec: dict = {}
    if erp == "sap":
        control.sap_company_code(entity.erp_subsidiary, entity.functional_currency)
        spec = {"erp": "sap", "currency": entity.functional_currency, "tax_rate": "19"}
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
        **spec,
    )
    seeded = time.perf_counter() - started
    print(f"{size} invoices seeded in {seeded:.1f} s ({erp})", flush=True)
    # The worker books for this entity alone: it routes every ERP call by the entity's ledger.
    entities_file = logs / f"entities-{entity.code}.json"
    entities_file.write_text(json.dumps([entity.model_dump(mode="json")]))
    task_queue = f"bench-recon-{entity.code}"
    worker = start_process(
        ["-m", "worker"],
        {
            "O2C_TEMPORAL_ADDRESS": env.client.service_client.config.target_host,
            "O2C_TASK_QUEUE": task_queue,
            "O2C_SANDBOX_URL": sandbox_url,
            "O2C_DATABASE_URL": database_url,
            "O2C_HTTP_TIMEOUT_SECONDS": "120",
            "O2C_LEGAL_ENTITIES_FILE": str(entities_file),
        },
        logs / f"worker-{erp}-{size}.log",
    )
    try:
        elapsed, state = await reconcile(env, entity, task_queue)
        peak = peak_rss_mib(worker.pid)
    finally:
        worker.terminate()
        worker.wait(30)
    floor, joined, form = join_seconds(database_url, entity)
    read = sum(state["read"].values())
    print(
        f"{size} invoices reconciled in {elapsed:.1f} s ({erp}); worker peak RSS {peak:.0f} MiB; "
        f"the {form} took {floor:.2f} s",
        flush=True,
    )
    return {
        "erp": erp,
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
        "healed": state["healed"],
        "history_events": state["history_events"],
        "runs": state["runs"],
        "children": state["children"],
    }


async def main(sizes: list[int], erps: list[str], database_url: str, logs: Path) -> None:
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
            for erp in erps:
                rows.append(await measure(env, control, size, erp, sandbox_url, database_url, logs))
        control.close()
    finally:
        await env.shutdown()
        sandbox.terminate()
        sandbox.wait(30)

    print()
    print(
        f"{'erp':>8} {'invoices':>9} {'records read':>12} {'seconds':>8} {'records/s':>9} {'peak RSS MiB':>12} "
        f"{'join s':>7} {'join rows':>9} {'recon/join':>10} {'batches':>7} {'breaks':>6} {'healed':>6} "
        f"{'events':>6} {'runs':>4} {'children':>8}"
    )
    for r in rows:
        print(
            f"{r['erp']:>8} {r['invoices']:>9} {r['records_read']:>12} {r['seconds']:>8.1f} {r['records_per_s']:>9.0f} "
            f"{r['peak_rss_mib']:>12.0f} {r['sql_floor_s']:>7.2f} {r['sql_floor_rows']:>9} {r['o2c_per_floor']:>9.0f}x "
            f"{r['batches']:>7} {r['breaks']:>6} {r['healed']:>6} {r['history_events']:>6} {r['runs']:>4} "
            f"{r['children']:>8}"
        )
    # How time and memory grow from the first size to the last, per ERP (none with a single size).
    growth: dict[str, dict[str, float | None]] = {}
    for erp in erps:
        mine = [r for r in rows if r["erp"] == erp]
        time_growth = memory_growth = None
        if len(mine) > 1:
            time_growth = mine[-1]["seconds"] / mine[0]["seconds"]
            memory_growth = mine[-1]["peak_rss_mib"] / mine[0]["peak_rss_mib"]
            print(
                f"{erp}: from {mine[0]['invoices']} to {mine[-1]['invoices']} invoices: time x{time_growth:.1f}, "
                f"worker peak memory x{memory_growth:.2f}"
            )
        growth[erp] = {"time_growth": time_growth, "peak_rss_growth": memory_growth}
    print(
        "records read = billing invoices + tax documents + ERP entries + contracts' revenue; events = the "
        "history of the workflow's last run; runs = its runs (it continues as new between batches); children = "
        "its batch workflows, each with a history of its own."
    )
    print(
        json.dumps(
            {
                "bench": "reconcile",
                "sizes": rows,
                "by_erp": {erp: [r for r in rows if r["erp"] == erp] for erp in erps},
                "growth": growth,
            },
            sort_keys=True,
        )
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--erps", nargs="+", choices=["netsuite", "sap"], default=["netsuite", "sap"])
    parser.add_argument("--database-url", help="default: a scratch SQLite file")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="o2c-bench-"))
    asyncio.run(main(args.sizes, args.erps, args.database_url or f"sqlite:///{scratch / 'bench.sqlite'}", scratch))
    # The figures are out; leave before interpreter teardown, where Temporal's native runtime
    # can abort the process (as the o2c CLI does).
    sys.stdout.flush()
    os._exit(0)
