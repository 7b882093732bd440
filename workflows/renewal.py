"""RenewalWorkflow: from closed-won (or the renewal window opening) to the new term.

validate → price the new term → approve (uplift above the cap, discount above policy) →
carry out changes to the rest of the current term as a child amendment → end the current
subscription at the term boundary → wait, possibly for months, sending the renewal notices
and accepting seat or date changes and a cancellation → on the first day of the new term:
the new subscription, the first invoice with its tax, the journal entry, the revenue
schedule, and only then the entitlement, the CRM task and the customer's notice.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from enum import StrEnum

from temporalio import workflow


def renewal_workflow_id(contract_id: str, new_term_start: date) -> str:
    """Keyed by the new term's start, so a closed-won deal and the renewal window opening
    for the same term land on one workflow."""
    return f"renewal-{contract_id}-{new_term_start:%Y-%m-%d}"


with workflow.unsafe.imports_passed_through():
    from activities.billing import BillingActivities
    from activities.crm import CrmActivities
    from activities.erp import ErpActivities
    from activities.inputs import (
        CancelSubscription,
        CreateCustomer,
        CreateSubscription,
        CreateTask,
        EndSubscription,
        ReplaceSchedules,
        UpsertErpCustomer,
    )
    from activities.schedules import ScheduleActivities
    from canonical.approval import ApprovalPolicy
    from canonical.journal import ChartOfAccounts
    from canonical.models import (
        DEFAULT_ENTITIES,
        AmendmentRequest,
        ApprovalRequest,
        CrmTask,
        InvoiceLine,
        LegalEntity,
        Model,
        Notification,
        RevenueSchedule,
        Subscription,
        SubscriptionLine,
        SubscriptionTerm,
    )
    from canonical.money import Money
    from canonical.proration import line_amount
    from canonical.renewal import (
        RenewalChange,
        RenewalPolicy,
        RenewalRequest,
        current_term_amendment_id,
        price_new_term,
        renewal_approval,
        renewal_problems,
        term_value,
    )
    from canonical.revenue import ratable_schedule, renewal_schedules
    from workflows.amendment import AmendmentInput, AmendmentResult, AmendmentWorkflow, amendment_workflow_id
    from workflows.kit.approval import ApprovalState
    from workflows.kit.attention import Attention, Resolution
    from workflows.kit.booking import BookingWorkflow
    from workflows.kit.process import ProcessEvent
    from workflows.kit.status import Status


class RenewalOutcome(StrEnum):
    PENDING = "pending"
    RENEWED = "renewed"
    NOT_RENEWED = "not_renewed"
    REJECTED = "rejected"
    ROLLED_BACK = "rolled_back"


class RenewalInput(Model):
    request: RenewalRequest
    policy: RenewalPolicy = RenewalPolicy()
    approvals: ApprovalPolicy = ApprovalPolicy()
    chart: ChartOfAccounts = ChartOfAccounts()
    legal_entities: list[LegalEntity] = DEFAULT_ENTITIES
    step_window: timedelta = timedelta(hours=1)


class NonRenewal(Model):
    requested_by: str
    reason: str


class RenewalResult(Model):
    contract_id: str
    term: str
    status: Status
    outcome: RenewalOutcome
    message: str
    term_value: Money | None = None
    subscription_id: str = ""
    invoice_id: str = ""
    journal_entry: str = ""
    compensated: list[str] = []


class RenewalState(Model):
    contract_id: str
    term: str
    account_id: str
    status: Status
    stage: str
    outcome: RenewalOutcome
    problems: list[str] = []
    new_term_start: date | None = None
    new_term_end: date | None = None
    starts_at: datetime | None = None
    legal_entity: str = ""
    lines: list[SubscriptionLine] = []
    term_value: Money | None = None
    changes: list[RenewalChange] = []
    cancellation: NonRenewal | None = None
    notices_sent: list[int] = []
    approval: ApprovalState = ApprovalState()
    attention: Attention | None = None
    resolutions: list[Resolution] = []
    subscription_id: str = ""
    invoice_id: str = ""
    journal_entry: str = ""
    schedule: RevenueSchedule | None = None  # the first of `schedules`
    schedules: list[RevenueSchedule] = []
    compensated: list[str] = []
    events: list[ProcessEvent] = []


@workflow.defn
class RenewalWorkflow(BookingWorkflow):
    process = "renewal"
    # Before December 2026 a cancelled renewal left the current term's end and the new term in place.
    undone_before_2026_12 = frozenset({"failure", "abort"})

    def __init__(self) -> None:
        super().__init__()
        self.input: RenewalInput | None = None
        self.request: RenewalRequest | None = None
        self.current: Subscription | None = None
        self.lines: list[SubscriptionLine] = []
        self.value: Money | None = None
        self.outcome = RenewalOutcome.PENDING
        self.problems: list[str] = []
        self.changes: list[RenewalChange] = []
        self.cancellation: NonRenewal | None = None
        self.renewing = False  # the new term starts (False once the renewal was cancelled by the customer)
        self.notices_sent: list[int] = []
        self.waiting = False
        self.wake = False
        self.anchor: datetime | None = None
        self.anchor_date: date | None = None
        self.new_subscription: Subscription | None = None
        self.schedules: list[RevenueSchedule] = []

    def headline(self) -> str:
        r = self.request
        if r is None:
            return "Renewal"
        value = f" · {self.value}" if self.value else ""
        return f"Renewal {r.contract_id} term {r.term} · {r.account_id} · starts {r.new_term_start}{value}"

    # -- changes while the renewal waits for its term ---------------------------------------

    def _check_waiting(self) -> None:
        if not self.waiting:
            raise ValueError("the renewal is not waiting for its term (it has started, ended or not been accepted)")

    def _changed(self, change: RenewalChange) -> RenewalRequest:
        """The request as it stands after the change: lines replaced by product."""
        assert self.request is not None
        lines = {x.product: x for x in self.request.lines}
        lines.update({x.product: x for x in change.lines})
        return self.request.model_copy(
            update={
                "lines": list(lines.values()),
                "new_term_start": change.new_term_start or self.request.new_term_start,
            }
        )

    @workflow.update
    async def change(self, change: RenewalChange) -> str:
        self.request = self._changed(change)
        self.changes.append(change)
        self._price()
        self.wake = True
        self.note(
            f"changed by {change.requested_by}: "
            + ", ".join(
                [f"{x.product} {x.quantity}" for x in change.lines]
                + ([f"starts {change.new_term_start}"] if change.new_term_start else [])
            )
        )
        return f"new term value {self.value}"

    @change.validator
    def _validate_change(self, change: RenewalChange) -> None:
        self._check_waiting()
        assert self.request is not None and self.input is not None
        if not change.requested_by.strip():
            raise ValueError("say who asks for the change")
        if not change.lines and not change.new_term_start:
            raise ValueError("the change changes nothing")
        changed = self._changed(change)
        problems = [
            p
            for p in renewal_problems(
                changed,
                self.current,
                self.account,
                self.input.legal_entities,
                self.input.policy,
                today=workflow.now().date(),
            )
            if "must start when the current one ends" not in p
        ]
        if change.new_term_start and not workflow.now().date() < change.new_term_start < self.request.new_term_end:
            problems.append(
                f"the new start {change.new_term_start} must be in the future and before "
                f"the term ends ({self.request.new_term_end})"
            )
        if problems:
            raise ValueError("; ".join(problems))
        assert self.current is not None  # renewal_problems refuses a renewal without one
        lines = price_new_term(self.current, changed, self.input.policy)
        value = term_value(lines, changed.new_term_start, changed.new_term_end, self.current.currency)
        if renewal_approval(changed, lines, self.input.policy, value) and not self._approved():
            raise ValueError("this change needs approval under the renewal policy; cancel and renew again")

    @workflow.update
    async def cancel(self, cancellation: NonRenewal) -> str:
        self.cancellation = cancellation
        self.wake = True
        self.note(f"not renewed: {cancellation.reason} ({cancellation.requested_by})")
        return "the renewal is cancelled; the current term ends as planned"

    @cancel.validator
    def _validate_cancel(self, cancellation: NonRenewal) -> None:
        self._check_waiting()
        if not cancellation.requested_by.strip() or not cancellation.reason.strip():
            raise ValueError("a cancellation needs who asks and why")

    def _approved(self) -> bool:
        return bool(self.gate.decision and self.gate.decision.approved)

    # -- what an operator sees --------------------------------------------------------------

    @workflow.query
    def state(self) -> RenewalState:
        r = self.request
        return RenewalState(
            contract_id=r.contract_id if r else "",
            term=r.term if r else "",
            account_id=r.account_id if r else "",
            status=self.status,
            stage=self.stage,
            outcome=self.outcome,
            problems=self.problems,
            new_term_start=r.new_term_start if r else None,
            new_term_end=r.new_term_end if r else None,
            starts_at=self._time_of(r.new_term_start) if r and self.anchor else None,
            legal_entity=self._entity().code if self.input and self.account else "",
            lines=self.lines,
            term_value=self.value,
            changes=self.changes,
            cancellation=self.cancellation,
            notices_sent=self.notices_sent,
            approval=self.gate.snapshot(),
            attention=self.queue.attention,
            resolutions=self.queue.resolutions,
            subscription_id=self.new_subscription.id if self.new_subscription else "",
            invoice_id=self.invoice.id if self.invoice else "",
            journal_entry=self.journal_entry.external_id if self.journal_entry else "",
            schedule=self.schedules[0] if self.schedules else None,
            schedules=self.schedules,
            compensated=self.saga.undone,
            events=self.events,
        )

    # -- the process ------------------------------------------------------------------------

    @workflow.run
    async def run(self, input: RenewalInput) -> RenewalResult:
        self.begin_release()
        self.input, r = input, input.request
        self.trust(input.approvals)
        self.request = r
        self.step_window = input.step_window
        self.legal_entities = input.legal_entities
        self.tag(customer=r.account_id, contract=r.contract_id)
        self.set_status(Status.RUNNING, "validating the renewal")
        self.current = await self.step(
            "read subscription",
            lambda: self.forward(BillingActivities.get_subscription, r.subscription_id),
            skippable=False,
        )
        self.account = await self.step(
            "read customer", lambda: self.forward(BillingActivities.get_account, r.account_id), skippable=False
        )
        self.problems = renewal_problems(
            r, self.current, self.account, input.legal_entities, input.policy, today=workflow.now().date()
        )
        if self.problems:
            return self.finish(Status.REJECTED, RenewalOutcome.REJECTED, "renewal refused: " + "; ".join(self.problems))
        self._price()
        assert self.value is not None

        approval = renewal_approval(r, self.lines, input.policy, self.value)
        if approval is not None:
            self.set_status(Status.AWAITING_APPROVAL, f"awaiting a {approval.required_role.value}")
            decision = await self.gate.wait(approval, input.approvals, self._escalate)
            if decision is None or not decision.approved:
                why = f"rejected by {decision.approver}: {decision.comment}" if decision else "approval expired"
                return self.finish(Status.REJECTED, RenewalOutcome.REJECTED, why)
            self.set_status(Status.RUNNING, f"approved by {decision.approver}")

        rolled_back = await self.run_saga(
            self._book,
            lambda reason: self.finish(Status.ROLLED_BACK, RenewalOutcome.ROLLED_BACK, f"rolled back: {reason}"),
        )
        if rolled_back is not None:
            return rolled_back
        if not self.renewing:
            return self.finish(
                Status.COMPLETED,
                RenewalOutcome.NOT_RENEWED,
                f"not renewed: {self.cancellation.reason}" if self.cancellation else "not renewed",
            )
        await self._welcome()
        return self.finish(Status.COMPLETED, RenewalOutcome.RENEWED, f"renewed for {self.value}")

    async def _book(self) -> None:
        """Accept, wait for the new term, start it: the part that a failure or a cancellation undoes."""
        await self._accept()
        self.renewing = await self._wait_for_term()
        if self.renewing:
            await self._start_term()

    def _price(self) -> None:
        assert self.input is not None and self.request is not None and self.current is not None
        r = self.request
        self.lines = price_new_term(self.current, r, self.input.policy)
        self.value = term_value(self.lines, r.new_term_start, r.new_term_end, self.current.currency)

    def _entity(self) -> LegalEntity:
        assert self.input is not None and self.request is not None
        code = self.request.legal_entity or (self.account.legal_entity if self.account else "")
        return self.entity_for(self.input.legal_entities, code)

    async def _accept(self) -> None:
        """What happens as soon as the renewal is accepted."""
        assert self.request is not None and self.current is not None and self.input is not None
        r = self.request
        if r.current_term_changes:
            self.set_stage("amending the rest of the current term")
            amendment = AmendmentRequest(
                amendment_id=current_term_amendment_id(r),
                contract_id=r.contract_id,
                subscription_id=r.subscription_id,
                account_id=r.account_id,
                currency=self.current.currency,
                effective_date=workflow.now().date(),
                lines=r.current_term_changes,
                requested_by=r.requested_by,
                reason=f"agreed with the {r.term} renewal",
            )
            result: AmendmentResult = await workflow.execute_child_workflow(
                AmendmentWorkflow.run,
                AmendmentInput(
                    request=amendment,
                    policy=self.input.approvals,
                    chart=self.input.chart,
                    legal_entities=self.input.legal_entities,
                ),
                id=amendment_workflow_id(amendment.amendment_id),
            )
            self.note(f"current-term amendment {result.status.value}: {result.message}")
        # The new term is a new subscription: the current one must stop at the boundary, or
        # the customer is billed twice. Undone only if the renewal itself is rolled back.
        self.saga.add(
            "current term end",
            lambda: self.undo(
                BillingActivities.end_subscription,
                EndSubscription(subscription_id=r.subscription_id, at=None, step="current-term-runs-on"),
            ),
        )
        await self.step(
            "end the current term at the boundary",
            lambda: self.forward(
                BillingActivities.end_subscription,
                EndSubscription(subscription_id=r.subscription_id, at=r.new_term_start, step="current-term-ends"),
            ),
            skippable=False,
        )

    def _time_of(self, day: date) -> datetime:
        """When a calendar date arrives, on the policy's clock (one day is one day in
        production; shorter on a test stack)."""
        assert self.anchor is not None and self.anchor_date is not None and self.input is not None
        return self.anchor + self.input.policy.day * (day - self.anchor_date).days

    async def _wait_for_term(self) -> bool:
        """Wait for the first day of the new term, sending the notices on the way. False
        when the renewal was cancelled meanwhile."""
        assert self.request is not None and self.input is not None
        self.anchor, self.anchor_date = workflow.now(), workflow.now().date()
        self.waiting = True
        try:
            while True:
                if self.cancellation:
                    return False
                r = self.request
                due = [
                    (r.new_term_start - timedelta(days=n), n)
                    for n in self.input.policy.notice_days_before_end
                    if n not in self.notices_sent and r.new_term_start - timedelta(days=n) >= self.anchor_date
                ]
                target, notice = min(due) if due else (r.new_term_start, None)
                self.set_stage(
                    f"waiting for {'the ' + str(notice) + '-day notice' if notice else 'the term'}: {target}"
                )
                self.wake = False
                seconds = (self._time_of(target) - workflow.now()).total_seconds()
                if seconds > 0:
                    try:
                        await workflow.wait_condition(lambda: self.wake, timeout=seconds)
                        continue  # changed or cancelled: look again
                    except TimeoutError:
                        pass
                if notice is None:
                    return True
                await self._notice(notice)
        finally:
            self.waiting = False

    async def _notice(self, days: int) -> None:
        r = self.request
        assert r is not None
        notice = Notification(
            recipient="",
            template=f"renewal-notice-{days}",
            account_id=r.account_id,
            subject=f"Your subscription renews on {r.new_term_start}",
            body=f"Your contract {r.contract_id} renews for the {r.term} term on {r.new_term_start} "
            f"at {self.value}. Reply to this message if anything should change.",
        )
        await self.tell_customer(r.account_id, notice, step=f"renewal-notice-{days}")
        self.notices_sent.append(days)

    async def _start_term(self) -> None:
        """The first day of the new term, as a saga."""
        assert self.request is not None and self.input is not None and self.current is not None
        account = self.account
        assert account is not None
        r, entity = self.request, self._entity()
        wid = workflow.info().workflow_id
        account_id = r.account_id
        if entity.code != account.legal_entity:
            # Moving entity: the customer is created in the new entity's billing and ERP.
            # Creating a customer changes no money, so it needs no undo.
            self.set_stage(f"creating the customer in {entity.code}")
            moved = await self.step(
                f"customer in {entity.code}",
                lambda: self.forward(
                    BillingActivities.create_customer,
                    CreateCustomer(
                        account=account.model_copy(update={"legal_entity": entity.code}),
                        billing_account=entity.billing_account,
                        step=f"customer-{entity.code}",
                    ),
                ),
                skippable=False,
            )
            account_id = moved.id
            await self.step(
                f"ERP customer in {entity.code}",
                lambda: self.forward(
                    ErpActivities.upsert_customer, UpsertErpCustomer(account=moved, subsidiary=entity.erp_subsidiary)
                ),
                skippable=False,
            )

        self.set_stage("creating the new term in billing")
        term = SubscriptionTerm(
            account_id=account_id,
            contract_id=r.contract_id,
            currency=self.current.currency,
            lines=self.lines,
            term_start=r.new_term_start,
            term_end=r.new_term_end,
            legal_entity=entity.code,
        )
        create = CreateSubscription(term=term, billing_account=entity.billing_account, step="new-term")
        self.saga.add("new term", lambda: self._cancel_new_term(create))
        self.new_subscription = await self.step(
            "new term", lambda: self.forward(BillingActivities.create_subscription, create), skippable=False
        )
        assert self.new_subscription is not None

        first_period = [
            InvoiceLine(
                product=x.product,
                description=f"{x.quantity} x {x.description or x.product}, first month of the {r.term} term",
                amount=line_amount(x),
            )
            for x in self.lines
        ]
        quote = await self.quote_tax(r.account_id, self.current.currency, r.new_term_start, first_period)
        await self.book_invoice(
            account_id=account_id,
            subscription_id=self.new_subscription.id,
            currency=self.current.currency,
            document_date=r.new_term_start,
            charged=first_period,
            quote=quote,
            description=f"Renewal {r.contract_id} {r.term}: first month",
            metadata={"contract_id": r.contract_id, "term": r.term},
            entity=entity,
            chart=self.input.chart,
            memo=f"Renewal {r.contract_id} {r.term}",
            billing_account=entity.billing_account,
        )

        assert self.value is not None
        if self.release_2026_11:
            # One obligation per product, the term's price allocated by standalone selling price.
            schedules = renewal_schedules(
                lines=self.lines,
                start=r.new_term_start,
                end=r.new_term_end,
                value=self.value,
                policy=self.input.policy,
                id_prefix=wid,
                contract_id=r.contract_id,
                account_id=account_id,
                legal_entity=entity.code,
                booked_on=self.anchor_date or r.new_term_start,
            )
            self.set_stage("recording the revenue schedules")
            self.saga.add(
                "revenue schedules",
                lambda: self.undo(
                    ScheduleActivities.replace, ReplaceSchedules(delete=[x.schedule_id for x in schedules])
                ),
            )
            await self.step(
                "revenue schedules", lambda: self.forward(ScheduleActivities.replace, ReplaceSchedules(save=schedules))
            )
            self.schedules = schedules
        else:  # renewals started before ASC 606 allocation: one ratable schedule for the term
            schedule = ratable_schedule(
                schedule_id=f"{wid}-subscription",
                contract_id=r.contract_id,
                account_id=account_id,
                legal_entity=entity.code,
                obligation="subscription",
                total=self.value,
                start=r.new_term_start,
                end=r.new_term_end,
            )
            self.set_stage("recording the revenue schedule")
            self.saga.add("revenue schedule", lambda: self.undo(ScheduleActivities.delete, schedule.schedule_id))
            await self.step("revenue schedule", lambda: self.forward(ScheduleActivities.save, schedule))
            self.schedules = [schedule]

        await self.set_seats(
            r.account_id,
            {x.product: x.quantity for x in self.lines},
            {x.product: x.quantity for x in self.current.lines},
        )

    async def _cancel_new_term(self, create: CreateSubscription) -> None:
        if self.new_subscription is None and "new term" not in self.unsettled:
            return  # billing refused it: nothing to cancel
        # Billing never answered: the same request under the same key replays what it made.
        subscription = self.new_subscription
        if subscription is None:
            subscription = await self.undo(BillingActivities.create_subscription, create)
        await self.undo(
            BillingActivities.cancel_subscription,
            CancelSubscription(subscription_id=subscription.id, step="new-term-cancel"),
        )

    async def _welcome(self) -> None:
        """After the money is booked: the CRM task and the customer's notice."""
        assert self.request is not None and self.current is not None
        r = self.request
        before = {x.product: x.quantity for x in self.current.lines}
        grew = any(x.quantity > before.get(x.product, 0) for x in self.lines)
        moved = self.account is not None and self._entity().code != self.account.legal_entity
        kind = (
            "onboarding"
            if moved or any(x.product not in before for x in self.lines)
            else ("expansion" if grew else "renewal check-in")
        )
        owner = (self.account.success_owner if self.account else "") or "account-team"
        task = CrmTask(
            account_id=r.account_id,
            owner=owner,
            subject=f"{kind.title()}: {r.contract_id} {r.term}",
            body=f"The {r.term} term starts {r.new_term_start} at {self.value}.",
        )
        await self.step(
            "CRM task",
            lambda: self.forward(
                CrmActivities.create_task, CreateTask(task=task, step=f"crm-{kind.replace(' ', '-')}")
            ),
            must_finish=True,
        )
        await self.tell_customer(
            r.account_id,
            Notification(
                recipient="",
                template="renewal-confirmation",
                account_id=r.account_id,
                subject=f"Your {r.term} term has started",
                body=f"Thank you for renewing. The {r.term} term runs {r.new_term_start} to {r.new_term_end}.",
            ),
            step="renewal-confirmation",
        )

    async def _escalate(self, request: ApprovalRequest) -> None:
        r = self.request
        assert r is not None
        await self.escalate_approval(
            f"Renewal {r.contract_id} {r.term} has waited for approval",
            r.account_id,
            request.required_role.value,
            request.reasons,
        )

    def finish(self, status: Status, outcome: RenewalOutcome, message: str) -> RenewalResult:
        self.outcome = outcome
        self.set_status(status, message)
        r = self.request
        assert r is not None
        return RenewalResult(
            contract_id=r.contract_id,
            term=r.term,
            status=status,
            outcome=outcome,
            message=message,
            term_value=self.value,
            subscription_id=self.new_subscription.id if self.new_subscription else "",
            invoice_id=self.invoice.id if self.invoice else "",
            journal_entry=self.journal_entry.external_id if self.journal_entry else "",
            compensated=self.saga.undone,
        )
