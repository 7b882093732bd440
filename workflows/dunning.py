"""DunningWorkflow: from a failed payment to cash, a cancelled subscription or a write-off.

Day 0 is the first failed payment. The policy's calendar says what happens on which day:
retries, notices with escalating wording, an ERP collection case moved through its stages,
restriction of service (with approval) and finally cancellation and a write-off (with
approval). Payment at any moment stops everything, undoes the pressure (case closed,
restriction lifted, CRM flag cleared) and thanks the customer. Every side effect has an
idempotency key derived from this workflow and its business step, so redelivered webhooks,
activity retries and worker restarts never send a second notice or post a second entry.
"""

from __future__ import annotations

import functools
from datetime import date, datetime
from enum import StrEnum
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.types import MethodAsyncSingleParam

with workflow.unsafe.imports_passed_through():
    from pydantic import ConfigDict

    from activities.billing import BillingActivities
    from activities.crm import CrmActivities
    from activities.dunning import CardAttemptActivities, ReserveCardAttempt
    from activities.entitlements import EntitlementActivities
    from activities.erp import ErpActivities
    from activities.inputs import (
        CancelSubscription,
        CreateTask,
        FlagAccount,
        InvoiceStep,
        SendNotification,
        SetRestriction,
    )
    from activities.notifications import NotificationActivities
    from canonical.approval import ApprovalPolicy
    from canonical.dunning import (
        DUNNING_FLAG,
        THANKS,
        DunningAction,
        DunningPolicies,
        DunningPolicy,
        NoticeWording,
        is_hard_decline,
        within_network_limit,
    )
    from canonical.journal import (
        ChartOfAccounts,
        WriteOffMethod,
        WriteOffSplit,
        split_write_off,
        unserved_amount,
        write_off_entry,
    )
    from canonical.models import (
        COLLECTION_CASE_ERPS,
        DEBTOR_LINE_ERPS,
        DEFAULT_ENTITIES,
        ERP_NAMES,
        Account,
        ApprovalDecision,
        ApprovalRequest,
        ApproverRole,
        CollectionCase,
        CrmTask,
        Invoice,
        LegalEntity,
        Model,
        Notification,
        PaymentAttempt,
        PaymentEvent,
        PaymentEventKind,
        PaymentOutcome,
    )
    from canonical.money import Money
    from workflows.kit.approval import ApprovalState
    from workflows.kit.attention import Attention, Resolution
    from workflows.kit.process import RELEASE_CASH, ProcessEvent, ProcessWorkflow
    from workflows.kit.status import Status

PAYMENT_EVENT_SIGNAL = "payment_event"
SEEN_EVENTS_KEPT = 500

A = TypeVar("A")  # an activity's one argument
R = TypeVar("R")


def dunning_workflow_id(invoice_id: str) -> str:
    return f"dunning-{invoice_id}"


class DunningOutcome(StrEnum):
    OPEN = "open"
    CASH = "cash"
    CANCELLED = "cancelled"
    WRITTEN_OFF = "written_off"


class DunningProgress(Model):
    """What a dunning has done so far: carried across continue-as-new. The workflow
    updates it in place, so unlike other models it is not frozen."""

    model_config = ConfigDict(frozen=False)

    anchor: datetime | None = None  # day 0, moved later by time spent paused in disputes
    done: list[str] = []  # calendar entries carried out, as "action@day"
    seen_events: list[str] = []
    attempts: list[PaymentAttempt] = []
    attempted_at: list[datetime] = []
    balance: Money | None = None
    hard_declined: bool = False
    retry_requested: str = ""  # the event that asked for an immediate retry
    paused_since: datetime | None = None
    paid: bool = False
    restricted: bool = False
    cancelled: bool = False
    case_stage: str = ""
    restriction_decision: ApprovalDecision | None = None
    write_off_decision: ApprovalDecision | None = None
    # Since o2c-cash: the day the dunning cancelled the subscription (service billed ahead for
    # later periods is credited, not written off), and the retries the card's limit refused.
    cancelled_on: date | None = None
    card_limited: list[str] = []


