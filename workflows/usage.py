"""UsageReleaseWorkflow: one subscription's usage period, from o2c's totals to a released invoice.

close the period → report the totals to billing's meters → wait for billing's draft and hold
it → completeness (billing's meters hold what o2c counted, and the draft has a line for each
meter used) → review (spikes, zero baselines, first invoices, jumps in the total) → release
without a person, or after a reviewer approves, adjusts with a credit, or rejects for
re-measurement → the release as a saga: tax quoted, credit and tax lines on the draft,
finalised, the finalised quantities checked against o2c's count, tax committed, accrual and
invoice entries, revenue schedule, o2c's release record → and only then the customer's notice.

Billing makes the draft when the period ends, from what its meters held then; o2c reports
after that, and billing re-quantifies the draft only when it finalises it (Stripe's
finalisation grace period). So nothing before finalisation trusts the draft's quantities or
amounts: completeness reads the meters, the review and the tax weigh o2c's own rating of its
counts at the subscription's prices, and the books take what the finalised invoice billed.

The history holds aggregates only (totals per meter, the draft's lines), never raw events.
"""

from __future__ import annotations

import hashlib
from datetime import date, datetime, timedelta
from enum import StrEnum

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError


def usage_workflow_id(subscription_id: str, period: str) -> str:
    """Keyed by the subscription and the usage period ("YYYY-MM"): the schedule, the client and
    billing's webhooks all land on one workflow per invoice."""
    return f"usage-{subscription_id}-{period}"


DRAFT_READY_SIGNAL = "draft_ready"
FINALIZATION_FAILED_SIGNAL = "finalization_failed"

with workflow.unsafe.imports_passed_through():
    from activities.billing import BillingActivities
    from activities.erp import ErpActivities
    from activities.errors import BUG
    from activities.inputs import (
        AddInvoiceLine,
        FinalizeInvoice,
        FindUsageDraft,
        HoldInvoice,
        MeteredQuantities,
        RemoveInvoiceLine,
        ReportUsage,
        UpsertErpCustomer,
        UsageHistory,
        UsagePeriod,
        VoidInvoice,
    )
    from activities.schedules import ScheduleActivities
    from activities.tax import TaxActivities
    from activities.usage import UsageActivities
    from canonical.approval import ROLE_RANK, ApprovalPolicy, refusal
    from canonical.durations import in_words
    from canonical.journal import ChartOfAccounts, JournalEntry
    from canonical.models import (
        DEFAULT_ENTITIES,
        ApprovalRequest,
        ApproverRole,
        Invoice,
        InvoiceLine,
        JournalEntryRef,
        LegalEntity,
        Model,
        Notification,
        RevenueSchedule,
        TaxDocument,
    )
    from canonical.money import Money, total
    from canonical.usage.billed import quantity_differences, unbilled_meters
    from canonical.usage.booking import usage_entries, usage_schedule
    from canonical.usage.models import (
        MAX_IDENTIFIER,
        Difference,
        Finding,
        Meter,
        MeteredPrice,
        MeterReport,
        ReviewAction,
        UsageDecision,
        UsagePolicy,
        UsageRelease,
        UsageTotal,
        period_end,
        period_start,
    )
    from canonical.usage.rating import rate_usage
    from canonical.usage.review import review_usage
    from workflows.kit.approval import ApprovalState, DecisionInput
    from workflows.kit.attention import Attention, OperatorAction, Problem, Resolution, explain, outcome_unknown
    from workflows.kit.booking import BookingWorkflow
    from workflows.kit.process import RELEASE_CASH, AbortRequested, ProcessEvent, StepFailed
    from workflows.kit.status import Status

CREDIT_PRODUCT = "usage-credit"


class UsageOutcome(StrEnum):
    PENDING = "pending"
    RELEASED = "released"
    NOT_RELEASED = "not_released"  # aborted or failed before anything was billed
    ROLLED_BACK = "rolled_back"  # the release failed and was undone


class UsageReleaseInput(Model):
    subscription_id: str
    customer: str  # the billing customer (cus_...)
    period: str  # "YYYY-MM"
    legal_entity: str
    currency: str
    meters: list[Meter]  # the subscription's meters, with o2c's rules for each
    # The subscription's metered prices: o2c rates its own counts with them. A meter without
    # one is weighed at the draft line's amount (stale until finalisation).
    prices: list[MeteredPrice] = []
    segment: str = "default"
    contract_id: str = ""  # the contract the usage revenue belongs to; the subscription when empty
    policy: UsagePolicy = UsagePolicy()
    approvals: ApprovalPolicy = ApprovalPolicy()
    chart: ChartOfAccounts = ChartOfAccounts()
    legal_entities: list[LegalEntity] = DEFAULT_ENTITIES
    step_window: timedelta = timedelta(hours=1)


class FinalizationFailure(Model):
    """What billing said when it could not finalise the draft (invoice.finalization_failed)."""

    invoice_id: str
    reason: str


