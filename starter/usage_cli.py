"""`o2c usage`: feed usage from a file, work the quarantine, manage the senders' API keys,
sync master data from billing and read period totals. Exit codes as in starter/console.py.

    o2c usage import FILE [--source NAME]        CSV with a header, or JSON lines
    o2c usage quarantine [--status S] [--reason R] [--customer C]
    o2c usage replay [ID...] [--all] --as NAME
    o2c usage discard ID... --reason TEXT --as NAME
    o2c usage keys create NAME | keys list | keys revoke NAME
    o2c usage sync
    o2c usage totals --period YYYY-MM [--customer C]
    o2c usage close [--period YYYY-MM] [--wait]  the period close, now (what the daily schedule runs)
    o2c usage releases [--period YYYY-MM]        usage releases and their status (Temporal visibility)
"""

from __future__ import annotations

import asyncio
import csv
import json
import re
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from pydantic import ValidationError

from canonical.usage.models import MAX_BATCH, EventOutcome, UsageEvent
from settings import Settings
from starter.console import (
    EXIT_DONE,
    EXIT_PARKED,
    EXIT_SYSTEM,
    Refused,
    SystemProblem,
    emit_json,
    note,
    say,
    show,
    table,
)
from starter.session import run as _run
from starter.session import settings
from starter.session import temporal_client as _client
from starter.session import ui_link as _ui_link

if TYPE_CHECKING:
    from temporalio.client import Client

    from adapters.ports import MeteringPort
    from adapters.storage.usage import UsageLedger
    from workflows.usage_close import UsageCloseResult


usage_app = typer.Typer(
    help="Usage events: import a file, the quarantine of refused events, API keys, master data, totals.",
    no_args_is_help=True,
)
keys_app = typer.Typer(help="The API keys of the systems that send usage.", no_args_is_help=True)
usage_app.add_typer(keys_app, name="keys")

Json = Annotated[bool, typer.Option("--json", help="print one JSON document on stdout")]
As = Annotated[str, typer.Option("--as", metavar="NAME", help="who does it (recorded)")]
PERIOD = re.compile(r"\d{4}-(0[1-9]|1[0-2])")
FIELDS = ("identifier", "meter", "customer", "value", "timestamp", "dimensions")


@cache
def _ledger() -> UsageLedger:
    from adapters.storage.usage import UsageLedger

    return UsageLedger(settings().database_url, policy=settings().usage_policy)


def _metering() -> MeteringPort:
    """Billing's meters and metered customers (Stripe)."""
    from adapters.stripe import StripeBilling

    s = settings()
    return StripeBilling(s.stripe_base_url, s.stripe_api_key, timeout=s.http_timeout_seconds)


# -- reading a file ------------------------------------------------------------------------------


class _NotJson(ValueError):
    pass


def _no_constants(name: str) -> Any:
    raise _NotJson(f"{name} is not JSON")


def _number(text: str) -> int | float | str:
    """A CSV cell as the JSON number it spells; anything else stays text (and is refused)."""
    text = text.strip()
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    try:
        value = float(text)
    except ValueError:
        return text
    return value if re.fullmatch(r"-?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?", text) else text


def _csv_records(lines: Iterator[str]) -> Iterator[tuple[int, dict[str, Any] | str]]:
    reader = csv.DictReader(lines)
    header = reader.fieldnames or []
    unknown = [name for name in header if name not in FIELDS and not name.startswith("dimensions.")]
    if unknown:
        raise Refused(
            f"unknown CSV columns {', '.join(unknown)}; the columns are {', '.join(FIELDS)} (or dimensions.NAME)"
        )
    for row in reader:
        line = reader.line_num
        record: dict[str, Any] = {}
        dimensions: dict[str, Any] = {}
        try:
            for name, cell in row.items():
                if name is None or cell is None:
                    raise ValueError("the line has more or fewer cells than the header")
                if name == "dimensions":
                    if cell.strip():
                        dimensions.update(json.loads(cell, parse_constant=_no_constants))
                elif name.startswith("dimensions."):
                    if cell != "":
                        dimensions[name.removeprefix("dimensions.")] = cell
                elif name == "value":
                    record[name] = _number(cell)
                else:
                    record[name] = cell
        except (ValueError, TypeError) as bad:
            yield line, str(bad)
            continue
        if dimensions:
            record["dimensions"] = dimensions
        yield line, record


