"""AmendmentWorkflow on the time-skipping test server, with the real activities over fakes."""

from __future__ import annotations

import asyncio
from datetime import date, timedelta

import pytest
from temporalio.client import WorkflowFailureError, WorkflowHandle, WorkflowUpdateFailedError

from adapters.errors import BusinessError, IntegrationBug, TransientError
from canonical.models import Address, ApproverRole
from tests.fakes import seat_line, usd
from tests.workflows.conftest import amendment
from workflows.amendment import (
    AmendmentInput,
    AmendmentResult,
    AmendmentState,
    AmendmentWorkflow,
    amendment_workflow_id,
)
from workflows.kit.approval import DecisionInput
from workflows.kit.attention import OperatorAction, ResolveInput
from workflows.kit.status import Status


async def start(env, task_queue, request) -> WorkflowHandle:
    return await env.client.start_workflow(
        AmendmentWorkflow.run,
        AmendmentInput(request=request),
        id=amendment_workflow_id(request.amendment_id),
        task_queue=task_queue,
        result_type=AmendmentResult,
    )


async def state(handle) -> AmendmentState:
    return await handle.query(AmendmentWorkflow.state, result_type=AmendmentState)


async def until(handle, status: Status) -> AmendmentState:
    for _ in range(1200):  # generous: the CI machine may be busy
        current = await state(handle)
        if current.status == status:
            return current
        await asyncio.sleep(0.025)
    raise AssertionError(f"never reached {status}; last {current.status}: {current.stage}")


async def decide(handle, approver: str, role: ApproverRole, approved: bool = True, comment: str = "ok"):
    return await handle.execute_update(
        AmendmentWorkflow.decide, DecisionInput(approver=approver, role=role, approved=approved, comment=comment)
    )


async def resolve(handle, action: OperatorAction, operator: str = "olga.ops"):
    return await handle.execute_update(AmendmentWorkflow.resolve, ResolveInput(action=action, operator=operator))


def nothing_posted(systems) -> bool:
    return (
        not systems.billing.invoices
        and not systems.billing.updates
        and not systems.tax.documents
        and not systems.erp.entries
        and not systems.entitlements.seats
    )


async def test_happy_path_books_the_proration_and_then_the_seats(env, worker, systems):
    handle = await start(env, worker, amendment(quantity=12))
    result = await handle.result()

    assert result.status == Status.COMPLETED
    # 15 of 30 days left: credit 10 seats (-250.00), charge 12 seats (300.00), tax 10 % per line.
    assert result.net == usd("50.00")
    assert result.invoice_total == usd("55.00")
    [invoice] = systems.billing.invoices.values()
    assert [line.amount for line in invoice.lines] == [usd("-250.00"), usd("300.00"), usd("5.00")]
    assert systems.billing.subscriptions["sub_acme"].lines[0].quantity == 12
    [document] = systems.tax.documents.values()
    assert document.code == invoice.id and document.status == "Committed" and document.total_tax == usd("5.00")
    [entry] = systems.erp.entries.values()
    assert entry.total_debits == usd("55.00")
    assert {(x.account, x.debit, x.credit) for x in entry.lines} == {
        ("1200", usd("55.00"), None),
        ("2400", None, usd("50.00")),
        ("2200", None, usd("5.00")),
    }
    assert systems.entitlements.seats[("cus_acme", "seats")] == 12
    [notice] = systems.notifications.outbox.values()
    assert notice.recipient == "billing@acme.test" and "600.00 USD" in notice.body
    # The entitlement changes only after the journal entry is posted.
    calls = systems.ledger.calls
    assert calls.index("entitlements.set_seats") > calls.index("erp.post_journal_entry")

    final = await state(handle)
    assert final.status == Status.COMPLETED and final.invoice and final.journal_entry
    description = await handle.describe()
    attributes = {k.name: v for k, v in ((p.key, p.value) for p in description.typed_search_attributes)}
    assert attributes["O2cStatus"] == "completed" and attributes["O2cProcess"] == "amendment"
    assert attributes["O2cCustomer"] == "cus_acme" and attributes["O2cContract"] == "C-100"
    assert attributes["O2cInvoice"] == invoice.id


