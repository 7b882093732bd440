"""A chaos run: amendments, dunnings, renewals, usage releases and a reconciliation at once on
the real dev server, while the sandbox fails a fixed share of every system's requests (5xx, 429, latency,
commit-then-timeout) and the worker process is killed with SIGKILL and started again, mid-run.

Then what every system holds is checked against what the processes should have done: no
duplicate invoice, tax document, journal entry, notice or collection case; every entry
balanced; the ledger's receivable equal to what the completed processes invoiced; billing's
meters holding each customer's usage exactly once. Used by
tests/integration/test_chaos.py (a size CI runs) and bench/chaos.py (larger, with figures).
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from temporalio.client import Client, WorkflowExecutionStatus

from adapters.errors import TransientError
from adapters.stripe import StripeBilling
from canonical.models import AmendedLine, AmendmentRequest, LegalEntity
from canonical.renewal import RenewalRequest, RenewedLine
from canonical.usage.models import period_end, period_start
from sandbox import SandboxControl
from settings import Settings
from starter import client as o2c
from starter.stack import webhook_ingress
from starter.webhooks import STRIPE_PATH
from tests.integration.usage_kit import PERIOD, MeteredCustomer, release_input, seed_history, send, synced
from workflows.dunning import dunning_workflow_id
from workflows.kit.status import STATUS, Status

ROOT = Path(__file__).resolve().parents[2]
SYSTEMS = ("stripe", "avatax", "netsuite", "entitlements", "notifications", "salesforce")
# The share of requests each kind of fault hits, on every system (every n-th request): about
# one request in nine fails. An operation of several calls (an invoice with its items) is
# retried whole, so a much higher rate makes progress a matter of minutes of backoff.
FAULT_EVERY = {"5xx": 23, "429": 29, "latency": 7, "commit_then_timeout": 31}
WORKER_HTTP_TIMEOUT = "1.5"  # below the commit-then-timeout hold, so that response is lost
HOLD_SECONDS = 2.0
# Short calendar days, so dunnings and renewals happen within the run.
CALENDAR = {"O2C_DUNNING_DAY_SECONDS": "1", "O2C_RENEWAL_DAY_SECONDS": "0.5"}
PERIOD_START, PERIOD_END = date(2026, 11, 1), date(2026, 12, 1)
RECONCILED = "2026-10"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def upstream(start: Any) -> Any:
    """Start a process as an upstream system would: billing may fail the validation's read
    now and then (the faults), so try again a few times."""
    for attempt in range(8):
        try:
            return await start()
        except TransientError:
            await asyncio.sleep(0.2 * (attempt + 1))
    return await start()


class WorkerProcess:
    """`python -m worker` against the given stack, to be killed and started again."""

    def __init__(self, temporal_address: str, settings: Settings, task_queue: str, log: Path):
        self.env = {
            **os.environ,
            "O2C_TEMPORAL_ADDRESS": temporal_address,
            "O2C_TASK_QUEUE": task_queue,
            "O2C_SANDBOX_URL": settings.sandbox_url,
            "O2C_DATABASE_URL": settings.database_url,
            "O2C_HTTP_TIMEOUT_SECONDS": WORKER_HTTP_TIMEOUT,
        }
        self.log = log
        self.process: subprocess.Popen | None = None
        self.kills = 0

    def start(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "worker"],
            env=self.env,
            cwd=ROOT,
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
        )

    def kill(self) -> None:
        """SIGKILL: no draining, no goodbye; whatever it was doing is lost mid-flight."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()
        self.kills += 1

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@dataclass
class Process:
    kind: str  # amendment, dunning, renewal, usage, reconciliation
    workflow_id: str
    account_id: str
    expect: str  # what the process should come to: completed, or needs_attention
    invoice_id: str = ""  # a dunning's invoice