class DunningInput(Model):
    invoice_id: str
    account_id: str = ""
    subscription_id: str = ""
    policies: DunningPolicies = DunningPolicies()
    approvals: ApprovalPolicy = ApprovalPolicy()
    chart: ChartOfAccounts = ChartOfAccounts()
    legal_entities: list[LegalEntity] = DEFAULT_ENTITIES
    carried: DunningProgress | None = None


class DunningResult(Model):
    invoice_id: str
    outcome: DunningOutcome
    message: str
    balance: Money | None = None
    attempts: int = 0
    write_off_entry: str = ""


class DunningState(Model):
    invoice_id: str
    account_id: str
    status: Status
    stage: str
    outcome: DunningOutcome
    day: float
    balance: Money | None
    next_action: str = ""
    next_action_at: datetime | None = None
    paused: bool = False
    hard_declined: bool = False
    restricted: bool = False
    cancelled: bool = False
    attempts: list[PaymentAttempt] = []
    notices_sent: list[int] = []
    case_stage: str = ""
    approval: ApprovalState = ApprovalState()
    restriction_decision: ApprovalDecision | None = None
    write_off_decision: ApprovalDecision | None = None
    card: str = ""  # the card the invoice is charged to (its fingerprint), when billing names one
    card_limited: list[str] = []  # retries not made: the card's 30-day limit was reached
    write_off_split: WriteOffSplit | None = None
    attention: Attention | None = None
    resolutions: list[Resolution] = []
    events: list[ProcessEvent] = []


