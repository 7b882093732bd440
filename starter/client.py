"""Typed client functions that upstream systems import to start and steer o2c processes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import date, timedelta
from typing import Any, Protocol

from temporalio.client import Client, WorkflowHandle
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.envconfig import ClientConnectConfig
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode
from temporalio.types import MethodAsyncSingleParam, ParamType, ReturnType, SelfType

from adapters.ports import BillingPort
from adapters.stripe_webhooks import UsageInvoiceEvent
from adapters.temporal import connect_config
from canonical.amendment import InvalidAmendment, InvalidRequest, request_problems, subscription_problems
from canonical.approval import ApprovalPolicy
from canonical.dunning import DunningPolicies
from canonical.identity import IdentityAssertion
from canonical.models import (
    AmendmentRequest,
    ApproverRole,
    LegalEntity,
    PaymentEvent,
    PaymentEventKind,
    unknown_entity,
)
from canonical.reconciliation import ReconciliationPolicy, period_bounds
from canonical.renewal import RenewalChange, RenewalRequest, renewal_problems
from canonical.usage.models import UsageDecision
from settings import Settings
from workflows.amendment import AmendmentInput, AmendmentResult, AmendmentWorkflow, amendment_workflow_id
from workflows.dunning import PAYMENT_EVENT_SIGNAL, DunningInput, DunningWorkflow, dunning_workflow_id
from workflows.kit.approval import DecisionInput
from workflows.kit.attention import OperatorAction, ResolveInput
from workflows.kit.status import CONTRACT, CUSTOMER, INVOICE, PROCESS, STATUS, TERMINAL, Status
from workflows.reconciliation import (
    ReconciliationInput,
    ReconciliationResult,
    ReconciliationWorkflow,
    reconciliation_workflow_id,
)
from workflows.renewal import NonRenewal, RenewalInput, RenewalResult, RenewalWorkflow, renewal_workflow_id
from workflows.usage import (
    DRAFT_READY_SIGNAL,
    FINALIZATION_FAILED_SIGNAL,
    FinalizationFailure,
    UsageReleaseInput,
    UsageReleaseWorkflow,
    UsageResult,
    usage_workflow_id,
)


def temporal_config(settings: Settings) -> ClientConnectConfig:
    """Where Temporal is: the O2C_TEMPORAL_* settings over the user's TEMPORAL_* variables and
    `temporal` CLI profile (adapters/temporal.py)."""
    return connect_config(
        address=settings.temporal_address,
        namespace=settings.temporal_namespace,
        api_key=settings.temporal_api_key,
        tls=settings.temporal_tls,
    )


class StatesAmounts(Protocol):
    """A policy with amounts per currency (ApprovalPolicy, ReconciliationPolicy)."""

    def uncovered(self, currency: str) -> str | None: ...


def currency_problems(currency: str, *policies: StatesAmounts) -> list[str]:
    """A process in a currency one of its policies states no amount in is refused before it
    starts: it never borrows another currency's number."""
    return [reason for policy in policies if (reason := policy.uncovered(currency))]


async def validate_amendment_request(
    request: AmendmentRequest, billing: BillingPort, policy: ApprovalPolicy | None = None
) -> None:
    """Everything checkable before a workflow exists; raises InvalidAmendment."""
    problems = request_problems(request)
    if not problems:
        subscription = await billing.get_subscription(request.subscription_id)
        problems = subscription_problems(request, subscription)
        currency = subscription.currency if subscription else request.currency
        problems += currency_problems(currency, policy or Settings.from_env().approval_policy)
    if problems:
        raise InvalidAmendment(problems)


async def start_amendment(
    client: Client,
    request: AmendmentRequest,
    *,
    billing: BillingPort,
    task_queue: str = "o2c",
) -> WorkflowHandle[AmendmentWorkflow, AmendmentResult]:
    """Validate, then start `amendment-<id>`. Starting the same amendment again returns
    the workflow that already exists (running or finished) instead of a second one."""
    settings = Settings.from_env()
    policy = settings.approval_policy
    await validate_amendment_request(request, billing, policy)
    return await _start_once(
        client,
        AmendmentWorkflow.run,
        # The configured entities: the customer's names the ledger, tax company and ERP it books in.
        AmendmentInput(request=request, policy=policy, legal_entities=settings.legal_entities),
        workflow_id=amendment_workflow_id(request.amendment_id),
        task_queue=task_queue,
        process="amendment",
        customer=request.account_id,
        contract=request.contract_id,
    )


