"""AmendmentWorkflow: a mid-period change of seats, price or discount, end to end.

validate → prorate → approve (if policy asks) → quote tax → update the subscription →
invoice the proration → commit tax → post the journal entry → only then change the
entitlement and tell the customer. Each step with a side effect registers its undo first.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.billing import BillingActivities
    from activities.inputs import ContractSchedules, ReplaceSchedules, UpdateSubscription
    from activities.schedules import ScheduleActivities
    from canonical.amendment import InvalidAmendment, validate_amendment
    from canonical.approval import ApprovalPolicy, amendment_approval
    from canonical.durations import in_words
    from canonical.journal import ChartOfAccounts
    from canonical.models import (
        DEFAULT_ENTITIES,
        AmendmentRequest,
        ApprovalRequest,
        Invoice,
        InvoiceLine,
        JournalEntryRef,
        LegalEntity,
        Model,
        Notification,
        Proration,
        RevenueSchedule,
        Subscription,
        TaxDocument,
    )
    from canonical.money import Money
    from canonical.proration import amended_lines, prorate
    from canonical.revenue import amendment_schedules
    from workflows.kit.approval import ApprovalState
    from workflows.kit.attention import Attention, Resolution
    from workflows.kit.booking import BookingWorkflow
    from workflows.kit.process import RELEASE_CASH, ProcessEvent
    from workflows.kit.status import Status


def amendment_workflow_id(amendment_id: str) -> str:
    return f"amendment-{amendment_id}"


class AmendmentInput(Model):
    request: AmendmentRequest
    policy: ApprovalPolicy = ApprovalPolicy()
    chart: ChartOfAccounts = ChartOfAccounts()
    legal_entities: list[LegalEntity] = DEFAULT_ENTITIES
    # How long a step retries a system that keeps failing transiently before it parks.
    step_window: timedelta = timedelta(hours=1)


class AmendmentResult(Model):
    amendment_id: str
    status: Status
    message: str
    net: Money | None = None
    invoice_id: str = ""
    invoice_total: Money | None = None
    tax_document: str = ""
    journal_entry: str = ""
    compensated: list[str] = []


class AmendmentState(Model):
    amendment_id: str
    account_id: str
    contract_id: str
    status: Status
    stage: str
    problems: list[str] = []
    proration: Proration | None = None
    approval: ApprovalState = ApprovalState()
    attention: Attention | None = None
    resolutions: list[Resolution] = []
    invoice: Invoice | None = None
    tax_document: TaxDocument | None = None
    journal_entry: JournalEntryRef | None = None
    schedules: list[RevenueSchedule] = []
    compensated: list[str] = []
    events: list[ProcessEvent] = []
    updated_at: datetime | None = None


@workflow.defn
class AmendmentWorkflow(BookingWorkflow):
    process = "amendment"

    def __init__(self) -> None:
        super().__init__()
        self.request: AmendmentRequest | None = None
        self.problems: list[str] = []
        self.proration: Proration | None = None
        self.schedules: list[RevenueSchedule] = []

    def headline(self) -> str:
        r = self.request
        return f"Amendment {r.amendment_id} · {r.account_id} · contract {r.contract_id}" if r else "Amendment"

    @workflow.query
    def state(self) -> AmendmentState:
        r = self.request
        return AmendmentState(
            amendment_id=r.amendment_id if r else "",
            account_id=r.account_id if r else "",
            contract_id=r.contract_id if r else "",
            status=self.status,
            stage=self.stage,
            problems=self.problems,
            proration=self.proration,
            approval=self.gate.snapshot(),
            attention=self.queue.attention,
            resolutions=self.queue.resolutions,
            invoice=self.invoice,
            tax_document=self.tax_document,
            journal_entry=self.journal_entry,
            schedules=self.schedules,
            compensated=self.saga.undone,
            events=self.events,
            updated_at=self.events[-1].at if self.events else None,
        )

    @workflow.run
    async def run(self, input: AmendmentInput) -> AmendmentResult:
        self.begin_release()
        r = self.request = input.request
        self.step_window = input.step_window
        self.trust(input.policy)
        self.legal_entities = input.legal_entities
        self.tag(customer=r.account_id, contract=r.contract_id)
        self.set_status(Status.RUNNING, "validating the request")

        subscription = await self.step(
            "read subscription",
            lambda: self.forward(BillingActivities.get_subscription, r.subscription_id),
            skippable=False,
        )
        try:
            validate_amendment(r, subscription)
        except InvalidAmendment as invalid:
            self.problems = invalid.problems
            return self.finish(Status.REJECTED, "request refused: " + "; ".join(invalid.problems))
        assert subscription is not None
        self.proration = prorate(subscription, r.lines, r.effective_date)
        self.set_stage(
            f"net proration {self.proration.net} over {self.proration.days_remaining}"
            f" of {self.proration.days_in_period} days"
        )

        # Since o2c-cash the thresholds are read in the contract currency; older runs read the
        # bare numbers. A currency the policy does not state stops the run before any change.
        per_currency = workflow.patched(RELEASE_CASH)
        uncovered = input.policy.uncovered(self.proration.monthly_after.currency) if per_currency else None
        if uncovered:
            self.problems = [uncovered]
            return self.finish(Status.REJECTED, f"request refused: {uncovered}")
        approval = amendment_approval(self.proration, input.policy, r.requested_by, per_currency=per_currency)
        if approval is not None:
            self.set_status(Status.AWAITING_APPROVAL, f"awaiting a {approval.required_role.value}")
            decision = await self.gate.wait(approval, input.policy, self._escalate)
            if decision is None:
                return self.finish(
                    Status.REJECTED, f"approval expired after {in_words(input.policy.expire_after)} unanswered"
                )
            if not decision.approved:
                return self.finish(Status.REJECTED, f"rejected by {decision.approver}: {decision.comment}")
            self.set_status(Status.RUNNING, f"approved by {decision.approver}")

        proration = self.proration
        rolled_back = await self.run_saga(
            lambda: self.apply(input, subscription, proration),
            lambda reason: self.finish(Status.ROLLED_BACK, f"rolled back: {reason}"),
        )
        if rolled_back is not None:
            return rolled_back
        await self.tell_customer(r.account_id, self._confirmation())
        return self.finish(Status.COMPLETED, "amendment booked")

    # -- the saga ---------------------------------------------------------------------------

    async def apply(self, input: AmendmentInput, subscription: Subscription, proration: Proration) -> None:
        r = input.request
        charged = [InvoiceLine(product=x.product, description=x.description, amount=x.amount) for x in proration.lines]
        # A change that prorates to nothing (identical lines, or cents too small to bill)
        # still updates the subscription and the seats, but invoices and posts nothing.
        quote = await self.quote_tax(r.account_id, r.currency, r.effective_date, charged) if charged else None

        self.set_stage("updating the subscription")
        restore = UpdateSubscription(
            subscription_id=subscription.id, lines=subscription.lines, step="subscription-restore"
        )
        self.saga.add("subscription", lambda: self.undo(BillingActivities.update_subscription, restore))
        change = UpdateSubscription(
            subscription_id=subscription.id, lines=amended_lines(subscription, r.lines), step="subscription-update"
        )
        await self.step(
            "subscription update", lambda: self.forward(BillingActivities.update_subscription, change), skippable=False
        )

        if not charged:
            self.note("nothing to invoice: the change prorates to zero")
        else:
            await self.book_invoice(
                account_id=r.account_id,
                subscription_id=subscription.id,
                currency=r.currency,
                document_date=r.effective_date,
                charged=charged,
                quote=quote,
                description=f"Proration for amendment {r.amendment_id}",
                metadata={"amendment_id": r.amendment_id, "contract_id": r.contract_id},
                entity=self.entity_for(input.legal_entities, self.account.legal_entity if self.account else ""),
                chart=input.chart,
                memo=f"Amendment {r.amendment_id}",
            )
        if self.release_2026_11:
            await self._record_revenue(input, subscription, proration)
        await self.set_seats(
            r.account_id, {x.product: x.quantity for x in r.lines}, {x.product: x.quantity for x in subscription.lines}
        )

    async def _record_revenue(self, input: AmendmentInput, subscription: Subscription, proration: Proration) -> None:
        """The modification through ASC 606: the contract's schedules as they stand now,
        modified prospectively (or a schedule of the change alone), saved in one go."""
        r = input.request
        existing = (
            await self.step(
                "read revenue schedules",
                lambda: self.forward(
                    ScheduleActivities.of_contract,
                    ContractSchedules(contract_id=r.contract_id, open_on=r.effective_date),
                ),
                skippable=False,
            )
            or []
        )
        entity = self.entity_for(input.legal_entities, self.account.legal_entity if self.account else "")
        # A reduction beyond what is unrecognised reverses revenue at once since the ledger
        # release; a run that recorded its schedules before it replays the old arithmetic,
        # which never refused a reduction (the refusal would skip the saving step).
        reverse_excess = self.release_ledger()
        try:
            change = amendment_schedules(
                existing,
                subscription,
                proration,
                r,
                legal_entity=entity.code,
                id_prefix=workflow.info().workflow_id,
                reverse_excess=reverse_excess,
            )
        except ValueError as problem:  # e.g. the contract's schedules are in another currency
            self.note(f"warning: revenue schedules not recorded: {problem}")
            return
        if not change.save and not change.delete:
            return
        before = {x.schedule_id: x for x in existing}
        undo = ReplaceSchedules(
            save=[before[i] for i in [*(x.schedule_id for x in change.save), *change.delete] if i in before],
            delete=[x.schedule_id for x in change.save if x.schedule_id not in before],
        )
        self.set_stage("recording the revenue schedules")
        self.saga.add("revenue schedules", lambda: self.undo(ScheduleActivities.replace, undo))
        await self.step(
            "revenue schedules",
            lambda: self.forward(ScheduleActivities.replace, ReplaceSchedules(save=change.save, delete=change.delete)),
            skippable=False,
        )
        self.schedules = change.save

    async def _escalate(self, request: ApprovalRequest) -> None:
        r = self.request
        assert r is not None
        await self.escalate_approval(
            f"Amendment {r.amendment_id} has waited 72 hours for approval",
            r.account_id,
            request.required_role.value,
            request.reasons,
        )

    def _confirmation(self) -> Notification:
        r = self.request
        p = self.proration
        assert r is not None and p is not None
        invoice = f" Invoice {self.invoice.id} for {self.invoice.total}." if self.invoice else ""
        return Notification(
            recipient="",
            template="amendment-confirmation",
            account_id=r.account_id,
            subject=f"Your subscription change {r.amendment_id} is confirmed",
            body=f"From {r.effective_date} your monthly charge is {p.monthly_after} (was {p.monthly_before})."
            + invoice,
        )

    def finish(self, status: Status, message: str) -> AmendmentResult:
        self.set_status(status, message)
        r = self.request
        assert r is not None
        return AmendmentResult(
            amendment_id=r.amendment_id,
            status=status,
            message=message,
            net=self.proration.net if self.proration else None,
            invoice_id=self.invoice.id if self.invoice else "",
            invoice_total=self.invoice.total if self.invoice else None,
            tax_document=self.tax_document.code if self.tax_document else "",
            journal_entry=self.journal_entry.external_id if self.journal_entry else "",
            compensated=self.saga.undone,
        )