def _jsonl_records(lines: Iterator[str]) -> Iterator[tuple[int, dict[str, Any] | str]]:
    for number, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        try:
            record = json.loads(text, parse_constant=_no_constants)
        except ValueError as bad:
            yield number, f"not JSON: {bad}"
            continue
        yield number, record if isinstance(record, dict) else "not a JSON object"


def read_events(path: Path) -> Iterator[tuple[int, UsageEvent | str]]:
    """(line number, event or what is wrong with the line) for every record of the file."""
    try:
        with path.open(encoding="utf-8", newline="") as file:
            first = file.readline()
            file.seek(0)
            records = _jsonl_records(file) if first.lstrip().startswith("{") else _csv_records(file)
            for line, record in records:
                if isinstance(record, str):
                    yield line, record
                    continue
                try:
                    yield line, UsageEvent.model_validate(record)
                except ValidationError as bad:
                    yield (
                        line,
                        "; ".join(f"{'.'.join(map(str, e['loc'])) or 'event'}: {e['msg']}" for e in bad.errors()),
                    )
    except OSError as error:
        raise Refused(f"cannot read {path}: {error.strerror}") from None
    except UnicodeDecodeError:
        raise Refused(f"{path} is not UTF-8 text") from None


# -- commands ------------------------------------------------------------------------------------


@usage_app.command("import")
def import_file(
    file: Annotated[
        str, typer.Argument(help="CSV with a header (identifier,meter,customer,value,timestamp), or JSON lines")
    ],
    source: Annotated[str, typer.Option(help="the sending system, recorded on every event")] = "import",
    as_json: Json = False,
) -> int:
    """Feed a file of usage events through the same validation and dedupe as the ingress."""
    path = Path(file)
    # A first pass refuses a file with malformed lines before anything is written.
    malformed = [(line, problem) for line, problem in read_events(path) if isinstance(problem, str)]
    if malformed:
        # The same problem on many lines is said once, at its first line, with the count.
        lines_of: dict[str, list[int]] = {}
        for line, problem in malformed:
            lines_of.setdefault(problem, []).append(line)
        said = [
            f"line {lines[0]}: {problem}" + (f" ({len(lines):,} lines)" if len(lines) > 1 else "")
            for problem, lines in lines_of.items()
        ]
        shown = "\n  - ".join(said[:50])
        more = f"\n  ... and {len(said) - 50} more problems" if len(said) > 50 else ""
        raise Refused(f"{file}: {len(malformed):,} malformed line(s), nothing imported:\n  - {shown}{more}")
    return _run(_import(path, source, as_json))


async def _import(path: Path, source: str, as_json: bool) -> int:
    ledger = _ledger()
    counts: Counter[str] = Counter()
    refused: list[dict[str, Any]] = []
    try:
        batch: list[tuple[int, UsageEvent]] = []

        async def send() -> None:
            verdicts = await ledger.ingest([event for _, event in batch], source=source, now=datetime.now(UTC))
            for (line, _), verdict in zip(batch, verdicts, strict=True):
                counts[verdict.outcome.value] += 1
                if verdict.outcome is EventOutcome.REFUSED:
                    refused.append(
                        {
                            "line": line,
                            "identifier": verdict.identifier,
                            "reason": verdict.reason.value if verdict.reason else "",
                            "message": verdict.message,
                        }
                    )
            batch.clear()

        for line, event in read_events(path):
            assert isinstance(event, UsageEvent)  # the first pass refused the rest
            batch.append((line, event))
            if len(batch) == MAX_BATCH:
                await send()
        if batch:
            await send()
    finally:
        await ledger.aclose()
    document = {outcome.value: counts[outcome.value] for outcome in EventOutcome}
    if as_json:
        emit_json({**document, "refused_lines": refused})
        return EXIT_DONE
    say(", ".join(f"{n} {name}" for name, n in document.items()))
    if refused:
        show(table(["line", "identifier", "reason", "message"], [tuple(r.values()) for r in refused], wide=["message"]))
        note("refused events are quarantined: `o2c usage quarantine`, then replay or discard them")
    return EXIT_DONE


