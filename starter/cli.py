"""The `o2c` command line: run the stack, start processes, approve, resolve, inspect.

Exit codes: 0 done; 1 a system problem (named: which system, at which address);
2 refused input (validation, unknown fields, a bad file, an unknown process);
3 a process parked while `--wait` watched it (needs attention or awaits approval).
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime
from enum import StrEnum
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NamedTuple, TypeVar

import typer
from pydantic import ValidationError
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle

from adapters.ports import BillingPort
from canonical.amendment import InvalidRequest, request_problems
from canonical.models import AmendmentRequest, ApproverRole, Model
from canonical.reconciliation import period_bounds
from canonical.renewal import RenewalRequest, renewal_request_problems
from canonical.requests import MAX_REQUEST_BYTES
from settings import InvalidSettings
from starter.asking import ask
from starter.cash_cli import cash_app
from starter.console import EXIT_DONE, EXIT_PARKED, EXIT_REFUSED, Refused, emit_json, err, note, say, show, table
from starter.credits_cli import credit_app, refund
from starter.identity_cli import audit, keys_app, login, logout, tokens_app, users_app
from starter.problems import explain
from starter.refusals import counted, validation_problems
from starter.revenue_cli import revenue_app
from starter.session import run as _run
from starter.session import settings
from starter.session import temporal_client as _client
from starter.session import ui_link as _ui_link
from starter.usage_cli import usage_app
from workflows.kit.attention import OperatorAction
from workflows.kit.status import Status

if TYPE_CHECKING:
    from sandbox import SandboxControl

M = TypeVar("M", bound=Model)

app = typer.Typer(
    name="o2c",
    help="Durable order-to-cash on Temporal.\n\n"
    "Exit codes: 0 done · 1 a system problem, named (which system, at which address) · "
    "2 refused input (validation, unknown fields, a bad file, an unknown process) · "
    "3 a process parked while --wait watched it (it needs attention or awaits approval), with the reason.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)
recon_app = typer.Typer(help="Reconciliation runs and their breaks, from o2c's database.", no_args_is_help=True)
sandbox_app = typer.Typer(
    help="Serve the sandbox (Stripe, AvaTax, NetSuite, Salesforce stand-ins) in the foreground, "
    "or set up a path through it: seed customers and periods, close a period, fix an address.",
    invoke_without_command=True,
)
app.add_typer(recon_app, name="recon")
app.add_typer(sandbox_app, name="sandbox")
app.add_typer(usage_app, name="usage")
app.add_typer(credit_app, name="credit")
app.command("refund")(refund)
app.add_typer(cash_app, name="cash")
app.add_typer(revenue_app, name="revenue")
app.add_typer(users_app, name="users")
app.add_typer(tokens_app, name="tokens")
app.add_typer(keys_app, name="keys")
app.command("login")(login)
app.command("logout")(logout)
app.command("audit")(audit)

Json = Annotated[bool, typer.Option("--json", help="print one JSON document on stdout")]
Wait = Annotated[
    bool,
    typer.Option("--wait", help="follow the process, one line per change, until it ends (0) or parks (3)"),
]
As = Annotated[str, typer.Option("--as", metavar="NAME", help="who answers")]
# approve, reject and resolve act as the signed-in user: a name or role typed here is refused.
Gone = Annotated[str | None, typer.Option("--as", hidden=True)]
GoneRole = Annotated[str | None, typer.Option("--role", hidden=True)]


def _no_typed_identity(as_: str | None, role: str | None = None) -> None:
    if as_ is not None or role is not None:
        raise Refused(
            "--as and --role are gone: sign in with `o2c login NAME`, and approve, reject and resolve "
            "act as you, in the role o2c's user directory gives you"
        )


class SchedulesAction(StrEnum):
    APPLY = "apply"


@cache
def _read_request(path: str, model: type[M], what: str) -> M:
    """The request in a file (or stdin), refused with every problem said once: a file that is
    too large, not UTF-8, not JSON or not a request of `model` (unknown fields by name)."""
    try:
        if path == "-":
            raw = sys.stdin.buffer.read(MAX_REQUEST_BYTES + 1)
        else:
            with open(path, "rb") as file:
                raw = file.read(MAX_REQUEST_BYTES + 1)
    except OSError as error:
        raise Refused(f"cannot read {path}: {error.strerror}") from None
    if len(raw) > MAX_REQUEST_BYTES:
        raise Refused(
            f"{path} is not a valid {what}: it is larger than {MAX_REQUEST_BYTES:,} bytes "
            f"({MAX_REQUEST_BYTES // 1024} KB), the most a request may be"
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as bad:
        raise Refused(
            f"{path} is not a valid {what}: not UTF-8 text (byte {raw[bad.start]:#04x} at offset {bad.start:,})"
        ) from None
    try:
        return model.model_validate_json(text)
    except ValidationError as error:
        raise Refused(f"{path} is not a valid {what}: " + "; ".join(validation_problems(error))) from None


def _refused(what: str, problems: list[str]) -> Refused:
    return Refused(f"{what} refused, no workflow started:\n  - " + "\n  - ".join(counted(problems)))


async def _wait_and_report(
    client: Client, workflow_id: str, as_json: bool, document: dict[str, Any], *, answered: bool = False
) -> int:
    """`--wait`: stream the process's changes to stderr, then say how it ended or why it parked."""
    from starter.progress import follow

    outcome = await follow(client, workflow_id, answered=answered)
    if as_json:
        emit_json({**document, "outcome": outcome.to_json()})
    elif outcome.exit_code == EXIT_PARKED:
        say(f"{workflow_id} parked, {outcome.status}: {outcome.message}")
        hint = (
            f"o2c resolve {workflow_id} retry|skip|abort"
            if outcome.status == Status.NEEDS_ATTENTION
            else f"o2c approve {workflow_id}"
        )
        note(f"  answer with `{hint}`; `o2c status {workflow_id}` shows the rest")
    else:
        say(f"{outcome.status}: {outcome.message}")
    return outcome.exit_code