@dataclass
class ChaosReport:
    processes: list[Process]
    outcomes: Counter = field(default_factory=Counter)
    faults_injected: Counter = field(default_factory=Counter)  # by kind
    kills: int = 0
    duplicates: list[str] = field(default_factory=list)
    unbalanced: list[str] = field(default_factory=list)
    wrong_outcomes: list[str] = field(default_factory=list)
    ledger_expected: Decimal = Decimal(0)
    ledger_posted: Decimal = Decimal(0)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return (
            not self.duplicates
            and not self.unbalanced
            and not self.wrong_outcomes
            and self.ledger_expected == self.ledger_posted
        )

    def figures(self) -> str:
        def listed(counts: Counter) -> str:
            return ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))

        return (
            f"{len(self.processes)} processes ({listed(self.outcomes)}) in {self.seconds:.0f} s; "
            f"{sum(self.faults_injected.values())} faults injected ({listed(self.faults_injected)}); "
            f"{self.kills} worker kills; "
            f"{len(self.duplicates)} duplicates; {len(self.unbalanced)} unbalanced entries; "
            f"{len(self.wrong_outcomes)} wrong outcomes; receivable booked {self.ledger_posted} "
            f"against {self.ledger_expected} invoiced"
        )

    def summary(self) -> dict[str, Any]:
        """The same figures, ready for json.dumps: counts, and money as exact decimal strings."""
        return {
            "processes": len(self.processes),
            "outcomes": dict(self.outcomes),  # by "kind outcome", e.g. "dunning completed"
            "seconds": self.seconds,
            "faults_injected": sum(self.faults_injected.values()),
            "faults_by_kind": dict(self.faults_injected),
            "kills": self.kills,
            "duplicates": len(self.duplicates),
            "unbalanced_entries": len(self.unbalanced),
            "wrong_outcomes": len(self.wrong_outcomes),
            "receivable_booked": str(self.ledger_posted),
            "receivable_invoiced": str(self.ledger_expected),
        }


