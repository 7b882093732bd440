"""An amendment for a customer of an entity on SAP S/4HANA, on the dev server with the real
worker: the entry is posted in the entity's company code, once, though SAP's answer to the
post is lost (commit then time out), and nothing is booked in NetSuite."""

from __future__ import annotations

import asyncio
import json
import secrets
import string
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from adapters.sap.ledger import edm_date
from adapters.stripe import StripeBilling
from canonical.models import AmendedLine, AmendmentRequest, LegalEntity
from sandbox.sap.api import SYNC_PATH
from starter import client as o2c
from tests.integration.ledger_checks import sap_documents, sap_duplicates, sap_receivable_failures, sap_unbalanced
from tests.integration.worker_kit import worker_for
from workflows.kit.status import Status

pytestmark = pytest.mark.integration

DE_ADDRESS = {
    "line1": "Dietmar-Hopp-Allee 16",
    "city": "Walldorf",
    "region": "BW",
    "postal_code": "69190",
    "country": "DE",
}


def sap_entity(control) -> LegalEntity:
    """An entity of the test's own in a company code of its own (EUR)."""
    code = "".join(secrets.choice(string.ascii_uppercase + string.digits) for _ in range(4))
    control.sap_company_code(code, "EUR")
    key = secrets.token_hex(3)
    return LegalEntity(
        code=f"DE{key}",
        company_code=f"DE{key}",
        functional_currency="EUR",
        erp="sap",
        erp_subsidiary=code,
        country="DE",
    )


async def test_an_amendment_books_in_the_sap_company_code_of_its_customers_entity(
    dev_server, settings, control, monkeypatch, tmp_path
):
    entity = sap_entity(control)
    key = uuid.uuid4().hex[:8]
    control.seed(
        customer={
            "id": f"cus_{key}",
            "name": f"Kunde {key}",
            "email": f"ap@{key}.test",
            "address": DE_ADDRESS,
            "legal_entity": entity.code,
        },
        subscription={
            "id": f"sub_{key}",
            "contract_id": f"C-{key}",
            "currency": "EUR",
            "items": [{"product": "seats", "description": "Platform seat", "quantity": 10, "unit_price": "50.00"}],
            "current_period_start": "2026-11-01",
            "current_period_end": "2026-12-01",
            "term_start": "2026-01-01",
            "term_end": "2027-01-01",
        },
    )
    # The starter reads the configured entities as an operator sets them: from the file.
    entities = tmp_path / "legal-entities.json"
    entities.write_text(json.dumps([e.model_dump(mode="json") for e in [*settings.legal_entities, entity]]))
    monkeypatch.setenv("O2C_LEGAL_ENTITIES_FILE", str(entities))
    control.fault("sap", "commit_then_timeout", method="POST", path_contains=SYNC_PATH, times=2, hold_seconds=2.0)
    request = AmendmentRequest(
        amendment_id=f"SAP-{key}",
        contract_id=f"C-{key}",
        subscription_id=f"sub_{key}",
        account_id=f"cus_{key}",
        currency="EUR",
        effective_date=date(2026, 11, 16),
        requested_by="sam.sales",
        reason="integration test",
        lines=[AmendedLine(product="seats", quantity=12, unit_price=Decimal("50.00"))],
    )
    billing = StripeBilling(settings.stripe_base_url, settings.stripe_api_key, timeout=5)
    try:
        async with worker_for(dev_server.client, settings, [entity]) as own:
            handle = await o2c.start_amendment(dev_server.client, request, billing=billing, task_queue=own.task_queue)
            result = await asyncio.wait_for(handle.result(), timeout=120)
    finally:
        await billing.aclose()
    assert result.status == Status.COMPLETED, result.message
    # The first post's answer was lost after SAP posted; the retry found the document by its
    # reference and posted nothing, so the second fault never fired.
    assert sum(f["fired"] for f in control.faults() if f["system"] == "sap") == 1

    [invoice] = [i for i in control.records("stripe", "invoice") if i["metadata"].get("o2c_workflow") == handle.id]
    # 15 of 30 days of 2 more seats at 50.00, and the tax AvaTax computed on it
    assert invoice["currency"] == "eur" and invoice["total"] >= 5000
    documents = await sap_documents(
        settings, entity.erp_subsidiary, date(2026, 11, 1), date.today() + timedelta(days=1)
    )
    [items] = documents.values()
    # Dated as every document of a booking: the day billing created the invoice.
    issued = datetime.fromtimestamp(invoice["created"], UTC).date()
    assert {edm_date(i["PostingDate"]) for i in items} == {issued}
    assert [i["DocumentItemText"] for i in items[:2]] == [f"E:{handle.id}-invoice", f"I:{invoice['id']}"]
    assert not sap_duplicates(documents) and not sap_unbalanced(documents)
    assert not await sap_receivable_failures(settings, documents, {f"cus_{key}": Decimal(invoice["total"]) / 100})
    assert not [e for e in control.records("netsuite", "journalEntry") if e.get("externalId", "").startswith(handle.id)]
