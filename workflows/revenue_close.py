"""RevenueCloseWorkflow: at month end, start the revenue posting of every legal entity for
the month that has just ended.

Run by the monthly Temporal schedule `o2c-revenue-posting` (`o2c schedules apply`). Each
posting is `revenue-<ENTITY>-<YYYY-MM>`; one already started (by hand, or by an earlier run)
is left as it is, running or finished, so the month is posted once however often this runs.
"""

from __future__ import annotations

from temporalio import workflow
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

with workflow.unsafe.imports_passed_through():
    from canonical.journal import ChartOfAccounts
    from canonical.models import DEFAULT_ENTITIES, LegalEntity, Model
    from canonical.revenue.posting import previous_month
    from workflows.revenue import RevenuePostingInput, RevenuePostingWorkflow, revenue_workflow_id


class RevenueCloseInput(Model):
    legal_entities: list[LegalEntity] = DEFAULT_ENTITIES
    chart: ChartOfAccounts = ChartOfAccounts()
    period: str = ""  # the schedule leaves it empty: the month before the day the run starts


class RevenueCloseResult(Model):
    period: str
    started: list[str] = []
    already_started: list[str] = []


@workflow.defn
class RevenueCloseWorkflow:
    @workflow.run
    async def run(self, input: RevenueCloseInput) -> RevenueCloseResult:
        period = input.period or previous_month(f"{workflow.now():%Y-%m}")
        result = RevenueCloseResult(period=period)
        for entity in input.legal_entities:
            workflow_id = revenue_workflow_id(entity.code, period)
            try:
                await workflow.start_child_workflow(
                    RevenuePostingWorkflow.run,
                    RevenuePostingInput(legal_entity=entity, period=period, chart=input.chart),
                    id=workflow_id,
                    parent_close_policy=workflow.ParentClosePolicy.ABANDON,
                    id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                )
            except WorkflowAlreadyStartedError:
                result.already_started.append(workflow_id)
                continue
            result.started.append(workflow_id)
        workflow.set_current_details(
            f"revenue of {period}: {len(result.started)} postings started, {len(result.already_started)} already started"
        )
        return result