async def test_every_document_carries_the_invoice_date_not_the_effective_date(env, worker, systems):
    """Effective 16 November, invoiced by billing on 1 December: the tax document and the
    journal entry are dated 1 December; the proration still runs from 16 November."""
    systems.billing.invoice_date = date(2026, 12, 1)
    result = await (await start(env, worker, amendment(quantity=12))).result()

    assert result.status == Status.COMPLETED and result.net == usd("50.00")  # 15 of 30 days from 16 November
    [document] = systems.tax.documents.values()
    assert document.code == result.invoice_id and document.document_date == date(2026, 12, 1)
    [entry] = systems.erp.entries.values()
    assert entry.posting_date == date(2026, 12, 1) and entry.invoice_id == result.invoice_id
    # Revenue keeps the effective date: the schedules start on 16 November.
    saved = list(systems.schedules.schedules.values())
    assert saved and all(s.start == date(2026, 11, 16) for s in saved)


async def test_a_duplicate_start_lands_on_the_same_workflow(env, worker, systems):
    request = amendment(quantity=11)
    first = await start(env, worker, request)
    with pytest.raises(Exception, match="already"):
        await start(env, worker, request)
    await first.result()
    assert len(systems.billing.invoices) == 1


async def test_invalid_request_is_refused_before_any_side_effect(env, worker, systems):
    handle = await start(env, worker, amendment(currency="EUR"))
    result = await handle.result()
    assert result.status == Status.REJECTED
    assert "differs from the contract's USD" in result.message
    assert nothing_posted(systems)


async def test_controller_approval_lets_a_large_change_through(env, worker, systems):
    handle = await start(env, worker, amendment(quantity=100))  # +54,000 a year: controller
    waiting = await until(handle, Status.AWAITING_APPROVAL)
    assert waiting.approval.request.required_role == ApproverRole.CONTROLLER
    assert nothing_posted(systems)
    assert await decide(handle, "carla.controller", ApproverRole.CONTROLLER) == "approved"
    result = await handle.result()
    assert result.status == Status.COMPLETED
    final = await state(handle)
    assert final.approval.decision.approver == "carla.controller"
    assert final.approval.decision.decided_at is not None


async def test_rejection_ends_the_amendment_with_nothing_posted(env, worker, systems):
    handle = await start(env, worker, amendment(quantity=30))  # +12,000 a year: finance
    await until(handle, Status.AWAITING_APPROVAL)
    await decide(handle, "fiona.finance", ApproverRole.FINANCE, approved=False, comment="not in budget")
    result = await handle.result()
    assert result.status == Status.REJECTED and "not in budget" in result.message
    assert nothing_posted(systems)


async def test_the_validator_refuses_self_approval_weak_roles_and_strangers(env, worker, systems):
    request = amendment(quantity=100, requested_by="carla.controller")
    handle = await start(env, worker, request)
    await until(handle, Status.AWAITING_APPROVAL)
    refusals = {
        ("carla.controller", ApproverRole.CONTROLLER): "cannot approve",
        ("fiona.finance", ApproverRole.FINANCE): "needs a controller",
        ("mallory", ApproverRole.CONTROLLER): "not a known approver",
        ("fiona.finance", ApproverRole.CONTROLLER): "holds the role finance",
    }
    for (who, role), why in refusals.items():
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await decide(handle, who, role)
        assert why in str(refused.value.cause)
    # Refused updates never enter history.
    history = await handle.fetch_history()
    assert not [e for e in history.events if e.HasField("workflow_execution_update_accepted_event_attributes")]
    assert (await state(handle)).status == Status.AWAITING_APPROVAL
    # Finish it while the worker runs: a workflow task left pending on the time-skipping
    # server holds back time skipping for the tests after this one.
    await handle.cancel()
    with pytest.raises(WorkflowFailureError):
        await handle.result()


async def test_unanswered_approval_escalates_after_72_hours_and_expires_after_7_days(env, worker, systems):
    handle = await start(env, worker, amendment(quantity=12, discount="25"))  # discount above policy
    await until(handle, Status.AWAITING_APPROVAL)
    await env.sleep(timedelta(hours=71))
    assert not systems.notifications.outbox
    await env.sleep(timedelta(hours=2))
    escalated = await state(handle)
    assert escalated.approval.escalated_at is not None
    [notice] = systems.notifications.outbox.values()
    assert notice.template == "approval-escalation" and notice.recipient == "approvers:finance"
    result = await handle.result()  # time skips to the 7-day expiry
    assert result.status == Status.REJECTED and "expired" in result.message
    assert nothing_posted(systems)