async def _start_once(
    client: Client,
    run: MethodAsyncSingleParam[SelfType, ParamType, ReturnType],
    arg: ParamType,
    *,
    workflow_id: str,
    task_queue: str,
    process: str,
    customer: str,
    contract: str,
) -> WorkflowHandle[SelfType, ReturnType]:
    """Start a process under its business key, or return the one that already has it:
    a running duplicate lands on the running workflow, a finished one on its result."""
    try:
        return await client.start_workflow(
            run,
            arg,
            id=workflow_id,
            task_queue=task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            search_attributes=TypedSearchAttributes(
                [
                    SearchAttributePair(PROCESS, process),
                    SearchAttributePair(CUSTOMER, customer),
                    SearchAttributePair(CONTRACT, contract),
                    SearchAttributePair(STATUS, Status.RUNNING.value),
                ]
            ),
        )
    except WorkflowAlreadyStartedError:
        return client.get_workflow_handle_for(run, workflow_id)


async def start_renewal(
    client: Client,
    request: RenewalRequest,
    *,
    billing: BillingPort,
    task_queue: str = "o2c",
) -> WorkflowHandle[RenewalWorkflow, RenewalResult]:
    """Validate, then start `renewal-<contract>-<term>`; a second start of the same renewal
    returns the existing workflow."""
    settings = Settings.from_env()
    entities, policy = settings.legal_entities, settings.renewal_policy
    subscription = await billing.get_subscription(request.subscription_id)
    problems = renewal_problems(
        request,
        subscription,
        await billing.get_account(request.account_id),
        entities,
        policy,
        today=date.today(),
    )
    if subscription is not None:
        problems += currency_problems(subscription.currency, settings.approval_policy)
    if problems:
        raise InvalidRequest(problems)
    return await _start_once(
        client,
        RenewalWorkflow.run,
        RenewalInput(request=request, policy=policy, approvals=settings.approval_policy, legal_entities=entities),
        workflow_id=renewal_workflow_id(request.contract_id, request.new_term_start),
        task_queue=task_queue,
        process="renewal",
        customer=request.account_id,
        contract=request.contract_id,
    )


async def start_usage_release(
    client: Client, input: UsageReleaseInput, *, task_queue: str = "o2c"
) -> WorkflowHandle[UsageReleaseWorkflow, UsageResult]:
    """Release one subscription's usage period: `usage-<subscription>-<period>`. The daily
    period close starts these itself; a second start (by hand, or by the schedule) lands on
    the workflow that already has the period, running or finished. A currency the approval
    policy states no thresholds in is refused (InvalidRequest) before anything starts."""
    problems = currency_problems(input.currency, input.approvals)
    if problems:
        raise InvalidRequest(problems)
    return await _start_once(
        client,
        UsageReleaseWorkflow.run,
        input,
        workflow_id=usage_workflow_id(input.subscription_id, input.period),
        task_queue=task_queue,
        process="usage",
        customer=input.customer,
        contract=input.contract_id or input.subscription_id,
    )


async def adjust_usage(client: Client, workflow_id: str, decision: UsageDecision) -> str:
    """Release a held usage invoice with a credit line on it (action adjust, a positive credit
    in the invoice currency, and its reason). Refused with the reason, as WorkflowUpdateFailedError,
    when the approver may not grant a credit of that amount."""
    answer: str = await client.get_workflow_handle(workflow_id).execute_update("adjust", decision, result_type=str)
    return answer


def reconciliation_problems(
    legal_entity: str,
    period: str,
    *,
    today: date,
    entities: list[LegalEntity] | None = None,
    policies: tuple[ReconciliationPolicy, ApprovalPolicy] | None = None,
) -> list[str]:
    problems = []
    try:
        start, _ = period_bounds(period)
        if start > today:
            problems.append(f"period {period} has not begun")
    except ValueError as error:
        problems.append(str(error))
    configured = entities if entities is not None else Settings.from_env().legal_entities
    if legal_entity not in {e.code for e in configured}:
        problems.append(unknown_entity(legal_entity, configured))
    entity = next((e for e in entities or [] if e.code == legal_entity), None)
    if entity is not None and policies is not None:
        problems += currency_problems(entity.functional_currency, *policies)
    return problems


