"""Proof under fire, at a size CI runs: amendments, dunnings, renewals, usage releases and a reconciliation of
1,500 invoices at once, with a bank statement of 25 receipts applied (one by an operator), three
credits (one approved by finance) and two card payments disputed and closed won and lost, and
amendments and a renewal of customers of an entity on SAP S/4HANA; faults on every system, SAP's
lost answers included, the worker killed twice with SIGKILL. Every process ends where it should (one
waits visibly for an operator, by design), nothing is booked twice, each receipt is one customer
payment applying all of it, every entry balances, the receivable equals what was invoiced and
the ledger invariants hold, in NetSuite and in SAP. bench/chaos.py runs the same, larger."""

from __future__ import annotations

import pytest

from tests.integration.chaos_kit import CALENDAR, Chaos

pytestmark = pytest.mark.integration


async def test_processes_survive_faults_and_killed_workers(dev_server, sandbox, settings, monkeypatch, tmp_path):
    for name, value in CALENDAR.items():
        monkeypatch.setenv(name, value)
    chaos = Chaos(dev_server.client, dev_server.client.service_client.config.target_host, sandbox, settings, tmp_path)
    for name, value in chaos.environment.items():  # the legal entities, the SAP one included
        monkeypatch.setenv(name, value)
    report = await chaos.run(
        amendments=6,
        dunnings=3,
        renewals=3,
        usage=3,
        sap_amendments=3,
        sap_renewals=1,
        reconciled_invoices=1500,
        payers=8,
        credits=3,
        disputes=2,
        kill_after=[2.0, 8.0],
    )
    print(report.figures())
    assert report.kills == 2 and set(report.faults_injected) == {"5xx", "429", "latency", "commit_then_timeout"}
    assert all(n > 0 for n in report.faults_injected.values())
    assert not report.duplicates, report.duplicates
    assert not report.unbalanced, report.unbalanced
    assert not report.wrong_outcomes, report.wrong_outcomes
    assert report.ledger_posted == report.ledger_expected > 0
    # SAP: a document per booking, posted once though answers were lost; its receivable is what was invoiced.
    assert report.faults_by_system["sap"] > 0 and report.sap_lost_answers > 0 and report.sap_documents == 3 + 1
    assert report.sap_posted == report.sap_expected > 0
    assert report.outcomes["amendment needs_attention"] == 1 and report.outcomes["dunning completed"] == 3
    assert report.outcomes["amendment completed"] == 5 + 3 and report.outcomes["renewal completed"] == 3 + 1
    assert report.outcomes["reconciliation completed"] == 1
    assert report.outcomes["usage completed"] == 3
    # 8 payers x 3 invoices and one receipt from nobody known; and the two disputed card payments.
    assert report.outcomes["cash completed"] == 3 and report.receipts == 27
    assert report.outcomes["credit completed"] == 3 and report.outcomes["dispute completed"] == 2
    assert not report.ledger_failures, report.ledger_failures
    assert report.ledger_customers == 5 + 8 + 1 + 3 + 2
    # The parked amendment's worker is gone with the run: leave no orphan in other tests' listings.
    for process in report.processes:
        if process.expect == "needs_attention":
            await dev_server.client.get_workflow_handle(process.workflow_id).terminate(reason="chaos test over")