# -- the stack -------------------------------------------------------------------------------


@app.command()
def dev() -> int:
    """Run Temporal (UI on :8233), the sandbox and the worker until Ctrl-C."""
    from starter.stack import run_dev

    asyncio.run(run_dev(settings()))
    return EXIT_DONE


@app.command()
def demo(as_json: Json = False) -> int:
    """Run every story end to end on a stack of its own (state in .o2c/demo) and show what happened."""
    from starter.demo import run_demo

    return _run(run_demo(as_json=as_json))


@app.command()
def worker() -> int:
    """Run the worker against the configured Temporal and systems."""
    # Exactly what `python worker.py` runs, in this process's place.
    os.execv(sys.executable, [sys.executable, "-m", "worker"])


@app.command()
def ingress(
    host: Annotated[str | None, typer.Option(help="default O2C_WEBHOOK_HOST or 127.0.0.1")] = None,
    port: Annotated[int | None, typer.Option(help="default O2C_WEBHOOK_PORT or 8710")] = None,
) -> int:
    """Serve the ingress: usage events (POST /v1/usage/events) and, with O2C_STRIPE_WEBHOOK_SECRET, Stripe webhooks."""
    from starter.ingress import serve_ingress
    from starter.webhooks import configure_logging

    configure_logging()
    asyncio.run(serve_ingress(settings(), host=host, port=port))
    return EXIT_DONE