class Chaos:
    def __init__(self, client: Client, temporal_address: str, control: SandboxControl, settings: Settings, logs: Path):
        self.client, self.control = client, control
        self.key = uuid.uuid4().hex[:6]
        self.task_queue = f"chaos-{self.key}"
        self.settings = settings.model_copy(update={"task_queue": self.task_queue, "webhook_port": free_port()})
        self.worker = WorkerProcess(temporal_address, settings, self.task_queue, logs / f"chaos-worker-{self.key}.log")
        self.billing = StripeBilling(settings.stripe_base_url, settings.stripe_api_key, timeout=10)
        self.processes: list[Process] = []
        self.usage_sent: dict[str, MeteredCustomer] = {}  # usage workflow id -> whose usage
        self.last_seen: dict[str, str] = {}  # what the server last said of each process

    # -- the world --------------------------------------------------------------------------------

    def _customer(
        self,
        name: str,
        *,
        postal_code: str = "94105",
        payment_method: str = "pm_card_visa",
        period: tuple[date, date] = (PERIOD_START, PERIOD_END),
        term: tuple[date, date] = (date(2026, 1, 1), date(2027, 1, 1)),
    ) -> str:
        key = f"{self.key}{name}"
        self.control.seed(
            customer={
                "id": f"cus_{key}",
                "name": f"Chaos {key}",
                "email": f"ap@{key}.test",
                "payment_method": payment_method,
                "address": {
                    "line1": "1 Market St",
                    "city": "San Francisco",
                    "region": "CA",
                    "postal_code": postal_code,
                    "country": "US",
                },
            },
            subscription={
                "id": f"sub_{key}",
                "contract_id": f"C-{key}",
                "currency": "USD",
                "items": [{"product": "seats", "description": "Platform seat", "quantity": 10, "unit_price": "50.00"}],
                "current_period_start": period[0].isoformat(),
                "current_period_end": period[1].isoformat(),
                "term_start": term[0].isoformat(),
                "term_end": term[1].isoformat(),
            },
        )
        return key

    async def start_amendment(self, n: int, *, fixable_problem: bool = False) -> None:
        key = self._customer(f"a{n}", postal_code="" if fixable_problem else "94105")
        request = AmendmentRequest(
            amendment_id=f"CHAOS-{key}",
            contract_id=f"C-{key}",
            subscription_id=f"sub_{key}",
            account_id=f"cus_{key}",
            currency="USD",
            effective_date=date(2026, 11, 16),
            requested_by="sam.sales",
            reason="chaos",
            lines=[AmendedLine(product="seats", quantity=12 + n % 5, unit_price=Decimal("50.00"))],
        )
        handle = await upstream(
            lambda: o2c.start_amendment(self.client, request, billing=self.billing, task_queue=self.task_queue)
        )
        self.processes.append(
            Process("amendment", handle.id, f"cus_{key}", "needs_attention" if fixable_problem else "completed")
        )

    async def start_renewal(self, n: int) -> None:
        today = date.today()
        term_end = today + timedelta(days=3)
        key = self._customer(
            f"r{n}", period=(today - timedelta(days=10), term_end), term=(term_end - timedelta(days=365), term_end)
        )
        request = RenewalRequest(
            contract_id=f"C-{key}",
            subscription_id=f"sub_{key}",
            account_id=f"cus_{key}",
            term=f"{term_end.year + 1}",
            new_term_start=term_end,
            new_term_end=term_end.replace(year=term_end.year + 1),
            uplift_percent=Decimal(3),
            lines=[RenewedLine(product="seats", quantity=11)],
            requested_by="sam.sales",
        )
        handle = await upstream(
            lambda: o2c.start_renewal(self.client, request, billing=self.billing, task_queue=self.task_queue)
        )
        self.processes.append(Process("renewal", handle.id, f"cus_{key}", "completed"))

    async def start_reconciliation(self, invoices: int) -> None:
        """Last October of a legal entity of its own: its readers are killed and faulted
        mid-period and must resume where they stopped; its one missing entry is healed once."""
        entity = LegalEntity(
            code=f"CH{self.key}",
            company_code=f"CH{self.key}",
            functional_currency="USD",
            erp_subsidiary=str(500000 + int(self.key, 16) % 100000),
            billing_account=f"acct_ch{self.key}",
        )
        seeded = self.control.seed_period(
            tag=entity.code,
            period=RECONCILED,
            invoices=invoices,
            stripe_account=entity.billing_account,
            company_code=entity.company_code,
            subsidiary=entity.erp_subsidiary,
            breaks={"missing_in_erp": 1},
        )
        handle = await upstream(
            lambda: o2c.start_reconciliation(
                self.client,
                legal_entity=entity.code,
                period=RECONCILED,
                task_queue=self.task_queue,
                legal_entities=[entity],
            )
        )
        self.processes.append(
            Process("reconciliation", handle.id, "", "completed", invoice_id=seeded["breaks"]["missing_in_erp"][0])
        )

    async def start_dunning(self, n: int) -> None:
        """The monthly charge fails; the signed webhook starts the dunning on the chaos queue."""
        key = self._customer(f"d{n}", payment_method="pm_card_chargeDeclinedInsufficientFunds")
        invoice = self.control.renewal_charge(f"sub_{key}")
        self.processes.append(
            Process("dunning", dunning_workflow_id(invoice["id"]), f"cus_{key}", "completed", invoice_id=invoice["id"])
        )

    async def start_usage(self, n: int, ingress: str) -> None:
        """A month of usage over the HTTP ingress, then its release while billing's period ends:
        the meter reports, the draft and its hold, tax and the ERP all see the faults."""
        who = MeteredCustomer(self.control, self.settings, "chaos", key=f"{self.key}u{n}").seed()
        ledger = await upstream(lambda: synced(self.settings))
        try:
            api_key = await ledger.create_key(f"chaos-{who.key}")
            # A producer's retry in the middle: 60 events sent, 80 arrive.
            for batch in ([who.event(i, 50 + n) for i in range(40)], [who.event(i, 50 + n) for i in range(20, 60)]):
                answer = await send(ingress, api_key, batch)
                assert answer.status_code == 200, answer.text
                who.sent += sum(
                    e["value"]
                    for e, r in zip(batch, answer.json()["results"], strict=True)
                    if r["outcome"] == "accepted"
                )
        finally:
            await ledger.aclose()
        await seed_history(self.settings, who, [who.sent] * 6)
        request = await upstream(lambda: release_input(self.settings, who))
        handle = await upstream(lambda: o2c.start_usage_release(self.client, request, task_queue=self.task_queue))
        self.control.end_period(who.subscription_id)  # before or after o2c reports: either way
        self.usage_sent[handle.id] = who
        self.processes.append(Process("usage", handle.id, who.customer, "completed"))

    # -- the run ----------------------------------------------------------------------------------

    def inject_faults(self) -> None:
        for system in SYSTEMS:
            for kind, every in FAULT_EVERY.items():
                self.control.fault(
                    system, kind, every=every, latency_ms=50 if kind == "latency" else 0, hold_seconds=HOLD_SECONDS
                )

    async def run(
        self,
        *,
        amendments: int,
        dunnings: int,
        renewals: int,
        kill_after: list[float],
        usage: int = 0,
        reconciled_invoices: int = 0,
        timeout: float = 600,
    ) -> ChaosReport:
        """Needs O2C_DUNNING_DAY_SECONDS and O2C_RENEWAL_DAY_SECONDS set (see CALENDAR) for the
        ingress and the starters, which read them from the environment."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        self.worker.start()
        try:
            async with webhook_ingress(self.client, self.settings) as webhooks:
                ingress = webhooks.removesuffix(STRIPE_PATH)
                self.inject_faults()
                await asyncio.gather(
                    *(self.start_amendment(n, fixable_problem=n == 0) for n in range(amendments)),
                    *(self.start_renewal(n) for n in range(renewals)),
                    *(self.start_dunning(n) for n in range(dunnings)),
                    *(self.start_usage(n, ingress) for n in range(usage)),
                    *([self.start_reconciliation(reconciled_invoices)] if reconciled_invoices else []),
                )
                killer = asyncio.create_task(self._kill_and_restart(kill_after))
                await self._customers_pay(loop.time() + timeout)
                await killer
                await self._until_settled(loop.time() + timeout)
                faults = self.control.faults()
                self.control.clear_faults()
        finally:
            self.worker.stop()
            await self.billing.aclose()
        report = await self.verify()
        for fault in faults:
            report.faults_injected[fault["kind"]] += fault["fired"]
        report.kills = self.worker.kills
        report.seconds = loop.time() - started
        return report

    async def _kill_and_restart(self, after: list[float]) -> None:
        started = asyncio.get_running_loop().time()
        for moment in after:
            await asyncio.sleep(max(0.0, started + moment - asyncio.get_running_loop().time()))
            self.worker.kill()
            await asyncio.sleep(0.5)
            self.worker.start()

    async def _customers_pay(self, deadline: float) -> None:
        """Each dunned customer pays by bank transfer once the first retry has been declined."""
        waiting = [p for p in self.processes if p.kind == "dunning"]
        while waiting and asyncio.get_running_loop().time() < deadline:
            for process in list(waiting):
                state = await self._state(process.workflow_id)
                if state and len(state.get("attempts", [])) >= 1:
                    self.control.pay_out_of_band(process.invoice_id)
                    waiting.remove(process)
            await asyncio.sleep(0.5)

    async def _state(self, workflow_id: str) -> dict[str, Any] | None:
        try:
            return await o2c.process_state(self.client, workflow_id)
        except Exception:
            return None

    async def _settled(self, process: Process) -> str | None:
        """What an operator sees (the O2cStatus search attribute) once the process has ended or
        waits for a person: completed, rolled_back, needs_attention...; None while it works."""
        try:
            described = await self.client.get_workflow_handle(process.workflow_id).describe()
        except Exception as error:
            self.last_seen[process.workflow_id] = repr(error)
            return None
        status = described.typed_search_attributes.get(STATUS)
        self.last_seen[process.workflow_id] = f"{described.status.name if described.status else '?'}, {status}"
        if described.status == WorkflowExecutionStatus.RUNNING:
            return status if status == Status.NEEDS_ATTENTION.value else None
        if described.status == WorkflowExecutionStatus.COMPLETED:
            return status
        return described.status.name.lower() if described.status else "unknown"

    async def _until_settled(self, deadline: float) -> None:
        while asyncio.get_running_loop().time() < deadline:
            outcomes = await asyncio.gather(*(self._settled(p) for p in self.processes))
            if all(outcomes):
                return
            await asyncio.sleep(1.0)
        unsettled = [
            f"{p.workflow_id} ({self.last_seen.get(p.workflow_id)})"
            for p, o in zip(self.processes, outcomes, strict=False)
            if not o
        ]
        raise TimeoutError(f"still running, not waiting for anybody: {unsettled}")

    # -- what the systems hold ----------------------------------------------------------------------

    async def verify(self) -> ChaosReport:
        report = ChaosReport(processes=self.processes)
        ours = {p.workflow_id: p for p in self.processes}
        accounts = {p.account_id for p in self.processes}
        invoices = [
            i
            for i in self.control.records("stripe", "invoice")
            if (i.get("metadata") or {}).get("o2c_workflow") in ours
        ]
        by_workflow = Counter(i["metadata"]["o2c_workflow"] for i in invoices)
        report.duplicates += [f"{n} invoices for {w}" for w, n in by_workflow.items() if n > 1]
        invoice_ids = {i["id"] for i in invoices}
        taxes = Counter(
            t["code"]
            for t in self.control.records("avatax", "transaction")
            if t["code"] in invoice_ids and t["type"] == "SalesInvoice"
        )
        report.duplicates += [f"{n} tax documents for {code}" for code, n in taxes.items() if n > 1]
        entries = [
            e
            for e in self.control.records("netsuite", "journalEntry")
            if any(str(e.get("externalId", "")).startswith(w) for w in ours)
        ]
        reversed_ids = {e.get("custbody_o2c_reverses") for e in entries if e.get("custbody_o2c_reverses")}
        booked = Counter(
            e.get("custbody_o2c_invoice")
            for e in entries
            if not e.get("custbody_o2c_reverses")
            and e["externalId"] not in reversed_ids
            and e["externalId"].endswith("-invoice")
        )
        report.duplicates += [f"{n} open entries book {inv}" for inv, n in booked.items() if n > 1]
        notices = Counter(
            (m["account_id"], m["template"], m["subject"])
            for m in self.control.records("notifications", "message")
            if m["account_id"] in accounts
        )
        report.duplicates += [f"{n} notices {t}" for t, n in notices.items() if n > 1]
        cases = Counter(
            c.get("custrecord_o2c_invoice")
            for c in self.control.records("netsuite", "customrecord_o2c_collection_case")
            if c.get("custrecord_o2c_customer") in accounts
        )
        report.duplicates += [f"{n} collection cases for {inv}" for inv, n in cases.items() if n > 1]

        every_entry = self.control.records("netsuite", "journalEntry")
        for process in (p for p in self.processes if p.kind == "reconciliation"):
            healed = [e for e in every_entry if e.get("custbody_o2c_invoice") == process.invoice_id]
            if len(healed) != 1:
                report.duplicates.append(f"{process.workflow_id} booked {process.invoice_id} {len(healed)} times")
        for entry in entries:
            lines = entry["line"]["items"]
            debits = sum(Decimal(str(x["debit"])) for x in lines if x.get("debit") is not None)
            credits = sum(Decimal(str(x["credit"])) for x in lines if x.get("credit") is not None)
            if debits != credits:
                report.unbalanced.append(f"{entry['externalId']}: {debits} != {credits}")

        for process in self.processes:
            outcome = await self._settled(process)
            report.outcomes[f"{process.kind} {outcome}"] += 1
            if outcome != process.expect:
                report.wrong_outcomes.append(f"{process.workflow_id}: {outcome}, not {process.expect}")
            if outcome == Status.COMPLETED.value and process.kind in ("amendment", "renewal"):
                report.ledger_expected += sum(
                    (
                        Decimal(i["total"]) / 100
                        for i in invoices
                        if i["metadata"]["o2c_workflow"] == process.workflow_id
                    ),
                    Decimal(0),
                )
        for process in (p for p in self.processes if p.kind == "usage"):
            await self._verify_usage(process, report)
        for entry in entries:  # net receivable: invoices booked less their reversals
            for line in entry["line"]["items"]:
                if line["account"]["id"] == "1200":
                    amount = Decimal(str(line.get("debit") or 0)) - Decimal(str(line.get("credit") or 0))
                    report.ledger_posted += amount
        return report

    async def _verify_usage(self, process: Process, report: ChaosReport) -> None:
        """Billing's meter holds what o2c accepted, once; the period is invoiced once and its tax
        committed once; a completed release's invoice is part of the receivable."""
        who = self.usage_sent[process.workflow_id]
        billing = StripeBilling(self.settings.stripe_base_url, self.settings.stripe_api_key, timeout=10)
        try:
            counted = await billing.metered_quantity(
                who.meter, customer=who.customer, start=period_start(PERIOD), end=period_end(PERIOD)
            )
        finally:
            await billing.aclose()
        if counted != who.sent:
            report.duplicates.append(
                f"billing's meter holds {counted} of {who.customer}'s usage; o2c accepted {who.sent}"
            )
        invoiced = [
            i
            for i in self.control.records("stripe", "invoice")
            if i.get("subscription") == who.subscription_id and i["status"] != "void"
        ]
        if len(invoiced) != 1:
            report.duplicates.append(f"{len(invoiced)} usage invoices for {who.subscription_id} {PERIOD}")
        for invoice in invoiced:
            taxes = [t for t in self.control.records("avatax", "transaction") if t["code"] == invoice["id"]]
            if len([t for t in taxes if t["type"] == "SalesInvoice"]) > 1:
                report.duplicates.append(f"{len(taxes)} tax documents for {invoice['id']}")
            if await self._settled(process) == Status.COMPLETED.value:
                report.ledger_expected += Decimal(invoice["total"]) / 100
