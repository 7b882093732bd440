"""A process started with identity keys decides only by a signed identity: the update's
validator refuses a missing, forged, altered, misdirected or expired assertion before
anything enters history, and still refuses self-approval and a role too low, by identity.
The exception queue's answers are verified the same way."""

from __future__ import annotations

from datetime import timedelta

import pytest
from temporalio.client import WorkflowFailureError, WorkflowUpdateFailedError

from adapters.identity_keys import ASSERTION_LIFETIME, IdentitySigner
from canonical.approval import ApprovalPolicy
from canonical.identity import Role
from canonical.models import Address, ApproverRole
from tests.workflows.conftest import amendment
from tests.workflows.test_amendment import state, until
from workflows.amendment import AmendmentInput, AmendmentResult, AmendmentWorkflow, amendment_workflow_id
from workflows.kit.approval import DecisionInput
from workflows.kit.attention import OperatorAction, ResolveInput
from workflows.kit.status import Status

SIGNER = IdentitySigner.generate()


async def start(env, task_queue, request):
    return await env.client.start_workflow(
        AmendmentWorkflow.run,
        AmendmentInput(request=request, policy=ApprovalPolicy(identity_keys=[SIGNER.public_key])),
        id=amendment_workflow_id(request.amendment_id),
        task_queue=task_queue,
        result_type=AmendmentResult,
    )


async def signed(env, handle, user, role: Role, *, approved=True, signer=SIGNER, workflow_id=None, age=timedelta()):
    assertion = signer.sign(
        user=user,
        role=role,
        workflow_id=workflow_id or handle.id,
        decision="approve" if approved else "reject",
        now=await env.get_current_time() - age,
    )
    return DecisionInput(
        approver=user, role=ApproverRole(role.value), approved=approved, comment="ok", assertion=assertion
    )


async def refused(handle, decision: DecisionInput) -> str:
    with pytest.raises(WorkflowUpdateFailedError) as error:
        await handle.execute_update(AmendmentWorkflow.decide, decision)
    return str(error.value.cause)


async def finish(handle) -> None:
    # A workflow task left pending on the time-skipping server holds back the next tests.
    await handle.cancel()
    with pytest.raises(WorkflowFailureError):
        await handle.result()


async def test_a_signed_identity_decides_and_is_recorded(env, worker, systems):
    handle = await start(env, worker, amendment(quantity=100))  # controller level
    await until(handle, Status.AWAITING_APPROVAL)
    # Known to o2c's directory, not to the policy's list of names: the signature vouches.
    decision = await signed(env, handle, "cora.controller", Role.CONTROLLER)
    assert await handle.execute_update(AmendmentWorkflow.decide, decision) == "approved"
    assert (await handle.result()).status == Status.COMPLETED
    final = await state(handle)
    assert final.approval.decision.approver == "cora.controller"
    assert final.approval.decision.role == ApproverRole.CONTROLLER


async def test_missing_forged_altered_misdirected_and_expired_identities_are_refused(env, worker, systems):
    handle = await start(env, worker, amendment(quantity=100))
    await until(handle, Status.AWAITING_APPROVAL)
    good = await signed(env, handle, "carla.controller", Role.CONTROLLER)
    assert "no signed identity" in await refused(
        handle, DecisionInput(approver="carla.controller", role=ApproverRole.CONTROLLER, approved=True)
    )
    stranger = IdentitySigner.generate()
    assert "does not trust" in await refused(
        handle, await signed(env, handle, "carla.controller", Role.CONTROLLER, signer=stranger)
    )
    forged = good.model_copy(update={"assertion": good.assertion.model_copy(update={"user": "mallory"})})
    assert "signature does not match" in await refused(handle, forged.model_copy(update={"approver": "mallory"}))
    # A valid assertion of carla's does not lend her name to a decision naming someone else.
    assert "but its identity is carla.controller" in await refused(handle, good.model_copy(update={"approver": "mo"}))
    # Signed to approve: it cannot carry a rejection.
    assert "not to reject" in await refused(handle, good.model_copy(update={"approved": False}))
    elsewhere = await signed(env, handle, "carla.controller", Role.CONTROLLER, workflow_id="amendment-other")
    assert "not " + handle.id in await refused(handle, elsewhere)
    stale = await signed(env, handle, "carla.controller", Role.CONTROLLER, age=ASSERTION_LIFETIME * 2)
    assert "expired" in await refused(handle, stale)

    history = await handle.fetch_history()
    assert not [e for e in history.events if e.HasField("workflow_execution_update_accepted_event_attributes")]
    assert (await state(handle)).status == Status.AWAITING_APPROVAL
    await finish(handle)