@app.command()
def webhooks(
    host: Annotated[str | None, typer.Option(help="default O2C_WEBHOOK_HOST or 127.0.0.1")] = None,
    port: Annotated[int | None, typer.Option(help="default O2C_WEBHOOK_PORT or 8710")] = None,
) -> int:
    """Serve the Stripe webhook endpoint (POST /webhooks/stripe), and the usage endpoint beside it (`o2c ingress`)."""
    if not settings().stripe_webhook_secret:
        raise Refused("set O2C_STRIPE_WEBHOOK_SECRET to the endpoint's signing secret (whsec_...)")
    return ingress(host=host, port=port)


# -- the sandbox -----------------------------------------------------------------------------


def _control() -> SandboxControl:
    from sandbox import SandboxControl

    return SandboxControl(settings().sandbox_url)


@sandbox_app.callback()
def sandbox_serve(
    ctx: typer.Context,
    port: Annotated[int, typer.Option(help="where `o2c sandbox` serves")] = 8700,
    host: Annotated[str, typer.Option(help="where `o2c sandbox` serves")] = "127.0.0.1",
) -> None:
    """Without a subcommand: serve the sandbox in the foreground."""
    if ctx.invoked_subcommand is None:
        from sandbox.server import serve as serve_sandbox

        serve_sandbox(settings().database_url, host, port)  # uvicorn runs its own loop and signals


def _seeded(created: dict[str, Any], as_json: bool) -> int:
    if as_json:
        emit_json(created)
    else:
        say(f"seeded {created.get('customer_id')} with {created.get('subscription_id')}")
    return EXIT_DONE


@sandbox_app.command("seed")
def sandbox_seed(file: Annotated[str, typer.Argument(help="e.g. examples/seed.json")], as_json: Json = False) -> int:
    """Create (or update) a customer and its subscription in the sandbox."""
    from starter import sandbox_setup

    return _seeded(sandbox_setup.seed(_control(), file), as_json)


@sandbox_app.command("seed-period")
def sandbox_seed_period(
    file: Annotated[str, typer.Argument(help="e.g. examples/recon-period.json")], as_json: Json = False
) -> int:
    """Seed a reconciliation period in bulk: invoices, tax documents and entries, with breaks."""
    from starter import sandbox_setup

    seeded = sandbox_setup.seed_period(_control(), file)
    if as_json:
        emit_json(seeded)
    else:
        breaks = seeded.get("breaks", {})
        say(f"seeded {seeded.get('invoices')} invoices; breaks: " + (", ".join(sorted(breaks)) or "none"))
    return EXIT_DONE


# The month today's invoices are issued in (billing dates them by UTC day), and with them
# their tax documents and entries: the month to close to see a booking park.
CURRENT_PERIOD = "current"


def _set_period(period: str, subsidiary: str, closed: bool, as_json: bool) -> int:
    if period == CURRENT_PERIOD:
        period = f"{datetime.now(UTC):%Y-%m}"
    try:
        period_bounds(period)
    except ValueError as error:
        raise Refused(str(error)) from None
    record = _control().set_period(subsidiary, period, closed=closed)
    if as_json:
        emit_json(record)
    else:
        say(f"NetSuite period {period} of subsidiary {subsidiary} is {'closed' if closed else 'open'}")
    return EXIT_DONE


Subsidiary = Annotated[str, typer.Option(help="the NetSuite subsidiary (US01 books in 1)")]


@sandbox_app.command("close-period")
def sandbox_close_period(
    period: Annotated[str, typer.Argument(help="YYYY-MM, or current: the month today's invoices are dated in")],
    subsidiary: Subsidiary = "1",
    as_json: Json = False,
) -> int:
    """Close an ERP period: a journal entry dated in it parks the process that posts it."""
    return _set_period(period, subsidiary, True, as_json)


@sandbox_app.command("open-period")
def sandbox_open_period(
    period: Annotated[str, typer.Argument(help="YYYY-MM, or current")],
    subsidiary: Subsidiary = "1",
    as_json: Json = False,
) -> int:
    """Open an ERP period again."""
    return _set_period(period, subsidiary, False, as_json)


