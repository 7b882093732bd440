"""Who may approve what: the approval policy as data, and the checks it implies."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from canonical.models import ApprovalRequest, Approver, ApproverRole, Model, Proration
from canonical.money import Money

ROLE_RANK = {ApproverRole.FINANCE: 1, ApproverRole.CONTROLLER: 2}


class ApprovalPolicy(Model):
    """Thresholds are in the contract currency's major unit and apply to the change in
    annual contract value (the monthly change times twelve)."""

    max_discount_percent: Decimal = Decimal(20)
    finance_threshold: Decimal = Decimal(10_000)
    controller_threshold: Decimal = Decimal(50_000)
    escalate_after: timedelta = timedelta(hours=72)
    expire_after: timedelta = timedelta(days=7)
    approvers: list[Approver] = [
        Approver(name="fiona.finance", role=ApproverRole.FINANCE),
        Approver(name="frank.finance", role=ApproverRole.FINANCE),
        Approver(name="carla.controller", role=ApproverRole.CONTROLLER),
    ]


def annual_value_change(proration: Proration) -> Money:
    return (proration.monthly_after - proration.monthly_before).times(12)


def amendment_approval(proration: Proration, policy: ApprovalPolicy, requested_by: str) -> ApprovalRequest | None:
    """What approval an amendment needs under the policy, or None when it needs none."""
    change = annual_value_change(proration)
    size = abs(change).amount
    reasons: list[str] = []
    role = ApproverRole.FINANCE
    if proration.max_discount_percent > policy.max_discount_percent:
        reasons.append(f"discount {proration.max_discount_percent}% above the {policy.max_discount_percent}% policy")
    if proration.net.is_negative:
        reasons.append(f"net credit of {-proration.net} to the customer")
    if size > policy.controller_threshold:
        reasons.append(f"annual value change {change} above {policy.controller_threshold}")
        role = ApproverRole.CONTROLLER
    elif size > policy.finance_threshold:
        reasons.append(f"annual value change {change} above {policy.finance_threshold}")
    if not reasons:
        return None
    return ApprovalRequest(required_role=role, reasons=reasons, requested_by=requested_by, amount=change)


def refusal(request: ApprovalRequest, policy: ApprovalPolicy, approver: str, claimed_role: ApproverRole) -> str | None:
    """Why `approver` may not decide `request`, or None when they may."""
    known = {a.name: a for a in policy.approvers}
    who = known.get(approver)
    if who is None:
        return f"{approver!r} is not a known approver"
    if who.role != claimed_role:
        return f"{approver} holds the role {who.role.value}, not {claimed_role.value}"
    if approver == request.requested_by:
        return f"{approver} requested this change and cannot approve it"
    if ROLE_RANK[who.role] < ROLE_RANK[request.required_role]:
        return f"this change needs a {request.required_role.value}; {approver} is {who.role.value}"
    return None
