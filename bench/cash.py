"""Cash application of a statement of 100,000 receipts against 100,000 open invoices.

Every block of 100 receipts holds 90 exact references, 3 partial payments, 2 payments of two
named invoices together, 3 payments without a reference (the payer's account says who; it is
learned from the customer's earlier receipts), and 2 payments of an invoice paid already
(duplicates).

End to end (the default): the run's customers and open invoices are seeded in the Stripe
stand-in, their receivables in the NetSuite stand-in and the open items in o2c's cash store
(not timed). The statement is written as a bank writes it (sandbox.bank.writer,
camt.053.001.08), then timed: imported by starter.cash.import_statement (parsed and
validated whole by adapters.bank, kept, `cash-<statement id>` started) and applied by
CashApplicationWorkflow on a Temporal dev server with the real worker and its HTTP adapters
against the sandbox (a process of its own): NetSuite customer payments and suspense entries,
Stripe's paid-out-of-band marks, the CRM accounts, the dunnings. The clock stops when every
batch is applied and followed up (the receipts a person must decide on then wait in the
queue). `applied_once`: o2c's store agrees with itself (every invoice's balance went down by
what was applied to it, every receipt matched once), and NetSuite agrees with it (no customer
payment external id twice, one posting per receipt, the amounts its payments apply add up to
what the store applied).

`--engine-only`: matching and the store alone, batch after batch on the real store (a scratch
SQLite file, or the PostgreSQL database of `--database-url`), with the time by phase.

`--fakes`: the workflow over in-memory ERP, billing and CRM (tests/fakes_cash.py), what it
costs without the stand-ins' HTTP.

Prints receipts per second, the share each rule matched, the cash left unapplied, this
process's resident memory (after the first tenth, at the end, its peak) and, end to end,
where the activities' time went. The last line is the same figures as one JSON object.
Never asserts.

    .venv/bin/python bench/cash.py [--receipts 100000] [--engine-only [--batch 1000]] [--fakes]
                                   [--database-url URL] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from adapters.storage.cash import SqlCashStore
from adapters.storage.tables import cash_applications, cash_matches, cash_open_items, cash_receipts
from bench.measure import peak_rss_mib, rss_mib
from canonical.cash.matching import match_statement
from canonical.cash.models import BankStatement, OpenItem, Receipt, ReceiptSource, StatementFormat
from canonical.money import Money

CURRENCY = "USD"
BLOCK = 100  # receipts; the mix below is per block
EXACT, PARTIAL, COMBINED, UNREFERENCED, DUPLICATE = 90, 3, 2, 3, 2
# Invoices a block consumes: one per exact, partial and unreferenced receipt, two per combined.
INVOICES_PER_BLOCK = EXACT + PARTIAL + 2 * COMBINED + UNREFERENCED
INVOICES_PER_CUSTOMER = 50
SEED_CHUNK = 5_000


class Run:
    """Everything of one run is named after its tag: the database may be shared."""

    def __init__(self, receipts: int, *, entity: str = "") -> None:
        self.tag = uuid.uuid4().hex[:8]
        self.serial = int(self.tag, 16) % 10**8  # invoice numbers are letters, a dash and digits
        self.entity = entity or f"B{self.tag}"
        self.account = f"BANK{self.tag}"
        self.statement_id = f"camt:{self.account}:1"
        self.blocks = -(-receipts // BLOCK)
        self.receipts = receipts
        self.invoices = self.blocks * INVOICES_PER_BLOCK
        self.customers = max(1, self.invoices // INVOICES_PER_CUSTOMER)

    def invoice_id(self, i: int) -> str:
        return f"in_{self.tag}{i:07d}"

    def number(self, i: int) -> str:
        return f"INV-{self.serial:08d}{i:07d}"

    def customer_id(self, c: int) -> str:
        return f"cus_{self.tag}_{c:05d}"

    def customer_of(self, i: int) -> str:
        return self.customer_id(self.customer(i))

    def customer(self, i: int) -> int:
        # Neighbours share a customer (a combined payment names two of one customer's
        # invoices); the pairs are scattered over the customers, so a customer paying without
        # a reference has paid with one before (that is how its payer account is learned).
        return ((i // 2) * 2_654_435_761 % 2**32) % self.customers

    @staticmethod
    def balance(i: int) -> int:
        # Spread over 10.00 to 9,009.99 so that a customer's amounts rarely meet.
        return 1_000 + (i * 2_654_435_761) % 900_000

    def open_item(self, i: int) -> OpenItem:
        amount = Money.from_minor(self.balance(i), CURRENCY)
        return OpenItem(
            invoice_id=self.invoice_id(i),
            number=self.number(i),
            customer=self.customer_of(i),
            legal_entity=self.entity,
            total=amount,
            balance=amount,
            issued_on=date(2026, 10, 1),
            due_on=date(2026, 10, 31),
            erp_document=f"{i}",
        )

    def payer(self, i: int) -> tuple[str, str]:
        c = self.customer(i)
        return f"DE{self.tag}{c:010d}", f"Customer {self.tag} {c} GmbH"

    def receipt(
        self, n: int, minor: int, invoices: list[int], *, reference: bool = True, payer_of: int = -1
    ) -> Receipt:
        account, name = self.payer(invoices[0] if payer_of < 0 else payer_of)
        return Receipt(
            receipt_id=f"camt053:{self.account}:{self.tag}-{n:07d}",
            source=ReceiptSource.CAMT053,
            legal_entity=self.entity,
            amount=Money.from_minor(minor, CURRENCY),
            value_date=date(2026, 11, 2),
            bank_reference=f"{self.tag}-{n:07d}",
            statement_id=self.statement_id,
            bank_account=self.account,
            payer_name=name,
            payer_account=account,
            references=[self.number(i) for i in invoices] if reference else [],
        )

    def statement(self) -> Iterator[tuple[str, Receipt]]:
        """(kind, receipt) in statement order."""
        n = 0
        for block in range(self.blocks):
            base = block * INVOICES_PER_BLOCK
            kinds: list[tuple[str, Receipt]] = []
            # The block's invoices: the combined pairs first (even offsets: one customer a
            # pair), then the exact, partial and unreferenced ones.
            exact_at = 2 * COMBINED
            partial_at = exact_at + EXACT
            unreferenced_at = partial_at + PARTIAL
            for s in range(exact_at, partial_at):
                kinds.append(("exact", self.receipt(n + len(kinds), self.balance(base + s), [base + s])))
            for s in range(partial_at, unreferenced_at):
                part = self.balance(base + s) * 2 // 5
                kinds.append(("partial", self.receipt(n + len(kinds), part, [base + s])))
            for s in range(0, 2 * COMBINED, 2):
                both = self.balance(base + s) + self.balance(base + s + 1)
                kinds.append(("combined", self.receipt(n + len(kinds), both, [base + s, base + s + 1])))
            for s in range(unreferenced_at, unreferenced_at + UNREFERENCED):
                receipt = self.receipt(n + len(kinds), self.balance(base + s), [base + s], reference=False)
                kinds.append(("unreferenced", receipt))
            for s in range(exact_at, exact_at + DUPLICATE):
                # An invoice paid by this block's first receipts, paid again.
                kinds.append(("duplicate", self.receipt(n + len(kinds), self.balance(base + s), [base + s])))
            for kind, receipt in kinds:
                if n >= self.receipts:
                    return
                yield kind, receipt
                n += 1


async def seed(store: SqlCashStore, run: Run) -> None:
    for start in range(0, run.invoices, SEED_CHUNK):
        await store.upsert_open_items([run.open_item(i) for i in range(start, min(run.invoices, start + SEED_CHUNK))])
    header = BankStatement(
        statement_id=run.statement_id,
        format=StatementFormat.CAMT053_08,
        bank_account=run.account,
        currency=CURRENCY,
        created_at=datetime(2026, 11, 2, 18, 0, tzinfo=UTC),
        opening=Money.zero(CURRENCY),
        closing=Money.zero(CURRENCY),
        entries=[],
    )
    # The header alone: the receipts follow page by page, as a large file is imported.
    await store.record_statement(header, [])


def batches(run: Run, size: int) -> Iterator[list[Receipt]]:
    batch: list[Receipt] = []
    for _, receipt in run.statement():
        batch.append(receipt)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def audit(store: SqlCashStore, run: Run) -> dict[str, Any]:
    """What the database says the run did, independent of the bench's own counting."""
    with store.engine.connect() as conn:
        mine = cash_open_items.c.legal_entity == run.entity
        applied_per_invoice = (
            sa.select(cash_applications.c.invoice_id, sa.func.sum(cash_applications.c.amount_minor).label("applied"))
            .where(cash_applications.c.legal_entity == run.entity)
            .group_by(cash_applications.c.invoice_id)
            .subquery()
        )
        invoice_breaks = conn.execute(
            sa.select(sa.func.count())
            .select_from(
                cash_open_items.outerjoin(
                    applied_per_invoice, applied_per_invoice.c.invoice_id == cash_open_items.c.invoice_id
                )
            )
            .where(
                mine,
                cash_open_items.c.total_minor - cash_open_items.c.balance_minor
                != sa.func.coalesce(applied_per_invoice.c.applied, 0),
            )
        ).scalar_one()
        applied_per_receipt = (
            sa.select(cash_applications.c.receipt_id, sa.func.sum(cash_applications.c.amount_minor).label("applied"))
            .where(cash_applications.c.legal_entity == run.entity)
            .group_by(cash_applications.c.receipt_id)
            .subquery()
        )
        match_breaks = conn.execute(
            sa.select(sa.func.count())
            .select_from(
                cash_matches.join(cash_receipts, cash_receipts.c.receipt_id == cash_matches.c.receipt_id).outerjoin(
                    applied_per_receipt, applied_per_receipt.c.receipt_id == cash_matches.c.receipt_id
                )
            )
            .where(
                cash_matches.c.legal_entity == run.entity,
                sa.or_(
                    cash_matches.c.applied_minor != sa.func.coalesce(applied_per_receipt.c.applied, 0),
                    cash_matches.c.applied_minor + cash_matches.c.unapplied_minor != cash_receipts.c.amount_minor,
                ),
            )
        ).scalar_one()
        receipts = conn.execute(
            sa.select(sa.func.count()).where(cash_receipts.c.legal_entity == run.entity)
        ).scalar_one()
        matched = conn.execute(sa.select(sa.func.count()).where(cash_matches.c.legal_entity == run.entity)).scalar_one()
        rules: dict[str, int] = dict(
            conn.execute(
                sa.select(cash_matches.c.rule, sa.func.count())
                .where(cash_matches.c.legal_entity == run.entity)
                .group_by(cash_matches.c.rule)
            ).all()
        )
        queued = conn.execute(
            sa.select(sa.func.count()).where(cash_matches.c.legal_entity == run.entity, cash_matches.c.queued.is_(True))
        ).scalar_one()
        negative = conn.execute(
            sa.select(sa.func.count()).where(mine, cash_open_items.c.balance_minor < 0)
        ).scalar_one()
    return {
        "receipts_recorded": receipts,
        "receipts_matched": matched,
        "invoice_breaks": invoice_breaks,
        "match_breaks": match_breaks,
        "negative_balances": negative,
        "rules": {rule: count for rule, count in sorted(rules.items())},
        "queued": queued,
        "applied_once": invoice_breaks == 0
        and match_breaks == 0
        and negative == 0
        and receipts == matched == run.receipts,
    }