@sandbox_app.command("set-address")
def sandbox_set_address(
    customer: Annotated[str, typer.Argument(help="the customer's billing id, e.g. cus_initech")],
    postal_code: Annotated[str | None, typer.Option(help="e.g. 94105")] = None,
    line1: Annotated[str | None, typer.Option()] = None,
    city: Annotated[str | None, typer.Option()] = None,
    state: Annotated[str | None, typer.Option(help="region, e.g. CA")] = None,
    country: Annotated[str | None, typer.Option(help="ISO code, e.g. US")] = None,
    as_json: Json = False,
) -> int:
    """Correct a customer's billing address, as an analyst would in Stripe."""
    from starter.sandbox_setup import update_customer_address

    given = {"postal_code": postal_code, "line1": line1, "city": city, "state": state, "country": country}
    address = {k: v for k, v in given.items() if v is not None}
    if not address:
        raise Refused("say what to change: --postal-code, --line1, --city, --state or --country")
    updated = _run(update_customer_address(settings(), customer, address))
    if as_json:
        emit_json(updated)
    else:
        say(f"{customer}: address " + ", ".join(f"{k} {v}" for k, v in address.items()))
    return EXIT_DONE


@app.command()
def seed(file: Annotated[str, typer.Option("--file", help="e.g. examples/seed.json")], as_json: Json = False) -> int:
    """Create a customer and subscription in the sandbox (the same as `o2c sandbox seed FILE`)."""
    return sandbox_seed(file, as_json)


# -- starting processes ----------------------------------------------------------------------


# Starts (or finds) the workflow of a read request: (client, billing, task queue) -> its handle.
Start = Callable[[Client, BillingPort, str], Awaitable[WorkflowHandle[Any, Any]]]


async def _start(what: str, problems: list[str], start: Start, wait: bool, as_json: bool) -> int:
    """Refuse what the request alone shows before anything is contacted; then validate
    against billing, and start (or find) the workflow."""
    from adapters.stripe import StripeBilling

    if problems:
        raise _refused(what.split()[0], problems)
    s = settings()
    billing = StripeBilling(s.stripe_base_url, s.stripe_api_key, timeout=s.http_timeout_seconds)
    try:
        client = await _client()
        handle = await start(client, billing, s.task_queue)
    except InvalidRequest as invalid:
        raise _refused(what.split()[0], invalid.problems) from None
    finally:
        await billing.aclose()
    described = await handle.describe()
    running = described.status == WorkflowExecutionStatus.RUNNING
    document = {"workflow_id": handle.id, "running": running, "ui": _ui_link(handle.id)}
    if not as_json:
        if running:
            say(f"{handle.id} is running\n  {_ui_link(handle.id)}")
        else:  # the same request was started before: it lands on the existing workflow
            how = f" ({described.status.name.lower()})" if described.status else ""
            say(f"{handle.id} already exists and is closed{how}; nothing new started")
    if wait:
        return await _wait_and_report(client, handle.id, as_json, document)
    if as_json:
        emit_json(document)
    return EXIT_DONE


@app.command()
def amend(
    file: Annotated[str, typer.Option("--file", help="the request as JSON (- for stdin)")],
    wait: Wait = False,
    as_json: Json = False,
) -> int:
    """Validate and start a contract amendment."""
    from starter.client import start_amendment

    request = _read_request(file, AmendmentRequest, "amendment request")
    return _run(
        _start(
            "amendment request",
            request_problems(request),
            lambda client, billing, task_queue: start_amendment(
                client, request, billing=billing, task_queue=task_queue
            ),
            wait,
            as_json,
        )
    )


@app.command()
def renew(
    file: Annotated[str, typer.Option("--file", help="the request as JSON (- for stdin)")],
    wait: Wait = False,
    as_json: Json = False,
) -> int:
    """Validate and start a renewal (closed-won)."""
    from starter.client import start_renewal

    request = _read_request(file, RenewalRequest, "renewal request")
    return _run(
        _start(
            "renewal request",
            renewal_request_problems(request, settings().renewal_policy),
            lambda client, billing, task_queue: start_renewal(client, request, billing=billing, task_queue=task_queue),
            wait,
            as_json,
        )
    )


