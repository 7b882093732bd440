"""The exception queue: a step that failed for a reason a person can fix parks here.

The workflow stays alive in `needs_attention` with the explanation until an operator
answers `retry` (after fixing the cause), `skip` (the step is done by hand or not needed)
or `abort` (undo what was done).
"""

from __future__ import annotations

import builtins
from collections.abc import Callable
from datetime import datetime, timedelta
from enum import StrEnum

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, ChildWorkflowError, TimeoutError

with workflow.unsafe.imports_passed_through():
    from activities.errors import FIXABLE, TRANSIENT
    from canonical.identity import RESOLVING_ROLES, IdentityAssertion, assertion_refusal
    from canonical.models import Model


class OperatorAction(StrEnum):
    """What an operator answers a process that waits in the exception queue."""

    RETRY = "retry"
    SKIP = "skip"
    ABORT = "abort"


class ResolveInput(Model):
    action: OperatorAction
    operator: str
    comment: str = ""
    # The operator's signed identity (canonical/identity.py), carried since RELEASE_CONSOLE.
    assertion: IdentityAssertion | None = None


class Attention(Model):
    step: str
    message: str
    system: str = ""
    code: str = ""
    since: datetime
    actions: list[OperatorAction]


class Resolution(Model):
    step: str
    action: OperatorAction
    operator: str
    comment: str = ""
    at: datetime


class Problem(Model):
    message: str
    system: str = ""
    code: str = ""


def explain(error: BaseException) -> tuple[Problem, bool]:
    """What went wrong in words for an analyst, and whether a person can fix it."""
    cause = _cause(error)
    if outcome_unknown(error):
        # Retries ran out of the step window: the system has been failing or unreachable
        # all along. A person can retry once it is back, or decide otherwise.
        last = cause.message if isinstance(cause, ApplicationError) else "no answer"
        return Problem(
            message=f"still failing after retrying for the whole step window ({last}); retry once the system is back"
        ), True
    if isinstance(cause, ApplicationError):
        details = cause.details[0] if cause.details and isinstance(cause.details[0], dict) else {}
        problem = Problem(
            message=cause.message,
            system=str(details.get("system") or ""),
            code=str(details.get("code") or ""),
        )
        return problem, cause.type == FIXABLE
    return Problem(message=str(cause or error)), False


def _cause(error: BaseException) -> BaseException | None:
    """The failure under an activity's (or a child workflow's activity's) error."""
    while isinstance(error, (ActivityError, ChildWorkflowError)) and error.cause is not None:
        error = error.cause
    return error


def outcome_unknown(error: BaseException) -> bool:
    """True when the remote system may or may not have done the work: retries of a
    transient failure ran out of time. Any other failure means the request was refused."""
    cause = _cause(error)
    return isinstance(cause, TimeoutError) or (isinstance(cause, ApplicationError) and cause.type == TRANSIENT)


class ExceptionQueue:
    def __init__(self, signed_release: Callable[[], bool] = lambda: False) -> None:
        """`signed_release()` asks, in workflow code, whether this run takes RELEASE_CONSOLE."""
        self._signed_release = signed_release
        self.signed = False
        # The public keys an answer's signed identity is verified with (the process's policy's).
        self.identity_keys: list[str] = []
        self.attention: Attention | None = None
        self.resolutions: list[Resolution] = []
        self._answer: ResolveInput | None = None

    def validate(self, answer: ResolveInput) -> None:
        if self.attention is None:
            raise ValueError("this process is not waiting for an operator")
        if not answer.operator.strip():
            raise ValueError("say who you are: sign in with `o2c login`")
        if answer.action not in self.attention.actions:
            allowed = ", ".join(a.value for a in self.attention.actions)
            raise ValueError(f"{answer.action.value} is not possible for step {self.attention.step}; choose {allowed}")
        if self.signed and self.identity_keys:
            self._verify(answer)

    def _verify(self, answer: ResolveInput) -> None:
        """The answer's identity is signed by a trusted key, for this process, this action and
        this moment, names the operator the answer records, and holds a role that resolves."""
        reason = assertion_refusal(
            answer.assertion,
            self.identity_keys,
            workflow_id=workflow.info().workflow_id,
            decision=f"resolve:{answer.action.value}",
            now=workflow.now(),
        )
        if reason:
            raise ValueError(reason)
        assert answer.assertion is not None
        if answer.assertion.user != answer.operator:
            raise ValueError(f"the answer names {answer.operator} but its identity is {answer.assertion.user}")
        if answer.assertion.role not in RESOLVING_ROLES:
            raise ValueError(f"{answer.operator} is {answer.assertion.role.value}: a viewer does not answer the queue")

    def resolve(self, answer: ResolveInput) -> None:
        self._answer = answer

    async def park(
        self, step: str, problem: Problem, actions: list[OperatorAction], timeout: timedelta | None = None
    ) -> OperatorAction | None:
        """Wait for an operator's answer; None when `timeout` passes unanswered."""
        self._answer = None
        # Asked in workflow code when the process parks (a validator may not ask).
        self.signed = self._signed_release()
        self.attention = Attention(
            step=step,
            message=problem.message,
            system=problem.system,
            code=problem.code,
            since=workflow.now(),
            actions=actions,
        )
        try:
            await workflow.wait_condition(lambda: self._answer is not None, timeout=timeout)
        except builtins.TimeoutError:
            self.attention = None
            return None
        answer = self._answer
        assert answer is not None
        self.resolutions.append(
            Resolution(
                step=step, action=answer.action, operator=answer.operator, comment=answer.comment, at=workflow.now()
            )
        )
        self.attention = None
        self._answer = None
        return answer.action
