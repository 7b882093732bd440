"""CashApplicationWorkflow: a bank statement's receipts (or one Stripe receipt) applied.

Per batch of receipts, paged from o2c's cash store: match (the rules of DOMAIN.md, recorded
in the store), then side by side: post to the ERP (a customer payment per receipt with a
known customer, applied to the invoices' receivables, the rest unapplied on the customer; a
suspense entry for cash from nobody known or received for another entity's invoice); mark
bank-paid invoices settled in full paid out of band in billing; feed the dunning of every
invoice paid; give the CRM accounts their open balance and last payment date. The next
batch is matched meanwhile. Once the store has recorded a batch there is no way back: a
failure after that waits for an operator (retry, or skip when done by hand), never undoes.

Then the receipts that matching could not apply wait in the exception queue (unapplied cash,
on-account rests, duplicate settlements, cross-entity remittances) for an operator's
`apply_receipt` or `refund_receipt`. The workflow ends when none of them waits any more: an
open queue entry is a question that belongs to this statement, and a waiting workflow costs
nothing but its history.

The history holds one batch at a time; the run continues as new every few dozen batches (or
when Temporal suggests it), carrying its counts and the waiting receipts only.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.types import MethodAsyncSingleParam

with workflow.unsafe.imports_passed_through():
    from pydantic import ConfigDict, Field

    from activities.cash import (
        CashActivities,
        CreateRefund,
        CustomerBalances,
        DunningEvent,
        DunningEvents,
        MatchBatch,
        MatchedBatch,
        OpenItemsOf,
        PaidOutOfBand,
        PostBatch,
        PostPayment,
        ReceivableDocuments,
        cash_account,
        in_suspense,
        payment_external_id,
        suspense_entry,
    )
    from canonical.cash.models import (
        Application,
        CashDecision,
        CashDecisionKind,
        CashMatch,
        ExceptionKind,
        Receipt,
        ReceiptSource,
    )
    from canonical.journal import ChartOfAccounts, JournalEntry, JournalLine
    from canonical.models import DEFAULT_ENTITIES, LegalEntity, Model, PaymentEvent, PaymentEventKind
    from canonical.money import Money
    from canonical.receivables import AppliedDocument, CustomerRefundPosting
    from workflows.dunning import PAYMENT_EVENT_SIGNAL, dunning_workflow_id
    from workflows.kit.attention import Attention, OperatorAction, Resolution
    from workflows.kit.process import ProcessEvent, ProcessWorkflow
    from workflows.kit.status import Status

# Matching and posting a batch take longer than one call; a worker that stops heartbeating
# is replaced, and the batch is redone (the store keeps first matches, the ERP upserts).
BATCH_TIMEOUT = timedelta(minutes=10)
BATCH_HEARTBEAT = timedelta(minutes=2)
BATCH_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30))
# What an operator's decision is refused with once it passed the validator (an invoice that
# is not open, another customer's): the update fails, the workflow goes on waiting.
REFUSED = "CashDecisionRefused"

A = TypeVar("A")
R = TypeVar("R")


def cash_workflow_id(*, statement_id: str = "", receipt_id: str = "") -> str:
    """`cash-<statement id>`, or `cash-<receipt id>` for a receipt that came alone (Stripe):
    importing a statement twice, or a webhook delivered twice, lands on the same workflow."""
    return f"cash-{statement_id or receipt_id}"


class WaitingReceipt(Model):
    """A receipt of this workflow in the cash exception queue, as much as deciding on it needs."""

    receipt_id: str
    kind: ExceptionKind
    amount: Money
    unapplied: Money
    customer: str = ""
    source: ReceiptSource
    suspense: bool = False  # its cash sits in the suspense account, not on a customer
    explanation: str = ""
    since: datetime


class RecordedCashDecision(Model):
    """An operator's decision as the workflow took it: who, when, why, and what it posted."""

    receipt_id: str
    kind: CashDecisionKind
    decided_by: str
    decided_at: datetime
    comment: str
    applications: list[Application] = []
    refund: Money | None = None
    posted: list[str] = []  # the external ids (or Stripe refund id) it posted