class RecordedDecision(Model):
    """A reviewer's answer as the workflow took it: who, in which role, what, why, when."""

    approver: str
    role: ApproverRole
    action: ReviewAction
    reason: str = ""
    credit: Money | None = None
    at: datetime


class UsageResult(Model):
    workflow_id: str
    status: Status
    outcome: UsageOutcome
    message: str
    invoice_id: str = ""
    total: Money | None = None
    credit: Money | None = None
    journal_entries: list[str] = []
    compensated: list[str] = []


class UsageState(Model):
    subscription_id: str
    customer: str
    period: str
    status: Status
    stage: str
    outcome: UsageOutcome
    measurement: int
    totals: list[UsageTotal] = []
    reported: dict[str, int] = {}  # meter -> what billing's meter holds from o2c
    metered: dict[str, int] = {}  # meter -> what billing's meter counted in the period, last read
    draft_id: str = ""
    billed: dict[str, int] = {}  # the draft's quantities (stale until finalised), then the invoice's
    rated: dict[str, Money] = {}  # meter -> o2c's rating of its count, the amount under review
    unpriced: list[str] = []  # meters without a known price: weighed at the draft line's amount
    subtotal: Money | None = None
    differences: list[Difference] = []
    findings: list[Finding] = []
    approval: ApprovalState = ApprovalState()
    decisions: list[RecordedDecision] = []
    attention: Attention | None = None
    resolutions: list[Resolution] = []
    tax_document: TaxDocument | None = None
    journal_entries: list[JournalEntryRef] = []
    schedule: RevenueSchedule | None = None
    release: UsageRelease | None = None
    compensated: list[str] = []
    events: list[ProcessEvent] = []


def metered(invoice: Invoice) -> list[InvoiceLine]:
    return [x for x in invoice.lines if x.meter]


def billed_quantities(invoice: Invoice | None) -> dict[str, int]:
    billed: dict[str, int] = {}
    for line in metered(invoice) if invoice else []:
        billed[line.meter] = billed.get(line.meter, 0) + (line.quantity or 0)
    return billed


def report_identifier(workflow_id: str, meter: str, measurement: int) -> str:
    """Derived from the aggregate: the same measurement always sends the same identifier, so
    billing counts a retry or a replay once. Stripe takes at most 100 characters."""
    identifier = f"{workflow_id}-{meter}-m{measurement}"
    if len(identifier) <= MAX_IDENTIFIER:
        return identifier
    return f"usage-{hashlib.sha256(identifier.encode()).hexdigest()[:40]}-m{measurement}"


def _error_type(error: BaseException) -> str:
    while isinstance(error, ActivityError) and error.cause is not None:
        error = error.cause
    return error.type or "" if isinstance(error, ApplicationError) else ""


