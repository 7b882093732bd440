"""Tables and CSV of what finance reads: a run's breaks, recent runs, the revenue waterfall."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from datetime import UTC, datetime

from rich.table import Table

from canonical.money import Money
from canonical.reconciliation import BreakRecord, RunSummary
from canonical.revenue import Waterfall
from starter.console import table

BREAK_COLUMNS = (
    "break_id",
    "kind",
    "document",
    "currency",
    "billing",
    "erp",
    "difference",
    "owner",
    "status",
    "age_days",
    "first_seen_at",
    "explanation",
    "resolution",
)


def _amount(value: Money | None) -> str:
    return "" if value is None else format(value.amount, "f")


def age_days(record: BreakRecord, now: datetime | None = None) -> int:
    return ((now or datetime.now(UTC)) - record.first_seen_at).days


def run_heading(summary: RunSummary) -> str:
    """The run's one line. Its counts are the break rows' own (see the store), the same
    numbers the table below it lists; a run still going says so."""
    so_far = " so far" if summary.finished_at is None else ""
    return (
        f"run {summary.run_id}: {summary.legal_entity} {summary.period}, {summary.status}; "
        f"read {summary.billing_documents} invoices, {summary.tax_documents} tax documents, "
        f"{summary.erp_entries} ERP entries, {summary.contracts} contracts' revenue; "
        f"{summary.breaks_found} breaks{so_far}, {summary.healed} healed, {summary.open_breaks} open, "
        f"{summary.fixed_since_last_run} fixed since the run before"
    )


def breaks_table(records: Sequence[BreakRecord]) -> Table:
    """One row per break; the explanation (and how it was resolved) wraps in the last column."""
    rows = [
        (
            r.break_id,
            r.kind.value,
            r.document,
            _amount(r.billing),
            _amount(r.erp),
            _amount(r.difference),
            r.currency,
            r.owner,
            r.status,
            age_days(r),
            r.explanation + (f" [{r.resolution}]" if r.resolution else ""),
        )
        for r in records
    ]
    return table(
        ("#", "kind", "document", "billing", "erp", "difference", "cur", "owner", "status", "age (days)", "why"),
        rows,
        wide=("why",),
    )


def breaks_csv(records: Sequence[BreakRecord]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(BREAK_COLUMNS)
    for r in records:
        writer.writerow(
            [
                r.break_id,
                r.kind.value,
                r.document,
                r.currency,
                _amount(r.billing),
                _amount(r.erp),
                _amount(r.difference),
                r.owner,
                r.status,
                age_days(r),
                r.first_seen_at.isoformat(),
                r.explanation,
                r.resolution,
            ]
        )
    return out.getvalue()


def runs_table(runs: Sequence[RunSummary]) -> Table:
    return table(
        ("run", "entity", "period", "status", "started", "invoices", "breaks", "healed", "open at close", "fixed"),
        [
            (
                r.run_id,
                r.legal_entity,
                r.period,
                r.status,
                f"{r.started_at:%Y-%m-%d %H:%M}",
                r.billing_documents,
                r.breaks_found,
                r.healed,
                r.open_breaks,
                r.fixed_since_last_run,
            )
            for r in runs
        ],
    )


def waterfall_table(report: Waterfall) -> Table:
    """One row per legal entity, currency and booking month; a column per recognition month."""
    headers = ("entity", "cur", "booked in", "booked", *report.periods, "remaining")
    rows = [
        (
            row.legal_entity,
            row.currency,
            row.booked_period,
            _amount(row.booked),
            *(_amount(row.recognised.get(p)) for p in report.periods),
            _amount(row.remaining),
        )
        for row in report.rows
    ]
    return table(headers, rows)
