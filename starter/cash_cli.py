"""`o2c cash`: import bank statements, work the cash exception queue. Exit codes as in
starter/console.py (2: a refused file or decision, nothing done).

    o2c cash import FILE [--entity CODE]       camt.053 (.02/.08) or BAI2; validated whole first
    o2c cash sync [--entity CODE]              billing's open invoices into the cash store
    o2c cash queue [--entity CODE]             receipts with cash unapplied, oldest first
    o2c cash apply RECEIPT --invoice INV [--amount X] ... --as NAME [--comment TEXT]
    o2c cash refund RECEIPT [--amount X] --as NAME --reason TEXT
    o2c cash show ID                           a receipt, or a cash application (cash-...)

The operator's name comes from --as for now, as with `o2c approve`; the signed-in identity
of the console replaces it.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from canonical.models import unknown_entity
from starter.console import EXIT_DONE, Refused, emit_json, note, say, show, table
from starter.session import run as _run
from starter.session import settings
from starter.session import temporal_client as _client
from starter.session import ui_link as _ui_link

if TYPE_CHECKING:
    from collections.abc import Awaitable

    from adapters.storage.cash import SqlCashStore
    from canonical.cash.models import Receipt
    from canonical.money import Money
    from workflows.cash import RecordedCashDecision

cash_app = typer.Typer(
    help="Cash application: import bank statements, work the cash exception queue.", no_args_is_help=True
)

Json = Annotated[bool, typer.Option("--json", help="print one JSON document on stdout")]
As = Annotated[str, typer.Option("--as", metavar="NAME", help="who decides (recorded)")]
Entity = Annotated[
    str, typer.Option("--entity", metavar="CODE", help="the legal entity (default: the first configured)")
]


@cache
def _store() -> SqlCashStore:
    from adapters.storage.cash import SqlCashStore

    return SqlCashStore(settings().database_url)


def _entity(code: str) -> str:
    entities = settings().legal_entities
    if not code:
        return entities[0].code
    if code not in {e.code for e in entities}:
        raise Refused(unknown_entity(code, entities))
    return code


def _money(text: str, currency: str, what: str) -> Money:
    from canonical.money import Money

    try:
        amount = Money.of(text, currency)
    except (ValueError, ArithmeticError) as error:
        raise Refused(f"{what} {text!r} is not an amount in {currency}: {error}") from None
    if amount.is_zero or amount.is_negative:
        raise Refused(f"{what} must be positive, not {text}")
    return amount


async def _decide(receipt: Receipt, decision: Awaitable[RecordedCashDecision]) -> RecordedCashDecision:
    """The decision, or why it cannot be taken: a cash application that has ended holds no
    receipt waiting any more."""
    from temporalio.service import RPCError, RPCStatusCode

    from starter.cash import workflow_of

    try:
        return await decision
    except RPCError as error:
        if error.status in (RPCStatusCode.NOT_FOUND, RPCStatusCode.FAILED_PRECONDITION):
            raise Refused(
                f"{receipt.receipt_id} does not wait in {workflow_of(receipt)}: that cash application has ended "
                "(see `o2c cash show`)"
            ) from None
        raise


async def _receipt(receipt_id: str) -> Receipt:
    receipt = await _store().receipt(receipt_id)
    if receipt is None:
        raise Refused(f"no receipt {receipt_id} in o2c's cash store (see `o2c cash queue`)")
    return receipt


@cash_app.command("import")
def import_file(
    file: Annotated[str, typer.Argument(help="a camt.053 (.02 or .08) or BAI2 statement file")],
    entity: Entity = "",
    as_json: Json = False,
) -> int:
    """Validate a bank statement whole, keep it and apply its receipts (`cash-<statement id>`)."""
    from starter.cash import StatementRefused, entity_named, import_statement, read_bank_file

    try:
        data = Path(file).read_bytes()
    except OSError as error:
        raise Refused(f"cannot read {file}: {error.strerror}") from None
    code = _entity(entity)

    async def run() -> int:
        current = settings()
        try:
            # Read first: a bad file is refused before Temporal or the database is asked anything.
            read_bank_file(data, legal_entity=entity_named(code, current.legal_entities), name=file)
            result = await import_statement(
                await _client(),
                data,
                legal_entity=code,
                store=_store(),
                legal_entities=current.legal_entities,
                task_queue=current.task_queue,
                name=file,
            )
        except StatementRefused as refused:
            raise Refused(str(refused)) from None
        rows = [
            {
                "statement_id": s.statement_id,
                "workflow_id": s.workflow_id,
                "receipts": s.receipts,
                "total": str(s.total),
                "imported": "new" if s.new else "imported before: the same statement",
            }
            for s in result.statements
        ]
        if as_json:
            emit_json({"statements": rows})
            return EXIT_DONE
        show(table(["statement_id", "workflow_id", "receipts", "total", "imported"], [tuple(r.values()) for r in rows]))
        for s in result.statements:
            note(f"  {_ui_link(s.workflow_id)}")
        return EXIT_DONE

    return _run(run())


@cash_app.command()
def sync(
    entity: Annotated[
        str, typer.Option("--entity", metavar="CODE", help="one legal entity (default: every one configured)")
    ] = "",
    as_json: Json = False,
) -> int:
    """Read every open invoice of each legal entity's billing account into the cash store."""
    from adapters.stripe import StripeBilling
    from starter.cash_sync import UnknownEntity, entities_to_sync, sync_open_items

    current = settings()
    try:
        entities_to_sync(current.legal_entities, entity)
    except UnknownEntity as unknown:
        raise Refused(str(unknown)) from None

    async def run() -> int:
        billing = StripeBilling(current.stripe_base_url, current.stripe_api_key, timeout=current.http_timeout_seconds)
        try:
            synced = await sync_open_items(billing, _store(), current.legal_entities, entity=entity)
        finally:
            await billing.aclose()
        rows = [
            {
                "legal_entity": s.legal_entity,
                "billing_account": s.billing_account or "platform",
                "open_invoices": s.invoices,
                "open_balance": ", ".join(str(m) for _, m in sorted(s.balances.items())) or "none",
                "skipped": s.skipped,
            }
            for s in synced
        ]
        if as_json:
            emit_json({"entities": rows})
            return EXIT_DONE
        show(
            table(
                ["legal entity", "billing account", "open invoices", "open balance"],
                [(r["legal_entity"], r["billing_account"], r["open_invoices"], r["open_balance"]) for r in rows],
            )
        )
        skipped = sum(len(s.skipped) for s in synced)
        if skipped:
            note(f"{skipped} open invoice(s) with nothing to receive (zero or negative total) not kept")
        return EXIT_DONE

    return _run(run())


