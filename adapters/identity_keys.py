"""o2c's identity key: the Ed25519 private key that signs who decides (canonical/identity.py).

Only a front door that authenticates people holds it (the CLI on the embedded stack, the
console in production). The workers never do: processes verify with the public key, which
the starters put in each process's approval policy. The embedded default is a key generated
once into the state directory (mode 0600).
"""

from __future__ import annotations

import base64
import os
from datetime import datetime, timedelta
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from canonical.identity import IdentityAssertion, Role, key_id

# How long a signed decision holds: long enough to reach Temporal, too short to be worth
# capturing.
ASSERTION_LIFETIME = timedelta(minutes=2)


def public_key_of(private: Ed25519PrivateKey) -> str:
    raw = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode()


class IdentitySigner:
    def __init__(self, private: Ed25519PrivateKey):
        self._private = private
        self.public_key = public_key_of(private)
        self.key_id = key_id(self.public_key)

    @classmethod
    def generate(cls) -> IdentitySigner:
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_file(cls, path: Path, *, create: bool = False) -> IdentitySigner:
        """The key in `path` (PEM, PKCS#8); with `create`, one generated there first when the
        file does not exist, readable by its owner only."""
        if not path.exists():
            if not create:
                raise FileNotFoundError(f"no identity key at {path}")
            path.parent.mkdir(parents=True, exist_ok=True)
            pem = Ed25519PrivateKey.generate().private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
            try:
                descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:  # another front door created it meanwhile
                pass
            else:
                with os.fdopen(descriptor, "wb") as file:
                    file.write(pem)
        private = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(private, Ed25519PrivateKey):
            raise ValueError(f"{path} holds no Ed25519 private key")
        signer = cls(private)
        # The public half beside it, for the starters (settings.py reads it without crypto).
        public = public_key_file(path)
        if not public.exists() or public.read_text().strip() != signer.public_key:
            public.write_text(signer.public_key + "\n")
        return signer

    def sign(self, *, user: str, role: Role, workflow_id: str, decision: str, now: datetime) -> IdentityAssertion:
        unsigned = IdentityAssertion(
            user=user,
            role=role,
            workflow_id=workflow_id,
            decision=decision,
            expires_at=now + ASSERTION_LIFETIME,
            key_id=self.key_id,
        )
        signature = base64.b64encode(self._private.sign(unsigned.message())).decode()
        return unsigned.model_copy(update={"signature": signature})


def public_key_file(path: Path) -> Path:
    return path.with_name(path.name + ".pub")