async def test_escalated_request_can_still_be_approved(env, worker, systems):
    handle = await start(env, worker, amendment(quantity=12, discount="25"))
    await until(handle, Status.AWAITING_APPROVAL)
    await env.sleep(timedelta(hours=80))
    assert (await state(handle)).approval.escalated_at is not None
    await decide(handle, "fiona.finance", ApproverRole.FINANCE)
    assert (await handle.result()).status == Status.COMPLETED


async def test_missing_tax_jurisdiction_parks_and_retry_after_the_fix_completes(env, worker, systems):
    acme = systems.billing.accounts["cus_acme"]
    systems.billing.accounts["cus_acme"] = acme.model_copy(update={"billing_address": Address(country="US")})
    handle = await start(env, worker, amendment())
    parked = await until(handle, Status.NEEDS_ATTENTION)
    assert parked.attention.step == "tax quote" and "jurisdiction" in parked.attention.message
    assert nothing_posted(systems)

    with pytest.raises(WorkflowUpdateFailedError):
        await resolve(handle, OperatorAction.RETRY, operator=" ")  # an anonymous answer is refused
    systems.billing.accounts["cus_acme"] = acme  # an analyst fixes the customer master
    await resolve(handle, OperatorAction.RETRY)
    result = await handle.result()
    assert result.status == Status.COMPLETED
    assert (await state(handle)).resolutions[0].operator == "olga.ops"


def invoiced_in_closed_month(systems) -> None:
    """Billing issues the invoice on 1 December and the ERP has closed December: the entry,
    dated with the invoice, falls in the closed month."""
    systems.billing.invoice_date = date(2026, 12, 1)
    systems.erp.closed_periods.add("2026-12")


async def test_an_amendment_effective_in_a_closed_month_books_in_the_invoice_month(env, worker, systems):
    """November is closed; the amendment is effective 16 November and invoiced 1 December.
    Nothing is back-dated into November, so nothing parks: the entry lands in December."""
    systems.billing.invoice_date = date(2026, 12, 1)
    systems.erp.closed_periods.add("2026-11")
    result = await (await start(env, worker, amendment())).result()
    assert result.status == Status.COMPLETED
    [entry] = systems.erp.entries.values()
    assert entry.posting_date == date(2026, 12, 1)


async def test_closed_period_parks_and_skip_completes_without_the_entry(env, worker, systems):
    invoiced_in_closed_month(systems)
    handle = await start(env, worker, amendment())
    parked = await until(handle, Status.NEEDS_ATTENTION)
    assert parked.attention.step == "journal entry" and parked.attention.system == "netsuite"
    await resolve(handle, OperatorAction.SKIP)
    result = await handle.result()
    assert result.status == Status.COMPLETED and result.journal_entry == ""
    assert not systems.erp.entries and len(systems.billing.invoices) == 1


async def test_abort_compensates_in_reverse_order(env, worker, systems):
    invoiced_in_closed_month(systems)
    handle = await start(env, worker, amendment())
    await until(handle, Status.NEEDS_ATTENTION)
    await resolve(handle, OperatorAction.ABORT)
    result = await handle.result()

    assert result.status == Status.ROLLED_BACK
    assert result.compensated == ["journal entry", "tax document", "invoice", "subscription"]  # reverse order
    undo_calls = [
        c
        for c in systems.ledger.calls
        if c in ("erp.get_journal_entry", "tax.void", "billing.void_invoice", "billing.update_subscription")
    ]
    assert undo_calls == [
        "billing.update_subscription",
        "tax.void",
        "billing.void_invoice",
        "billing.update_subscription",
    ]
    assert [i.status for i in systems.billing.invoices.values()] == ["void"]
    assert [d.status for d in systems.tax.documents.values()] == ["Cancelled"]
    assert systems.billing.subscriptions["sub_acme"].lines[0].quantity == 10
    assert not systems.erp.entries


