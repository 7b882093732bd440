"""o2c's users, tokens and audit log, on SQLite and (when configured) PostgreSQL, which is
shared between runs: every test names users of its own."""

from __future__ import annotations

import secrets

import pytest
import sqlalchemy as sa

from adapters.storage.tables import api_tokens, users
from adapters.storage.users import IdentityError, SqlIdentities
from canonical.identity import Role

PASSWORD = "correct horse battery"


@pytest.fixture
def store(database_url):
    identities = SqlIdentities(database_url)
    yield identities
    identities.close()


def someone() -> str:
    return f"fiona.{secrets.token_hex(4)}"


def test_passwords_are_kept_as_argon2_hashes_and_sign_in_issues_a_token(store):
    name = someone()
    store.add_user(name, Role.FINANCE, PASSWORD)
    with store.engine.connect() as db:
        hashed = db.execute(sa.select(users.c.password_hash).where(users.c.name == name)).scalar_one()
    assert hashed.startswith("$argon2id$") and PASSWORD not in hashed

    secret, principal = store.sign_in(name, PASSWORD)
    assert secret.startswith("o2c_pat_") and principal.role == Role.FINANCE and principal.kind == "personal"
    with store.engine.connect() as db:
        stored = db.execute(sa.select(api_tokens.c.token_hash).where(api_tokens.c.owner == name)).scalars().all()
    assert stored and secret not in stored  # only the hash
    assert store.authenticate(secret) == principal
    assert [e["action"] for e in store.audit(actor=name)] == ["sign_in"]


def test_a_wrong_password_or_unknown_user_is_refused_alike_and_audited(store):
    name = someone()
    store.add_user(name, Role.CONTROLLER, PASSWORD)
    with pytest.raises(IdentityError, match="wrong name or password") as wrong:
        store.sign_in(name, PASSWORD + "!")
    with pytest.raises(IdentityError) as unknown:
        store.sign_in(name + "x", PASSWORD)
    assert str(wrong.value) == str(unknown.value)
    assert [e["action"] for e in store.audit(actor=name)] == ["sign_in.refused"]


def test_bad_names_short_passwords_and_duplicates_are_refused(store):
    with pytest.raises(IdentityError, match="not a valid name"):
        store.add_user("Carla\nController", Role.CONTROLLER, PASSWORD)
    with pytest.raises(IdentityError, match="at least 12"):
        store.add_user(someone(), Role.FINANCE, "short")
    name = someone()
    store.add_user(name, Role.FINANCE, PASSWORD)
    with pytest.raises(IdentityError, match="already"):
        store.add_user(name, Role.CONTROLLER, PASSWORD)


def test_revoked_tokens_and_disabled_users_authenticate_no_more(store):
    name = someone()
    store.add_user(name, Role.OPERATOR, PASSWORD)
    first, principal = store.sign_in(name, PASSWORD)
    second, _ = store.sign_in(name, PASSWORD)
    store.revoke(token_id=principal.token_id, actor=name)
    with pytest.raises(IdentityError, match="revoked"):
        store.authenticate(first)
    assert store.authenticate(second).name == name
    store.disable_user(name)
    with pytest.raises(IdentityError):
        store.authenticate(second)
    with pytest.raises(IdentityError):
        store.sign_in(name, PASSWORD)
    assert any(u.name == name and u.disabled_at for u in store.users())
    with pytest.raises(IdentityError, match="no such token"):
        store.revoke(token_id=principal.token_id, actor=name)
    with pytest.raises(IdentityError, match="unknown"):
        store.authenticate("o2c_pat_made_up")


def test_a_machine_key_has_no_role(store):
    machine = f"crm-{secrets.token_hex(4)}"
    secret, principal = store.add_machine_key(machine)
    assert secret.startswith("o2c_key_")
    assert store.authenticate(secret) == principal and principal.role is None and principal.kind == "machine"
    assert [t["kind"] for t in store.tokens(machine)] == ["machine"]


def test_decisions_are_audited(store):
    name = someone()
    store.add_user(name, Role.CONTROLLER, PASSWORD)
    _, principal = store.sign_in(name, PASSWORD)
    workflow_id = f"amendment-{secrets.token_hex(4)}"
    store.record_decision(principal, workflow_id, "approved", {"comment": "ok"})
    [entry] = store.audit(subject=workflow_id)
    assert entry["actor"] == name and entry["action"] == "decision"
    assert entry["detail"] == {"decision": "approved", "comment": "ok"}


def test_a_new_password_replaces_the_old_one(store):
    name = someone()
    store.add_user(name, Role.FINANCE, PASSWORD)
    store.set_password(name, "another long password")
    with pytest.raises(IdentityError):
        store.sign_in(name, PASSWORD)
    assert store.sign_in(name, "another long password")[1].name == name
    with pytest.raises(IdentityError, match="at least 12"):
        store.set_password(name, "short")
