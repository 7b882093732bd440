"""The reconciliation's usage check on the time-skipping test server: the real activities and
o2c's real reconciliation store, billing and the ERP as in-memory fakes, o2c's usage releases
in an in-memory usage store. A run of October compares September's releases with the invoices
billing issued on 1 October and October's releases with the accruals of 31 October."""

from __future__ import annotations

import uuid

from canonical.reconciliation import ReconciliationPolicy
from tests.usage_recon_fakes import seed_usage_period
from workflows.kit.attention import OperatorAction, ResolveInput
from workflows.kit.status import Status
from workflows.reconciliation import ReconciliationInput, ReconciliationResult, ReconciliationWorkflow


async def test_the_usage_check_reports_each_usage_break_and_heals_none(env, worker, systems, reconciliations):
    await seed_usage_period(systems)
    handle = await env.client.start_workflow(
        ReconciliationWorkflow.run,
        ReconciliationInput(
            legal_entity="US01",
            period="2026-10",
            policy=ReconciliationPolicy(batch_size=3, usage_units={"api_calls": "API calls"}),
        ),
        id=f"reconciliation-US01-2026-10-{uuid.uuid4().hex[:6]}",
        task_queue=worker,
        result_type=ReconciliationResult,
    )
    for _ in range(400):
        parked = await handle.query(ReconciliationWorkflow.state)
        if parked.status == Status.NEEDS_ATTENTION:
            break
    assert parked.status == Status.NEEDS_ATTENTION
    assert parked.read["usage"] == 7  # four September releases, three October ones
    await handle.execute_update(
        ReconciliationWorkflow.resolve,
        ResolveInput(action=OperatorAction.SKIP, operator="olga.ops", comment="billing ops re-measure"),
    )
    result = await handle.result()

    assert result.found == {
        "usage_quantity_mismatch": 1,
        "usage_not_invoiced": 1,
        "usage_not_released": 1,
        "missing_in_erp": 1,
        "usage_accrual_missing": 1,
        "usage_cut_off": 1,
    }
    assert result.healed == 0
    assert "usage-sub_105-2026-09-invoice" not in systems.erp.entries  # a usage invoice is not healed here
    records = {(b.document, b.kind): b for b in await reconciliations.breaks_of_run(result.run_id)}
    quantity = records[("in_102", "usage_quantity_mismatch")]
    assert "billing invoiced 9,800 API calls on in_102; o2c released 10,000" in quantity.explanation
    assert quantity.owner == "billing operations" and quantity.status == "acknowledged"
    assert "billing has no invoice in_103" in records[("in_103", "usage_not_invoiced")].explanation
    assert "without o2c's count and review" in records[("in_104", "usage_not_released")].explanation
    missing = records[("in_105", "missing_in_erp")]
    assert "expected usage-sub_105-2026-09-invoice" in missing.explanation
    assert "usage-sub_202-2026-10-accrual" in records[("in_202", "usage_accrual_missing")].explanation
    cut_off = records[("in_203", "usage_cut_off")]
    assert "dated 2026-11-02" in cut_off.explanation and cut_off.owner == "finance"
    assert not any(doc in ("in_101", "invoice:in_201") for doc, _ in records)
