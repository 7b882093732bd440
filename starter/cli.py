"""The `o2c` command line: run the stack, start processes, approve, resolve, inspect."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from datetime import date
from pathlib import Path
from typing import Any, TypeVar

from pydantic import ValidationError
from temporalio.client import WorkflowExecutionStatus, WorkflowUpdateFailedError
from temporalio.service import RPCError

from canonical.amendment import InvalidRequest, request_problems
from canonical.models import AmendmentRequest, ApproverRole, Model
from canonical.reconciliation import period_bounds
from canonical.renewal import RenewalRequest, renewal_request_problems
from settings import Settings
from workflows.kit.attention import Action
from workflows.kit.status import Status

EXIT_INVALID = 2
M = TypeVar("M", bound=Model)


class UserError(Exception):
    """Bad input from the person at the terminal: printed without a traceback."""


def _ui_link(settings: Settings, workflow_id: str) -> str:
    from starter.client import temporal_config

    return f"{settings.ui_url}/namespaces/{temporal_config(settings)['namespace']}/workflows/{workflow_id}"


def _read_request(path: str, model: type[M], what: str) -> M:
    try:
        raw = sys.stdin.read() if path == "-" else Path(path).read_text()
    except OSError as error:
        raise UserError(f"cannot read {path}: {error.strerror}") from None
    try:
        return model.model_validate_json(raw)
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'request'}: {e['msg']}" for e in error.errors())
        raise UserError(f"{path} is not a valid {what}: {problems}") from None


async def _client(settings: Settings):
    from adapters.temporal import connect
    from starter.client import temporal_config

    return await connect(temporal_config(settings))


async def cmd_start(args: argparse.Namespace, settings: Settings) -> int:
    """`o2c amend` and `o2c renew`: validate against billing, then start (or find) the workflow."""
    from adapters.stripe import StripeBilling
    from starter.client import start_amendment, start_renewal

    model, what, start = {
        "amend": (AmendmentRequest, "amendment request", start_amendment),
        "renew": (RenewalRequest, "renewal request", start_renewal),
    }[args.command]
    request = _read_request(args.file, model, what)
    # What the request alone shows is refused before anything is contacted.
    problems = (
        request_problems(request)
        if args.command == "amend"
        else renewal_request_problems(request, settings.renewal_policy)
    )
    if problems:
        raise UserError(f"{what.split()[0]} refused, no workflow started:\n  - " + "\n  - ".join(problems))
    billing = StripeBilling(settings.stripe_base_url, settings.stripe_api_key, timeout=settings.http_timeout_seconds)
    try:
        handle = await start(await _client(settings), request, billing=billing, task_queue=settings.task_queue)
    except InvalidRequest as invalid:
        raise UserError(
            f"{what.split()[0]} refused, no workflow started:\n  - " + "\n  - ".join(invalid.problems)
        ) from None
    finally:
        await billing.aclose()
    described = await handle.describe()
    if described.status == WorkflowExecutionStatus.RUNNING:
        print(f"{handle.id} is running\n  {_ui_link(settings, handle.id)}")
    else:  # the same request was started before: it lands on the existing workflow
        print(f"{handle.id} already exists and is closed ({described.status.name.lower()}); nothing new started")
    if args.wait:
        result = await handle.result()
        print(f"{result.status.value}: {result.message}")
    return 0


async def cmd_reconcile(args: argparse.Namespace, settings: Settings) -> int:
    """`o2c reconcile`: validate, start (or find) the period's reconciliation, say where it is."""
    from starter.client import process_state, reconciliation_problems, start_reconciliation

    problems = reconciliation_problems(args.entity, args.period, today=date.today())
    if problems:
        raise UserError("reconciliation refused, no workflow started:\n  - " + "\n  - ".join(problems))
    client = await _client(settings)
    handle = await start_reconciliation(
        client, legal_entity=args.entity, period=args.period, task_queue=settings.task_queue
    )
    state: dict[str, Any] = {}
    for _ in range(50):  # the run id is the workflow's own: ask it once it has started
        state = await process_state(client, handle.id)
        if state.get("run_id"):
            break
        await asyncio.sleep(0.1)
    print(f"{handle.id}: run {state.get('run_id') or '(starting)'}, {state.get('status')}: {state.get('stage')}")
    print(f"  {_ui_link(settings, handle.id)}")
    if args.wait:
        result = await handle.result()
        print(f"{result.status.value}: {result.message}")
        print(f"  breaks: o2c recon report {result.run_id}")
    return 0


