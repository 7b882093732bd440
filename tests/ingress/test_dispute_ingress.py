"""Disputes at the webhook ingress over real HTTP: every `charge.dispute.*` event starts or
feeds `dispute-<id>` (a worker runs it here, over the credit fakes), the invoice's dunning
still hears of it, and the dunning pauses and resumes once per dispute although both the
ingress and the dispute's workflow tell it."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from temporalio.client import WorkflowExecutionStatus
from temporalio.worker import Worker

from activities.registry import all_activities
from adapters.errors import BusinessError
from canonical.models import Account, Address, Invoice
from canonical.money import Money
from tests.fakes import FakeSystems
from tests.fakes_credits import CreditSystems
from tests.ingress.ingress_kit import Ingress, serve
from tests.ingress.test_stripe_ingress import event, exists, failed_invoice, post, terminated_afterwards
from workflows.dispute import DisputeOutcome, DisputeResult, DisputeState, DisputeWorkflow
from workflows.dunning import DunningState, DunningWorkflow
from workflows.kit.attention import OperatorAction, ResolveInput
from workflows.kit.status import Status
from workflows.registry import ALL_WORKFLOWS

CUSTOMER = "cus_Acme"


@dataclass
class World:
    ingress: Ingress
    systems: FakeSystems
    invoice_id: str
    charge_id: str
    dispute_id: str

    @property
    def workflow_id(self) -> str:
        return f"dispute-{self.dispute_id}"

    def dispute(self, status: str = "needs_response") -> dict:
        return {
            "id": self.dispute_id,
            "object": "dispute",
            "amount": 120000,
            "currency": "usd",
            "charge": self.charge_id,  # an id, as Stripe sends it: the invoice is looked up
            "reason": "fraudulent",
            "status": status,
            "evidence_details": {"due_by": int(time.time()) + 10 * 86400},
            "balance_transactions": [{"fee": 1500, "currency": "usd"}],
        }


@pytest.fixture
async def world(ingress_env) -> AsyncIterator[World]:
    """The ingress and a worker on its task queue, billing knowing the disputed charge's invoice."""
    systems = FakeSystems()
    systems.billing.accounts[CUSTOMER] = Account(
        id=CUSTOMER,
        name="Acme Corp",
        email="billing@acme.test",
        billing_address=Address(line1="1 Market St", city="San Francisco", region="CA", country="US"),
    )
    suffix = uuid.uuid4().hex[:10]
    invoice_id, charge_id = f"in_{suffix}", f"ch_{suffix}"
    usd = Money.of("1200.00", "USD")
    invoice = Invoice(
        id=invoice_id,
        account_id=CUSTOMER,
        status="open",
        currency="USD",
        total=usd,
        amount_paid=Money.zero("USD"),
        amount_remaining=usd,
    )
    systems.billing.invoices[invoice_id] = invoice
    credits = CreditSystems(systems)
    async with serve(ingress_env.client) as ingress:
        ingress.billing.charges[charge_id] = invoice_id
        ingress.billing.invoices[invoice_id] = invoice
        async with Worker(
            ingress_env.client,
            task_queue=ingress.task_queue,
            workflows=ALL_WORKFLOWS,
            activities=all_activities(**credits.ports()),
        ):
            world = World(ingress, systems, invoice_id, charge_id, f"dp_{suffix}")
            async with terminated_afterwards(ingress_env.client, world.workflow_id, f"dunning-{invoice_id}"):
                yield world


async def dispute_state(client, world: World, ready) -> DisputeState:
    handle = client.get_workflow_handle(world.workflow_id)
    for _ in range(1200):
        current = await handle.query(DisputeWorkflow.state, result_type=DisputeState)
        if ready(current):
            return current
        await asyncio.sleep(0.025)
    raise AssertionError(f"never ready; last {current.status}: {current.stage}")


async def dunning_state(client, world: World, ready) -> DunningState:
    handle = client.get_workflow_handle(f"dunning-{world.invoice_id}")
    for _ in range(1200):
        current = await handle.query(DunningWorkflow.state, result_type=DunningState)
        if ready(current):
            return current
        await asyncio.sleep(0.025)
    raise AssertionError(f"never ready; last {current.status}: {current.stage}")


def heard(state: DunningState, kind: str) -> list[str]:
    """The dunning's notes of the events of `kind` it acted on (one it has seen is not noted)."""
    return [e.text for e in state.events if e.text.startswith(f"received {kind} ")]


async def test_a_dispute_created_starts_its_workflow_with_the_invoice_and_customer(ingress_env, world):
    client = ingress_env.client
    created = event("charge.dispute.created", world.dispute(), event_id=f"evt_{uuid.uuid4().hex[:12]}")
    response = await post(world.ingress, created)
    assert response.status_code == 200, response.text
    # No dunning runs for the invoice: only the dispute's workflow.
    assert response.json() == {"received": True, "workflows": [world.workflow_id]}
    state = await dispute_state(client, world, lambda s: s.funds_withdrawn and s.evidence_task)
    assert state.dispute is not None
    assert (state.invoice_id, state.account_id) == (world.invoice_id, CUSTOMER)
    assert state.dispute.fee == Money.of("15.00", "USD")
    assert state.entries == [f"{world.workflow_id}-withdrawn"]