async def engine_only(args: argparse.Namespace) -> dict[str, Any]:
    scratch = None
    url = args.database_url
    if not url:
        scratch = tempfile.mkdtemp(prefix="o2c-cash-bench-")
        url = f"sqlite:///{scratch}/o2c.sqlite"
    store = SqlCashStore(url)
    run = Run(args.receipts)
    try:
        started = time.perf_counter()
        await seed(store, run)
        seeded = time.perf_counter() - started
        rss_early = 0.0
        done = 0
        phases = {"record": 0.0, "book": 0.0, "match": 0.0, "apply": 0.0}
        started = time.perf_counter()
        for batch in batches(run, args.batch):
            t0 = time.perf_counter()
            await store.record_receipts(batch)
            t1 = time.perf_counter()
            book = await store.book_for(batch)
            t2 = time.perf_counter()
            matches = match_statement(batch, book)
            t3 = time.perf_counter()
            await store.apply_matches(matches)
            t4 = time.perf_counter()
            for phase, seconds in zip(phases, (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True):
                phases[phase] += seconds
            done += len(batch)
            if not rss_early and done >= run.receipts // 10:
                rss_early = rss_mib()
        elapsed = time.perf_counter() - started
        unapplied = await store.unapplied_total(run.entity, CURRENCY)
        found = audit(store, run)
    finally:
        await store.aclose()
        if scratch:
            shutil.rmtree(scratch, ignore_errors=True)
    rules = found.pop("rules")
    return {
        "mode": "engine_only",
        "receipts": done,
        "invoices": run.invoices,
        "batch": args.batch,
        "database": "postgresql" if url.startswith("postgres") else "sqlite",
        "seconds": round(elapsed, 2),
        "seed_seconds": round(seeded, 2),
        "receipts_per_second": round(done / elapsed, 1) if elapsed else 0.0,
        "phase_seconds": {k: round(v, 2) for k, v in phases.items()},
        "share_by_rule": {rule: round(count / max(done, 1), 4) for rule, count in rules.items()},
        "unapplied": str(unapplied),
        "rss_after_first_tenth_mib": round(rss_early, 1),
        "rss_end_mib": round(rss_mib(), 1),
        "peak_rss_mib": round(peak_rss_mib(os.getpid()), 1),
        **found,
    }


# -- end to end: the statement file through the real workflow, worker, adapters and sandbox ------


def sandbox_seed(sandbox_url: str, o2c_url: str, run: Run) -> None:
    """The run's customers and open invoices in Stripe, their receivables in NetSuite, and the
    open items in o2c's store. Not timed, and in a process of its own so that the bench's
    memory figures are the worker's.

    In bulk, because the stand-ins' API numbers an invoice and a journal entry by counting
    what they hold (quadratic over 100,000): one invoice is made through the Stripe stand-in's
    own handlers and copied for the others with their own id, number, customer and amount;
    each journal entry is validated by the NetSuite stand-in's own validator and stored with
    its external id and A/R index as its upsert stores them."""
    import copy

    from adapters.netsuite import to_wire
    from canonical.journal import ChartOfAccounts, invoice_entry
    from sandbox.netsuite import journal_entries
    from sandbox.netsuite.applications import index_journal_entry
    from sandbox.store import Store
    from sandbox.stripe.customers import create_customer
    from sandbox.stripe.invoices import create_invoice, create_invoiceitem, finalize_invoice, recompute_totals

    store = Store(sandbox_url)
    with store.tx() as tx:
        for c in range(run.customers):
            create_customer(tx, {"id": run.customer_id(c), "name": f"Customer {run.tag} {c} GmbH", "currency": "usd"})
        _, draft = create_invoice(
            tx, {"customer": run.customer_id(0), "collection_method": "send_invoice", "days_until_due": "30"}
        )
        create_invoiceitem(
            tx,
            {
                "customer": run.customer_id(0),
                "currency": "usd",
                "amount": "1000",
                "invoice": draft["id"],
                "description": "Platform seats",
            },
        )
        _, template = finalize_invoice(tx, {}, draft["id"])[:2]
    for start in range(0, run.invoices, SEED_CHUNK):
        docs = []
        for i in range(start, min(run.invoices, start + SEED_CHUNK)):
            invoice = copy.deepcopy(template)
            invoice.update(id=run.invoice_id(i), customer=run.customer_of(i), number=run.number(i))
            line = invoice["lines"]["data"][0]
            line.update(id=f"il_{run.tag}{i:07d}", amount=run.balance(i), invoice=run.invoice_id(i))
            recompute_totals(invoice)
            invoice.update(amount_due=run.balance(i), amount_remaining=run.balance(i))
            docs.append(("stripe", "invoice", invoice["id"], invoice))
        with store.tx() as tx:
            tx.insert_many(docs)
    chart = ChartOfAccounts()
    with store.tx() as tx:
        next_id = tx.count("netsuite", "journalEntry") + 101
    for start in range(0, run.invoices, SEED_CHUNK):
        with store.tx() as tx:
            for i in range(start, min(run.invoices, start + SEED_CHUNK)):
                amount = Money.from_minor(run.balance(i), CURRENCY)
                entry = invoice_entry(
                    external_id=f"bench-{run.invoice_id(i)}-invoice",
                    subsidiary="1",
                    posting_date=date(2026, 10, 1),
                    memo=f"Invoice {run.number(i)}",
                    revenue=amount,
                    tax=Money.zero(CURRENCY),
                    chart=chart,
                    invoice_id=run.invoice_id(i),
                    customer=run.customer_of(i),
                )
                record = journal_entries._validate(tx, to_wire(entry))
                record.update(externalId=entry.external_id, id=str(next_id), tranId=f"JE{next_id:06d}")
                tx.put("netsuite", "journalEntry", record["id"], record)
                ref = f"journalEntry:{entry.external_id}"
                tx.put("netsuite", "externalId", ref, {"id": ref, "internalId": record["id"]})
                index_journal_entry(tx, record)
                next_id += 1
    store.refresh_statistics()
    store.engine.dispose()

    async def open_items() -> None:
        cash = SqlCashStore(o2c_url)
        try:
            for start in range(0, run.invoices, SEED_CHUNK):
                end = min(run.invoices, start + SEED_CHUNK)
                # As the store knows a billing invoice: no receivable yet, the ERP is asked.
                await cash.upsert_open_items(
                    [run.open_item(i).model_copy(update={"erp_document": ""}) for i in range(start, end)]
                )
        finally:
            await cash.aclose()

    asyncio.run(open_items())


def statement_file(run: Run) -> bytes:
    """The run's receipts as the bank writes them: one camt.053.001.08 statement."""
    from sandbox.bank.writer import Account, Entry, StatementFile, write_statement

    entries = [
        Entry(
            amount=receipt.amount.amount,
            payer_name=receipt.payer_name,
            payer_account=receipt.payer_account,
            remittance=" ".join(receipt.references) or "Thank you",
            bank_reference=receipt.bank_reference,
            value_date=receipt.value_date,
        )
        for _, receipt in run.statement()
    ]
    account = Account(account=run.account, currency=CURRENCY, opening_balance=Decimal(0), entries=entries)
    return write_statement(StatementFile(format="camt.053.001.08", day=date(2026, 11, 2), accounts=[account]))


async def activity_seconds(client: Any, workflow_id: str) -> dict[str, float]:
    """Where the time went: per activity type, the seconds from scheduled to closed, summed
    over every run of the workflow (they overlap: a batch's follow-ups run side by side)."""
    from temporalio.api.enums.v1 import EventType

    spent: dict[str, float] = {}
    async for execution in client.list_workflows(f'WorkflowId = "{workflow_id}"'):
        handle = client.get_workflow_handle(workflow_id, run_id=execution.run_id)
        scheduled: dict[int, tuple[str, float]] = {}
        async for event in handle.fetch_history_events():
            at = event.event_time.ToDatetime().timestamp()
            if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
                scheduled[event.event_id] = (event.activity_task_scheduled_event_attributes.activity_type.name, at)
            elif event.event_type in (
                EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED,
                EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED,
                EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT,
            ):
                attributes = (
                    event.activity_task_completed_event_attributes
                    if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED
                    else event.activity_task_failed_event_attributes
                    if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED
                    else event.activity_task_timed_out_event_attributes
                )
                name, since = scheduled.pop(attributes.scheduled_event_id, ("?", at))
                spent[name] = spent.get(name, 0.0) + at - since
    return {name: round(seconds, 2) for name, seconds in sorted(spent.items(), key=lambda x: -x[1])}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def sandbox_process(database_url: str) -> Iterator[tuple[str, int]]:
    """The sandbox in a process of its own (in this one it would share the worker's GIL)."""
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sandbox",
            "--port",
            str(port),
            "--database-url",
            database_url,
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
    )
    try:
        for _ in range(300):
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.1)
        else:
            raise RuntimeError("the sandbox did not start")
        yield f"http://127.0.0.1:{port}", process.pid
    finally:
        process.terminate()
        process.wait(timeout=30)


