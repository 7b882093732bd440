"""Turn an adapter's classified error into the ApplicationError a workflow acts on."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar

from temporalio import activity
from temporalio.exceptions import ApplicationError

from adapters.errors import AdapterError, BusinessError, IntegrationBug, TransientError

# ApplicationError types the workflows branch on.
TRANSIENT = "TransientError"
FIXABLE = "FixableBusinessError"
BUSINESS = "BusinessError"
BUG = "IntegrationBug"

P = ParamSpec("P")
R = TypeVar("R")


def to_application_error(error: AdapterError) -> ApplicationError:
    details = {"system": error.system, "code": error.code, "status": error.status}
    if isinstance(error, TransientError):
        return ApplicationError(str(error), details, type=TRANSIENT, non_retryable=False)
    if isinstance(error, BusinessError):
        kind = FIXABLE if error.fixable else BUSINESS
        return ApplicationError(error.message, details, type=kind, non_retryable=True)
    if isinstance(error, IntegrationBug):
        activity.logger.error("integration bug", extra={"system": error.system, "code": error.code})
    return ApplicationError(str(error), details, type=BUG, non_retryable=True)


def classified(fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """Let Temporal retry what is transient and hand everything else to the workflow."""

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await fn(*args, **kwargs)
        except AdapterError as error:
            raise to_application_error(error) from error

    return wrapper


def idempotency_key(step: str) -> str:
    """Derived from the workflow and the step: the same on every retry and every worker,
    different for every business step (never the run ID, which changes on reset)."""
    info = activity.info()
    return f"{info.workflow_id}/{step}"
