"""`o2c cash sync` against the sandbox's Stripe over real HTTP: every open invoice of the
legal entity's billing account, page by page, into o2c's cash store (SQLite, and PostgreSQL
when O2C_DATABASE_URL names one); paid invoices are not open items; a balance the store has
lowered since stays lowered."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from adapters.storage.cash import SqlCashStore
from canonical.models import LegalEntity
from canonical.money import Money
from starter.cash_sync import UnknownEntity, sync_open_items
from tests.adapters.test_stripe_credits import customer, invoice_of, pay_by_card  # noqa: F401  (the fixture)

ROOT = Path(__file__).resolve().parents[2]
ENTITIES = [LegalEntity(code="US01", company_code="US01", functional_currency="USD")]


@pytest.fixture
def store(database_url):
    kept = SqlCashStore(database_url)
    yield kept
    kept.engine.dispose()


class Unreachable:
    """Billing that fails the test when asked."""

    async def open_invoices_page(self, **_: object):
        raise AssertionError("billing was asked")


async def test_every_open_invoice_is_kept_page_by_page(stripe, sandbox, customer, store):  # noqa: F811
    run = uuid.uuid4().hex[:6]
    opened = [await invoice_of(stripe, sandbox, f"sync-{run}-{i}") for i in range(3)]
    paid = await pay_by_card(stripe, sandbox, await invoice_of(stripe, sandbox, f"sync-{run}-paid"))

    [synced] = await sync_open_items(stripe, store, ENTITIES, page_size=2)

    assert (synced.legal_entity, synced.billing_account, synced.invoices) == ("US01", "", 3)
    assert synced.balances == {"USD": Money.of("324.75", "USD")}
    # Read back by id: the sandbox's customer is cus_acme in every run, and o2c's database
    # (PostgreSQL in CI) keeps earlier runs' open items of it.
    items = {i.invoice_id: i for i in await store.open_items(invoice_refs=[x["id"] for x in [*opened, paid]])}
    assert set(items) == {i["id"] for i in opened}
    for raw in opened:
        item = items[raw["id"]]
        assert (item.legal_entity, item.customer, item.number) == ("US01", "cus_acme", raw["number"])
        assert item.total == item.balance == Money.of("108.25", "USD")
        assert item.issued_on is not None


async def test_a_second_sync_keeps_what_cash_application_lowered(stripe, sandbox, customer, store):  # noqa: F811
    raw = await invoice_of(stripe, sandbox, f"sync-again-{uuid.uuid4().hex[:6]}")
    await sync_open_items(stripe, store, ENTITIES)
    [item] = await store.open_items(invoice_refs=[raw["id"]])
    # Cash applied in o2c that billing does not know of yet.
    await store.upsert_open_items([item.model_copy(update={"balance": Money.of("8.25", "USD")})])

    [again] = await sync_open_items(stripe, store, ENTITIES)

    assert again.invoices == 1
    [kept] = await store.open_items(invoice_refs=[raw["id"]])
    assert kept.balance == Money.of("8.25", "USD") and kept.total == Money.of("108.25", "USD")


async def test_an_unknown_entity_is_refused_before_billing_is_asked(store):
    with pytest.raises(UnknownEntity, match="XX99"):
        await sync_open_items(Unreachable(), store, ENTITIES, entity="XX99")  # type: ignore[arg-type]


def cli(sandbox, database_url: str, *arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "starter.cli", "cash", "sync", *arguments],
        cwd=ROOT,
        env={
            **{k: v for k, v in os.environ.items() if not k.startswith("O2C_")},
            "O2C_SANDBOX_URL": sandbox.url,
            "O2C_DATABASE_URL": database_url,
            "O2C_HTTP_TIMEOUT_SECONDS": "5",
        },
        capture_output=True,
        text=True,
        timeout=120,
    )


async def test_o2c_cash_sync(stripe, sandbox, customer, tmp_path):  # noqa: F811
    raw = await invoice_of(stripe, sandbox, f"sync-cli-{uuid.uuid4().hex[:6]}")
    database_url = f"sqlite:///{tmp_path / 'o2c.sqlite'}"

    done = cli(sandbox, database_url, "--entity", "US01", "--json")

    assert done.returncode == 0, (done.stdout, done.stderr)
    [entity] = json.loads(done.stdout)["entities"]
    assert (entity["legal_entity"], entity["billing_account"], entity["open_invoices"]) == ("US01", "platform", 1)
    store = SqlCashStore(database_url)
    try:
        [item] = await store.open_items(invoice_refs=[raw["id"]])
        assert item.balance == Money.of("108.25", "USD")
    finally:
        store.engine.dispose()

    refused = cli(sandbox, database_url, "--entity", "XX99")
    assert refused.returncode == 2 and "unknown legal entity 'XX99'" in refused.stderr
