"""ReconciliationWorkflow: what billing, tax and the ERP hold for a period and a legal entity.

read (billing, tax, ERP, o2c's revenue schedules and usage releases, in parallel, page by page into the run's
staging) → plan batches of documents → a child workflow per batch matches it, records its
breaks and heals what is safe → heals above the limit wait for one finance approval → the run
closes (breaks of earlier runs found again or fixed) → what nobody could heal waits in the
exception queue: `retry` reads everything again after a person fixed it, `skip` accepts it.

The history stays small whatever the period's size: reading is one long activity per system that
heartbeats its cursor, each batch is a child workflow with its own history, and the run
continues as new every few dozen batches. Nothing of the period is held in memory here.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from datetime import date, timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError
from temporalio.types import MethodAsyncSingleParam

with workflow.unsafe.imports_passed_through():
    from pydantic import ConfigDict

    from activities.erp import ErpActivities
    from activities.inputs import (
        BatchFindings,
        CloseRun,
        HealOrders,
        MatchBatch,
        MoveBreaks,
        OpenRun,
        PlanBatches,
        ReadSystem,
        ResolveBreaks,
    )
    from activities.reconciliation import ReconciliationActivities
    from canonical.approval import ApprovalPolicy
    from canonical.journal import ChartOfAccounts
    from canonical.models import DEFAULT_ENTITIES, ApprovalRequest, ApproverRole, LegalEntity, Model
    from canonical.money import Money
    from canonical.reconciliation import (
        BreakStatus,
        HealOrder,
        KeyRange,
        ReconciliationPolicy,
        RunSummary,
        period_bounds,
    )
    from workflows.kit.approval import ApprovalState
    from workflows.kit.attention import Attention, OperatorAction, Problem, Resolution, explain
    from workflows.kit.process import FORWARD_RETRY, RELEASE_CASH, RELEASE_USAGE, ProcessEvent, ProcessWorkflow
    from workflows.kit.status import Status

# Reading a large period takes a while; a reader that stops heartbeating is retried from its
# last cursor. A system down for longer than this parks the run for an operator.
READ_TIMEOUT = timedelta(hours=6)
# A reader resumes at its last page, so a retry loses little: retry soon, however many
# pages have failed before (Temporal's backoff grows with every attempt of the activity).
READ_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), backoff_coefficient=2.0, maximum_interval=timedelta(seconds=10)
)
HEAL_CONCURRENCY = 8
REQUESTED_BY = "o2c-reconciliation"

A = TypeVar("A")  # an activity's one argument
R = TypeVar("R")


def reconciliation_workflow_id(legal_entity: str, period: str) -> str:
    return f"reconciliation-{legal_entity}-{period}"


def period_of(today: date, months_back: int) -> str:
    """The calendar month `months_back` months before the one `today` is in."""
    months = today.year * 12 + today.month - 1 - months_back
    return f"{months // 12:04d}-{months % 12 + 1:02d}"


class ReconciliationProgress(Model):
    """What a run carries across continue-as-new."""

    model_config = ConfigDict(frozen=False)

    run_id: str
    period: str
    pass_no: int = 1
    read: dict[str, int] = {}
    batches: list[KeyRange] = []
    next_batch: int = 0
    found: dict[str, int] = {}
    healed: int = 0
    not_healed: int = 0
    events: list[ProcessEvent] = []


class ReconciliationInput(Model):
    legal_entity: str
    period: str = ""  # YYYY-MM; empty: the month `months_back` before the one the run starts in
    months_back: int = 0
    legal_entities: list[LegalEntity] = DEFAULT_ENTITIES
    policy: ReconciliationPolicy = ReconciliationPolicy()
    approvals: ApprovalPolicy = ApprovalPolicy()
    chart: ChartOfAccounts = ChartOfAccounts()
    step_window: timedelta = timedelta(hours=1)
    pass_no: int = 1
    progress: ReconciliationProgress | None = None  # set when the run continues as new


class ReconciliationResult(Model):
    run_id: str
    legal_entity: str
    period: str
    status: Status
    message: str
    found: dict[str, int] = {}
    healed: int = 0
    summary: RunSummary | None = None


class ReconciliationState(Model):
    run_id: str
    legal_entity: str
    period: str
    status: Status
    stage: str
    pass_no: int = 1
    read: dict[str, int] = {}
    batches: int = 0
    batches_done: int = 0
    found: dict[str, int] = {}
    healed: int = 0
    not_healed: int = 0
    summary: RunSummary | None = None
    approval: ApprovalState = ApprovalState()
    attention: Attention | None = None
    resolutions: list[Resolution] = []
    events: list[ProcessEvent] = []


class BatchInput(Model):
    """One child: match the documents of `keys`, or (after approval) post `orders`."""

    run_id: str
    entity: LegalEntity
    period: str
    keys: KeyRange | None = None
    orders: list[HealOrder] = []
    policy: ReconciliationPolicy = ReconciliationPolicy()
    chart: ChartOfAccounts = ChartOfAccounts()
    label: str = ""
    step_window: timedelta = timedelta(hours=1)


class BatchResult(Model):
    model_config = ConfigDict(frozen=False)

    found: dict[str, int] = {}
    healed: int = 0
    not_healed: int = 0


@workflow.defn
class ReconciliationBatchWorkflow:
    """Match one batch and post its heals. It never parks: a heal the ERP refuses stays an open
    break with the reason, for the parent run's exception queue."""

    @workflow.run
    async def run(self, input: BatchInput) -> BatchResult:
        workflow.set_current_details(f"**Reconciliation {input.run_id}** · {input.label}")
        result = BatchResult()
        orders = input.orders
        if input.keys is not None:
            findings: BatchFindings = await self._call(
                ReconciliationActivities.match_batch,
                MatchBatch(
                    run_id=input.run_id,
                    entity=input.entity,
                    period=input.period,
                    keys=input.keys,
                    policy=input.policy,
                    chart=input.chart,
                ),
                input,
            )
            result.found = findings.found
            orders = findings.heal_now
        updates: list[tuple[int, BreakStatus, str]] = []
        for start in range(0, len(orders), HEAL_CONCURRENCY):
            updates += await asyncio.gather(*(self._heal(o, input) for o in orders[start : start + HEAL_CONCURRENCY]))
        if updates:
            await self._call(ReconciliationActivities.resolve_breaks, ResolveBreaks(updates=updates), input)
        result.healed = sum(1 for _, status, _ in updates if status == BreakStatus.HEALED)
        result.not_healed = len(updates) - result.healed
        workflow.set_current_details(
            f"**Reconciliation {input.run_id}** · {input.label} · "
            f"{sum(result.found.values())} breaks, {result.healed} healed"
        )
        return result

    async def _heal(self, order: HealOrder, input: BatchInput) -> tuple[int, BreakStatus, str]:
        """Look before posting: an entry under that external ID outside the period (or not
        linked to the invoice) is a person's call, not something to overwrite."""
        entry = order.entry
        try:
            existing = await self._call(ErpActivities.get_journal_entry, entry.external_id, input)
            if existing is not None:
                return (
                    order.break_id,
                    BreakStatus.OPEN,
                    f"not healed: the ERP already holds {entry.external_id} dated "
                    f"{existing.posting_date}, outside this listing; check it by hand",
                )
            ref = await self._call(ErpActivities.post_journal_entry, entry, input)
        except ActivityError as error:
            problem, _ = explain(error)
            return order.break_id, BreakStatus.OPEN, f"could not heal: {problem.message}"
        return order.break_id, BreakStatus.HEALED, f"posted {entry.external_id} (ERP id {ref.internal_id})"

    @staticmethod
    async def _call(fn: MethodAsyncSingleParam[Any, A, R], arg: A, input: BatchInput) -> R:
        return await workflow.execute_activity_method(
            fn,
            arg,
            start_to_close_timeout=timedelta(minutes=10),
            schedule_to_close_timeout=input.step_window,
            retry_policy=FORWARD_RETRY,
        )


