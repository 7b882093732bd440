"""Deciding as a signed-in person: the CLI's token, o2c's identity key, and the signed
decision a Temporal update carries (docs/identity.md).

The approver and role come from the token's user as o2c's database knows them now, never
from the command line. Every decision is written to the audit log, refusals too.
"""

from __future__ import annotations

import os
import secrets
from datetime import UTC, datetime
from pathlib import Path

from temporalio.client import Client, WorkflowUpdateFailedError

from adapters.identity_keys import IdentitySigner
from adapters.storage.users import IdentityError, Principal, SqlIdentities
from canonical.identity import RESOLVING_ROLES, IdentityAssertion, Role
from canonical.models import ApproverRole
from settings import Settings
from starter.console import Refused
from workflows.kit.approval import decision_verb
from workflows.kit.attention import OperatorAction


def identities(settings: Settings) -> SqlIdentities:
    return SqlIdentities(settings.database_url)


def signer(settings: Settings) -> IdentitySigner:
    """o2c's identity key, generated into the state directory the first time it is needed."""
    return IdentitySigner.from_file(settings.identity_key_file, create=True)


def store_token(path: Path, secret: str) -> None:
    """Write the token readable by its owner only (0600), replacing any earlier one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".new")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(secret + "\n")
    os.chmod(temporary, 0o600)
    temporary.replace(path)


def stored_token(settings: Settings) -> str:
    try:
        return settings.token_file.read_text().strip()
    except FileNotFoundError:
        raise Refused("not signed in: run `o2c login` first (approve, reject and resolve act as you)") from None


def signed_in(settings: Settings) -> Principal:
    """The person the stored token belongs to, as the database knows them now."""
    store = identities(settings)
    try:
        return store.authenticate(stored_token(settings))
    except IdentityError as error:
        raise Refused(str(error)) from None
    finally:
        store.close()


def approver_role(principal: Principal) -> ApproverRole:
    if principal.kind == "machine":
        raise Refused(f"{principal.name} signs in with a machine API key: machines start processes, never decide")
    if principal.role is None or principal.role.value not in {r.value for r in ApproverRole}:
        role = principal.role.value if principal.role else "none"
        raise Refused(f"{principal.name} holds the role {role}: only finance and controllers approve or reject")
    return ApproverRole(principal.role.value)


def sign_decision(settings: Settings, principal: Principal, workflow_id: str, approved: bool) -> IdentityAssertion:
    approver_role(principal)  # refuses a machine, an operator or a viewer
    assert principal.role is not None
    return signer(settings).sign(
        user=principal.name,
        role=principal.role,
        workflow_id=workflow_id,
        decision=decision_verb(approved),
        now=datetime.now(UTC),
    )


def sign_resolution(
    settings: Settings, principal: Principal, workflow_id: str, action: OperatorAction
) -> IdentityAssertion:
    if principal.kind == "machine" or principal.role not in RESOLVING_ROLES:
        role = principal.role.value if principal.role else "a machine key"
        raise Refused(f"{principal.name} holds {role}: operators, finance and controllers answer the exception queue")
    assert principal.role is not None
    return signer(settings).sign(
        user=principal.name,
        role=principal.role,
        workflow_id=workflow_id,
        decision=f"resolve:{action.value}",
        now=datetime.now(UTC),
    )


async def decide_signed(
    client: Client, settings: Settings, principal: Principal, workflow_id: str, *, approved: bool, comment: str = ""
) -> str:
    """Approve or reject as `principal`, signed; the attempt and its outcome are audited."""
    from starter.client import decide

    assertion = sign_decision(settings, principal, workflow_id, approved)
    store = identities(settings)
    try:
        verdict = await decide(
            client,
            workflow_id,
            approver=principal.name,
            role=approver_role(principal),
            approved=approved,
            comment=comment,
            assertion=assertion,
        )
    except WorkflowUpdateFailedError as error:
        cause = str(error.cause) if error.cause else str(error)
        store.record_decision(principal, workflow_id, "refused", {"asked": assertion.decision, "reason": cause})
        raise
    else:
        store.record_decision(principal, workflow_id, verdict, {"comment": comment})
        return verdict
    finally:
        store.close()


async def resolve_signed(
    client: Client,
    settings: Settings,
    principal: Principal,
    workflow_id: str,
    action: OperatorAction,
    comment: str = "",
) -> str:
    """Answer the exception queue as `principal`, signed; audited like a decision."""
    from starter.client import resolve

    assertion = sign_resolution(settings, principal, workflow_id, action)
    store = identities(settings)
    try:
        accepted = await resolve(
            client, workflow_id, action, operator=principal.name, comment=comment, assertion=assertion
        )
    except WorkflowUpdateFailedError as error:
        cause = str(error.cause) if error.cause else str(error)
        store.record_decision(principal, workflow_id, "refused", {"asked": assertion.decision, "reason": cause})
        raise
    else:
        store.record_decision(principal, workflow_id, assertion.decision, {"comment": comment})
        return accepted
    finally:
        store.close()


# The demo's people: who approves, and who answers the exception queue.
DEMO_PEOPLE = {
    "fiona.finance": Role.FINANCE,
    "frank.finance": Role.FINANCE,
    "carla.controller": Role.CONTROLLER,
    "olga.ops": Role.OPERATOR,
}


class SignedDesk:
    """People signed in once, deciding through the same signed path as `o2c approve` (the
    demo's scripted answers)."""

    def __init__(self, settings: Settings, people: dict[str, Principal], passwords: dict[str, str]):
        self.settings, self.people, self.passwords = settings, people, passwords

    @classmethod
    def open(cls, settings: Settings, people: dict[str, Role] | None = None) -> SignedDesk:
        """Add each person (a fresh random password) and sign them in; the identity key is
        made first, so every process started from now on trusts their signatures."""
        signer(settings)
        store = identities(settings)
        signed: dict[str, Principal] = {}
        passwords: dict[str, str] = {}
        try:
            known = {u.name: u for u in store.users()}
            for name, role in (people or DEMO_PEOPLE).items():
                if name in known and known[name].role == role:  # a database kept from before
                    _, signed[name] = store.grant_token(name, actor="o2c demo")
                    continue
                passwords[name] = secrets.token_urlsafe(12)
                store.add_user(name, role, passwords[name], actor="o2c demo")
                _, signed[name] = store.sign_in(name, passwords[name])
        finally:
            store.close()
        return cls(settings, signed, passwords)

    async def decide(self, client: Client, workflow_id: str, who: str, *, approved: bool, comment: str = "") -> str:
        return await decide_signed(
            client, self.settings, self.people[who], workflow_id, approved=approved, comment=comment
        )

    async def resolve(
        self, client: Client, workflow_id: str, who: str, action: OperatorAction, comment: str = ""
    ) -> str:
        return await resolve_signed(client, self.settings, self.people[who], workflow_id, action, comment)


_desks: dict[str, SignedDesk] = {}


def demo_desk(settings: Settings) -> SignedDesk:
    """The demo's people for this database, signed in on first use."""
    if settings.database_url not in _desks:
        _desks[settings.database_url] = SignedDesk.open(settings)
    return _desks[settings.database_url]