async def test_a_failure_nobody_can_fix_rolls_back_including_the_posted_entry(env, worker, systems):
    systems.ledger.fail("entitlements.set_seats", IntegrationBug("entitlements", "401 unauthorized"))
    handle = await start(env, worker, amendment())
    result = await handle.result()

    assert result.status == Status.ROLLED_BACK and "401 unauthorized" in result.message
    assert result.compensated == [
        "entitlement seats",
        "revenue schedules",
        "journal entry",
        "tax document",
        "invoice",
        "subscription",
    ]
    assert not systems.schedules.schedules
    entry, reversal = systems.erp.entries.values()
    assert reversal.reverses == entry.external_id
    assert {(x.account, x.debit, x.credit) for x in reversal.lines} == {
        (x.account, x.credit, x.debit) for x in entry.lines
    }
    assert [i.status for i in systems.billing.invoices.values()] == ["void"]
    assert systems.entitlements.seats[("cus_acme", "seats")] == 10
    assert not systems.notifications.outbox


async def test_a_refused_create_is_not_undone_by_creating_it(env, worker, systems):
    systems.ledger.fail("billing.create_invoice", BusinessError("stripe", "No such customer", code="resource_missing"))
    result = await (await start(env, worker, amendment(quantity=13))).result()
    assert result.status == Status.ROLLED_BACK and "No such customer" in result.message
    assert result.compensated == ["invoice", "subscription"]
    assert not systems.billing.invoices and systems.ledger.count("billing.void_invoice") == 0


async def test_a_failed_notice_never_undoes_a_booked_amendment(env, worker, systems):
    systems.ledger.fail("notifications.send", IntegrationBug("notifications", "403 forbidden"))
    handle = await start(env, worker, amendment())
    parked = await until(handle, Status.NEEDS_ATTENTION)
    assert parked.attention.step == "customer notice"
    assert parked.attention.actions == [OperatorAction.RETRY, OperatorAction.SKIP]
    with pytest.raises(WorkflowUpdateFailedError):
        await resolve(handle, OperatorAction.ABORT)
    await resolve(handle, OperatorAction.RETRY)
    assert (await handle.result()).status == Status.COMPLETED
    assert len(systems.notifications.outbox) == 1


async def test_transient_failures_are_retried_with_the_same_key(env, worker, systems):
    for name in ("billing.update_subscription", "billing.create_invoice", "tax.commit", "erp.post_journal_entry"):
        systems.ledger.fail(name, TransientError("sandbox", "503 Service Unavailable", status=503), times=2)
    result = await (await start(env, worker, amendment())).result()
    assert result.status == Status.COMPLETED
    assert systems.ledger.count("billing.create_invoice") == 3
    assert len(systems.billing.invoices) == 1 and len(systems.erp.entries) == 1
    assert len(systems.billing.updates) == 1 and len(systems.tax.documents) == 1


async def test_net_credit_needs_approval_and_books_the_credit(env, worker, systems):
    systems.billing.invoice_date = date(2026, 12, 1)
    handle = await start(env, worker, amendment(quantity=8))
    waiting = await until(handle, Status.AWAITING_APPROVAL)
    assert any("net credit" in reason for reason in waiting.approval.request.reasons)
    await decide(handle, "frank.finance", ApproverRole.FINANCE)
    result = await handle.result()
    assert result.net == usd("-50.00") and result.invoice_total == usd("-55.00")
    [entry] = systems.erp.entries.values()
    assert {(x.account, x.debit, x.credit) for x in entry.lines} == {
        ("1200", None, usd("55.00")),
        ("2400", usd("50.00"), None),
        ("2200", usd("5.00"), None),
    }
    assert entry.posting_date == date(2026, 12, 1)  # the credit invoice's date, not the effective date


async def test_a_change_that_prorates_to_nothing_invoices_nothing(env, worker, systems):
    systems.billing.subscriptions["sub_acme"] = systems.billing.subscriptions["sub_acme"].model_copy(
        update={"lines": [seat_line(1, price="0.01")]}
    )
    # One more one-cent seat for the last day of a 30-day period: a third of a cent.
    result = await (
        await start(env, worker, amendment(quantity=2, price="0.01", effective_date=date(2026, 11, 30)))
    ).result()
    assert result.status == Status.COMPLETED and result.invoice_id == "" and result.journal_entry == ""
    assert not systems.billing.invoices and not systems.erp.entries and not systems.tax.documents
    assert systems.billing.subscriptions["sub_acme"].lines[0].quantity == 2
    assert systems.entitlements.seats[("cus_acme", "seats")] == 2