async def start_reconciliation(
    client: Client,
    *,
    legal_entity: str,
    period: str,
    task_queue: str = "o2c",
    legal_entities: list[LegalEntity] | None = None,
) -> WorkflowHandle[ReconciliationWorkflow, ReconciliationResult]:
    """Validate, then reconcile billing, tax and the ERP for the period and entity:
    `reconciliation-<entity>-<period>`. While one runs (or waits for an operator), starting
    it again lands on it; once it has finished, starting it again is a new run. The legal
    entities default to the configured ones (O2C_LEGAL_ENTITIES_FILE)."""
    settings = Settings.from_env()
    entities = legal_entities if legal_entities is not None else settings.legal_entities
    problems = reconciliation_problems(
        legal_entity,
        period,
        today=date.today(),
        entities=entities,
        policies=(settings.reconciliation_policy, settings.approval_policy),
    )
    if problems:
        raise InvalidRequest(problems)
    workflow_id = reconciliation_workflow_id(legal_entity, period)
    try:
        return await client.start_workflow(
            ReconciliationWorkflow.run,
            ReconciliationInput(
                legal_entity=legal_entity,
                period=period,
                legal_entities=entities,
                policy=settings.reconciliation_policy,
                approvals=settings.approval_policy,
            ),
            id=workflow_id,
            task_queue=task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
            search_attributes=TypedSearchAttributes(
                [SearchAttributePair(PROCESS, "reconciliation"), SearchAttributePair(STATUS, Status.RUNNING.value)]
            ),
        )
    except WorkflowAlreadyStartedError:
        return client.get_workflow_handle_for(ReconciliationWorkflow.run, workflow_id)


async def change_renewal(client: Client, workflow_id: str, change: RenewalChange) -> str:
    """New seat counts or start date while the renewal waits; refused with the reason if invalid."""
    answer: str = await client.get_workflow_handle(workflow_id).execute_update("change", change, result_type=str)
    return answer


async def cancel_renewal(client: Client, workflow_id: str, *, requested_by: str, reason: str) -> str:
    """A non-renewal: the current term ends as planned and nothing new is billed."""
    answer: str = await client.get_workflow_handle(workflow_id).execute_update(
        "cancel", NonRenewal(requested_by=requested_by, reason=reason), result_type=str
    )
    return answer


async def decide(
    client: Client,
    workflow_id: str,
    *,
    approver: str,
    role: ApproverRole,
    approved: bool,
    comment: str = "",
    assertion: IdentityAssertion | None = None,
) -> str:
    """Approve or reject what a process waits for. Refusals come back as
    WorkflowUpdateFailedError with the validator's reason. A process started with identity
    keys takes only a decision with a signed `assertion` (starter/identity.py signs one)."""
    answer: str = await client.get_workflow_handle(workflow_id).execute_update(
        "decide",
        DecisionInput(approver=approver, role=role, approved=approved, comment=comment, assertion=assertion),
        result_type=str,
    )
    return answer


async def resolve(
    client: Client,
    workflow_id: str,
    action: OperatorAction,
    *,
    operator: str,
    comment: str = "",
    assertion: IdentityAssertion | None = None,
) -> str:
    answer: str = await client.get_workflow_handle(workflow_id).execute_update(
        "resolve",
        ResolveInput(action=action, operator=operator, comment=comment, assertion=assertion),
        result_type=str,
    )
    return answer


# A listing asks each process for its state; one whose worker is down must not hold it up.
LISTING_QUERY_TIMEOUT = timedelta(seconds=5)


async def process_state(client: Client, workflow_id: str, *, rpc_timeout: timedelta | None = None) -> dict[str, Any]:
    """The process's own state query, as JSON-ready data."""
    state: dict[str, Any] = await client.get_workflow_handle(workflow_id).query(
        "state", result_type=dict, rpc_timeout=rpc_timeout
    )
    return state


async def find_processes(
    client: Client, *, status: Status | None = None, process: str | None = None
) -> list[dict[str, Any]]:
    """Running processes in a status and/or of a kind, with their state (what waits for
    approval, what is parked, which renewals wait for their term)."""
    query = ['ExecutionStatus = "Running"']
    if status:
        query.append(f'O2cStatus = "{status.value}"')
    if process:
        query.append(f'O2cProcess = "{process}"')
    found = []
    async for execution in client.list_workflows(" AND ".join(query)):
        try:
            state = await process_state(client, execution.id, rpc_timeout=LISTING_QUERY_TIMEOUT)
        except RPCError as error:  # no worker serves its task queue right now: say so, list the rest
            state = {
                "status": execution.typed_search_attributes.get(STATUS),
                "unavailable": f"no worker answered ({error.message})",
            }
        found.append({"workflow_id": execution.id, "type": execution.workflow_type, **state})
    return found


