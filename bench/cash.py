"""Cash application's engine: a statement of 100,000 receipts against 100,000 open invoices.

Seeds the open invoices of this run's own legal entity (not timed), then takes the statement
in batches of `--batch` receipts: records them, reads the batch's open-item book, matches it
(canonical.cash.matching.match_statement) and applies the matches (SqlCashStore.apply_matches),
each batch one after the other on the real store: a scratch SQLite file, or the PostgreSQL
database of `--database-url`. Every block of 100 receipts holds 90 exact references, 3 partial
payments, 2 payments of two named invoices together, 3 payments without a reference (the
payer's account says who; it is learned from the customer's earlier receipts), and 2
payments of an invoice paid already (duplicates).

Prints receipts per second (first record to last apply), the share each rule matched, the
cash left unapplied, this process's resident memory after the first tenth and at the end and
its peak, and `applied_once`: read back from the database, every invoice's balance went down
by exactly what was applied to it, every receipt's applications add up to what its match
says was applied, and every receipt of the run has exactly one match. The last line is the
same figures as one JSON object. Never asserts.

    .venv/bin/python bench/cash.py [--receipts 100000] [--batch 1000] [--database-url URL] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime
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

    def __init__(self, receipts: int) -> None:
        self.tag = uuid.uuid4().hex[:8]
        self.entity = f"B{self.tag}"
        self.account = f"BANK{self.tag}"
        self.statement_id = f"camt:{self.account}:1"
        self.blocks = -(-receipts // BLOCK)
        self.receipts = receipts
        self.invoices = self.blocks * INVOICES_PER_BLOCK
        self.customers = max(1, self.invoices // INVOICES_PER_CUSTOMER)

    def invoice_id(self, i: int) -> str:
        return f"{self.tag}:in_{i:07d}"

    def number(self, i: int) -> str:
        return f"INV-{self.tag}-{i:07d}"

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
            customer=f"{self.tag}:cus_{self.customer(i):05d}",
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


async def bench(args: argparse.Namespace) -> dict[str, Any]:
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


def main(args: argparse.Namespace) -> None:
    figures = asyncio.run(bench(args))
    print(
        f"cash application: {figures['receipts']:,} receipts against {figures['invoices']:,} open invoices ({figures['database']})"
    )
    print(
        f"  {figures['receipts_per_second']:,} receipts/s ({figures['seconds']} s; seeding {figures['seed_seconds']} s)"
    )
    print(f"  time by phase: {figures['phase_seconds']}")
    for rule, share in figures["share_by_rule"].items():
        print(f"  {rule:<20} {share:7.2%}")
    print(f"  unapplied: {figures['unapplied']} on {figures['queued']:,} queued receipts")
    print(
        f"  RSS: {figures['rss_after_first_tenth_mib']} MiB after the first tenth, {figures['rss_end_mib']} MiB at the end,"
        f" peak {figures['peak_rss_mib']} MiB"
    )
    print(f"  applied once (read back from the database): {figures['applied_once']}")
    print(json.dumps(figures, sort_keys=True))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--receipts", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=1_000)
    parser.add_argument(
        "--database-url", default="", help="PostgreSQL (or SQLite) URL; a scratch SQLite file by default"
    )
    parser.add_argument("--json", action="store_true", help="the JSON object is the last line in any case")
    main(parser.parse_args())
