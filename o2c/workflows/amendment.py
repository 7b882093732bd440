"""AmendmentWorkflow: a mid-period change of seats, price or discount, end to end.

validate → prorate → approve (if policy asks) → quote tax → update the subscription →
invoice the proration → commit tax → post the journal entry → only then change the
entitlement and tell the customer. Each step with a side effect registers its undo first.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from temporalio import workflow

from o2c.workflows.approval import ApprovalState
from o2c.workflows.attention import Attention, Resolution
from o2c.workflows.process import AbortRequested, ProcessEvent, ProcessWorkflow, StepFailed
from o2c.workflows.status import Status

with workflow.unsafe.imports_passed_through():
    from o2c.activities.billing import BillingActivities
    from o2c.activities.customer import CustomerActivities
    from o2c.activities.erp import ErpActivities
    from o2c.activities.inputs import (
        CreateInvoice,
        SendNotification,
        SetSeats,
        TaxRequest,
        UpdateSubscription,
        VoidInvoice,
    )
    from o2c.activities.tax import TaxActivities
    from o2c.canonical.amendment import InvalidAmendment, validate_amendment
    from o2c.canonical.approval import ApprovalPolicy, amendment_approval
    from o2c.canonical.journal import ChartOfAccounts, JournalEntry, invoice_entry
    from o2c.canonical.models import (
        Account,
        AmendmentRequest,
        ApprovalRequest,
        Invoice,
        InvoiceLine,
        JournalEntryRef,
        LegalEntity,
        Model,
        Notification,
        Proration,
        Subscription,
        TaxDocument,
    )
    from o2c.canonical.money import Money, total
    from o2c.canonical.proration import amended_lines, prorate

TAX_PRODUCT = "sales-tax"
DEFAULT_ENTITIES = [LegalEntity(code="US01", company_code="US01", functional_currency="USD", erp_subsidiary="1")]


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
    compensated: list[str] = []
    events: list[ProcessEvent] = []
    updated_at: datetime | None = None


@workflow.defn
class AmendmentWorkflow(ProcessWorkflow):
    process = "amendment"

    def __init__(self) -> None:
        super().__init__()
        self.request: AmendmentRequest | None = None
        self.problems: list[str] = []
        self.proration: Proration | None = None
        self.invoice: Invoice | None = None
        self.tax_document: TaxDocument | None = None
        self.journal_entry: JournalEntryRef | None = None
        self._account: Account | None = None

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
            compensated=self.saga.undone,
            events=self.events,
            updated_at=self.events[-1].at if self.events else None,
        )

    @workflow.run
    async def run(self, input: AmendmentInput) -> AmendmentResult:
        r = self.request = input.request
        self.step_window = input.step_window
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
        self.set_stage(f"net proration {self.proration.net} over {self.proration.days_remaining}"
                       f" of {self.proration.days_in_period} days")

        approval = amendment_approval(self.proration, input.policy, r.requested_by)
        if approval is not None:
            self.set_status(Status.AWAITING_APPROVAL, f"awaiting a {approval.required_role.value}")
            decision = await self.gate.wait(approval, input.policy, self._escalate)
            if decision is None:
                return self.finish(Status.REJECTED, f"approval expired after {input.policy.expire_after.days} days unanswered")
            if not decision.approved:
                return self.finish(Status.REJECTED, f"rejected by {decision.approver}: {decision.comment}")
            self.set_status(Status.RUNNING, f"approved by {decision.approver}")

        try:
            await self.apply(input, subscription, self.proration)
        except (StepFailed, AbortRequested) as stopped:
            reason = f"aborted by operator at {stopped}" if isinstance(stopped, AbortRequested) else str(stopped)
            await self.compensate()
            return self.finish(Status.ROLLED_BACK, f"rolled back: {reason}")
        except asyncio.CancelledError:
            await self.compensate()
            self.finish(Status.ROLLED_BACK, "rolled back: the workflow was cancelled")
            raise
        await self.after_commit(input)
        return self.finish(Status.COMPLETED, "amendment booked")

    # -- the saga ---------------------------------------------------------------------------

    async def apply(self, input: AmendmentInput, subscription: Subscription, proration: Proration) -> None:
        r = input.request
        wid = workflow.info().workflow_id

        self.set_stage("quoting tax")
        quote = await self.step("tax quote", lambda: self._quote(r, proration))
        charged_lines = [InvoiceLine(product=x.product, description=x.description, amount=x.amount)
                         for x in proration.lines]
        tax = quote.total_tax if quote else Money.zero(r.currency)
        invoice_lines = charged_lines + (
            [InvoiceLine(product=TAX_PRODUCT, description=f"Sales tax ({r.effective_date})", amount=tax)]
            if not tax.is_zero else []
        )

        self.set_stage("updating the subscription")
        restore = UpdateSubscription(subscription_id=subscription.id, lines=subscription.lines,
                                     step="subscription-restore")
        self.saga.add("subscription", lambda: self.undo(BillingActivities.update_subscription, restore))
        change = UpdateSubscription(subscription_id=subscription.id,
                                    lines=amended_lines(subscription, r.lines), step="subscription-update")
        await self.step("subscription update",
                        lambda: self.forward(BillingActivities.update_subscription, change), skippable=False)

        self.set_stage("invoicing the proration")
        create = CreateInvoice(
            account_id=r.account_id, subscription_id=subscription.id, currency=r.currency,
            lines=invoice_lines, description=f"Proration for amendment {r.amendment_id}",
            metadata={"o2c_workflow": wid, "amendment_id": r.amendment_id, "contract_id": r.contract_id},
        )
        self.saga.add("invoice", lambda: self._void_invoice(create))
        self.invoice = await self.step("invoice", lambda: self.forward(BillingActivities.create_invoice, create),
                                       skippable=False)
        assert self.invoice is not None
        self.tag(invoice=self.invoice.id)

        if quote is not None:
            self.set_stage(f"committing tax for invoice {self.invoice.id}")
            commit = self._tax_request(r, charged_lines, self._account).model_copy(
                update={"code": self.invoice.id})
            self.saga.add("tax document", lambda: self.undo(TaxActivities.void, commit.code))
            self.tax_document = await self.step("tax commit", lambda: self.forward(TaxActivities.commit, commit))
            if self.tax_document and self.tax_document.total_tax != tax:
                self.note(f"warning: AvaTax committed {self.tax_document.total_tax} "
                          f"but the invoice charged {tax}; the ledger follows the invoice")

        revenue = total((x.amount for x in charged_lines), r.currency)
        if revenue.is_zero and tax.is_zero:
            self.note("nothing to post: the invoice nets to zero")
            await self.deliver(r, subscription)
            return
        self.set_stage("posting the journal entry")
        entity = self._entity(input)
        entry = invoice_entry(
            external_id=f"{wid}-invoice", subsidiary=entity.erp_subsidiary, posting_date=r.effective_date,
            memo=f"Amendment {r.amendment_id}, invoice {self.invoice.id}", revenue=revenue, tax=tax,
            chart=input.chart,
        )
        reversal = entry.reversal(f"{wid}-invoice-reversal", r.effective_date)
        self.saga.add("journal entry", lambda: self._reverse(entry, reversal))
        self.journal_entry = await self.step("journal entry",
                                             lambda: self.forward(ErpActivities.post_journal_entry, entry))
        await self.deliver(r, subscription)

    async def deliver(self, r: AmendmentRequest, subscription: Subscription) -> None:
        """Only with the money booked does the customer get the seats. If the entitlement
        cannot be changed, the booking is undone with it: nobody pays for what they lack."""
        before = {line.product: line.quantity for line in subscription.lines}
        for line in r.lines:
            if before.get(line.product) == line.quantity:
                continue
            restore = SetSeats(account_id=r.account_id, product=line.product, seats=before.get(line.product, 0),
                               step=f"entitlement-{line.product}-restore")
            self.saga.add(f"entitlement {line.product}", lambda restore=restore: self.undo(
                CustomerActivities.set_seats, restore))
            seats = SetSeats(account_id=r.account_id, product=line.product, seats=line.quantity,
                             step=f"entitlement-{line.product}")
            self.set_stage(f"setting {line.product} to {line.quantity} seats")
            await self.step(f"entitlement {line.product}",
                            lambda seats=seats: self.forward(CustomerActivities.set_seats, seats))

    async def after_commit(self, input: AmendmentInput) -> None:
        """The change is booked and delivered; a failed notice never undoes it."""
        r = input.request
        account = self._account or await self.step(
            "read customer", lambda: self.forward(BillingActivities.get_account, r.account_id), must_finish=True)
        if account and account.email:
            self.set_stage("notifying the customer")
            notice = SendNotification(step="notify-customer", notification=self._confirmation(account))
            await self.step("customer notice", lambda: self.forward(CustomerActivities.send, notice),
                            must_finish=True)

    # -- step bodies ---------------------------------------------------------------------------

    async def _quote(self, r: AmendmentRequest, proration: Proration) -> TaxDocument:
        # Read the customer master on every attempt: a retry after an operator fixed the
        # address must see the fix.
        self._account = await self.forward(BillingActivities.get_account, r.account_id)
        if self._account is None:
            raise StepFailed(f"customer {r.account_id} does not exist in billing")
        lines = [InvoiceLine(product=x.product, description=x.description, amount=x.amount) for x in proration.lines]
        request = self._tax_request(r, lines, self._account)
        return await self.forward(TaxActivities.quote, request)

    def _tax_request(self, r: AmendmentRequest, lines: list[InvoiceLine], account: Account | None) -> TaxRequest:
        assert account is not None
        return TaxRequest(
            code=f"{workflow.info().workflow_id}-quote", customer_code=r.account_id,
            document_date=r.effective_date, currency=r.currency, address=account.billing_address, lines=lines,
        )

    async def _void_invoice(self, create: CreateInvoice) -> None:
        invoice = self.invoice
        if invoice is None:
            if "invoice" not in self.unsettled:
                return  # billing refused the create: there is nothing to void
            # Billing never answered (an operator aborted while it was unreachable).
            # Replaying the same idempotency key returns the invoice if it was made.
            invoice = await self.undo(BillingActivities.create_invoice, create)
        self.invoice = await self.undo(BillingActivities.void_invoice, VoidInvoice(invoice_id=invoice.id))

    async def _reverse(self, entry: JournalEntry, reversal: JournalEntry) -> None:
        if self.journal_entry is None:
            if "journal entry" not in self.unsettled:
                return  # the ERP refused the entry: there is nothing to reverse
            # The ERP never answered: look before reversing.
            if await self.undo(ErpActivities.get_journal_entry, entry.external_id) is None:
                return
        # The reversal has its own external ID, so posting it again changes nothing.
        await self.undo(ErpActivities.post_journal_entry, reversal)

    async def _escalate(self, request: ApprovalRequest) -> None:
        r = self.request
        assert r is not None
        notice = Notification(
            recipient=f"approvers:{request.required_role.value}",
            template="approval-escalation",
            subject=f"Amendment {r.amendment_id} has waited 72 hours for approval",
            body=f"Amendment {r.amendment_id} for {r.account_id} needs a {request.required_role.value}: "
                 + "; ".join(request.reasons),
            account_id=r.account_id,
        )
        self.note("escalated: no decision within the escalation window")
        await self.step("approval escalation",
                        lambda: self.forward(CustomerActivities.send, SendNotification(notification=notice,
                                                                                   step="approval-escalation")),
                        must_finish=True)

    def _confirmation(self, account: Account) -> Notification:
        r = self.request
        p = self.proration
        assert r is not None and p is not None
        invoice = f" Invoice {self.invoice.id} for {self.invoice.total}." if self.invoice else ""
        return Notification(
            recipient=account.email, template="amendment-confirmation", account_id=r.account_id,
            subject=f"Your subscription change {r.amendment_id} is confirmed",
            body=f"From {r.effective_date} your monthly charge is {p.monthly_after} (was {p.monthly_before})."
                 + invoice,
        )

    def _entity(self, input: AmendmentInput) -> LegalEntity:
        code = self._account.legal_entity if self._account else ""
        return next((e for e in input.legal_entities if e.code == code), input.legal_entities[0])

    def finish(self, status: Status, message: str) -> AmendmentResult:
        self.set_status(status, message)
        r = self.request
        assert r is not None
        return AmendmentResult(
            amendment_id=r.amendment_id, status=status, message=message,
            net=self.proration.net if self.proration else None,
            invoice_id=self.invoice.id if self.invoice else "",
            invoice_total=self.invoice.total if self.invoice else None,
            tax_document=self.tax_document.code if self.tax_document else "",
            journal_entry=self.journal_entry.external_id if self.journal_entry else "",
            compensated=self.saga.undone,
        )
