"""The recorded scenarios of the revenue posting workflow (see record.py).

Each takes the recorder's (env, task queue, systems); o2c's own database for them (the
schedules and what was posted, on a scratch SQLite file) rides on `systems.revenue`, which
record.py sets with `revenue_world()`.
"""

from __future__ import annotations

import asyncio
import tempfile
from dataclasses import dataclass
from datetime import date

from temporalio.client import WorkflowHandle

from adapters.errors import BusinessError
from adapters.storage.revenue_postings import SqlRevenuePostings
from adapters.storage.schedules import SqlRevenueSchedules
from canonical.models import LegalEntity
from canonical.money import Money
from canonical.revenue import ratable_schedule
from tests.fakes import FakeSystems
from workflows.kit.attention import OperatorAction, ResolveInput
from workflows.kit.status import Status
from workflows.revenue import RevenuePostingInput, RevenuePostingWorkflow, revenue_workflow_id
from workflows.revenue_close import RevenueCloseInput, RevenueCloseWorkflow

ENTITY = LegalEntity(code="DE01", company_code="1010", functional_currency="EUR", erp="sap", erp_subsidiary="1010")


@dataclass
class RevenueWorld:
    schedules: SqlRevenueSchedules
    postings: SqlRevenuePostings

    def ports(self) -> dict[str, object]:
        return {"schedules": self.schedules, "revenue_postings": self.postings}


def revenue_world() -> RevenueWorld:
    url = f"sqlite:///{tempfile.mkdtemp(prefix='o2c-revenue-')}/o2c.sqlite"
    return RevenueWorld(SqlRevenueSchedules(url), SqlRevenuePostings(url))


def world_of(systems: FakeSystems) -> RevenueWorld:
    world = getattr(systems, "revenue", None)
    assert isinstance(world, RevenueWorld), "record.py gives every revenue scenario its database"
    return world


async def _seats(world: RevenueWorld, total: str) -> None:
    await world.schedules.save_schedule(
        ratable_schedule(
            schedule_id="DE01-C1-seats",
            contract_id="DE01-C1",
            account_id="cus_1",
            legal_entity="DE01",
            obligation="seats",
            total=Money.of(total, "EUR"),
            start=date(2026, 5, 1),
            end=date(2026, 8, 1),
        )
    )


async def _start(env, tq, period: str) -> WorkflowHandle:
    return await env.client.start_workflow(
        RevenuePostingWorkflow.run,
        RevenuePostingInput(legal_entity=ENTITY, period=period),
        id=revenue_workflow_id(ENTITY.code, period),
        task_queue=tq,
    )


def _expect(actual: object, wanted: object) -> None:
    if actual != wanted:
        raise RuntimeError(f"the scenario ended in {actual!r}, not {wanted!r}")


async def revenue_trued_up(env, tq, systems) -> WorkflowHandle:
    """May posted; an amendment back-dated into May; June posted with May's true-up."""
    world = world_of(systems)
    await _seats(world, "9200.00")
    _expect((await (await _start(env, tq, "2026-05")).result()).status, Status.COMPLETED)
    await _seats(world, "11040.00")
    handle = await _start(env, tq, "2026-06")
    result = await handle.result()
    _expect((result.status, result.entries[0].true_ups), (Status.COMPLETED, 1))
    return handle


async def revenue_closed_period_retried(env, tq, systems) -> WorkflowHandle:
    """The ERP's period is closed: the posting parks, an operator retries after reopening it."""
    world = world_of(systems)
    await _seats(world, "9200.00")
    systems.ledger.fail(
        "erp.post_journal_entry",
        BusinessError("sap", "Posting period 005 2026 is not open", code="PERIOD_CLOSED", fixable=True),
    )
    handle = await _start(env, tq, "2026-05")
    for _ in range(400):
        if (await handle.query(RevenuePostingWorkflow.state)).status == Status.NEEDS_ATTENTION:
            break
        await asyncio.sleep(0.025)
    await handle.execute_update(
        RevenuePostingWorkflow.resolve, ResolveInput(action=OperatorAction.RETRY, operator="olga.ops")
    )
    _expect((await handle.result()).status, Status.COMPLETED)
    return handle


async def revenue_month_closed(env, tq, systems) -> WorkflowHandle:
    """The month-end run starts each entity's posting once: DE01's was started by hand already."""
    world = world_of(systems)
    await _seats(world, "9200.00")
    await (await _start(env, tq, "2026-05")).result()
    us01 = LegalEntity(code="US01", company_code="US01", functional_currency="USD", erp_subsidiary="1")
    handle = await env.client.start_workflow(
        RevenueCloseWorkflow.run,
        RevenueCloseInput(legal_entities=[ENTITY, us01], period="2026-05"),
        id="revenue-posting-2026-05",
        task_queue=tq,
    )
    result = await handle.result()
    _expect((result.started, result.already_started), (["revenue-US01-2026-05"], ["revenue-DE01-2026-05"]))
    await env.client.get_workflow_handle("revenue-US01-2026-05").result()
    return handle


REVENUE_SCENARIOS = {
    "revenue_month_closed": revenue_month_closed,
    "revenue_trued_up": revenue_trued_up,
    "revenue_closed_period_retried": revenue_closed_period_retried,
}