async def test_the_policy_still_holds_for_signed_identities(env, worker, systems):
    handle = await start(env, worker, amendment(quantity=100, requested_by="Carla.Controller"))
    await until(handle, Status.AWAITING_APPROVAL)
    assert "cannot approve" in await refused(handle, await signed(env, handle, "carla.controller", Role.CONTROLLER))
    assert "needs a controller" in await refused(handle, await signed(env, handle, "fiona.finance", Role.FINANCE))
    await finish(handle)


async def test_a_process_without_identity_keys_decides_by_name_as_before(env, worker, systems):
    request = amendment(quantity=30)
    handle = await env.client.start_workflow(
        AmendmentWorkflow.run,
        AmendmentInput(request=request),
        id=amendment_workflow_id(request.amendment_id),
        task_queue=worker,
        result_type=AmendmentResult,
    )
    await until(handle, Status.AWAITING_APPROVAL)
    decision = DecisionInput(approver="fiona.finance", role=ApproverRole.FINANCE, approved=True)
    assert await handle.execute_update(AmendmentWorkflow.decide, decision) == "approved"
    assert (await handle.result()).status == Status.COMPLETED


async def test_the_exception_queue_takes_a_signed_operator_only(env, worker, systems):
    acme = systems.billing.accounts["cus_acme"]
    systems.billing.accounts["cus_acme"] = acme.model_copy(update={"billing_address": Address(country="US")})
    handle = await start(env, worker, amendment())
    await until(handle, Status.NEEDS_ATTENTION)

    async def answer(who: str, role: Role, *, signed_for=OperatorAction.RETRY, signer=SIGNER, operator=None):
        assertion = signer.sign(
            user=who,
            role=role,
            workflow_id=handle.id,
            decision=f"resolve:{signed_for.value}",
            now=await env.get_current_time(),
        )
        return ResolveInput(action=OperatorAction.RETRY, operator=operator or who, assertion=assertion)

    async def refused_answer(answer_: ResolveInput) -> str:
        with pytest.raises(WorkflowUpdateFailedError) as error:
            await handle.execute_update(AmendmentWorkflow.resolve, answer_)
        return str(error.value.cause)

    unsigned = ResolveInput(action=OperatorAction.RETRY, operator="olga.ops")
    assert "no signed identity" in await refused_answer(unsigned)
    assert "does not trust" in await refused_answer(
        await answer("olga.ops", Role.OPERATOR, signer=IdentitySigner.generate())
    )
    assert "not to resolve:retry" in await refused_answer(
        await answer("olga.ops", Role.OPERATOR, signed_for=OperatorAction.ABORT)
    )
    assert "its identity is olga.ops" in await refused_answer(await answer("olga.ops", Role.OPERATOR, operator="mo"))
    assert "a viewer does not answer" in await refused_answer(await answer("vic.viewer", Role.VIEWER))

    systems.billing.accounts["cus_acme"] = acme  # the customer master is fixed
    await handle.execute_update(AmendmentWorkflow.resolve, await answer("olga.ops", Role.OPERATOR))
    assert (await handle.result()).status == Status.COMPLETED
    assert (await state(handle)).resolutions[0].operator == "olga.ops"