@workflow.defn
class DunningWorkflow(ProcessWorkflow):
    process = "dunning"

    def __init__(self) -> None:
        super().__init__()
        self.input: DunningInput | None = None
        self.progress = DunningProgress()
        self.policy = DunningPolicy()
        self.account: Account | None = None
        self.outcome = DunningOutcome.OPEN
        self.next_action = ""
        self.next_action_at: datetime | None = None
        self.events_before_start: list[PaymentEvent] = []
        self.approval_kind = ""
        # Runs since o2c-cash (decided first thing in run(); signals that come before it are
        # looked at again in _start): the attempt limit per card, the new hard declines,
        # policy amounts per currency, write-offs by the write-off policy.
        self.since_cash = False
        self.invoice: Invoice | None = None
        self.card = ""
        self.card_stale = False
        self.write_off_split: WriteOffSplit | None = None

    # -- what comes in ----------------------------------------------------------------------

    @workflow.signal(name=PAYMENT_EVENT_SIGNAL)
    def payment_event(self, event: PaymentEvent) -> None:
        """Apply an event at once (so a payment interrupts any wait). Delivery is at least
        once and unordered: an event ID seen before changes nothing."""
        if event.event_id in self.progress.seen_events:
            return
        self.progress.seen_events = [*self.progress.seen_events, event.event_id][-SEEN_EVENTS_KEPT:]
        if self.progress.anchor is None and event.kind == PaymentEventKind.PAYMENT_FAILED:
            self.events_before_start.append(event)
        if event.kind == PaymentEventKind.PAID:
            self.progress.paid = True
        elif event.kind in (PaymentEventKind.BALANCE_CHANGED, PaymentEventKind.PAYMENT_FAILED):
            if event.amount_remaining is not None:
                self.progress.balance = event.amount_remaining
                self.progress.paid = self.progress.paid or event.amount_remaining.is_zero
            if event.decline_code and is_hard_decline(event.decline_code, since_cash=self.since_cash):
                self.progress.hard_declined = True
        elif event.kind == PaymentEventKind.DISPUTE_OPENED and self.progress.paused_since is None:
            self.progress.paused_since = workflow.now()
        elif event.kind == PaymentEventKind.DISPUTE_CLOSED and self.progress.paused_since is not None:
            # The calendar resumes where it stopped: the pause moves day 0 later.
            if self.progress.anchor is not None:
                self.progress.anchor += workflow.now() - self.progress.paused_since
            self.progress.paused_since = None
        elif event.kind == PaymentEventKind.PAYMENT_METHOD_UPDATED:
            self.progress.hard_declined = False
            self.progress.retry_requested = event.event_id
            self.card_stale = True  # the next retry may charge another card: read it again
        if self.events:
            self.note(f"received {event.kind.value} ({event.event_id})")

    # -- what an operator sees ----------------------------------------------------------------

    def headline(self) -> str:
        i = self.input
        balance = f" · balance {self.progress.balance}" if self.progress.balance else ""
        return f"Dunning {i.invoice_id} · {i.account_id}{balance}" if i else "Dunning"

    def describe(self) -> str:
        text = super().describe()
        if self.progress.paused_since:
            return f"{text} · paused: dispute open"
        if self.next_action and self.status == Status.RUNNING:
            when = self.next_action_at.strftime("%Y-%m-%d %H:%M") if self.next_action_at else ""
            return f"{text} · next: {self.next_action} at {when} UTC"
        return text

    def day(self) -> float:
        if self.progress.anchor is None:
            return 0.0
        now = self.progress.paused_since or workflow.now()
        return (now - self.progress.anchor) / self.policy.day

    @workflow.query
    def state(self) -> DunningState:
        i = self.input
        return DunningState(
            invoice_id=i.invoice_id if i else "",
            account_id=i.account_id if i else "",
            status=self.status,
            stage=self.stage,
            outcome=self.outcome,
            day=round(self.day(), 3),
            balance=self.progress.balance,
            next_action=self.next_action,
            next_action_at=self.next_action_at,
            paused=self.progress.paused_since is not None,
            hard_declined=self.progress.hard_declined,
            restricted=self.progress.restricted,
            cancelled=self.progress.cancelled,
            attempts=self.progress.attempts,
            notices_sent=[int(d.split("@")[1]) for d in self.progress.done if d.startswith("notice@")],
            case_stage=self.progress.case_stage,
            approval=self.gate.snapshot(),
            restriction_decision=self.progress.restriction_decision,
            write_off_decision=self.progress.write_off_decision,
            card=self.card,
            card_limited=self.progress.card_limited,
            write_off_split=self.write_off_split,
            attention=self.queue.attention,
            resolutions=self.queue.resolutions,
            events=self.events,
        )

    # -- the process ---------------------------------------------------------------------------

    @workflow.run
    async def run(self, input: DunningInput) -> DunningResult:
        self.begin_release()
        self.since_cash = workflow.patched(RELEASE_CASH)
        self.input = input
        self.trust(input.approvals)
        if input.carried:
            self.progress = input.carried
        self.tag(customer=input.account_id, invoice=input.invoice_id)
        self.set_status(Status.RUNNING, "reading the invoice and the customer")

        invoice = await self.task("read invoice", BillingActivities.get_invoice, input.invoice_id)
        if invoice is None:
            return self.finish(
                Status.FAILED, DunningOutcome.OPEN, f"invoice {input.invoice_id} does not exist in billing"
            )
        self.account = await self.task(
            "read customer", BillingActivities.get_account, input.account_id or invoice.account_id
        )
        self.policy = input.policies.for_segment(self.account.segment if self.account else "default")
        if self.since_cash:
            self.invoice, self.card = invoice, invoice.payment_method
            arr = self.account.annual_recurring_revenue if self.account else None
            uncovered = arr is not None and not self.policy.strategic_arr_thresholds.covers(arr.currency)
            if uncovered and arr is not None:
                return self.finish(
                    Status.FAILED,
                    DunningOutcome.OPEN,
                    f"dunning refused: the dunning policy states no strategic ARR threshold in {arr.currency} "
                    f"(it covers {', '.join(sorted(self.policy.strategic_arr_thresholds.amounts))})",
                )
        if self.progress.anchor is None:
            self._start(invoice)

        if not self.progress.paid:
            await self._open_case()
        while not self.progress.paid:
            if workflow.info().is_continue_as_new_suggested():
                await workflow.wait_condition(workflow.all_handlers_finished)
                workflow.continue_as_new(input.model_copy(update={"carried": self.progress}))
            entry = self._next_entry()
            if entry is None:
                break
            day, action = entry
            if not await self._wait_for_day(day, action):
                continue  # paid, or an immediate retry was asked for: look again
            await self._carry_out(day, action)
            self.progress.done = [*self.progress.done, f"{action.value}@{day}"]
        return await self._conclude()

    def _start(self, invoice: Invoice) -> None:
        first = min((e.occurred_at for e in self.events_before_start), default=workflow.now())
        self.progress.anchor = min(first, workflow.now())
        if self.progress.balance is None:
            self.progress.balance = invoice.amount_remaining or invoice.total
        if is_hard_decline(invoice.last_decline_code, since_cash=self.since_cash):
            self.progress.hard_declined = True  # no retry until the customer brings another card
        if self.since_cash and any(is_hard_decline(e.decline_code) for e in self.events_before_start):
            self.progress.hard_declined = True  # the first events came before run() knew the release
        if invoice.status == "paid" or (self.progress.balance is not None and self.progress.balance.is_zero):
            self.progress.paid = True
        self.set_stage(f"dunning {self.progress.balance} from {self.progress.anchor:%Y-%m-%d}")

    def _next_entry(self) -> tuple[int, DunningAction] | None:
        for day, action in self.policy.calendar():
            if f"{action.value}@{day}" not in self.progress.done:
                return day, action
        return None

    def _due(self, day: int) -> datetime:
        assert self.progress.anchor is not None
        return self.progress.anchor + self.policy.day * day

    async def _wait_for_day(self, day: int, action: DunningAction) -> bool:
        """Sleep until the entry is due. False when something else must happen first."""
        self.next_action, self.next_action_at = f"{action.value} (day {day})", self._due(day)
        workflow.set_current_details(self.describe())
        while True:
            if self.progress.paid:
                return False
            paused = self.progress.paused_since is not None
            if self.progress.retry_requested and not paused:
                await self._retry(f"retry-after-{self.progress.retry_requested}", "retry with the new payment method")
                self.progress.retry_requested = ""
                return False
            remaining = (self._due(day) - workflow.now()).total_seconds()
            if remaining <= 0 and not paused:
                return True
            try:
                await workflow.wait_condition(
                    functools.partial(self._woken, paused), timeout=None if paused else remaining
                )
            except TimeoutError:
                pass

    def _woken(self, paused: bool) -> bool:
        """Wake for a payment, a new card, or a dispute opening or closing."""
        return (
            self.progress.paid
            or (bool(self.progress.retry_requested) and not paused)
            or (self.progress.paused_since is not None) != paused
        )

    async def _carry_out(self, day: int, action: DunningAction) -> None:
        await self._move_case(self.policy.case_stage(day))
        if action == DunningAction.RETRY:
            await self._retry(f"retry-day-{day}", f"scheduled retry on day {day}")
        elif action == DunningAction.NOTICE:
            await self._notice(day)
        elif action == DunningAction.RESTRICT:
            await self._restrict(day)
        elif action == DunningAction.CANCEL:
            await self._cancel_and_write_off(day)

    # -- the actions -------------------------------------------------------------------------

    async def _retry(self, step: str, why: str) -> None:
        assert self.input is not None
        if self.progress.hard_declined:
            self.note(f"no {why}: the card was declined for good; waiting for a new payment method")
            return
        if not within_network_limit(self.progress.attempted_at, workflow.now(), self.policy.max_attempts_per_30_days):
            self.note(
                f"no {why}: the card network's limit of {self.policy.max_attempts_per_30_days} "
                "attempts in 30 days is reached"
            )
            return
        if self.since_cash and not await self._reserve_card_attempt(step, why):
            return
        self.set_stage(f"{why}: charging {self.progress.balance}")
        attempt = await self.task(
            f"payment {step}", BillingActivities.retry_payment, InvoiceStep(invoice_id=self.input.invoice_id, step=step)
        )
        if attempt is None:
            return
        self.progress.attempts = [*self.progress.attempts, attempt]
        self.progress.attempted_at = [*self.progress.attempted_at, workflow.now()]
        self.progress.balance = attempt.amount_remaining
        if attempt.outcome == PaymentOutcome.SUCCEEDED:
            self.progress.paid = attempt.amount_remaining.is_zero
            self.note(f"payment collected: {attempt.amount_paid} paid, {attempt.amount_remaining} remaining")
        else:
            self.progress.hard_declined = is_hard_decline(attempt.decline_code)
            kind = "hard" if self.progress.hard_declined else "soft"
            self.note(f"declined ({kind}: {attempt.decline_code or 'no code'})")

    async def _reserve_card_attempt(self, step: str, why: str) -> bool:
        """Since o2c-cash the limit holds per card, over every invoice charged to it: reserve
        this attempt in o2c's card ledger first. An invoice billing names no card for is
        counted alone, as before."""
        assert self.input is not None
        if self.card_stale:
            fresh = await self.task("read the invoice's card", BillingActivities.get_invoice, self.input.invoice_id)
            self.card, self.card_stale = (fresh.payment_method if fresh else self.card), False
        if not self.card:
            return True
        limit = self.policy.max_attempts_per_30_days
        reserved = await self.task(
            f"reserve a card attempt for {step}",
            CardAttemptActivities.reserve_attempt,
            ReserveCardAttempt(card=self.card, step=f"card-{step}", at=workflow.now(), limit=limit),
        )
        if not reserved:
            self.progress.card_limited = [*self.progress.card_limited, step]
            self.note(
                f"no {why}: the card has had {limit} attempts in 30 days across the customer's invoices, "
                "the card network's limit"
            )
        return bool(reserved)

    async def _notice(self, day: int) -> None:
        wording = self.policy.notices.get(day) or self.policy.notices[max(self.policy.notices)]
        self.set_stage(f"sending the day-{day} notice")
        await self._send(f"notice-day-{day}", f"dunning-day-{day}", wording)

    async def _send(self, step: str, template: str, wording: NoticeWording, recipient: str = "") -> None:
        assert self.input is not None
        to = recipient or (self.account.email if self.account else "")
        if not to:
            self.note(f"no e-mail address for {self.input.account_id}: {template} not sent")
            return
        fill = {"invoice": self.input.invoice_id, "balance": str(self.progress.balance)}
        notice = Notification(
            recipient=to,
            template=template,
            subject=wording.subject.format(**fill),
            body=wording.body.format(**fill),
            account_id=self.input.account_id,
        )
        await self.task(
            f"send {template}", NotificationActivities.send, SendNotification(notification=notice, step=step)
        )

    async def _open_case(self) -> None:
        """Day 0: the collection case, the CRM flag and, for strategic accounts, the owner."""
        assert self.input is not None
        if "opened@0" in self.progress.done:
            return
        await self._move_case(self.policy.case_stage(0))
        await self.task(
            "flag the CRM account",
            CrmActivities.flag_account,
            FlagAccount(account_id=self.input.account_id, flag=DUNNING_FLAG, on=True),
        )
        if self._strategic() and self.account and self.account.success_owner:
            task = CrmTask(
                account_id=self.input.account_id,
                owner=self.account.success_owner,
                subject=f"Strategic account in dunning: invoice {self.input.invoice_id}",
                body=f"{self.progress.balance} failed to collect. Reach out before the day-3 reminder.",
            )
            await self.task(
                "alert the customer success owner",
                CrmActivities.create_task,
                CreateTask(task=task, step="success-owner-alert"),
            )
        self.progress.done = [*self.progress.done, "opened@0"]

    async def _move_case(self, stage: str, status: str = "open") -> None:
        assert self.input is not None and self.progress.balance is not None
        if stage == self.progress.case_stage:
            return
        entity = self._entity()
        if entity.erp not in COLLECTION_CASE_ERPS:
            # No released run takes this path: before this release every entity booked in
            # NetSuite, so no patch guards it.
            self.note(f"collection case {stage}: not kept, {entity.code} books in {ERP_NAMES[entity.erp]}")
            self.progress.case_stage = stage
            return
        case = CollectionCase(
            external_id=f"{workflow.info().workflow_id}-case",
            account_id=self.input.account_id,
            invoice_id=self.input.invoice_id,
            amount=self.progress.balance,
            stage=stage,
            status=status,
            subsidiary=self._subsidiary(),
        )
        await self.task(f"collection case: {stage}", ErpActivities.upsert_collection_case, case)
        self.progress.case_stage = stage

    def _subsidiary(self) -> str:
        """The ERP subsidiary of the legal entity that booked the customer."""
        return self._entity().erp_subsidiary

    def _entity(self) -> LegalEntity:
        assert self.input is not None
        code = self.account.legal_entity if self.account else ""
        return self.entity_for(self.input.legal_entities, code)

    def _strategic(self) -> bool:
        """Runs since o2c-cash read the threshold in the ARR's currency (run() refused one the
        policy does not state); older runs the bare number."""
        arr = self.account.annual_recurring_revenue if self.account else None
        return self.policy.is_strategic(arr, per_currency=self.since_cash)

    async def _approval(self, kind: str, role: ApproverRole, reasons: list[str]) -> ApprovalDecision | None:
        """Ask the approval gate; a payment meanwhile withdraws the question."""
        assert self.input is not None and self.progress.balance is not None
        request = ApprovalRequest(
            required_role=role, reasons=reasons, requested_by="o2c-dunning", amount=self.progress.balance
        )
        timing = self.input.approvals
        if not self.release_console():
            # Runs before o2c-console waited 3 and 7 dunning days: on a stack whose day lasts a
            # second, 7 seconds, before anyone could answer.
            timing = timing.model_copy(
                update={"escalate_after": self.policy.day * 3, "expire_after": self.policy.day * 7}
            )
        self.approval_kind = kind
        self.set_status(Status.AWAITING_APPROVAL, f"awaiting a {role.value} to {kind}")
        decision = await self.gate.wait(request, timing, self._escalate, interrupt=lambda: self.progress.paid)
        if decision is None and self.progress.paid:
            self.gate.withdraw()
        self.set_status(
            Status.RUNNING,
            f"{kind}: "
            + (
                "withdrawn, the invoice is paid"
                if self.progress.paid
                else f"{'approved' if decision.approved else 'refused'} by {decision.approver}"
                if decision
                else "no answer in time"
            ),
        )
        return decision

    async def _escalate(self, request: ApprovalRequest) -> None:
        assert self.input is not None
        notice = NoticeWording(
            subject=f"Dunning {self.input.invoice_id} waits for a {request.required_role.value}",
            body="; ".join(request.reasons),
        )
        await self._send(
            f"escalation-{self.approval_kind.replace(' ', '-')}",
            "approval-escalation",
            notice,
            recipient=f"approvers:{request.required_role.value}",
        )

    async def _restrict(self, day: int) -> None:
        assert self.input is not None
        role = self.policy.strategic_restrict_role if self._strategic() else self.policy.restrict_role
        decision = await self._approval(
            "restrict service",
            role,
            [
                f"invoice {self.input.invoice_id} unpaid for {day} days ({self.progress.balance}); restrict service "
                "(no expansion, existing access kept)"
            ],
        )
        self.progress.restriction_decision = decision
        if decision and decision.approved and not self.progress.paid:
            await self.task(
                "restrict the entitlement",
                EntitlementActivities.set_restriction,
                SetRestriction(account_id=self.input.account_id, restricted=True, step="restrict"),
            )
            self.progress.restricted = True

    async def _cancel_and_write_off(self, day: int) -> None:
        assert self.input is not None and self.progress.balance is not None
        if self.input.subscription_id and not self.progress.cancelled:
            self.set_stage("cancelling the subscription")
            await self.task(
                "cancel the subscription",
                BillingActivities.cancel_subscription,
                CancelSubscription(subscription_id=self.input.subscription_id, step="cancel-subscription"),
            )
            self.progress.cancelled = True
            if self.since_cash:
                self.progress.cancelled_on = workflow.now().date()
        split = self._write_off_split() if self.since_cash else None
        self.write_off_split = split
        what = (
            f"write off {self.progress.balance} as bad debt"
            if split is None
            else f"write off {self.progress.balance}: {self._describe(split)}"
        )
        decision = await self._approval(
            "write off the balance",
            self.policy.write_off_role,
            [f"invoice {self.input.invoice_id} unpaid for {day} days; {what}"],
        )
        self.progress.write_off_decision = decision
        if self.progress.paid or not (decision and decision.approved):
            return
        entry = write_off_entry(
            external_id=f"{workflow.info().workflow_id}-write-off",
            subsidiary=self._subsidiary(),
            posting_date=workflow.now().date(),
            memo=f"Write-off of invoice {self.input.invoice_id}",
            amount=self.progress.balance,
            chart=self.input.chart,
            invoice_id=self.input.invoice_id,
            policy=self.policy.write_off if split is not None else None,
            split=split,
            # SAP takes the receivable only on the customer's (debtor) account; NetSuite's
            # entries keep the form released runs posted.
            customer=self.input.account_id if self._entity().erp in DEBTOR_LINE_ERPS else "",
        )
        self.set_stage(f"writing off {self.progress.balance}")
        await self.task("post the write-off", ErpActivities.post_journal_entry, entry)
        await self.task(
            "mark the invoice uncollectible",
            BillingActivities.mark_uncollectible,
            InvoiceStep(invoice_id=self.input.invoice_id, step="mark-uncollectible"),
        )
        self.outcome = DunningOutcome.WRITTEN_OFF

    def _write_off_split(self) -> WriteOffSplit:
        """The balance as the invoice's parts: service after the cancellation (credited), the
        tax relieved where the write-off policy lists the customer's jurisdiction, bad debt."""
        balance, invoice = self.progress.balance, self.invoice
        assert balance is not None and invoice is not None
        address = self.account.billing_address if self.account else None
        relieve = bool(address) and self.policy.write_off.relieves_tax(
            address.country if address else "", address.region if address else ""
        )
        tax = invoice.tax or Money.zero(balance.currency)
        unserved = Money.zero(balance.currency)
        if self.progress.cancelled_on is not None:
            # Discounts can leave the unserved lines above the invoice's net: at most all of it.
            unserved = min(
                unserved_amount(invoice.lines, self.progress.cancelled_on, balance.currency),
                invoice.total - tax,
                key=lambda m: m.minor,
            )
        return split_write_off(
            balance, invoice_total=invoice.total, invoice_tax=tax, unserved_net=unserved, relieve_tax=relieve
        )

    def _describe(self, split: WriteOffSplit) -> str:
        allowance = self.policy.write_off.method == WriteOffMethod.ALLOWANCE
        loss = "against the allowance" if allowance else "as bad-debt expense"
        parts = [f"{split.bad_debt} {loss}"]
        if not split.deferred_revenue.is_zero or not split.credited_tax.is_zero:
            parts.append(
                f"{split.deferred_revenue} and its tax {split.credited_tax} credited for service after the cancellation"
            )
        if not split.relieved_tax.is_zero:
            parts.append(f"{split.relieved_tax} sales tax relieved")
        return ", ".join(parts)

    async def _conclude(self) -> DunningResult:
        assert self.input is not None
        if self.progress.paid and not self.progress.case_stage:
            return self.finish(Status.COMPLETED, DunningOutcome.CASH, "already paid: nothing to chase")
        if self.progress.paid:
            self.set_stage("paid: standing down")
            await self._move_case("paid", status="closed")
            if self.progress.restricted:
                await self.task(
                    "lift the restriction",
                    EntitlementActivities.set_restriction,
                    SetRestriction(account_id=self.input.account_id, restricted=False, step="lift"),
                )
                self.progress.restricted = False
            await self.task(
                "clear the CRM flag",
                CrmActivities.flag_account,
                FlagAccount(account_id=self.input.account_id, flag=DUNNING_FLAG, on=False),
            )
            await self._send("thanks", "dunning-paid", THANKS)
            return self.finish(Status.COMPLETED, DunningOutcome.CASH, "paid in full")
        if self.outcome == DunningOutcome.WRITTEN_OFF:
            await self._move_case("written off", status="closed")
            return self.finish(Status.COMPLETED, DunningOutcome.WRITTEN_OFF, f"written off: {self.progress.balance}")
        await self._move_case("cancelled, not written off")
        return self.finish(
            Status.COMPLETED,
            DunningOutcome.CANCELLED,
            f"subscription cancelled; {self.progress.balance} left open for collection",
        )

    # -- plumbing ---------------------------------------------------------------------------

    async def task(self, name: str, fn: MethodAsyncSingleParam[Any, A, R], arg: A) -> R | None:
        """One side effect. Dunning never rolls back: every failure waits for an operator."""
        return await self.step(name, lambda: self.forward(fn, arg), must_finish=True)

    def finish(self, status: Status, outcome: DunningOutcome, message: str) -> DunningResult:
        self.outcome = outcome
        self.next_action, self.next_action_at = "", None
        self.set_status(status, message)
        assert self.input is not None
        return DunningResult(
            invoice_id=self.input.invoice_id,
            outcome=outcome,
            message=message,
            balance=self.progress.balance,
            attempts=len(self.progress.attempts),
            write_off_entry=f"{workflow.info().workflow_id}-write-off" if outcome == DunningOutcome.WRITTEN_OFF else "",
        )