def erp_audit(sandbox_url: str, store_applied_minor: int, receipts: int) -> dict[str, Any]:
    """What NetSuite holds: each receipt's customer payment (or suspense entry) once, and the
    amounts its payments apply equal to what o2c's store recorded as applied."""
    from sandbox.store import Store

    store = Store(sandbox_url, migrate=False)
    try:
        with store.tx() as tx:
            payments = tx.list("netsuite", "customerPayment")
            links = tx.list("netsuite", "transactionLink")
            entries = tx.list("netsuite", "journalEntry")
    finally:
        store.engine.dispose()
    external_ids = [p.get("externalId", "") for p in payments]
    suspense = [e["externalId"] for e in entries if str(e.get("externalId", "")).endswith("-suspense")]
    paid_ids = {p["id"] for p in payments}
    applied = sum(
        Decimal(link["foreignamount"])
        for link in links
        if link["nexttype"] == "CustPymt" or link["nextdoc"] in paid_ids
    )
    twice = len(external_ids) - len(set(external_ids))
    return {
        "erp_payments": len(payments),
        "erp_suspense_entries": len(suspense),
        "erp_external_ids_twice": twice,
        "erp_applied": str(applied),
        "erp_applied_matches_store": int(applied * 100) == store_applied_minor,
        "erp_one_posting_per_receipt": len(set(external_ids)) + len(set(suspense)) == receipts,
    }