@cash_app.command()
def queue(entity: Entity = "", as_json: Json = False) -> int:
    """Receipts with cash still unapplied, oldest first, with their best suggestions."""
    from starter.cash import cash_queue

    code = _entity(entity) if entity else ""

    async def run() -> int:
        found = await cash_queue(_store(), legal_entity=code)
        if as_json:
            emit_json([q.model_dump(mode="json") for q in found])
            return EXIT_DONE
        if not found:
            say("nothing waits in the cash exception queue" + (f" of {code}" if code else ""))
            return EXIT_DONE
        rows = [
            (
                q.receipt.receipt_id,
                f"{q.age_days}d",
                str(q.receipt.amount),
                str(q.match.unapplied),
                (q.match.exception.value if q.match.exception else q.match.rule.value).replace("_", " "),
                "; ".join(
                    f"{'+'.join(s.invoice_ids)} {s.amount} ({s.score}: {s.why})" for s in q.match.suggestions[:3]
                ),
            )
            for q in found
        ]
        show(
            table(
                ["receipt", "age", "amount", "unapplied", "kind", "best suggestions"], rows, wide=["best suggestions"]
            )
        )
        note(
            "apply with `o2c cash apply RECEIPT --invoice INV [--amount X] --as NAME`, or refund with `o2c cash refund`"
        )
        return EXIT_DONE

    return _run(run())


@cash_app.command()
def apply(
    receipt_id: Annotated[str, typer.Argument(metavar="RECEIPT")],
    invoice: Annotated[list[str], typer.Option("--invoice", metavar="INV", help="an invoice to apply to (repeat)")],
    as_: As,
    amount: Annotated[
        list[str] | None,
        typer.Option("--amount", metavar="X", help="how much to the invoice named before it (default: what is due)"),
    ] = None,
    comment: Annotated[str, typer.Option(help="why (recorded)")] = "",
    as_json: Json = False,
) -> int:
    """Apply a queued receipt's unapplied cash to invoices."""
    from starter.cash import apply_receipt
    from workflows.cash import InvoiceAmount

    amounts = amount or []
    if len(amounts) > len(invoice):
        raise Refused("each --amount follows the --invoice it is for")

    async def run() -> int:
        receipt = await _receipt(receipt_id)
        currency = receipt.amount.currency
        lines = [
            InvoiceAmount(
                invoice_id=inv,
                amount=_money(amounts[n], currency, f"--amount for {inv}") if n < len(amounts) else None,
            )
            for n, inv in enumerate(invoice)
        ]
        decided = await _decide(receipt, apply_receipt(await _client(), receipt, lines, operator=as_, comment=comment))
        return _decided(decided.model_dump(mode="json"), as_json)

    return _run(run())


