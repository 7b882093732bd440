"""DisputeWorkflow: a card dispute from the funds withdrawn to won, lost or written off.

Started by `charge.dispute.created` and fed every later dispute event (funds withdrawn or
reinstated, updated, closed; an event seen before changes nothing): the funds withdrawn and
the fee are booked, the invoice's dunning pauses, the account owner gets a CRM task to gather
evidence by its deadline, escalated a day before it passes. Closed won: the funds come back.
Closed lost: the chargeback is booked by policy and the dunning resumes; or, when the policy
says so and a controller approves, the balance is written off.

What it books has happened at the card network: nothing here is undone. A step that fails
waits for an operator (retry or skip) instead.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.billing import BillingActivities
    from activities.crm import CrmActivities
    from activities.erp import ErpActivities
    from activities.inputs import CreateTask, SendNotification
    from activities.notifications import NotificationActivities
    from canonical.approval import ApprovalPolicy
    from canonical.credits import Dispute, DisputeEvent, DisputeStatus
    from canonical.dispute import (
        CLOSED,
        FUNDS_REINSTATED,
        FUNDS_WITHDRAWN,
        DisputePolicy,
        lost_entry,
        withdrawal_entry,
        withdraws_funds,
        won,
        won_entry,
    )
    from canonical.journal import ChartOfAccounts, JournalEntry
    from canonical.models import (
        DEFAULT_ENTITIES,
        ApprovalRequest,
        ApproverRole,
        CrmTask,
        LegalEntity,
        Model,
        Notification,
        PaymentEvent,
        PaymentEventKind,
    )
    from workflows.dunning import PAYMENT_EVENT_SIGNAL, dunning_workflow_id
    from workflows.kit.approval import ApprovalState
    from workflows.kit.attention import Attention, Resolution
    from workflows.kit.booking import BookingWorkflow
    from workflows.kit.process import ProcessEvent
    from workflows.kit.status import Status

DISPUTE_EVENT_SIGNAL = "dispute_event"
# Who asks for a lost dispute's write-off: the process itself, so any controller may approve.
REQUESTER = "o2c.disputes"


def dispute_workflow_id(dispute_id: str) -> str:
    return f"dispute-{dispute_id}"


class DisputeOutcome(StrEnum):
    OPEN = "open"
    WON = "won"
    LOST = "lost"
    WRITTEN_OFF = "written_off"


class DisputeInput(Model):
    dispute: Dispute  # as the first event saw it; every event (that one too) arrives by signal
    policy: DisputePolicy = DisputePolicy()
    approvals: ApprovalPolicy = ApprovalPolicy()
    chart: ChartOfAccounts = ChartOfAccounts()
    legal_entities: list[LegalEntity] = DEFAULT_ENTITIES
    step_window: timedelta = timedelta(hours=1)


class DisputeResult(Model):
    dispute_id: str
    outcome: DisputeOutcome
    message: str
    entries: list[str] = []


class DisputeState(Model):
    dispute_id: str
    invoice_id: str
    account_id: str
    status: Status
    stage: str
    outcome: DisputeOutcome
    dispute: Dispute | None = None
    funds_withdrawn: bool = False
    funds_reinstated: bool = False
    evidence_task: str = ""
    escalated_at: datetime | None = None
    entries: list[str] = []
    seen_events: list[str] = []
    approval: ApprovalState = ApprovalState()
    attention: Attention | None = None
    resolutions: list[Resolution] = []
    events: list[ProcessEvent] = []


@workflow.defn
class DisputeWorkflow(BookingWorkflow):
    process = "dispute"

    def __init__(self) -> None:
        super().__init__()
        self.dispute: Dispute | None = None
        self.inbox: list[DisputeEvent] = []
        self.seen: list[str] = []
        self.outcome = DisputeOutcome.OPEN
        self.withdrawn = False
        self.reinstated = False
        self.task_id = ""
        self.escalated_at: datetime | None = None
        self.entries: list[str] = []

    @workflow.signal(name=DISPUTE_EVENT_SIGNAL)
    def dispute_event(self, event: DisputeEvent) -> None:
        """Delivery is at least once: an event ID seen before changes nothing."""
        if event.event_id in self.seen:
            return
        self.seen.append(event.event_id)
        self.inbox.append(event)

    def headline(self) -> str:
        d = self.dispute
        return f"Dispute {d.dispute_id} · {d.amount} · invoice {d.invoice_id or 'unknown'}" if d else "Dispute"

    @workflow.query
    def state(self) -> DisputeState:
        d = self.dispute
        return DisputeState(
            dispute_id=d.dispute_id if d else "",
            invoice_id=d.invoice_id if d else "",
            account_id=d.customer if d else "",
            status=self.status,
            stage=self.stage,
            outcome=self.outcome,
            dispute=d,
            funds_withdrawn=self.withdrawn,
            funds_reinstated=self.reinstated,
            evidence_task=self.task_id,
            escalated_at=self.escalated_at,
            entries=self.entries,
            seen_events=self.seen,
            approval=self.gate.snapshot(),
            attention=self.queue.attention,
            resolutions=self.queue.resolutions,
            events=self.events,
        )

    @workflow.run
    async def run(self, input: DisputeInput) -> DisputeResult:
        d = self.dispute = input.dispute
        self.step_window = input.step_window
        self.trust(input.approvals)
        self.tag(customer=d.customer, invoice=d.invoice_id)
        self.set_status(Status.RUNNING, f"dispute of {d.amount} opened ({d.reason})")
        self.account = await self.step(
            "read customer", lambda: self.forward(BillingActivities.get_account, d.customer), must_finish=True
        )
        entity = self.entity_for(input.legal_entities, self.account.legal_entity if self.account else "")

        if withdraws_funds(d):
            await self._withdrawn(input, entity)
        await self._tell_dunning(PaymentEventKind.DISPUTE_OPENED)
        await self._evidence_task()

        closed: Dispute | None = None
        while closed is None:
            escalate_at = self._escalate_at(input.policy)
            timeout = (escalate_at - workflow.now()).total_seconds() if escalate_at else None
            if timeout is not None and timeout <= 0:
                await self._escalate_evidence()
                continue
            self.set_stage(
                f"waiting for the network's decision; evidence due {d.evidence_due_by:%Y-%m-%d %H:%M} UTC"
                if d.evidence_due_by
                else "waiting for the network's decision"
            )
            try:
                await workflow.wait_condition(lambda: bool(self.inbox), timeout=timeout)
            except TimeoutError:
                continue
            while self.inbox and closed is None:
                event = self.inbox.pop(0)
                d = self.dispute = event.dispute
                self.note(f"received {event.type} ({event.event_id})")
                if event.type == FUNDS_WITHDRAWN and not self.withdrawn:
                    await self._withdrawn(input, entity)
                elif event.type == FUNDS_REINSTATED and self.withdrawn and not self.reinstated:
                    await self._reinstated(input, entity)
                if event.type == CLOSED or event.dispute.closed:
                    closed = event.dispute
        return await self._close(input, entity, closed)

    # -- the turns of a dispute -------------------------------------------------------------

    async def _post(self, name: str, entry: JournalEntry) -> None:
        self.set_stage(f"posting: {entry.memo}")
        posted = await self.step(name, lambda: self.forward(ErpActivities.post_journal_entry, entry), must_finish=True)
        if posted is not None:
            self.entries.append(entry.external_id)

    def _entry_id(self, step: str) -> str:
        return f"{workflow.info().workflow_id}-{step}"

    async def _withdrawn(self, input: DisputeInput, entity: LegalEntity) -> None:
        assert self.dispute is not None
        entry = withdrawal_entry(
            self.dispute,
            external_id=self._entry_id("withdrawn"),
            subsidiary=entity.erp_subsidiary,
            posting_date=workflow.now().date(),
            chart=input.chart,
        )
        await self._post("funds withdrawn", entry)
        self.withdrawn = True

    async def _reinstated(self, input: DisputeInput, entity: LegalEntity) -> None:
        assert self.dispute is not None
        entry = won_entry(
            self.dispute,
            external_id=self._entry_id("reinstated"),
            subsidiary=entity.erp_subsidiary,
            posting_date=workflow.now().date(),
            chart=input.chart,
        )
        await self._post("funds reinstated", entry)
        self.reinstated = True

    async def _tell_dunning(self, kind: PaymentEventKind, won_it: bool | None = None) -> None:
        """Pause or resume the invoice's dunning; an invoice without one is fine."""
        d = self.dispute
        assert d is not None
        if not d.invoice_id:
            return
        event = PaymentEvent(
            event_id=f"{workflow.info().workflow_id}-{kind.value}",
            kind=kind,
            occurred_at=workflow.now(),
            invoice_id=d.invoice_id,
            account_id=d.customer,
            dispute_id=d.dispute_id,
            dispute_won=won_it,
        )
        try:
            await workflow.get_external_workflow_handle(dunning_workflow_id(d.invoice_id)).signal(
                PAYMENT_EVENT_SIGNAL, event
            )
            self.note(f"dunning of {d.invoice_id}: {kind.value}")
        except Exception:  # no dunning runs for this invoice
            self.note(f"no dunning runs for {d.invoice_id}")

    def _owner(self) -> str:
        return (self.account.success_owner if self.account else "") or "collections"

    def _task(self, priority: str = "") -> CrmTask:
        d = self.dispute
        assert d is not None
        due = f" by {d.evidence_due_by:%Y-%m-%d %H:%M} UTC" if d.evidence_due_by else ""
        return CrmTask(
            account_id=d.customer,
            owner=self._owner(),
            subject=f"{'Overdue soon: ' if priority else ''}evidence for dispute {d.dispute_id} ({d.reason}){due}",
            body=f"The card network withdrew {d.amount} on charge {d.charge_id} (invoice {d.invoice_id or 'unknown'}). "
            "Upload the evidence in Stripe before the deadline, or the dispute is lost.",
            due_on=d.evidence_due_by.date() if d.evidence_due_by else None,
            priority=priority,
        )

    async def _evidence_task(self) -> None:
        self.set_stage("opening the evidence task for the account owner")
        request = CreateTask(task=self._task(), step="evidence-task")
        self.task_id = (
            await self.step("evidence task", lambda: self.forward(CrmActivities.create_task, request), must_finish=True)
            or ""
        )

    def _escalate_at(self, policy: DisputePolicy) -> datetime | None:
        d = self.dispute
        if self.escalated_at is not None or d is None or d.evidence_due_by is None:
            return None
        return d.evidence_due_by - policy.escalate_before

    async def _escalate_evidence(self) -> None:
        self.escalated_at = workflow.now()
        self.note("evidence due within a day: escalated")
        escalated = CreateTask(task=self._task(priority="High"), step="evidence-task-escalated")
        task = self._task(priority="High")
        notice = SendNotification(
            step="evidence-escalation",
            notification=Notification(
                recipient=self._owner(),
                template="dispute-evidence-due",
                subject=task.subject,
                body=task.body,
                account_id=task.account_id,
            ),
        )
        await self.step(
            "evidence escalation", lambda: self.forward(CrmActivities.create_task, escalated), must_finish=True
        )
        await self.step(
            "evidence escalation notice", lambda: self.forward(NotificationActivities.send, notice), must_finish=True
        )

    async def _close(self, input: DisputeInput, entity: LegalEntity, closed: Dispute) -> DisputeResult:
        self.dispute = closed
        if won(closed):
            if self.withdrawn and not self.reinstated:
                await self._reinstated(input, entity)
            self.outcome = DisputeOutcome.WON
            await self._tell_dunning(PaymentEventKind.DISPUTE_CLOSED, won_it=True)
            return self.finish(Status.COMPLETED, f"dispute won: {closed.amount} back")
        if closed.status != DisputeStatus.LOST:
            self.outcome = DisputeOutcome.WON
            await self._tell_dunning(PaymentEventKind.DISPUTE_CLOSED, won_it=True)
            return self.finish(Status.COMPLETED, f"dispute closed as {closed.status.value}")
        written_off = False
        if self.withdrawn and input.policy.write_off_lost:
            written_off = await self._write_off_approved(input, closed)
        if self.withdrawn:
            entry = lost_entry(
                closed,
                chart=input.chart,
                policy=input.policy,
                written_off=written_off,
                external_id=self._entry_id("written-off" if written_off else "chargeback"),
                subsidiary=entity.erp_subsidiary,
                posting_date=workflow.now().date(),
            )
            await self._post("write-off" if written_off else "chargeback", entry)
        self.outcome = DisputeOutcome.WRITTEN_OFF if written_off else DisputeOutcome.LOST
        await self._tell_dunning(PaymentEventKind.DISPUTE_CLOSED, won_it=False)
        how = "written off" if written_off else f"booked as {input.policy.lost_booking.value.replace('_', ' ')}"
        return self.finish(Status.COMPLETED, f"dispute lost: {closed.amount} {how}")

    async def _write_off_approved(self, input: DisputeInput, closed: Dispute) -> bool:
        request = ApprovalRequest(
            required_role=ApproverRole.CONTROLLER,
            reasons=[f"write off {closed.amount} of lost dispute {closed.dispute_id} (invoice {closed.invoice_id})"],
            requested_by=REQUESTER,
            amount=closed.amount,
        )
        self.set_status(Status.AWAITING_APPROVAL, "awaiting a controller to write off the lost dispute")
        decision = await self.gate.wait(request, input.approvals, self._escalate_approval)
        approved = decision is not None and decision.approved
        self.set_status(
            Status.RUNNING,
            f"write-off approved by {decision.approver}"
            if decision and approved
            else "write-off not approved: booked as a chargeback",
        )
        return approved

    async def _escalate_approval(self, request: ApprovalRequest) -> None:
        d = self.dispute
        assert d is not None
        await self.escalate_approval(
            f"Write-off of lost dispute {d.dispute_id} waits for a controller",
            d.customer,
            request.required_role.value,
            request.reasons,
        )

    def finish(self, status: Status, message: str) -> DisputeResult:
        self.set_status(status, message)
        d = self.dispute
        assert d is not None
        return DisputeResult(dispute_id=d.dispute_id, outcome=self.outcome, message=message, entries=self.entries)