@app.command()
def reconcile(
    period: Annotated[str, typer.Option(help="YYYY-MM")],
    entity: Annotated[str, typer.Option(help="legal entity code, e.g. US01")],
    wait: Wait = False,
    as_json: Json = False,
) -> int:
    """Reconcile billing, tax and the ERP for a period and entity now."""
    return _run(_reconcile(period, entity, wait, as_json))


async def _reconcile(period: str, entity: str, wait: bool, as_json: bool) -> int:
    from starter.client import process_state, reconciliation_problems, start_reconciliation

    problems = reconciliation_problems(entity, period, today=date.today())
    if problems:
        raise Refused("reconciliation refused, no workflow started:\n  - " + "\n  - ".join(problems))
    client = await _client()
    handle = await start_reconciliation(client, legal_entity=entity, period=period, task_queue=settings().task_queue)
    state: dict[str, Any] = {}
    for _ in range(50):  # the run id is the workflow's own: ask it once it has started
        state = await process_state(client, handle.id)
        if state.get("run_id"):
            break
        await asyncio.sleep(0.1)
    document = {"workflow_id": handle.id, "run_id": state.get("run_id"), "ui": _ui_link(handle.id)}
    if not as_json:
        say(f"{handle.id}: run {state.get('run_id') or '(starting)'}, {state.get('status')}: {state.get('stage')}")
        say(f"  {_ui_link(handle.id)}")
    if not wait:
        if as_json:
            emit_json(document)
        return EXIT_DONE
    code = await _wait_and_report(client, handle.id, as_json, document)
    if not as_json:
        say(f"  breaks: o2c recon report {state.get('run_id')}")
    return code


# -- what waits for a person -----------------------------------------------------------------


def _approval_row(item: dict[str, Any]) -> tuple[object, ...]:
    request = (item.get("approval") or {}).get("request") or {}
    amount = request.get("amount") or {}
    return (
        item["workflow_id"],
        request.get("required_role"),
        request.get("requested_by"),
        f"{amount.get('amount')} {amount.get('currency')}",
        "; ".join(request.get("reasons", [])),
    )


def _attention_row(item: dict[str, Any]) -> tuple[object, ...]:
    attention = item.get("attention") or {}
    return (
        item["workflow_id"],
        attention.get("step"),
        attention.get("message"),
        "/".join(attention.get("actions", [])),
    )


def _renewal_row(item: dict[str, Any]) -> tuple[object, ...]:
    value = item.get("term_value") or {}
    return (
        item["workflow_id"],
        item.get("new_term_start"),
        f"{value.get('amount')} {value.get('currency')}",
        f"{item.get('status')}: {item.get('stage')}",
    )


class Listing(NamedTuple):
    """A listing command: the running processes in a status and/or of a kind, what it says
    when there are none, its columns and how one process fills them."""

    empty: str
    headers: tuple[str, ...]
    row: Callable[[dict[str, Any]], tuple[object, ...]]
    status: Status | None = None
    process: str | None = None


LISTINGS = {
    "approvals": Listing(
        "nothing waits for approval",
        ("workflow", "needs", "requested by", "amount", "why"),
        _approval_row,
        status=Status.AWAITING_APPROVAL,
    ),
    "attention": Listing(
        "nothing needs attention",
        ("workflow", "step", "problem", "answer"),
        _attention_row,
        status=Status.NEEDS_ATTENTION,
    ),
    "renewals": Listing(
        "no renewal is waiting for its term",
        ("workflow", "starts", "term value", "where it is"),
        _renewal_row,
        process="renewal",
    ),
}


