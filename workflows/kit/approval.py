"""The approval gate: one pending request, decided through a validated Temporal update.

The validator runs before anything is written to history, so an unknown approver, a role
too low for the amount, or a requester approving their own change is refused at once and
leaves no trace. Since RELEASE_CONSOLE a process whose policy names identity keys takes a
decision only with an identity signed by one of them (canonical/identity.py): the approver
and role are the signed ones, never a typed name. No decision within `escalate_after`
escalates (once); none within `expire_after` expires the request, which the process treats
as a rejection.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from canonical.approval import ApprovalPolicy, refusal
    from canonical.identity import IdentityAssertion, assertion_refusal
    from canonical.models import ApprovalDecision, ApprovalRequest, ApproverRole, Model


class DecisionInput(Model):
    """What an approver sends: who they are, the role they act in, and their answer; since
    RELEASE_CONSOLE with the signed assertion of who they are."""

    approver: str
    role: ApproverRole
    approved: bool
    comment: str = ""
    assertion: IdentityAssertion | None = None


def decision_verb(approved: bool) -> str:
    """What an assertion signs that its holder does: approve or reject."""
    return "approve" if approved else "reject"


class ApprovalState(Model):
    request: ApprovalRequest | None = None
    decision: ApprovalDecision | None = None
    escalated_at: datetime | None = None
    expired_at: datetime | None = None
    # While a request waits: when it escalates and when it expires, by its policy's windows.
    escalates_at: datetime | None = None
    expires_at: datetime | None = None


class ApprovalGate:
    def __init__(self, signed_release: Callable[[], bool] = lambda: False) -> None:
        """`signed_release()` asks, in workflow code, whether this run takes RELEASE_CONSOLE."""
        self._signed_release = signed_release
        self.signed = False
        self.policy = ApprovalPolicy()
        self.request: ApprovalRequest | None = None
        self.decision: ApprovalDecision | None = None
        self.escalated_at: datetime | None = None
        self.expired_at: datetime | None = None
        self.withdrawn_at: datetime | None = None
        self._escalate_at = self._expire_at = datetime.min

    @property
    def waiting(self) -> bool:
        return (
            self.request is not None and self.decision is None and self.expired_at is None and self.withdrawn_at is None
        )

    def validate(self, decision: DecisionInput) -> None:
        if not self.waiting:
            raise ValueError("nothing is waiting for approval on this process")
        assert self.request is not None
        vouched = self.signed and bool(self.policy.identity_keys)
        if vouched:
            self._verify(decision)
        reason = refusal(self.request, self.policy, decision.approver, decision.role, vouched=vouched)
        if reason:
            raise ValueError(reason)
        if not decision.approved and not decision.comment.strip():
            raise ValueError("a rejection needs a comment saying why")

    def _verify(self, decision: DecisionInput) -> None:
        """The decision's identity is signed by a key the process trusts, for this process,
        this answer and this moment, and names the approver and role the decision claims."""
        reason = assertion_refusal(
            decision.assertion,
            self.policy.identity_keys,
            workflow_id=workflow.info().workflow_id,
            decision=decision_verb(decision.approved),
            now=workflow.now(),
        )
        if reason:
            raise ValueError(reason)
        assert decision.assertion is not None
        if decision.assertion.user != decision.approver or decision.assertion.role.value != decision.role.value:
            raise ValueError(
                f"the decision names {decision.approver} ({decision.role.value}) but its identity is "
                f"{decision.assertion.user} ({decision.assertion.role.value})"
            )

    def record(self, decision: DecisionInput) -> ApprovalDecision:
        self.decision = ApprovalDecision(
            approver=decision.approver,
            role=decision.role,
            approved=decision.approved,
            comment=decision.comment,
            decided_at=workflow.now(),
        )
        return self.decision

    async def wait(
        self,
        request: ApprovalRequest,
        policy: ApprovalPolicy,
        escalate: Callable[[ApprovalRequest], Awaitable[object]],
        *,
        interrupt: Callable[[], bool] = lambda: False,
    ) -> ApprovalDecision | None:
        """Wait for a decision. None means expired, or `interrupt()` became true first;
        calling again while the request is still open resumes the same deadlines."""
        if not self.waiting:
            self.policy = policy
            # Asked when a request opens, in workflow code (a validator may not ask): runs of
            # earlier releases keep taking decisions by name, as they were started to.
            self.signed = self._signed_release()
            now = workflow.now()
            self.request = request.model_copy(update={"requested_at": now})
            self.decision = None
            self.escalated_at = self.expired_at = self.withdrawn_at = None
            self._escalate_at = now + policy.escalate_after
            self._expire_at = now + policy.expire_after
        while self.decision is None:
            if interrupt():
                return None
            now = workflow.now()
            if self.escalated_at is None and now >= self._escalate_at:
                self.escalated_at = now
                assert self.request is not None
                await escalate(self.request)
                continue
            if now >= self._expire_at:
                self.expired_at = now
                return None
            deadline = self._escalate_at if self.escalated_at is None else self._expire_at
            try:
                await workflow.wait_condition(
                    lambda: self.decision is not None or interrupt(),
                    timeout=max((deadline - now).total_seconds(), 0.001),
                )
            except TimeoutError:
                pass
        return self.decision

    def withdraw(self) -> None:
        """The question no longer needs an answer (e.g. the customer paid meanwhile)."""
        if self.waiting:
            self.withdrawn_at = workflow.now()

    def snapshot(self) -> ApprovalState:
        return ApprovalState(
            request=self.request,
            decision=self.decision,
            escalated_at=self.escalated_at,
            expired_at=self.expired_at,
            escalates_at=self._escalate_at if self.waiting and self.escalated_at is None else None,
            expires_at=self._expire_at if self.waiting else None,
        )
