"""Errors classified at the edge, so nothing above the adapters parses HTTP.

- TransientError: the call may succeed if repeated with the same idempotency key
  (connection failures, timeouts, 409, 429, 5xx). Temporal retries it.
- BusinessError: the system refused on business grounds (validation, a closed period,
  a missing tax jurisdiction). Repeating changes nothing; `fixable` says whether a
  person can correct master data and retry.
- IntegrationBug: o2c or its configuration is wrong (401/403, idempotency mismatch,
  a malformed request). Loud, never retried.
"""

from __future__ import annotations

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
