"""RenewalWindowWorkflow: each day, start the renewals whose window has opened.

Run by the daily Temporal schedule that `o2c schedules apply` creates. It lists the active
subscriptions whose term ends within the window and starts `renewal-<contract>-<term start>`
for each; a renewal already started (by a closed-won deal, or by yesterday's run) is left
as it is, so running the scan twice starts nothing twice.
"""

from __future__ import annotations

from datetime import date, timedelta

from temporalio import workflow
from temporalio.exceptions import WorkflowAlreadyStartedError

with workflow.unsafe.imports_passed_through():
    from activities.billing import BillingActivities
    from activities.inputs import TermsEnding
    from canonical.approval import ApprovalPolicy
    from canonical.models import DEFAULT_ENTITIES, LegalEntity, Model
    from canonical.renewal import RenewalPolicy, window_problem, window_renewal
    from workflows.kit.process import RELEASE_BUSINESS_IDS
    from workflows.renewal import RenewalInput, RenewalWorkflow, renewal_workflow_id


class WindowInput(Model):
    policy: RenewalPolicy = RenewalPolicy()
    approvals: ApprovalPolicy = ApprovalPolicy()
    legal_entities: list[LegalEntity] = DEFAULT_ENTITIES
    today: date | None = None  # the schedule leaves it empty: the day the run starts


class WindowResult(Model):
    started: list[str] = []
    already_running: list[str] = []
    # Subscriptions left to a person: an id of theirs breaks the business id rule.
    refused: list[str] = []


@workflow.defn
class RenewalWindowWorkflow:
    @workflow.run
    async def run(self, input: WindowInput) -> WindowResult:
        today = input.today or workflow.now().date()
        ending = await workflow.execute_activity_method(
            BillingActivities.subscriptions_ending,
            TermsEnding(start=today + timedelta(days=1), end=today + timedelta(days=input.policy.window_days + 1)),
            start_to_close_timeout=timedelta(minutes=10),
        )
        result = WindowResult()
        for subscription in ending:
            wrong = window_problem(subscription)
            # Asked only for such a subscription, so other runs replay as they were recorded.
            if wrong and workflow.patched(RELEASE_BUSINESS_IDS):
                workflow.logger.warning("renewal window: %s", wrong)
                result.refused.append(wrong)
                continue
            request = window_renewal(subscription, input.policy)
            workflow_id = renewal_workflow_id(request.contract_id, request.new_term_start)
            try:
                await workflow.start_child_workflow(
                    RenewalWorkflow.run,
                    RenewalInput(
                        request=request,
                        policy=input.policy,
                        approvals=input.approvals,
                        legal_entities=input.legal_entities,
                    ),
                    id=workflow_id,
                    parent_close_policy=workflow.ParentClosePolicy.ABANDON,
                )
                result.started.append(workflow_id)
            except WorkflowAlreadyStartedError:
                result.already_running.append(workflow_id)
        workflow.set_current_details(
            f"renewal window: {len(result.started)} started, {len(result.already_running)} already running"
            + (f", {len(result.refused)} refused (an id breaks the business id rule)" if result.refused else "")
        )
        return result
