"""POST /webhooks/stripe over real HTTP against a time-skipping Temporal server."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from contextlib import asynccontextmanager
from datetime import timedelta

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment

from adapters.errors import TransientError
from adapters.stripe_webhooks import sign
from adapters.temporal import register_search_attributes
from canonical.approval import ApprovalPolicy
from canonical.models import Approver, ApproverRole
from starter import binaries
from tests.ingress.ingress_kit import SECRET, serve
from workflows.dunning import DunningInput
from workflows.kit.status import INVOICE, PROCESS, SEARCH_ATTRIBUTES


def event(type_: str, obj: dict, *, event_id: str | None = None, previous: dict | None = None) -> bytes:
    data: dict = {"object": obj}
    if previous is not None:
        data["previous_attributes"] = previous
    return json.dumps(
        {
            "id": event_id or f"evt_{uuid.uuid4().hex[:14]}",
            "object": "event",
            "api_version": "2024-06-20",
            "created": int(time.time()),
            "livemode": False,
            "type": type_,
            "data": data,
        }
    ).encode()


def failed_invoice(invoice_id: str, **overrides) -> dict:
    return {
        "id": invoice_id,
        "object": "invoice",
        "customer": "cus_Acme",
        "subscription": "sub_Acme",
        "currency": "usd",
        "amount_due": 120000,
        "amount_remaining": 120000,
        "status": "open",
        "charge": "ch_1",
        "last_payment_error": {"decline_code": "insufficient_funds"},
        **overrides,
    }


def new_invoice_id() -> str:
    return f"in_{uuid.uuid4().hex[:12]}"


async def post(
    ingress,
    body: bytes,
    *,
    secret: str = SECRET,
    timestamp: int | None = None,
    header: str | None = "sign",
    signed_body: bytes | None = None,
):
    headers = {"Content-Type": "application/json"}
    if header == "sign":
        header = sign(
            signed_body if signed_body is not None else body,
            secret,
            timestamp if timestamp is not None else int(time.time()),
        )
    if header is not None:
        headers["Stripe-Signature"] = header
    return await ingress.http.post("/webhooks/stripe", content=body, headers=headers)


async def exists(client: Client, workflow_id: str) -> bool:
    try:
        await client.get_workflow_handle(workflow_id).describe()
        return True
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND:
            return False
        raise


async def history_events(client: Client, workflow_id: str) -> list[EventType.ValueType]:
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    return [e.event_type for e in history.events]


@asynccontextmanager
async def terminated_afterwards(client: Client, *workflow_ids: str):
    try:
        yield
    finally:
        for workflow_id in workflow_ids:
            try:
                await client.get_workflow_handle(workflow_id).terminate(reason="test over")
            except RPCError:
                pass


async def test_signed_payment_failed_starts_the_invoice_dunning(ingress, ingress_env):
    client = ingress_env.client
    invoice_id = new_invoice_id()
    async with terminated_afterwards(client, f"dunning-{invoice_id}"):
        response = await post(ingress, event("invoice.payment_failed", failed_invoice(invoice_id)))
        assert response.status_code == 200, response.text
        assert response.json() == {"received": True, "workflows": [f"dunning-{invoice_id}"]}
        described = await client.get_workflow_handle(f"dunning-{invoice_id}").describe()
        assert described.workflow_type == "DunningWorkflow"
        assert described.status == WorkflowExecutionStatus.RUNNING
        assert described.task_queue == ingress.task_queue
        assert described.typed_search_attributes.get(PROCESS) == "dunning"
        assert described.typed_search_attributes.get(INVOICE) == invoice_id
        events = await history_events(client, f"dunning-{invoice_id}")
        assert events.count(EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED) == 1


async def test_a_new_dunning_asks_its_approvals_by_the_policy_the_ingress_was_given(ingress_env):
    """Who approves a restriction or write-off and how long it waits come from the ingress's
    approval policy (the settings', in `o2c ingress` and `o2c dev`), not a default."""
    windows = ApprovalPolicy(
        escalate_after=timedelta(minutes=2),
        expire_after=timedelta(minutes=10),
        approvers=[
            Approver(name="ana", role=ApproverRole.FINANCE),
            Approver(name="carl", role=ApproverRole.CONTROLLER),
        ],
    )
    client = ingress_env.client
    invoice_id = new_invoice_id()
    async with serve(client, approvals=windows) as ingress, terminated_afterwards(client, f"dunning-{invoice_id}"):
        response = await post(ingress, event("invoice.payment_failed", failed_invoice(invoice_id)))
        assert response.status_code == 200, response.text
        history = await client.get_workflow_handle(f"dunning-{invoice_id}").fetch_history()
        started = history.events[0].workflow_execution_started_event_attributes
        [given] = pydantic_data_converter.payload_converter.from_payloads(started.input.payloads, [DunningInput])
        assert isinstance(given, DunningInput) and given.approvals == windows


async def test_the_same_event_delivered_five_times_gives_one_workflow(ingress, ingress_env):
    client = ingress_env.client
    invoice_id = new_invoice_id()
    workflow_id = f"dunning-{invoice_id}"
    body = event("invoice.payment_failed", failed_invoice(invoice_id), event_id="evt_redelivered")
    async with terminated_afterwards(client, workflow_id):
        first = await post(ingress, body)
        assert first.status_code == 200, first.text
        run_id = (await client.get_workflow_handle(workflow_id).describe()).run_id
        # Stripe redelivers at least once, sometimes concurrently, each time signed anew.
        later = [await post(ingress, body), *await asyncio.gather(*(post(ingress, body) for _ in range(3)))]
        assert [r.status_code for r in later] == [200] * 4
        assert all(r.json()["workflows"] == [workflow_id] for r in later)
        assert (await client.get_workflow_handle(workflow_id).describe()).run_id == run_id
        events = await history_events(client, workflow_id)
        assert events.count(EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED) == 1
        # Every delivery reaches the one workflow, which ignores event IDs it has seen.
        assert events.count(EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED) == 5


@pytest.mark.parametrize("case", ["tampered", "wrong_secret", "stale", "future", "missing", "malformed", "v0_only"])
async def test_bad_signatures_answer_400_and_start_nothing(ingress, ingress_env, case):
    invoice_id = new_invoice_id()
    body = event("invoice.payment_failed", failed_invoice(invoice_id))
    now = int(time.time())
    kwargs = {
        "tampered": dict(signed_body=body.replace(b"120000", b"100")),
        "wrong_secret": dict(secret="whsec_not_ours"),
        "stale": dict(timestamp=now - 301),
        "future": dict(timestamp=now + 400),
        "missing": dict(header=None),
        "malformed": dict(header="t=abc,v1=zz"),
        "v0_only": dict(header=sign(body, SECRET, now).replace("v1=", "v0=")),
    }[case]
    response = await post(ingress, body, **kwargs)
    assert response.status_code == 400
    assert response.json()["received"] is False
    assert response.json()["error"] == "invalid_signature"
    assert response.json()["reason"]
    assert not await exists(ingress_env.client, f"dunning-{invoice_id}")


@pytest.mark.parametrize("body", [b"{not json", b"[]", b'{"id": "evt_1", "type": "invoice.payment_failed"}'])
async def test_signed_body_that_is_not_an_event_answers_400(ingress, body):
    response = await post(ingress, body)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_event"


async def test_handled_event_missing_what_dunning_needs_answers_400_and_starts_nothing(ingress, ingress_env):
    invoice_id = new_invoice_id()
    response = await post(ingress, event("invoice.payment_failed", failed_invoice(invoice_id, currency="xxx")))
    assert response.status_code == 400
    assert not await exists(ingress_env.client, f"dunning-{invoice_id}")


async def test_oversized_body_answers_413(ingress, ingress_env):
    invoice_id = new_invoice_id()
    body = event("invoice.payment_failed", failed_invoice(invoice_id, description="x" * 20_000))
    response = await post(ingress, body)
    assert response.status_code == 413
    assert response.json()["error"] == "too_large"

    async def chunks():  # no Content-Length: the limit holds while streaming
        for start in range(0, len(body), 4096):
            yield body[start : start + 4096]

    streamed = await ingress.http.post(
        "/webhooks/stripe", content=chunks(), headers={"Stripe-Signature": sign(body, SECRET, int(time.time()))}
    )
    assert streamed.status_code == 413
    assert not await exists(ingress_env.client, f"dunning-{invoice_id}")


async def test_ignored_types_are_acknowledged(ingress):
    response = await post(ingress, event("invoice.finalized", {"id": "in_1", "object": "invoice"}))
    assert response.status_code == 200
    assert response.json() == {"received": True, "workflows": []}


async def test_payment_of_an_invoice_nobody_chases_starts_nothing(ingress, ingress_env):
    invoice_id = new_invoice_id()
    paid = failed_invoice(invoice_id, amount_remaining=0, status="paid")
    response = await post(ingress, event("invoice.paid", paid))
    assert response.status_code == 200
    assert response.json() == {"received": True, "workflows": []}
    assert not await exists(ingress_env.client, f"dunning-{invoice_id}")


async def test_paid_and_dispute_events_feed_the_running_dunning(ingress, ingress_env):
    client = ingress_env.client
    invoice_id = new_invoice_id()
    workflow_id = f"dunning-{invoice_id}"
    dispute_id = f"dp_{uuid.uuid4().hex[:10]}"
    ingress.billing.charges["ch_disputed"] = invoice_id
    async with terminated_afterwards(client, workflow_id, f"dispute-{dispute_id}"):
        assert (await post(ingress, event("invoice.payment_failed", failed_invoice(invoice_id)))).status_code == 200
        dispute = {
            "id": dispute_id,
            "object": "dispute",
            "amount": 120000,
            "currency": "usd",
            "charge": "ch_disputed",
            "status": "needs_response",
        }
        opened = await post(ingress, event("charge.dispute.created", dispute))
        # The dispute's own workflow, and the dunning as before.
        assert opened.json() == {"received": True, "workflows": [f"dispute-{dispute_id}", workflow_id]}
        paid = await post(ingress, event("invoice.paid", failed_invoice(invoice_id, amount_remaining=0)))
        assert paid.json() == {"received": True, "workflows": [workflow_id]}
        events = await history_events(client, workflow_id)
        assert events.count(EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED) == 3


async def test_billing_outage_during_a_dispute_lookup_answers_503(ingress):
    ingress.billing.failure = TransientError("stripe", "connection refused")
    dispute = {
        "id": "dp_2",
        "object": "dispute",
        "amount": 100,
        "currency": "usd",
        "charge": "ch_2",
        "status": "needs_response",
    }
    response = await post(ingress, event("charge.dispute.created", dispute))
    assert response.status_code == 503
    assert response.json()["error"] == "billing_unavailable"


async def test_temporal_going_away_answers_503_so_stripe_redelivers():
    environment = await WorkflowEnvironment.start_time_skipping(
        data_converter=pydantic_data_converter, test_server_existing_path=binaries.test_server_binary()
    )
    await register_search_attributes(environment.client, "default", SEARCH_ATTRIBUTES)
    async with serve(environment.client, delivery_timeout=2.0) as running:
        await environment.shutdown()
        started = time.monotonic()
        response = await post(running, event("invoice.payment_failed", failed_invoice(new_invoice_id())))
        assert response.status_code == 503, response.text
        assert response.json()["error"] == "temporal_unavailable"
        assert time.monotonic() - started < 10


async def test_temporal_never_reached_answers_503(unused_port):
    dead = await Client.connect(f"127.0.0.1:{unused_port}", lazy=True, data_converter=pydantic_data_converter)
    async with serve(dead, delivery_timeout=2.0) as running:
        response = await post(running, event("invoice.payment_failed", failed_invoice(new_invoice_id())))
        assert response.status_code == 503, response.text
        assert response.json()["error"] == "temporal_unavailable"


async def test_healthz(ingress):
    response = await ingress.http.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"ok": True}


async def test_only_post_is_served(ingress):
    assert (await ingress.http.get("/webhooks/stripe")).status_code == 405


@pytest.fixture
def unused_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