async def test_the_change_in_contract_value_gets_a_revenue_schedule_of_its_own(env, worker, systems):
    handle = await start(env, worker, amendment(quantity=12))
    result = await handle.result()
    assert result.status == Status.COMPLETED
    # 50.00 for the rest of November plus 2 x 50.00 more in December, the last month of the term,
    # recognised over the 46 days from 16 November to the end of the term.
    [schedule] = systems.schedules.schedules.values()
    assert schedule.schedule_id == f"{handle.id}-subscription" and schedule.total == usd("150.00")
    assert [(x.period, x.days, x.amount) for x in schedule.lines] == [
        ("2026-11", 15, usd("48.91")),
        ("2026-12", 31, usd("101.09")),
    ]
    assert schedule.booked_on == date(2026, 11, 16)
    assert (await state(handle)).schedules == [schedule]


async def test_an_amendment_modifies_the_contracts_schedules_prospectively(env, worker, systems):
    from canonical.revenue import ratable_schedule

    term = ratable_schedule(
        schedule_id="renewal-C-100-2026-01-01-seats",
        contract_id="C-100",
        account_id="cus_acme",
        legal_entity="US01",
        obligation="seats",
        total=usd("6000.00"),
        start=date(2026, 1, 1),
        end=date(2027, 1, 1),
        booked_on=date(2025, 12, 1),
    )
    systems.schedules.schedules[term.schedule_id] = term
    handle = await start(env, worker, amendment(quantity=12))
    assert (await handle.result()).status == Status.COMPLETED
    cut = systems.schedules.schedules[term.schedule_id]
    created = systems.schedules.schedules[f"{term.schedule_id}.{(await state(handle)).amendment_id}"]
    assert cut.end == date(2026, 11, 16) and created.start == date(2026, 11, 16)
    assert created.supersedes == term.schedule_id
    # What the terminated schedule had not recognised, plus the 150.00 the change adds.
    assert cut.total + created.total == usd("6150.00")
    assert sum(x.amount.minor for x in created.lines) == created.total.minor


def _discounted_seats(total: str = "3000.00"):
    from canonical.revenue import ratable_schedule

    return ratable_schedule(
        schedule_id="renewal-C-100-2026-01-01-seats",
        contract_id="C-100",
        account_id="cus_acme",
        legal_entity="US01",
        obligation="seats",
        total=usd(total),
        start=date(2026, 1, 1),
        end=date(2027, 1, 1),
        booked_on=date(2025, 12, 1),
        ssp=usd("6000.00"),
    )


async def test_a_downgrade_beyond_what_is_unrecognised_reverses_revenue_on_the_effective_date(env, worker, systems):
    # 10 seats sold for 3,000.00 for 2026, half their list price; down to 2 on 16 November:
    # 8 x 50.00 x 15/30 for November and 8 x 50.00 for December, 600.00, against 3,000 x
    # 46/365 = 378.08 still unrecognised. The 221.92 beyond it is reversed on the 16th.
    term = _discounted_seats()
    systems.schedules.schedules[term.schedule_id] = term
    handle = await start(env, worker, amendment(quantity=2))
    await until(handle, Status.AWAITING_APPROVAL)
    await decide(handle, "frank.finance", ApproverRole.FINANCE)
    assert (await handle.result()).status == Status.COMPLETED
    cut = systems.schedules.schedules[term.schedule_id]
    created = systems.schedules.schedules[f"{term.schedule_id}.{(await state(handle)).amendment_id}"]
    assert cut.total == usd("2621.92") and created.total == usd("-221.92")
    reversal, *spread = created.lines
    assert (reversal.start, reversal.period, reversal.amount) == (date(2026, 11, 16), "2026-11", usd("-221.92"))
    assert all(line.amount.is_zero for line in spread)
    assert cut.total + created.total == usd("2400.00")  # 3,000 less the 600 the downgrade takes


async def test_the_requests_remaining_ssp_weighs_the_remaining_seats(env, worker, systems):
    from decimal import Decimal

    term = _discounted_seats()
    systems.schedules.schedules[term.schedule_id] = term
    handle = await start(env, worker, amendment(quantity=12, remaining_ssp={"seats": Decimal("800.00")}))
    assert (await handle.result()).status == Status.COMPLETED
    created = systems.schedules.schedules[f"{term.schedule_id}.{(await state(handle)).amendment_id}"]
    assert created.ssp == usd("800.00")  # as stated, not 6,000 x 46/365 = 756.16
    # One obligation: the weight changes nothing of the amount, 378.08 + 150.00.
    assert created.total == usd("528.08")
