"""CreditWorkflow: a credit note or a service credit on one invoice, approved and booked.

validate against the invoice → approve (by the policy's per-currency thresholds; never by the
requester) → Stripe credit note (previewed first) → AvaTax ReturnInvoice referencing the
original → NetSuite credit memo applied to the original's receivable → the journal entry →
the revenue schedules → the invoice's dunning hears the new balance. Each step with a side
effect registers its undo first: the credit note is voided, the return voided, the memo
reversed, the entry reversed, the schedules restored.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.billing import BillingActivities
    from activities.credits import PaymentsActivities, ReceivablesActivities, TaxReturnActivities
    from activities.erp import ErpActivities
    from activities.inputs import ContractSchedules, FindReceivable, IssueCreditNote, ReplaceSchedules, VoidCreditNote
    from activities.schedules import ScheduleActivities
    from canonical.approval import ApprovalPolicy
    from canonical.credit import (
        CreditAmounts,
        CreditPolicy,
        CreditSplit,
        RevenueConcession,
        credit_amounts,
        credit_approval,
        credit_entry,
        credit_problems,
        credited_so_far,
        revenue_concession,
    )
    from canonical.credits import (
        CreditNote,
        CreditNoteOrder,
        CreditReason,
        CreditRequest,
        CreditSettlement,
        ReturnLine,
        TaxReturnRequest,
    )
    from canonical.durations import in_words
    from canonical.journal import ChartOfAccounts, JournalEntry
    from canonical.models import (
        DEFAULT_ENTITIES,
        Account,
        ApprovalRequest,
        Invoice,
        JournalEntryRef,
        LegalEntity,
        Model,
        PaymentEvent,
        PaymentEventKind,
        RevenueSchedule,
        TaxDocument,
    )
    from canonical.money import Money
    from canonical.policy_amounts import UncoveredCurrency
    from canonical.receivables import CreditMemoLine, CreditMemoPosting
    from workflows.dunning import PAYMENT_EVENT_SIGNAL, dunning_workflow_id
    from workflows.kit.approval import ApprovalState
    from workflows.kit.attention import Attention, Resolution
    from workflows.kit.booking import BookingWorkflow
    from workflows.kit.process import ProcessEvent, StepFailed
    from workflows.kit.status import Status


def credit_workflow_id(credit_id: str) -> str:
    return f"credit-{credit_id}"


class CreditInput(Model):
    request: CreditRequest
    policy: CreditPolicy = CreditPolicy()
    approvals: ApprovalPolicy = ApprovalPolicy()  # who approves, and when it escalates and expires
    chart: ChartOfAccounts = ChartOfAccounts()
    legal_entities: list[LegalEntity] = DEFAULT_ENTITIES
    step_window: timedelta = timedelta(hours=1)


class CreditResult(Model):
    credit_id: str
    status: Status
    message: str
    credited: Money | None = None  # tax included
    credit_note: str = ""
    tax_return: str = ""
    credit_memo: str = ""
    journal_entry: str = ""
    compensated: list[str] = []


class CreditState(Model):
    credit_id: str
    invoice_id: str
    account_id: str
    reason: str
    status: Status
    stage: str
    problems: list[str] = []
    amounts: CreditAmounts | None = None
    split: CreditSplit | None = None
    approval: ApprovalState = ApprovalState()
    attention: Attention | None = None
    resolutions: list[Resolution] = []
    invoice: Invoice | None = None
    credit_note: CreditNote | None = None
    tax_document: TaxDocument | None = None
    credit_memo: str = ""
    journal_entry: JournalEntryRef | None = None
    schedules: list[RevenueSchedule] = []
    compensated: list[str] = []
    events: list[ProcessEvent] = []
    updated_at: datetime | None = None


@workflow.defn
class CreditWorkflow(BookingWorkflow):
    process = "credit"

    def __init__(self) -> None:
        super().__init__()
        self.request: CreditRequest | None = None
        self.problems: list[str] = []
        self.amounts: CreditAmounts | None = None
        self.split: CreditSplit | None = None
        self.credit_note: CreditNote | None = None
        self.credit_memo = ""
        self.schedules: list[RevenueSchedule] = []
        self._before: list[RevenueSchedule] = []  # the schedules as they were, to restore

    def headline(self) -> str:
        r = self.request
        if r is None:
            return "Credit"
        what = "Service credit" if r.reason == CreditReason.SERVICE_CREDIT else "Credit"
        size = f" · {self.amounts.total}" if self.amounts else ""
        return f"{what} {r.credit_id} · invoice {r.invoice_id}{size}"

    @workflow.query
    def state(self) -> CreditState:
        r = self.request
        return CreditState(
            credit_id=r.credit_id if r else "",
            invoice_id=r.invoice_id if r else "",
            account_id=self.invoice.account_id if self.invoice else "",
            reason=r.reason.value if r else "",
            status=self.status,
            stage=self.stage,
            problems=self.problems,
            amounts=self.amounts,
            split=self.split,
            approval=self.gate.snapshot(),
            attention=self.queue.attention,
            resolutions=self.queue.resolutions,
            invoice=self.invoice,
            credit_note=self.credit_note,
            tax_document=self.tax_document,
            credit_memo=self.credit_memo,
            journal_entry=self.journal_entry,
            schedules=self.schedules,
            compensated=self.saga.undone,
            events=self.events,
            updated_at=self.events[-1].at if self.events else None,
        )

    @workflow.run
    async def run(self, input: CreditInput) -> CreditResult:
        r = self.request = input.request
        self.step_window = input.step_window
        self.tag(invoice=r.invoice_id)
        self.trust(input.approvals)
        self.set_status(Status.RUNNING, f"validating the credit on invoice {r.invoice_id}")

        invoice = await self.step(
            "read invoice", lambda: self.forward(BillingActivities.get_invoice, r.invoice_id), skippable=False
        )
        self.invoice = invoice
        so_far = credited_so_far(invoice) if invoice else None
        self.problems = credit_problems(r, invoice, so_far)
        if self.problems:
            return self.finish(Status.REJECTED, "credit refused: " + "; ".join(self.problems))
        assert invoice is not None and so_far is not None
        self.tag(customer=invoice.account_id, contract=invoice.metadata.get("contract_id", ""))
        self.amounts = credit_amounts(r, invoice, so_far)
        self.set_stage(f"credit of {self.amounts.net} and {self.amounts.tax} tax on invoice {invoice.id}")

        try:
            approval = credit_approval(r, self.amounts.net, input.policy)
        except UncoveredCurrency as uncovered:
            self.problems = [str(uncovered)]
            return self.finish(Status.REJECTED, f"credit refused: {uncovered}")
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

        rolled_back = await self.run_saga(
            lambda: self.apply(input, invoice),
            lambda reason: self.finish(Status.ROLLED_BACK, f"rolled back: {reason}"),
        )
        if rolled_back is not None:
            return rolled_back
        await self._tell_dunning(invoice)
        return self.finish(Status.COMPLETED, f"credit of {self.amounts.total} booked")

    # -- the saga ---------------------------------------------------------------------------

    async def apply(self, input: CreditInput, invoice: Invoice) -> None:
        r = input.request
        wid = workflow.info().workflow_id
        today = workflow.now().date()
        account = await self.step(
            "read customer",
            lambda: self.forward(BillingActivities.get_account, invoice.account_id),
            skippable=False,
        )
        if account is None:
            raise StepFailed(f"customer {invoice.account_id} does not exist in billing")
        self.account = account
        entity = self.entity_for(input.legal_entities, account.legal_entity)

        note = await self._credit_note(r, invoice, entity)
        computed = self._amounts()
        # The ledger follows what billing credited (its tax may round differently from o2c's).
        amounts = CreditAmounts(
            net=note.subtotal if note.subtotal is not None else computed.net,
            tax=note.tax if note.tax is not None else computed.tax,
            lines=computed.lines,
        )
        zero = Money.zero(invoice.currency)
        post = note.post_payment_amount if note.post_payment_amount is not None else zero
        pre = note.pre_payment_amount if note.pre_payment_amount is not None else amounts.total - post
        refund = r.settlement == CreditSettlement.REFUND
        self.split = CreditSplit(
            off_receivable=pre, to_balance=zero if refund else post, refunded=post if refund else zero
        )

        await self._tax_return(r, invoice, account, amounts, today)
        await self._credit_memo(input, invoice, entity, amounts, today)
        concession = await self._concession(invoice, amounts.net, today)
        entry = credit_entry(
            external_id=f"{wid}-entry",
            subsidiary=entity.erp_subsidiary,
            posting_date=today,
            memo=f"Credit {r.credit_id} ({r.reason.value}) on invoice {invoice.id}",
            amounts=amounts,
            split=self.split,
            recognised=concession.recognised,
            chart=input.chart,
            invoice_id=invoice.id,
        )
        reversal = entry.reversal(f"{wid}-entry-reversal", today)
        self.set_stage("posting the journal entry")
        self.saga.add("journal entry", lambda: self._reverse(entry, reversal))
        self.journal_entry = await self.step(
            "journal entry", lambda: self.forward(ErpActivities.post_journal_entry, entry), skippable=False
        )
        await self._save_schedules(concession)

    def _amounts(self) -> CreditAmounts:
        assert self.amounts is not None
        return self.amounts

    async def _credit_note(self, r: CreditRequest, invoice: Invoice, entity: LegalEntity) -> CreditNote:
        amounts = self._amounts()
        order = CreditNoteOrder(
            invoice_id=invoice.id,
            # Stripe knows four reasons; a service credit goes as order_change, named in the metadata.
            stripe_reason=CreditReason.ORDER_CHANGE.value
            if r.reason == CreditReason.SERVICE_CREDIT
            else r.reason.value,
            lines=r.lines,
            amount=r.amount,
            settlement=r.settlement,
            memo=r.explanation,
            metadata={
                "o2c_workflow": workflow.info().workflow_id,
                "o2c_credit_id": r.credit_id,
                "o2c_reason": r.reason.value,
                "o2c_requested_by": r.requested_by,
            },
        )
        issue = IssueCreditNote(order=order, billing_account=entity.billing_account)
        self.set_stage("previewing the credit note")
        preview = await self.step(
            "credit note preview",
            lambda: self.forward(PaymentsActivities.preview_credit_note, issue),
            skippable=False,
        )
        if preview.total != amounts.total:
            self.note(
                f"warning: billing credits {preview.total} where o2c computed {amounts.total}; the ledger follows billing"
            )
        self.set_stage(f"issuing the credit note for {preview.total}")
        self.saga.add("credit note", lambda: self._void_credit_note(issue))
        self.credit_note = await self.step(
            "credit note", lambda: self.forward(PaymentsActivities.create_credit_note, issue), skippable=False
        )
        return self.credit_note

    async def _void_credit_note(self, issue: IssueCreditNote) -> None:
        note = self.credit_note
        if note is None:
            if "credit note" not in self.unsettled:
                return  # billing refused it: there is nothing to void
            # Billing never answered: the same idempotency key returns the note if it was made.
            note = await self.undo(PaymentsActivities.create_credit_note, issue)
        self.credit_note = await self.undo(
            PaymentsActivities.void_credit_note,
            VoidCreditNote(credit_note_id=note.credit_note_id, billing_account=issue.billing_account),
        )

    async def _tax_return(
        self, r: CreditRequest, invoice: Invoice, account: Account, amounts: CreditAmounts, today: date
    ) -> None:
        by_id = {x.line_id: x for x in invoice.lines}
        if amounts.lines:
            lines = [
                ReturnLine(
                    number=str(i + 1),
                    amount=amount,
                    product=by_id[line_id].product,
                    description=by_id[line_id].description,
                )
                for i, (line_id, amount) in enumerate(amounts.lines.items())
            ]
        else:
            lines = [ReturnLine(number="1", amount=amounts.net, description=f"Credit {r.credit_id}: {r.explanation}")]
        request = TaxReturnRequest(
            code=f"{workflow.info().workflow_id}-return",
            # The invoice's tax document is committed under the invoice id (workflows/kit/booking.py).
            original_code=invoice.id,
            customer_code=account.id,
            return_date=today,
            # unverified: billing's creation day is taken as the original's tax date; o2c commits
            # an invoice's tax on the day it creates the invoice, so they agree for o2c's invoices.
            original_date=invoice.created or today,
            currency=invoice.currency,
            address=account.billing_address,
            lines=lines,
        )
        self.set_stage(f"recording the tax return against {invoice.id}")
        # The return is voided as a ReturnInvoice: AvaTax finds a document by code and type.
        self.saga.add("tax return", lambda: self.undo(TaxReturnActivities.void_return, request.code))
        self.tax_document = await self.step(
            "tax return", lambda: self.forward(TaxReturnActivities.return_invoice, request), skippable=False
        )
        returned = -self.tax_document.total_tax
        if returned != amounts.tax:
            self.note(
                f"warning: AvaTax returned {returned} of tax but billing credited {amounts.tax}; the ledger follows billing"
            )

    async def _credit_memo(
        self, input: CreditInput, invoice: Invoice, entity: LegalEntity, amounts: CreditAmounts, today: date
    ) -> None:
        split = self.split
        assert split is not None
        receivable = None
        if split.off_receivable.amount > 0:
            find = FindReceivable(invoice_id=invoice.id, subsidiary=entity.erp_subsidiary)
            receivable = await self.step(
                "find receivable",
                lambda: self.forward(ReceivablesActivities.receivable_document, find),
                skippable=False,
            )
            if receivable is None:
                self.note(f"warning: the ERP has no receivable for {invoice.id}; the memo is left unapplied")
        memo = CreditMemoPosting(
            external_id=f"{workflow.info().workflow_id}-memo",
            customer=invoice.account_id,
            subsidiary=entity.erp_subsidiary,
            currency=invoice.currency,
            tran_date=today,
            invoice_id=invoice.id,
            # The memo's lines post to the clearing account; the journal entry moves it on to
            # deferred revenue and revenue (see canonical/credit.py credit_entry).
            lines=[
                CreditMemoLine(
                    account=input.chart.credit_clearing, amount=amounts.net, memo=f"Credit {input.request.credit_id}"
                )
            ],
            tax=amounts.tax,
            apply_to=receivable or "",
            apply_amount=split.off_receivable if receivable else None,
            memo=f"{input.request.reason.value}: {input.request.explanation}",
        )
        self.set_stage(f"posting the credit memo against {invoice.id}")
        self.saga.add("credit memo", lambda: self.undo(ReceivablesActivities.reverse_credit_memo, memo.external_id))
        self.credit_memo = await self.step(
            "credit memo", lambda: self.forward(ReceivablesActivities.post_credit_memo, memo), skippable=False
        )

    async def _concession(self, invoice: Invoice, net: Money, today: date) -> RevenueConcession:
        zero = Money.zero(invoice.currency)
        contract = invoice.metadata.get("contract_id", "")
        if not contract and invoice.subscription_id:
            subscription = await self.step(
                "read subscription",
                lambda: self.forward(BillingActivities.get_subscription, invoice.subscription_id),
                skippable=False,
            )
            contract = subscription.contract_id if subscription else ""
        if not contract:
            self.note("no contract on the invoice: the credit is taken from deferred revenue")
            return RevenueConcession(deferred=net, recognised=zero)
        existing = (
            await self.step(
                "read revenue schedules",
                lambda: self.forward(ScheduleActivities.of_contract, ContractSchedules(contract_id=contract)),
                skippable=False,
            )
            or []
        )
        concession = revenue_concession(existing, net, today)
        if not concession.save:
            return RevenueConcession(deferred=net, recognised=zero)
        self._before = [x for x in existing if x.schedule_id in {s.schedule_id for s in concession.save}]
        return concession

    async def _save_schedules(self, concession: RevenueConcession) -> None:
        if not concession.save:
            return
        restore = ReplaceSchedules(save=self._before)
        self.set_stage("changing the revenue schedules")
        self.saga.add("revenue schedules", lambda: self.undo(ScheduleActivities.replace, restore))
        await self.step(
            "revenue schedules",
            lambda: self.forward(ScheduleActivities.replace, ReplaceSchedules(save=concession.save)),
            skippable=False,
        )
        self.schedules = concession.save
        if concession.recognised.amount > 0:
            self.note(f"revenue already recognised reversed at once: {concession.recognised}")

    async def _reverse(self, entry: JournalEntry, reversal: JournalEntry) -> None:
        if self.journal_entry is None:
            if "journal entry" not in self.unsettled:
                return
            if await self.undo(ErpActivities.get_journal_entry, entry.external_id) is None:
                return
        await self.undo(ErpActivities.post_journal_entry, reversal)

    async def _tell_dunning(self, invoice: Invoice) -> None:
        """The invoice's dunning follows what is still due; an invoice without one is fine."""
        split = self.split
        if split is None or invoice.amount_remaining is None or split.off_receivable.is_zero:
            return
        event = PaymentEvent(
            event_id=f"{workflow.info().workflow_id}-balance",
            kind=PaymentEventKind.BALANCE_CHANGED,
            occurred_at=workflow.now(),
            invoice_id=invoice.id,
            account_id=invoice.account_id,
            amount_remaining=invoice.amount_remaining - split.off_receivable,
        )
        try:
            await workflow.get_external_workflow_handle(dunning_workflow_id(invoice.id)).signal(
                PAYMENT_EVENT_SIGNAL, event
            )
            self.note(f"the dunning of {invoice.id} now collects {event.amount_remaining}")
        except Exception:  # no dunning runs for this invoice: nothing is chasing the balance
            self.note(f"no dunning runs for {invoice.id}")

    async def _escalate(self, request: ApprovalRequest) -> None:
        r = self.request
        assert r is not None
        await self.escalate_approval(
            f"Credit {r.credit_id} on invoice {r.invoice_id} has waited for approval",
            self.invoice.account_id if self.invoice else "",
            request.required_role.value,
            request.reasons,
        )

    def finish(self, status: Status, message: str) -> CreditResult:
        self.set_status(status, message)
        r = self.request
        assert r is not None
        return CreditResult(
            credit_id=r.credit_id,
            status=status,
            message=message,
            credited=self.credit_note.total if self.credit_note else (self.amounts.total if self.amounts else None),
            credit_note=self.credit_note.credit_note_id if self.credit_note else "",
            tax_return=self.tax_document.code if self.tax_document else "",
            credit_memo=self.credit_memo,
            journal_entry=self.journal_entry.external_id if self.journal_entry else "",
            compensated=self.saga.undone,
        )