def store_applied_minor(url: str, run: Run) -> int:
    engine = sa.create_engine(url)
    applied = sa.func.coalesce(sa.func.sum(cash_applications.c.amount_minor), 0)
    try:
        with engine.connect() as conn:
            mine = cash_applications.c.receipt_id.like(f"%:{run.account}:%")
            return int(conn.execute(sa.select(applied).where(mine)).scalar_one())
    finally:
        engine.dispose()


async def end_to_end(args: argparse.Namespace) -> dict[str, Any]:
    import multiprocessing

    from temporalio.contrib.pydantic import pydantic_data_converter
    from temporalio.testing import WorkflowEnvironment

    from canonical.models import DEFAULT_ENTITIES
    from settings import Settings
    from starter.binaries import dev_server_binary
    from starter.cash import import_statement
    from worker import build_ports, running_worker
    from workflows.cash import CashApplicationWorkflow
    from workflows.kit.status import SEARCH_ATTRIBUTES, Status

    logging.getLogger("temporalio").setLevel(logging.ERROR)
    run = Run(args.receipts, entity="US01")
    scratch = tempfile.mkdtemp(prefix="o2c-cash-e2e-")
    sandbox_db = f"sqlite:///{scratch}/sandbox.sqlite"
    o2c_db = args.database_url or f"sqlite:///{scratch}/o2c.sqlite"
    try:
        t0 = time.perf_counter()
        seeder = multiprocessing.get_context("spawn").Process(target=sandbox_seed, args=(sandbox_db, o2c_db, run))
        seeder.start()
        seeder.join()
        if seeder.exitcode != 0:
            raise RuntimeError("seeding failed")
        data = statement_file(run)
        seeded = time.perf_counter() - t0
        print(f"{run.invoices:,} invoices seeded in Stripe, NetSuite and o2c's store ({seeded:.0f} s)", flush=True)
        with sandbox_process(sandbox_db) as (sandbox_url, sandbox_pid):
            settings = (
                Settings.from_env()
                .on_sandbox(sandbox_url)
                .model_copy(update={"task_queue": f"bench-cash-{run.tag}", "database_url": o2c_db})
            )
            env = await WorkflowEnvironment.start_local(
                data_converter=pydantic_data_converter,
                dev_server_existing_path=dev_server_binary(),
                search_attributes=SEARCH_ATTRIBUTES,
                ui=False,
                dev_server_extra_args=["--headless"],
            )
            store = SqlCashStore(o2c_db)
            try:
                async with running_worker(env.client, settings, build_ports(settings)):
                    rss_start = rss_mib()
                    rss_early = 0.0
                    started = time.perf_counter()
                    imported = await import_statement(
                        env.client,
                        data,
                        legal_entity="US01",
                        store=store,
                        legal_entities=DEFAULT_ENTITIES,
                        task_queue=settings.task_queue,
                        name="the bench statement",
                    )
                    import_seconds = time.perf_counter() - started
                    [statement] = imported.statements
                    handle = env.client.get_workflow_handle(statement.workflow_id)
                    while True:
                        state = await handle.query(CashApplicationWorkflow.state)
                        if not rss_early and state.receipts >= run.receipts // 10:
                            rss_early = rss_mib()
                        if state.attention is not None:
                            raise RuntimeError(f"the workflow waits for an operator: {state.attention}")
                        # The receipts are counted when matched; the status turns once every
                        # batch is posted and followed up, and the queue waits for people.
                        if (
                            state.status in (Status.NEEDS_ATTENTION, Status.COMPLETED)
                            and state.receipts == run.receipts
                        ):
                            break
                        await asyncio.sleep(0.25)
                    elapsed = time.perf_counter() - started
                    rss_end = rss_mib()
                    await handle.terminate("bench over")
                    spent = await activity_seconds(env.client, statement.workflow_id)
            finally:
                await store.aclose()
                await env.shutdown()
            sandbox_peak = peak_rss_mib(sandbox_pid)
        found = audit(SqlCashStore(o2c_db), run)
        erp = erp_audit(sandbox_db, store_applied_minor(o2c_db, run), run.receipts)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    rules = found.pop("rules")
    unapplied = sum((m for m in state.unapplied.values()), Money.zero(CURRENCY))
    return {
        "mode": "end_to_end",
        "receipts": run.receipts,
        "invoices": run.invoices,
        "database": "postgresql" if o2c_db.startswith("postgres") else "sqlite",
        "seconds": round(elapsed, 2),
        "import_seconds": round(import_seconds, 2),
        "activity_seconds": spent,
        "seed_seconds": round(seeded, 2),
        "receipts_per_second": round(run.receipts / elapsed, 1),
        "share_by_rule": {rule: round(count / max(run.receipts, 1), 4) for rule, count in rules.items()},
        "unapplied": str(unapplied),
        "waiting": len(state.waiting),
        "rss_start_mib": round(rss_start, 1),
        "rss_after_first_tenth_mib": round(rss_early, 1),
        "rss_end_mib": round(rss_end, 1),
        "peak_rss_mib": round(peak_rss_mib(os.getpid()), 1),
        "sandbox_peak_rss_mib": round(sandbox_peak, 1),
        **found,
        **erp,
        "applied_once": found["applied_once"]
        and erp["erp_external_ids_twice"] == 0
        and erp["erp_applied_matches_store"]
        and erp["erp_one_posting_per_receipt"],
    }


