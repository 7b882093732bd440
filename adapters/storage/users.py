"""o2c's own directory of people and machines (tables `users`, `api_tokens`, `audit_log`,
migration 0009).

Passwords are kept as argon2id hashes. An API token or a machine key is a random secret
shown once; only its SHA-256 is stored (a 256-bit random secret needs no slow hash), so a
copy of the database lets nobody sign in. Every sign-in, token change and decision is
appended to the audit log.

The calls are synchronous: the CLI and the signing front doors call them one at a time.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from adapters.storage.db import engine_for, upgrade
from adapters.storage.tables import api_tokens, audit_log, users
from canonical.identity import Role

# A user's or machine's name: what an approval records and segregation of duties compares.
NAME = re.compile(r"[a-z0-9][a-z0-9._@-]{0,127}")
TOKEN_PREFIX = {"personal": "o2c_pat_", "machine": "o2c_key_"}
MIN_PASSWORD = 12


class IdentityError(Exception):
    """A refused identity operation, in words for the person at the terminal."""


@dataclass(frozen=True)
class Principal:
    """Who a valid token belongs to. A machine has no role: it may start processes, never decide."""

    name: str
    kind: str  # "personal" or "machine"
    role: Role | None
    token_id: str


@dataclass(frozen=True)
class User:
    name: str
    role: Role
    created_at: datetime
    disabled_at: datetime | None


def _hash_token(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _now() -> datetime:
    return datetime.now(UTC)


def valid_name(name: str) -> str:
    if not NAME.fullmatch(name):
        raise IdentityError(
            f"{name!r} is not a valid name: lower-case letters, digits and . _ @ - only, at most 128 characters"
        )
    return name


class SqlIdentities:
    """Users, tokens and the audit log on SQLite or PostgreSQL."""

    def __init__(self, database_url: str, *, migrate: bool = True):
        if migrate:
            upgrade(database_url)
        self.engine = engine_for(database_url)
        self._hasher = PasswordHasher()

    def close(self) -> None:
        self.engine.dispose()

    # -- users ------------------------------------------------------------------------------

    def add_user(self, name: str, role: Role, password: str, *, actor: str = "o2c users add") -> User:
        valid_name(name)
        if len(password) < MIN_PASSWORD:
            raise IdentityError(f"a password has at least {MIN_PASSWORD} characters")
        user = User(name=name, role=role, created_at=_now(), disabled_at=None)
        with self.engine.begin() as db:
            if db.execute(sa.select(users.c.name).where(users.c.name == name)).first():
                raise IdentityError(f"there is already a user {name}")
            db.execute(
                users.insert().values(
                    name=name, role=role.value, password_hash=self._hasher.hash(password), created_at=user.created_at
                )
            )
            self._audit(db, actor, "user.add", name, {"role": role.value})
        return user

    def users(self) -> list[User]:
        with self.engine.connect() as db:
            rows = db.execute(sa.select(users).order_by(users.c.name)).all()
        return [User(name=r.name, role=Role(r.role), created_at=r.created_at, disabled_at=r.disabled_at) for r in rows]

    def set_password(self, name: str, password: str, *, actor: str = "o2c users passwd") -> None:
        """A new password for an enabled user (their tokens stay valid: revoke them apart)."""
        if len(password) < MIN_PASSWORD:
            raise IdentityError(f"a password has at least {MIN_PASSWORD} characters")
        with self.engine.begin() as db:
            done = db.execute(
                users.update()
                .where(users.c.name == name, users.c.disabled_at.is_(None))
                .values(password_hash=self._hasher.hash(password))
            )
            if done.rowcount == 0:
                raise IdentityError(f"there is no enabled user {name}")
            self._audit(db, actor, "user.password", name, {})

    def disable_user(self, name: str, *, actor: str = "o2c users disable") -> None:
        """The user signs in no more, and every token of theirs stops working at once."""
        now = _now()
        with self.engine.begin() as db:
            done = db.execute(
                users.update().where(users.c.name == name, users.c.disabled_at.is_(None)).values(disabled_at=now)
            )
            if done.rowcount == 0:
                raise IdentityError(f"there is no enabled user {name}")
            db.execute(
                api_tokens.update()
                .where(api_tokens.c.owner == name, api_tokens.c.revoked_at.is_(None))
                .values(revoked_at=now)
            )
            self._audit(db, actor, "user.disable", name, {})

    # -- tokens -----------------------------------------------------------------------------

    def sign_in(self, name: str, password: str) -> tuple[str, Principal]:
        """A new personal API token for `name`, if the password is theirs. Refusals say the
        same whatever was wrong, and are audited too."""
        with self.engine.begin() as db:
            row = db.execute(sa.select(users).where(users.c.name == name)).first()
            if row is None or row.disabled_at is not None or not self._password_matches(row.password_hash, password):
                self._audit(db, name, "sign_in.refused", name, {})
                refused = True
            else:
                refused = False
                secret, principal = self._issue(db, name, "personal", Role(row.role))
                self._audit(db, name, "sign_in", name, {"token_id": principal.token_id})
        if refused:  # raised after the commit, so the refusal stays in the audit log
            raise IdentityError("wrong name or password, or the user is disabled")
        return secret, principal

    def grant_token(self, name: str, *, actor: str) -> tuple[str, Principal]:
        """A personal token for `name` issued by an administrator of this database (the demo
        signing in its people again on a kept database), audited as such."""
        with self.engine.begin() as db:
            row = db.execute(sa.select(users).where(users.c.name == name, users.c.disabled_at.is_(None))).first()
            if row is None:
                raise IdentityError(f"there is no enabled user {name}")
            secret, principal = self._issue(db, name, "personal", Role(row.role))
            self._audit(db, actor, "token.grant", name, {"token_id": principal.token_id})
        return secret, principal

    def add_machine_key(self, name: str, *, actor: str = "o2c keys add") -> tuple[str, Principal]:
        """An API key for a machine caller (the CRM integration, the ingress): it may start
        processes but never approve, reject or resolve."""
        valid_name(name)
        with self.engine.begin() as db:
            secret, principal = self._issue(db, name, "machine", None)
            self._audit(db, actor, "key.add", name, {"token_id": principal.token_id})
        return secret, principal

    def _issue(self, db: sa.Connection, owner: str, kind: str, role: Role | None) -> tuple[str, Principal]:
        secret = TOKEN_PREFIX[kind] + secrets.token_urlsafe(32)
        token_id = secrets.token_hex(8)
        db.execute(
            api_tokens.insert().values(
                token_hash=_hash_token(secret), token_id=token_id, owner=owner, kind=kind, created_at=_now()
            )
        )
        return secret, Principal(name=owner, kind=kind, role=role, token_id=token_id)

    def authenticate(self, secret: str) -> Principal:
        """Who `secret` belongs to; refused when unknown, revoked, or its user is disabled.
        The role is read now, so a changed role counts from the next call."""
        with self.engine.connect() as db:
            token = db.execute(sa.select(api_tokens).where(api_tokens.c.token_hash == _hash_token(secret))).first()
            if token is None or token.revoked_at is not None:
                raise IdentityError("the API token is unknown or revoked: sign in again with `o2c login`")
            if token.kind == "machine":
                return Principal(name=token.owner, kind="machine", role=None, token_id=token.token_id)
            user = db.execute(sa.select(users).where(users.c.name == token.owner)).first()
        if user is None or user.disabled_at is not None:
            raise IdentityError(f"the user {token.owner} is disabled")
        return Principal(name=user.name, kind="personal", role=Role(user.role), token_id=token.token_id)

    def revoke(self, *, token_id: str | None = None, secret: str | None = None, actor: str) -> None:
        where = api_tokens.c.token_id == token_id if token_id else api_tokens.c.token_hash == _hash_token(secret or "")
        with self.engine.begin() as db:
            row = db.execute(sa.select(api_tokens.c.token_id, api_tokens.c.owner).where(where)).first()
            done = db.execute(
                api_tokens.update().where(where, api_tokens.c.revoked_at.is_(None)).values(revoked_at=_now())
            )
            if row is None or done.rowcount == 0:
                raise IdentityError("there is no such token, or it is revoked already")
            self._audit(db, actor, "token.revoke", row.owner, {"token_id": row.token_id})

    def tokens(self, owner: str | None = None) -> list[dict[str, Any]]:
        query = sa.select(
            api_tokens.c.token_id,
            api_tokens.c.owner,
            api_tokens.c.kind,
            api_tokens.c.created_at,
            api_tokens.c.revoked_at,
        ).order_by(api_tokens.c.created_at)
        if owner:
            query = query.where(api_tokens.c.owner == owner)
        with self.engine.connect() as db:
            return [dict(r._mapping) for r in db.execute(query)]

    # -- the audit log ----------------------------------------------------------------------

    def record_decision(self, principal: Principal, workflow_id: str, decision: str, detail: dict[str, Any]) -> None:
        with self.engine.begin() as db:
            self._audit(db, principal.name, "decision", workflow_id, {"decision": decision, **detail})

    def audit(self, *, actor: str | None = None, subject: str | None = None) -> list[dict[str, Any]]:
        query = sa.select(audit_log).order_by(audit_log.c.id)
        if actor:
            query = query.where(audit_log.c.actor == actor)
        if subject:
            query = query.where(audit_log.c.subject == subject)
        with self.engine.connect() as db:
            return [{**r._mapping, "detail": json.loads(r.detail)} for r in db.execute(query)]

    @staticmethod
    def _audit(db: sa.Connection, actor: str, action: str, subject: str, detail: dict[str, Any]) -> None:
        db.execute(
            audit_log.insert().values(
                at=_now(), actor=actor, action=action, subject=subject, detail=json.dumps(detail, sort_keys=True)
            )
        )

    def _password_matches(self, hashed: str, password: str) -> bool:
        try:
            return self._hasher.verify(hashed, password)
        except (VerificationError, InvalidHashError):
            return False
