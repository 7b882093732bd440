"""Cash at the ingress over real HTTP: Stripe card payments become one receipt and one
`cash-<receipt id>` however often Stripe delivers them, and bank statement files posted to
`/v1/cash/statements` start their cash application, or are refused whole with the line."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.applications import Starlette

from adapters.storage.cash import SqlCashStore
from adapters.storage.usage import UsageLedger
from canonical.models import Invoice, LegalEntity
from canonical.money import Money
from starter.cash_ingress import STATEMENTS_PATH, cash_routes
from tests.badinput.test_cash_import import BAI2
from tests.ingress.ingress_kit import FakeBilling, RunningServer, serve
from tests.ingress.test_stripe_ingress import event, exists, post, terminated_afterwards

ENTITIES = [LegalEntity(code="US01", company_code="US01", functional_currency="USD")]


@pytest.fixture
def store(tmp_path) -> SqlCashStore:
    return SqlCashStore(f"sqlite:///{tmp_path / 'cash.sqlite'}")


def charge(charge_id: str, invoice_id: str, cents: int = 12000) -> dict:
    return {
        "id": charge_id,
        "object": "charge",
        "amount": cents,
        "currency": "usd",
        "customer": "cus_Acme",
        "invoice": invoice_id,
        "status": "succeeded",
    }


class BillingWithInvoices(FakeBilling):
    """Billing as the ingress reads it for a card payment: the invoice it paid, paid already."""

    def __init__(self) -> None:
        super().__init__()
        self.invoices: dict[str, Invoice] = {}
        self.reads: list[str] = []

    async def get_invoice(self, invoice_id: str) -> Invoice | None:
        self.reads.append(invoice_id)
        return self.invoices.get(invoice_id)


async def test_a_card_payment_is_one_receipt_on_one_workflow_however_often_it_arrives(ingress_env, store):
    client = ingress_env.client
    charge_id, invoice_id = f"ch_{uuid.uuid4().hex[:10]}", f"in_{uuid.uuid4().hex[:10]}"
    receipt_id = f"stripe:platform:{charge_id}"
    workflow_id = f"cash-{receipt_id}"
    billing = BillingWithInvoices()
    usd = Money.of("120.00", "USD")
    billing.invoices[invoice_id] = Invoice(
        id=invoice_id,
        number="ACME-0042",
        account_id="cus_Acme",
        status="paid",
        currency="USD",
        total=usd,
        amount_paid=usd,
        amount_remaining=Money.zero("USD"),
    )
    async with (
        serve(client, billing, cash=store, legal_entities=ENTITIES) as ingress,
        terminated_afterwards(client, workflow_id),
    ):
        for _ in range(3):
            response = await post(ingress, event("charge.succeeded", charge(charge_id, invoice_id)))
            assert response.status_code == 200, response.text
            assert response.json() == {"received": True, "workflows": [workflow_id]}
        paid = {
            "id": invoice_id,
            "object": "invoice",
            "customer": "cus_Acme",
            "currency": "usd",
            "amount_paid": 12000,
            "amount_remaining": 0,
            "status": "paid",
            "charge": charge_id,
        }
        # invoice.paid is the same payment: the same receipt, and still news for a dunning.
        response = await post(ingress, event("invoice.paid", paid))
        assert response.json() == {"received": True, "workflows": [workflow_id]}
        assert await exists(client, workflow_id)
        kept = await store.receipt(receipt_id)
        assert kept is not None and (kept.customer_hint, kept.invoice_hint, str(kept.amount)) == (
            "cus_Acme",
            invoice_id,
            "120.00 USD",
        )


async def test_without_a_cash_store_card_payments_only_feed_dunnings(ingress_env):
    async with serve(ingress_env.client) as ingress:
        response = await post(ingress, event("charge.succeeded", charge("ch_alone", "in_alone")))
    assert response.json() == {"received": True, "workflows": []}
    assert not await exists(ingress_env.client, "cash-stripe:platform:ch_alone")


@pytest.fixture
async def statements(ingress_env, store, tmp_path) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    keys = UsageLedger(f"sqlite:///{tmp_path / 'keys.sqlite'}")
    key = await keys.create_key("bank-gateway")
    app = Starlette(routes=cash_routes(ingress_env.client, store, keys, legal_entities=ENTITIES, task_queue="tq-cash"))
    try:
        async with RunningServer(app) as running, httpx.AsyncClient(base_url=running.url, timeout=30) as http:
            yield http, key
    finally:
        await keys.aclose()


async def test_a_statement_posted_starts_its_cash_application_once(ingress_env, statements, store):
    http, key = statements
    body = BAI2.format(control="2300000").replace("240131,0600,1", f"240131,0600,{uuid.uuid4().hex[:8]}").encode()
    auth = {"Authorization": f"Bearer {key}"}
    first = await http.post(STATEMENTS_PATH, content=body, headers=auth, params={"entity": "US01"})
    assert first.status_code == 200, first.text
    [imported] = first.json()["statements"]
    workflow_id = imported["workflow_id"]
    async with terminated_afterwards(ingress_env.client, workflow_id):
        assert workflow_id == f"cash-{imported['statement_id']}" and imported["new"] is True
        assert imported["receipts"] == 1 and imported["total"] == {"amount": "1500.00", "currency": "USD"}
        again = await http.post(STATEMENTS_PATH, content=body, headers=auth)
        assert again.status_code == 200
        [same] = again.json()["statements"]
        assert (same["workflow_id"], same["new"]) == (workflow_id, False)
        assert await exists(ingress_env.client, workflow_id)
        assert len(await store.receipts(imported["statement_id"])) == 1


async def test_a_bad_statement_is_refused_with_its_line_and_a_missing_key_reads_nothing(statements, store):
    http, key = statements
    bad = await http.post(
        STATEMENTS_PATH, content=BAI2.format(control="2300001").encode(), headers={"Authorization": f"Bearer {key}"}
    )
    assert bad.status_code == 400
    answer = bad.json()
    assert answer["error"] == "invalid_statement" and answer["problems"][0]["line"] == 6
    assert await store.queue() == []
    assert (await http.post(STATEMENTS_PATH, content=b"01,")).status_code == 401
    wrong = await http.post(STATEMENTS_PATH, content=b"01,", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
