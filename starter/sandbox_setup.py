"""Setting up a path through the sandbox the way a user would: seed customers and periods
from a file, close or open an ERP period, fix a customer's address in billing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from sandbox import SandboxControl
from settings import Settings
from starter.console import Refused


def read_spec(path: str) -> dict[str, Any]:
    try:
        spec = json.loads(Path(path).read_text())
    except OSError as error:
        raise Refused(f"cannot read {path}: {error.strerror}") from None
    except ValueError as error:
        raise Refused(f"{path} is not JSON: {error}") from None
    if not isinstance(spec, dict):
        raise Refused(f"{path} is not a JSON object")
    return spec


def seed(control: SandboxControl, path: str) -> dict[str, Any]:
    """Meters, a customer and/or a subscription (examples/seed.json, examples/usage-seed.json)."""
    spec = read_spec(path)
    unknown = sorted(set(spec) - {"meters", "customer", "subscription"})
    if unknown:
        raise Refused(f"{path}: unknown fields {', '.join(unknown)} (a seed has meters, a customer and a subscription)")
    return control.seed(customer=spec.get("customer"), subscription=spec.get("subscription"), meters=spec.get("meters"))


def seed_period(control: SandboxControl, path: str) -> dict[str, Any]:
    """A whole reconciliation period, with breaks (examples/recon-period.json)."""
    return control.seed_period(**read_spec(path))


async def update_customer_address(settings: Settings, customer_id: str, address: dict[str, str]) -> dict[str, Any]:
    """What an analyst does in Stripe's dashboard: correct the customer master's address."""
    async with httpx.AsyncClient(base_url=settings.stripe_base_url, timeout=settings.http_timeout_seconds) as stripe:
        response = await stripe.post(
            f"/customers/{customer_id}",
            data={f"address[{field}]": value for field, value in address.items()},
            headers={"Authorization": f"Bearer {settings.stripe_api_key}"},
        )
        if response.status_code == 404:
            raise Refused(f"billing has no customer {customer_id}")
        response.raise_for_status()
        customer: dict[str, Any] = response.json()
        return customer
