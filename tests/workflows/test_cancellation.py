"""Cancelling a process that books something (`temporal workflow cancel`, or the client's
`cancel()`) undoes everything it had done, once, and only then does the workflow close as
cancelled: the compensations run to their end even though the cancellation interrupts the
workflow wherever it waits."""

from __future__ import annotations

from datetime import timedelta

import pytest
from temporalio.client import WorkflowFailureError, WorkflowHandle
from temporalio.exceptions import CancelledError

from adapters.errors import BusinessError
from tests.workflows.conftest import amendment
from tests.workflows.test_amendment import nothing_posted as no_amendment_booked
from tests.workflows.test_amendment import resolve
from tests.workflows.test_amendment import start as start_amendment
from tests.workflows.test_amendment import state as amendment_state
from tests.workflows.test_amendment import until as amendment_until
from tests.workflows.test_reconciliation_workflow import book
from tests.workflows.test_reconciliation_workflow import start as start_reconciliation
from tests.workflows.test_reconciliation_workflow import state as reconciliation_state
from tests.workflows.test_reconciliation_workflow import until as reconciliation_until
from tests.workflows.test_renewal import nothing_posted as no_renewal_booked
from tests.workflows.test_renewal import renewal, until_waiting
from tests.workflows.test_renewal import start as start_renewal
from tests.workflows.test_renewal import state as renewal_state
from workflows.kit.attention import OperatorAction
from workflows.kit.status import Status


def fixable(system: str, message: str) -> BusinessError:
    return BusinessError(system, message, code="FIXABLE", fixable=True)


async def cancelled(handle: WorkflowHandle) -> None:
    """Cancel, and wait until Temporal closes the workflow as cancelled."""
    await handle.cancel()
    with pytest.raises(WorkflowFailureError) as closed:
        await handle.result()
    assert isinstance(closed.value.cause, CancelledError), closed.value.cause


def reversals_of(systems, external_id: str) -> list:
    return [e for e in systems.erp.entries.values() if e.reverses == external_id]


# -- amendments ------------------------------------------------------------------------------------


async def test_an_amendment_cancelled_while_awaiting_approval_books_nothing(env, worker, systems):
    handle = await start_amendment(env, worker, amendment(quantity=100))  # above the controller threshold
    await amendment_until(handle, Status.AWAITING_APPROVAL)
    await cancelled(handle)
    assert no_amendment_booked(systems)


async def test_an_amendment_cancelled_after_booking_undoes_every_step_once(env, worker, systems):
    systems.ledger.fail("entitlements.set_seats", fixable("entitlements", "the seat service refused the change"))
    handle = await start_amendment(env, worker, amendment(quantity=12))
    parked = await amendment_until(handle, Status.NEEDS_ATTENTION)  # invoiced, taxed and posted by now
    assert parked.attention.step.startswith("entitlement")
    await cancelled(handle)

    final = await amendment_state(handle)
    assert final.status == Status.ROLLED_BACK and "cancelled" in final.stage
    assert final.compensated == [
        "entitlement seats",
        "revenue schedules",
        "journal entry",
        "tax document",
        "invoice",
        "subscription",
    ]
    [invoice] = systems.billing.invoices.values()
    assert invoice.status == "void"
    assert [d.status for d in systems.tax.documents.values()] == ["Cancelled"]
    [original] = [e for e in systems.erp.entries.values() if not e.reverses]
    assert len(reversals_of(systems, original.external_id)) == 1
    assert systems.billing.subscriptions["sub_acme"].lines[0].quantity == 10  # the seats it had
    for undo in ("billing.void_invoice", "tax.void"):
        assert systems.ledger.count(undo) == 1, undo
    assert systems.ledger.count("erp.post_journal_entry") == 2  # the entry and its reversal


async def test_a_cancellation_while_undoing_lets_the_undo_finish(env, worker, systems):
    """A permanent failure starts the undo; an undo step parks; the workflow is cancelled while it
    waits. The operator's retry finishes the undo, and only then does the workflow close."""
    systems.ledger.fail("erp.post_journal_entry", BusinessError("netsuite", "Invalid account 1200", code="INVALID_KEY"))
    systems.ledger.fail("tax.void", fixable("avatax", "the document is locked by a filing"))
    handle = await start_amendment(env, worker, amendment(quantity=12))
    parked = await amendment_until(handle, Status.NEEDS_ATTENTION)
    assert parked.attention.step == "undo tax document"
    await handle.cancel()
    assert (await amendment_state(handle)).status == Status.NEEDS_ATTENTION  # still waiting for the operator
    await resolve(handle, OperatorAction.RETRY)
    with pytest.raises(WorkflowFailureError):
        await handle.result()

    final = await amendment_state(handle)
    assert final.status == Status.ROLLED_BACK
    assert final.compensated == ["journal entry", "tax document", "invoice", "subscription"]
    assert [d.status for d in systems.tax.documents.values()] == ["Cancelled"]
    assert [i.status for i in systems.billing.invoices.values()] == ["void"]
    assert systems.ledger.count("billing.void_invoice") == 1


