"""RevenuePostingWorkflow: what an entity's schedules recognised in a month, posted to its
ledger (`revenue-<ENTITY>-<YYYY-MM>`).

Reads the recognition of the month and of the months posted before it (a page at a time),
and what earlier postings posted; builds one entry per currency (canonical/revenue/posting:
Dr deferred revenue / Cr revenue per obligation, with true-ups of earlier months whose
schedules changed after they were posted); posts each through the ERP by its external id,
looking it up first so a retry never posts twice; records what it posted. A closed period
parks in the exception queue with retry, skip and abort. Each entry is recorded right after
it is posted, so an abort leaves nothing posted unrecorded and there is nothing to undo.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from pydantic import Field

    from activities.erp import ErpActivities
    from activities.revenue import ReadPostings, ReadRecognition, RecordPosting, RevenueActivities
    from canonical.journal import ChartOfAccounts, JournalEntry
    from canonical.models import DEFAULT_LEGAL_ENTITY, LegalEntity, Model
    from canonical.money import Money
    from canonical.revenue.posting import (
        PostedLine,
        Recognition,
        RevenuePosting,
        build_postings,
        check_period,
        month_end,
        posting_workflow_id,
    )
    from workflows.kit.attention import Attention, Resolution
    from workflows.kit.process import ProcessEvent, ProcessWorkflow, StepFailed
    from workflows.kit.status import Status


def revenue_workflow_id(legal_entity: str, period: str) -> str:
    return posting_workflow_id(legal_entity, period)


class RevenuePostingInput(Model):
    legal_entity: LegalEntity = DEFAULT_LEGAL_ENTITY
    period: str  # YYYY-MM, a month that has ended
    chart: ChartOfAccounts = ChartOfAccounts()
    step_window: timedelta = timedelta(hours=1)
    page: int = Field(1000, ge=1, le=1000)  # recognition rows read a page


class PostedEntry(Model):
    external_id: str
    currency: str
    revenue: Money  # net revenue credited, true-ups included
    true_ups: int = 0
    posted: bool = True  # False when the ERP held it already (a retry, a second start)


class RevenuePostingResult(Model):
    legal_entity: str
    period: str
    status: Status
    message: str
    entries: list[PostedEntry] = []


class RevenuePostingState(Model):
    legal_entity: str
    period: str
    status: Status
    stage: str
    entries: list[PostedEntry] = []
    attention: Attention | None = None
    resolutions: list[Resolution] = []
    events: list[ProcessEvent] = []
    updated_at: datetime | None = None


@workflow.defn
class RevenuePostingWorkflow(ProcessWorkflow):
    process = "revenue_posting"

    def __init__(self) -> None:
        super().__init__()
        self.legal_entity = ""
        self.period = ""
        self.entries: list[PostedEntry] = []

    def headline(self) -> str:
        return f"Revenue posting {self.legal_entity} {self.period}" if self.period else "Revenue posting"

    @workflow.query
    def state(self) -> RevenuePostingState:
        return RevenuePostingState(
            legal_entity=self.legal_entity,
            period=self.period,
            status=self.status,
            stage=self.stage,
            entries=self.entries,
            attention=self.queue.attention,
            resolutions=self.queue.resolutions,
            events=self.events,
            updated_at=self.events[-1].at if self.events else None,
        )

    @workflow.run
    async def run(self, input: RevenuePostingInput) -> RevenuePostingResult:
        entity = input.legal_entity
        self.legal_entity, self.period = entity.code, input.period
        self.step_window = input.step_window
        self.tag()  # the process's name goes out with the first status (a scheduled start sets none)
        self.set_status(Status.RUNNING, f"posting the revenue {entity.code} recognised in {input.period}")
        try:
            check_period(input.period)
        except ValueError as error:
            return self.finish(Status.REJECTED, str(error))
        if month_end(input.period) >= workflow.now().date():
            return self.finish(Status.REJECTED, f"{input.period} has not ended yet: its revenue is posted after it")

        rolled_back = await self.run_saga(
            lambda: self.post(input),
            lambda reason: self.finish(Status.FAILED, f"stopped: {reason}"),
        )
        if rolled_back is not None:
            return rolled_back
        if not self.entries:
            return self.finish(Status.COMPLETED, f"nothing to post for {entity.code} in {input.period}")
        posted = ", ".join(f"{e.revenue} ({e.external_id}{'' if e.posted else ', held already'})" for e in self.entries)
        return self.finish(Status.COMPLETED, f"revenue posted: {posted}")

    # -- the steps ------------------------------------------------------------------------------

    async def post(self, input: RevenuePostingInput) -> None:
        entity = input.legal_entity
        self.set_stage(f"reading what the schedules recognise through {input.period}")
        recognised = await self.step("read recognition", lambda: self._recognition(input), skippable=False)
        posted = await self.step(
            "read earlier postings",
            lambda: self.forward(
                RevenueActivities.postings_of_entity, ReadPostings(legal_entity=entity.code, through=input.period)
            ),
            skippable=False,
        )
        mine = [p for p in posted if p.period == input.period]
        earlier = [p for p in posted if p.period < input.period]
        postings = build_postings(
            legal_entity=entity.code,
            subsidiary=entity.erp_subsidiary,
            period=input.period,
            recognised=recognised,
            posted=earlier,
            chart=input.chart,
        )
        recorded = {p.external_id for p in mine}
        for posting in postings:
            if posting.entry.external_id in recorded:
                # Posted and recorded by an earlier run of this month: what changed since is
                # the next month's true-up.
                self.note(f"{posting.entry.external_id} was posted already")
                self.entries.append(_summary(posting).model_copy(update={"posted": False}))
                continue
            await self._post_one(posting)

    async def _recognition(self, input: RevenuePostingInput) -> list[Recognition]:
        found: list[Recognition] = []
        cursor = ""
        while True:
            page = await self.forward(
                RevenueActivities.recognition,
                ReadRecognition(
                    legal_entity=input.legal_entity.code, through=input.period, cursor=cursor, limit=input.page
                ),
            )
            found += page.items
            if not page.next_cursor:
                return found
            cursor = page.next_cursor

    async def _post_one(self, posting: RevenuePosting) -> None:
        entry = posting.entry
        summary = _summary(posting)
        self.set_stage(f"posting {entry.external_id}: {entry.memo}")
        # Look before posting: an entry the ERP holds already (an earlier attempt whose answer
        # was lost, a second start of the month) is not posted again.
        held = await self.step(
            f"look up {entry.external_id}",
            lambda: self.forward(ErpActivities.get_journal_entry, entry.external_id),
            skippable=False,
        )
        if held is not None:
            if not _same_lines(held, entry):
                raise StepFailed(
                    f"the ERP holds {entry.external_id} with other amounts than the schedules give now; "
                    "o2c does not change a posted entry (reconciliation shows the difference)"
                )
            summary = summary.model_copy(update={"posted": False})
            self.note(f"{entry.external_id} is in the ERP already")
        else:
            ref = await self.step(
                f"journal entry {posting.currency}",
                lambda: self.forward(ErpActivities.post_journal_entry, entry),
            )
            if ref is None:  # skipped by an operator: booked by hand or not at all, o2c records nothing
                return
        await self.step(
            f"record {entry.external_id}",
            lambda: self.forward(RevenueActivities.record, RecordPosting(lines=posting.lines)),
            must_finish=True,
        )
        self.entries.append(summary)

    def finish(self, status: Status, message: str) -> RevenuePostingResult:
        self.set_status(status, message)
        return RevenuePostingResult(
            legal_entity=self.legal_entity, period=self.period, status=status, message=message, entries=self.entries
        )


def _summary(posting: RevenuePosting) -> PostedEntry:
    return PostedEntry(
        external_id=posting.entry.external_id,
        currency=posting.currency,
        revenue=posting.revenue,
        true_ups=sum(1 for x in posting.lines if x.true_up),
    )


def _same_lines(held: JournalEntry, built: JournalEntry) -> bool:
    """The ERP's entry books what o2c would post: the same net per account."""

    def net(entry: JournalEntry) -> dict[str, int]:
        sums: dict[str, int] = {}
        for line in entry.lines:
            signed = line.amount.minor if line.debit is not None else -line.amount.minor
            sums[line.account] = sums.get(line.account, 0) + signed
        return {k: v for k, v in sums.items() if v}

    return held.currency == built.currency and net(held) == net(built)


__all__ = [
    "PostedEntry",
    "PostedLine",
    "RevenuePostingInput",
    "RevenuePostingResult",
    "RevenuePostingState",
    "RevenuePostingWorkflow",
    "revenue_workflow_id",
]