@workflow.defn
class ReconciliationWorkflow(ProcessWorkflow):
    process = "reconciliation"
    # Before December 2026 a reconciliation undid nothing: a failed run stopped, its heals posted.
    undone_before_2026_12 = frozenset()

    def __init__(self) -> None:
        super().__init__()
        self.input: ReconciliationInput | None = None
        self.progress: ReconciliationProgress | None = None
        self.entity: LegalEntity | None = None
        self.summary: RunSummary | None = None

    def headline(self) -> str:
        if self.input is None or self.progress is None:
            return "Reconciliation"
        return f"Reconciliation {self.input.legal_entity} {self.progress.period} · run {self.progress.run_id}"

    @workflow.query
    def state(self) -> ReconciliationState:
        p, i = self.progress, self.input
        return ReconciliationState(
            run_id=p.run_id if p else "",
            legal_entity=i.legal_entity if i else "",
            period=p.period if p else "",
            status=self.status,
            stage=self.stage,
            pass_no=p.pass_no if p else 1,
            read=p.read if p else {},
            batches=len(p.batches) if p else 0,
            batches_done=p.next_batch if p else 0,
            found=p.found if p else {},
            healed=p.healed if p else 0,
            not_healed=p.not_healed if p else 0,
            summary=self.summary,
            approval=self.gate.snapshot(),
            attention=self.queue.attention,
            resolutions=self.queue.resolutions,
            events=(p.events if p else []) + self.events,
        )

    @workflow.run
    async def run(self, input: ReconciliationInput) -> ReconciliationResult:
        self.input = input
        self.trust(input.approvals)
        self.step_window = input.step_window
        self.entity = next((e for e in input.legal_entities if e.code == input.legal_entity), None)
        if input.progress is not None:
            self.progress = input.progress
            self.tag()
            self.set_status(
                Status.RUNNING, f"continuing at batch {self.progress.next_batch + 1} of {len(self.progress.batches)}"
            )
        else:
            period = input.period or period_of(workflow.now().date(), input.months_back)
            run_id = f"{input.legal_entity}-{period}-{workflow.now():%Y%m%dT%H%M%S}-{workflow.uuid4().hex[:4]}"
            self.progress = ReconciliationProgress(run_id=run_id, period=period, pass_no=input.pass_no)
            self.tag()
            self.set_status(Status.RUNNING, f"reconciling {input.legal_entity} {period} (pass {input.pass_no})")
            problem = self._input_problem(period)
            if problem:
                return self.finish(Status.REJECTED, f"reconciliation refused: {problem}")
            # Since o2c-cash the heal limit and the approval thresholds are read per currency
            # (the batches learn it from the policy they are given, continued runs from their
            # input); an entity whose currency the policies do not state is refused.
            if workflow.patched(RELEASE_CASH):
                assert self.entity is not None
                currency = self.entity.functional_currency
                uncovered = input.policy.uncovered(currency) or input.approvals.uncovered(currency)
                if uncovered:
                    return self.finish(Status.REJECTED, f"reconciliation refused: {uncovered}")
                self.input = input = input.model_copy(
                    update={"policy": input.policy.model_copy(update={"per_currency": True})}
                )
        # Heals are the run's postings: a run that fails, is aborted or is cancelled reverses them.
        self.saga.add("heals posted by this run", self._reverse_heals)
        rolled_back = await self.run_saga(
            self._reconcile,
            lambda reason: self.finish(Status.ROLLED_BACK, f"rolled back: {reason}"),
            stopped=lambda reason: self.finish(Status.FAILED, f"reconciliation stopped: {reason}"),
        )
        if rolled_back is not None:
            return rolled_back
        assert self.summary is not None
        if self.summary.status == Status.NEEDS_ATTENTION.value:
            return await self._exception_queue(self.summary)
        return self.finish(Status.COMPLETED, self._outcome())

    async def _reconcile(self) -> None:
        assert self.input is not None
        if self.input.progress is None:
            await self._read()
        await self._match()
        await self._heal_above_limit()
        self.summary = await self._close()

    async def _reverse_heals(self) -> None:
        """Reverse every entry this run healed, each under its own reversal ID (posting it again
        changes nothing), and open its break again. Only breaks the run recorded as healed are
        touched: an entry that appeared in the ERP by other hands is never reversed."""
        i, p = self.input, self.progress
        assert i is not None and p is not None
        after = 0
        while orders := await self.undo(
            ReconciliationActivities.heal_orders,
            HealOrders(run_id=p.run_id, status=BreakStatus.HEALED, after=after, limit=i.policy.batch_size),
        ):
            for order in orders:
                entry = order.entry
                await self.undo(
                    ErpActivities.post_journal_entry,
                    entry.reversal(f"{entry.external_id}-reversal", workflow.now().date()),
                )
            await self.undo(
                ReconciliationActivities.resolve_breaks,
                ResolveBreaks(
                    updates=[(o.break_id, BreakStatus.OPEN, "heal reversed: the run was rolled back") for o in orders]
                ),
            )
            p.healed -= len(orders)
            after = orders[-1].break_id

    def _input_problem(self, period: str) -> str:
        try:
            period_bounds(period)
        except ValueError as error:
            return str(error)
        assert self.input is not None
        if self.entity is None:
            return f"unknown legal entity {self.input.legal_entity!r}"
        return ""

    # -- reading ------------------------------------------------------------------------------

    async def _read(self) -> None:
        i, p, entity = self.input, self.progress, self.entity
        assert i is not None and p is not None and entity is not None
        self.set_stage("opening the run")
        await self.step(
            "open the run",
            lambda: self.forward(
                ReconciliationActivities.open_run,
                OpenRun(
                    run_id=p.run_id,
                    legal_entity=entity.code,
                    period=p.period,
                    started_at=workflow.now(),
                    settings={"policy": i.policy.model_dump(mode="json"), "pass": p.pass_no},
                ),
            ),
            skippable=False,
        )
        request = ReadSystem(run_id=p.run_id, entity=entity, period=p.period, chart=i.chart)
        readers = {
            "billing": ReconciliationActivities.read_billing,
            "tax": ReconciliationActivities.read_tax,
            "erp": ReconciliationActivities.read_erp,
            "schedules": ReconciliationActivities.read_schedules,
        }
        # The usage check reads o2c's usage releases too (a fifth reader); runs that started
        # before the usage release read four systems.
        if workflow.patched(RELEASE_USAGE):
            readers["usage"] = ReconciliationActivities.read_usage
            self.set_stage("reading billing, tax, the ERP, the revenue schedules and the usage releases")
        else:
            self.set_stage("reading billing, tax, the ERP and the revenue schedules")
        counts = await self.together(
            [(f"read {system}", functools.partial(self._reader, fn, request)) for system, fn in readers.items()]
        )
        p.read = dict(zip(readers, counts, strict=False))
        self.note("read " + ", ".join(f"{n} from {s}" for s, n in p.read.items()))
        p.batches = await self.step(
            "plan batches",
            lambda: self.forward(
                ReconciliationActivities.plan_batches, PlanBatches(run_id=p.run_id, size=i.policy.batch_size)
            ),
            skippable=False,
        )
        self.note(f"{len(p.batches)} batches of up to {i.policy.batch_size} documents")

    def _reader(self, fn: MethodAsyncSingleParam[Any, ReadSystem, int], request: ReadSystem) -> Awaitable[int]:
        assert self.input is not None
        return workflow.execute_activity_method(
            fn,
            request,
            start_to_close_timeout=READ_TIMEOUT,
            schedule_to_close_timeout=READ_TIMEOUT + self.step_window,
            heartbeat_timeout=timedelta(seconds=self.input.policy.heartbeat_seconds),
            retry_policy=READ_RETRY,
        )

    # -- matching, in child workflows --------------------------------------------------------------

    async def _match(self) -> None:
        i, p = self.input, self.progress
        assert i is not None and p is not None and self.entity is not None
        started = p.next_batch
        while p.next_batch < len(p.batches):
            if p.next_batch - started >= i.policy.batches_per_run or workflow.info().is_continue_as_new_suggested():
                self.note(f"continuing as new after {p.next_batch} of {len(p.batches)} batches")
                p.events = (p.events + self.events)[-30:]
                workflow.continue_as_new(i.model_copy(update={"progress": p}))
            wave = range(p.next_batch, min(p.next_batch + i.policy.parallel_batches, len(p.batches)))
            self.set_stage(f"matching batch {wave[0] + 1}-{wave[-1] + 1} of {len(p.batches)}")
            results = await self.together(
                [
                    self._child(
                        BatchInput(
                            run_id=p.run_id,
                            entity=self.entity,
                            period=p.period,
                            keys=p.batches[n],
                            policy=i.policy,
                            chart=i.chart,
                            label=f"batch {n + 1} of {len(p.batches)}",
                            step_window=self.step_window,
                        ),
                        f"batch-{n + 1}",
                    )
                    for n in wave
                ]
            )
            for result in results:
                self._count(result)
            p.next_batch = wave[-1] + 1

    def _child(self, batch: BatchInput, name: str) -> tuple[str, Callable[[], Awaitable[BatchResult]]]:
        """A batch as a step: a retry after a failure starts the child again under a new ID."""
        assert self.progress is not None
        base = f"{workflow.info().workflow_id}-p{self.progress.pass_no}-{name}"
        attempts = [0]

        def start() -> Awaitable[BatchResult]:
            attempts[0] += 1
            # A batch in flight finishes before a cancelled run undoes its heals: heals it posted
            # and had not yet recorded would escape the undo.
            return self.uninterrupted(
                workflow.execute_child_workflow(
                    ReconciliationBatchWorkflow.run, batch, id=base if attempts[0] == 1 else f"{base}-{attempts[0]}"
                )
            )

        return f"reconcile {batch.label}", start

    def _count(self, result: BatchResult) -> None:
        p = self.progress
        assert p is not None
        for kind, n in result.found.items():
            p.found[kind] = p.found.get(kind, 0) + n
        p.healed += result.healed
        p.not_healed += result.not_healed

    # -- heals above the limit ---------------------------------------------------------------------

    def _role_for(self, amount: Money) -> ApproverRole:
        """Who approves heals of this size: a controller above the controller threshold in the
        amount's currency (the bare number on runs before o2c-cash), and a controller for a
        currency the approval policy does not state."""
        i = self.input
        assert i is not None
        if i.policy.per_currency and i.approvals.uncovered(amount.currency):
            return ApproverRole.CONTROLLER
        return i.approvals.role_for(amount, per_currency=i.policy.per_currency)

    def _heal_limit_text(self, amount: Money) -> str:
        policy = self.input.policy if self.input else None
        assert policy is not None
        if policy.per_currency and policy.heal_limits.covers(amount.currency):
            return str(policy.heal_limits.of(amount.currency))
        if policy.per_currency:
            return f"(none stated in {amount.currency})"
        return str(policy.heal_limit)

    async def _heal_above_limit(self) -> None:
        i, p = self.input, self.progress
        assert i is not None and p is not None and self.entity is not None
        waiting = await self.step(
            "count heals awaiting approval",
            lambda: self.forward(
                ReconciliationActivities.heal_total, HealOrders(run_id=p.run_id, status=BreakStatus.AWAITING_APPROVAL)
            ),
            skippable=False,
        )
        if not waiting:
            return
        count = sum(n for n, _ in waiting)
        amount = next((m for _, m in waiting if m.currency == self.entity.functional_currency), waiting[0][1])
        request = ApprovalRequest(
            required_role=self._role_for(amount),
            requested_by=REQUESTED_BY,
            amount=amount,
            reasons=[
                f"post {n} missing journal entries totalling {m}, each above the {self._heal_limit_text(m)} healing limit"
                for n, m in waiting
            ],
        )
        role = request.required_role
        self.set_status(Status.AWAITING_APPROVAL, f"{count} heals await a {role.value}")
        decision = await self.gate.wait(request, i.approvals, self._escalate)
        if decision is None or not decision.approved:
            why = f"heal rejected by {decision.approver}: {decision.comment}" if decision else "heal approval expired"
            await self._move(BreakStatus.AWAITING_APPROVAL, BreakStatus.OPEN, why)
            self.set_status(Status.RUNNING, why)
            return
        await self._move(BreakStatus.AWAITING_APPROVAL, BreakStatus.HEALING, f"heal approved by {decision.approver}")
        self.set_status(Status.RUNNING, f"posting {count} approved heals")
        after, page = 0, 0
        while True:
            page_request = HealOrders(
                run_id=p.run_id, status=BreakStatus.HEALING, after=after, limit=i.policy.batch_size
            )
            orders = await self.step(
                "read approved heals",
                functools.partial(self.forward, ReconciliationActivities.heal_orders, page_request),
                skippable=False,
            )
            if not orders:
                return
            page += 1
            self._count(
                *await self.together(
                    [
                        self._child(
                            BatchInput(
                                run_id=p.run_id,
                                entity=self.entity,
                                period=p.period,
                                orders=orders,
                                policy=i.policy,
                                chart=i.chart,
                                label=f"approved heals, page {page}",
                                step_window=self.step_window,
                            ),
                            f"approved-{page}",
                        )
                    ]
                )
            )
            after = orders[-1].break_id

    async def _move(self, from_status: BreakStatus, to_status: BreakStatus, resolution: str) -> None:
        p = self.progress
        assert p is not None
        await self.step(
            f"mark breaks {to_status}",
            lambda: self.forward(
                ReconciliationActivities.move_breaks,
                MoveBreaks(
                    run_id=p.run_id,
                    from_status=from_status,
                    to_status=to_status,
                    resolution=resolution,
                ),
            ),
            skippable=False,
        )

    async def _escalate(self, request: ApprovalRequest) -> None:
        assert self.input is not None and self.progress is not None
        await self.escalate_approval(
            f"Reconciliation {self.progress.run_id} has waited for approval to heal",
            "",
            request.required_role.value,
            request.reasons,
        )

    # -- closing and the exception queue ---------------------------------------------------------

    async def _close(self) -> RunSummary:
        """Settle earlier runs' breaks against this one; the run needs attention while any
        break is open (not healed, fixed or acknowledged)."""
        p = self.progress
        assert p is not None
        self.set_stage("closing the run")
        return await self.step(
            "close the run",
            lambda: self.forward(ReconciliationActivities.close_run, CloseRun(run_id=p.run_id)),
            skippable=False,
        )

    async def _exception_queue(self, summary: RunSummary) -> ReconciliationResult:
        i, p = self.input, self.progress
        assert i is not None and p is not None
        kinds = ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in summary.open_by_kind.items())
        problem = Problem(
            message=f"{summary.open_breaks} breaks need a person ({kinds}); "
            f"see `o2c recon report {p.run_id}`. Retry reads everything again once they are "
            "fixed; skip accepts them as they are."
        )
        self.set_status(Status.NEEDS_ATTENTION, problem.message)
        action = await self.queue.park(
            "breaks",
            problem,
            [OperatorAction.RETRY, OperatorAction.SKIP],
            timeout=timedelta(days=i.policy.attention_days),
        )
        if action == OperatorAction.RETRY:
            self.note("retry: reading everything again")
            workflow.continue_as_new(
                i.model_copy(update={"progress": None, "pass_no": p.pass_no + 1, "period": p.period})
            )
        if action == OperatorAction.SKIP:
            answer = self.queue.resolutions[-1]
            await self._move(
                BreakStatus.OPEN,
                BreakStatus.ACKNOWLEDGED,
                f"acknowledged by {answer.operator}" + (f": {answer.comment}" if answer.comment else ""),
            )
            self.summary = await self._close()
            return self.finish(
                Status.COMPLETED, f"{summary.open_breaks} breaks acknowledged by {answer.operator}; " + self._outcome()
            )
        # Unanswered: the run ends, and in the database it still needs attention.
        return self.finish(
            Status.COMPLETED,
            f"{summary.open_breaks} breaks left open, unanswered for "
            f"{i.policy.attention_days} days; " + self._outcome(),
        )

    def _outcome(self) -> str:
        p = self.progress
        assert p is not None
        found = sum(p.found.values())
        return f"{found} breaks found, {p.healed} healed" + (
            f", {p.not_healed} could not be healed" if p.not_healed else ""
        )

    def finish(self, status: Status, message: str) -> ReconciliationResult:
        self.set_status(status, message)
        i, p = self.input, self.progress
        assert i is not None and p is not None
        return ReconciliationResult(
            run_id=p.run_id,
            legal_entity=i.legal_entity,
            period=p.period,
            status=status,
            message=message,
            found=p.found,
            healed=p.healed,
            summary=self.summary,
        )
