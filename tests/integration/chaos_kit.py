"""A chaos run: amendments, dunnings, renewals, usage releases and a reconciliation at once on
the real dev server, while the sandbox fails a fixed share of every system's requests (5xx, 429, latency,
commit-then-timeout) and the worker process is killed with SIGKILL and started again, mid-run.
Two ERPs take the bookings: NetSuite for the default entity and the reconciled one, SAP
S/4HANA for an entity of the run's own (EUR, a company code of its own) whose customers'
amendments and renewals book there, SAP's answers to posts lost as well (commit then time out).

Then what every system holds is checked against what the processes should have done: no
duplicate invoice, tax document, journal entry (or SAP document), notice or collection case;
every entry balanced; each ledger's receivable equal to what the completed processes invoiced;
billing's meters holding each customer's usage exactly once. Used by
tests/integration/test_chaos.py (a size CI runs) and bench/chaos.py (larger, with figures).
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import socket
import string
import subprocess
import sys
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
from temporalio.client import Client, WorkflowExecutionStatus

from adapters.avatax import AvaTaxTax
from adapters.errors import TransientError
from adapters.netsuite import NetSuiteErp
from adapters.storage.cash import SqlCashStore
from adapters.stripe import StripeBilling
from canonical.approval import ApproverRole
from canonical.cash.models import OpenItem
from canonical.credit import CreditPolicy
from canonical.credits import CreditReason, CreditRequest
from canonical.journal import ChartOfAccounts, invoice_entry
from canonical.models import TAX_PRODUCT, Account, Address, AmendedLine, AmendmentRequest, InvoiceLine, LegalEntity
from canonical.money import Money
from canonical.policy_amounts import per_currency
from canonical.renewal import RenewalRequest, RenewedLine
from canonical.usage.models import period_end, period_start
from sandbox import SandboxControl
from sandbox.sap.api import SYNC_PATH as SAP_SYNC_PATH
from settings import Settings
from starter import client as o2c
from starter.cash import apply_receipt, import_statement
from starter.credits import start_credit
from starter.stack import webhook_ingress
from starter.webhooks import STRIPE_PATH
from tests.integration.ledger_checks import (
    Unapplied,
    ledger_failures,
    sap_documents,
    sap_duplicates,
    sap_receivable_failures,
    sap_unbalanced,
    unapplied_now,
)
from tests.integration.usage_kit import METER, PERIOD, MeteredCustomer, send
from workflows.cash import InvoiceAmount
from workflows.credit import credit_workflow_id
from workflows.dispute import dispute_workflow_id
from workflows.dunning import dunning_workflow_id
from workflows.kit.status import STATUS, Status

ROOT = Path(__file__).resolve().parents[2]
SYSTEMS = ("stripe", "avatax", "netsuite", "sap", "entitlements", "notifications", "salesforce")
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
# Cash, credits and disputes book in the default entity, where the other integration tests'
# cash is applied in full: its unapplied receipts must agree at the end.
CASH_ENTITY, CASH_SUBSIDIARY = "US01", "1"
INVOICES_PER_PAYER = 3
# A credit above 100.00 waits for a finance approver; below, it books on its own.
CREDIT_POLICY = CreditPolicy(finance=per_currency(USD=100))
CREDIT_AMOUNTS = ("150.00", "40.00", "60.00", "25.00", "80.00")
APPROVER = "fiona.finance"
OPERATOR = "olga.ops"
CHAOS_ADDRESS = Address(line1="1 Market St", city="San Francisco", region="CA", postal_code="94105", country="US")
US_ADDRESS = {"line1": "1 Market St", "city": "San Francisco", "region": "CA", "postal_code": "94105", "country": "US"}
DE_ADDRESS = {
    "line1": "Dietmar-Hopp-Allee 16",
    "city": "Walldorf",
    "region": "BW",
    "postal_code": "69190",
    "country": "DE",
}
# SAP's posts lose their answer at the run's rate like every request; these two more make sure
# a lost answer happens whatever the number of SAP entries (a retry must find the document).
SAP_LOST_ANSWERS = 2
# Where the SAP entity's documents can be: the amendments' November and the renewals' new terms.
SAP_BOOKED_FROM, SAP_BOOKED_TO = date(2026, 1, 1), date(2028, 1, 1)
# The processes whose entries carry their workflow id and book (or reverse) the receivable.
BOOKING_KINDS = ("amendment", "renewal", "usage", "reconciliation", "dunning")


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

    def __init__(
        self, temporal_address: str, settings: Settings, task_queue: str, log: Path, extra: dict[str, str] | None = None
    ):
        self.env = {
            **os.environ,
            **(extra or {}),
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
    kind: str  # amendment, dunning, renewal, usage, reconciliation, cash, credit, dispute
    workflow_id: str
    account_id: str
    expect: str  # what the process should come to: completed, or needs_attention
    erp: str = "netsuite"  # where its customer's legal entity books
    invoice_id: str = ""  # a dunning's, a credit's or a dispute's invoice
    dispute_id: str = ""
    closes_as: str = ""  # a dispute: won or lost


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
    ledger_failures: list[str] = field(default_factory=list)  # the ledger invariants broken
    ledger_customers: int = 0  # customers the invariants were checked for
    receipts: int = 0  # bank and card receipts o2c applied
    faults_by_system: Counter = field(default_factory=Counter)
    sap_documents: int = 0  # documents in the SAP entity's company code
    sap_lost_answers: int = 0  # SAP answers lost after it committed (commit then time out)
    sap_expected: Decimal = Decimal(0)  # what the completed SAP processes invoiced (EUR)
    sap_posted: Decimal = Decimal(0)  # the receivable SAP holds for them (EUR)
    cash_applied: Decimal = Decimal(0)  # what the ERP's customer payments of them apply
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return (
            not self.duplicates
            and not self.unbalanced
            and not self.wrong_outcomes
            and not self.ledger_failures
            and self.ledger_expected == self.ledger_posted
            and self.sap_expected == self.sap_posted
        )

    def figures(self) -> str:
        def listed(counts: Counter) -> str:
            return ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))

        return (
            f"{len(self.processes)} processes ({listed(self.outcomes)}) in {self.seconds:.0f} s; "
            f"{sum(self.faults_injected.values())} faults injected ({listed(self.faults_injected)}); "
            f"{self.kills} worker kills; {self.faults_by_system['sap']} faults on SAP "
            f"({self.sap_lost_answers} answers lost); "
            f"{len(self.duplicates)} duplicates; {len(self.unbalanced)} unbalanced entries; "
            f"{len(self.wrong_outcomes)} wrong outcomes; receivable booked {self.ledger_posted} "
            f"against {self.ledger_expected} invoiced; SAP: {self.sap_documents} documents, receivable "
            f"{self.sap_posted} EUR against {self.sap_expected} invoiced; "
            f"{self.receipts} receipts applying {self.cash_applied}; "
            f"ledger invariants of {self.ledger_customers} customers: {len(self.ledger_failures)} broken"
        )

    def summary(self) -> dict[str, Any]:
        """The same figures, ready for json.dumps: counts, and money as exact decimal strings."""
        return {
            "processes": len(self.processes),
            "outcomes": dict(self.outcomes),  # by "kind outcome", e.g. "dunning completed"
            "seconds": self.seconds,
            "faults_injected": sum(self.faults_injected.values()),
            "faults_by_kind": dict(self.faults_injected),
            "faults_by_system": dict(self.faults_by_system),
            "kills": self.kills,
            "duplicates": len(self.duplicates),
            "unbalanced_entries": len(self.unbalanced),
            "wrong_outcomes": len(self.wrong_outcomes),
            "receivable_booked": str(self.ledger_posted),
            "receivable_invoiced": str(self.ledger_expected),
            "sap_documents": self.sap_documents,
            "sap_lost_answers": self.sap_lost_answers,
            "sap_receivable_booked": str(self.sap_posted),
            "sap_receivable_invoiced": str(self.sap_expected),
            "receipts": self.receipts,
            "cash_applied": str(self.cash_applied),
            "ledger_customers": self.ledger_customers,
            "ledger_failures": len(self.ledger_failures),
        }


class Chaos:
    def __init__(self, client: Client, temporal_address: str, control: SandboxControl, settings: Settings, logs: Path):
        self.client, self.control = client, control
        self.key = uuid.uuid4().hex[:6]
        self.task_queue = f"chaos-{self.key}"
        self.recon_entity = LegalEntity(
            code=f"CH{self.key}",
            company_code=f"CH{self.key}",
            functional_currency="USD",
            erp_subsidiary=str(500000 + int(self.key, 16) % 100000),
            billing_account=f"acct_ch{self.key}",
        )
        self.sap_entity = LegalEntity(
            code=f"DE{self.key}",
            company_code=f"DE{self.key}",
            functional_currency="EUR",
            erp="sap",
            erp_subsidiary="".join(secrets.choice(string.ascii_uppercase + string.digits) for _ in range(4)),
            country="DE",
        )
        control.sap_company_code(self.sap_entity.erp_subsidiary, "EUR")
        # The worker and the starters book for these, as an operator configures them: from a file.
        entities = [*settings.legal_entities, self.recon_entity, self.sap_entity]
        entities_file = logs / f"chaos-entities-{self.key}.json"
        entities_file.write_text(json.dumps([e.model_dump(mode="json") for e in entities]))
        self.environment = {"O2C_LEGAL_ENTITIES_FILE": str(entities_file)}
        self.settings = settings.model_copy(
            update={"task_queue": self.task_queue, "webhook_port": free_port(), "legal_entities_in_file": entities}
        )
        self.worker = WorkerProcess(
            temporal_address, settings, self.task_queue, logs / f"chaos-worker-{self.key}.log", self.environment
        )
        self.billing = StripeBilling(settings.stripe_base_url, settings.stripe_api_key, timeout=10)
        self.processes: list[Process] = []
        self.erp = NetSuiteErp(settings.netsuite_base_url, settings.netsuite_token, timeout=10)
        self.tax = AvaTaxTax(
            settings.avatax_base_url,
            settings.avatax_account_id,
            settings.avatax_license_key,
            settings.avatax_company_code,
            timeout=10,
        )
        self.store = SqlCashStore(settings.database_url)
        self.usage_sent: dict[str, MeteredCustomer] = {}  # usage workflow id -> whose usage
        self.last_seen: dict[str, str] = {}  # what the server last said of each process
        self.payers: list[str] = []  # the customers of the cash, credits and disputes
        self.receipts: dict[str, Decimal] = {}  # receipt id -> what it pays (the ERP must apply it once)
        self.unknown_receipt = ""  # the statement's receipt from nobody known, applied by an operator
        self.held_back: tuple[str, Decimal] = ("", Decimal(0))  # the invoice it pays, and how much
        self.unapplied_before: Unapplied = {}  # the cash entity's unapplied cash as the run began

    # -- the world --------------------------------------------------------------------------------

    def _customer(
        self,
        name: str,
        *,
        postal_code: str = "94105",
        payment_method: str = "pm_card_visa",
        period: tuple[date, date] = (PERIOD_START, PERIOD_END),
        term: tuple[date, date] = (date(2026, 1, 1), date(2027, 1, 1)),
        sap: bool = False,
    ) -> str:
        """A customer with a 10-seat subscription; `sap`: of the SAP entity, in EUR, in Germany."""
        key = f"{self.key}{name}"
        self.control.seed(
            customer={
                "id": f"cus_{key}",
                "name": f"Chaos {key}",
                "email": f"ap@{key}.test",
                "payment_method": payment_method,
                "address": DE_ADDRESS if sap else {**US_ADDRESS, "postal_code": postal_code},
                **({"legal_entity": self.sap_entity.code} if sap else {}),
            },
            subscription={
                "id": f"sub_{key}",
                "contract_id": f"C-{key}",
                "currency": "EUR" if sap else "USD",
                "items": [{"product": "seats", "description": "Platform seat", "quantity": 10, "unit_price": "50.00"}],
                "current_period_start": period[0].isoformat(),
                "current_period_end": period[1].isoformat(),
                "term_start": term[0].isoformat(),
                "term_end": term[1].isoformat(),
            },
        )
        return key

    async def start_amendment(self, n: int, *, fixable_problem: bool = False, sap: bool = False) -> None:
        key = self._customer(f"{'s' if sap else ''}a{n}", postal_code="" if fixable_problem else "94105", sap=sap)
        request = AmendmentRequest(
            amendment_id=f"CHAOS-{key}",
            contract_id=f"C-{key}",
            subscription_id=f"sub_{key}",
            account_id=f"cus_{key}",
            currency="EUR" if sap else "USD",
            effective_date=date(2026, 11, 16),
            requested_by="sam.sales",
            reason="chaos",
            lines=[AmendedLine(product="seats", quantity=12 + n % 5, unit_price=Decimal("50.00"))],
        )
        handle = await upstream(
            lambda: o2c.start_amendment(self.client, request, billing=self.billing, task_queue=self.task_queue)
        )
        self.processes.append(
            Process(
                "amendment",
                handle.id,
                f"cus_{key}",
                "needs_attention" if fixable_problem else "completed",
                erp="sap" if sap else "netsuite",
            )
        )

    async def start_renewal(self, n: int, *, sap: bool = False) -> None:
        today = date.today()
        term_end = today + timedelta(days=3)
        key = self._customer(
            f"{'s' if sap else ''}r{n}",
            period=(today - timedelta(days=10), term_end),
            term=(term_end - timedelta(days=365), term_end),
            sap=sap,
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
        self.processes.append(
            Process("renewal", handle.id, f"cus_{key}", "completed", erp="sap" if sap else "netsuite")
        )

    async def start_reconciliation(self, invoices: int) -> None:
        """Last October of a legal entity of its own: its readers are killed and faulted
        mid-period and must resume where they stopped; its one missing entry is healed once."""
        entity = self.recon_entity
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
        api_key = await upstream(lambda: who.ready(self.settings, history=[60 * (50 + n)] * 6))
        # A producer's retry in the middle: 60 events sent, 80 arrive.
        for batch in ([who.event(i, 50 + n) for i in range(40)], [who.event(i, 50 + n) for i in range(20, 60)]):
            answer = await send(ingress, api_key, batch)
            assert answer.status_code == 200, answer.text
            results = answer.json()["results"]
            who.sent += sum(e["value"] for e, r in zip(batch, results, strict=True) if r["outcome"] == "accepted")
        request = await upstream(lambda: who.release_input(self.settings))
        handle = await upstream(lambda: o2c.start_usage_release(self.client, request, task_queue=self.task_queue))
        self.control.end_period(who.subscription_id)  # before or after o2c reports: either way
        self.usage_sent[handle.id] = who
        self.processes.append(Process("usage", handle.id, who.customer, "completed"))

    # -- cash, credits, disputes -------------------------------------------------------------------

    async def _booked_invoice(self, account_id: str, tag: str, amount: Decimal, *, taxed: bool = False) -> str:
        """An open services invoice in billing, booked in NetSuite in the customer's name and
        known to o2c's cash store, as the processes that invoice leave it. `taxed`: with the
        sales tax AvaTax computes, committed under the invoice's id, as a credit returns it."""
        money = Money.of(amount, "USD")
        lines = [InvoiceLine(product="services", description="Implementation services", amount=money)]
        tax = Money.zero("USD")
        if taxed:
            quoted = await upstream(
                lambda: self.tax.quote(
                    code=f"chaos-{self.key}-{tag}-quote",
                    customer_code=account_id,
                    document_date=PERIOD_START,
                    currency="USD",
                    address=CHAOS_ADDRESS,
                    lines=lines,
                )
            )
            tax = quoted.total_tax
        billed = lines + ([InvoiceLine(product=TAX_PRODUCT, description="Sales tax", amount=tax)] if taxed else [])
        invoice = await upstream(
            lambda: self.billing.create_proration_invoice(
                account_id=account_id,
                subscription_id="",
                currency="USD",
                lines=billed,
                description="Implementation services",
                metadata={},
                idempotency_key=f"chaos-{self.key}-{tag}",
            )
        )
        if taxed:
            await upstream(
                lambda: self.tax.commit(
                    code=invoice.id,
                    customer_code=account_id,
                    document_date=PERIOD_START,
                    currency="USD",
                    address=CHAOS_ADDRESS,
                    lines=lines,
                )
            )
        entry = invoice_entry(
            external_id=f"chaos-{self.key}-{tag}-invoice",
            subsidiary=CASH_SUBSIDIARY,
            posting_date=PERIOD_START,
            memo=f"Invoice {invoice.id}",
            revenue=money,
            tax=tax,
            chart=ChartOfAccounts(),
            invoice_id=invoice.id,
            customer=account_id,
        )
        await upstream(lambda: self.erp.post_journal_entry(entry))
        await self.store.upsert_open_items(
            [
                OpenItem(
                    invoice_id=invoice.id,
                    number=invoice.number,
                    customer=account_id,
                    legal_entity=CASH_ENTITY,
                    total=money + tax,
                    balance=money + tax,
                )
            ]
        )
        return invoice.id

    async def _payer(self, name: str) -> str:
        key = self._customer(name)
        account = Account(id=f"cus_{key}", name=f"Chaos {key}")
        await upstream(lambda: self.erp.upsert_customer(account, subsidiary=CASH_SUBSIDIARY))
        self.payers.append(account.id)
        return account.id

    async def book_for_cash(self, payers: int) -> list[dict[str, Any]]:
        """Invoices for `payers` customers and the statement entries that pay them: most in
        full, every fourth in part, each naming its invoice; and one from nobody known that pays
        a held-back invoice, for an operator to apply."""
        entries: list[dict[str, Any]] = []
        for p in range(payers):
            account_id = await self._payer(f"p{p}")
            for i in range(INVOICES_PER_PAYER):
                n = p * INVOICES_PER_PAYER + i
                amount = Decimal(100 + 7 * n) + Decimal(n % 10) / 100
                invoice_id = await self._booked_invoice(account_id, f"p{p}i{i}", amount)
                paid = (amount * 3 / 5).quantize(Decimal("0.01")) if n % 4 == 3 else amount
                entries.append(
                    {
                        "amount": str(paid),
                        "payer_name": f"Chaos Payer {self.key} {p}",
                        "remittance": invoice_id,
                        "bank_reference": f"B{self.key}-{n}",
                    }
                )
        if payers:
            amount = Decimal("321.09")
            held = await self._booked_invoice(await self._payer("held"), "held", amount)
            self.held_back = (held, amount)
            # A name of this run's own: o2c learns payers' names for good, and on a database kept
            # across runs an earlier run's operator taught it whose this name was.
            entries.append(
                {"amount": str(amount), "payer_name": f"Nobody Known {self.key}", "bank_reference": f"B{self.key}-x"}
            )
        return entries

    async def start_cash(self, entries: list[dict[str, Any]]) -> None:
        """The sandbox bank's camt.053 file of the entries, validated and kept in o2c's store, and
        one cash application started for it."""
        account = f"US-CHAOS-{self.key}"
        response = await asyncio.to_thread(
            lambda: httpx.post(
                f"{self.control.bank_url}/statements",
                json={
                    "format": "camt.053.001.02",
                    "date": "2026-11-30",
                    "account": account,
                    "currency": "USD",
                    "opening_balance": "0.00",
                    "statement_id": f"S{self.key}",
                    "entries": entries,
                },
                timeout=30,
            )
        )
        assert response.status_code == 201, response.text
        # As `o2c cash import` does it: the file validated, kept, its cash application started.
        imported = await upstream(
            lambda: import_statement(
                self.client,
                response.content,
                legal_entity=CASH_ENTITY,
                store=self.store,
                legal_entities=self.settings.legal_entities,
                task_queue=self.task_queue,
                name="the chaos statement",
            )
        )
        [statement] = imported.statements
        for entry in entries:
            receipt_id = f"camt053:{account}:{entry['bank_reference']}"
            self.receipts[receipt_id] = Decimal(entry["amount"])
            if entry["payer_name"].startswith("Nobody Known"):
                self.unknown_receipt = receipt_id
        self.processes.append(Process("cash", statement.workflow_id, "", "completed"))

    async def start_credit(self, n: int) -> None:
        """A credit on an open invoice; the first is above the policy's finance threshold and
        waits for an approver."""
        account_id = await self._payer(f"c{n}")
        invoice_id = await self._booked_invoice(account_id, f"c{n}", Decimal("300.00"), taxed=True)
        request = CreditRequest(
            credit_id=f"CHAOS-{self.key}-c{n}",
            invoice_id=invoice_id,
            reason=CreditReason.ORDER_CHANGE,
            explanation="chaos: seats returned",
            requested_by="sam.sales",
            amount=Money.of(CREDIT_AMOUNTS[n % len(CREDIT_AMOUNTS)], "USD"),
        )
        handle = await upstream(
            lambda: start_credit(
                self.client, request, billing=self.billing, policy=CREDIT_POLICY, task_queue=self.task_queue
            )
        )
        assert handle.id == credit_workflow_id(request.credit_id)
        self.processes.append(Process("credit", handle.id, account_id, "completed", invoice_id=invoice_id))

    async def start_dispute(self, n: int) -> None:
        """An invoice paid by card (its receipt applied by a cash application of its own), then
        the cardholder disputes the charge; the dispute closes won or lost in turn."""
        account_id = await self._payer(f"x{n}")
        invoice_id = await self._booked_invoice(account_id, f"x{n}", Decimal("200.00"))
        attempt = await upstream(
            lambda: self.billing.retry_payment(invoice_id, idempotency_key=f"chaos-{self.key}-x{n}-pay")
        )
        assert attempt.amount_remaining.is_zero, attempt
        [charge] = [
            c
            for c in self.control.records("stripe", "charge")
            if c.get("invoice") == invoice_id and c.get("status") == "succeeded"
        ]
        self.receipts[f"stripe:platform:{charge['id']}"] = attempt.amount_paid.amount
        dispute = self.control.open_dispute(charge["id"], reason="fraudulent")
        self.processes.append(
            Process(
                "dispute",
                dispute_workflow_id(dispute["id"]),
                account_id,
                "completed",
                invoice_id=invoice_id,
                dispute_id=dispute["id"],
                closes_as="won" if n % 2 == 0 else "lost",
            )
        )

    async def _card_cash_applications(self, deadline: float) -> None:
        """The cash applications the disputed charges started at the ingress, found by customer."""
        for process in [p for p in self.processes if p.kind == "dispute"]:
            query = f'O2cProcess = "cash" AND O2cCustomer = "{process.account_id}"'
            found: list[str] = []
            while not found and asyncio.get_running_loop().time() < deadline:
                try:
                    found = [w.id async for w in self.client.list_workflows(query)]
                except Exception:
                    found = []
                if not found:
                    await asyncio.sleep(0.5)
            self.processes += [Process("cash", wid, process.account_id, "completed") for wid in found]

    async def _people_act(self, deadline: float) -> None:
        """What people do meanwhile: the operator applies the receipt from nobody known to the
        held-back invoice, the approver approves the credit above the threshold, and the card
        network closes each dispute once o2c holds it."""
        todo = [p for p in self.processes if p.kind in ("cash", "credit", "dispute")]
        while todo and asyncio.get_running_loop().time() < deadline:
            for process in list(todo):
                state = await self._state(process.workflow_id)
                if state is None:
                    continue
                try:
                    if process.kind == "cash":
                        waiting = [w["receipt_id"] for w in state.get("waiting") or []]
                        if self.unknown_receipt not in waiting:
                            if state.get("status") == Status.COMPLETED.value or not self.unknown_receipt:
                                todo.remove(process)
                            continue
                        receipt = await self.store.receipt(self.unknown_receipt)
                        assert receipt is not None
                        held, amount = self.held_back
                        await apply_receipt(
                            self.client,
                            receipt,
                            [InvoiceAmount(invoice_id=held, amount=Money.of(amount, "USD"))],
                            operator=OPERATOR,
                        )
                        todo.remove(process)
                    elif process.kind == "credit":
                        if state.get("status") == Status.AWAITING_APPROVAL.value:
                            await o2c.decide(
                                self.client,
                                process.workflow_id,
                                approver=APPROVER,
                                role=ApproverRole.FINANCE,
                                approved=True,
                                comment="chaos",
                            )
                            todo.remove(process)
                        elif state.get("status") in (Status.COMPLETED.value, Status.REJECTED.value):
                            todo.remove(process)
                    else:
                        self.control.close_dispute(process.dispute_id, process.closes_as)
                        todo.remove(process)
                except Exception as error:  # the worker is down, or the update raced it: again
                    self.last_seen[process.workflow_id] = repr(error)
            await asyncio.sleep(0.5)

    # -- the run ----------------------------------------------------------------------------------

    def inject_faults(self) -> None:
        for system in SYSTEMS:
            for kind, every in FAULT_EVERY.items():
                self.control.fault(
                    system, kind, every=every, latency_ms=50 if kind == "latency" else 0, hold_seconds=HOLD_SECONDS
                )
        self.control.fault(
            "sap",
            "commit_then_timeout",
            method="POST",
            path_contains=SAP_SYNC_PATH,
            every=2,
            times=SAP_LOST_ANSWERS,
            hold_seconds=HOLD_SECONDS,
        )

    async def run(
        self,
        *,
        amendments: int,
        dunnings: int,
        renewals: int,
        kill_after: list[float],
        usage: int = 0,
        sap_amendments: int = 0,
        sap_renewals: int = 0,
        reconciled_invoices: int = 0,
        payers: int = 0,
        credits: int = 0,
        disputes: int = 0,
        timeout: float = 600,
    ) -> ChaosReport:
        """Needs O2C_DUNNING_DAY_SECONDS and O2C_RENEWAL_DAY_SECONDS set (see CALENDAR) for the
        ingress and the starters, which read them from the environment. `payers` customers pay
        their invoices on one bank statement (INVOICES_PER_PAYER each, and one receipt from
        nobody known); `credits` credit workflows; `disputes` card payments disputed;
        `sap_amendments` and `sap_renewals` for customers of the SAP entity."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        self.worker.start()
        try:
            async with webhook_ingress(self.client, self.settings) as webhooks:
                ingress = webhooks.removesuffix(STRIPE_PATH)
                self.unapplied_before = await unapplied_now(self.settings, [CASH_ENTITY])
                statement = await self.book_for_cash(payers)  # the world as it stood: no faults yet
                self.inject_faults()
                await asyncio.gather(
                    *(self.start_amendment(n, fixable_problem=n == 0) for n in range(amendments)),
                    *(self.start_renewal(n) for n in range(renewals)),
                    *(self.start_amendment(n, sap=True) for n in range(sap_amendments)),
                    *(self.start_renewal(n, sap=True) for n in range(sap_renewals)),
                    *(self.start_dunning(n) for n in range(dunnings)),
                    *(self.start_usage(n, ingress) for n in range(usage)),
                    *([self.start_reconciliation(reconciled_invoices)] if reconciled_invoices else []),
                    *([self.start_cash(statement)] if statement else []),
                    *(self.start_credit(n) for n in range(credits)),
                    *(self.start_dispute(n) for n in range(disputes)),
                )
                killer = asyncio.create_task(self._kill_and_restart(kill_after))
                await self._card_cash_applications(loop.time() + 60)
                await asyncio.gather(
                    self._customers_pay(loop.time() + timeout), self._people_act(loop.time() + timeout)
                )
                await killer
                await self._until_settled(loop.time() + timeout)
                faults = self.control.faults()
                self.control.clear_faults()
        finally:
            self.worker.stop()
            await self.billing.aclose()
        try:
            report = await self.verify()
        finally:
            await self.erp.aclose()
            await self.tax.aclose()
            await self.store.aclose()
        for fault in faults:
            report.faults_injected[fault["kind"]] += fault["fired"]
            report.faults_by_system[fault["system"]] += fault["fired"]
            if fault["system"] == "sap" and fault["kind"] == "commit_then_timeout":
                report.sap_lost_answers += fault["fired"]
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
            if outcome == Status.COMPLETED.value and process.kind in ("amendment", "renewal") and process.erp == "sap":
                report.sap_expected += sum(
                    (
                        Decimal(i["total"]) / 100
                        for i in invoices
                        if i["metadata"]["o2c_workflow"] == process.workflow_id
                    ),
                    Decimal(0),
                )
            elif outcome == Status.COMPLETED.value and process.kind in ("amendment", "renewal"):
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
        self._verify_cash(report, every_entry)
        customers = self.payers + [
            p.account_id
            for p in self.processes
            if p.kind == "amendment" and p.expect == Status.COMPLETED.value and p.erp == "netsuite"
        ]
        report.ledger_customers = len(customers)
        report.ledger_failures = await ledger_failures(
            self.settings,
            customers=customers,
            entities=[CASH_ENTITY] if self.payers else [],
            since=self.unapplied_before,
        )
        booking = [p.workflow_id for p in self.processes if p.kind in BOOKING_KINDS]
        for entry in (e for e in entries if any(e["externalId"].startswith(w) for w in booking)):
            # net receivable: invoices booked less their reversals
            for line in entry["line"]["items"]:
                if line["account"]["id"] == "1200":
                    amount = Decimal(str(line.get("debit") or 0)) - Decimal(str(line.get("credit") or 0))
                    report.ledger_posted += amount
        await self._verify_sap(report, invoices, entries)
        return report

    async def _verify_sap(
        self, report: ChaosReport, invoices: list[dict[str, Any]], netsuite_entries: list[dict[str, Any]]
    ) -> None:
        """The SAP entity's company code, read through the item cube: each entry posted as one
        document, each document balanced, each customer's receivable what billing invoiced it;
        and nothing of its customers' processes booked in NetSuite."""
        ours = [p for p in self.processes if p.erp == "sap"]
        if not ours:
            return
        for process in ours:
            if any(e["externalId"].startswith(process.workflow_id) for e in netsuite_entries):
                report.wrong_outcomes.append(f"{process.workflow_id} booked in NetSuite, not in SAP")
        documents = await sap_documents(self.settings, self.sap_entity.erp_subsidiary, SAP_BOOKED_FROM, SAP_BOOKED_TO)
        report.sap_documents = len(documents)
        report.duplicates += sap_duplicates(documents)
        report.unbalanced += sap_unbalanced(documents)
        invoiced: dict[str, Decimal] = {}
        for process in ours:
            if await self._settled(process) == Status.COMPLETED.value:
                billed = [i for i in invoices if i["metadata"]["o2c_workflow"] == process.workflow_id]
                invoiced[process.account_id] = invoiced.get(process.account_id, Decimal(0)) + sum(
                    (Decimal(i["total"]) / 100 for i in billed), Decimal(0)
                )
        report.ledger_failures += await sap_receivable_failures(self.settings, documents, invoiced)
        report.sap_posted = sum(
            (
                Decimal(str(i["AmountInTransactionCurrency"]))
                for items in documents.values()
                for i in items
                if i.get("Customer")
            ),
            Decimal(0),
        )

    def _verify_cash(self, report: ChaosReport, every_entry: list[dict[str, Any]]) -> None:
        """Each receipt posted once, as one customer payment applying all of it; each credit one
        credit note in billing and one credit memo in the ERP; every entry in the ERP
        balanced and kept once by its external id."""
        payments = self.control.records("netsuite", "customerPayment")
        by_external = Counter(p.get("externalId") for p in payments)
        by_receipt = Counter(p.get("custbody_o2c_receipt") for p in payments if p.get("custbody_o2c_receipt"))
        for receipt_id, amount in self.receipts.items():
            external_id = f"cash-{receipt_id}"
            posted = [p for p in payments if p.get("externalId") == external_id]
            if by_external[external_id] != 1 or by_receipt[receipt_id] > 1:
                report.duplicates.append(
                    f"{receipt_id}: {by_external[external_id]} customer payments {external_id}, "
                    f"{by_receipt[receipt_id]} naming the receipt"
                )
            applied = sum(
                (Decimal(str(line["amount"])) for p in posted for line in (p.get("apply") or {}).get("items") or []),
                Decimal(0),
            )
            report.cash_applied += applied
            if posted and applied != amount:
                report.wrong_outcomes.append(f"{receipt_id}: {amount} received, {applied} applied in the ERP")
        report.receipts = len(self.receipts)

        memos = Counter(m.get("externalId") for m in self.control.records("netsuite", "creditMemo"))
        notes = Counter(
            n.get("invoice") for n in self.control.records("stripe", "credit_note") if n.get("status") != "void"
        )
        for process in (p for p in self.processes if p.kind == "credit"):
            if memos[f"{process.workflow_id}-memo"] != 1 or notes[process.invoice_id] != 1:
                report.duplicates.append(
                    f"{process.workflow_id}: {notes[process.invoice_id]} credit notes in billing, "
                    f"{memos[f'{process.workflow_id}-memo']} credit memos in the ERP"
                )
        kept = Counter(e.get("externalId") for e in every_entry)
        report.duplicates += [f"{n} journal entries {x}" for x, n in kept.items() if x and n > 1]
        ours = [p.workflow_id for p in self.processes if p.kind in ("cash", "credit", "dispute")]
        for entry in every_entry:
            external_id = str(entry.get("externalId", ""))
            if not (external_id.startswith("cash-") or any(external_id.startswith(w) for w in ours)):
                continue
            lines = entry["line"]["items"]
            debits = sum(Decimal(str(x["debit"])) for x in lines if x.get("debit") is not None)
            credits = sum(Decimal(str(x["credit"])) for x in lines if x.get("credit") is not None)
            if debits != credits:
                report.unbalanced.append(f"{external_id}: {debits} != {credits}")

    async def _verify_usage(self, process: Process, report: ChaosReport) -> None:
        """Billing's meter holds what o2c accepted, once; the period is invoiced once and its tax
        committed once; a completed release's invoice is part of the receivable."""
        who = self.usage_sent[process.workflow_id]
        billing = StripeBilling(self.settings.stripe_base_url, self.settings.stripe_api_key, timeout=10)
        try:
            counted = await billing.metered_quantity(
                METER, customer=who.customer, start=period_start(PERIOD), end=period_end(PERIOD)
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