# -- the workflow over in-memory fakes ------------------------------------------------------------

FAKE_ACCOUNT = "US-BENCH"


def usd_minor(cents: int) -> Money:
    return Money.from_minor(cents, "USD")


def fake_world(n: int, run: str) -> tuple[list[OpenItem], list[Receipt]]:
    """n receipts and the invoices they pay, in the mix of the module's docstring."""
    items: list[OpenItem] = []
    receipts: list[Receipt] = []
    statement = f"camt053:{FAKE_ACCOUNT}:{run}"

    def invoice(number: int, cents: int, customer: str) -> str:
        invoice_id = f"INV-{run}-{number:07d}"
        items.append(
            OpenItem(
                invoice_id=invoice_id,
                number=invoice_id,
                customer=customer,
                legal_entity="US01",
                total=usd_minor(cents),
                balance=usd_minor(cents),
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
                receipt_id=f"camt053:{FAKE_ACCOUNT}:{run}-{n_:07d}",
                source=ReceiptSource.CAMT053,
                legal_entity="US01",
                amount=usd_minor(paid),
                value_date=date(2026, 11, 30),
                bank_reference=f"{run}-{n_:07d}",
                statement_id=statement,
                bank_account=FAKE_ACCOUNT,
                payer_name="" if refs else f"Unknown Payer {n_}",
                references=refs,
            )
        )
    return items, receipts