@workflow.defn
class UsageReleaseWorkflow(BookingWorkflow):
    process = "usage"

    def __init__(self) -> None:
        super().__init__()
        self.input: UsageReleaseInput | None = None
        self.outcome = UsageOutcome.PENDING
        # Whether this run reads the approval thresholds per currency (since o2c-cash): decided
        # first thing in run(), and read by the adjust validator too.
        self.per_currency = False
        self.measurement = 1
        self.totals: list[UsageTotal] = []
        self.counted: dict[str, int] = {}
        self.reported: dict[str, int] = {}
        self.sent: list[MeterReport] = []  # every report sent, to send again after a fix
        self.metered: dict[str, int] = {}
        self.draft: Invoice | None = None
        self.draft_hint: str | None = None
        self.finalization_failure: str | None = None
        self.differences: list[Difference] = []
        self.findings: list[Finding] = []
        self.history: dict[str, list[int]] | None = None
        self.previous_total: Money | None = None
        self.decisions: list[RecordedDecision] = []
        self.adjustment: UsageDecision | None = None
        self.added: dict[str, str] = {}  # step -> the line id billing gave the line o2c added
        self.entries: list[JournalEntryRef] = []
        self.schedule: RevenueSchedule | None = None
        self.release: UsageRelease | None = None

    @property
    def billing_account(self) -> str:
        """The legal entity's own billing account, where its usage is metered and invoiced."""
        r = self.input
        return self.entity_for(r.legal_entities, r.legal_entity).billing_account if r else ""

    # -- what an operator sees ------------------------------------------------------------------

    def headline(self) -> str:
        r = self.input
        if r is None:
            return "Usage release"
        amount = f" · {self.subtotal()}" if self.draft else ""
        return f"Usage {r.period} of {r.subscription_id} · {r.customer}{amount}"

    @workflow.query
    def state(self) -> UsageState:
        r = self.input
        return UsageState(
            subscription_id=r.subscription_id if r else "",
            customer=r.customer if r else "",
            period=r.period if r else "",
            status=self.status,
            stage=self.stage,
            outcome=self.outcome,
            measurement=self.measurement,
            totals=self.totals,
            reported=self.reported,
            metered=self.metered,
            draft_id=self.draft.id if self.draft else "",
            billed=billed_quantities(self.invoice or self.draft),
            rated=self.rated() if self.draft else {},
            unpriced=self.unpriced() if self.draft else [],
            subtotal=self.subtotal() if self.draft else None,
            differences=self.differences,
            findings=self.findings,
            approval=self.gate.snapshot(),
            decisions=self.decisions,
            attention=self.queue.attention,
            resolutions=self.queue.resolutions,
            tax_document=self.tax_document,
            journal_entries=self.entries,
            schedule=self.schedule,
            release=self.release,
            compensated=self.saga.undone,
            events=self.events,
        )

    # -- what billing tells the workflow ----------------------------------------------------------

    @workflow.signal(name=DRAFT_READY_SIGNAL)
    def draft_ready(self, invoice_id: str) -> None:
        """Billing created the draft (invoice.created): look now instead of at the next poll."""
        self.draft_hint = invoice_id

    @workflow.signal(name=FINALIZATION_FAILED_SIGNAL)
    def finalization_failed(self, failure: FinalizationFailure) -> None:
        if self.draft is None or failure.invoice_id == self.draft.id:
            self.finalization_failure = failure.reason

    # -- the reviewer's adjustment ----------------------------------------------------------------

    @workflow.update
    async def adjust(self, decision: UsageDecision) -> str:
        self.adjustment = decision
        assert decision.credit is not None  # the validator refuses an adjustment without one
        self.gate.record(
            DecisionInput(
                approver=decision.approver,
                role=decision.role,
                approved=True,
                comment=f"adjusted with a credit of {decision.credit}: {decision.reason}",
            )
        )
        self.note(
            f"adjusted by {decision.approver} ({decision.role.value}): credit {decision.credit}, {decision.reason}"
        )
        return f"credit of {decision.credit} accepted; the invoice is released with it"

    @adjust.validator
    def _validate_adjust(self, decision: UsageDecision) -> None:
        request = self.gate.request
        if not self.gate.waiting or request is None or self.input is None:
            raise ValueError("no usage invoice is waiting for review on this process")
        if decision.action != ReviewAction.ADJUST:
            raise ValueError("adjust takes action 'adjust'; approve as is or reject for re-measurement with decide")
        if not decision.reason.strip():
            raise ValueError("an adjustment needs a reason: it is printed on the credit line")
        credit = decision.credit
        if credit is None or credit.is_zero or credit.is_negative:
            raise ValueError("an adjustment needs a positive credit")
        if credit.currency != self.input.currency:
            raise ValueError(f"the credit must be in the invoice currency {self.input.currency}, not {credit.currency}")
        if credit > self.subtotal():
            raise ValueError(f"a credit of {credit} exceeds the usage billed ({self.subtotal()})")
        # The credit needs the approval its own amount calls for, and at least what the held
        # invoice needs; the requester of the review may not grant it.
        role = max(request.required_role, self.role_for(credit), key=lambda r: ROLE_RANK[r])
        credit_request = ApprovalRequest(
            required_role=role,
            reasons=[f"credit of {credit} on the usage invoice"],
            requested_by=request.requested_by,
            amount=credit,
        )
        reason = refusal(credit_request, self.gate.policy, decision.approver, decision.role)
        if reason:
            raise ValueError(reason)

    def role_for(self, amount: Money) -> ApproverRole:
        assert self.input is not None
        approvals = self.input.approvals
        if self.per_currency and approvals.uncovered(amount.currency):
            return ApproverRole.CONTROLLER  # not reached: run() refuses the invoice currency first
        return approvals.role_for(amount, per_currency=self.per_currency)

    def rated(self) -> dict[str, Money]:
        """o2c's counts at the subscription's prices, per meter the draft bills or o2c counted;
        a meter without a price at the draft line's amount (see unpriced)."""
        r = self.input
        assert r is not None
        lines = metered(self.draft) if self.draft else []
        names = sorted({x.meter for x in lines} | set(self.counted))
        rated = rate_usage({m: self.counted.get(m, 0) for m in names}, r.prices, r.currency)
        for name in names:
            if name not in rated:
                rated[name] = total((x.amount for x in lines if x.meter == name), r.currency)
        return rated

    def unpriced(self) -> list[str]:
        assert self.input is not None
        priced = {p.meter for p in self.input.prices}
        return sorted(m for m in self.rated() if m not in priced)

    def subtotal(self) -> Money:
        """The usage under review, before credits and tax: o2c's rating of its counts."""
        assert self.input is not None
        return total(self.rated().values(), self.input.currency)

    # -- the process ------------------------------------------------------------------------------

    @workflow.run
    async def run(self, input: UsageReleaseInput) -> UsageResult:
        self.input = r = input
        self.step_window = input.step_window
        self.trust(input.approvals)
        self.legal_entities = input.legal_entities
        self.tag(customer=r.customer, contract=r.contract_id or r.subscription_id)
        # Since o2c-cash the review's approval thresholds are read in the invoice currency; a
        # currency the approval policy does not state is refused before the period is closed.
        self.per_currency = workflow.patched(RELEASE_CASH)
        uncovered = r.approvals.uncovered(r.currency) if self.per_currency else None
        if uncovered:
            return self.finish(Status.FAILED, UsageOutcome.NOT_RELEASED, f"not released: {uncovered}")
        try:
            self.set_status(Status.RUNNING, f"closing the usage period {r.period}")
            # From here an event of the period is late and follows the late policy.
            await self.step(
                "close the usage period",
                lambda: self.forward(UsageActivities.close_period, UsagePeriod(customer=r.customer, period=r.period)),
                skippable=False,
            )
            await self._measure()
            self.draft = await self._wait_for_draft()
            await self._hold()
            await self._review()
        except AbortRequested as aborted:
            return self.finish(
                Status.ROLLED_BACK, UsageOutcome.NOT_RELEASED, f"aborted by operator at {aborted}: nothing was released"
            )
        except StepFailed as failed:
            return self.finish(Status.FAILED, UsageOutcome.NOT_RELEASED, f"not released: {failed}")

        rolled_back = await self.run_saga(
            self._release,
            lambda reason: self.finish(Status.ROLLED_BACK, UsageOutcome.ROLLED_BACK, f"rolled back: {reason}"),
        )
        if rolled_back is not None:
            return rolled_back
        assert self.invoice is not None
        await self.tell_customer(r.customer, self._notice())
        return self.finish(Status.COMPLETED, UsageOutcome.RELEASED, f"released invoice {self.invoice.id}")

    # -- measure and report -----------------------------------------------------------------------

    async def _measure(self) -> None:
        """Read o2c's totals and send billing's meters what they lack: one event per meter whose
        reported value differs, named by the measurement, dated inside the period."""
        r = self.input
        assert r is not None
        self.set_stage(f"reading the usage of {r.period} (measurement {self.measurement})")
        self.totals = await self.step(
            "usage totals",
            lambda: self.forward(UsageActivities.totals, UsagePeriod(customer=r.customer, period=r.period)),
            skippable=False,
        )
        self.counted = {m.event_name: 0 for m in r.meters} | {t.meter: t.quantity for t in self.totals}
        wid = workflow.info().workflow_id
        at = period_end(r.period) - timedelta(seconds=1)
        reports = [
            MeterReport(
                identifier=report_identifier(wid, meter, self.measurement),
                event_name=meter,
                customer=r.customer,
                value=quantity - self.reported.get(meter, 0),
                timestamp=at,
            )
            for meter, quantity in sorted(self.counted.items())
            if quantity != self.reported.get(meter, 0)
        ]
        if not reports:
            self.note("billing's meters already hold every total")
            return
        self.set_stage("reporting " + ", ".join(f"{x.event_name} {x.value:+,}" for x in reports) + " to billing")
        await self.step(
            "meter reports",
            lambda: self.forward(
                UsageActivities.report, ReportUsage(reports=reports, billing_account=self.billing_account)
            ),
            skippable=False,
        )
        self.reported.update(self.counted)
        self.sent.extend(reports)

    # -- the draft --------------------------------------------------------------------------------

    async def _read_draft(self) -> Invoice | None:
        r = self.input
        assert r is not None
        find = FindUsageDraft(
            billing_account=self.billing_account,
            subscription_id=r.subscription_id,
            period_start=period_start(r.period).date(),
            period_end=period_end(r.period).date(),
        )
        return await self.step(
            "read the draft", lambda: self.forward(UsageActivities.find_draft, find), skippable=False
        )

    async def _wait_for_draft(self) -> Invoice:
        """Billing's webhook says when the draft exists; the poll covers a webhook that never comes."""
        r = self.input
        assert r is not None
        policy = r.policy
        while True:
            self.set_stage(f"waiting for billing's draft invoice of {r.period}")
            deadline = workflow.now() + policy.draft_wait
            while True:
                self.draft_hint = None
                draft = await self._read_draft()
                if draft is not None:
                    return draft
                left = deadline - workflow.now()
                if left <= timedelta(0):
                    break
                try:
                    await workflow.wait_condition(
                        lambda: self.draft_hint is not None, timeout=min(policy.draft_poll, left)
                    )
                except TimeoutError:
                    pass
            problem = Problem(
                message=f"billing produced no draft invoice for {r.subscription_id} {r.period} "
                f"within {policy.draft_wait}; retry waits again",
                system="billing",
            )
            if await self._park("usage draft", problem, [OperatorAction.RETRY, OperatorAction.ABORT]) == (
                OperatorAction.ABORT
            ):
                raise AbortRequested("usage draft")

    async def _hold(self) -> None:
        """At once: nothing finalises behind o2c's back while it reviews."""
        while True:
            draft = self.draft
            assert draft is not None
            self.tag(invoice=draft.id)
            if draft.status == "draft":
                break
            problem = Problem(
                message=f"billing's invoice {draft.id} is {draft.status}, not a draft: o2c can no longer hold it; "
                "settle it in billing, then retry",
                system="billing",
            )
            if await self._park("hold the draft", problem, [OperatorAction.RETRY, OperatorAction.ABORT]) == (
                OperatorAction.ABORT
            ):
                raise AbortRequested("hold the draft")
            self.draft = await self._read_draft() or draft
        self.set_stage(f"holding draft {draft.id}")
        self.draft = await self.step(
            "hold the draft",
            lambda: self.forward(
                UsageActivities.hold_invoice, HoldInvoice(invoice_id=draft.id, billing_account=self.billing_account)
            ),
            skippable=False,
        )

    # -- review -----------------------------------------------------------------------------------

    async def _review(self) -> None:
        """Returns when the invoice may be released (as is, or with self.adjustment's credit)."""
        while True:
            await self._complete()
            await self._find()
            if not self.findings:
                self.note("usage is in line with its history: released without review")
                return
            decision = await self._ask()
            if decision.action != ReviewAction.REMEASURE:
                return
            self.measurement += 1
            await self._measure()
            self.draft = await self._read_draft() or self.draft

    async def _complete(self) -> None:
        """Billing's meters hold what o2c counted for the period and the draft has a line for
        every meter o2c counted usage on, or the invoice waits with the difference explained.
        The draft's quantities are not compared: they are what the meters held when billing
        made the draft, and billing re-quantifies it only when it finalises it."""
        r = self.input
        assert r is not None
        while True:
            for _ in range(r.policy.completeness_attempts):
                if not await self._differences():
                    return
                self.set_stage("waiting for billing to count the usage: " + "; ".join(d.text for d in self.differences))
                await workflow.sleep(r.policy.completeness_recheck)
            if not await self._differences():
                return
            problem = Problem(
                message="billing does not bill what o2c counted: " + "; ".join(d.text for d in self.differences),
                system="billing",
            )
            if await self._park("usage completeness", problem, [OperatorAction.RETRY, OperatorAction.ABORT]) == (
                OperatorAction.ABORT
            ):
                raise AbortRequested("usage completeness")
            await self._send_again()
            self.draft = await self._read_draft() or self.draft

    async def _differences(self) -> list[Difference]:
        r = self.input
        assert r is not None
        request = MeteredQuantities(
            billing_account=self.billing_account,
            customer=r.customer,
            meters=sorted(self.counted),
            start=period_start(r.period),
            end=period_end(r.period),
        )
        self.metered = await self.step(
            "billing's meter counts",
            lambda: self.forward(UsageActivities.metered_quantities, request),
            skippable=False,
        )
        units = self._meters()
        lines = {x.meter for x in (metered(self.draft) if self.draft else [])}
        self.differences = quantity_differences(
            self.counted, self.metered, source="billing's meter", meters=units
        ) + unbilled_meters(self.counted, lines, meters=units)
        return self.differences

    async def _send_again(self) -> None:
        """After an operator's fix (a customer billing refused to meter, say), every report once
        more under its own identifier: one billing dropped counts now, one it counted changes nothing."""
        if not self.sent:
            return
        self.set_stage(f"sending billing's meters the {len(self.sent)} usage reports again")
        reports = list(self.sent)
        await self.step(
            "meter reports",
            lambda: self.forward(
                UsageActivities.report, ReportUsage(reports=reports, billing_account=self.billing_account)
            ),
            skippable=False,
        )

    def _meters(self) -> dict[str, Meter]:
        r = self.input
        assert r is not None
        meters = {m.event_name: m for m in r.policy.meters} | {m.event_name: m for m in r.meters}
        for meter in self.counted:
            meters.setdefault(meter, Meter(event_name=meter, display_name=meter))
        return meters

    async def _find(self) -> None:
        r = self.input
        assert r is not None
        if self.history is None:
            self.set_stage("reading the usage history")
            history = UsageHistory(
                customer=r.customer, meters=sorted(self.counted), before=r.period, periods=r.policy.history_periods
            )
            self.history = await self.step(
                "usage history", lambda: self.forward(UsageActivities.history, history), skippable=False
            )
            previous = await self.step(
                "previous release",
                lambda: self.forward(
                    UsageActivities.previous_release, UsagePeriod(customer=r.customer, period=r.period)
                ),
                skippable=False,
            )
            self.previous_total = previous.subtotal if previous and previous.currency == r.currency else None
        unpriced = self.unpriced()
        if unpriced:
            self.note(
                "no price known for " + ", ".join(unpriced) + ": weighed at the draft's amount, "
                "which billing re-quantifies only at finalisation"
            )
        self.findings = review_usage(
            quantities=self.counted,
            history=self.history,
            meters=self._meters(),
            segment=r.segment,
            total=self.subtotal(),
            previous_total=self.previous_total,
            policy=r.policy,
        )

    async def _ask(self) -> RecordedDecision:
        """The approval gate with the findings as its reasons, until someone answers."""
        r = self.input
        assert r is not None
        amount = self.subtotal()
        request = ApprovalRequest(
            required_role=self.role_for(amount),
            reasons=[f.text for f in self.findings],
            requested_by="o2c",
            amount=amount,
        )
        while True:
            self.adjustment = None
            self.set_status(Status.AWAITING_APPROVAL, f"held for review: awaiting a {request.required_role.value}")
            decision = await self.gate.wait(request, r.approvals, self._escalate)
            if decision is None:
                problem = Problem(
                    message=f"nobody reviewed the held invoice within {in_words(r.approvals.expire_after)}; retry asks again"
                )
                if await self._park("usage review", problem, [OperatorAction.RETRY, OperatorAction.ABORT]) == (
                    OperatorAction.ABORT
                ):
                    raise AbortRequested("usage review")
                continue
            if self.adjustment is not None:
                recorded = RecordedDecision(
                    approver=decision.approver,
                    role=decision.role,
                    action=ReviewAction.ADJUST,
                    reason=self.adjustment.reason,
                    credit=self.adjustment.credit,
                    at=decision.decided_at,
                )
            else:
                recorded = RecordedDecision(
                    approver=decision.approver,
                    role=decision.role,
                    action=ReviewAction.APPROVE if decision.approved else ReviewAction.REMEASURE,
                    reason=decision.comment,
                    at=decision.decided_at,
                )
            self.decisions.append(recorded)
            words = {ReviewAction.APPROVE: "approved as is", ReviewAction.ADJUST: f"adjusted by {recorded.credit}"}
            self.set_status(
                Status.RUNNING,
                f"{words.get(recorded.action, 'rejected for re-measurement')} by {recorded.approver}",
            )
            return recorded

    async def _escalate(self, request: ApprovalRequest) -> None:
        r = self.input
        assert r is not None
        await self.escalate_approval(
            f"The usage invoice of {r.subscription_id} for {r.period} has waited for review",
            r.customer,
            request.required_role.value,
            request.reasons,
        )

    # -- the release: the saga --------------------------------------------------------------------

    async def _release(self) -> None:
        r, draft = self.input, self.draft
        assert r is not None and draft is not None
        wid = workflow.info().workflow_id
        entity = self.entity_for(r.legal_entities, r.legal_entity)
        invoice_date = workflow.now().date()
        if self.release_ledger():
            # Since o2c-ledger the documents carry the invoice's own date: the day billing
            # created the draft (the date reconciliation lists it by), not the day of release.
            invoice_date = self.issued_on = draft.created or invoice_date
        credit = self.adjustment.credit if self.adjustment and self.adjustment.credit else Money.zero(r.currency)
        taxed = self._rated_lines()
        if not credit.is_zero:
            assert self.adjustment is not None
            taxed.append(InvoiceLine(product=CREDIT_PRODUCT, description=self.adjustment.reason, amount=-credit))
        quote = await self.quote_tax(r.customer, r.currency, invoice_date, taxed)
        tax = quote.total_tax if quote else Money.zero(r.currency)

        if not credit.is_zero:
            assert self.adjustment is not None
            await self._add_line(
                "credit line",
                AddInvoiceLine(
                    billing_account=self.billing_account,
                    invoice_id=draft.id,
                    customer=r.customer,
                    amount=-credit,
                    description=f"Credit: {self.adjustment.reason}",
                    metadata={
                        "o2c_workflow": wid,
                        "o2c_line": "usage_credit",
                        "reason": self.adjustment.reason[:500],
                        "approved_by": self.adjustment.approver,
                    },
                    step="usage-credit-line",
                ),
            )
        if not tax.is_zero:
            await self._add_line(
                "tax line",
                AddInvoiceLine(
                    billing_account=self.billing_account,
                    invoice_id=draft.id,
                    customer=r.customer,
                    amount=tax,
                    description=f"Sales tax ({invoice_date})",
                    metadata={"o2c_workflow": wid, "o2c_line": "tax"},
                    step="usage-tax-line",
                ),
            )

        finalize = FinalizeInvoice(invoice_id=draft.id, step="usage-finalize", billing_account=self.billing_account)
        self.saga.add("invoice", lambda: self._void(finalize, entity))
        self.invoice = await self._finalize(finalize)
        invoice = self.invoice
        self._check_finalised(invoice)
        # What was billed is what is booked: the finalised invoice's metered lines.
        subtotal = total((x.amount for x in metered(invoice)), r.currency)

        if quote is not None:
            self.set_stage(f"committing tax for invoice {invoice.id}")
            commit = self.tax_request(r.currency, invoice_date, taxed).model_copy(update={"code": invoice.id})
            self.saga.add("tax document", lambda: self.undo(TaxActivities.void, commit.code))
            self.tax_document = await self.step("tax commit", lambda: self.forward(TaxActivities.commit, commit))

        revenue = subtotal - credit
        if revenue.is_negative:
            # The credit was weighed against o2c's rating; billing's rounding billed less.
            raise StepFailed(f"the credit of {credit} exceeds the usage billed on invoice {invoice.id} ({subtotal})")
        entries = usage_entries(
            external_id=wid,
            subsidiary=entity.erp_subsidiary,
            usage_period=r.period,
            invoice_date=invoice_date,
            invoice_id=invoice.id,
            revenue=revenue,
            tax=tax,
            chart=r.chart,
            memo=f"Usage {r.period} of {r.subscription_id}, invoice {invoice.id}",
            contract_id=r.contract_id or r.subscription_id,
            customer=r.customer,
        )
        if self.per_currency:
            await self._erp_customer(entity.erp_subsidiary)
        for entry in entries:
            await self._post(entry, invoice_date)

        release = UsageRelease(
            workflow_id=wid,
            subscription_id=r.subscription_id,
            customer=r.customer,
            legal_entity=entity.code,
            period=r.period,
            invoice_id=invoice.id,
            currency=r.currency,
            quantities=billed_quantities(invoice),
            subtotal=subtotal,
            credit=credit,
            tax=tax,
            total=invoice.total,
            released_at=workflow.now(),
            journal_entries=[x.external_id for x in entries],
        )
        if not revenue.is_zero:
            schedule = usage_schedule(release, revenue=revenue, contract_id=r.contract_id or r.subscription_id)
            self.set_stage("recording the usage revenue")
            self.saga.add("revenue schedule", lambda: self.undo(ScheduleActivities.delete, schedule.schedule_id))
            await self.step("revenue schedule", lambda: self.forward(ScheduleActivities.save, schedule))
            self.schedule = schedule

        self.set_stage("recording the release")
        self.saga.add("usage release", lambda: self.undo(UsageActivities.delete_release, wid))
        await self.step("usage release", lambda: self.forward(UsageActivities.record_release, release))
        self.release = release

    def _rated_lines(self) -> list[InvoiceLine]:
        """The usage lines as o2c rates them, one per meter, for the tax quote: the draft's own
        amounts are stale until billing finalises it."""
        r = self.input
        assert r is not None
        lines = metered(self.draft) if self.draft else []
        products = {x.meter: x.product for x in lines if x.product}
        return [
            InvoiceLine(
                product=products.get(meter, meter),
                description=f"{self.counted.get(meter, 0):,} x {meter}",
                amount=amount,
                meter=meter,
                quantity=self.counted.get(meter, 0),
            )
            for meter, amount in sorted(self.rated().items())
            if any(x.meter == meter for x in lines)
        ]

    def _check_finalised(self, invoice: Invoice) -> None:
        """Billing re-quantified the draft at finalisation: it must bill what o2c counted (usage
        sent to the meter by another system during the grace period would not be), else the
        release is undone with the difference in words."""
        billed = billed_quantities(invoice)
        differences = quantity_differences(self.counted, billed, source="the finalised invoice", meters=self._meters())
        if differences:
            self.differences = differences
            text = "; ".join(d.text for d in differences)
            self.note(f"the finalised invoice {invoice.id} does not bill what o2c counted: {text}")
            raise StepFailed(f"the finalised invoice {invoice.id} does not bill what o2c counted: {text}")
        rated = self.rated()
        amounts: dict[str, Money] = {}
        for line in metered(invoice):
            amounts[line.meter] = amounts.get(line.meter, Money.zero(invoice.currency)) + line.amount
        apart = [
            f"{m} billed {amounts[m]}, rated {rated[m]}"
            for m in sorted(amounts)
            if m in rated and amounts[m] != rated[m]
        ]
        if apart:
            # The quantities agree, so only the rounding of a line amount can differ; the books
            # take what was billed, the tax stays as quoted on o2c's rating.
            self.note("billing's line amounts differ from o2c's rating: " + "; ".join(apart))

    async def _add_line(self, name: str, line: AddInvoiceLine) -> None:
        before = self.draft
        assert before is not None
        self.set_stage(f"adding the {name} ({line.amount}) to draft {line.invoice_id}")
        self.saga.add(name, lambda: self._remove_line(name, line, before))
        after = await self.step(name, lambda: self.forward(UsageActivities.add_invoice_line, line), skippable=False)
        self.added[name] = self._new_line(before, after, line.amount)
        self.draft = after

    @staticmethod
    def _new_line(before: Invoice, after: Invoice, amount: Money) -> str:
        known = {x.line_id for x in before.lines}
        added = [x for x in after.lines if x.line_id not in known and x.amount == amount]
        return added[-1].line_id if added else ""

    async def _remove_line(self, name: str, line: AddInvoiceLine, before: Invoice) -> None:
        if self.invoice is not None:
            return  # finalised: the void takes the whole invoice back, lines and all
        line_id = self.added.get(name, "")
        if not line_id:
            if name not in self.unsettled:
                return  # billing refused the line: nothing to take off
            # Billing never answered: the same key returns the draft with the line if it was added.
            line_id = self._new_line(before, await self.undo(UsageActivities.add_invoice_line, line), line.amount)
            if not line_id:
                return
        await self.undo(
            UsageActivities.remove_invoice_line,
            RemoveInvoiceLine(line_id=line_id, step=f"{line.step}-undo", billing_account=self.billing_account),
        )

    async def _finalize(self, request: FinalizeInvoice) -> Invoice:
        """A draft billing cannot finalise (its tax, its customer) parks with billing's reason;
        only an integration bug undoes the release at once."""
        self.set_stage(f"finalising invoice {request.invoice_id}")
        while True:
            self.finalization_failure = None
            try:
                invoice = await self.forward(UsageActivities.finalize_invoice, request)
                self.unsettled.discard("invoice finalize")
                if invoice.status != "draft" and self.finalization_failure is None:
                    return invoice
                problem = Problem(
                    message=f"billing could not finalise invoice {request.invoice_id}: "
                    + (self.finalization_failure or "it is still a draft"),
                    system="billing",
                )
            except ActivityError as error:
                if outcome_unknown(error):
                    self.unsettled.add("invoice finalize")
                problem, _ = explain(error)
                if _error_type(error) == BUG:
                    self.note(f"invoice finalize failed: {problem.message}")
                    raise StepFailed(f"invoice finalize: {problem.message}") from error
            if await self._park("invoice finalize", problem, [OperatorAction.RETRY, OperatorAction.ABORT]) == (
                OperatorAction.ABORT
            ):
                raise AbortRequested("invoice finalize")

    async def _void(self, finalize: FinalizeInvoice, entity: LegalEntity) -> None:
        invoice = self.invoice
        if invoice is None:
            if "invoice finalize" not in self.unsettled:
                return  # billing never finalised it: the draft stays held, its added lines come off
            # Billing never answered: the same key returns the invoice if it was finalised.
            invoice = await self.undo(UsageActivities.finalize_invoice, finalize)
        self.invoice = await self.undo(
            BillingActivities.void_invoice,
            VoidInvoice(invoice_id=invoice.id, step="usage-void", billing_account=entity.billing_account),
        )

    async def _erp_customer(self, subsidiary: str) -> None:
        """The entries' receivable names the customer, so the ERP must know the customer first
        (an upsert by external id: repeating it changes nothing). Since o2c-cash."""
        r = self.input
        assert r is not None
        account = await self.step(
            "read customer", lambda: self.forward(BillingActivities.get_account, r.customer), skippable=False
        )
        if account is None:
            self.note(f"billing does not know {r.customer}: the ERP customer is not updated")
            return
        upsert = UpsertErpCustomer(account=account, subsidiary=subsidiary)
        await self.step("ERP customer", lambda: self.forward(ErpActivities.upsert_customer, upsert), skippable=False)

    async def _post(self, entry: JournalEntry, reversal_date: date) -> None:
        name = f"journal entry {entry.external_id.rsplit('-', 1)[-1]}"
        reversal = entry.reversal(f"{entry.external_id}-reversal", reversal_date)
        self.set_stage(f"posting the {name}")
        posted: list[JournalEntryRef] = []

        async def reverse() -> None:
            if not posted:
                if name not in self.unsettled:
                    return  # the ERP refused it: nothing to reverse
                if await self.undo(ErpActivities.get_journal_entry, entry.external_id) is None:
                    return
            await self.undo(ErpActivities.post_journal_entry, reversal)

        self.saga.add(name, reverse)
        ref = await self.step(name, lambda: self.forward(ErpActivities.post_journal_entry, entry), skippable=False)
        posted.append(ref)
        self.entries.append(ref)

    def _notice(self) -> Notification:
        r, invoice = self.input, self.invoice
        assert r is not None and invoice is not None
        credit = (
            f" It includes a credit of {self.adjustment.credit}: {self.adjustment.reason}." if self.adjustment else ""
        )
        return Notification(
            recipient="",
            template="usage-invoice",
            account_id=r.customer,
            subject=f"Your usage invoice for {r.period}",
            body=f"Invoice {invoice.id} for {invoice.total} bills your usage in {r.period}.{credit}",
        )

    def finish(self, status: Status, outcome: UsageOutcome, message: str) -> UsageResult:
        self.outcome = outcome
        self.set_status(status, message)
        credit = self.adjustment.credit if self.adjustment else None
        return UsageResult(
            workflow_id=workflow.info().workflow_id,
            status=status,
            outcome=outcome,
            message=message,
            invoice_id=self.invoice.id if self.invoice else (self.draft.id if self.draft else ""),
            total=self.invoice.total if self.invoice else None,
            credit=credit,
            journal_entries=[x.external_id for x in self.entries],
            compensated=self.saga.undone,
        )