async def _list(name: str, as_json: bool) -> int:
    from starter.client import find_processes

    empty, headers, row, status, process = LISTINGS[name]
    found = await find_processes(await _client(), status=status, process=process)
    if as_json:
        emit_json(found)
        return EXIT_DONE
    if not found:
        say(empty)
        return EXIT_DONE
    rows = []
    for item in found:
        if item.get("unavailable"):  # its worker is gone: say so in the widest column
            cells: list[object] = [item["workflow_id"], *[""] * (len(headers) - 1)]
            cells[-2 if name == "attention" else -1] = f"{item.get('status')}, state unavailable: {item['unavailable']}"
            rows.append(cells)
        else:
            rows.append(list(row(item)))
    show(table(headers, rows, wide=headers[-2:-1] if name == "attention" else headers[-1:]))
    return EXIT_DONE


@app.command()
def approvals(as_json: Json = False) -> int:
    """List processes waiting for approval."""
    return _run(_list("approvals", as_json))


@app.command()
def attention(as_json: Json = False) -> int:
    """List processes parked in the exception queue."""
    return _run(_list("attention", as_json))


@app.command()
def renewals(as_json: Json = False) -> int:
    """List renewals waiting for their term, with start dates."""
    return _run(_list("renewals", as_json))


async def _answered(workflow_id: str, answer: str, by: str, wait: bool, as_json: bool) -> int:
    document = {"workflow_id": workflow_id, "answer": answer, "by": by}
    if not wait:
        if as_json:
            emit_json(document)
        else:
            say(
                f"{workflow_id}: {answer} by {by}" if answer in ("approved", "rejected") else f"{workflow_id}: {answer}"
            )
        return EXIT_DONE
    if not as_json:
        say(f"{workflow_id}: {answer}")
    # The answer is in; the process leaves the state it parked in on its next workflow task.
    return await _wait_and_report(await _client(), workflow_id, as_json, document, answered=True)


async def _decide(workflow_id: str, comment: str, approved: bool, wait: bool, as_json: bool) -> int:
    from starter.identity import decide_signed, signed_in

    current = settings()
    principal = signed_in(current)
    client = await _client()
    verdict = await ask(
        client,
        workflow_id,
        decide_signed(client, current, principal, workflow_id, approved=approved, comment=comment),
        current,
        answer=True,
    )
    return await _answered(workflow_id, verdict, principal.name, wait, as_json)


Role = Annotated[ApproverRole, typer.Option("--role", help="the role you approve in")]


@app.command()
def approve(
    workflow_id: str,
    comment: Annotated[str, typer.Option()] = "",
    wait: Wait = False,
    as_json: Json = False,
    as_: Gone = None,
    role: GoneRole = None,
) -> int:
    """Approve what a process waits for, as the signed-in user (`o2c login`)."""
    _no_typed_identity(as_, role)
    return _run(_decide(workflow_id, comment, True, wait, as_json))


@app.command()
def reject(
    workflow_id: str,
    comment: Annotated[str, typer.Option(help="why: the requester reads it")],
    wait: Wait = False,
    as_json: Json = False,
    as_: Gone = None,
    role: GoneRole = None,
) -> int:
    """Reject what a process waits for, as the signed-in user (`o2c login`)."""
    _no_typed_identity(as_, role)
    return _run(_decide(workflow_id, comment, False, wait, as_json))


async def _adjust(
    workflow_id: str, as_: str, role: ApproverRole, credit: str, reason: str, wait: bool, as_json: bool
) -> int:
    from canonical.money import Money
    from canonical.usage.models import ReviewAction, UsageDecision
    from starter.client import adjust_usage, process_state

    client = await _client()
    subtotal = (await ask(client, workflow_id, process_state(client, workflow_id), settings(), answer=False)).get(
        "subtotal"
    )
    if not isinstance(subtotal, dict):
        raise Refused(f"{workflow_id} holds no usage invoice to adjust")
    try:
        amount = Money.of(credit, subtotal["currency"])
    except (ValueError, ArithmeticError) as error:
        raise Refused(f"--credit {credit!r} is not an amount in {subtotal['currency']}: {error}") from None
    decision = UsageDecision(approver=as_, role=role, action=ReviewAction.ADJUST, credit=amount, reason=reason)
    answer = await ask(client, workflow_id, adjust_usage(client, workflow_id, decision), settings(), answer=True)
    return await _answered(workflow_id, answer, as_, wait, as_json)


