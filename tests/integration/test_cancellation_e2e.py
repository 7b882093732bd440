"""A cancellation from the `temporal` CLI, as an operator would send it, on the real dev server,
worker and adapters: everything the amendment booked in the sandbox's systems is undone once,
and only then does the workflow close as cancelled."""

from __future__ import annotations

import asyncio
import subprocess
from datetime import timedelta

import pytest
from temporalio.client import WorkflowExecutionStatus, WorkflowFailureError

from starter import client as o2c
from starter.binaries import dev_server_binary
from tests.integration.test_amendment_e2e import Books, balanced
from workflows.amendment import AmendmentInput, AmendmentWorkflow, amendment_workflow_id
from workflows.kit.status import Status

pytestmark = pytest.mark.integration


async def test_temporal_workflow_cancel_undoes_a_booked_amendment(dev_server, worker, control, customer):
    control.fault("entitlements", "5xx", times=1000, method="PUT")  # parks after the money is booked
    request = customer.amendment(quantity=12)
    handle = await dev_server.client.start_workflow(
        AmendmentWorkflow.run,
        AmendmentInput(request=request, step_window=timedelta(seconds=4)),
        id=amendment_workflow_id(request.amendment_id),
        task_queue=worker,
    )
    await o2c.wait_for_status(dev_server.client, handle.id, Status.NEEDS_ATTENTION)
    control.clear_faults()
    booked = Books(control, customer, handle.id)
    assert booked.seats == 12 and [i["status"] for i in booked.invoices] == ["open"]

    address = dev_server.client.service_client.config.target_host
    cancel = subprocess.run(
        [dev_server_binary(), "workflow", "cancel", "--workflow-id", handle.id, "--address", address,
         "--namespace", dev_server.client.namespace],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert cancel.returncode == 0, cancel.stderr
    with pytest.raises(WorkflowFailureError):
        await asyncio.wait_for(handle.result(), timeout=90)
    assert (await handle.describe()).status == WorkflowExecutionStatus.CANCELED

    books = Books(control, customer, handle.id)
    assert books.seats == 10 and len(books.subscription_updates) == 2  # changed, then restored
    assert [i["status"] for i in books.invoices] == ["void"]
    assert [t["status"] for t in books.tax_documents] == ["Cancelled"]
    entry, reversal = sorted(books.journal_entries, key=lambda e: e["externalId"])
    assert reversal["externalId"] == f"{entry['externalId']}-reversal" and balanced(reversal)
    assert all(e["seats"] == 10 for e in books.entitlements)
