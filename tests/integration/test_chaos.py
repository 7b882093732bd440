"""Proof under fire, at a size CI runs: amendments, dunnings, renewals, usage releases and a reconciliation of
1,500 invoices at once, faults on every system, the worker killed twice with SIGKILL. Every
process ends where it should (one waits visibly for an operator, by design), nothing is
booked twice, every entry balances and the receivable equals what was invoiced.
bench/chaos.py runs the same, larger."""

from __future__ import annotations

import pytest

from tests.integration.chaos_kit import CALENDAR, Chaos

pytestmark = pytest.mark.integration


async def test_processes_survive_faults_and_killed_workers(dev_server, sandbox, settings, monkeypatch, tmp_path):
    for name, value in CALENDAR.items():
        monkeypatch.setenv(name, value)
    chaos = Chaos(dev_server.client, dev_server.client.service_client.config.target_host, sandbox, settings, tmp_path)
    report = await chaos.run(
        amendments=6, dunnings=3, renewals=3, usage=3, reconciled_invoices=1500, kill_after=[2.0, 8.0]
    )
    print(report.figures())
    assert report.kills == 2 and set(report.faults_injected) == {"5xx", "429", "latency", "commit_then_timeout"}
    assert all(n > 0 for n in report.faults_injected.values())
    assert not report.duplicates, report.duplicates
    assert not report.unbalanced, report.unbalanced
    assert not report.wrong_outcomes, report.wrong_outcomes
    assert report.ledger_posted == report.ledger_expected > 0
    assert report.outcomes["amendment needs_attention"] == 1 and report.outcomes["dunning completed"] == 3
    assert report.outcomes["reconciliation completed"] == 1
    assert report.outcomes["usage completed"] == 3
    # The parked amendment's worker is gone with the run: leave no orphan in other tests' listings.
    for process in report.processes:
        if process.expect == "needs_attention":
            await dev_server.client.get_workflow_handle(process.workflow_id).terminate(reason="chaos test over")