@app.command()
def adjust(
    workflow_id: str,
    as_: As,
    role: Role,
    credit: Annotated[str, typer.Option(help="the credit line, in the invoice currency (e.g. 120.00)")],
    reason: Annotated[str, typer.Option(help="why: printed on the credit line")],
    wait: Wait = False,
    as_json: Json = False,
) -> int:
    """Release a held usage invoice with a credit line; the credit needs the approval its amount calls for."""
    return _run(_adjust(workflow_id, as_, role, credit, reason, wait, as_json))


@app.command()
def resolve(
    workflow_id: str,
    action: OperatorAction,
    comment: Annotated[str, typer.Option()] = "",
    wait: Wait = False,
    as_json: Json = False,
    as_: Gone = None,
) -> int:
    """Answer a process parked in needs_attention, as the signed-in user: retry (after fixing
    the cause), skip (done by hand), abort (undo)."""
    _no_typed_identity(as_)

    async def answer() -> int:
        from starter.identity import resolve_signed, signed_in

        current = settings()
        principal = signed_in(current)
        client = await _client()
        accepted = await ask(
            client,
            workflow_id,
            resolve_signed(client, current, principal, workflow_id, action, comment),
            current,
            answer=True,
        )
        return await _answered(workflow_id, accepted, principal.name, wait, as_json)

    return _run(answer())


# -- inspecting ------------------------------------------------------------------------------


@app.command()
def status(workflow_id: str, as_json: Json = False) -> int:
    """Show a process's state: where it is, its documents, recent events."""

    async def show_state() -> int:
        from starter.client import process_state
        from starter.progress import waiting_for

        client = await _client()
        state = await ask(client, workflow_id, process_state(client, workflow_id), settings(), answer=False)
        if as_json:
            emit_json(state)
            return EXIT_DONE
        say(f"{workflow_id}: {state.get('status')} — {state.get('stage')}")
        if waiting_for(state):
            say(f"  {state.get('status')}: {waiting_for(state)}")
        for key in ("invoice", "tax_document", "journal_entry"):
            value: Any = state.get(key)
            if value:
                say(f"  {key.replace('_', ' ')}: {value.get('id') or value.get('code') or value.get('external_id')}")
        for event in state.get("events", [])[-8:]:
            say(f"  {event['at']}  {event['text']}")
        say(f"  {_ui_link(workflow_id)}")
        return EXIT_DONE

    return _run(show_state())


@app.command()
def schedules(action: SchedulesAction, as_json: Json = False) -> int:
    """o2c's Temporal schedules (the daily renewal window, daily and month-end reconciliations)."""

    async def apply() -> int:
        from starter.schedules import apply_schedules

        lines = await apply_schedules(await _client(), settings().task_queue)
        if as_json:
            emit_json(lines)
        else:
            for line in lines:
                say(line)
        return EXIT_DONE

    return _run(apply())


@recon_app.command("report")
def recon_report(
    run_id: Annotated[
        str | None, typer.Argument(help="a run id; without one, the newest run of --entity/--period")
    ] = None,
    csv: Annotated[
        str | None, typer.Option("--csv", metavar="FILE", help="write the breaks as CSV (- for stdout)")
    ] = None,
    status: Annotated[
        str | None, typer.Option(help="only breaks in this status (open, healed, acknowledged, ...)")
    ] = None,
    entity: Annotated[str | None, typer.Option(help="without a run id: the newest run of this entity")] = None,
    period: Annotated[str | None, typer.Option(help="without a run id: the newest run of this period")] = None,
    as_json: Json = False,
) -> int:
    """The breaks of a run: class, owner, age, amounts, why."""
    return _run(_recon_report(run_id, csv, status or "", entity or "", period or "", as_json))


