"""RefundWorkflow: money paid back on a charge because an operator decided so.

A credit on an invoice refunds through its credit note (workflows/credit.py); this is the
other case: a customer's credit balance, or a receipt nobody could apply, given back. It goes
through the same kit: approval by the credit policy's thresholds (never by the operator who
asked), then Stripe's refund, then the journal entry. A refund cannot be taken back, so the
entry after it is past the point of no return: if it fails it waits for an operator.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.credits import PaymentsActivities
    from activities.erp import ErpActivities
    from activities.inputs import IssueRefund
    from canonical.approval import ApprovalPolicy
    from canonical.credit import CreditPolicy, RefundRequest, refund_approval, refund_entry, refund_problems
    from canonical.credits import Refund
    from canonical.durations import in_words
    from canonical.journal import ChartOfAccounts
    from canonical.models import DEFAULT_ENTITIES, ApprovalRequest, JournalEntryRef, LegalEntity, Model
    from workflows.kit.approval import ApprovalState
    from workflows.kit.attention import Attention, Resolution
    from workflows.kit.process import AbortRequested, ProcessEvent, ProcessWorkflow, StepFailed
    from workflows.kit.status import Status


def refund_workflow_id(refund_id: str) -> str:
    return f"refund-{refund_id}"


class RefundInput(Model):
    request: RefundRequest
    policy: CreditPolicy = CreditPolicy()
    approvals: ApprovalPolicy = ApprovalPolicy()
    chart: ChartOfAccounts = ChartOfAccounts()
    legal_entity: LegalEntity = DEFAULT_ENTITIES[0]
    step_window: timedelta = timedelta(hours=1)


class RefundResult(Model):
    refund_id: str
    status: Status
    message: str
    refund: Refund | None = None
    journal_entry: str = ""


class RefundState(Model):
    refund_id: str
    charge_id: str
    status: Status
    stage: str
    problems: list[str] = []
    approval: ApprovalState = ApprovalState()
    attention: Attention | None = None
    resolutions: list[Resolution] = []
    refund: Refund | None = None
    journal_entry: JournalEntryRef | None = None
    events: list[ProcessEvent] = []
    updated_at: datetime | None = None


@workflow.defn
class RefundWorkflow(ProcessWorkflow):
    process = "refund"

    def __init__(self) -> None:
        super().__init__()
        self.request: RefundRequest | None = None
        self.problems: list[str] = []
        self.refund: Refund | None = None
        self.journal_entry: JournalEntryRef | None = None

    def headline(self) -> str:
        r = self.request
        return f"Refund {r.refund_id} · {r.amount} on charge {r.charge_id}" if r else "Refund"

    @workflow.query
    def state(self) -> RefundState:
        r = self.request
        return RefundState(
            refund_id=r.refund_id if r else "",
            charge_id=r.charge_id if r else "",
            status=self.status,
            stage=self.stage,
            problems=self.problems,
            approval=self.gate.snapshot(),
            attention=self.queue.attention,
            resolutions=self.queue.resolutions,
            refund=self.refund,
            journal_entry=self.journal_entry,
            events=self.events,
            updated_at=self.events[-1].at if self.events else None,
        )

    @workflow.run
    async def run(self, input: RefundInput) -> RefundResult:
        r = self.request = input.request
        self.step_window = input.step_window
        self.trust(input.approvals)
        self.tag(customer=r.customer, invoice=r.invoice_id)
        self.set_status(Status.RUNNING, f"refund of {r.amount} asked by {r.requested_by}")
        self.problems = refund_problems(r, input.policy)
        if self.problems:
            return self.finish(Status.REJECTED, "refund refused: " + "; ".join(self.problems))

        approval = refund_approval(r, input.policy)
        if approval is not None:
            self.set_status(Status.AWAITING_APPROVAL, f"awaiting a {approval.required_role.value}")
            decision = await self.gate.wait(approval, input.approvals, self._escalate)
            if decision is None:
                return self.finish(
                    Status.REJECTED, f"approval expired after {in_words(input.approvals.expire_after)} unanswered"
                )
            if not decision.approved:
                return self.finish(Status.REJECTED, f"rejected by {decision.approver}: {decision.comment}")
            self.set_status(Status.RUNNING, f"approved by {decision.approver}")

        issue = IssueRefund(
            charge_id=r.charge_id,
            amount=r.amount,
            reason=r.reason,
            metadata={"o2c_workflow": workflow.info().workflow_id, "o2c_refund_id": r.refund_id},
            billing_account=input.legal_entity.billing_account,
        )
        self.set_stage(f"refunding {r.amount} on charge {r.charge_id}")
        try:
            self.refund = await self.step(
                "refund", lambda: self.forward(PaymentsActivities.create_refund, issue), skippable=False
            )
        except (StepFailed, AbortRequested) as failed:  # nothing was paid back
            return self.finish(Status.FAILED, f"refund not made: {failed}")

        entry = refund_entry(
            r,
            external_id=f"{workflow.info().workflow_id}-entry",
            subsidiary=input.legal_entity.erp_subsidiary,
            posting_date=workflow.now().date(),
            chart=input.chart,
        )
        self.set_stage("posting the journal entry")
        self.journal_entry = await self.step(
            "journal entry", lambda: self.forward(ErpActivities.post_journal_entry, entry), must_finish=True
        )
        return self.finish(Status.COMPLETED, f"refunded {r.amount} ({self.refund.refund_id})")

    async def _escalate(self, request: ApprovalRequest) -> None:
        r = self.request
        assert r is not None
        await self.escalate_approval(
            f"Refund {r.refund_id} has waited for approval", r.customer, request.required_role.value, request.reasons
        )

    def finish(self, status: Status, message: str) -> RefundResult:
        self.set_status(status, message)
        r = self.request
        assert r is not None
        return RefundResult(
            refund_id=r.refund_id,
            status=status,
            message=message,
            refund=self.refund,
            journal_entry=self.journal_entry.external_id if self.journal_entry else "",
        )
