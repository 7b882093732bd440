"""Cash application end to end: one statement's receipts through CashApplicationWorkflow on the
Temporal dev server, with the real activities over the real cash store (a scratch SQLite
file) and the in-memory ERP, billing and CRM of tests/fakes_cash.py.

Every block of 100 receipts holds 90 exact references, 5 partial payments, 3 payments of two
named invoices together and 2 from payers nobody knows (posted to suspense; they wait for a
person, so the run is timed until every batch is applied and the workflow waits). The
in-memory fakes keep every posting, so the worker's memory grows with the run by their share.

Prints receipts per second (start of the workflow to the last batch applied), the count per
rule, the worker process's resident memory and its peak, and `applied_once`: every receipt
has exactly one posting in the ERP (a customer payment or a suspense entry) and no receivable
took more than its amount. The last line is the same figures as one JSON object. Never asserts.

    .venv/bin/python bench/cash_workflow.py [--receipts 20000] [--batch 500] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import time
import uuid
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.registry import all_activities
from bench.measure import peak_rss_mib, rss_mib
from canonical.cash.models import OpenItem, Receipt, ReceiptSource
from canonical.money import Money
from starter.binaries import dev_server_binary
from tests.fakes_cash import CashSystems
from workflows.cash import CashApplicationInput, CashApplicationWorkflow
from workflows.kit.status import SEARCH_ATTRIBUTES, Status
from workflows.registry import ALL_WORKFLOWS

ACCOUNT = "US-BENCH"


def money(cents: int) -> Money:
    return Money.from_minor(cents, "USD")


def world(n: int, run: str) -> tuple[list[OpenItem], list[Receipt]]:
    """n receipts and the invoices they pay, in the mix of the module's docstring."""
    items: list[OpenItem] = []
    receipts: list[Receipt] = []
    statement = f"camt053:{ACCOUNT}:{run}"

    def invoice(number: int, cents: int, customer: str) -> str:
        invoice_id = f"INV-{run}-{number:07d}"
        items.append(
            OpenItem(
                invoice_id=invoice_id,
                number=invoice_id,
                customer=customer,
                legal_entity="US01",
                total=money(cents),
                balance=money(cents),
            )
        )
        return invoice_id

    for n_ in range(n):
        kind = n_ % 100
        cents = 10_000 + (n_ % 50) * 100
        customer = f"cus_{n_ % 997}"
        if kind < 90:
            refs, paid = [invoice(len(items), cents, customer)], cents
        elif kind < 95:
            refs, paid = [invoice(len(items), cents, customer)], cents // 2
        elif kind < 98:
            refs = [invoice(len(items), cents, customer), invoice(len(items), 5_000, customer)]
            paid = cents + 5_000
        else:
            refs, paid = [], cents + 1
        receipts.append(
            Receipt(
                receipt_id=f"camt053:{ACCOUNT}:{run}-{n_:07d}",
                source=ReceiptSource.CAMT053,
                legal_entity="US01",
                amount=money(paid),
                value_date=date(2026, 11, 30),
                bank_reference=f"{run}-{n_:07d}",
                statement_id=statement,
                bank_account=ACCOUNT,
                payer_name="" if refs else f"Unknown Payer {n_}",
                references=refs,
            )
        )
    return items, receipts


async def main(receipts_wanted: int, batch: int, concurrency: int) -> None:
    logging.getLogger("temporalio").setLevel(logging.ERROR)
    run = uuid.uuid4().hex[:6]
    systems = CashSystems()
    items, receipts = world(receipts_wanted, run)
    await systems.cash.upsert_open_items(items)
    for item in items:
        systems.receivables.book(item.invoice_id, item.total)
    for start in range(0, len(receipts), 1000):
        for r in receipts[start : start + 1000]:
            await systems.cash.record_receipt(r)
    print(f"{len(receipts):,} receipts against {len(items):,} invoices seeded; starting the dev server", flush=True)
    env = await WorkflowEnvironment.start_local(
        data_converter=pydantic_data_converter,
        dev_server_existing_path=dev_server_binary(),
        search_attributes=SEARCH_ATTRIBUTES,
        ui=False,
        dev_server_extra_args=["--headless"],
    )
    try:
        async with Worker(
            env.client,
            task_queue="bench-cash",
            workflows=ALL_WORKFLOWS,
            activities=all_activities(**systems.ports()),
            max_concurrent_activities=64,
        ):
            rss_start = rss_mib()
            started = time.perf_counter()
            handle = await env.client.start_workflow(
                CashApplicationWorkflow.run,
                CashApplicationInput(
                    statement_id=f"camt053:{ACCOUNT}:{run}",
                    legal_entity="US01",
                    batch_size=batch,
                    posting_concurrency=concurrency,
                ),
                id=f"cash-bench-{run}",
                task_queue="bench-cash",
            )
            while True:
                state = await env.client.get_workflow_handle(handle.id).query(CashApplicationWorkflow.state)
                if state.status in (Status.NEEDS_ATTENTION, Status.COMPLETED) and state.receipts == len(receipts):
                    break
                await asyncio.sleep(0.2)
            elapsed = time.perf_counter() - started
            rss_end = rss_mib()
            await env.client.get_workflow_handle(handle.id).terminate("bench over")
    finally:
        await env.shutdown()
    posted = set(systems.receivables.payments) | {e for e in systems.erp.entries if e.endswith("-suspense")}
    wanted = {f"cash-{r.receipt_id}" for r in receipts if r.references} | {
        f"cash-{r.receipt_id}-suspense" for r in receipts if not r.references
    }
    over = [doc for doc, amount in systems.receivables.open.items() if systems.receivables.applied_to(doc) > amount]
    figures = {
        "bench": "cash_workflow",
        "receipts": len(receipts),
        "batch": batch,
        "concurrency": concurrency,
        "seconds": round(elapsed, 2),
        "receipts_per_second": round(len(receipts) / elapsed, 1),
        "by_rule": dict(sorted(state.by_rule.items())),
        "waiting": len(state.waiting),
        "rss_mib_start": round(rss_start, 1),
        "rss_mib_end": round(rss_end, 1),
        "peak_rss_mib": round(peak_rss_mib(os.getpid()), 1),
        "applied_once": posted == wanted and not over,
    }
    print(f"{len(receipts):,} receipts in {elapsed:.1f}s: {figures['receipts_per_second']:,} receipts/s")
    print("by rule: " + ", ".join(f"{k} {v:,}" for k, v in figures["by_rule"].items()))
    print(f"waiting for a person: {figures['waiting']:,}; applied once: {figures['applied_once']}")
    print(f"worker RSS {rss_start:.0f} → {rss_end:.0f} MiB, peak {figures['peak_rss_mib']} MiB")
    print(json.dumps(figures, sort_keys=True))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--receipts", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    asyncio.run(main(args.receipts, args.batch, args.concurrency))