async def _recon_report(
    run_id: str | None, csv: str | None, status: str, entity: str, period: str, as_json: bool
) -> int:
    from adapters.storage.reconciliation import SqlReconciliationStore
    from starter.reports import breaks_csv, breaks_table, run_heading

    s = settings()
    if not run_id and not (entity or period):
        raise Refused("name a run (o2c recon runs lists them), or --entity and --period for the newest")
    store = SqlReconciliationStore(s.database_url)
    try:
        if not run_id:
            newest = await store.runs(legal_entity=entity, period=period, limit=1)
            if not newest:
                raise Refused(f"no reconciliation run of {entity or 'any entity'} {period} in {s.database_url}")
            run_id = newest[0].run_id
        summary = await store.run(run_id)
        if summary is None:
            raise Refused(f"no reconciliation run {run_id!r} in {s.database_url}")
        found = await store.breaks_of_run(run_id, status=status)
    finally:
        await store.aclose()
    if csv:
        text = breaks_csv(found)
        if csv == "-":
            sys.stdout.write(text)
        else:
            Path(csv).write_text(text)
            note(f"{len(found)} breaks written to {csv}")
        return EXIT_DONE
    if as_json:
        emit_json({"run": summary.model_dump(mode="json"), "breaks": [b.model_dump(mode="json") for b in found]})
        return EXIT_DONE
    say(run_heading(summary))
    if found:
        show(breaks_table(found))
    else:
        say("no breaks")
    return EXIT_DONE


@recon_app.command("runs")
def recon_runs(
    entity: Annotated[str | None, typer.Option()] = None,
    period: Annotated[str | None, typer.Option()] = None,
    as_json: Json = False,
) -> int:
    """Recent runs, newest first."""

    async def list_runs() -> int:
        from adapters.storage.reconciliation import SqlReconciliationStore
        from starter.reports import runs_table

        store = SqlReconciliationStore(settings().database_url)
        try:
            runs = await store.runs(legal_entity=entity or "", period=period or "")
        finally:
            await store.aclose()
        if as_json:
            emit_json([r.model_dump(mode="json") for r in runs])
        elif runs:
            show(runs_table(runs))
        else:
            say("no reconciliation runs")
        return EXIT_DONE

    return _run(list_runs())


# -- the console script ----------------------------------------------------------------------


def run(argv: list[str] | None = None) -> int:
    """Run one command and return its exit code; known failures print one line, not a traceback."""
    try:
        code = app(args=argv, prog_name="o2c", standalone_mode=False)
    except typer.TyperException as usage:  # typer's own refusals: a missing option, a bad choice
        usage.show()  # type: ignore[attr-defined]  # every refusal typer raises is a ClickException
        return usage.exit_code
    except (KeyboardInterrupt, typer.Abort):
        return 130
    except InvalidSettings as bad:  # a variable or policy file o2c cannot use
        err.print(f"o2c: {bad}", soft_wrap=True, markup=False, highlight=False)
        return EXIT_REFUSED
    except Exception as error:
        known = explain(error, settings())
        if known is None:
            raise
        code, text = known
        err.print(f"o2c: {text}", soft_wrap=True, markup=False, highlight=False)
    return code if isinstance(code, int) else EXIT_DONE


def main(argv: list[str] | None = None) -> int:
    """The console script. The command's outcome is final once run() returns; leave with it
    before interpreter teardown, where the Temporal SDK's native runtime can abort the
    process and turn a success into SIGABRT."""
    code = run(argv)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    sys.exit(main())