@usage_app.command()
def quarantine(
    status: Annotated[str, typer.Option(help="open, replayed, discarded, or all")] = "open",
    reason: Annotated[str, typer.Option(help="only this reason (unknown_customer, ...)")] = "",
    customer: Annotated[str, typer.Option(help="only this customer's events")] = "",
    as_json: Json = False,
) -> int:
    """Refused events and why, oldest first."""
    if status not in ("open", "replayed", "discarded", "all"):
        raise Refused(f"status is open, replayed, discarded or all, not {status!r}")

    async def list_them() -> int:
        ledger = _ledger()
        try:
            items = await ledger.quarantine(status="" if status == "all" else status, reason=reason, customer=customer)
        finally:
            await ledger.aclose()
        if as_json:
            emit_json([item.to_json() for item in items])
        elif items:
            rows = [
                (
                    q.id,
                    f"{q.received_at:%Y-%m-%d %H:%M}",
                    q.source,
                    q.identifier,
                    q.event.get("customer", ""),
                    q.event.get("meter", ""),
                    q.event.get("value", ""),
                    q.reason,
                    q.status,
                    q.message,
                )
                for q in items
            ]
            headers = [
                "id",
                "received",
                "source",
                "identifier",
                "customer",
                "meter",
                "value",
                "reason",
                "status",
                "message",
            ]
            show(table(headers, rows, wide=["message"]))
        else:
            say(f"no {'' if status == 'all' else status + ' '}quarantined events")
        return EXIT_DONE

    return _run(list_them())


@usage_app.command()
def replay(
    ids: Annotated[list[int] | None, typer.Argument(help="quarantine ids")] = None,
    replay_all: Annotated[bool, typer.Option("--all", help="every open quarantined event")] = False,
    who: As = "operator",
    as_json: Json = False,
) -> int:
    """Validate quarantined events again (after the master data is fixed): valid ones are counted."""
    from adapters.storage.usage import QuarantineError

    if not ids and not replay_all:
        raise Refused("name the quarantine ids to replay, or --all")

    async def run() -> int:
        ledger = _ledger()
        try:
            results = await ledger.replay(ids or [], replay_all=replay_all, by=who, now=datetime.now(UTC))
        except QuarantineError as bad:
            raise Refused(str(bad)) from None
        finally:
            await ledger.aclose()
        rows = [
            {
                "id": id_,
                "identifier": v.identifier,
                "outcome": v.outcome.value,
                "reason": v.reason.value if v.reason else "",
                "period": v.period,
                "message": v.message,
            }
            for id_, v in results
        ]
        if as_json:
            emit_json(rows)
        elif rows:
            counts = Counter(row["outcome"] for row in rows)
            say(", ".join(f"{counts[o.value]} {o.value}" for o in EventOutcome))
            show(
                table(
                    ["id", "identifier", "outcome", "reason", "period", "message"],
                    [tuple(r.values()) for r in rows],
                    wide=["message"],
                )
            )
        else:
            say("no open quarantined events")
        return EXIT_DONE

    return _run(run())


@usage_app.command()
def discard(
    ids: Annotated[list[int], typer.Argument(help="quarantine ids")],
    reason: Annotated[str, typer.Option(help="why the events are not billed (recorded)")],
    who: Annotated[str, typer.Option("--as", metavar="NAME", help="who discards (recorded)")],
    as_json: Json = False,
) -> int:
    """Take quarantined events out of the queue without billing them, with who and why."""
    from adapters.storage.usage import QuarantineError

    async def run() -> int:
        ledger = _ledger()
        try:
            discarded = await ledger.discard(ids, by=who, reason=reason)
        except QuarantineError as bad:
            raise Refused(str(bad)) from None
        finally:
            await ledger.aclose()
        if as_json:
            emit_json({"discarded": discarded, "ids": ids})
        else:
            say(f"{discarded} discarded by {who}: {reason}")
        return EXIT_DONE

    return _run(run())


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Argument(help="the sending system, e.g. product-platform")], as_json: Json = False
) -> int:
    """A new API key: shown once, only its hash is kept."""
    from adapters.storage.usage import QuarantineError

    async def run() -> int:
        ledger = _ledger()
        try:
            key = await ledger.create_key(name)
        except QuarantineError as bad:
            raise Refused(str(bad)) from None
        finally:
            await ledger.aclose()
        if as_json:
            emit_json({"name": name, "key": key})
        else:
            say(key)
            note(
                f"the key of {name}; it is shown this once (o2c keeps only its hash). Send it as Authorization: Bearer <key>"
            )
        return EXIT_DONE

    return _run(run())


@keys_app.command("list")
def keys_list(as_json: Json = False) -> int:
    """Every key's name, when it was created and revoked (never the key)."""

    async def run() -> int:
        ledger = _ledger()
        try:
            keys = await ledger.keys()
        finally:
            await ledger.aclose()
        if as_json:
            emit_json([k.to_json() for k in keys])
        elif keys:
            rows = [
                (
                    k.name,
                    f"{k.created_at:%Y-%m-%d %H:%M}",
                    f"{k.revoked_at:%Y-%m-%d %H:%M}" if k.revoked_at else "active",
                )
                for k in keys
            ]
            show(table(["name", "created", "revoked"], rows))
        else:
            say("no API keys; create one with `o2c usage keys create NAME`")
        return EXIT_DONE

    return _run(run())


