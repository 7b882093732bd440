"""Dunning since o2c-cash: the card networks' limit counted per card across invoices, the new
hard declines, write-offs by the write-off policy, and a currency the policy does not state."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import cast

import pytest
from temporalio.client import WorkflowExecutionStatus
from temporalio.worker import Worker

from activities.registry import all_activities
from adapters.ports import CashStorePort
from canonical.dunning import DunningPolicies, DunningPolicy
from canonical.journal import ChartOfAccounts, WriteOffMethod, WriteOffPolicy
from canonical.models import ApproverRole, Invoice, InvoiceLine, PaymentEvent, PaymentEventKind
from canonical.money import Money
from starter.client import deliver_payment_event
from tests.fakes import usd
from tests.fakes_cards import FakeCardLedger
from tests.workflows.test_dunning import Dunning
from workflows.dunning import DunningOutcome
from workflows.kit.status import Status
from workflows.registry import ALL_WORKFLOWS

CARD = "fp_visa_4242"
CHART = ChartOfAccounts()
# Ten retries in the first ten days: more than the card allows once other invoices used it.
EAGER = DunningPolicy(retry_days=list(range(1, 11)), notice_days=[0])


@pytest.fixture
def cards() -> FakeCardLedger:
    return FakeCardLedger()


STARTED: list[PolicyDunning] = []


@pytest.fixture
async def card_worker(env, systems, reconciliations, cards):
    task_queue = f"tq-{uuid.uuid4()}"
    systems.reconciliations = reconciliations
    activities = all_activities(**systems.ports(), cash=cast(CashStorePort, cards))
    async with Worker(env.client, task_queue=task_queue, workflows=ALL_WORKFLOWS, activities=activities):
        yield task_queue
        # A dunning left waiting would wake on the shared server whenever a later test skips
        # time, with no worker left for its task queue: end them with the test.
        while STARTED:
            d = STARTED.pop()
            if (await d.handle.describe()).status == WorkflowExecutionStatus.RUNNING:
                await d.handle.terminate(reason="test over")


def open_invoice(systems, invoice_id: str, *, card: str = CARD, **fields) -> str:
    values = dict(
        id=invoice_id,
        account_id="cus_acme",
        subscription_id="sub_acme",
        status="open",
        currency="USD",
        total=usd("500.00"),
        amount_paid=usd("0.00"),
        amount_remaining=usd("500.00"),
        payment_method=card,
    )
    values.update(fields)
    systems.billing.invoices[invoice_id] = Invoice(**values)
    return invoice_id


class PolicyDunning(Dunning):
    """A dunning started under a given policy."""

    def __init__(self, env, task_queue, invoice_id, policies: DunningPolicies):
        super().__init__(env, task_queue, invoice_id)
        self.policies = policies
        STARTED.append(self)

    async def fail(self, **fields) -> None:
        self.sent += 1
        event = PaymentEvent(
            event_id=f"evt_{self.invoice_id}_{self.sent}",
            kind=PaymentEventKind.PAYMENT_FAILED,
            occurred_at=await self.now(),
            invoice_id=self.invoice_id,
            account_id="cus_acme",
            subscription_id="sub_acme",
            **fields,
        )
        await deliver_payment_event(self.env.client, event, task_queue=self.task_queue, policies=self.policies)


async def now_of(env) -> datetime:
    return datetime.fromtimestamp((await env.get_current_time()).timestamp(), UTC)


async def test_the_card_limit_holds_across_the_invoices_charged_to_it(env, card_worker, systems, cards):
    # Another invoice's dunning tried the card 12 times this month: 3 attempts are left for this one.
    cards.seed(CARD, await now_of(env) - timedelta(days=2), 12)
    invoice = open_invoice(systems, f"in_{uuid.uuid4().hex[:8]}")
    d = PolicyDunning(env, card_worker, invoice, DunningPolicies(default=EAGER))
    await d.fail(decline_code="insufficient_funds", amount_remaining=usd("500.00"))
    await d.days(11)
    state = await d.state()
    assert state.card == CARD
    assert systems.ledger.count("billing.retry_payment") == 3
    assert len(state.attempts) == 3 and state.card_limited == [f"retry-day-{n}" for n in range(4, 11)]
    assert sum(1 for c, _ in cards.attempts.values() if c == CARD) == 15
    assert any("the card network's limit" in e.text for e in state.events)


async def test_two_dunnings_racing_for_the_last_attempt_make_one(env, card_worker, systems, cards):
    cards.seed(CARD, await now_of(env) - timedelta(hours=1), 14)
    policies = DunningPolicies(default=DunningPolicy(retry_days=[1], notice_days=[0]))
    dunnings = [
        PolicyDunning(env, card_worker, open_invoice(systems, f"in_{uuid.uuid4().hex[:8]}"), policies) for _ in range(2)
    ]
    await asyncio.gather(*(d.fail(decline_code="insufficient_funds") for d in dunnings))
    await dunnings[0].days(2)
    states = [await d.state() for d in dunnings]
    assert systems.ledger.count("billing.retry_payment") == 1
    assert sorted(len(s.card_limited) for s in states) == [0, 1]
    assert len(cards.refused) == 1


async def test_an_invoice_without_a_known_card_counts_its_own_attempts(env, card_worker, systems, cards):
    invoice = open_invoice(systems, f"in_{uuid.uuid4().hex[:8]}", card="")
    d = PolicyDunning(env, card_worker, invoice, DunningPolicies(default=EAGER))
    await d.fail(decline_code="insufficient_funds")
    await d.days(11)
    assert systems.ledger.count("billing.retry_payment") == 10 and not cards.attempts


@pytest.mark.parametrize("code", ["transaction_not_allowed", "revocation_of_all_authorizations"])
async def test_the_new_hard_declines_stop_the_retries(env, card_worker, systems, code):
    invoice = open_invoice(systems, f"in_{uuid.uuid4().hex[:8]}", last_decline_code=code)
    d = PolicyDunning(env, card_worker, invoice, DunningPolicies())
    await d.fail(decline_code=code)
    await d.days(8)
    state = await d.state()
    assert state.hard_declined and systems.ledger.count("billing.retry_payment") == 0


async def test_a_write_off_against_the_allowance_credits_service_after_cancellation_and_relieves_tax(
    env, card_worker, systems
):
    # A year billed ahead (1,200.00 + 84.00 tax) from 10 days ago; the customer is in
    # California, where the policy relieves the tax. Nothing is paid; the dunning cancels on day 30.
    today = (await env.get_current_time()).date()
    year = InvoiceLine(
        product="seats",
        description="Seats, one year",
        amount=usd("1200.00"),
        period_start=today - timedelta(days=10),
        period_end=today + timedelta(days=355),
    )
    tax = InvoiceLine(product="tax", description="Sales tax", amount=usd("84.00"))
    invoice = open_invoice(
        systems,
        f"in_{uuid.uuid4().hex[:8]}",
        total=usd("1284.00"),
        amount_remaining=usd("1284.00"),
        tax=usd("84.00"),
        lines=[year, tax],
    )
    write_off = WriteOffPolicy(method=WriteOffMethod.ALLOWANCE, tax_relief_jurisdictions=["US-CA"])
    d = PolicyDunning(env, card_worker, invoice, DunningPolicies(default=DunningPolicy(write_off=write_off)))
    await d.fail(decline_code="insufficient_funds", amount_remaining=usd("1284.00"))
    await d.days(21.2)
    await d.until(Status.AWAITING_APPROVAL)
    await d.decide("fiona.finance", ApproverRole.FINANCE)
    await d.days(9)
    asked = await d.until(Status.AWAITING_APPROVAL)
    assert "1,068.49 USD" in asked.approval.request.reasons[0]
    await d.decide("carla.controller", ApproverRole.CONTROLLER)
    result = await d.result()

    assert result.outcome == DunningOutcome.WRITTEN_OFF
    entry = systems.erp.entries[result.write_off_entry]
    debits: dict[str, Money] = {}
    for line in entry.lines:
        if line.debit:
            debits[line.account] = debits.get(line.account, Money.zero("USD")) + line.debit
    # Cancelled on day 30: 325 of the 365 days unserved. 1,200 x 325/365 = 1,068.49 reverses
    # deferred revenue with its tax (74.79); the served 131.51 goes against the allowance and
    # its tax (9.21) is relieved.
    assert debits == {
        CHART.deferred_revenue: usd("1068.49"),
        CHART.tax_payable: usd("84.00"),
        CHART.allowance_doubtful: usd("131.51"),
    }
    assert [(x.account, x.credit) for x in entry.lines if x.credit] == [(CHART.receivable, usd("1284.00"))]
    assert systems.billing.invoices[invoice].status == "uncollectible"


async def test_an_arr_in_a_currency_the_policy_does_not_state_is_refused(env, card_worker, systems):
    account = systems.billing.accounts["cus_acme"]
    systems.billing.accounts["cus_acme"] = account.model_copy(
        update={"annual_recurring_revenue": Money.of("250000", "CHF")}
    )
    invoice = open_invoice(systems, f"in_{uuid.uuid4().hex[:8]}")
    d = PolicyDunning(env, card_worker, invoice, DunningPolicies())
    await d.fail(decline_code="insufficient_funds")
    result = await d.result()
    assert result.outcome == DunningOutcome.OPEN
    assert "no strategic ARR threshold in CHF" in result.message
    assert systems.ledger.count("billing.retry_payment") == 0 and not systems.erp.cases


async def test_the_fake_ledger_reserves_atomically_and_idempotently():
    ledger = FakeCardLedger()
    now = datetime(2027, 1, 1, tzinfo=UTC)
    ledger.seed("fp_1", now - timedelta(days=1), 14)
    ledger.seed("fp_1", now - timedelta(days=31), 5, prefix="old")  # outside the window
    won = await asyncio.gather(*(ledger.reserve_card_attempt("fp_1", f"k{i}", at=now, limit=15) for i in range(3)))
    assert sorted(won) == [False, False, True]
    assert await ledger.reserve_card_attempt("fp_1", f"k{won.index(True)}", at=now, limit=15)
    assert await ledger.reserve_card_attempt("fp_2", "other-card", at=now, limit=15)
