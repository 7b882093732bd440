"""`o2c demo`: every amendment, dunning, renewal, reconciliation, usage, cash, credit and
dispute story end to end against the stack, then what happened and the revenue waterfall.

Starts an embedded stack of its own, with its own state directory and database (.o2c/demo),
so nothing it books shows up in the reconciliations and revenue of the user's `o2c dev`; it
takes the usual ports when they are free and others when `o2c dev` holds them. Each run seeds
its own customers (suffixed with a run id), so the demo can be repeated on the same state.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import socket
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import structlog
from rich.console import RenderableType
from rich.text import Text
from temporalio.client import Client
from temporalio.service import RPCError

from adapters.storage.schedules import SqlRevenueSchedules
from adapters.stripe import StripeBilling
from canonical.models import AmendedLine, AmendmentRequest, LegalEntity
from canonical.money import Money
from canonical.reconciliation import USAGE_BREAKS, BreakKind, period_bounds
from canonical.renewal import RenewalRequest, RenewedLine
from canonical.revenue import ratable_schedule, waterfall
from sandbox import SandboxControl
from settings import Settings
from starter import client as o2c
from starter.console import emit_json, err, note, say, show, table, text_of
from starter.identity import demo_desk
from starter.reports import waterfall_table
from starter.sandbox_setup import update_customer_address
from starter.stack import embedded_stack
from starter.usage_setup import usage_period
from workflows.dunning import DunningResult, dunning_workflow_id
from workflows.kit.attention import OperatorAction
from workflows.kit.status import Status

SUBSIDIARY = "1"


@dataclass
class StoryResult:
    story: str
    workflow_id: str
    status: str
    outcome: str  # the business outcome: the status, or for a dunning cash / cancelled / written_off
    message: str
    amount: str
    ui: str
    expected: str = ""  # the outcome the story is meant to reach
    process: str = ""  # amendment, dunning, renewal, reconciliation, usage, cash, credit, dispute


def _month_bounds(today: date) -> tuple[date, date]:
    start = today.replace(day=1)
    end = date(start.year + (start.month == 12), start.month % 12 + 1, 1)
    return start, end


class Demo:
    def __init__(self, client: Client, settings: Settings, control: SandboxControl, billing: StripeBilling):
        self.client, self.settings, self.control, self.billing = client, settings, control, billing
        self.run_id = uuid.uuid4().hex[:6]
        self.today = date.today()
        self.seeded_breaks: dict[str, list[str]] = {}
        self.on_story: Callable[[str], None] = lambda title: None

    async def seed(self, name: str, *, postal_code: str = "94105", payment_method: str = "") -> str:
        account = f"cus_demo_{self.run_id}_{name}"
        start, end = _month_bounds(self.today)
        self.control.seed(
            customer={
                "id": account,
                "name": f"{name.title()} Inc",
                "email": f"billing@{name}.example",
                **({"payment_method": payment_method} if payment_method else {}),
                "address": {
                    "line1": "1 Market St",
                    "city": "San Francisco",
                    "region": "CA",
                    "postal_code": postal_code,
                    "country": "US",
                },
            },
            subscription={
                "id": f"sub_demo_{self.run_id}_{name}",
                "contract_id": f"C-{self.run_id}-{name}",
                "currency": "USD",
                "items": [{"product": "seats", "description": "Platform seat", "quantity": 10, "unit_price": "50.00"}],
                "current_period_start": start.isoformat(),
                "current_period_end": end.isoformat(),
                "term_start": date(start.year, 1, 1).isoformat(),
                "term_end": date(start.year + 1, 1, 1).isoformat(),
            },
        )
        return name

    def request(self, name: str, quantity: int, discount: str = "0") -> AmendmentRequest:
        return AmendmentRequest(
            amendment_id=f"DEMO-{self.run_id}-{name}",
            contract_id=f"C-{self.run_id}-{name}",
            subscription_id=f"sub_demo_{self.run_id}_{name}",
            account_id=f"cus_demo_{self.run_id}_{name}",
            currency="USD",
            effective_date=self.today,
            requested_by="sam.sales",
            lines=[
                AmendedLine(
                    product="seats", quantity=quantity, unit_price=Decimal("50.00"), discount_percent=Decimal(discount)
                )
            ],
            reason=f"demo: {name}",
        )

    async def story(
        self,
        title: str,
        name: str,
        quantity: int,
        *,
        discount: str = "0",
        postal_code: str = "94105",
        meanwhile: Callable[[str], Awaitable[None]] | None = None,
    ) -> StoryResult:
        self.on_story(title)
        await self.seed(name, postal_code=postal_code)
        handle = await o2c.start_amendment(
            self.client,
            self.request(name, quantity, discount),
            billing=self.billing,
            task_queue=self.settings.task_queue,
        )
        if meanwhile:
            await meanwhile(handle.id)
        result = await handle.result()
        amount = f"net {result.net}" + (f", invoice {result.invoice_total}" if result.invoice_total else "")
        return StoryResult(
            story=title,
            workflow_id=handle.id,
            status=result.status.value,
            outcome=result.status.value,
            message=result.message,
            amount=amount,
            ui=self.ui(handle.id),
            process="amendment",
        )

    def ui(self, workflow_id: str) -> str:
        return f"{self.settings.ui_url}/namespaces/{self.settings.temporal_namespace}/workflows/{workflow_id}"

    async def dunning_story(self, title: str, name: str, approvals: list[str]) -> StoryResult:
        """A recurring charge fails in the sandbox; its signed webhook starts the dunning."""
        self.on_story(title)
        account = f"cus_demo_{self.run_id}_{name}"
        start, end = _month_bounds(self.today)
        self.control.seed(
            customer={
                "id": account,
                "name": f"{name.title()} Inc",
                "email": f"billing@{name}.example",
                "payment_method": "pm_card_chargeDeclinedInsufficientFunds",
                "address": {
                    "line1": "1 Main St",
                    "city": "Austin",
                    "region": "TX",
                    "postal_code": "73301",
                    "country": "US",
                },
            },
            subscription={
                "id": f"sub_demo_{self.run_id}_{name}",
                "contract_id": f"C-{self.run_id}-{name}",
                "currency": "USD",
                "items": [{"product": "seats", "description": "Platform seat", "quantity": 20, "unit_price": "50.00"}],
                "current_period_start": start.isoformat(),
                "current_period_end": end.isoformat(),
                "term_start": date(start.year, 1, 1).isoformat(),
                "term_end": date(start.year + 1, 1, 1).isoformat(),
            },
        )
        invoice = self.control.renewal_charge(f"sub_demo_{self.run_id}_{name}")
        workflow_id = dunning_workflow_id(invoice["id"])
        handle = self.client.get_workflow_handle(workflow_id, result_type=DunningResult)
        await self._until(workflow_id, lambda s: True)  # the signed webhook has started it
        if not approvals:  # the customer brings a working card after the first retry
            await self._until(workflow_id, lambda s: len(s.get("attempts", [])) >= 1)
            await self._stripe(f"/customers/{account}", {"invoice_settings[default_payment_method]": "pm_card_visa"})
        for approver in approvals:
            await o2c.wait_for_status(self.client, workflow_id, Status.AWAITING_APPROVAL, timeout=120)
            await demo_desk(self.settings).decide(
                self.client, workflow_id, approver, approved=True, comment="approved in the demo"
            )
            await self._until(workflow_id, lambda s: s["status"] != Status.AWAITING_APPROVAL.value)
        result = await handle.result()
        return StoryResult(
            story=title,
            workflow_id=workflow_id,
            status=Status.COMPLETED.value,
            outcome=result.outcome.value,
            message=result.message,
            amount=f"balance {result.balance}, {result.attempts} retries",
            ui=self.ui(workflow_id),
            process="dunning",
        )

    async def renewal_story(self, title: str, name: str) -> StoryResult:
        """A contract whose term ends in 20 days renews with a 5 % uplift and two more seats."""
        self.on_story(title)
        account, key = f"cus_demo_{self.run_id}_{name}", f"{self.run_id}-{name}"
        term_end = self.today + timedelta(days=20)
        self.control.seed(
            customer={
                "id": account,
                "name": f"{name.title()} Inc",
                "email": f"billing@{name}.example",
                "address": {
                    "line1": "1 Pike St",
                    "city": "Seattle",
                    "region": "WA",
                    "postal_code": "98101",
                    "country": "US",
                },
            },
            subscription={
                "id": f"sub_demo_{self.run_id}_{name}",
                "contract_id": f"C-{key}",
                "currency": "USD",
                "items": [{"product": "seats", "description": "Platform seat", "quantity": 10, "unit_price": "50.00"}],
                "current_period_start": (self.today - timedelta(days=10)).isoformat(),
                "current_period_end": term_end.isoformat(),
                "term_start": (term_end - timedelta(days=365)).isoformat(),
                "term_end": term_end.isoformat(),
            },
        )
        request = RenewalRequest(
            contract_id=f"C-{key}",
            subscription_id=f"sub_demo_{self.run_id}_{name}",
            account_id=account,
            term=str(term_end.year + 1),
            new_term_start=term_end,
            new_term_end=term_end.replace(year=term_end.year + 1),
            uplift_percent=Decimal(5),
            lines=[RenewedLine(product="seats", quantity=12)],
            requested_by="sam.sales",
            reason="closed-won",
        )
        handle = await o2c.start_renewal(
            self.client, request, billing=self.billing, task_queue=self.settings.task_queue
        )
        result = await handle.result()
        return StoryResult(
            story=title,
            workflow_id=handle.id,
            status=result.status.value,
            outcome=result.outcome.value,
            message=result.message,
            amount=f"term {result.term_value}",
            ui=self.ui(handle.id),
            expected="renewed",
            process="renewal",
        )

    async def reconciliation_story(self, title: str, entity: LegalEntity, period: str, *, seed: bool) -> StoryResult:
        """Last month of a legal entity of the demo's own, seeded with one break of every kind:
        the run heals the missing entry, the rest waits for an operator, who accepts it. Run
        again, it heals nothing; if the healed invoice was paid, its cash receipt is still
        missing in the ERP, which the second run finds as a status mismatch."""
        self.on_story(title)
        expected = "8 breaks, 1 healed"
        if not seed:
            # (The sandbox reads objects of every Stripe account without the Stripe-Account header.)
            healed = await self.billing.get_invoice(self.seeded_breaks["missing_in_erp"][0])
            expected = f"{8 if healed and healed.status == 'paid' else 7} breaks, 0 healed"
        if seed:
            contract = f"C-{entity.code}"
            self.seeded_breaks = self.control.seed_period(
                tag=entity.code,
                period=period,
                invoices=200,
                stripe_account=entity.billing_account,
                company_code=entity.company_code,
                subsidiary=entity.erp_subsidiary,
                breaks={
                    kind.value: 1
                    for kind in BreakKind
                    if kind not in (BreakKind.REVENUE_MISMATCH, BreakKind.CUT_OFF_DIFFERENCE)
                    and kind not in USAGE_BREAKS
                },
                revenue=[{"contract_id": contract, "amount": "2950.00"}],
            )["breaks"]
            start, end = period_bounds(period)
            store = SqlRevenueSchedules(self.settings.database_url)
            try:  # o2c's own schedule says the month recognises 3,000.00 of the contract
                await store.save_schedule(
                    ratable_schedule(
                        schedule_id=f"{contract}-subscription",
                        contract_id=contract,
                        account_id=f"cus_{entity.code}",
                        legal_entity=entity.code,
                        obligation="subscription",
                        total=Money.of("3000.00", "USD"),
                        start=start,
                        end=end,
                    )
                )
            finally:
                await store.aclose()
        handle = await o2c.start_reconciliation(
            self.client,
            legal_entity=entity.code,
            period=period,
            task_queue=self.settings.task_queue,
            legal_entities=[entity],
        )
        state = await o2c.wait_for_status(self.client, handle.id, Status.NEEDS_ATTENTION, timeout=300)
        await demo_desk(self.settings).resolve(
            self.client, handle.id, "olga.ops", OperatorAction.SKIP, comment="each break is assigned to its owner"
        )
        result = await handle.result()
        found = ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in sorted(result.found.items()))
        return StoryResult(
            story=title,
            workflow_id=handle.id,
            status=result.status.value,
            outcome=f"{sum(result.found.values())} breaks, {result.healed} healed",
            message=f"{result.message} (run {result.run_id}: {found}; `o2c recon report {result.run_id}`)",
            amount=f"{state['read'].get('billing', 0)} invoices",
            ui=self.ui(handle.id),
            expected=expected,
            process="reconciliation",
        )

    async def waterfall(self) -> RenderableType:
        """The revenue waterfall of what this demo's processes recorded."""
        store = SqlRevenueSchedules(self.settings.database_url)
        try:
            schedules = [s for s in await store.schedules_of_entity("US01") if self.run_id in s.contract_id]
        finally:
            await store.aclose()
        return waterfall_table(waterfall(schedules)) if schedules else Text("(no revenue schedules recorded)")

    async def _until(self, workflow_id: str, check: Callable[[dict[str, Any]], bool], timeout: float = 120) -> None:
        for _ in range(int(timeout * 10)):
            with contextlib.suppress(RPCError):  # the webhook may not have started it yet
                if check(await o2c.process_state(self.client, workflow_id)):
                    return
            await asyncio.sleep(0.1)
        raise TimeoutError(f"{workflow_id} did not get there in {timeout} s")

    async def _stripe(self, path: str, data: dict[str, str]) -> None:
        """What the customer does in Stripe's hosted pages."""
        async with httpx.AsyncClient(timeout=10) as http:
            response = await http.post(
                f"{self.settings.stripe_base_url}{path}",
                data=data,
                headers={"Authorization": f"Bearer {self.settings.stripe_api_key}"},
            )
            response.raise_for_status()

    async def run(self) -> list[StoryResult]:
        async def approve(workflow_id: str) -> None:
            await o2c.wait_for_status(self.client, workflow_id, Status.AWAITING_APPROVAL)
            await demo_desk(self.settings).decide(
                self.client,
                workflow_id,
                "carla.controller",
                approved=True,
                comment="expansion agreed with the customer",
            )

        async def reject(workflow_id: str) -> None:
            await o2c.wait_for_status(self.client, workflow_id, Status.AWAITING_APPROVAL)
            await demo_desk(self.settings).decide(
                self.client, workflow_id, "fiona.finance", approved=False, comment="25 % discount is above policy"
            )

        async def fix_address_and_retry(workflow_id: str) -> None:
            await o2c.wait_for_status(self.client, workflow_id, Status.NEEDS_ATTENTION)
            # The analyst fixes the customer master.
            await update_customer_address(self.settings, f"cus_demo_{self.run_id}_gamma", {"postal_code": "94105"})
            await demo_desk(self.settings).resolve(
                self.client,
                workflow_id,
                "olga.ops",
                OperatorAction.RETRY,
                comment="postal code added to the customer master",
            )

        period = self.today.strftime("%Y-%m")

        async def abort(workflow_id: str) -> None:
            await o2c.wait_for_status(self.client, workflow_id, Status.NEEDS_ATTENTION)
            await demo_desk(self.settings).resolve(
                self.client,
                workflow_id,
                "olga.ops",
                OperatorAction.ABORT,
                comment="period stays closed; rebook next month",
            )

        results = [
            await self.story("happy path: 10 → 12 seats", "alpha", 12),
            await self.story("controller approval: 10 → 100 seats", "beta", 100, meanwhile=approve),
            await self.story("rejection: 25 % discount", "delta", 10, discount="25", meanwhile=reject),
            await self.story(
                "exception queue: missing postal code, fixed, retried",
                "gamma",
                15,
                postal_code="",
                meanwhile=fix_address_and_retry,
            ),
        ]
        self.control.set_period(SUBSIDIARY, period, closed=True)
        try:
            results.append(
                await self.story("rolled back: ERP period closed, operator aborts", "epsilon", 14, meanwhile=abort)
            )
        finally:
            self.control.set_period(SUBSIDIARY, period, closed=False)
        for result, outcome in zip(
            results, ["completed", "completed", "rejected", "completed", "rolled_back"], strict=False
        ):
            result.expected = outcome
        # The dunning calendars run side by side (a dunning day lasts a second on this stack).
        renewal = asyncio.create_task(self.renewal_story("renewal: 20 days ahead, 5 % uplift, 10 → 12 seats", "theta"))
        dunnings = await asyncio.gather(
            self.dunning_story("dunning: card declined, customer updates it, cash", "zeta", []),
            self.dunning_story(
                "dunning: 30 days, restriction and write-off approved",
                "eta",
                ["fiona.finance", "carla.controller"],
            ),
        )
        for result, outcome in zip(dunnings, ["cash", "written_off"], strict=False):
            result.expected = outcome
        results += [*dunnings, await renewal]
        # Last month, for a legal entity of this demo run's own: a reconciliation, then another.
        entity = LegalEntity(
            code=f"DEMO{self.run_id}",
            company_code=f"DEMO{self.run_id}",
            functional_currency="USD",
            erp_subsidiary=f"9{int(self.run_id, 16) % 10**6}",
            billing_account=f"acct_demo{self.run_id}",
        )
        last_month = (self.today.replace(day=1) - timedelta(days=1)).strftime("%Y-%m")
        results.append(
            await self.reconciliation_story(
                f"reconciliation: {last_month}, one break of every kind", entity, last_month, seed=True
            )
        )
        results.append(
            await self.reconciliation_story(
                "reconciliation again: nothing left to heal", entity, last_month, seed=False
            )
        )
        from starter.usage_demo import UsageStories  # it builds on this module's StoryResult

        usage = UsageStories(self.client, self.settings, self.control, self.run_id, self.ui)
        usage.on_story = self.on_story
        results += await usage.run(usage_period(self.today))
        from starter.cash_demo import CashStories  # it builds on this module's Demo and StoryResult

        results += await CashStories(self).run()
        from starter.ledger_demo import LedgerStories  # it builds on this module's Demo and StoryResult

        results += await LedgerStories(self).run()
        return results