@keys_app.command("revoke")
def keys_revoke(name: str, as_json: Json = False) -> int:
    """Revoke a key: the ingress refuses it from now on (other ingress processes within seconds)."""

    async def run() -> int:
        ledger = _ledger()
        try:
            revoked = await ledger.revoke_key(name)
        finally:
            await ledger.aclose()
        if not revoked:
            raise Refused(f"no active API key named {name}")
        if as_json:
            emit_json({"name": name, "revoked": True})
        else:
            say(f"{name}: revoked")
        return EXIT_DONE

    return _run(run())


@usage_app.command("sync")
def sync_master_data(as_json: Json = False) -> int:
    """Pull meters and metered customers from billing into the master data validation uses."""
    from adapters.storage.usage import sync

    async def run() -> int:
        ledger = _ledger()
        metering = _metering()
        try:
            current = settings()
            accounts = [entity.billing_account for entity in current.legal_entities]
            result = await sync(metering, current.usage_policy, ledger, billing_accounts=accounts)
        finally:
            await ledger.aclose()
            closer = getattr(metering, "aclose", None)
            if closer is not None:
                await closer()
        document = {
            "meters": result.meters,
            "customers": result.customers,
            "removed_customers": result.removed_customers,
        }
        if as_json:
            emit_json(document)
        else:
            say(f"{result.meters} meters, {result.customers} metered customers")
            if result.removed_customers:
                say(f"no longer metered: {', '.join(result.removed_customers)}")
        return EXIT_DONE

    return _run(run())


@usage_app.command()
def totals(
    period: Annotated[str, typer.Option(help="YYYY-MM")],
    customer: Annotated[str, typer.Option(help="only this customer")] = "",
    as_json: Json = False,
) -> int:
    """What the accepted events of a period add up to, per customer and meter."""
    if not PERIOD.fullmatch(period):
        raise Refused(f"a period is YYYY-MM, not {period!r}")

    async def run() -> int:
        ledger = _ledger()
        try:
            found = await ledger.period_totals(period, customer=customer)
        finally:
            await ledger.aclose()
        if as_json:
            emit_json([t.model_dump(mode="json") for t in found])
        elif found:
            show(
                table(
                    ["customer", "meter", "quantity", "events", "late"],
                    [(t.customer, t.meter, f"{t.quantity:,}", f"{t.events:,}", t.late_events) for t in found],
                )
            )
        else:
            say(f"no usage in {period}" + (f" for {customer}" if customer else ""))
        return EXIT_DONE

    return _run(run())


# -- the period close and the releases -------------------------------------------------------

# The close lists the metered subscriptions and starts a release for each: quick, but it
# needs a worker; without one the command says so instead of waiting for ever.
CLOSE_TIMEOUT_SECONDS = 120.0


def close_workflow_id(period: str) -> str:
    """The hand-started close of a period; the schedule's runs are `usage-period-close-<time>`."""
    return f"usage-close-{period}"


def _default_period() -> str:
    from canonical.usage.models import period_of, previous_period

    return previous_period(period_of(datetime.now(UTC)))


async def start_period_close(client: Client, period: str, *, task_queue: str = "o2c") -> UsageCloseResult:
    """Run the usage period close of `period` now, as the daily schedule does, and return what
    it started. Running it again is harmless: a release already started (by the schedule, by
    hand, or by an earlier close) is left as it is and listed as already started."""
    from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy

    from workflows.usage_close import UsageCloseInput, UsagePeriodCloseWorkflow

    s = Settings.from_env()
    handle = await client.start_workflow(
        UsagePeriodCloseWorkflow.run,
        UsageCloseInput(
            policy=s.usage_policy, approvals=s.approval_policy, legal_entities=s.legal_entities, period=period
        ),
        id=close_workflow_id(period),
        task_queue=task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
    )
    try:
        return await asyncio.wait_for(handle.result(), timeout=CLOSE_TIMEOUT_SECONDS)
    except TimeoutError:
        raise SystemProblem(
            f"the usage period close {handle.id} did not finish within {CLOSE_TIMEOUT_SECONDS:g} s; "
            f"is a worker running on task queue {task_queue}? ({_ui_link(handle.id)})"
        ) from None