# -- renewals --------------------------------------------------------------------------------------


async def test_a_renewal_cancelled_while_waiting_for_its_term_lets_the_current_term_run_on(
    env, worker, renewing, today
):
    s = renewing
    handle = await start_renewal(env, worker, renewal(s, today))
    await until_waiting(handle)
    assert "sub_acme" in s.billing.ends  # the current term ends at the boundary
    await cancelled(handle)

    final = await renewal_state(handle)
    assert final.status == Status.ROLLED_BACK
    assert "sub_acme" not in s.billing.ends and no_renewal_booked(s)
    assert s.ledger.count("billing.cancel_subscription_end") == 1


async def test_a_renewal_cancelled_on_its_start_day_undoes_the_new_term(env, worker, renewing, today):
    s = renewing
    s.ledger.fail("erp.post_journal_entry", fixable("netsuite", "the accounting period is closed"))
    handle = await start_renewal(env, worker, renewal(s, today))
    await until_waiting(handle)
    await env.sleep(timedelta(days=121))  # past the first day of the new term
    for _ in range(1200):
        if (await renewal_state(handle)).status == Status.NEEDS_ATTENTION:
            break
        await env.sleep(timedelta(minutes=1))
    assert s.billing.created and s.billing.invoices  # the new term exists, invoiced
    await cancelled(handle)

    final = await renewal_state(handle)
    assert final.status == Status.ROLLED_BACK
    assert final.compensated[-2:] == ["new term", "current term end"]
    assert [x.status for x in s.billing.subscriptions.values() if x.id != "sub_acme"] == ["canceled"]
    assert [i.status for i in s.billing.invoices.values()] == ["void"]
    assert [d.status for d in s.tax.documents.values()] == ["Cancelled"]
    assert "sub_acme" not in s.billing.ends and not s.schedules.schedules
    assert s.ledger.count("billing.void_invoice") == 1 and s.ledger.count("billing.cancel_subscription_end") == 1


# -- reconciliations -------------------------------------------------------------------------------


async def test_a_reconciliation_cancelled_awaiting_approval_reverses_the_heals_it_posted(
    env, worker, systems, reconciliations
):
    for n in range(1, 5):
        book(systems, n, "100.00")
    small = book(systems, 5, "200.00", erp=False)  # healed at once
    book(systems, 6, "5000.00", erp=False)  # above the healing limit: waits for approval
    handle = await start_reconciliation(env, worker, batch_size=3, parallel_batches=2)
    waiting = await reconciliation_until(handle, Status.AWAITING_APPROVAL)
    assert "amendment-R5-invoice" in systems.erp.entries
    await cancelled(handle)

    final = await reconciliation_state(handle)
    assert final.status == Status.ROLLED_BACK
    [reversal] = reversals_of(systems, "amendment-R5-invoice")
    assert reversal.total_debits == systems.erp.entries["amendment-R5-invoice"].total_debits
    assert "amendment-R6-invoice" not in systems.erp.entries
    records = {b.document: b for b in await reconciliations.breaks_of_run(waiting.run_id)}
    assert records[small].status == "open" and "heal reversed" in records[small].resolution


async def test_a_reconciliation_cancelled_while_a_reader_waits_posts_nothing(env, worker, systems, reconciliations):
    for n in range(1, 4):
        book(systems, n, "100.00")
    book(systems, 4, "200.00", erp=False)
    systems.ledger.fail("erp.list_journal_entries", fixable("netsuite", "the saved search is being edited"))
    handle = await start_reconciliation(env, worker, batch_size=3, parallel_batches=2)
    parked = await reconciliation_until(handle, Status.NEEDS_ATTENTION)
    assert parked.attention.step == "read erp"
    await cancelled(handle)

    assert (await reconciliation_state(handle)).status == Status.ROLLED_BACK
    assert "amendment-R4-invoice" not in systems.erp.entries
    assert not [e for e in systems.erp.entries.values() if e.reverses]


async def test_a_reconciliation_cancelled_after_its_run_closed_keeps_its_heals(env, worker, systems, reconciliations):
    """Closing the run is the point of no return: its findings are recorded and earlier runs'
    breaks settled against them. A cancellation while its open breaks wait in the exception
    queue only stops the waiting."""
    for n in range(1, 5):
        book(systems, n, "100.00")
    book(systems, 5, "200.00", erp=False)  # healed at once
    book(systems, 6, "100.00", erp_revenue="101.00")  # parks the closed run in the exception queue
    handle = await start_reconciliation(env, worker, batch_size=3, parallel_batches=2)
    parked = await reconciliation_until(handle, Status.NEEDS_ATTENTION)
    assert parked.attention.step == "breaks"
    await cancelled(handle)

    assert "amendment-R5-invoice" in systems.erp.entries
    assert not reversals_of(systems, "amendment-R5-invoice")
    statuses = {b.document: b.status for b in await reconciliations.breaks_of_run(parked.run_id)}
    assert "healed" in statuses.values()