async def with_fakes(args: argparse.Namespace) -> dict[str, Any]:
    """The workflow's own ceiling: the real workflow, worker, activities and cash store, with
    the in-memory ERP, billing and CRM of tests/fakes_cash.py instead of the sandbox."""
    from temporalio.contrib.pydantic import pydantic_data_converter
    from temporalio.testing import WorkflowEnvironment
    from temporalio.worker import Worker

    from activities.registry import all_activities
    from starter.binaries import dev_server_binary
    from tests.fakes_cash import CashSystems
    from workflows.cash import CashApplicationInput, CashApplicationWorkflow
    from workflows.kit.status import SEARCH_ATTRIBUTES, Status
    from workflows.registry import ALL_WORKFLOWS

    receipts_wanted, batch, concurrency = args.receipts, 500, 16
    logging.getLogger("temporalio").setLevel(logging.ERROR)
    run = uuid.uuid4().hex[:6]
    systems = CashSystems()
    items, receipts = fake_world(receipts_wanted, run)
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
                    statement_id=f"camt053:{FAKE_ACCOUNT}:{run}",
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
        "mode": "with_fakes",
        "receipts": len(receipts),
        "batch": batch,
        "concurrency": concurrency,
        "seconds": round(elapsed, 2),
        "receipts_per_second": round(len(receipts) / elapsed, 1),
        "invoices": len(items),
        "database": "sqlite",
        "seed_seconds": 0.0,  # seeded before the clock starts, not measured
        "share_by_rule": {rule: round(n / max(len(receipts), 1), 4) for rule, n in sorted(state.by_rule.items())},
        "unapplied": str(sum(state.unapplied.values(), Money.zero(CURRENCY))),
        "queued": len(state.waiting),
        "rss_start_mib": round(rss_start, 1),
        "rss_end_mib": round(rss_end, 1),
        "peak_rss_mib": round(peak_rss_mib(os.getpid()), 1),
        "applied_once": posted == wanted and not over,
    }
    return figures


