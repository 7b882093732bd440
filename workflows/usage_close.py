"""UsagePeriodCloseWorkflow: each day, start the usage release of every metered subscription
for the period that has just ended.

Run by the daily Temporal schedule that `o2c schedules apply` creates. For each legal
entity's billing account it lists the customers with metered subscriptions and starts
`usage-<subscription>-<period>`; one already started (by yesterday's run or by hand) is
left as it is, running or finished, so the scan starts each invoice once however often it runs.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

with workflow.unsafe.imports_passed_through():
    from pydantic import Field

    from activities.inputs import UsageCustomers
    from activities.usage import UsageActivities
    from canonical.approval import ApprovalPolicy
    from canonical.journal import ChartOfAccounts
    from canonical.models import DEFAULT_ENTITIES, LegalEntity, Model
    from canonical.usage.models import Meter, UsageCustomer, UsagePolicy, period_end, period_of, previous_period
    from workflows.usage import UsageReleaseInput, UsageReleaseWorkflow, usage_workflow_id


class UsageCloseResult(Model):
    period: str
    started: list[str] = []
    already_started: list[str] = []


class UsageCloseInput(Model):
    policy: UsagePolicy = UsagePolicy()
    approvals: ApprovalPolicy = ApprovalPolicy()
    chart: ChartOfAccounts = ChartOfAccounts()
    legal_entities: list[LegalEntity] = DEFAULT_ENTITIES
    period: str = ""  # the schedule leaves it empty: the month before the day the run starts
    # Billing lists customers a page at a time, and the scan continues as new every so many
    # starts, so its history and payloads stay small however many subscriptions bill usage.
    page: int = Field(200, ge=1, le=1000)
    starts_per_run: int = Field(1000, ge=1)
    # Where a run that continued as new picks up: the entity, the last subscription seen,
    # and what the runs before it started.
    entity_index: int = 0
    after: str = ""
    done: UsageCloseResult | None = None


def release_input(
    customer: UsageCustomer, period: str, entity: LegalEntity, input: UsageCloseInput
) -> UsageReleaseInput:
    rules = {m.event_name: m for m in input.policy.meters}
    return UsageReleaseInput(
        subscription_id=customer.subscription_id,
        customer=customer.customer,
        period=period,
        legal_entity=customer.legal_entity or entity.code,
        currency=customer.currency,
        meters=[rules.get(m, Meter(event_name=m, display_name=m)) for m in sorted(customer.meters())],
        prices=customer.prices,
        segment=customer.segment,
        policy=input.policy,
        approvals=input.approvals,
        chart=input.chart,
        legal_entities=input.legal_entities,
    )


@workflow.defn
class UsagePeriodCloseWorkflow:
    @workflow.run
    async def run(self, input: UsageCloseInput) -> UsageCloseResult:
        period = input.period or previous_period(period_of(workflow.now()))
        result = input.done or UsageCloseResult(period=period)
        after, starts = input.after, 0
        for index in range(input.entity_index, len(input.legal_entities)):
            entity = input.legal_entities[index]
            while True:
                if starts >= input.starts_per_run:
                    workflow.continue_as_new(
                        input.model_copy(
                            update={"period": period, "entity_index": index, "after": after, "done": result}
                        )
                    )
                customers = await workflow.execute_activity_method(
                    UsageActivities.customers,
                    UsageCustomers(billing_account=entity.billing_account, after=after, limit=input.page),
                    start_to_close_timeout=timedelta(minutes=10),
                )
                for customer in customers:
                    # Every attempt counts: one already started costs its events in history too.
                    starts += await self._start(customer, period, entity, input, result)
                if len(customers) < input.page:
                    break
                after = customers[-1].subscription_id
            after = ""
        workflow.set_current_details(
            f"usage period {period} closed: {len(result.started)} releases started, "
            f"{len(result.already_started)} already started"
        )
        return result

    @staticmethod
    async def _start(
        customer: UsageCustomer, period: str, entity: LegalEntity, input: UsageCloseInput, result: UsageCloseResult
    ) -> int:
        """Start the customer's release of the period; the number of starts it attempted (0 or 1)."""
        if customer.active_from and customer.active_from >= period_end(period):
            return 0  # the subscription began after the period: nothing of it to bill
        workflow_id = usage_workflow_id(customer.subscription_id, period)
        try:
            await workflow.start_child_workflow(
                UsageReleaseWorkflow.run,
                release_input(customer, period, entity, input),
                id=workflow_id,
                parent_close_policy=workflow.ParentClosePolicy.ABANDON,
                # A release that has finished is not started again by tomorrow's scan.
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            )
        except WorkflowAlreadyStartedError:
            result.already_started.append(workflow_id)
            return 1
        result.started.append(workflow_id)
        return 1