@cash_app.command()
def refund(
    receipt_id: Annotated[str, typer.Argument(metavar="RECEIPT")],
    as_: As,
    reason: Annotated[str, typer.Option(help="why the money goes back (recorded)")],
    amount: Annotated[str, typer.Option(metavar="X", help="how much (default: all that is unapplied)")] = "",
    as_json: Json = False,
) -> int:
    """Give a queued receipt's unapplied cash back to the payer."""
    from starter.cash import refund_receipt

    async def run() -> int:
        receipt = await _receipt(receipt_id)
        money = _money(amount, receipt.amount.currency, "--amount") if amount else None
        decided = await _decide(
            receipt, refund_receipt(await _client(), receipt, amount=money, operator=as_, reason=reason)
        )
        return _decided(decided.model_dump(mode="json"), as_json)

    return _run(run())


def _decided(decision: dict[str, Any], as_json: bool) -> int:
    if as_json:
        emit_json(decision)
        return EXIT_DONE
    if decision["kind"] == "apply":
        what = ", ".join(
            f"{a['amount']['amount']} {a['amount']['currency']} to {a['invoice_id']}" for a in decision["applications"]
        )
        say(f"{decision['receipt_id']}: applied {what} by {decision['decided_by']}")
    else:
        refund = decision["refund"] or {}
        say(
            f"{decision['receipt_id']}: refunded {refund.get('amount')} {refund.get('currency')} by {decision['decided_by']}"
        )
    if decision["posted"]:
        say("  posted: " + ", ".join(decision["posted"]))
    return EXIT_DONE


@cash_app.command("show")
def show_one(
    id_: Annotated[
        str, typer.Argument(metavar="ID", help="a receipt id, or a cash application's workflow id (cash-...)")
    ],
    as_json: Json = False,
) -> int:
    """A receipt with its match, or a cash application's counts and what waits in it."""
    from starter.client import process_state

    async def run() -> int:
        if id_.startswith("cash-"):
            state = await process_state(await _client(), id_)
            if as_json:
                emit_json(state)
                return EXIT_DONE
            say(f"{id_}: {state['status']} — {state['stage']}")
            say(
                f"  receipts {state['receipts']} in {state['batches']} batches; by rule: "
                + ", ".join(f"{k.replace('_', ' ')} {n}" for k, n in sorted(state["by_rule"].items()))
            )
            for label in ("applied", "unapplied", "waiting_unapplied"):
                amounts = ", ".join(f"{m['amount']} {m['currency']}" for m in state[label].values()) or "nothing"
                say(f"  {label.replace('_', ' ')}: {amounts}")
            for w in state["waiting"][:20]:
                say(
                    f"  waits: {w['receipt_id']} {w['kind'].replace('_', ' ')} {w['unapplied']['amount']} {w['unapplied']['currency']}"
                )
            for d in state["decisions"][-10:]:
                say(
                    f"  decided: {d['receipt_id']} {d['kind']} by {d['decided_by']} at {d['decided_at']}: {d['comment']}"
                )
            say(f"  {_ui_link(id_)}")
            return EXIT_DONE
        receipt = await _receipt(id_)
        match = await _store().match_of(id_)
        document = {
            "receipt": receipt.model_dump(mode="json"),
            "match": match.model_dump(mode="json") if match else None,
        }
        if as_json:
            emit_json(document)
            return EXIT_DONE
        say(
            f"{receipt.receipt_id}: {receipt.amount} on {receipt.value_date} from {receipt.payer_name or 'an unknown payer'}"
        )
        if receipt.references:
            say("  references: " + ", ".join(receipt.references))
        if match is None:
            say("  not matched yet")
        else:
            say(f"  {match.rule.value.replace('_', ' ')}: {match.explanation}")
            for a in match.applications:
                say(f"  applied {a.amount} to {a.invoice_id}")
            if not match.unapplied.is_zero:
                say(
                    f"  unapplied {match.unapplied}"
                    + (f" ({match.exception.value.replace('_', ' ')})" if match.exception else "")
                )
        return EXIT_DONE

    return _run(run())
