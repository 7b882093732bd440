"""What every o2c process shares: status and search attributes, the business summary in
the Temporal UI, the approval gate, the exception queue and the compensation stack."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any, Literal, TypeVar, overload

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ChildWorkflowError
from temporalio.types import MethodAsyncSingleParam

with workflow.unsafe.imports_passed_through():
    from activities.inputs import SendNotification
    from activities.notifications import NotificationActivities
    from canonical.approval import ApprovalPolicy
    from canonical.models import LegalEntity, Model, Notification
    from workflows.kit.approval import ApprovalGate, DecisionInput
    from workflows.kit.attention import ExceptionQueue, OperatorAction, ResolveInput, explain, outcome_unknown
    from workflows.kit.saga import Saga
    from workflows.kit.status import CONTRACT, CUSTOMER, INVOICE, PROCESS, STATUS, Status

T = TypeVar("T")
R = TypeVar("R")
A = TypeVar("A")  # an activity's one argument

# The patch id of the November 2026 release. Behind it: revenue schedules recorded through
# ASC 606 (amendments, renewals), and search attributes upserted only when they change and
# together with the status (every process). One id for the whole release, because every
# patch costs each workflow a marker and an upsert of TemporalChangeVersion.
RELEASE_2026_11 = "o2c-2026-11"
# The December 2026 release: every process leaves through the one saga exit, which undoes
# what was done on a cancellation too, and shields the undo from the cancellation.
RELEASE_2026_12 = "o2c-2026-12"

# The release that brings usage to invoice: what changes in a released workflow for it (the
# reconciliation's usage check) goes behind this id.
RELEASE_USAGE = "o2c-usage"

# The release of cash and credits (issue 12). Behind it in released workflows: policy
# amounts read per currency, the card networks' attempt limit counted per card, the new
# hard declines, and write-offs by the write-off policy.
RELEASE_CASH = "o2c-cash"

# The release of the second ERP and the revenue ledger (issue 13). Behind it in released
# workflows: every document of a booking dated with the billing invoice's date, and the
# ASC 606 corrections to modifications.
RELEASE_LEDGER = "o2c-ledger"

# The release of the finance console (issue 14). Behind it in released workflows: a
# dunning's approvals wait as long as its approval policy says (a person's time), no longer
# a number of dunning days; a process whose approval policy names identity keys takes a
# decision only with an identity signed by one of them.
RELEASE_CONSOLE = "o2c-console"

# The release of the front doors' business id rule (issue 14). Behind it in released
# workflows: the renewal window leaves a subscription whose ids break the rule to a person
# (listed in its result) instead of failing on the renewal request it cannot build.
RELEASE_BUSINESS_IDS = "o2c-business-ids"

# How a run of the saga ends when it does not complete.
SagaExit = Literal["failure", "abort", "cancel"]

# Transient failures are retried with the same idempotency key, backing off to a minute.
# When a system stays down for the whole window the step parks for an operator.
FORWARD_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), backoff_coefficient=2.0, maximum_interval=timedelta(minutes=1)
)
STEP_WINDOW = timedelta(hours=1)
CALL_TIMEOUT = timedelta(seconds=30)


class ProcessEvent(Model):
    at: datetime
    text: str


class StepFailed(Exception):
    """A step failed for a reason nobody can fix by retrying: undo what was done."""


class AbortRequested(Exception):
    """An operator chose abort in the exception queue."""


class ProcessWorkflow:
    process: str = "process"
    # The exits on which this process already undid its steps before the December 2026
    # release. On the others a run that started before it ends as it did then.
    undone_before_2026_12: frozenset[SagaExit] = frozenset({"failure", "abort", "cancel"})

    def __init__(self) -> None:
        self.status = Status.RUNNING
        self.stage = "starting"
        self.gate = ApprovalGate(lambda: self.release_console())
        self.queue = ExceptionQueue(lambda: self.release_console())
        self.saga = Saga()
        self.events: list[ProcessEvent] = []
        # Steps whose last attempt ended without an answer: they may have happened.
        self.unsettled: set[str] = set()
        self.keys: dict[str, str] = {"process": self.process}
        self.step_window = STEP_WINDOW
        # Search attributes waiting for the next status change (name -> key, value).
        self._pending: dict[str, tuple[Any, str]] = {}
        # Workflows of the November 2026 release and later; released ones decide in begin_release().
        self.release_2026_11 = True
        self._release_ledger: bool | None = None
        self._release_console: bool | None = None

    # -- what an operator sees ------------------------------------------------------

    @staticmethod
    def entity_for(entities: list[LegalEntity], code: str) -> LegalEntity:
        """The legal entity a process books in (the first configured one when `code` names none)."""
        return next((e for e in entities if e.code == code), entities[0])

    def headline(self) -> str:
        """One line naming the business object, e.g. 'Amendment A-7 for cus_1'."""
        return self.process

    def describe(self) -> str:
        parts = [f"**{self.headline()}**", f"status `{self.status.value}`", self.stage]
        if self.queue.attention:
            a = self.queue.attention
            parts.append(f"⚠ {a.step}: {a.message} (answer with {'/'.join(x.value for x in a.actions)})")
        elif self.gate.waiting and self.gate.request:
            parts.append(
                f"waiting for a {self.gate.request.required_role.value}: " + "; ".join(self.gate.request.reasons)
            )
        return " · ".join(parts)

    def begin_release(self) -> None:
        """First thing in run() of a workflow released before November 2026: whether this run
        takes the release's paths (see RELEASE_2026_11) or replays one that started before."""
        self.release_2026_11 = workflow.patched(RELEASE_2026_11)

    def release_ledger(self) -> bool:
        """Whether this run takes the paths of RELEASE_LEDGER, asked of Temporal once per run
        (at the first place the paths part) and remembered, so the run pays one marker."""
        if self._release_ledger is None:
            self._release_ledger = workflow.patched(RELEASE_LEDGER)
        return self._release_ledger

    def release_console(self) -> bool:
        """Whether this run takes the paths of RELEASE_CONSOLE; asked once per run, as
        release_ledger() is."""
        if self._release_console is None:
            self._release_console = workflow.patched(RELEASE_CONSOLE)
        return self._release_console

    def tag(self, *, customer: str = "", contract: str = "", invoice: str = "") -> None:
        """Name the business objects in the search attributes. Since the release they go out
        with the next status change, and only those that changed: an upsert is an action."""
        self.keys.update(
            {k: v for k, v in {"customer": customer, "contract": contract, "invoice": invoice}.items() if v}
        )
        updates = [(PROCESS, self.process), (CUSTOMER, customer), (CONTRACT, contract), (INVOICE, invoice)]
        if self.release_2026_11:
            self._pending.update({key.name: (key, value) for key, value in updates if value})
            return
        workflow.upsert_search_attributes([key.value_set(value) for key, value in updates if value])

    def set_status(self, status: Status, stage: str | None = None) -> None:
        if stage is not None:
            self.stage = stage
        if self.release_2026_11:
            self._pending[STATUS.name] = (STATUS, status.value)
            self._flush_attributes()
        elif status != self.status or not self.events:
            workflow.upsert_search_attributes([STATUS.value_set(status.value)])
        self.status = status
        self.note(f"{status.value}: {self.stage}")

    def _flush_attributes(self) -> None:
        """One upsert with every pending attribute the workflow does not hold already (the
        starter sets the first ones with the start)."""
        held = {pair.key.name: pair.value for pair in workflow.info().typed_search_attributes}
        updates = [key.value_set(value) for name, (key, value) in self._pending.items() if held.get(name) != value]
        self._pending.clear()
        if updates:
            workflow.upsert_search_attributes(updates)

    def set_stage(self, stage: str) -> None:
        self.stage = stage
        self.note(stage)

    def note(self, text: str) -> None:
        self.events.append(ProcessEvent(at=workflow.now(), text=text))
        workflow.set_current_details(self.describe())
        workflow.logger.info(text, extra={"o2c": {**self.keys, "status": self.status.value}})

    # -- approval gate ------------------------------------------------------------------

    def trust(self, policy: ApprovalPolicy) -> None:
        """Answers to the exception queue are verified with the identity keys of the process's
        approval policy (decisions are, by the gate, from the policy it waits with)."""
        self.queue.identity_keys = list(policy.identity_keys)

    @workflow.update
    async def decide(self, decision: DecisionInput) -> str:
        recorded = self.gate.record(decision)
        verdict = "approved" if recorded.approved else "rejected"
        self.note(
            f"{verdict} by {recorded.approver} ({recorded.role.value})"
            + (f": {recorded.comment}" if recorded.comment else "")
        )
        return verdict

    @decide.validator
    def _validate_decision(self, decision: DecisionInput) -> None:
        self.gate.validate(decision)

    async def escalate_approval(self, subject: str, account_id: str, role: str, reasons: list[str]) -> None:
        notice = Notification(
            recipient=f"approvers:{role}",
            template="approval-escalation",
            subject=subject,
            body=f"Needs a {role}: " + "; ".join(reasons),
            account_id=account_id,
        )
        self.note("escalated: no decision within the escalation window")
        await self.step(
            "approval escalation",
            lambda: self.forward(
                NotificationActivities.send, SendNotification(notification=notice, step="approval-escalation")
            ),
            must_finish=True,
        )

    # -- exception queue ------------------------------------------------------------------

    @workflow.update
    async def resolve(self, answer: ResolveInput) -> str:
        self.queue.resolve(answer)
        return f"{answer.action.value} accepted"

    @resolve.validator
    def _validate_resolution(self, answer: ResolveInput) -> None:
        self.queue.validate(answer)

    # A step that offers no skip (neither skippable nor must_finish) ends only with its result
    # or a raise: the exception queue refuses an answer it did not offer.
    @overload
    async def step(
        self,
        name: str,
        run: Callable[[], Awaitable[T]],
        *,
        skippable: Literal[False],
        must_finish: Literal[False] = False,
    ) -> T: ...

    @overload
    async def step(
        self, name: str, run: Callable[[], Awaitable[T]], *, skippable: bool = True, must_finish: bool = False
    ) -> T | None: ...

    async def step(
        self, name: str, run: Callable[[], Awaitable[T]], *, skippable: bool = True, must_finish: bool = False
    ) -> T | None:
        """Run a step. A failure a person can fix parks the process until an operator
        answers; `skip` returns None. Other failures raise StepFailed (the caller undoes
        what was done) or, after `abort`, AbortRequested. A `must_finish` step comes after
        the point of no return: every failure of it parks, with retry or skip."""
        while True:
            try:
                result = await run()
                self.unsettled.discard(name)
                return result
            except (ActivityError, ChildWorkflowError) as error:
                if not await self.retry_after(name, error, skippable=skippable, must_finish=must_finish):
                    self.note(f"{name} skipped by operator")
                    return None

    async def retry_after(
        self, name: str, error: ActivityError | ChildWorkflowError, *, skippable: bool = True, must_finish: bool = False
    ) -> bool:
        """What a failed step does next (see step): True to run it again, False when the
        operator skipped it; raises StepFailed or AbortRequested otherwise."""
        if outcome_unknown(error):
            self.unsettled.add(name)
        problem, fixable = explain(error)
        if not fixable and not must_finish:
            self.note(f"{name} failed: {problem.message}")
            raise StepFailed(f"{name}: {problem.message}") from error
        actions = [OperatorAction.RETRY]
        if skippable or must_finish:
            actions.append(OperatorAction.SKIP)
        if not must_finish:
            actions.append(OperatorAction.ABORT)
        action = await self._park(name, problem, actions)
        if action == OperatorAction.ABORT:
            raise AbortRequested(name) from error
        return action == OperatorAction.RETRY

    async def together(self, steps: list[tuple[str, Callable[[], Awaitable[T]]]]) -> list[T]:
        """Run steps side by side. Those that fail then go through the exception queue one at
        a time (it holds one question at once), each retried until it succeeds."""
        outcomes = await asyncio.gather(*(run() for _, run in steps), return_exceptions=True)
        results: list[T] = []
        for (name, run), outcome in zip(steps, outcomes, strict=False):
            if isinstance(outcome, (ActivityError, ChildWorkflowError)):
                await self.retry_after(name, outcome, skippable=False)
                results.append(await self.step(name, run, skippable=False))
            elif isinstance(outcome, BaseException):
                raise outcome
            else:
                results.append(outcome)
        return results

    async def _park(self, name: str, problem: Any, actions: list[OperatorAction]) -> OperatorAction:
        previous_status, previous_stage = self.status, self.stage
        self.set_status(Status.NEEDS_ATTENTION, f"{name} needs attention: {problem.message}")
        action = await self.queue.park(name, problem, actions)
        assert action is not None  # no timeout: only an answer ends the wait
        self.set_status(previous_status, previous_stage)
        return action

    def forward(self, fn: MethodAsyncSingleParam[Any, A, R], arg: A) -> Awaitable[R]:
        """Run a forward activity: transient failures retry with backoff for the step window."""
        # Activities are methods of classes holding their adapters; execute_activity_method is
        # execute_activity typed for an unbound method, so the result keeps its type.
        return workflow.execute_activity_method(
            fn,
            arg,
            start_to_close_timeout=CALL_TIMEOUT,
            schedule_to_close_timeout=self.step_window,
            retry_policy=FORWARD_RETRY,
        )

    def undo(self, fn: MethodAsyncSingleParam[Any, A, R], arg: A) -> Awaitable[R]:
        """Run a compensation: retried with backoff until it succeeds or fails for good."""
        return workflow.execute_activity_method(
            fn, arg, start_to_close_timeout=CALL_TIMEOUT, retry_policy=FORWARD_RETRY
        )

    # -- the saga's one exit ----------------------------------------------------------------

    async def run_saga(
        self,
        steps: Callable[[], Awaitable[object]],
        rolled_back: Callable[[str], R],
        *,
        stopped: Callable[[str], R] | None = None,
    ) -> R | None:
        """Run the steps that book something; None when they all ran. On a permanent failure,
        an operator's abort or the workflow's cancellation, undo what was done, in reverse and
        to the end, and return `rolled_back(reason)` (after a cancellation, the cancellation
        is raised again once the books are as they were, so Temporal closes the workflow as
        cancelled). `stopped(reason)` is how a run of an earlier release ends on an exit that
        release did not undo on (see undone_before_2026_12); by default it rolls back too."""
        exit: SagaExit
        try:
            await steps()
            return None
        except StepFailed as failed:
            exit, reason = "failure", str(failed)
        except AbortRequested as aborted:
            exit, reason = "abort", f"aborted by operator at {aborted}"
        except asyncio.CancelledError:
            exit, reason = "cancel", "the workflow was cancelled"
        if exit not in self.undone_before_2026_12 and not workflow.patched(RELEASE_2026_12):
            if exit == "cancel":
                raise asyncio.CancelledError(reason)
            return (stopped or rolled_back)(reason)
        cancelled = exit == "cancel"
        try:
            await self._compensate()
        except asyncio.CancelledError:  # asked while undoing: the undo finished first
            cancelled = True
        result = rolled_back(reason)
        if cancelled:
            raise asyncio.CancelledError(reason)
        return result

    async def uninterrupted(self, work: Awaitable[T]) -> T:
        """Await `work` to its end even if the workflow is cancelled meanwhile, then raise the
        cancellation. Temporal delivers a cancellation as asyncio.CancelledError into whatever
        the workflow awaits; without this, an undo would stop half-way and the activities and
        child workflows under it would be cancelled too."""
        task = asyncio.ensure_future(work)
        cancelled = False
        while True:
            try:
                result = await asyncio.shield(task)
                break
            except asyncio.CancelledError:
                if task.done():
                    raise
                if not cancelled:
                    self.note("cancellation requested: finishing what is under way first")
                cancelled = True
        if cancelled:
            raise asyncio.CancelledError("the workflow was cancelled")
        return result

    async def _compensate(self) -> None:
        """Undo the registered steps in reverse, shielded from cancellation. A compensation is
        retried by Temporal while the failure is transient; any other failure waits for an
        operator (retry or skip), because a half-undone change must never be forgotten
        silently."""
        self.set_status(Status.COMPENSATING, "undoing: " + ", ".join(self.saga.pending))

        async def run_one(name: str, undo: Callable[[], Awaitable[object]]) -> None:
            while True:
                try:
                    await undo()
                    self.note(f"undone: {name}")
                    return
                except ActivityError as error:  # a failure that Temporal's retries cannot fix
                    problem, _ = explain(error)
                    action = await self._park(f"undo {name}", problem, [OperatorAction.RETRY, OperatorAction.SKIP])
                    if action == OperatorAction.SKIP:
                        self.note(f"undo of {name} skipped by operator")
                        return

        await self.uninterrupted(self.saga.compensate(run_one))
