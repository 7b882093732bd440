"""`o2c cash` as a user runs it: a process of its own against the dev server, the real worker
and adapters, and the sandbox. A camt.053 statement with an exact payment, a partial one
and one from nobody known is imported, applied in NetSuite and Stripe, waits with the
unknown one in the queue, and an operator applies it; importing the file again changes
nothing."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from datetime import date

import pytest

from adapters.netsuite import NetSuiteErp
from adapters.storage.cash import SqlCashStore
from canonical.cash.models import OpenItem
from canonical.journal import ChartOfAccounts, invoice_entry
from canonical.models import Account, InvoiceLine
from canonical.money import Money
from starter import client as o2c
from tests.integration.ledger_checks import assert_ledger, unapplied_now
from workflows.kit.status import Status

pytestmark = pytest.mark.integration

STATEMENT = """<?xml version="1.0" encoding="UTF-8"?>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.02"><BkToCstmrStmt>
<GrpHdr><MsgId>{tag}</MsgId><CreDtTm>2026-11-30T06:00:00</CreDtTm></GrpHdr>
<Stmt><Id>{tag}</Id><CreDtTm>2026-11-30T06:00:00</CreDtTm><Acct><Id><Othr><Id>US-OPS-{tag}</Id></Othr></Id><Ccy>USD</Ccy></Acct>
<Bal><Tp><CdOrPrtry><Cd>OPBD</Cd></CdOrPrtry></Tp><Amt Ccy="USD">0.00</Amt><CdtDbtInd>CRDT</CdtDbtInd><Dt><Dt>2026-11-30</Dt></Dt></Bal>
<Bal><Tp><CdOrPrtry><Cd>CLBD</Cd></CdOrPrtry></Tp><Amt Ccy="USD">{closing}</Amt><CdtDbtInd>CRDT</CdtDbtInd><Dt><Dt>2026-11-30</Dt></Dt></Bal>
{entries}
</Stmt></BkToCstmrStmt></Document>
"""

ENTRY = """<Ntry><Amt Ccy="USD">{amount}</Amt><CdtDbtInd>CRDT</CdtDbtInd><Sts>BOOK</Sts><BookgDt><Dt>2026-11-30</Dt></BookgDt><ValDt><Dt>2026-11-30</Dt></ValDt>
<AcctSvcrRef>{ref}</AcctSvcrRef><BkTxCd><Domn><Cd>PMNT</Cd><Fmly><Cd>RCDT</Cd><SubFmlyCd>ESCT</SubFmlyCd></Fmly></Domn></BkTxCd>
<NtryDtls><TxDtls><RltdPties><Dbtr><Nm>{payer}</Nm></Dbtr></RltdPties><RmtInf><Ustrd>{text}</Ustrd></RmtInf></TxDtls></NtryDtls></Ntry>"""


@pytest.fixture
def cli(dev_server, settings, worker):
    env = {
        **os.environ,
        "O2C_TEMPORAL_ADDRESS": dev_server.client.service_client.config.target_host,
        "O2C_TASK_QUEUE": worker,
        "O2C_SANDBOX_URL": settings.sandbox_url,
        "O2C_DATABASE_URL": settings.database_url,
        "COLUMNS": "250",
    }
    env.pop("O2C_LEGAL_ENTITIES_FILE", None)

    async def run(*args: str) -> tuple[int, str, str]:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "starter.cli",
            "cash",
            *args,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(), timeout=120)
        assert process.returncode is not None
        return process.returncode, out.decode(), err.decode()

    return run


async def booked_invoice(billing, erp: NetSuiteErp, store: SqlCashStore, account_id: str, amount: str) -> str:
    """An open invoice in Stripe, booked in NetSuite in the customer's name, known to o2c's store."""
    money = Money.of(amount, "USD")
    invoice = await billing.create_proration_invoice(
        account_id=account_id,
        subscription_id="",
        currency="USD",
        lines=[InvoiceLine(product="services", description="Implementation services", amount=money)],
        description="Implementation services",
        metadata={},
        idempotency_key=f"cash-it-{uuid.uuid4().hex}",
    )
    await erp.post_journal_entry(
        invoice_entry(
            external_id=f"cash-it-{invoice.id}-invoice",
            subsidiary="1",
            posting_date=date(2026, 11, 1),
            memo=f"Invoice {invoice.id}",
            revenue=money,
            tax=Money.zero("USD"),
            chart=ChartOfAccounts(),
            invoice_id=invoice.id,
            customer=account_id,
        )
    )
    await store.upsert_open_items(
        [
            OpenItem(
                invoice_id=invoice.id,
                number=invoice.number,
                customer=account_id,
                legal_entity="US01",
                total=money,
                balance=money,
            )
        ]
    )
    return invoice.id


async def test_a_statement_is_applied_and_the_unknown_receipt_waits_for_an_operator(
    cli, dev_server, settings, billing, customer, tmp_path
):
    before = await unapplied_now(settings, ["US01"])
    erp = NetSuiteErp(settings.netsuite_base_url, settings.netsuite_token, timeout=5)
    store = SqlCashStore(settings.database_url)
    try:
        await erp.upsert_customer(Account(id=customer.account_id, name=f"Customer {customer.key}"), subsidiary="1")
        exact = await booked_invoice(billing, erp, store, customer.account_id, "100.00")
        partial = await booked_invoice(billing, erp, store, customer.account_id, "250.00")
        later = await booked_invoice(billing, erp, store, customer.account_id, "75.00")
        tag = uuid.uuid4().hex[:8]
        entries = [
            ENTRY.format(amount="100.00", ref=f"{tag}-1", payer=f"Somebody {tag}", text=exact),
            ENTRY.format(amount="200.00", ref=f"{tag}-2", payer=f"Somebody {tag}", text=partial),
            ENTRY.format(amount="75.00", ref=f"{tag}-3", payer=f"Nobody Known {tag}", text="thanks"),
        ]
        path = tmp_path / "statement.xml"
        path.write_text(STATEMENT.format(tag=tag, closing="375.00", entries="\n".join(entries)))

        code, out, err = await cli("import", str(path), "--entity", "US01", "--json")
        assert code == 0, (out, err)
        [imported] = json.loads(out)["statements"]
        workflow_id = imported["workflow_id"]
        assert imported["receipts"] == 3 and imported["imported"] == "new"

        state = await o2c.wait_for_status(dev_server.client, workflow_id, Status.NEEDS_ATTENTION, timeout=90)
        assert state["by_rule"] == {"exact_reference": 1, "partial_reference": 1, "unmatched": 1}
        [waiting] = state["waiting"]
        unknown = waiting["receipt_id"]

        code, out, err = await cli("queue", "--entity", "US01", "--json")
        assert code == 0 and unknown in [q["receipt"]["receipt_id"] for q in json.loads(out)], (out, err)

        code, out, err = await cli("show", workflow_id)
        assert code == 0 and f"{workflow_id}: needs_attention" in out and f"waits: {unknown} unmatched" in out, err
        code, out, err = await cli("show", unknown)
        assert code == 0 and "75.00 USD" in out and "Nobody Known" in out and "unmatched" in out, (out, err)

        # Billing knows the bank paid the first invoice; NetSuite has each payment applied.
        assert (await billing.get_invoice(exact)).status == "paid"
        first = await erp.get_customer_payment(f"cash-camt053:US-OPS-{tag}:{tag}-1")
        assert first is not None and first.customer == customer.account_id

        code, out, err = await cli("apply", unknown, "--invoice", later, "--amount", "75.00", "--as", "olga.ops")
        assert code == 0, (out, err)
        assert f"applied 75.00 USD to {later} by olga.ops" in out
        done = await o2c.wait_for_status(dev_server.client, workflow_id, Status.COMPLETED, timeout=90)
        assert done["decisions"][0]["decided_by"] == "olga.ops"
        moved = await erp.get_customer_payment(f"cash-{unknown}")
        assert moved is not None and moved.customer == customer.account_id

        code, out, err = await cli("import", str(path), "--entity", "US01", "--json")
        assert code == 0, (out, err)
        [again] = json.loads(out)["statements"]
        assert (again["workflow_id"], again["imported"]) == (workflow_id, "imported before: the same statement")

        code, out, err = await cli("apply", unknown, "--invoice", later, "--as", "olga.ops")
        assert code == 2 and "does not wait" in err, (out, err)

        await assert_ledger(settings, customers=[customer.account_id], entities=["US01"], since=before)
    finally:
        await erp.aclose()
        await store.aclose()