@usage_app.command()
def close(
    period: Annotated[str, typer.Option(help="YYYY-MM; default the month that has ended")] = "",
    wait: Annotated[
        bool,
        typer.Option("--wait", help="follow each release it starts until it is released (0) or parks for a person (3)"),
    ] = False,
    as_json: Json = False,
) -> int:
    """Close a usage period now (what the daily schedule does): start the release of every metered subscription."""
    period = period or _default_period()
    if not PERIOD.fullmatch(period):
        raise Refused(f"a period is YYYY-MM, not {period!r}")
    if period >= f"{datetime.now(UTC):%Y-%m}":
        raise Refused(f"the usage period {period} has not ended yet; a period closes once its month is over")
    return _run(_close(period, wait, as_json))


async def _close(period: str, wait: bool, as_json: bool) -> int:
    client = await _client()
    result = await start_period_close(client, period, task_queue=settings().task_queue)
    document: dict[str, Any] = {
        "period": period,
        "workflow_id": close_workflow_id(period),
        "started": [{"workflow_id": w, "ui": _ui_link(w)} for w in result.started],
        "already_started": [{"workflow_id": w, "ui": _ui_link(w)} for w in result.already_started],
    }
    if not as_json:
        say(
            f"usage period {period} closed: {len(result.started)} releases started, "
            f"{len(result.already_started)} already started"
        )
        for workflow_id in result.started:
            say(f"  {workflow_id}  started\n    {_ui_link(workflow_id)}")
        for workflow_id in result.already_started:
            say(f"  {workflow_id}  already started\n    {_ui_link(workflow_id)}")
    if not wait:
        if as_json:
            emit_json(document)
        return EXIT_DONE
    from starter.progress import follow

    # The releases this close started; those started before are listed by `o2c usage releases`.
    outcomes = [await follow(client, w) for w in result.started]
    if as_json:
        emit_json({**document, "outcomes": [o.to_json() for o in outcomes]})
    else:
        for outcome in outcomes:
            say(f"{outcome.workflow_id}: {outcome.status}: {outcome.message}")
        if any(o.exit_code == EXIT_PARKED for o in outcomes):
            note("held invoices wait in `o2c approvals`; answer with o2c approve, o2c reject or o2c adjust")
    codes = {o.exit_code for o in outcomes}
    return EXIT_SYSTEM if EXIT_SYSTEM in codes else EXIT_PARKED if EXIT_PARKED in codes else EXIT_DONE


async def find_releases(client: Client, *, period: str = "") -> list[dict[str, Any]]:
    """Every usage release Temporal knows (running or closed), from its search attributes,
    newest period first; only those of `period` when it is given."""
    from workflows.kit.status import CUSTOMER, INVOICE, STATUS

    found = []
    async for execution in client.list_workflows('O2cProcess = "usage"'):
        tail = execution.id[-7:]
        release_period = tail if PERIOD.fullmatch(tail) else ""
        if period and release_period != period:
            continue
        attributes = execution.typed_search_attributes
        found.append(
            {
                "workflow_id": execution.id,
                "period": release_period,
                "customer": attributes.get(CUSTOMER) or "",
                "invoice": attributes.get(INVOICE) or "",
                "status": attributes.get(STATUS) or "",
                "execution": execution.status.name.lower() if execution.status else "",
                "started_at": execution.start_time.isoformat(),
                "ui": _ui_link(execution.id),
            }
        )
    return sorted(found, key=lambda r: (r["period"], r["workflow_id"]), reverse=True)


@usage_app.command()
def releases(
    period: Annotated[str, typer.Option(help="YYYY-MM: only this usage period")] = "",
    as_json: Json = False,
) -> int:
    """Usage releases and their status: released, held for review, parked, rolled back."""
    if period and not PERIOD.fullmatch(period):
        raise Refused(f"a period is YYYY-MM, not {period!r}")

    async def list_them() -> int:
        found = await find_releases(await _client(), period=period)
        if as_json:
            emit_json(found)
        elif found:
            show(
                table(
                    ["workflow", "period", "customer", "invoice", "status", "execution"],
                    [
                        (r["workflow_id"], r["period"], r["customer"], r["invoice"], r["status"], r["execution"])
                        for r in found
                    ],
                    wide=["workflow"],
                )
            )
        else:
            say("no usage releases" + (f" of {period}" if period else ""))
        return EXIT_DONE

    return _run(list_them())
