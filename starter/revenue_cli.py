"""`o2c revenue`: post an entity's recognised revenue, and the reports finance closes with.
Exit codes as in starter/console.py.

    o2c revenue post --entity DE01 --period 2026-11 [--wait] [--json]
    o2c revenue rollforward --entity DE01 [--from 2026-09 --to 2026-11] [--detail] [--csv | --json]
    o2c revenue rpo --entity DE01 [--as-of 2026-11-30] [--csv | --json]
    o2c revenue waterfall --entity DE01 [--through 2026-12] [--json]
"""

from __future__ import annotations

import csv
import io
from datetime import date, timedelta
from typing import Annotated

import typer
from rich.table import Table

from canonical.amendment import InvalidRequest
from canonical.models import LegalEntity
from canonical.money import Money
from canonical.revenue.reports import RollForwardMonth
from canonical.revenue.rpo import RpoReport
from starter.console import EXIT_DONE, Refused, emit_json, out, say, show, table
from starter.session import run as _run
from starter.session import settings

revenue_app = typer.Typer(
    help="Recognised revenue: post it to an entity's ledger; the roll-forward, RPO and waterfall.",
    no_args_is_help=True,
)

Json = Annotated[bool, typer.Option("--json", help="print one JSON document on stdout")]
Csv = Annotated[bool, typer.Option("--csv", help="print CSV on stdout")]
Entity = Annotated[str, typer.Option("--entity", help="the legal entity's code, e.g. DE01")]
Wait = Annotated[
    bool,
    typer.Option("--wait", help="follow the process, one line per change, until it ends (0) or parks (3)"),
]


def _refused(invalid: InvalidRequest, what: str) -> Refused:
    return Refused(f"{what} refused, nothing started:\n  - " + "\n  - ".join(invalid.problems))


def _entity(code: str) -> LegalEntity:
    from starter.revenue import entity_of

    try:
        return entity_of(code, settings().legal_entities)
    except InvalidRequest as invalid:
        raise _refused(invalid, "revenue report") from None


def _amount(value: Money) -> str:
    return format(value.amount, "f")


@revenue_app.command("post")
def post(
    entity: Entity,
    period: Annotated[str, typer.Option("--period", help="YYYY-MM: a month that has ended")],
    wait: Wait = False,
    as_json: Json = False,
) -> int:
    """Post what the entity's schedules recognised in a month to its ledger (revenue-<entity>-<month>)."""
    from canonical.revenue.posting import posting_problems
    from starter.cli import _start
    from starter.revenue import start_revenue_posting, today

    current = settings()
    problems = posting_problems(period, entity=entity, entities=[e.code for e in current.legal_entities], today=today())
    return _run(
        _start(
            "posting",
            problems,
            lambda client, _billing, task_queue: start_revenue_posting(
                client, legal_entity=entity, period=period, task_queue=task_queue
            ),
            wait,
            as_json,
        )
    )


# -- the roll-forward ---------------------------------------------------------------------------

ROLL_FORWARD_COLUMNS = ("entity", "currency", "period", "opening", "billed", "recognised", "closing")


def roll_forward_table(rows: list[RollForwardMonth], *, detail: bool) -> Table:
    lines: list[tuple[object, ...]] = []
    for r in rows:
        lines.append(
            (
                r.legal_entity,
                r.currency,
                r.period,
                *(_amount(x) for x in (r.opening, r.billed, r.recognised, r.closing)),
            )
        )
        if detail:
            lines += [("", "", "  billed", "", _amount(d.amount), "", d.document) for d in r.billed_by]
            lines += [("", "", "  recognised", "", "", _amount(d.amount), d.document) for d in r.recognised_by]
    return table(ROLL_FORWARD_COLUMNS, lines)