async def test_the_same_dispute_event_delivered_three_times_books_once(ingress_env, world):
    client = ingress_env.client
    created = event("charge.dispute.created", world.dispute(), event_id=f"evt_{uuid.uuid4().hex[:12]}")
    for _ in range(3):
        response = await post(world.ingress, created)
        assert response.json() == {"received": True, "workflows": [world.workflow_id]}
    state = await dispute_state(client, world, lambda s: s.evidence_task)
    assert len(state.seen_events) == 1 and state.entries == [f"{world.workflow_id}-withdrawn"]
    assert world.systems.ledger.count("erp.post_journal_entry") == 1
    assert world.systems.ledger.count("crm.create_task") == 1


async def test_a_dispute_closed_is_signalled_to_its_workflow_which_ends_it(ingress_env, world):
    client = ingress_env.client
    await post(world.ingress, event("charge.dispute.created", world.dispute()))
    await dispute_state(client, world, lambda s: s.evidence_task)
    withdrawn = await post(world.ingress, event("charge.dispute.funds_withdrawn", world.dispute()))
    assert withdrawn.json() == {"received": True, "workflows": [world.workflow_id]}
    closed = await post(world.ingress, event("charge.dispute.closed", world.dispute("won")))
    assert closed.json() == {"received": True, "workflows": [world.workflow_id]}
    result = await client.get_workflow_handle(world.workflow_id, result_type=DisputeResult).result()
    assert result.outcome == DisputeOutcome.WON
    assert result.entries == [f"{world.workflow_id}-withdrawn", f"{world.workflow_id}-reinstated"]
    # A late redelivery about the closed dispute changes nothing, and says so.
    late = await post(world.ingress, event("charge.dispute.closed", world.dispute("won")))
    assert late.json() == {"received": True, "workflows": []}


async def test_a_dispute_event_with_a_bad_signature_starts_nothing(ingress_env, world):
    body = event("charge.dispute.created", world.dispute())
    response = await post(world.ingress, body, secret="whsec_someone_else")
    assert response.status_code == 400 and response.json()["error"] == "invalid_signature"
    tampered = await post(world.ingress, body.replace(b"120000", b"999999"), signed_body=body)
    assert tampered.status_code == 400
    assert not await exists(ingress_env.client, world.workflow_id)


async def test_the_dunning_pauses_and_resumes_once_though_the_ingress_and_the_dispute_both_tell_it(ingress_env, world):
    """The dispute's workflow is held up posting the withdrawal (the ERP refuses until an
    operator retries) while the dispute opens and closes: the ingress pauses and resumes the
    dunning at once; the workflow's own pause and resume, coming after, are the same events
    and change nothing, so the dunning is not paused again after its dispute closed."""
    client = ingress_env.client
    failed = failed_invoice(world.invoice_id, customer=CUSTOMER, amount_due=120000, amount_remaining=120000)
    assert (await post(world.ingress, event("invoice.payment_failed", failed))).status_code == 200
    await dunning_state(client, world, lambda s: s.status == Status.RUNNING)
    world.systems.ledger.fail(
        "erp.post_journal_entry", BusinessError("netsuite", "period locked", code="FIXABLE", fixable=True)
    )

    opened = await post(world.ingress, event("charge.dispute.created", world.dispute()))
    assert opened.json() == {"received": True, "workflows": [world.workflow_id, f"dunning-{world.invoice_id}"]}
    await dunning_state(client, world, lambda s: s.paused)
    await dispute_state(client, world, lambda s: s.attention is not None)  # parked before it tells the dunning
    closed = await post(world.ingress, event("charge.dispute.closed", world.dispute("won")))
    assert closed.status_code == 200
    await dunning_state(client, world, lambda s: not s.paused and heard(s, "dispute_closed"))

    handle = client.get_workflow_handle(world.workflow_id, result_type=DisputeResult)
    await handle.execute_update(DisputeWorkflow.resolve, ResolveInput(action=OperatorAction.RETRY, operator="olga.ops"))
    assert (await handle.result()).outcome == DisputeOutcome.WON
    told = [e.text for e in (await handle.query(DisputeWorkflow.state, result_type=DisputeState)).events]
    assert any("dispute_opened" in m for m in told) and any("dispute_closed" in m for m in told)

    after = await dunning_state(client, world, lambda s: True)
    assert not after.paused
    assert heard(after, "dispute_opened") == [f"received dispute_opened (dispute-{world.dispute_id}-dispute_opened)"]
    assert heard(after, "dispute_closed") == [f"received dispute_closed (dispute-{world.dispute_id}-dispute_closed)"]
    assert (await client.get_workflow_handle(f"dunning-{world.invoice_id}").describe()).status == (
        WorkflowExecutionStatus.RUNNING
    )


async def test_the_ingress_and_the_dispute_workflow_pause_the_dunning_with_one_event(ingress_env, world):
    """In the usual order (the workflow tells the dunning after the ingress has), the
    workflow's pause carries the ingress's event ID and is ignored."""
    client = ingress_env.client
    failed = failed_invoice(world.invoice_id, customer=CUSTOMER, amount_due=120000, amount_remaining=120000)
    await post(world.ingress, event("invoice.payment_failed", failed))
    await dunning_state(client, world, lambda s: s.status == Status.RUNNING)
    await post(world.ingress, event("charge.dispute.created", world.dispute()))
    await dispute_state(client, world, lambda s: any("dunning of" in e.text for e in s.events))
    state = await dunning_state(client, world, lambda s: s.paused)
    assert heard(state, "dispute_opened") == [f"received dispute_opened (dispute-{world.dispute_id}-dispute_opened)"]
