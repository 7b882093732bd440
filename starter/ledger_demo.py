"""The demo's two-ERP stories: one legal entity on each ERP (US01 in USD on NetSuite, DE01 in
EUR on SAP S/4HANA, from examples/legal-entities.json).

- An amendment for a DE01 customer, booked in SAP: the invoice entry is read back from SAP.
- Last month's recognised revenue posted for each entity in its own ERP: one entry each.
- DE01's last month reconciled against SAP: its posted revenue matches the schedules.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from adapters.erp_routing import routed_erp
from adapters.storage.schedules import SqlRevenueSchedules
from canonical.models import ERP_NAMES, AmendedLine, AmendmentRequest, LegalEntity
from canonical.money import Money
from canonical.reconciliation import period_bounds
from canonical.revenue.schedules import ratable_schedule
from starter import client as o2c
from starter.demo import Demo, StoryResult, _month_bounds
from starter.revenue import start_revenue_posting

SAP_ENTITY = "DE01"
NETSUITE_ENTITY = "US01"


class LedgerStories:
    def __init__(self, demo: Demo):
        self.demo = demo
        self.entities = {e.code: e for e in demo.settings.legal_entities}
        self.last_month = (demo.today.replace(day=1) - timedelta(days=1)).strftime("%Y-%m")

    def entity(self, code: str) -> LegalEntity:
        return self.entities[code]

    async def run(self) -> list[StoryResult]:
        if SAP_ENTITY not in self.entities or NETSUITE_ENTITY not in self.entities:
            return []  # a deployment of one ERP: nothing to show side by side
        results = [await self.sap_amendment()]
        for code in (NETSUITE_ENTITY, SAP_ENTITY):
            results.append(await self.revenue_posting(self.entity(code)))
        results.append(await self.sap_reconciliation())
        return results

    async def sap_amendment(self) -> StoryResult:
        title = "SAP: a DE01 customer adds 2 seats, booked in SAP S/4HANA"
        d = self.demo
        d.on_story(title)
        name = "berlin"
        # SAP keeps the billing customer id in a 20-character field: a Stripe id fits, so
        # must the demo's (cus_ and 14 characters, as Stripe's own).
        account, subscription = f"cus_{d.run_id}{name}", f"sub_demo_{d.run_id}_{name}"
        start, end = _month_bounds(d.today)
        d.control.seed(
            customer={
                "id": account,
                "name": "Berlin Analytics GmbH",
                "email": "buchhaltung@berlin.example",
                "legal_entity": SAP_ENTITY,
                "address": {
                    "line1": "Unter den Linden 1",
                    "city": "Berlin",
                    "region": "BE",
                    "postal_code": "10117",
                    "country": "DE",
                },
            },
            subscription={
                "id": subscription,
                "contract_id": f"C-{d.run_id}-{name}",
                "currency": "EUR",
                "items": [{"product": "seats", "description": "Platform seat", "quantity": 10, "unit_price": "45.00"}],
                "current_period_start": start.isoformat(),
                "current_period_end": end.isoformat(),
                "term_start": date(start.year, 1, 1).isoformat(),
                "term_end": date(start.year + 1, 1, 1).isoformat(),
            },
        )
        request = AmendmentRequest(
            amendment_id=f"DEMO-{d.run_id}-{name}",
            contract_id=f"C-{d.run_id}-{name}",
            subscription_id=subscription,
            account_id=account,
            currency="EUR",
            effective_date=d.today,
            requested_by="sam.sales",
            lines=[AmendedLine(product="seats", quantity=12, unit_price=Decimal("45.00"))],
            reason="demo: a DE01 customer, booked in SAP",
        )
        handle = await o2c.start_amendment(d.client, request, billing=d.billing, task_queue=d.settings.task_queue)
        result = await handle.result()
        entry = await self._read_back(f"{handle.id}-invoice")
        where = (
            f"invoice entry in SAP company code {entry.subsidiary} ({entry.internal_id})"
            if entry
            else "no invoice entry in SAP"
        )
        return StoryResult(
            story=title,
            workflow_id=handle.id,
            status=result.status.value,
            outcome=result.status.value if entry or result.invoice_total is None else "not booked in SAP",
            message=f"{result.message}; {where}",
            amount=f"net {result.net}" + (f", invoice {result.invoice_total}" if result.invoice_total else ""),
            ui=d.ui(handle.id),
            expected="completed",
            process="amendment",
        )

    async def revenue_posting(self, entity: LegalEntity) -> StoryResult:
        """Last month's revenue of a contract of this run, recognised by its schedule and
        posted in the entity's ERP as the month-end schedule would."""
        erp = ERP_NAMES[entity.erp]
        title = f"revenue posted: {entity.code}'s {self.last_month} in {erp}"
        d = self.demo
        d.on_story(title)
        amount = Money.of("1500.00" if entity.erp == "sap" else "3100.00", entity.functional_currency)
        await self._recognise(entity, amount)
        handle = await start_revenue_posting(
            d.client, legal_entity=entity.code, period=self.last_month, task_queue=d.settings.task_queue
        )
        result = await handle.result()
        posted = ", ".join(f"{e.external_id} ({e.revenue})" for e in result.entries) or "nothing posted"
        return StoryResult(
            story=title,
            workflow_id=handle.id,
            status=result.status.value,
            outcome=result.status.value,
            message=f"{result.message}; {posted}",
            amount=str(amount),
            ui=d.ui(handle.id),
            expected="completed",
            process="revenue_posting",
        )

    async def sap_reconciliation(self) -> StoryResult:
        entity = self.entity(SAP_ENTITY)
        title = f"reconciliation: DE01's {self.last_month} against SAP, revenue as posted"
        d = self.demo
        d.on_story(title)
        handle = await o2c.start_reconciliation(
            d.client, legal_entity=entity.code, period=self.last_month, task_queue=d.settings.task_queue
        )
        result = await handle.result()
        breaks = sum(result.found.values())
        return StoryResult(
            story=title,
            workflow_id=handle.id,
            status=result.status.value,
            outcome=f"{breaks} breaks",
            message=f"{result.message} (`o2c recon report {result.run_id}`)",
            amount=f"{entity.code} in {ERP_NAMES[entity.erp]}",
            ui=d.ui(handle.id),
            expected="0 breaks",
            process="reconciliation",
        )

    async def _recognise(self, entity: LegalEntity, amount: Money) -> None:
        start, end = period_bounds(self.last_month)
        contract = f"C-{self.demo.run_id}-{entity.code}-revenue"
        store = SqlRevenueSchedules(self.demo.settings.database_url)
        try:
            await store.save_schedule(
                ratable_schedule(
                    schedule_id=f"{contract}-subscription",
                    contract_id=contract,
                    account_id=f"cus_demo_{self.demo.run_id}_{entity.code.lower()}",
                    legal_entity=entity.code,
                    obligation="subscription",
                    total=amount,
                    start=start,
                    end=end,
                )
            )
        finally:
            await store.aclose()

    async def _read_back(self, external_id: str) -> Any:
        erp = routed_erp(list(self.entities.values()), **self.demo.settings.erp_access)
        try:
            return await erp.erps["sap"].get_journal_entry(external_id)
        finally:
            await erp.aclose()
