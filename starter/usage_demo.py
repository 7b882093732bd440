"""The demo's usage stories, on the month that has just ended: a normal month released without a
person; a 40 % spike held, approved and released; a spike adjusted with a credit line and
released; events of a customer billing did not meter yet, quarantined, the customer master
fixed, the events replayed and billed. The setup steps are starter/usage_setup.py's."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from temporalio.client import Client

from adapters.storage.usage import UsageLedger
from canonical.models import ApproverRole
from canonical.money import Money
from canonical.usage.models import EventOutcome, ReviewAction, UsageDecision, UsageEvent
from sandbox import SandboxControl
from settings import Settings
from starter import client as o2c
from starter.demo import StoryResult
from starter.identity import demo_desk
from starter.usage_setup import (
    create_api_key,
    demo_policy,
    ingress_url,
    month_of_usage,
    release_input,
    seed_history,
    seed_metered_customer,
    send_events,
    start_release,
    sync_master_data,
)
from workflows.kit.status import Status

# Six earlier months of API calls per customer, oldest first, and this month's.
STEADY = [9_800, 10_100, 9_900, 10_300, 10_000, 10_200]  # median 10,050
BUSY = [20_000, 19_500, 20_400, 20_100, 19_800, 20_300]  # median 20,050
MONTH = {"normal": 10_400, "spike": 14_200, "credit": 30_000, "fixed": 9_600}  # spike: 1.41x, credit: 1.5x
HISTORY = {"normal": STEADY, "spike": STEADY, "credit": BUSY, "fixed": STEADY}
FIXED_EVENTS = 12  # the quarantined customer's valid events, replayed once its master data is fixed
CREDIT = "100.00"
DECIDED = {ReviewAction.APPROVE: "approved", ReviewAction.ADJUST: "adjusted", ReviewAction.REMEASURE: "re-measured"}


class UsageStories:
    def __init__(
        self, client: Client, settings: Settings, control: SandboxControl, run_id: str, ui: Callable[[str], str]
    ):
        self.client, self.settings, self.control, self.run_id, self.ui = client, settings, control, run_id, ui
        self.policy = demo_policy(settings)
        self.on_story: Callable[[str], None] = lambda title: None
        self.notes: dict[str, str] = {}  # per customer, what happened to its events

    def customer(self, name: str) -> str:
        return f"cus_demo_{self.run_id}_{name}"

    def subscription(self, name: str) -> str:
        return f"sub_demo_{self.run_id}_{name}"

    async def run(self, period: str) -> list[StoryResult]:
        self.on_story(f"usage {period}: metered customers, history, events over the HTTP ingress")
        for name in MONTH:  # the last one is in billing without its metered subscription yet
            seed_metered_customer(
                self.control, self.customer(name), self.subscription(name), period, with_subscription=name != "fixed"
            )
        await sync_master_data(self.settings, self.policy)
        for name, quantities in HISTORY.items():
            await seed_history(
                self.settings,
                customer=self.customer(name),
                subscription_id=self.subscription(name),
                period=period,
                quantities=quantities,
            )
        key = await create_api_key(self.settings, f"demo-{self.run_id}")
        url = ingress_url(self.settings)
        for name in ("normal", "spike", "credit"):
            month = month_of_usage(self.customer(name), period, MONTH[name], prefix=f"{self.run_id}-{name}")
            sent = await send_events(url, key, month)
            if name == "normal":  # the producer retries the whole month: nothing counts twice
                again = await send_events(url, key, month)
                self.notes[name] = (
                    f"{sent['accepted']} events accepted; sent again, {again['duplicates']} duplicates counted once"
                )
        replayed = await self._quarantine_fix_replay(period, url, key)
        self.on_story("usage: four releases (report to billing's meters, draft, review, release)")
        return list(
            await asyncio.gather(
                self.story("usage: a normal month, released without a person", "normal", period, "released"),
                self.story(
                    "usage: a 40 % spike held, approved, released",
                    "spike",
                    period,
                    "released, approved",
                    answer=self._approve,
                ),
                self.story(
                    "usage: a spike adjusted with a credit line, released",
                    "credit",
                    period,
                    "released, adjusted",
                    answer=self._adjust,
                ),
                self.story(
                    "usage: invalid events quarantined, customer fixed, replayed, billed",
                    "fixed",
                    period,
                    f"released, {FIXED_EVENTS} replayed",
                    replayed=replayed,
                ),
            )
        )

    async def _quarantine_fix_replay(self, period: str, url: str, key: str) -> int:
        """Events of a customer billing does not meter yet are refused and quarantined (with a
        broken one among them); billing ops add the metered subscription, o2c syncs, the
        operator replays the queue and discards what is still wrong, with a reason."""
        customer = self.customer("fixed")
        month = month_of_usage(customer, period, MONTH["fixed"], events=FIXED_EVENTS, prefix=f"{self.run_id}-fixed")
        broken = UsageEvent(
            identifier=f"{self.run_id}-fixed-broken",
            meter=month[0].meter,
            customer=customer,
            value=-5,
            timestamp=month[0].timestamp,
        )
        sent = await send_events(url, key, [*month, broken])
        seed_metered_customer(self.control, customer, self.subscription("fixed"), period)
        await sync_master_data(self.settings, self.policy)
        ledger = UsageLedger(self.settings.database_url, policy=self.policy)
        try:
            ids = [q.id for q in await ledger.quarantine(status="open", customer=customer)]
            results = await ledger.replay(ids, by="olga.ops", now=datetime.now(UTC))
            still = [id_ for id_, verdict in results if verdict.outcome is EventOutcome.REFUSED]
            await ledger.discard(still, by="olga.ops", reason="a negative count from a broken producer build")
        finally:
            await ledger.aclose()
        replayed = sum(1 for _, verdict in results if verdict.outcome is EventOutcome.ACCEPTED)
        self.notes["fixed"] = (
            f"{sent['refused']} events refused (unknown customer), metered subscription added and synced, "
            f"{replayed} replayed, {len(still)} discarded (negative value)"
        )
        return replayed

    async def _approve(self, workflow_id: str) -> None:
        await demo_desk(self.settings).decide(
            self.client,
            workflow_id,
            "fiona.finance",
            approved=True,
            comment="the customer's product launch: the usage is real",
        )

    async def _adjust(self, workflow_id: str) -> None:
        decision = UsageDecision(
            approver="fiona.finance",
            role=ApproverRole.FINANCE,
            action=ReviewAction.ADJUST,
            credit=Money.of(CREDIT, "USD"),
            reason="load test by the customer's engineers, agreed not to bill",
        )
        await o2c.adjust_usage(self.client, workflow_id, decision)

    async def story(
        self,
        title: str,
        name: str,
        period: str,
        expected: str,
        *,
        answer: Callable[[str], Any] | None = None,
        replayed: int = 0,
    ) -> StoryResult:
        input = await release_input(self.settings, self.customer(name), period, self.policy)
        handle = await start_release(self.client, self.settings, self.control, input)
        findings: list[str] = []
        if answer is not None:
            held = await o2c.wait_for_status(self.client, handle.id, Status.AWAITING_APPROVAL, timeout=180)
            findings = [f["text"] for f in held.get("findings", [])]
            await answer(handle.id)
        result = await handle.result()
        state = await o2c.process_state(self.client, handle.id)
        outcome = result.outcome.value
        decisions = [DECIDED[ReviewAction(d["action"])] for d in state.get("decisions", [])]
        if decisions:
            outcome += ", " + ", ".join(decisions)
        if replayed:
            outcome += f", {replayed} replayed"
        quantity = sum(t["quantity"] for t in state.get("totals", []))
        amount = f"{quantity:,} API calls, invoice {result.total}" + (
            f", credit {result.credit}" if result.credit else ""
        )
        message = "; ".join(x for x in [result.message, *findings, self.notes.get(name, "")] if x)
        return StoryResult(
            story=title,
            workflow_id=handle.id,
            status=result.status.value,
            outcome=outcome,
            message=message,
            amount=amount,
            ui=self.ui(handle.id),
            expected=expected,
            process="usage",
        )
