"""A signed identity: it verifies for the workflow, decision and moment it was signed for,
and for nothing else; any change to it, another key, or its expiry refuses it."""

from __future__ import annotations

import base64
import os
import stat
from datetime import UTC, datetime, timedelta

import pytest

from adapters.identity_keys import ASSERTION_LIFETIME, IdentitySigner, public_key_file
from canonical.identity import IdentityAssertion, Role, assertion_refusal

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def signer() -> IdentitySigner:
    return IdentitySigner.generate()


def signed(signer: IdentitySigner, **overrides) -> IdentityAssertion:
    fields = {
        "user": "carla.controller",
        "role": Role.CONTROLLER,
        "workflow_id": "amendment-A-1",
        "decision": "approve",
    }
    return signer.sign(**{**fields, **overrides}, now=NOW)


def check(assertion, keys, *, at=NOW, workflow_id="amendment-A-1", decision="approve"):
    return assertion_refusal(assertion, keys, workflow_id=workflow_id, decision=decision, now=at)


def test_a_signed_identity_verifies_for_what_it_was_signed_for(signer):
    assert check(signed(signer), [signer.public_key]) is None
    # One of several trusted keys (a key being rotated out beside its successor).
    assert check(signed(signer), [IdentitySigner.generate().public_key, signer.public_key]) is None


@pytest.mark.parametrize(
    "field, value",
    [
        ("user", "mallory"),
        ("role", Role.FINANCE),
        ("workflow_id", "amendment-A-2"),
        ("decision", "reject"),
        ("expires_at", NOW + timedelta(days=365)),
    ],
)
def test_any_change_to_a_signed_identity_breaks_its_signature(signer, field, value):
    tampered = signed(signer).model_copy(update={field: value})
    reason = check(tampered, [signer.public_key], workflow_id=tampered.workflow_id, decision=tampered.decision)
    assert reason is not None and "signature does not match" in reason


def test_a_missing_garbled_or_unknown_signature_is_refused(signer):
    assert "no signed identity" in (check(None, [signer.public_key]) or "")
    garbled = signed(signer).model_copy(update={"signature": "not base64!"})
    assert "signature does not match" in (check(garbled, [signer.public_key]) or "")
    blank = signed(signer).model_copy(update={"signature": base64.b64encode(b"\0" * 64).decode()})
    assert "signature does not match" in (check(blank, [signer.public_key]) or "")
    stranger = IdentitySigner.generate()
    assert "does not trust" in (check(signed(stranger), [signer.public_key]) or "")
    # A key id that names a trusted key does not make another key's signature valid.
    forged = signed(stranger).model_copy(update={"key_id": signer.key_id})
    assert "signature does not match" in (check(forged, [signer.public_key]) or "")
    assert "does not trust" in (check(signed(signer), []) or "")


def test_an_identity_holds_for_its_own_workflow_and_decision_only(signer):
    assertion = signed(signer)
    assert "not amendment-A-2" in (check(assertion, [signer.public_key], workflow_id="amendment-A-2") or "")
    assert "not to reject" in (check(assertion, [signer.public_key], decision="reject") or "")


def test_an_identity_expires(signer):
    assertion = signed(signer)
    assert assertion.expires_at == NOW + ASSERTION_LIFETIME
    assert check(assertion, [signer.public_key], at=NOW + ASSERTION_LIFETIME - timedelta(seconds=1)) is None
    assert "expired" in (check(assertion, [signer.public_key], at=NOW + ASSERTION_LIFETIME) or "")


def test_an_assertion_refuses_unknown_fields(signer):
    with pytest.raises(ValueError, match="approved_by"):
        IdentityAssertion.model_validate({**signed(signer).model_dump(), "approved_by": "carla"})


def test_the_key_file_is_created_once_private_with_its_public_half_beside_it(tmp_path):
    path = tmp_path / "state" / "identity.key"
    first = IdentitySigner.from_file(path, create=True)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert public_key_file(path).read_text().strip() == first.public_key
    again = IdentitySigner.from_file(path, create=True)
    assert again.public_key == first.public_key
    with pytest.raises(FileNotFoundError):
        IdentitySigner.from_file(tmp_path / "none.key")


def test_processes_started_now_trust_the_key_files_public_half_and_the_configured_keys(tmp_path, monkeypatch):
    from settings import Settings

    key = tmp_path / "identity.key"
    monkeypatch.setenv("O2C_IDENTITY_KEY_FILE", str(key))
    monkeypatch.delenv("O2C_IDENTITY_PUBLIC_KEYS", raising=False)
    assert Settings.from_env().approval_policy.identity_keys == []  # no key yet: decisions by name
    signer = IdentitySigner.from_file(key, create=True)
    assert Settings.from_env().approval_policy.identity_keys == [signer.public_key]
    other = IdentitySigner.generate().public_key
    monkeypatch.setenv("O2C_IDENTITY_PUBLIC_KEYS", f"{other}, {signer.public_key}")
    assert Settings.from_env().approval_policy.identity_keys == [other, signer.public_key]