async def cmd_recon(args: argparse.Namespace, settings: Settings) -> int:
    """`o2c recon report RUN_ID [--csv FILE]` and `o2c recon runs`: what finance reads."""
    from adapters.storage.reconciliation import SqlReconciliationStore
    from starter.reports import breaks_csv, breaks_table, runs_table

    store = SqlReconciliationStore(settings.database_url)
    try:
        if args.recon_command == "runs":
            print(runs_table(await store.runs(legal_entity=args.entity or "", period=args.period or "")))
            return 0
        summary = await store.run(args.run_id)
        if summary is None:
            raise UserError(f"no reconciliation run {args.run_id!r} in {settings.database_url}")
        found = await store.breaks_of_run(args.run_id, status=args.status or "")
    finally:
        await store.aclose()
    if args.csv:
        text = breaks_csv(found)
        if args.csv == "-":
            sys.stdout.write(text)
        else:
            Path(args.csv).write_text(text)
            print(f"{len(found)} breaks written to {args.csv}")
        return 0
    print(breaks_table(summary, found))
    return 0


async def cmd_revenue(args: argparse.Namespace, settings: Settings) -> int:
    """`o2c revenue waterfall --entity US01`: bookings by month against the months recognised."""
    from adapters.storage.schedules import SqlRevenueSchedules
    from canonical.asc606 import waterfall
    from starter.reports import waterfall_table

    if args.through:
        try:
            period_bounds(args.through)
        except ValueError as error:
            raise UserError(str(error)) from None
    store = SqlRevenueSchedules(settings.database_url)
    try:
        schedules = await store.schedules_of_entity(args.entity)
    finally:
        await store.aclose()
    print(
        waterfall_table(waterfall(schedules, through=args.through or None))
        if schedules
        else f"no revenue schedules for {args.entity}"
    )
    return 0


def _unavailable(item: dict[str, Any]) -> list[str]:
    return [f"{item['workflow_id']}  {item.get('status')}, state unavailable: {item['unavailable']}"]


def _approval_lines(item: dict[str, Any]) -> list[str]:
    if item.get("unavailable"):
        return _unavailable(item)
    request = (item.get("approval") or {}).get("request") or {}
    amount = request.get("amount") or {}
    return [
        f"{item['workflow_id']}  needs {request.get('required_role')}  requested by "
        f"{request.get('requested_by')}  amount {amount.get('amount')} {amount.get('currency')}",
        *(f"    - {reason}" for reason in request.get("reasons", [])),
    ]


def _attention_lines(item: dict[str, Any]) -> list[str]:
    if item.get("unavailable"):
        return _unavailable(item)
    attention = item.get("attention") or {}
    return [
        f"{item['workflow_id']}  step {attention.get('step')}: {attention.get('message')}  "
        f"(answer: {'/'.join(attention.get('actions', []))})"
    ]


def _renewal_lines(item: dict[str, Any]) -> list[str]:
    if item.get("unavailable"):
        return _unavailable(item)
    value = item.get("term_value") or {}
    return [
        f"{item['workflow_id']}  starts {item.get('new_term_start')}  {value.get('amount')} "
        f"{value.get('currency')}  {item.get('status')}: {item.get('stage')}"
    ]


LISTINGS = {
    "approvals": ({"status": Status.AWAITING_APPROVAL}, "nothing waits for approval", _approval_lines),
    "attention": ({"status": Status.NEEDS_ATTENTION}, "nothing needs attention", _attention_lines),
    "renewals": ({"process": "renewal"}, "no renewal is waiting for its term", _renewal_lines),
}


async def cmd_list(args: argparse.Namespace, settings: Settings) -> int:
    from starter.client import find_processes

    where, empty, lines = LISTINGS[args.command]
    found = await find_processes(await _client(settings), **where)
    if args.json:
        print(json.dumps(found, indent=2, default=str))
        return 0
    print("\n".join(line for item in found for line in lines(item)) or empty)
    return 0