async def wait_for_status(client: Client, workflow_id: str, status: Status, timeout: float = 60.0) -> dict[str, Any]:
    """Poll a process's state until it reaches `status` (for scripts, the demo and tests)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        state = await process_state(client, workflow_id)
        if state["status"] == status.value:
            return state
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"{workflow_id} did not reach {status.value}; it is {state['status']}: {state['stage']}")
        await asyncio.sleep(0.1)


async def deliver_payment_event(
    client: Client,
    event: PaymentEvent,
    *,
    task_queue: str = "o2c",
    policies: DunningPolicies | None = None,
    approvals: ApprovalPolicy | None = None,
) -> list[str]:
    """Route one payment event to the dunning workflows it concerns; returns their IDs.

    A failed payment starts `dunning-<invoice>` or feeds the running one (signal-with-start,
    so a redelivered webhook lands on the same workflow, which ignores event IDs it has
    seen). A new payment method concerns every running dunning of the customer. Anything
    else only feeds a dunning that is already running: a paid invoice nobody chased needs
    no workflow. A new dunning asks its approvals by `approvals` (unset, the settings'): who
    approves a restriction or a write-off, and how long it waits for them."""
    if event.kind == PaymentEventKind.PAYMENT_FAILED:
        workflow_id = dunning_workflow_id(event.invoice_id)
        try:
            await client.start_workflow(
                DunningWorkflow.run,
                DunningInput(
                    invoice_id=event.invoice_id,
                    account_id=event.account_id,
                    subscription_id=event.subscription_id,
                    policies=policies or DunningPolicies(),
                    approvals=approvals or Settings.from_env().approval_policy,
                    legal_entities=Settings.from_env().legal_entities,
                ),
                id=workflow_id,
                task_queue=task_queue,
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
                start_signal=PAYMENT_EVENT_SIGNAL,
                start_signal_args=[event],
                search_attributes=TypedSearchAttributes(
                    [
                        SearchAttributePair(PROCESS, "dunning"),
                        SearchAttributePair(CUSTOMER, event.account_id),
                        SearchAttributePair(INVOICE, event.invoice_id),
                        SearchAttributePair(STATUS, Status.RUNNING.value),
                    ]
                ),
            )
        except WorkflowAlreadyStartedError:
            return []  # this invoice's dunning has concluded (paid or written off): nothing to feed
        return [workflow_id]
    if event.kind == PaymentEventKind.PAYMENT_METHOD_UPDATED:
        query = f'O2cProcess = "dunning" AND O2cCustomer = "{event.account_id}" AND ExecutionStatus = "Running"'
        targets = [execution.id async for execution in client.list_workflows(query)]
    else:
        targets = [dunning_workflow_id(event.invoice_id)]
    delivered = []
    for workflow_id in targets:
        try:
            await client.get_workflow_handle(workflow_id).signal(PAYMENT_EVENT_SIGNAL, event)
            delivered.append(workflow_id)
        except RPCError as error:
            if error.status != RPCStatusCode.NOT_FOUND:  # not running: nothing to feed
                raise
    return delivered


async def deliver_usage_event(client: Client, event: UsageInvoiceEvent) -> list[str]:
    """Tell `usage-<subscription>-<period>` that billing made its draft (draft_ready) or could
    not finalise it (finalization_failed). A release that does not exist yet, or has ended, is
    not an error: the workflow reads the draft itself when it gets there."""
    workflow_id = usage_workflow_id(event.subscription_id, event.period)
    handle = client.get_workflow_handle(workflow_id)
    try:
        if event.type == "invoice.finalization_failed":
            await handle.signal(
                FINALIZATION_FAILED_SIGNAL, FinalizationFailure(invoice_id=event.invoice_id, reason=event.reason)
            )
        else:
            await handle.signal(DRAFT_READY_SIGNAL, event.invoice_id)
    except RPCError as error:
        if error.status != RPCStatusCode.NOT_FOUND:
            raise
        return []
    return [workflow_id]


# What a parked process waits for: a person, not time.
PARKED = {Status.NEEDS_ATTENTION, Status.AWAITING_APPROVAL}


async def watch_process(
    client: Client, workflow_id: str, *, answered: bool = False, interval: float = 0.5
) -> AsyncIterator[dict[str, Any]]:
    """The process's state each time its status, stage or what it waits for changes, until
    it ends (completed, rejected, rolled back, failed) or parks for a person. A process
    that continues as new is followed into its next run. With `answered`, the process was
    just answered where it parked: the park it is leaving does not end the watch, only a
    new one does."""
    last: tuple[Any, ...] = ()
    leaving: tuple[Any, ...] | None = None
    while True:
        state = await process_state(client, workflow_id)
        status = state.get("status")
        parked = (status, state.get("attention"), state.get("approval"))
        if answered and leaving is None:
            leaving = parked if status in PARKED else ()
        seen = (status, state.get("stage"), state.get("attention"), state.get("approval"))
        if seen != last:
            last = seen
            yield state
            if status in TERMINAL or (status in PARKED and parked != leaving):
                return
        await asyncio.sleep(interval)
