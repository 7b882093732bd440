"""The cash bench's engine on a small statement: the mix it promises, and an applied_once that
comes from the database (a second posting of an amount is caught)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa

from adapters.storage.cash import SqlCashStore
from adapters.storage.tables import cash_applications
from bench.cash import Run, audit, batches, seed
from canonical.cash.matching import match_statement


async def test_the_bench_applies_its_statement_once_and_the_audit_sees_a_second_posting(tmp_path: Path) -> None:
    store = SqlCashStore(f"sqlite:///{tmp_path / 'bench.sqlite'}")
    try:
        run = Run(1_000)
        await seed(store, run)
        for batch in batches(run, 250):
            await store.record_receipts(batch)
            await store.apply_matches(match_statement(batch, await store.book_for(batch)))
        found = audit(store, run)
        assert found["applied_once"] and found["receipts_matched"] == 1_000
        assert found["rules"]["exact_reference"] == 900 and found["rules"]["partial_reference"] == 30
        assert found["rules"]["combination"] == 20
        # The same amount posted to an invoice a second time: the audit says so.
        with store.engine.begin() as conn:
            first = conn.execute(sa.select(cash_applications).limit(1)).one()._asdict()
            conn.execute(
                cash_applications.insert().values(**{**first, "origin": "decision", "applied_at": datetime.now(UTC)})
            )
        assert not audit(store, run)["applied_once"]
    finally:
        await store.aclose()
