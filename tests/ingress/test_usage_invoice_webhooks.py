"""Usage invoices through POST /webhooks/stripe: billing's draft and its failed finalisation
become signals to the subscription period's usage release."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from temporalio.api.enums.v1 import EventType

from tests.ingress.test_stripe_ingress import event, history_events, post, terminated_afterwards
from tests.workflows.usage_world import release_input
from workflows.usage import UsageReleaseWorkflow, usage_workflow_id

OCTOBER = int(datetime(2026, 10, 1, tzinfo=UTC).timestamp()), int(datetime(2026, 11, 1, tzinfo=UTC).timestamp())


def usage_invoice(invoice_id: str, subscription_id: str, *, metered: bool = True, **overrides) -> dict:
    start, end = OCTOBER
    line = {
        "id": f"il_{uuid.uuid4().hex[:8]}",
        "object": "line_item",
        "amount": 10000,
        "currency": "usd",
        "quantity": 10000,
        "period": {"start": start, "end": end},
        "price": {
            "id": "price_api",
            "recurring": {"interval": "month", "usage_type": "metered" if metered else "licensed"},
        },
    }
    return {
        "id": invoice_id,
        "object": "invoice",
        "customer": "cus_acme",
        "subscription": subscription_id,
        "currency": "usd",
        "status": "draft",
        "lines": {"object": "list", "data": [line], "has_more": False},
        **overrides,
    }


async def started_release(ingress, ingress_env, subscription_id: str) -> str:
    """A release waiting for its worker (the ingress tests run none): its history shows the signals."""
    workflow_id = usage_workflow_id(subscription_id, "2026-10")
    await ingress_env.client.start_workflow(
        UsageReleaseWorkflow.run, release_input(subscription_id), id=workflow_id, task_queue=ingress.task_queue
    )
    return workflow_id


async def test_a_draft_of_a_metered_invoice_signals_its_release(ingress, ingress_env):
    subscription_id = f"sub_{uuid.uuid4().hex[:8]}"
    workflow_id = await started_release(ingress, ingress_env, subscription_id)
    async with terminated_afterwards(ingress_env.client, workflow_id):
        response = await post(ingress, event("invoice.created", usage_invoice("in_draft", subscription_id)))
        assert response.status_code == 200, response.text
        assert response.json() == {"received": True, "workflows": [workflow_id]}
        failed = usage_invoice(
            "in_draft",
            subscription_id,
            last_finalization_error={"code": "failed_tax_calculation", "message": "the customer has no location"},
        )
        response = await post(ingress, event("invoice.finalization_failed", failed))
        assert response.json() == {"received": True, "workflows": [workflow_id]}
        history = await ingress_env.client.get_workflow_handle(workflow_id).fetch_history()
        signals = [
            e.workflow_execution_signaled_event_attributes
            for e in history.events
            if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
        ]
        assert [s.signal_name for s in signals] == ["draft_ready", "finalization_failed"]
        assert b"the customer has no location" in signals[1].input.payloads[0].data


async def test_newer_api_versions_name_the_subscription_on_the_parent(ingress, ingress_env):
    subscription_id = f"sub_{uuid.uuid4().hex[:8]}"
    workflow_id = await started_release(ingress, ingress_env, subscription_id)
    async with terminated_afterwards(ingress_env.client, workflow_id):
        invoice = usage_invoice(
            "in_draft",
            subscription_id,
            subscription=None,
            parent={"subscription_details": {"subscription": subscription_id}},
        )
        response = await post(ingress, event("invoice.created", invoice))
        assert response.json() == {"received": True, "workflows": [workflow_id]}


async def test_a_draft_before_its_release_exists_is_acknowledged(ingress, ingress_env):
    subscription_id = f"sub_{uuid.uuid4().hex[:8]}"
    response = await post(ingress, event("invoice.created", usage_invoice("in_early", subscription_id)))
    assert response.status_code == 200
    assert response.json() == {"received": True, "workflows": []}  # the release polls for it


async def test_an_invoice_without_metered_lines_is_ignored(ingress, ingress_env):
    subscription_id = f"sub_{uuid.uuid4().hex[:8]}"
    workflow_id = await started_release(ingress, ingress_env, subscription_id)
    async with terminated_afterwards(ingress_env.client, workflow_id):
        seats = usage_invoice("in_seats", subscription_id, metered=False)
        response = await post(ingress, event("invoice.created", seats))
        assert response.json() == {"received": True, "workflows": []}
        events = await history_events(ingress_env.client, workflow_id)
        assert EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED not in events


async def test_a_metered_invoice_without_a_period_or_subscription_is_refused(ingress):
    broken = usage_invoice("in_broken", "sub_x")
    broken["lines"]["data"][0]["period"] = {"end": OCTOBER[1]}
    response = await post(ingress, event("invoice.created", broken))
    assert response.status_code == 400 and "period.start" in response.json()["reason"]
    orphan = usage_invoice("in_orphan", "", subscription=None)
    response = await post(ingress, event("invoice.created", orphan))
    assert response.status_code == 400 and "no subscription" in response.json()["reason"]