def roll_forward_csv(rows: list[RollForwardMonth], *, detail: bool) -> str:
    """One row per month; with detail, a row per document behind billed and recognised too
    (`line` says which), so a spreadsheet can sum them back to the month's figures."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["line", *ROLL_FORWARD_COLUMNS, "document"])
    for r in rows:
        figures = [_amount(x) for x in (r.opening, r.billed, r.recognised, r.closing)]
        writer.writerow(["month", r.legal_entity, r.currency, r.period, *figures, ""])
        if detail:
            for d in r.billed_by:
                writer.writerow(
                    ["billed", r.legal_entity, r.currency, r.period, "", _amount(d.amount), "", "", d.document]
                )
            for d in r.recognised_by:
                writer.writerow(
                    ["recognised", r.legal_entity, r.currency, r.period, "", "", _amount(d.amount), "", d.document]
                )
    return buffer.getvalue()


@revenue_app.command("rollforward")
def rollforward(
    entity: Entity,
    first: Annotated[str | None, typer.Option("--from", help="YYYY-MM, the first month (default: --to)")] = None,
    last: Annotated[str | None, typer.Option("--to", help="YYYY-MM, the last month (default: last month)")] = None,
    detail: Annotated[
        bool, typer.Option("--detail", help="list the invoices and contracts behind each figure")
    ] = False,
    as_csv: Csv = False,
    as_json: Json = False,
) -> int:
    """Deferred revenue per month: opening + billed - recognised = closing.

    Billed is read from the entity's ledger, recognised from o2c's schedules."""
    from starter.revenue import ledger_of, report_months, roll_forward, today

    legal_entity = _entity(entity)
    current = settings()
    try:
        months = report_months(first, last, on=today())
        erp = ledger_of(current)
    except (InvalidRequest, ValueError) as error:
        problems = error.problems if isinstance(error, InvalidRequest) else [str(error)]
        raise Refused("revenue rollforward refused: " + "; ".join(problems)) from None

    async def report() -> int:
        try:
            rows = await roll_forward(
                erp, legal_entity, database_url=current.database_url, first=months[0], last=months[1]
            )
        finally:
            await erp.aclose()
        if as_json:
            emit_json([r.model_dump(mode="json") for r in rows])
        elif as_csv:
            out.file.write(roll_forward_csv(rows, detail=detail))
        elif rows:
            show(roll_forward_table(rows, detail=detail))
        else:
            say(f"no deferred revenue for {entity} in {months[0]}..{months[1]}")
        return EXIT_DONE

    return _run(report())


# -- remaining performance obligations ----------------------------------------------------------

RPO_COLUMNS = ("entity", "contract", "obligation", "currency", "allocated", "recognised", "within 12 months", "later")


def rpo_rows(report: RpoReport) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = [
        (
            x.legal_entity,
            x.contract_id,
            x.obligation,
            x.allocated.currency,
            _amount(x.allocated),
            _amount(x.recognised),
            _amount(x.within_12_months),
            _amount(x.later),
        )
        for x in report.lines
    ]
    rows += [
        (t.legal_entity, "total", "", t.currency, "", "", _amount(t.within_12_months), _amount(t.later))
        for t in report.totals
    ]
    return rows


def rpo_csv(report: RpoReport) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow([c.replace(" ", "_") for c in RPO_COLUMNS])
    writer.writerows(rpo_rows(report))
    return buffer.getvalue()


@revenue_app.command("rpo")
def rpo(
    entity: Entity,
    as_of: Annotated[str | None, typer.Option("--as-of", help="YYYY-MM-DD (default: yesterday)")] = None,
    as_csv: Csv = False,
    as_json: Json = False,
) -> int:
    """Remaining performance obligations (ASC 606-10-50-13), within 12 months and later.

    The allocated price not yet recognised after --as-of, per contract and obligation."""
    from starter.revenue import rpo as remaining
    from starter.revenue import today

    legal_entity = _entity(entity)
    try:
        day = date.fromisoformat(as_of) if as_of else today() - timedelta(days=1)
    except ValueError:
        raise Refused(f"--as-of is a date, YYYY-MM-DD, got {as_of!r}") from None

    async def report() -> int:
        found = await remaining(legal_entity, database_url=settings().database_url, as_of=day)
        if as_json:
            emit_json(found.model_dump(mode="json"))
        elif as_csv:
            out.file.write(rpo_csv(found))
        elif found.lines:
            say(f"remaining performance obligations of {entity} after {day}")
            show(table(RPO_COLUMNS, rpo_rows(found)))
        else:
            say(f"no remaining performance obligations for {entity} after {day}")
        return EXIT_DONE

    return _run(report())


# -- the waterfall -----------------------------------------------------------------------------


@revenue_app.command("waterfall")
def waterfall_command(
    entity: Entity,
    through: Annotated[str | None, typer.Option(help="YYYY-MM: recognition after it shows as remaining")] = None,
    as_json: Json = False,
) -> int:
    """Bookings by month against the months recognised, from the schedules o2c recorded."""
    from canonical.reconciliation import period_bounds
    from canonical.revenue import waterfall
    from starter.reports import waterfall_table
    from starter.revenue import entity_schedules

    if through:
        try:
            period_bounds(through)
        except ValueError as error:
            raise Refused(str(error)) from None

    async def report() -> int:
        schedules = await entity_schedules(settings().database_url, entity)
        found = waterfall(schedules, through=through or None)
        if as_json:
            emit_json(found.model_dump(mode="json"))
        elif schedules:
            show(waterfall_table(found))
        else:
            say(f"no revenue schedules for {entity}")
        return EXIT_DONE

    return _run(report())