class CashProgress(Model):
    """What a run carries across continue-as-new."""

    model_config = ConfigDict(frozen=False)

    after: str = ""  # the last receipt id done
    done: bool = False  # every batch has been applied
    batches: int = 0
    receipts: int = 0
    by_rule: dict[str, int] = {}
    applied: dict[str, Money] = {}  # per currency
    unapplied: dict[str, Money] = {}
    waiting: dict[str, WaitingReceipt] = {}
    decisions: list[RecordedCashDecision] = []
    events: list[ProcessEvent] = []


class CashApplicationInput(Model):
    statement_id: str = ""
    receipt_id: str = ""  # a receipt that came alone (Stripe); then statement_id is empty
    legal_entity: str
    chart: ChartOfAccounts = ChartOfAccounts()
    legal_entities: list[LegalEntity] = DEFAULT_ENTITIES
    batch_size: int = 500
    posting_concurrency: int = 16
    dunning_concurrency: int = 32
    batches_per_run: int = 40
    step_window: timedelta = timedelta(hours=1)
    progress: CashProgress | None = None  # set when the run continues as new


class InvoiceAmount(Model):
    model_config = ConfigDict(frozen=True, extra="forbid")

    invoice_id: str = Field(min_length=1)
    amount: Money | None = None  # empty: what is still due on it, up to what is unapplied


class ApplyReceipt(Model):
    """`apply_receipt`: apply a queued receipt's unapplied cash to invoices."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    receipt_id: str
    invoices: list[InvoiceAmount] = Field(min_length=1)
    operator: str  # the caller's identity (the CLI's --as until sign-in replaces it)
    comment: str = ""


class RefundReceipt(Model):
    """`refund_receipt`: give a queued receipt's unapplied cash back to the payer."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    receipt_id: str
    amount: Money | None = None  # empty: all that is unapplied
    operator: str
    comment: str = ""


class CashState(Model):
    statement_id: str
    receipt_id: str
    legal_entity: str
    status: Status
    stage: str
    batches: int
    receipts: int
    by_rule: dict[str, int]
    applied: dict[str, Money]
    unapplied: dict[str, Money]
    waiting: list[WaitingReceipt]
    waiting_unapplied: dict[str, Money]
    decisions: list[RecordedCashDecision]
    attention: Attention | None = None
    resolutions: list[Resolution] = []
    events: list[ProcessEvent] = []


class CashResult(Model):
    workflow_id: str
    status: Status
    message: str
    receipts: int
    by_rule: dict[str, int]
    applied: dict[str, Money]
    unapplied: dict[str, Money]
    decisions: int


def _add(totals: dict[str, Money], amount: Money) -> None:
    totals[amount.currency] = totals.get(amount.currency, Money.zero(amount.currency)) + amount


def _amounts(totals: dict[str, Money]) -> str:
    return ", ".join(str(m) for _, m in sorted(totals.items())) or "nothing"


