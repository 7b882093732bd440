"""Front doors for credits, refunds and disputes: typed client functions.

    start_credit(client, request, billing=...)   credit-<credit_id>, validated before it starts
    start_refund(client, request, billing=...)   refund-<refund_id>, an operator's decision
    start_dispute(client, event)                 dispute-<dispute id>: the ingress's entry for
                                                 every charge.dispute.* event (signal-with-start)

A refused request raises InvalidRequest with every problem and starts nothing; so does a
credit for a customer whose legal entity books in an ERP o2c posts no credit memos in (SAP).
Without a
`policy` argument each takes its policy from the settings (O2C_CREDIT_POLICY_FILE,
O2C_DISPUTE_POLICY_FILE; docs/policies.md).
"""

from __future__ import annotations

from temporalio.client import Client, WorkflowHandle
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError

from adapters.ports import BillingPort
from canonical.amendment import InvalidRequest
from canonical.credit import CreditPolicy, RefundRequest, credit_problems, refund_problems
from canonical.credits import CreditRequest, DisputeEvent
from canonical.dispute import DISPUTE_EVENTS, DisputePolicy
from canonical.models import Invoice, LegalEntity, receivables_refusal
from canonical.requests import request_size_problems
from settings import Settings
from starter.client import _start_once
from workflows.credit import CreditInput, CreditResult, CreditWorkflow, credit_workflow_id
from workflows.dispute import DISPUTE_EVENT_SIGNAL, DisputeInput, DisputeWorkflow, dispute_workflow_id
from workflows.kit.process import ProcessWorkflow
from workflows.kit.status import CUSTOMER, INVOICE, PROCESS, STATUS, Status
from workflows.refund import RefundInput, RefundResult, RefundWorkflow, refund_workflow_id


def credit_request_problems(request: CreditRequest, policy: CreditPolicy) -> list[str]:
    """What the request alone shows, before billing is asked: who asks, the currency the
    policy covers, one of lines and amount, positive amounts."""
    problems = []
    if not request.requested_by.strip():
        problems.append("a credit names who asks for it (requested_by)")
    if bool(request.lines) == (request.amount is not None):
        problems.append("name either the invoice lines to credit or an amount, not both and not neither")
    amounts = [x.amount for x in request.lines] + ([request.amount] if request.amount is not None else [])
    for amount in amounts:
        if amount.amount <= 0:
            problems.append(f"a credited amount is positive, not {amount}")
    for currency in sorted({m.currency for m in amounts}):
        uncovered = policy.uncovered(request.reason, currency)
        if uncovered:
            problems.append(uncovered)
    return problems + request_size_problems("credit request", request)


async def entity_of_customer(customer: str, billing: BillingPort, entities: list[LegalEntity]) -> LegalEntity:
    """The legal entity that books a billing customer (the first configured one when billing
    names none), as the processes find it."""
    account = await billing.get_account(customer) if customer else None
    code = account.legal_entity if account else ""
    return ProcessWorkflow.entity_for(entities, code)


async def refuse_unless_receivables(customer: str, billing: BillingPort, entities: list[LegalEntity]) -> LegalEntity:
    """The customer's entity, or InvalidRequest when o2c posts no receivables in its ERP."""
    entity = await entity_of_customer(customer, billing, entities)
    refusal = receivables_refusal(entity)
    if refusal:
        raise InvalidRequest([refusal])
    return entity


async def validate_credit_request(
    request: CreditRequest, billing: BillingPort, policy: CreditPolicy, entities: list[LegalEntity]
) -> Invoice:
    """Everything checkable before a workflow exists; the invoice, or InvalidRequest."""
    problems = credit_request_problems(request, policy)
    if problems:
        raise InvalidRequest(problems)
    invoice = await billing.get_invoice(request.invoice_id)
    problems = credit_problems(request, invoice)
    if problems or invoice is None:
        raise InvalidRequest(problems)
    await refuse_unless_receivables(invoice.account_id, billing, entities)
    return invoice


async def start_credit(
    client: Client,
    request: CreditRequest,
    *,
    billing: BillingPort,
    policy: CreditPolicy | None = None,
    task_queue: str = "o2c",
) -> WorkflowHandle[CreditWorkflow, CreditResult]:
    """Validate, then start `credit-<credit_id>`; the same credit again lands on the same workflow."""
    settings = Settings.from_env()
    policy = policy or settings.credit_policy
    invoice = await validate_credit_request(request, billing, policy, settings.legal_entities)
    return await _start_once(
        client,
        CreditWorkflow.run,
        CreditInput(
            request=request,
            policy=policy,
            approvals=settings.approval_policy,
            legal_entities=settings.legal_entities,
        ),
        workflow_id=credit_workflow_id(request.credit_id),
        task_queue=task_queue,
        process="credit",
        customer=invoice.account_id,
        contract=invoice.metadata.get("contract_id", ""),
    )


async def start_refund(
    client: Client,
    request: RefundRequest,
    *,
    billing: BillingPort,
    policy: CreditPolicy | None = None,
    task_queue: str = "o2c",
) -> WorkflowHandle[RefundWorkflow, RefundResult]:
    """Validate, then start `refund-<refund_id>`, booked in the customer's legal entity."""
    settings = Settings.from_env()
    policy = policy or settings.credit_policy
    problems = refund_problems(request, policy)
    if problems:
        raise InvalidRequest(problems)
    # A refund books only a journal entry, which every ERP takes.
    entity = await entity_of_customer(request.customer, billing, settings.legal_entities)
    return await _start_once(
        client,
        RefundWorkflow.run,
        RefundInput(request=request, policy=policy, approvals=settings.approval_policy, legal_entity=entity),
        workflow_id=refund_workflow_id(request.refund_id),
        task_queue=task_queue,
        process="refund",
        customer=request.customer,
        contract="",
    )


async def start_dispute(
    client: Client, event: DisputeEvent, *, policy: DisputePolicy | None = None, task_queue: str = "o2c"
) -> str | None:
    """Hand one dispute event to `dispute-<dispute id>`, starting it if it is not running
    (signal-with-start: a redelivered event lands on the same workflow, which ignores event
    IDs it has seen). Returns the workflow ID, or None when that dispute's workflow has
    already finished (a late event about a closed dispute changes nothing)."""
    if event.type not in DISPUTE_EVENTS:
        raise InvalidRequest([f"{event.type} is not a dispute event ({', '.join(DISPUTE_EVENTS)})"])
    settings = Settings.from_env()
    workflow_id = dispute_workflow_id(event.dispute.dispute_id)
    try:
        await client.start_workflow(
            DisputeWorkflow.run,
            DisputeInput(
                dispute=event.dispute,
                policy=policy or settings.dispute_policy,
                approvals=settings.approval_policy,
                legal_entities=settings.legal_entities,
            ),
            id=workflow_id,
            task_queue=task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            start_signal=DISPUTE_EVENT_SIGNAL,
            start_signal_args=[event],
            search_attributes=TypedSearchAttributes(
                [
                    SearchAttributePair(PROCESS, "dispute"),
                    SearchAttributePair(CUSTOMER, event.dispute.customer),
                    SearchAttributePair(INVOICE, event.dispute.invoice_id),
                    SearchAttributePair(STATUS, Status.RUNNING.value),
                ]
            ),
        )
    except WorkflowAlreadyStartedError:
        return None
    return workflow_id
