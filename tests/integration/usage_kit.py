"""A metered customer on the real stack, for the usage end-to-end and chaos runs, set up with
the demo's own steps (starter/usage_setup.py): seeded in the sandbox's Stripe, synced into
o2c's master data, with earlier months of released usage, sending its events over HTTP."""

from __future__ import annotations

import uuid
from datetime import date, timedelta
from typing import Any

import httpx

from canonical.usage.models import period_end
from sandbox import SandboxControl
from settings import Settings
from starter import usage_setup
from starter.usage_ingress import USAGE_PATH
from workflows.usage import UsageReleaseInput

# Usage of the month just ended, as at a real period end.
PERIOD = usage_setup.usage_period(date.today())
METER = usage_setup.API_CALLS


class MeteredCustomer:
    def __init__(self, control: SandboxControl, settings: Settings, name: str = "usage", key: str = ""):
        self.control, self.settings = control, settings
        self.key = key or uuid.uuid4().hex[:8]
        self.customer = f"cus_{name}_{self.key}"
        self.subscription_id = f"sub_{name}_{self.key}"
        self.sent = 0  # what o2c accepted of it

    def seed(self) -> MeteredCustomer:
        usage_setup.seed_metered_customer(self.control, self.customer, self.subscription_id, PERIOD)
        return self

    def event(self, n: int, value: int, **changes: Any) -> dict[str, Any]:
        at = period_end(PERIOD) - timedelta(hours=1) + timedelta(seconds=n % 3000)
        return {
            "identifier": f"{self.key}-{n}",
            "meter": METER,
            "customer": self.customer,
            "value": value,
            "timestamp": at.isoformat(),
            **changes,
        }

    async def ready(self, settings: Settings, history: list[int]) -> str:
        """Master data synced, the earlier months recorded; returns an API key to send with."""
        policy = usage_setup.demo_policy(settings)
        await usage_setup.sync_master_data(settings, policy)
        await usage_setup.seed_history(
            settings, customer=self.customer, subscription_id=self.subscription_id, period=PERIOD, quantities=history
        )
        return await usage_setup.create_api_key(settings, f"platform-{self.key}")

    async def release_input(self, settings: Settings) -> UsageReleaseInput:
        return await usage_setup.release_input(settings, self.customer, PERIOD, usage_setup.demo_policy(settings))


async def send(ingress_url: str, api_key: str, events: list[dict[str, Any]]) -> httpx.Response:
    """One batch as a producer sends it, malformed events included: the raw answer."""
    async with httpx.AsyncClient(timeout=30) as http:
        return await http.post(
            ingress_url + USAGE_PATH, json={"events": events}, headers={"Authorization": f"Bearer {api_key}"}
        )