def main(args: argparse.Namespace) -> None:
    run = engine_only if args.engine_only else with_fakes if args.fakes else end_to_end
    figures = asyncio.run(run(args))
    mode = {
        "engine_only": "the engine (matching and the store)",
        "with_fakes": "the workflow over in-memory ERP, billing and CRM",
        "end_to_end": "end to end",
    }[figures["mode"]]
    print(
        f"cash application, {mode}: {figures['receipts']:,} receipts against {figures['invoices']:,} open invoices"
        f" ({figures['database']})"
    )
    print(
        f"  {figures['receipts_per_second']:,} receipts/s ({figures['seconds']} s; seeding {figures['seed_seconds']} s)"
    )
    if args.engine_only:
        print(f"  time by phase: {figures['phase_seconds']}")
    elif not args.fakes:
        print(f"  import (parse, validate, store, start): {figures['import_seconds']} s")
        print(f"  activity seconds, scheduled to closed, summed (side by side overlap): {figures['activity_seconds']}")
    for rule, share in figures["share_by_rule"].items():
        print(f"  {rule:<20} {share:7.2%}")
    print(f"  unapplied: {figures['unapplied']} on {figures['queued']:,} queued receipts")
    print(
        f"  RSS: {figures.get('rss_after_first_tenth_mib', figures.get('rss_start_mib'))} MiB"
        f" {'after the first tenth' if 'rss_after_first_tenth_mib' in figures else 'at the start'},"
        f" {figures['rss_end_mib']} MiB at the end, peak {figures['peak_rss_mib']} MiB"
        + (f" (the sandbox's peak {figures['sandbox_peak_rss_mib']} MiB)" if "sandbox_peak_rss_mib" in figures else "")
    )
    if figures["mode"] == "end_to_end":
        print(
            f"  NetSuite: {figures['erp_payments']:,} customer payments, {figures['erp_suspense_entries']:,} suspense"
            f" entries, {figures['erp_external_ids_twice']} external ids twice, {figures['erp_applied']} applied"
            f" ({'the same as' if figures['erp_applied_matches_store'] else 'NOT the same as'} o2c's store)"
        )
    checked = {"engine_only": "the database", "with_fakes": "the fakes", "end_to_end": "the database and NetSuite"}
    print(f"  applied once (read back from {checked[figures['mode']]}): {figures['applied_once']}")
    print(json.dumps(figures, sort_keys=True))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--receipts", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=1_000, help="receipts a batch (--engine-only)")
    parser.add_argument(
        "--database-url",
        default="",
        help="o2c's store: PostgreSQL (or SQLite) URL, a fresh database end to end; a scratch SQLite file by default",
    )
    parser.add_argument("--engine-only", action="store_true", help="matching and the store only, no workflow")
    parser.add_argument("--fakes", action="store_true", help="the workflow over in-memory ERP, billing and CRM")
    parser.add_argument("--json", action="store_true", help="the JSON object is the last line in any case")
    main(parser.parse_args())
