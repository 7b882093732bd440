"""`o2c credit` and `o2c refund`: credits and refunds from the command line. Exit codes as in
starter/console.py; approvals go through `o2c approve` like every other process.

    o2c credit --file REQUEST.json --as NAME [--wait] [--json]   validate and start credit-<credit_id>
    o2c credit show CREDIT_ID [--json]                           where the credit is, its documents
    o2c refund --charge CH --amount 12.50 [--currency USD] --reason R --explanation TEXT --as NAME
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from pydantic import ValidationError

from canonical.credit import RefundRequest, RefundSource
from canonical.credits import CreditRequest
from canonical.money import Money
from starter.console import EXIT_DONE, Refused, emit_json, say
from starter.refusals import validation_problems
from starter.session import run as _run
from starter.session import temporal_client as _client
from starter.session import ui_link as _ui_link

credit_app = typer.Typer(
    help="Credit notes and service credits: start one from a request file, or show one.",
    invoke_without_command=True,
)

Json = Annotated[bool, typer.Option("--json", help="print one JSON document on stdout")]
Wait = Annotated[
    bool,
    typer.Option("--wait", help="follow the process, one line per change, until it ends (0) or parks (3)"),
]
As = Annotated[str, typer.Option("--as", metavar="NAME", help="who asks (recorded; they cannot approve it)")]


@credit_app.callback()
def credit(
    ctx: typer.Context,
    file: Annotated[str | None, typer.Option("--file", help="the request as JSON (- for stdin)")] = None,
    as_: Annotated[str, typer.Option("--as", metavar="NAME", help="who asks (recorded; they cannot approve it)")] = "",
    wait: Wait = False,
    as_json: Json = False,
) -> int:
    """Validate and start a credit (a credit note, or a service credit) on one invoice."""
    if ctx.invoked_subcommand is not None:
        return EXIT_DONE
    if file is None:
        raise Refused("o2c credit needs --file REQUEST.json (or `o2c credit show CREDIT_ID`)")
    if not as_.strip():
        raise Refused("o2c credit needs --as NAME: who asks for the credit")
    from starter.cli import _read_request, _start
    from starter.credits import credit_request_problems, start_credit
    from starter.session import settings

    request = _read_request(file, CreditRequest, "credit request").model_copy(update={"requested_by": as_.strip()})
    policy = settings().credit_policy
    return _run(
        _start(
            "credit request",
            credit_request_problems(request, policy),
            lambda client, billing, task_queue: start_credit(
                client, request, billing=billing, policy=policy, task_queue=task_queue
            ),
            wait,
            as_json,
        )
    )


@credit_app.command("show")
def show(credit_id: str, as_json: Json = False) -> int:
    """Show a credit: its status, amounts, documents and recent events."""

    async def show_state() -> int:
        from starter.client import process_state

        workflow_id = credit_id if credit_id.startswith("credit-") else f"credit-{credit_id}"
        from starter.asking import ask
        from starter.session import settings

        client = await _client()
        state = await ask(client, workflow_id, process_state(client, workflow_id), settings(), answer=False)
        if as_json:
            emit_json(state)
            return EXIT_DONE
        say(f"{workflow_id}: {state.get('status')} — {state.get('stage')}")
        amounts: Any = state.get("amounts") or {}
        if amounts:
            say(f"  credit: {_money(amounts.get('net'))} + tax {_money(amounts.get('tax'))}")
        note: Any = state.get("credit_note") or {}
        if note:
            say(f"  credit note: {note.get('credit_note_id')} ({note.get('status')}) {_money(note.get('total'))}")
        document: Any = state.get("tax_document") or {}
        if document:
            say(f"  tax return: {document.get('code')} ({document.get('status')})")
        if state.get("credit_memo"):
            say(f"  credit memo: {state['credit_memo']}")
        entry: Any = state.get("journal_entry") or {}
        if entry:
            say(f"  journal entry: {entry.get('external_id')}")
        for event in state.get("events", [])[-8:]:
            say(f"  {event['at']}  {event['text']}")
        say(f"  {_ui_link(workflow_id)}")
        return EXIT_DONE

    return _run(show_state())


def _money(value: Any) -> str:
    return f"{value['amount']} {value['currency']}" if isinstance(value, dict) else "-"


def refund(
    charge: Annotated[str, typer.Option("--charge", help="the Stripe charge to refund (ch_...)")],
    amount: Annotated[str, typer.Option("--amount", help="in the charge's currency, e.g. 12.50")],
    reason: Annotated[str, typer.Option("--reason", help="duplicate | fraudulent | requested_by_customer")],
    as_: As,
    explanation: Annotated[str, typer.Option("--explanation", help="why, for the approver and the ledger")] = "",
    currency: Annotated[str, typer.Option("--currency")] = "USD",
    refund_id: Annotated[str, typer.Option("--id", help="the business key (default: the charge)")] = "",
    customer: Annotated[str, typer.Option("--customer")] = "",
    source: Annotated[RefundSource, typer.Option("--from", help="what the money was held as")] = (
        RefundSource.CUSTOMER_CREDIT
    ),
    wait: Wait = False,
    as_json: Json = False,
) -> int:
    """Refund a charge on an operator's decision, approved by the credit policy's thresholds."""

    try:
        request = RefundRequest(
            refund_id=refund_id or charge,
            charge_id=charge,
            amount=Money.of(amount, currency),
            reason=reason,
            explanation=explanation or f"refund decided by {as_}",
            requested_by=as_,
            customer=customer,
            source=source,
        )
    except (ValueError, ArithmeticError) as error:
        if not isinstance(error, ValidationError):
            raise Refused(f"refund refused, no workflow started: --amount {amount!r} in {currency}: {error}") from None
        problems = "; ".join(validation_problems(error, "amount"))
        raise Refused(f"refund refused, no workflow started: {problems}") from None

    from starter.cli import _start
    from starter.credits import start_refund

    return _run(
        _start(
            "refund request",
            [],
            lambda client, billing, task_queue: start_refund(client, request, billing=billing, task_queue=task_queue),
            wait,
            as_json,
        )
    )
