"""Errors classified at the edge, so nothing above the adapters parses HTTP.

- TransientError: the call may succeed if repeated with the same idempotency key
  (connection failures, timeouts, 409, 429, 5xx). Temporal retries it.
- BusinessError: the system refused on business grounds (validation, a closed period,
  a missing tax jurisdiction). Repeating changes nothing; `fixable` says whether a
  person can correct master data and retry.
- IntegrationBug: o2c or its configuration is wrong (401/403, idempotency mismatch,
  a malformed request). Loud, never retried.

One classifier serves every adapter: each reads its system's error answer into an
`Answer` and hands it to its `ErrorTable`, the shared status rules with the system's own
codes as data.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum


class ErrorKind(StrEnum):
    TRANSIENT = "transient"
    BUSINESS = "business"
    BUG = "bug"


class AdapterError(Exception):
    kind: ErrorKind = ErrorKind.BUG

    def __init__(self, system: str, message: str, *, code: str = "", status: int | None = None, fixable: bool = False):
        self.system = system
        self.message = message
        self.code = code
        self.status = status
        self.fixable = fixable
        super().__init__(f"{system}: {message}" + (f" [{code}]" if code else ""))


class TransientError(AdapterError):
    kind = ErrorKind.TRANSIENT


class BusinessError(AdapterError):
    kind = ErrorKind.BUSINESS


class IntegrationBug(AdapterError):
    kind = ErrorKind.BUG


# -- classifying an error answer ------------------------------------------------------------

# Statuses that say "not now" rather than "no": the same request, with the same key, may
# succeed later. Every status from 500 up is transient as well.
TRANSIENT_STATUSES = frozenset({408, 409, 429})
CREDENTIALS_STATUSES = frozenset({401, 403})


@dataclass(frozen=True)
class Answer:
    """A system's error answer, read from its wire format by its adapter.

    `retry` is the system's own advice when it gives one (Stripe's `Stripe-Should-Retry`,
    AvaTax's server fault): True makes any refusal transient, False makes none so.
    `reason` names what the answer is about when the adapter recognises more than the
    system's code says (NetSuite tells of a closed period only in words)."""

    status: int
    code: str
    message: str
    retry: bool | None = None
    reason: str = ""


@dataclass(frozen=True)
class Rule:
    """How an answer is reported: its kind, a message template (`{message}` is the system's
    own words; other fields come from the caller's context), whether a person can fix it,
    and the code to report when the answer carries none."""

    kind: ErrorKind
    message: str = "{message}"
    fixable: bool = False
    code: str = ""


TRANSIENT = Rule(ErrorKind.TRANSIENT)
_ERROR_OF_KIND: dict[ErrorKind, type[AdapterError]] = {
    ErrorKind.TRANSIENT: TransientError,
    ErrorKind.BUSINESS: BusinessError,
    ErrorKind.BUG: IntegrationBug,
}


@dataclass(frozen=True)
class ErrorTable:
    """One system's classification: the shared status rules, with the system's own codes.

    Rules apply in this order, the first that matches deciding:
    1. `codes`: codes that decide whatever the status (an idempotency mismatch is a bug, an
       exhausted API limit transient);
    2. 401/403: `credentials`, a bug;
    3. the system's retry advice, when it says retry;
    4. `transient_statuses` and 5xx, unless the system advised against retrying;
    5. `business`: the system's business refusals, by the answer's reason or code;
    6. `refused`: any other refusal, a business error."""

    system: str
    credentials: Rule = Rule(ErrorKind.BUG)
    refused: Rule = Rule(ErrorKind.BUSINESS)
    codes: Mapping[str, Rule] = field(default_factory=dict)
    business: Mapping[str, Rule] = field(default_factory=dict)
    transient_statuses: frozenset[int] = TRANSIENT_STATUSES

    def rule_for(self, answer: Answer) -> Rule:
        if answer.code in self.codes:
            return self.codes[answer.code]
        if answer.status in CREDENTIALS_STATUSES:
            return self.credentials
        if answer.retry:
            return TRANSIENT
        if answer.retry is None and (answer.status in self.transient_statuses or answer.status >= 500):
            return TRANSIENT
        for key in (answer.reason, answer.code):
            if key and key in self.business:
                return self.business[key]
        return self.refused

    def classify(self, answer: Answer, **context: str) -> AdapterError:
        rule = self.rule_for(answer)
        return _ERROR_OF_KIND[rule.kind](
            self.system,
            rule.message.format(message=answer.message, **context),
            code=answer.code or rule.code,
            status=answer.status,
            fixable=rule.fixable,
        )
