"""Who decides: a signed assertion of an authenticated identity, and its pure verification.

A front door that has authenticated a person (an API token of theirs, or a console session)
signs, with o2c's Ed25519 identity key, who they are, the role they hold, the process and
the decision they make, and until when the assertion holds. A Temporal update carries the
assertion; the workflow's validator verifies it against the public keys the process was
started with (they sit in its approval policy, safe in history: a public key lets nobody
sign). Anyone who talks to Temporal directly can type a name, but cannot sign one.

Verification is pure (no clock but the `now` it is given, no I/O), so a validator may run it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from datetime import datetime
from enum import StrEnum

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import BaseModel, ConfigDict

# Bumped if the signed message ever changes shape, so an old signature never reads as new.
ASSERTION_VERSION = "o2c-identity-1"


class Role(StrEnum):
    """What a user of o2c may do: finance and controllers approve (a controller any amount),
    operators answer the exception queue, viewers read."""

    FINANCE = "finance"
    CONTROLLER = "controller"
    OPERATOR = "operator"
    VIEWER = "viewer"


# Who may answer the exception queue (retry, skip, abort).
RESOLVING_ROLES = frozenset({Role.OPERATOR, Role.FINANCE, Role.CONTROLLER})


class IdentityAssertion(BaseModel):
    """`user`, acting as `role`, makes `decision` on `workflow_id`, until `expires_at` (a
    few minutes after signing: a captured assertion is worth little for long)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    user: str
    role: Role
    workflow_id: str
    decision: str  # "approve", "reject", or "resolve:<action>"
    expires_at: datetime
    key_id: str  # which identity key signed (its public key's fingerprint)
    signature: str = ""  # base64 of the Ed25519 signature over message()

    def message(self) -> bytes:
        """The bytes signed: every field but the signature, in one canonical JSON line."""
        fields = {
            "v": ASSERTION_VERSION,
            "user": self.user,
            "role": self.role.value,
            "workflow_id": self.workflow_id,
            "decision": self.decision,
            "expires_at": self.expires_at.isoformat(),
            "key_id": self.key_id,
        }
        return json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()


def key_id(public_key: str) -> str:
    """A short fingerprint naming a public key (the first 16 hex digits of its bytes' hash)."""
    return hashlib.sha256(public_key.encode()).hexdigest()[:16]


def _public_key(encoded: str) -> Ed25519PublicKey | None:
    try:
        raw = base64.b64decode(encoded, validate=True)
        return Ed25519PublicKey.from_public_bytes(raw)
    except (binascii.Error, ValueError):
        return None


def _warm_up_invalid_signature() -> None:
    """Raise InvalidSignature once, now. cryptography's native code imports the exception
    class the first time it raises it, and caches it for the process; inside Temporal's
    workflow sandbox that first import fails and aborts the worker. Modules import outside
    the sandbox first (the worker imports its workflows), so the cache is filled in time."""
    key = Ed25519PublicKey.from_public_bytes(bytes(32))
    try:
        key.verify(bytes(64), b"")
    except (InvalidSignature, ValueError):
        pass


_warm_up_invalid_signature()


def assertion_refusal(
    assertion: IdentityAssertion | None,
    trusted_keys: list[str],
    *,
    workflow_id: str,
    decision: str,
    now: datetime,
) -> str | None:
    """Why `assertion` does not authenticate `decision` on `workflow_id` at `now`, or None
    when it does. `trusted_keys` are base64 Ed25519 public keys."""
    if assertion is None:
        return "the decision carries no signed identity: sign in with `o2c login` and answer through o2c"
    key = next((k for k in trusted_keys if key_id(k) == assertion.key_id), None)
    public = _public_key(key) if key else None
    if public is None:
        return f"the identity was signed by key {assertion.key_id}, which this process does not trust"
    try:
        public.verify(base64.b64decode(assertion.signature, validate=True), assertion.message())
    except (InvalidSignature, binascii.Error, ValueError):
        return "the identity's signature does not match: the assertion was altered or forged"
    if assertion.workflow_id != workflow_id:
        return f"the identity was signed for {assertion.workflow_id}, not {workflow_id}"
    if assertion.decision != decision:
        return f"the identity was signed to {assertion.decision}, not to {decision}"
    if now >= assertion.expires_at:
        return f"the identity expired at {assertion.expires_at.isoformat()}: answer again"
    return None
