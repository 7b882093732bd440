"""Reconciliation activities: read each system into the run's staging, match a batch, keep
the breaks. Reading heartbeats its cursor after every staged page, so an attempt that dies
(a worker killed, a timeout) resumes at the page where it stopped; staging is an upsert,
so a page read twice is kept once. Memory holds one page, or one batch, at a time."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from temporalio import activity

from activities.errors import classified
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
from adapters.ports import (
    BillingPort,
    ErpPort,
    ReconciliationStorePort,
    RevenuePostingStorePort,
    RevenueSchedulePort,
    TaxPort,
    UsageStorePort,
)
from canonical.matching import compare_staged, initial_status
from canonical.models import DEBTOR_LINE_ERPS, ContractRevenue, Model
from canonical.money import Money
from canonical.reconciliation import (
    BilledInvoice,
    Break,
    BreakStatus,
    EntryKind,
    HealOrder,
    KeyRange,
    LedgerFact,
    RunSummary,
    TaxRecord,
    billed,
    ledger_fact,
    period_bounds,
    revenue_key,
    taxed,
)
from canonical.revenue.ledger_check import LEDGER_REVENUE, ledger_revenue_key
from canonical.usage.models import UsageRelease, previous_period
from canonical.usage.reconciliation import UsageFact, accrual_to_look_up, compare_usage, usage_fact, without_usage_heals

BILLING, TAX, ERP, SCHEDULES, USAGE = "billing", "tax", "erp", "schedules", "usage"
FACTS: dict[str, type[Model]] = {
    BILLING: BilledInvoice,
    TAX: TaxRecord,
    ERP: LedgerFact,
    SCHEDULES: ContractRevenue,
    USAGE: UsageFact,
}

Page = Any  # InvoicePage | TaxDocumentPage | JournalEntryPage | ContractRevenuePage | ReleasePage


class ReleasePage(Model):
    """A page of usage releases, under a cursor that names the usage month it reads."""

    items: list[UsageRelease]
    next_cursor: str = ""


class ReconciliationActivities:
    def __init__(
        self,
        billing: BillingPort,
        tax: TaxPort,
        erp: ErpPort,
        schedules: RevenueSchedulePort,
        store: ReconciliationStorePort,
        usage: UsageStorePort,
        postings: RevenuePostingStorePort | None = None,
    ):
        self.billing, self.tax, self.erp, self.schedules, self.store = billing, tax, erp, schedules, store
        self.usage = usage
        self.postings = postings

    @activity.defn(name="recon.open_run")
    @classified
    async def open_run(self, request: OpenRun) -> None:
        await self.store.open_run(
            run_id=request.run_id,
            # None only for an activity started outside a workflow, which o2c never does.
            workflow_id=activity.info().workflow_id or "",
            legal_entity=request.legal_entity,
            period=request.period,
            started_at=request.started_at,
            settings=request.settings,
        )

    # -- reading, page by page --------------------------------------------------------------

    async def _read(
        self,
        request: ReadSystem,
        system: str,
        counted_as: str | None,
        fetch: Callable[[str], Awaitable[Page]],
        facts: Callable[[Page], Iterable[tuple[str, str, str]]],
    ) -> int:
        """Stage every page from where the last heartbeat left off; count what was staged."""
        details = activity.info().heartbeat_details
        cursor, count = (str(details[0]), int(details[1])) if len(details) >= 2 else ("", 0)
        if cursor:
            activity.logger.info(f"resuming {system} at cursor {cursor} after {count} documents")
        while True:
            page = await fetch(cursor)
            staged = list(facts(page))  # what is the entity's of what was read
            await self.store.stage(request.run_id, system, staged)
            count += len(staged)
            cursor = page.next_cursor
            if not cursor:
                break
            activity.heartbeat(cursor, count)
        if counted_as is not None:
            await self.store.set_counts(request.run_id, **{counted_as: count})
        return count

    @activity.defn(name="recon.read_billing")
    @classified
    async def read_billing(self, request: ReadSystem) -> int:
        start, end = period_bounds(request.period)

        def facts(page: Page) -> Iterable[tuple[str, str, str]]:
            for invoice in page.items:
                if invoice.metadata.get("legal_entity", request.entity.code) != request.entity.code:
                    continue  # another entity's, on the billing account they share
                fact = billed(invoice)
                yield invoice.id, fact.match_key, fact.model_dump_json()

        return await self._read(
            request,
            BILLING,
            "billing_documents",
            lambda cursor: self.billing.list_invoices_page(
                created_from=start, created_to=end, billing_account=request.entity.billing_account, cursor=cursor
            ),
            facts,
        )

    @activity.defn(name="recon.read_tax")
    @classified
    async def read_tax(self, request: ReadSystem) -> int:
        start, end = period_bounds(request.period)

        def facts(page: Page) -> Iterable[tuple[str, str, str]]:
            for document in page.items:
                fact = taxed(document)
                yield f"{document.code}/{document.type}", fact.match_key, fact.model_dump_json()

        return await self._read(
            request,
            TAX,
            "tax_documents",
            lambda cursor: self.tax.list_documents_page(
                company_code=request.entity.company_code, date_from=start, date_to=end, cursor=cursor
            ),
            facts,
        )

    @activity.defn(name="recon.read_erp")
    @classified
    async def read_erp(self, request: ReadSystem) -> int:
        start, end = period_bounds(request.period)

        def facts(page: Page) -> Iterable[tuple[str, str, str]]:
            for entry in page.items:
                fact = ledger_fact(entry, request.chart)
                yield entry.internal_id or entry.external_id, fact.match_key, fact.model_dump_json()

        return await self._read(
            request,
            ERP,
            "erp_entries",
            lambda cursor: self.erp.list_journal_entries_page(
                subsidiary=request.entity.erp_subsidiary, date_from=start, date_to=end, cursor=cursor
            ),
            facts,
        )

    @activity.defn(name="recon.read_schedules")
    @classified
    async def read_schedules(self, request: ReadSystem) -> int:
        """The month's recognition per contract. Once o2c posts the entity's revenue, it is
        staged under the entity-month-currency key of the posting's entry (the ledger holds one
        entry a month, not one a contract), with a marker for each currency o2c posted for the
        month, so a month whose schedules fell to nothing is compared too. Before that, per
        contract, as the ledger recognised it."""
        entity, period = request.entity.code, request.period
        posted = await self.postings.postings_of_entity(entity) if self.postings is not None else []

        def key(revenue: ContractRevenue) -> str:
            if posted:
                return ledger_revenue_key(entity, period, revenue.amount.currency)
            return revenue_key(revenue.contract_id)

        def facts(page: Page) -> Iterable[tuple[str, str, str]]:
            for revenue in page.items:
                yield f"{revenue.contract_id}/{revenue.amount.currency}", key(revenue), revenue.model_dump_json()

        count = await self._read(
            request,
            SCHEDULES,
            "contracts",
            lambda cursor: self.schedules.revenue_in_period(legal_entity=entity, period=period, cursor=cursor),
            facts,
        )
        currencies = {p.amount.currency for p in posted if period in (p.period, p.recognised_period)}
        markers = [ContractRevenue(contract_id="", amount=Money.zero(c)) for c in sorted(currencies)]
        await self.store.stage(
            request.run_id, SCHEDULES, ((f"posted/{m.amount.currency}", key(m), m.model_dump_json()) for m in markers)
        )
        return count

    @activity.defn(name="recon.read_usage")
    @classified
    async def read_usage(self, request: ReadSystem) -> int:
        """o2c's usage releases of the month before the period (invoiced in it) and of the
        period itself (accrued in it). The count lives in the workflow's state, not a run column."""
        months = [previous_period(request.period), request.period]

        async def fetch(cursor: str) -> ReleasePage:
            month, _, inner = cursor.partition("|") if cursor else (months[0], "|", "")
            releases, after = await self.usage.releases(legal_entity=request.entity.code, period=month, cursor=inner)
            if after:
                return ReleasePage(items=releases, next_cursor=f"{month}|{after}")
            following = months.index(month) + 1
            return ReleasePage(items=releases, next_cursor=f"{months[following]}|" if following < len(months) else "")

        def facts(page: Page) -> Iterable[tuple[str, str, str]]:
            for release in page.items:
                fact = usage_fact(release)
                yield release.workflow_id, fact.match_key, fact.model_dump_json()

        return await self._read(request, USAGE, None, fetch, facts)

    # -- matching ---------------------------------------------------------------------------

    @activity.defn(name="recon.plan_batches")
    @classified
    async def plan_batches(self, request: PlanBatches) -> list[KeyRange]:
        return await self.store.plan_batches(request.run_id, request.size)

    @activity.defn(name="recon.match_batch")
    @classified
    async def match_batch(self, request: MatchBatch) -> BatchFindings:
        """Compare every document of the batch, record its breaks, and say which heals to post."""
        grouped: dict[str, dict[str, list[Any]]] = defaultdict(lambda: defaultdict(list))
        for key, system, payload in await self.store.staged(request.run_id, request.keys):
            grouped[key][system].append(FACTS[system].model_validate_json(payload))
        found: list[tuple[str, Break, BreakStatus]] = []
        # What o2c posted of the entity's revenue, read once a batch when it compares a month.
        posted = (
            await self.postings.postings_of_entity(request.entity.code)
            if self.postings is not None and any(k.startswith(LEDGER_REVENUE) for k in grouped)
            else []
        )
        for key, facts in grouped.items():
            usage: list[UsageFact] = facts[USAGE]
            billing: list[BilledInvoice] = facts[BILLING]
            tax: list[TaxRecord] = facts[TAX]
            ledger: list[LedgerFact] = facts[ERP]
            if key.startswith("invoice:") and not billing:
                billing = await self._invoice_elsewhere(key, tax, ledger, request)
            # A usage invoice's entry is its release's: `<release workflow>-invoice`.
            invoiced = next((u for u in usage if u.period < request.period), None)
            if invoiced is not None and billing:
                billing = [billing[0].model_copy(update={"entry_id": invoiced.invoice_entry_id}), *billing[1:]]
            if key.startswith("invoice:") and billing:
                tax, ledger = await self._booking_elsewhere(billing[0], tax, ledger, request)
            breaks = compare_staged(
                key,
                billing=billing,
                tax=tax,
                ledger=ledger,
                revenue=facts[SCHEDULES],
                period=request.period,
                policy=request.policy,
                subsidiary=request.entity.erp_subsidiary,
                chart=request.chart,
                posted=posted,
                names_customer=request.entity.erp in DEBTOR_LINE_ERPS,
            )
            if key.startswith("invoice:"):
                breaks = without_usage_heals(breaks, billing[0] if billing else None, usage)
                breaks += compare_usage(
                    key,
                    usage,
                    billing[0] if billing else None,
                    ledger,
                    period=request.period,
                    elsewhere=await self._accrual_elsewhere(usage, ledger, request),
                    tolerance=request.policy.tolerance,
                    units=request.policy.usage_units,
                )
            for found_break in breaks:
                found.append((key, found_break, initial_status(found_break, request.policy.heal_limit_rule())))
        ids = await self.store.record_breaks(
            request.run_id, legal_entity=request.entity.code, period=request.period, found=found
        )
        findings = BatchFindings()
        for break_id, (_, found_break, status) in zip(ids, found, strict=False):
            findings.found[found_break.kind.value] = findings.found.get(found_break.kind.value, 0) + 1
            if status == BreakStatus.HEALING and found_break.heal is not None:
                findings.heal_now.append(HealOrder(break_id=break_id, entry=found_break.heal))
        return findings

    # -- documents of another period, looked up by key -----------------------------------------

    async def _invoice_elsewhere(
        self, key: str, tax: list[TaxRecord], ledger: list[LedgerFact], request: MatchBatch
    ) -> list[BilledInvoice]:
        """The billing invoice of an ERP entry or a committed tax document of the period, when
        billing created it in another period: the same booking, not one missing in billing."""
        if not (any(f.kind == EntryKind.INVOICE for f in ledger) or any(t.committed for t in tax)):
            return []
        invoice = await self.billing.find_invoice(key.split(":", 1)[1], billing_account=request.entity.billing_account)
        return [billed(invoice)] if invoice is not None and invoice.created is not None else []

    async def _booking_elsewhere(
        self, invoice: BilledInvoice, tax: list[TaxRecord], ledger: list[LedgerFact], request: MatchBatch
    ) -> tuple[list[TaxRecord], list[LedgerFact]]:
        """Look before calling an invoice's entry or tax document missing: the ERP and AvaTax
        may hold them dated in another period. Only what the period's listings lack costs a
        call, so reconciliation never proposes to post an entry the ERP already holds."""
        if invoice.status == "draft" or (invoice.total.is_zero and invoice.tax.is_zero):
            return tax, ledger
        if not any(f.kind == EntryKind.INVOICE for f in ledger) and invoice.entry_id not in {
            f.external_id for f in ledger
        }:
            entry = await self.erp.get_journal_entry(invoice.entry_id)
            if entry is not None:
                # Its reversal, if any, carries the booking's reversal ID (`<entry>-reversal`).
                reversal = await self.erp.get_journal_entry(f"{entry.external_id}-reversal")
                found = [entry] + ([reversal] if reversal is not None else [])
                ledger = [*ledger, *(ledger_fact(e, request.chart) for e in found)]
        if not tax and not invoice.tax.is_zero:
            document = await self.tax.get_document(code=invoice.invoice_id)
            if document is not None:
                tax = [taxed(document)]
        return tax, ledger

    async def _accrual_elsewhere(
        self, usage: list[UsageFact], ledger: list[LedgerFact], request: MatchBatch
    ) -> list[LedgerFact]:
        """Look before calling an accrual missing: the ERP may hold it in another month (a
        cut-off difference). Only releases whose accrual the period's listing lacks cost a call."""
        external_id = accrual_to_look_up(usage, ledger, period=request.period)
        if not external_id:
            return []
        entry = await self.erp.get_journal_entry(external_id)
        return [ledger_fact(entry, request.chart)] if entry is not None else []

    # -- breaks and the run -------------------------------------------------------------------

    @activity.defn(name="recon.resolve_breaks")
    @classified
    async def resolve_breaks(self, request: ResolveBreaks) -> None:
        await self.store.resolve_breaks(request.updates)

    @activity.defn(name="recon.heal_orders")
    @classified
    async def heal_orders(self, request: HealOrders) -> list[HealOrder]:
        return await self.store.heal_orders(
            request.run_id, status=request.status, after=request.after, limit=request.limit
        )

    @activity.defn(name="recon.heal_total")
    @classified
    async def heal_total(self, request: HealOrders) -> list[tuple[int, Money]]:
        return await self.store.heal_total(request.run_id, request.status)

    @activity.defn(name="recon.move_breaks")
    @classified
    async def move_breaks(self, request: MoveBreaks) -> int:
        return await self.store.move_breaks(
            request.run_id, from_status=request.from_status, to_status=request.to_status, resolution=request.resolution
        )

    @activity.defn(name="recon.close_run")
    @classified
    async def close_run(self, request: CloseRun) -> RunSummary:
        return await self.store.close_run(request.run_id)

    def all(self) -> list[Callable[..., Any]]:
        return [
            self.open_run,
            self.read_billing,
            self.read_tax,
            self.read_erp,
            self.read_schedules,
            self.read_usage,
            self.plan_batches,
            self.match_batch,
            self.resolve_breaks,
            self.heal_orders,
            self.heal_total,
            self.move_breaks,
            self.close_run,
        ]
