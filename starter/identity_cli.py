"""`o2c users`, `o2c login`/`logout`, `o2c tokens` and `o2c keys`: who may sign in to o2c.

o2c users add NAME --role finance|controller|operator|viewer [--password-stdin]
o2c users list [--json]
o2c users disable NAME
o2c login NAME [--password-stdin]      a personal API token, kept in the config dir (0600)
o2c logout                              revokes the stored token and forgets it
o2c tokens list [--user NAME] [--json]
o2c tokens revoke TOKEN_ID
o2c keys add NAME                       a machine's API key: starts processes, never decides
o2c audit [--user NAME] [--process ID] [--json]
"""

from __future__ import annotations

import getpass
import sys
from typing import Annotated, Any

import typer

from adapters.storage.users import IdentityError, SqlIdentities
from canonical.identity import Role
from starter.console import EXIT_DONE, Refused, emit_json, note, say
from starter.identity import identities, signer, store_token, stored_token
from starter.session import settings

users_app = typer.Typer(help="The people who sign in to o2c, and their roles.", no_args_is_help=True)
tokens_app = typer.Typer(help="Personal API tokens and machine keys, listed and revoked.", no_args_is_help=True)
keys_app = typer.Typer(help="API keys for machine callers (they start processes, never decide).", no_args_is_help=True)

PasswordStdin = Annotated[bool, typer.Option("--password-stdin", help="read the password from the first line of stdin")]
Json = Annotated[bool, typer.Option("--json", help="print one JSON document on stdout")]


def _password(from_stdin: bool, *, confirm: bool) -> str:
    if from_stdin or not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\r\n")
    password = getpass.getpass("password: ")
    if confirm and getpass.getpass("again: ") != password:
        raise Refused("the passwords differ")
    return password


def _store() -> SqlIdentities:
    return identities(settings())


def _refusing(work: Any) -> Any:
    try:
        return work()
    except IdentityError as error:
        raise Refused(str(error)) from None


@users_app.command("add")
def add_user(
    name: str,
    role: Annotated[Role, typer.Option("--role", help="what they may do: see docs/identity.md")],
    password_stdin: PasswordStdin = False,
) -> int:
    """Add a person who signs in with a password (kept as an argon2 hash)."""
    password = _password(password_stdin, confirm=True)
    store = _store()
    try:
        user = _refusing(lambda: store.add_user(name, role, password))
    finally:
        store.close()
    signer(settings())  # the key that will sign their decisions exists from now on
    say(f"added {user.name} as {user.role.value}")
    return EXIT_DONE


@users_app.command("list")
def list_users(as_json: Json = False) -> int:
    """Every user, their role, and whether they are disabled."""
    store = _store()
    try:
        found = store.users()
    finally:
        store.close()
    rows = [
        {
            "name": u.name,
            "role": u.role.value,
            "created_at": u.created_at.isoformat(),
            "disabled_at": u.disabled_at.isoformat() if u.disabled_at else None,
        }
        for u in found
    ]
    if as_json:
        emit_json({"users": rows})
    else:
        for row in rows:
            say(f"{row['name']}\t{row['role']}\t{'disabled' if row['disabled_at'] else 'enabled'}")
    return EXIT_DONE


@users_app.command("passwd")
def set_password(name: str, password_stdin: PasswordStdin = False) -> int:
    """Give a user a new password."""
    password = _password(password_stdin, confirm=True)
    store = _store()
    try:
        _refusing(lambda: store.set_password(name, password))
    finally:
        store.close()
    say(f"new password for {name}")
    return EXIT_DONE


@users_app.command("disable")
def disable_user(name: str) -> int:
    """Stop a user signing in; every token of theirs stops working at once."""
    store = _store()
    try:
        _refusing(lambda: store.disable_user(name))
    finally:
        store.close()
    say(f"disabled {name}; their tokens are revoked")
    return EXIT_DONE


def login(name: str, password_stdin: PasswordStdin = False) -> int:
    """Sign in: a personal API token for NAME, kept in the config dir; approve, reject and
    resolve then act as NAME, in the role o2c's database gives them."""
    current = settings()
    password = _password(password_stdin, confirm=False)
    store = identities(current)
    try:
        secret, principal = _refusing(lambda: store.sign_in(name, password))
    finally:
        store.close()
    signer(current)
    store_token(current.token_file, secret)
    role = principal.role.value if principal.role else "none"
    say(f"signed in as {principal.name} ({role}); token {principal.token_id} kept in {current.token_file}")
    return EXIT_DONE


def logout() -> int:
    """Revoke the stored token and forget it."""
    current = settings()
    secret = stored_token(current)
    store = identities(current)
    try:
        principal = _refusing(lambda: store.authenticate(secret))
        _refusing(lambda: store.revoke(secret=secret, actor=principal.name))
    finally:
        store.close()
    current.token_file.unlink(missing_ok=True)
    say(f"signed out {principal.name}; token {principal.token_id} revoked")
    return EXIT_DONE


@tokens_app.command("list")
def list_tokens(user: Annotated[str | None, typer.Option("--user")] = None, as_json: Json = False) -> int:
    """Tokens and keys by id (never their secrets), with when each was revoked."""
    store = _store()
    try:
        rows = store.tokens(user)
    finally:
        store.close()
    plain = [
        {**r, "created_at": r["created_at"].isoformat(), "revoked_at": r["revoked_at"] and r["revoked_at"].isoformat()}
        for r in rows
    ]
    if as_json:
        emit_json({"tokens": plain})
    else:
        for r in plain:
            say(f"{r['token_id']}\t{r['kind']}\t{r['owner']}\t{'revoked' if r['revoked_at'] else 'active'}")
    return EXIT_DONE


@tokens_app.command("revoke")
def revoke_token(token_id: str) -> int:
    """Revoke a token or key by its id (from `o2c tokens list`)."""
    store = _store()
    try:
        _refusing(lambda: store.revoke(token_id=token_id, actor="o2c tokens revoke"))
    finally:
        store.close()
    say(f"revoked {token_id}")
    return EXIT_DONE


@keys_app.command("add")
def add_key(name: str) -> int:
    """A machine's API key, printed once: keep it in the machine's secret store."""
    store = _store()
    try:
        secret, principal = _refusing(lambda: store.add_machine_key(name))
    finally:
        store.close()
    note(f"API key {principal.token_id} for {name}; it is shown once and may start processes, never decide:")
    say(secret)
    return EXIT_DONE


def audit(
    user: Annotated[str | None, typer.Option("--user")] = None,
    process: Annotated[str | None, typer.Option("--process", help="a workflow id")] = None,
    as_json: Json = False,
) -> int:
    """Every sign-in, token change and decision, oldest first."""
    store = _store()
    try:
        rows = store.audit(actor=user, subject=process)
    finally:
        store.close()
    if as_json:
        emit_json({"audit": [{**r, "at": r["at"].isoformat()} for r in rows]})
    else:
        for r in rows:
            say(f"{r['at'].isoformat()}\t{r['actor']}\t{r['action']}\t{r['subject']}\t{r['detail']}")
    return EXIT_DONE