@workflow.defn
class CashApplicationWorkflow(ProcessWorkflow):
    process = "cash"

    def __init__(self) -> None:
        super().__init__()
        self.input: CashApplicationInput | None = None
        self.progress = CashProgress()
        self.entity: LegalEntity | None = None
        self._deciding = asyncio.Lock()
        self._parking = asyncio.Lock()

    # -- what an operator sees ---------------------------------------------------------------

    def headline(self) -> str:
        i = self.input
        if i is None:
            return "Cash application"
        what = f"statement {i.statement_id}" if i.statement_id else f"receipt {i.receipt_id}"
        return f"Cash application of {what} · {i.legal_entity}"

    def waiting_unapplied(self) -> dict[str, Money]:
        totals: dict[str, Money] = {}
        for w in self.progress.waiting.values():
            _add(totals, w.unapplied)
        return totals

    @workflow.query
    def state(self) -> CashState:
        i, p = self.input, self.progress
        return CashState(
            statement_id=i.statement_id if i else "",
            receipt_id=i.receipt_id if i else "",
            legal_entity=i.legal_entity if i else "",
            status=self.status,
            stage=self.stage,
            batches=p.batches,
            receipts=p.receipts,
            by_rule=p.by_rule,
            applied=p.applied,
            unapplied=p.unapplied,
            waiting=sorted(p.waiting.values(), key=lambda w: (w.since, w.receipt_id)),
            waiting_unapplied=self.waiting_unapplied(),
            decisions=p.decisions,
            attention=self.queue.attention,
            resolutions=self.queue.resolutions,
            events=p.events + self.events,
        )

    # -- the process ----------------------------------------------------------------------------

    @workflow.run
    async def run(self, input: CashApplicationInput) -> CashResult:
        self.input = input
        self.step_window = input.step_window
        self.entity = self.entity_for(input.legal_entities, input.legal_entity)
        self.tag()
        if input.progress is not None:
            self.progress = input.progress
            self.set_status(Status.RUNNING, f"continuing after {self.progress.receipts} receipts")
        else:
            self.set_status(Status.RUNNING, "applying " + self.headline().removeprefix("Cash application of "))
        started = self.progress.batches
        # Batch n is posted and followed up while batch n+1 is matched: matching reads only
        # the store, and the store has batch n's matches before its posting starts.
        settling: asyncio.Future[None] | None = None
        while not self.progress.done:
            if (
                self.progress.batches - started >= input.batches_per_run
                or workflow.info().is_continue_as_new_suggested()
            ):
                if settling is not None:
                    await settling
                await self._continue_as_new()
            batch = await self._match()
            if settling is not None:
                await settling
                settling = None
            if batch.receipts:
                settling = asyncio.ensure_future(self._settle(batch))
        if settling is not None:
            await settling
        await self._wait_for_decisions()
        p = self.progress
        return self.finish(
            Status.COMPLETED,
            f"{p.receipts} receipts: {_amounts(p.applied)} applied"
            + (f", {len(p.decisions)} decided by operators" if p.decisions else ""),
        )

    async def _continue_as_new(self) -> None:
        i, p = self.input, self.progress
        assert i is not None
        await workflow.wait_condition(workflow.all_handlers_finished)
        self.note(f"continuing as new after {p.receipts} receipts")
        p.events = (p.events + self.events)[-30:]
        workflow.continue_as_new(i.model_copy(update={"progress": p}))

    # -- one batch ------------------------------------------------------------------------------

    async def _match(self) -> MatchedBatch:
        i, p = self.input, self.progress
        assert i is not None
        self.set_stage(f"matching batch {p.batches + 1} (after {p.receipts} receipts)")
        request = MatchBatch(statement_id=i.statement_id, receipt_id=i.receipt_id, after=p.after, limit=i.batch_size)
        batch: MatchedBatch = await self.step(
            "match receipts", lambda: self._long(CashActivities.match_batch, request), skippable=False
        )
        self._count(batch)
        p.batches += 1
        p.after = batch.next_after or p.after
        p.done = not batch.next_after
        return batch

    async def _settle(self, batch: MatchedBatch) -> None:
        """The ERP, billing, the dunnings and the CRM side by side: each needs only what the
        store recorded, and each call is an upsert, a PATCH or an event with its own id."""

        async def post() -> None:
            await self._post(batch)
            self._queue(batch)

        await asyncio.gather(post(), self._follow_up(batch.receipts, batch.matches, batch.balances))

    async def _park(self, name: str, problem: Any, actions: list[OperatorAction]) -> OperatorAction:
        """One question at a time: steps that run side by side and fail wait their turn."""
        async with self._parking:
            return await super()._park(name, problem, actions)

    async def _post(self, batch: MatchedBatch) -> None:
        i, entity = self.input, self.entity
        assert i is not None and entity is not None
        self.set_stage(f"posting {len(batch.receipts)} receipts to the ERP")
        post = PostBatch(
            receipts=batch.receipts,
            matches=batch.matches,
            entity=entity,
            chart=i.chart,
            concurrency=i.posting_concurrency,
        )
        # After the store recorded the matches there is no way back: a posting the ERP refuses
        # waits for a person (retry once fixed, or skip when it was posted by hand).
        await self.step("post receipts", lambda: self._long(CashActivities.post_batch, post), must_finish=True)

    async def _follow_up(self, receipts: list[Receipt], matches: list[CashMatch], balances: dict[str, Money]) -> None:
        """Billing, the dunnings and the CRM learn what the cash paid."""
        i, entity = self.input, self.entity
        assert i is not None and entity is not None
        by_id = {r.receipt_id: r for r in receipts}
        paid = [(by_id[m.receipt_id], m) for m in matches if m.applications and m.receipt_id in by_id]
        if not paid:
            return
        # Stripe marks the invoices its own payments paid; a bank transfer it must be told of.
        settled = sorted(
            {
                a.invoice_id
                for r, m in paid
                if r.source != ReceiptSource.STRIPE
                for a in m.applications
                if a.invoice_id in balances and balances[a.invoice_id].is_zero
            }
        )
        steps: list[tuple[str, Callable[[], Awaitable[object]]]] = []
        if settled:
            mark = PaidOutOfBand(
                invoice_ids=settled, billing_account=entity.billing_account, concurrency=i.posting_concurrency
            )
            steps.append(("mark invoices paid", lambda: self._long(CashActivities.mark_paid_out_of_band, mark)))
        customers: dict[str, datetime] = {}
        for r, m in paid:
            if m.customer:
                when = datetime.combine(r.value_date, datetime.min.time())
                customers[m.customer] = max(customers.get(m.customer, when), when)
        if customers:
            update = CustomerBalances(
                last_payment_on={c: d.date() for c, d in customers.items()},
                currency=paid[0][0].amount.currency,
                concurrency=i.posting_concurrency,
            )
            steps.append(("update CRM accounts", lambda: self._long(CashActivities.update_receivables, update)))
        dunnings = DunningEvents(
            signal=PAYMENT_EVENT_SIGNAL, events=self._dunning_events(paid, balances), concurrency=i.dunning_concurrency
        )
        steps.append(("tell the dunnings", lambda: self._long(CashActivities.tell_dunnings, dunnings)))
        self.set_stage(
            f"telling billing ({len(settled)} invoices paid), {len(dunnings.events)} dunnings "
            f"and {len(customers)} CRM accounts"
        )
        outcomes = await asyncio.gather(*(run() for _, run in steps), return_exceptions=True)
        # Side by side first; what failed then goes through the exception queue one at a time
        # (each is an upsert, a PATCH or an event with its own id: running it again changes nothing).
        for (name, run), outcome in zip(steps, outcomes, strict=True):
            if isinstance(outcome, ActivityError):
                await self.step(name, run, must_finish=True)
            elif isinstance(outcome, BaseException):
                raise outcome

    @staticmethod
    def _dunning_events(paid: list[tuple[Receipt, CashMatch]], balances: dict[str, Money]) -> list[DunningEvent]:
        """A payment event for `dunning-<invoice>` of each invoice paid: PAID when settled,
        BALANCE_CHANGED with what remains otherwise. The event id is the receipt's and the
        invoice's, so a repeat changes nothing; an invoice nobody is dunning has no workflow,
        which is fine (one activity a batch sends them, see CashActivities.tell_dunnings)."""
        events = []
        for r, m in paid:
            for a in m.applications:
                remaining = balances.get(a.invoice_id)
                settled = remaining is not None and remaining.is_zero
                events.append(
                    DunningEvent(
                        workflow_id=dunning_workflow_id(a.invoice_id),
                        event=PaymentEvent(
                            event_id=f"{r.receipt_id}:{a.invoice_id}",
                            kind=PaymentEventKind.PAID if settled else PaymentEventKind.BALANCE_CHANGED,
                            occurred_at=datetime.combine(r.value_date, datetime.min.time()),
                            invoice_id=a.invoice_id,
                            account_id=m.customer,
                            amount_remaining=remaining,
                        ),
                    )
                )
        return events

    def _count(self, batch: MatchedBatch) -> None:
        p = self.progress
        for m in batch.matches:
            p.receipts += 1
            p.by_rule[m.rule.value] = p.by_rule.get(m.rule.value, 0) + 1
            for a in m.applications:
                _add(p.applied, a.amount)
            if not m.unapplied.is_zero:
                _add(p.unapplied, m.unapplied)

    def _queue(self, batch: MatchedBatch) -> None:
        """The batch's receipts a person must decide on, once their cash is posted (to the
        customer or to suspense): a decision moves what the ERP already holds."""
        p = self.progress
        by_id = {r.receipt_id: r for r in batch.receipts}
        for m in batch.matches:
            receipt = by_id.get(m.receipt_id)
            if receipt is not None and (m.exception is not None or not m.unapplied.is_zero):
                p.waiting[m.receipt_id] = WaitingReceipt(
                    receipt_id=m.receipt_id,
                    kind=m.exception or ExceptionKind.UNMATCHED,
                    amount=receipt.amount,
                    unapplied=m.unapplied,
                    customer=m.customer,
                    source=receipt.source,
                    suspense=in_suspense(m),
                    explanation=m.explanation,
                    since=workflow.now(),
                )

    def _long(self, fn: MethodAsyncSingleParam[Any, A, R], arg: A) -> Awaitable[R]:
        """A batch activity: heartbeats, and a longer call than one request."""
        return workflow.execute_activity_method(
            fn,
            arg,
            start_to_close_timeout=BATCH_TIMEOUT,
            schedule_to_close_timeout=self.step_window,
            heartbeat_timeout=BATCH_HEARTBEAT,
            retry_policy=BATCH_RETRY,
        )

    # -- the exception queue of cash ------------------------------------------------------------

    def _waiting_stage(self) -> str:
        p = self.progress
        kinds: dict[str, int] = {}
        for w in p.waiting.values():
            kinds[w.kind.value] = kinds.get(w.kind.value, 0) + 1
        named = ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in sorted(kinds.items()))
        count = "1 receipt waits" if len(p.waiting) == 1 else f"{len(p.waiting)} receipts wait"
        return (
            f"{count} in the cash exception queue ({named}), "
            f"{_amounts(self.waiting_unapplied())} unapplied: `o2c cash queue`, then apply or refund"
        )

    async def _wait_for_decisions(self) -> None:
        while self.progress.waiting:
            self.set_status(Status.NEEDS_ATTENTION, self._waiting_stage())
            before = len(self.progress.waiting)

            def decided_or_long(before: int = before) -> bool:
                return len(self.progress.waiting) != before or workflow.info().is_continue_as_new_suggested()

            await workflow.wait_condition(decided_or_long)
            if self.progress.waiting and workflow.info().is_continue_as_new_suggested():
                await self._continue_as_new()
        await workflow.wait_condition(workflow.all_handlers_finished)

    def _check_waiting(self, receipt_id: str, operator: str) -> WaitingReceipt:
        waiting = self.progress.waiting.get(receipt_id)
        if waiting is None:
            raise ValueError(f"receipt {receipt_id} does not wait in {workflow.info().workflow_id}")
        if not operator.strip():
            raise ValueError("say who you are (--as NAME)")
        return waiting

    async def _decide(
        self,
        decision: ApplyReceipt | RefundReceipt,
        carry_out: Callable[[WaitingReceipt], Awaitable[RecordedCashDecision]],
    ) -> RecordedCashDecision:
        """One decision at a time; what the store or the ERP refuses reaches the operator."""
        async with self._deciding:
            try:
                return await carry_out(self._check_waiting(decision.receipt_id, decision.operator))
            except ValueError as refused:
                raise ApplicationError(str(refused), type=REFUSED, non_retryable=True) from refused

    @workflow.update
    async def apply_receipt(self, decision: ApplyReceipt) -> RecordedCashDecision:
        return await self._decide(decision, lambda waiting: self._apply(waiting, decision))

    @apply_receipt.validator
    def _validate_apply(self, decision: ApplyReceipt) -> None:
        waiting = self._check_waiting(decision.receipt_id, decision.operator)
        ids = [x.invoice_id for x in decision.invoices]
        if len(set(ids)) != len(ids):
            raise ValueError("name each invoice once")
        given = Money.zero(waiting.unapplied.currency)
        for x in decision.invoices:
            if x.amount is None:
                continue
            if x.amount.currency != waiting.unapplied.currency:
                raise ValueError(f"amounts are in the receipt's currency {waiting.unapplied.currency}")
            if x.amount.is_zero or x.amount.is_negative:
                raise ValueError(f"the amount for {x.invoice_id} must be positive")
            given += x.amount
        if given > waiting.unapplied:
            raise ValueError(f"{given} is more than the {waiting.unapplied} unapplied on {decision.receipt_id}")

    @workflow.update
    async def refund_receipt(self, decision: RefundReceipt) -> RecordedCashDecision:
        return await self._decide(decision, lambda waiting: self._refund(waiting, decision))

    @refund_receipt.validator
    def _validate_refund(self, decision: RefundReceipt) -> None:
        waiting = self._check_waiting(decision.receipt_id, decision.operator)
        if not decision.comment.strip():
            raise ValueError("a refund needs a reason (--reason)")
        amount = decision.amount
        if amount is None:
            return
        if amount.currency != waiting.unapplied.currency:
            raise ValueError(f"the refund is in the receipt's currency {waiting.unapplied.currency}")
        if amount.is_zero or amount.is_negative:
            raise ValueError("the refund must be positive")
        if amount > waiting.unapplied:
            raise ValueError(f"{amount} is more than the {waiting.unapplied} unapplied on {decision.receipt_id}")

    async def _receipt(self, receipt_id: str) -> Receipt:
        receipt = await self.forward(CashActivities.receipt, receipt_id)
        if receipt is None:
            raise ValueError(f"receipt {receipt_id} is not in o2c's cash store")
        return receipt

    async def _apply(self, waiting: WaitingReceipt, decision: ApplyReceipt) -> RecordedCashDecision:
        i, entity = self.input, self.entity
        assert i is not None and entity is not None
        receipt = await self._receipt(waiting.receipt_id)
        items = {
            x.invoice_id: x
            for x in await self.forward(
                CashActivities.open_items, OpenItemsOf(invoice_refs=[x.invoice_id for x in decision.invoices])
            )
        }
        currency = waiting.unapplied.currency
        left = waiting.unapplied
        applications: list[Application] = []
        for x in decision.invoices:
            item = items.get(x.invoice_id)
            if item is None:
                raise ValueError(f"invoice {x.invoice_id} is not an open item")
            if item.legal_entity != receipt.legal_entity:
                raise ValueError(
                    f"invoice {x.invoice_id} belongs to {item.legal_entity}, the cash to {receipt.legal_entity}: "
                    "a cross-entity remittance is settled between the entities, then refunded or applied there"
                )
            if waiting.customer and item.customer != waiting.customer:
                raise ValueError(f"invoice {x.invoice_id} is {item.customer}'s, the receipt {waiting.customer}'s")
            if item.balance.currency != currency:
                raise ValueError(f"invoice {x.invoice_id} is in {item.balance.currency}, the receipt in {currency}")
            amount = x.amount or min(item.balance, left)
            if amount > item.balance:
                raise ValueError(f"{amount} is more than the {item.balance} still due on {x.invoice_id}")
            if amount.is_zero:
                raise ValueError(f"nothing is left to apply to {x.invoice_id}")
            left -= amount
            if left.is_negative:
                raise ValueError(f"the amounts add up to more than the {waiting.unapplied} unapplied")
            applications.append(Application(invoice_id=x.invoice_id, amount=amount, erp_document=item.erp_document))
        customers = {items[a.invoice_id].customer for a in applications}
        if len(customers) != 1:
            raise ValueError("one receipt pays one customer's invoices: " + ", ".join(sorted(customers)))
        customer = customers.pop()

        match = await self.forward(
            CashActivities.record_decision,
            CashDecision(
                receipt_id=receipt.receipt_id,
                kind=CashDecisionKind.APPLY,
                applications=applications,
                decided_by=decision.operator.strip(),
                decided_at=workflow.now(),
                comment=decision.comment,
            ),
        )
        # From here the store has the decision: the postings must finish. The match it returns
        # holds every application of the receipt, one line an invoice.
        lines = await self._documents(match.applications)
        posted = []
        if waiting.suspense:
            # Cash from nobody known sat in suspense: take it out, and post it as the customer's payment.
            suspense = suspense_entry(receipt, subsidiary=entity.erp_subsidiary, chart=i.chart)
            reversal = suspense.reversal(f"{suspense.external_id}-reversal", workflow.now().date())
            await self.step(
                "reverse the suspense entry",
                lambda: self.forward(CashActivities.post_journal_entry, reversal),
                must_finish=True,
            )
            posted.append(reversal.external_id)
        payment = PostPayment(receipt=receipt, customer=customer, applications=lines, entity=entity, chart=i.chart)
        await self.step(
            "post the customer payment", lambda: self.forward(CashActivities.post_payment, payment), must_finish=True
        )
        posted.append(payment_external_id(receipt.receipt_id))
        balances = {
            x.invoice_id: x.balance
            for x in await self.forward(
                CashActivities.open_items, OpenItemsOf(invoice_refs=[a.invoice_id for a in applications])
            )
        }
        await self._follow_up(
            [receipt], [match.model_copy(update={"applications": applications, "customer": customer})], balances
        )
        for a in applications:
            _add(self.progress.applied, a.amount)
        return self._decided(
            waiting,
            RecordedCashDecision(
                receipt_id=receipt.receipt_id,
                kind=CashDecisionKind.APPLY,
                decided_by=decision.operator.strip(),
                decided_at=workflow.now(),
                comment=decision.comment,
                applications=applications,
                posted=posted,
            ),
        )

    async def _refund(self, waiting: WaitingReceipt, decision: RefundReceipt) -> RecordedCashDecision:
        i, entity = self.input, self.entity
        assert i is not None and entity is not None
        receipt = await self._receipt(waiting.receipt_id)
        amount = decision.amount or waiting.unapplied
        await self.forward(
            CashActivities.record_decision,
            CashDecision(
                receipt_id=receipt.receipt_id,
                kind=CashDecisionKind.REFUND,
                refund=amount,
                decided_by=decision.operator.strip(),
                decided_at=workflow.now(),
                comment=decision.comment,
            ),
        )
        posted = []
        if receipt.source == ReceiptSource.STRIPE:
            refund = CreateRefund(
                receipt=receipt,
                amount=amount,
                reason="duplicate" if waiting.kind == ExceptionKind.DUPLICATE_SETTLEMENT else "requested_by_customer",
                metadata={"o2c_workflow": workflow.info().workflow_id, "receipt": receipt.receipt_id},
                step=f"refund-{receipt.receipt_id}",
                billing_account=entity.billing_account,
            )
            done = await self.step(
                "refund in billing", lambda: self.forward(CashActivities.create_refund, refund), must_finish=True
            )
            posted.append(done.refund_id if done else refund.step)
        elif not waiting.suspense:
            # The payment holds the cash unapplied on the customer: refund it from there. Posting
            # the payment again as it was (an upsert) answers with its internal id.
            recorded = await self.forward(CashActivities.match_of, receipt.receipt_id)
            lines = await self._documents(recorded.applications if recorded else [])
            payment = PostPayment(
                receipt=receipt, customer=waiting.customer, applications=lines, entity=entity, chart=i.chart
            )
            internal = await self.step(
                "find the customer payment",
                lambda: self.forward(CashActivities.post_payment, payment),
                must_finish=True,
            )
            refund_posting = CustomerRefundPosting(
                external_id=f"cash-{receipt.receipt_id}-refund",
                customer=waiting.customer,
                subsidiary=entity.erp_subsidiary,
                amount=amount,
                tran_date=workflow.now().date(),
                account=cash_account(receipt, i.chart),
                applications=[AppliedDocument(erp_document=internal or "", invoice_id="", amount=amount)],
                memo=f"Refund of receipt {receipt.bank_reference}: {decision.comment}",
            )
            await self.step(
                "post the customer refund",
                lambda: self.forward(CashActivities.post_customer_refund, refund_posting),
                must_finish=True,
            )
            posted.append(refund_posting.external_id)
        else:
            # Nobody known: the money goes back out of suspense.
            entry = JournalEntry(
                external_id=f"cash-{receipt.receipt_id}-refund",
                subsidiary=entity.erp_subsidiary,
                currency=amount.currency,
                posting_date=workflow.now().date(),
                memo=f"Refund of unapplied receipt {receipt.bank_reference}: {decision.comment}",
                lines=[
                    JournalLine(account=i.chart.unapplied_receipts, debit=amount, memo=receipt.receipt_id),
                    JournalLine(account=cash_account(receipt, i.chart), credit=amount, memo=receipt.receipt_id),
                ],
            )
            await self.step(
                "post the refund entry",
                lambda: self.forward(CashActivities.post_journal_entry, entry),
                must_finish=True,
            )
            posted.append(entry.external_id)
        return self._decided(
            waiting,
            RecordedCashDecision(
                receipt_id=receipt.receipt_id,
                kind=CashDecisionKind.REFUND,
                decided_by=decision.operator.strip(),
                decided_at=workflow.now(),
                comment=decision.comment,
                refund=amount,
                posted=posted,
            ),
        )

    async def _documents(self, applications: list[Application]) -> list[AppliedDocument]:
        """Apply lines for the ERP: each invoice's receivable, looked up where matching had none."""
        entity = self.entity
        assert entity is not None
        missing = [a.invoice_id for a in applications if not a.erp_document]
        docs: dict[str, str] = {}
        if missing:
            request = ReceivableDocuments(invoice_ids=missing, subsidiary=entity.erp_subsidiary)
            docs = (
                await self.step(
                    "find the receivables",
                    lambda: self.forward(CashActivities.receivable_documents, request),
                    must_finish=True,
                )
                or {}
            )
        return [
            AppliedDocument(
                erp_document=a.erp_document or docs.get(a.invoice_id, ""), invoice_id=a.invoice_id, amount=a.amount
            )
            for a in applications
        ]

    def _decided(self, waiting: WaitingReceipt, recorded: RecordedCashDecision) -> RecordedCashDecision:
        p = self.progress
        p.decisions.append(recorded)
        p.waiting.pop(waiting.receipt_id, None)
        p.unapplied[waiting.unapplied.currency] = p.unapplied.get(
            waiting.unapplied.currency, Money.zero(waiting.unapplied.currency)
        ) - (waiting.unapplied - _rest(waiting, recorded))
        what = (
            "applied " + ", ".join(f"{a.amount} to {a.invoice_id}" for a in recorded.applications)
            if recorded.kind == CashDecisionKind.APPLY
            else f"refunded {recorded.refund}"
        )
        self.note(
            f"{waiting.receipt_id}: {what} by {recorded.decided_by}"
            + (f": {recorded.comment}" if recorded.comment else "")
        )
        if p.waiting:
            self.set_status(Status.NEEDS_ATTENTION, self._waiting_stage())
        return recorded

    def finish(self, status: Status, message: str) -> CashResult:
        self.set_status(status, message)
        p = self.progress
        return CashResult(
            workflow_id=workflow.info().workflow_id,
            status=status,
            message=message,
            receipts=p.receipts,
            by_rule=p.by_rule,
            applied=p.applied,
            unapplied=p.unapplied,
            decisions=len(p.decisions),
        )


def _rest(waiting: WaitingReceipt, recorded: RecordedCashDecision) -> Money:
    """What stays unapplied on the customer after the decision."""
    used = recorded.refund or Money.zero(waiting.unapplied.currency)
    for a in recorded.applications:
        used += a.amount
    return waiting.unapplied - used
