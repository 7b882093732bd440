"""Who may approve what: the approval policy as data, and the checks it implies."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

from pydantic import field_validator

from canonical.models import ApprovalRequest, Approver, ApproverRole, Model, Proration
from canonical.money import Money
from canonical.policy_amounts import PerCurrency, UncoveredCurrency, per_currency

ROLE_RANK = {ApproverRole.FINANCE: 1, ApproverRole.CONTROLLER: 2}

# The currencies every policy amount has a default for, and what the defaults are worth: each
# is about the USD amount at rounded rates (JPY about 150 to the dollar).
FINANCE_THRESHOLDS = per_currency(USD=10_000, EUR=9_000, GBP=8_000, CAD=13_500, AUD=15_000, JPY=1_500_000)
CONTROLLER_THRESHOLDS = per_currency(USD=50_000, EUR=45_000, GBP=40_000, CAD=67_500, AUD=75_000, JPY=7_500_000)


def as_per_currency(value: Any) -> Any:
    """A policy file states an amount per currency as a plain table, {"USD": 10000, "JPY":
    1500000}; {"amounts": {...}} (the model's own shape) is read as well."""
    if isinstance(value, dict) and "amounts" not in value:
        return {"amounts": value}
    return value


def identity(name: str) -> str:
    """A principal's id as compared for segregation of duties: trimmed and case-folded, so
    "Fiona.Finance " and "fiona.finance" are one person."""
    return name.strip().casefold()


class ApprovalPolicy(Model):
    """Thresholds apply to the change in annual contract value (the monthly change times
    twelve) and are stated per currency (`finance_thresholds`, `controller_thresholds`).

    `finance_threshold` and `controller_threshold` are the bare numbers of the releases before
    o2c-cash: runs that started then hold them in their input and still decide by them; new
    runs read the per-currency tables."""

    max_discount_percent: Decimal = Decimal(20)
    finance_threshold: Decimal = Decimal(10_000)
    controller_threshold: Decimal = Decimal(50_000)
    finance_thresholds: PerCurrency = FINANCE_THRESHOLDS
    controller_thresholds: PerCurrency = CONTROLLER_THRESHOLDS
    # How long a request waits for a person before it escalates, then expires: a person's
    # time, whatever a process's calendar day lasts (since o2c-console, a dunning's too).
    escalate_after: timedelta = timedelta(hours=72)
    expire_after: timedelta = timedelta(days=7)
    approvers: list[Approver] = [
        Approver(name="fiona.finance", role=ApproverRole.FINANCE),
        Approver(name="frank.finance", role=ApproverRole.FINANCE),
        Approver(name="carla.controller", role=ApproverRole.CONTROLLER),
    ]
    # The Ed25519 public keys (base64) whose signed identities decide (canonical/identity.py).
    # When there are any, the approver is whoever a valid signature names, in the role it
    # names: o2c's user directory vouched for them, and `approvers` is not consulted.
    identity_keys: list[str] = []

    @field_validator("finance_thresholds", "controller_thresholds", mode="before")
    @classmethod
    def _tables(cls, value: Any) -> Any:
        return as_per_currency(value)

    def uncovered(self, currency: str) -> str | None:
        """Why this policy cannot decide a process in `currency`, or None when it can."""
        try:
            self.finance_limit(currency)
            self.controller_limit(currency)
        except UncoveredCurrency as error:
            return str(error)
        return None

    def finance_limit(self, currency: str) -> Money:
        return self.finance_thresholds.of(currency, what="the finance approval threshold")

    def controller_limit(self, currency: str) -> Money:
        return self.controller_thresholds.of(currency, what="the controller approval threshold")

    def limits(self, currency: str, *, per_currency: bool = True) -> tuple[Decimal, Decimal]:
        """(finance, controller) thresholds in `currency`, major units. `per_currency=False`
        gives the bare numbers runs before o2c-cash decided by, whatever the currency."""
        if not per_currency:
            return self.finance_threshold, self.controller_threshold
        return self.finance_limit(currency).amount, self.controller_limit(currency).amount

    def role_for(self, amount: Money, *, per_currency: bool = True) -> ApproverRole:
        """Who approves an amount of money by its size alone: a controller above the
        controller threshold, else finance."""
        _, controller = self.limits(amount.currency, per_currency=per_currency)
        return ApproverRole.CONTROLLER if abs(amount).amount > controller else ApproverRole.FINANCE

    def approver(self, name: str) -> Approver | None:
        """The approver `name` identifies, compared as identities (see `identity`)."""
        wanted = identity(name)
        return next((a for a in self.approvers if identity(a.name) == wanted), None)


def annual_value_change(proration: Proration) -> Money:
    return (proration.monthly_after - proration.monthly_before).times(12)


def amendment_approval(
    proration: Proration, policy: ApprovalPolicy, requested_by: str, *, per_currency: bool = True
) -> ApprovalRequest | None:
    """What approval an amendment needs under the policy, or None when it needs none.

    `per_currency=False` decides as runs before o2c-cash did (bare thresholds read in any
    currency); otherwise a currency the policy does not state raises UncoveredCurrency."""
    change = annual_value_change(proration)
    size = abs(change).amount
    finance, controller = policy.limits(change.currency, per_currency=per_currency)
    # Runs since o2c-cash name the threshold with its currency; older ones named the number.
    finance_text = Money.of(finance, change.currency, rounded=True) if per_currency else finance
    controller_text = Money.of(controller, change.currency, rounded=True) if per_currency else controller
    reasons: list[str] = []
    role = ApproverRole.FINANCE
    if proration.max_discount_percent > policy.max_discount_percent:
        reasons.append(f"discount {proration.max_discount_percent}% above the {policy.max_discount_percent}% policy")
    if proration.net.is_negative:
        reasons.append(f"net credit of {-proration.net} to the customer")
    if size > controller:
        reasons.append(f"annual value change {change} above {controller_text}")
        role = ApproverRole.CONTROLLER
    elif size > finance:
        reasons.append(f"annual value change {change} above {finance_text}")
    if not reasons:
        return None
    return ApprovalRequest(required_role=role, reasons=reasons, requested_by=requested_by, amount=change)


def refusal(
    request: ApprovalRequest,
    policy: ApprovalPolicy,
    approver: str,
    claimed_role: ApproverRole,
    *,
    vouched: bool = False,
) -> str | None:
    """Why `approver` may not decide `request`, or None when they may. Names are compared as
    identities (trimmed, case-folded): typing one's own name differently changes nothing.
    `vouched`: a verified signature names the approver and their role, so they are known.

    This decides only in update validators, so the stricter comparison needs no
    workflow.patched: a refused update writes no history, and an accepted one replays
    without its validator being run again (docs/workflow-changes.md, o2c-cash)."""
    who = Approver(name=approver, role=claimed_role) if vouched else policy.approver(approver)
    if who is None:
        return f"{approver!r} is not a known approver"
    if who.role != claimed_role:
        return f"{approver} holds the role {who.role.value}, not {claimed_role.value}"
    if identity(approver) == identity(request.requested_by):
        return f"{approver} requested this change and cannot approve it"
    if ROLE_RANK[who.role] < ROLE_RANK[request.required_role]:
        return f"this change needs a {request.required_role.value}; {approver} is {who.role.value}"
    return None