def print_table(results: list[StoryResult]) -> None:
    show(
        table(
            ("story", "outcome", "amount", "workflow"),
            [(r.story, r.outcome, r.amount, r.workflow_id) for r in results],
            wide=("story",),
        )
    )
    for r in results:
        say(f"\n{r.workflow_id}: {r.message}\n    {r.ui}")


def print_documents(summary: dict[str, Any]) -> None:
    say("\nWhat the sandbox holds now:")
    for system, types in summary.items():
        if system == "faults" or not isinstance(types, dict):
            continue
        parts = []
        for type_, counts in types.items():
            detail = counts.get("by_status") if isinstance(counts, dict) else None
            total = counts.get("total") if isinstance(counts, dict) else counts
            parts.append(f"{type_} {total}" + (f" {detail}" if detail else ""))
        say(f"  {system}: " + "; ".join(parts))


# The demo's renewal waits 20 days for its term; at a tenth of a second a day, two seconds.
DEMO_RENEWAL_DAY_SECONDS = "0.1"
# The ports of `o2c dev`, which the demo takes when they are free.
DEMO_PORTS = {"temporal": 7233, "ui": 8233, "sandbox": 8700, "webhooks": 8710}


def _port(preferred: int) -> int:
    """The preferred port if nothing listens on it, else one the system picks."""
    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", preferred)) != 0:
            return preferred
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def demo_settings() -> tuple[Settings, int]:
    """Settings for a stack of the demo's own: its state directory and SQLite database under
    the user's (.o2c/demo), a local Temporal on free ports. Set through the environment, so
    whatever the stack starts as a process of its own reads the same."""
    state_dir = Path(os.environ.get("O2C_STATE_DIR", ".o2c")) / "demo"
    # Each run starts from nothing: month-level stories (last month's revenue posting and its
    # reconciliation) would otherwise meet the months an earlier run posted.
    shutil.rmtree(state_dir, ignore_errors=True)
    state_dir.mkdir(parents=True, exist_ok=True)
    ports = {name: _port(port) for name, port in DEMO_PORTS.items()}
    os.environ.update(
        {
            "O2C_STATE_DIR": str(state_dir),
            "O2C_DATABASE_URL": f"sqlite:///{(state_dir / 'o2c.sqlite').resolve()}",
            "O2C_TEMPORAL_ADDRESS": f"127.0.0.1:{ports['temporal']}",
            "O2C_TEMPORAL_UI_URL": f"http://127.0.0.1:{ports['ui']}",
            "O2C_TEMPORAL_API_KEY": "",
            "O2C_TEMPORAL_TLS": "",
            "O2C_SANDBOX_URL": f"http://127.0.0.1:{ports['sandbox']}",
            "O2C_WEBHOOK_PORT": str(ports["webhooks"]),
        }
    )
    # One legal entity on each ERP: US01 in USD on NetSuite, DE01 in EUR on SAP S/4HANA.
    entities = Path(__file__).resolve().parent.parent / "examples" / "legal-entities.json"
    if entities.exists():
        os.environ.setdefault("O2C_LEGAL_ENTITIES_FILE", str(entities))
    os.environ.setdefault("O2C_RENEWAL_DAY_SECONDS", DEMO_RENEWAL_DAY_SECONDS)
    return Settings.from_env(), ports["ui"]