async def cmd_decide(args: argparse.Namespace, settings: Settings, approved: bool) -> int:
    from starter.client import decide

    verdict = await decide(
        await _client(settings),
        args.workflow_id,
        approver=args.as_,
        role=ApproverRole(args.role),
        approved=approved,
        comment=args.comment or "",
    )
    print(f"{args.workflow_id}: {verdict} by {args.as_}")
    return 0


async def cmd_resolve(args: argparse.Namespace, settings: Settings) -> int:
    from starter.client import resolve

    answer = await resolve(
        await _client(settings), args.workflow_id, Action(args.action), operator=args.as_, comment=args.comment or ""
    )
    print(f"{args.workflow_id}: {answer}")
    return 0


async def cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    from starter.client import process_state

    state = await process_state(await _client(settings), args.workflow_id)
    if args.json:
        print(json.dumps(state, indent=2, default=str))
        return 0
    print(f"{args.workflow_id}: {state.get('status')} — {state.get('stage')}")
    if state.get("attention"):
        a = state["attention"]
        print(f"  needs attention at {a['step']}: {a['message']} (answer: {'/'.join(a['actions'])})")
    for key in ("invoice", "tax_document", "journal_entry"):
        value: Any = state.get(key)
        if value:
            print(f"  {key.replace('_', ' ')}: {value.get('id') or value.get('code') or value.get('external_id')}")
    for event in state.get("events", [])[-8:]:
        print(f"  {event['at']}  {event['text']}")
    print(f"  {_ui_link(settings, args.workflow_id)}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="o2c", description="durable order-to-cash on Temporal")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("dev", help="run Temporal (UI on :8233), the sandbox and the worker until Ctrl-C")
    demo = sub.add_parser("demo", help="run every amendment story end to end and show what happened")
    demo.add_argument("--json", action="store_true", help="print the results as JSON")
    sub.add_parser("worker", help="run the worker against the configured Temporal and systems")
    sandbox = sub.add_parser("sandbox", help="serve the Stripe/AvaTax/NetSuite sandbox in the foreground")
    sandbox.add_argument("--port", type=int, default=8700)
    sandbox.add_argument("--host", default="127.0.0.1")
    webhooks = sub.add_parser(
        "webhooks",
        help="serve the Stripe webhook endpoint (POST /webhooks/stripe) "
        "that turns payment events into dunning workflows",
    )
    webhooks.add_argument("--host", help="default O2C_WEBHOOK_HOST or 127.0.0.1")
    webhooks.add_argument("--port", type=int, help="default O2C_WEBHOOK_PORT or 8710")
    seed = sub.add_parser("seed", help="create a customer and subscription in the sandbox (see examples/seed.json)")
    seed.add_argument("--file", required=True)

    for name, what in (("amend", "a contract amendment"), ("renew", "a renewal (closed-won)")):
        start = sub.add_parser(name, help=f"validate and start {what}")
        start.add_argument("--file", required=True, help="the request as JSON (- for stdin)")
        start.add_argument("--wait", action="store_true", help="wait for the outcome")

    listings = {
        "approvals": "list processes waiting for approval",
        "attention": "list processes parked in the exception queue",
        "renewals": "list renewals waiting for their term, with start dates",
    }
    for name, text in listings.items():
        listing = sub.add_parser(name, help=text)
        listing.add_argument("--json", action="store_true")

    for name in ("approve", "reject"):
        decision = sub.add_parser(name, help=f"{name} what a process waits for")
        decision.add_argument("workflow_id")
        decision.add_argument("--as", dest="as_", required=True, metavar="NAME")
        decision.add_argument("--role", required=True, choices=[r.value for r in ApproverRole])
        decision.add_argument("--comment", required=(name == "reject"))

    resolve = sub.add_parser("resolve", help="answer a process parked in needs_attention")
    resolve.add_argument("workflow_id")
    resolve.add_argument("action", choices=[a.value for a in Action])
    resolve.add_argument("--as", dest="as_", required=True, metavar="NAME")
    resolve.add_argument("--comment")

    schedules = sub.add_parser(
        "schedules", help="o2c's Temporal schedules (the daily renewal window, daily and month-end reconciliations)"
    )
    schedules.add_argument("action", choices=["apply"])

    reconcile = sub.add_parser("reconcile", help="reconcile billing, tax and the ERP for a period and entity now")
    reconcile.add_argument("--period", required=True, help="YYYY-MM")
    reconcile.add_argument("--entity", required=True, help="legal entity code, e.g. US01")
    reconcile.add_argument("--wait", action="store_true", help="wait for the outcome")

    recon = sub.add_parser("recon", help="reconciliation runs and their breaks, from o2c's database")
    recon_sub = recon.add_subparsers(dest="recon_command", required=True)
    report = recon_sub.add_parser("report", help="the breaks of a run")
    report.add_argument("run_id")
    report.add_argument("--csv", metavar="FILE", help="write the breaks as CSV (- for stdout)")
    report.add_argument("--status", help="only breaks in this status (open, healed, acknowledged, ...)")
    runs = recon_sub.add_parser("runs", help="recent runs, newest first")
    runs.add_argument("--entity")
    runs.add_argument("--period")

    revenue = sub.add_parser("revenue", help="revenue reports from the schedules o2c recorded")
    revenue.add_argument("report", choices=["waterfall"])
    revenue.add_argument("--entity", required=True)
    revenue.add_argument("--through", help="YYYY-MM: recognition after it shows as remaining")

    status = sub.add_parser("status", help="show a process's state")
    status.add_argument("workflow_id")
    status.add_argument("--json", action="store_true")
    return parser


async def dispatch(args: argparse.Namespace, settings: Settings) -> int:
    if args.command == "dev":
        from starter.stack import run_dev

        await run_dev(settings)
        return 0
    if args.command == "demo":
        from starter.demo import run_demo

        return await run_demo(settings, as_json=args.json)
    if args.command == "worker":
        # Exactly what `python worker.py` runs, in this process's place.
        os.execv(sys.executable, [sys.executable, "-m", "worker"])
    if args.command == "webhooks":
        from starter.webhooks import configure_logging, serve_webhooks

        if not settings.stripe_webhook_secret:
            raise UserError("set O2C_STRIPE_WEBHOOK_SECRET to the endpoint's signing secret (whsec_...)")
        configure_logging()
        await serve_webhooks(settings, host=args.host, port=args.port)
        return 0
    if args.command == "seed":
        from sandbox import SandboxControl

        spec = json.loads(Path(args.file).read_text())
        created = SandboxControl(settings.sandbox_url).seed(**spec)
        print(f"seeded {created.get('customer_id')} with {created.get('subscription_id')}")
        return 0
    handlers = {
        "amend": cmd_start,
        "renew": cmd_start,
        "approvals": cmd_list,
        "attention": cmd_list,
        "renewals": cmd_list,
        "resolve": cmd_resolve,
        "status": cmd_status,
        "reconcile": cmd_reconcile,
        "recon": cmd_recon,
        "revenue": cmd_revenue,
    }
    if args.command == "schedules":
        from starter.schedules import apply_schedules

        for line in await apply_schedules(await _client(settings), settings.task_queue):
            print(line)
        return 0
    if args.command in ("approve", "reject"):
        return await cmd_decide(args, settings, approved=args.command == "approve")
    return await handlers[args.command](args, settings)


def main(argv: list[str] | None = None) -> int:
    """The console script. The command's outcome is final once run() returns; leave with it
    before interpreter teardown, where the Temporal SDK's native runtime can abort the
    process and turn a success into SIGABRT."""
    code = run(argv)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def run(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = Settings.from_env()
    if args.command == "sandbox":  # uvicorn runs its own event loop and signal handling
        from sandbox.server import serve as serve_sandbox

        serve_sandbox(settings.database_url, args.host, args.port)
        return 0
    try:
        return asyncio.run(dispatch(args, settings))
    except UserError as error:
        print(f"o2c: {error}", file=sys.stderr)
        return EXIT_INVALID
    except WorkflowUpdateFailedError as refused:
        print(f"o2c: refused: {refused.cause.message if refused.cause else refused}", file=sys.stderr)
        return EXIT_INVALID
    except RPCError as error:
        from starter.client import temporal_config

        print(
            f"o2c: Temporal said: {error.message} (is `o2c dev` running at {temporal_config(settings)['target_host']}?)",
            file=sys.stderr,
        )
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
