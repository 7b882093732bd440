"""Revenue at the front door: start an entity-month's posting, and gather the reports finance
closes the month with (the deferred revenue roll-forward, remaining performance obligations).

Everything an operator types is checked before anything starts or is read: the entity must
be configured, a period is YYYY-MM, a posting's month must have ended.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from temporalio.client import Client, WorkflowHandle

from adapters.erp_routing import RoutedErp, routed_erp
from adapters.ports import ErpPort
from adapters.storage.schedules import SqlRevenueSchedules
from canonical.amendment import InvalidRequest
from canonical.journal import ChartOfAccounts
from canonical.models import LegalEntity, RevenueSchedule, unknown_entity
from canonical.reconciliation import EntryKind, ledger_fact
from canonical.revenue.posting import check_period, next_month, posting_problems
from canonical.revenue.reports import Billing, RollForwardMonth, monthly_roll_forward
from canonical.revenue.rpo import RpoReport, remaining_obligations
from canonical.usage.booking import USAGE_OBLIGATION
from settings import Settings
from starter.client import _start_once
from workflows.revenue import RevenuePostingInput, RevenuePostingResult, RevenuePostingWorkflow, revenue_workflow_id


def entity_of(code: str, entities: list[LegalEntity]) -> LegalEntity:
    for entity in entities:
        if entity.code == code:
            return entity
    raise InvalidRequest([unknown_entity(code, entities)])


def ledger_of(settings: Settings) -> RoutedErp:
    """The ERPs that hold the entities' ledgers, for the roll-forward's billings."""
    return routed_erp(settings.legal_entities, **settings.erp_access)


def today() -> date:
    return datetime.now(UTC).date()


async def start_revenue_posting(
    client: Client,
    *,
    legal_entity: str,
    period: str,
    task_queue: str = "o2c",
    chart: ChartOfAccounts | None = None,
    on: date | None = None,
) -> WorkflowHandle[RevenuePostingWorkflow, RevenuePostingResult]:
    """Validate, then start `revenue-<entity>-<period>`; a month started before lands on the
    same workflow (running, or finished: what changed since is the next month's true-up)."""
    settings = Settings.from_env()
    entities = settings.legal_entities
    problems = posting_problems(period, entity=legal_entity, entities=[e.code for e in entities], today=on or today())
    if problems:
        raise InvalidRequest(problems)
    entity = entity_of(legal_entity, entities)
    return await _start_once(
        client,
        RevenuePostingWorkflow.run,
        RevenuePostingInput(legal_entity=entity, period=period, chart=chart or ChartOfAccounts()),
        workflow_id=revenue_workflow_id(entity.code, period),
        task_queue=task_queue,
        process="revenue_posting",
        customer="",
        contract="",
    )


def report_months(first: str | None, last: str | None, *, on: date) -> tuple[str, str]:
    """The months a roll-forward covers: --from..--to, by default the month before `on` alone."""
    default = f"{(on.replace(day=1) - timedelta(days=1)):%Y-%m}"
    last = check_period(last) if last else (check_period(first) if first else default)
    first = check_period(first) if first else last
    if last < first:
        raise InvalidRequest([f"--from {first} is after --to {last}"])
    return first, last


async def entity_schedules(database_url: str, legal_entity: str) -> list[RevenueSchedule]:
    store = SqlRevenueSchedules(database_url)
    try:
        return await store.schedules_of_entity(legal_entity)
    finally:
        await store.aclose()


async def ledger_billings(
    erp: ErpPort, entity: LegalEntity, *, since: date, until: date, chart: ChartOfAccounts
) -> list[Billing]:
    """What the entity's ledger billed against deferred revenue in [since, until): every entry
    that credits (or, for a credit memo, debits) deferred revenue, except the revenue postings
    that release it. Each billing names its invoice (or the entry, when it names none)."""
    billings: list[Billing] = []
    cursor = ""
    while True:
        page = await erp.list_journal_entries_page(
            subsidiary=entity.erp_subsidiary, date_from=since, date_to=until, cursor=cursor
        )
        for entry in page.items:
            fact = ledger_fact(entry, chart)
            if fact.kind == EntryKind.REVENUE or fact.deferred.is_zero:
                continue
            billings.append(
                Billing(
                    legal_entity=entity.code,
                    billed_on=entry.posting_date,
                    amount=fact.deferred,
                    contract_id=entry.contract_id,
                    document=entry.invoice_id or entry.external_id,
                )
            )
        if not page.next_cursor:
            return billings
        cursor = page.next_cursor


async def roll_forward(
    erp: ErpPort,
    entity: LegalEntity,
    *,
    database_url: str,
    first: str,
    last: str,
    chart: ChartOfAccounts | None = None,
) -> list[RollForwardMonth]:
    """The entity's deferred revenue month by month: the ledger's billings from the first
    month any schedule of the entity starts (so the opening balance is complete), the
    schedules' recognition."""
    # Usage does not pass through deferred revenue: it is accrued against unbilled receivable.
    schedules = [s for s in await entity_schedules(database_url, entity.code) if s.obligation != USAGE_OBLIGATION]
    starts = [s.booked_on or s.start for s in schedules]
    since = min([*starts, date.fromisoformat(f"{first}-01")]).replace(day=1)
    until = date.fromisoformat(f"{next_month(last)}-01")
    billings = await ledger_billings(erp, entity, since=since, until=until, chart=chart or ChartOfAccounts())
    return [
        r for r in monthly_roll_forward(schedules, billings, first=first, last=last) if r.legal_entity == entity.code
    ]


async def rpo(entity: LegalEntity, *, database_url: str, as_of: date) -> RpoReport:
    return remaining_obligations(await entity_schedules(database_url, entity.code), as_of=as_of)