async def run_demo(*, as_json: bool = False) -> int:
    settings, ui_port = demo_settings()
    # The stories fail activities on purpose; the SDK's per-attempt warnings and the
    # ingress's per-event lines would bury the table.
    logging.getLogger("temporalio").setLevel(logging.ERROR)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    with err.status("starting the demo's own stack (Temporal, sandbox, worker)") as progress:
        async with embedded_stack(settings, ui_port=ui_port, reuse=False) as stack:
            control = SandboxControl(stack.settings.sandbox_url)
            billing = StripeBilling(
                stack.settings.stripe_base_url,
                stack.settings.stripe_api_key,
                timeout=stack.settings.http_timeout_seconds,
            )
            try:
                # The demo's people sign in before any process starts, so every process
                # trusts their signed identities and every answer goes through them.
                desk = demo_desk(stack.settings)
                demo = Demo(stack.client, stack.settings, control, billing)

                def on_story(title: str) -> None:
                    note(f"  {title}")
                    progress.update(f"demo: {title}")

                demo.on_story = on_story
                results = await demo.run()
                revenue = await demo.waterfall()
                summary = control.summary()
            finally:
                control.close()
                await billing.aclose()
    ok = all(r.outcome == r.expected for r in results)
    if as_json:
        emit_json(
            {"ok": ok, "stories": [asdict(r) for r in results], "sandbox": summary, "waterfall": text_of(revenue)}
        )
    else:
        print_table(results)
        say("\nRevenue waterfall of what these processes booked (o2c's schedules, US01):")
        show(revenue)
        print_documents(summary)
        say("\nThe demo's people (every approval and answer above was signed as one of them):")
        for name, password in desk.passwords.items():
            role = desk.people[name].role
            say(f"  {name:<18} {role.value if role else '':<11} password {password}")
        say(
            f"\nThe demo's stack has stopped; its state stays in {settings.state_dir}, apart from yours. "
            f"To look at these workflows in the UI: O2C_STATE_DIR={settings.state_dir} o2c dev"
        )
    return 0 if ok else 1
