from __future__ import annotations

from datetime import date

import httpx
import pytest

from adapters.errors import BusinessError, IntegrationBug, TransientError
from adapters.netsuite import NetSuiteErp
from canonical.journal import ChartOfAccounts, JournalEntry, JournalLine, invoice_entry
from canonical.money import Money


def usd(amount: str) -> Money:
    return Money.of(amount, "USD")


def entry(external_id: str = "amendment-C1-A1/invoice", posting: date = date(2025, 3, 15)) -> JournalEntry:
    return invoice_entry(
        external_id=external_id,
        subsidiary="1",
        posting_date=posting,
        memo="Proration A1",
        revenue=usd("80.65"),
        tax=usd("5.85"),
        chart=ChartOfAccounts(),
    )


async def test_upsert_by_external_id_and_read_back(netsuite, sandbox):
    posted = await netsuite.post_journal_entry(entry())
    assert posted.internal_id.isdigit()
    assert posted.location == f"{sandbox.netsuite_url}/record/v1/journalEntry/{posted.internal_id}"
    again = await netsuite.post_journal_entry(entry())
    assert again.internal_id == posted.internal_id
    assert sandbox.count("netsuite", "journalEntry") == 1

    read = await netsuite.get_journal_entry("amendment-C1-A1/invoice")
    assert read == entry()
    assert await netsuite.get_journal_entry("never-posted") is None


async def test_reversal_keeps_its_link(netsuite, sandbox):
    original = entry()
    reversal = original.reversal("amendment-C1-A1/invoice/reversal", date(2025, 3, 20))
    await netsuite.post_journal_entry(reversal)
    read = await netsuite.get_journal_entry(reversal.external_id)
    assert read.reverses == original.external_id
    assert read.lines[0].credit == original.lines[0].debit


async def test_wire_format_of_a_journal_entry(sandbox):
    body = {
        "externalId": "je-raw",
        "subsidiary": {"id": "1"},
        "currency": {"refName": "USD"},
        "tranDate": "2025-03-15",
        "memo": "raw",
        "line": {
            "items": [
                {"account": {"id": "1200"}, "debit": 10.5, "memo": "AR"},
                {"account": {"id": "2400"}, "credit": 10.5},
            ]
        },
    }
    async with httpx.AsyncClient(base_url=sandbox.netsuite_url, headers={"Authorization": "Bearer t"}) as http:
        created = await http.post("/record/v1/journalEntry", json=body)
        assert created.status_code == 204 and created.content == b""
        internal_id = created.headers["location"].rsplit("/", 1)[-1]
        read = await http.get(f"/record/v1/journalEntry/{internal_id}")
        assert read.json()["externalId"] == "je-raw"
        assert read.json()["line"]["items"][0]["debit"] == 10.5
        duplicate = await http.post("/record/v1/journalEntry", json=body)
        assert duplicate.status_code == 400
        unbalanced = {
            **body,
            "externalId": "je-bad",
            "line": {"items": [{"account": {"id": "1200"}, "debit": 10}, {"account": {"id": "2400"}, "credit": 9}]},
        }
        refused = await http.put("/record/v1/journalEntry/eid:je-bad", json=unbalanced)
        assert refused.status_code == 400
        assert refused.json()["o:errorDetails"][0]["o:errorCode"]


async def test_unbalanced_entry_is_a_business_error(netsuite, sandbox):
    # The canonical model refuses unbalanced entries, so build one around its validator.
    bad = JournalEntry.model_construct(
        external_id="je-unbalanced",
        subsidiary="1",
        currency="USD",
        posting_date=date(2025, 3, 15),
        memo="bad",
        lines=[JournalLine(account="1200", debit=usd("10.00")), JournalLine(account="2400", credit=usd("9.00"))],
        reverses="",
    )
    with pytest.raises(BusinessError) as info:
        await netsuite.post_journal_entry(bad)
    assert not info.value.fixable
    assert sandbox.count("netsuite", "journalEntry") == 0


async def test_closed_period_is_a_fixable_business_error(netsuite, sandbox):
    sandbox.set_period("1", "2025-03", closed=True)
    with pytest.raises(BusinessError) as info:
        await netsuite.post_journal_entry(entry())
    assert info.value.fixable
    assert "period" in info.value.message and "closed" in info.value.message
    await netsuite.post_journal_entry(entry(posting=date(2025, 4, 1)))  # next period is open
    sandbox.set_period("1", "2025-03", closed=False)
    await netsuite.post_journal_entry(entry("je-march"))
    assert sandbox.count("netsuite", "journalEntry") == 2


async def test_bad_token_is_an_integration_bug(sandbox):
    client = NetSuiteErp(sandbox.netsuite_url, "invalid-token", timeout=5)
    try:
        with pytest.raises(IntegrationBug):
            await client.post_journal_entry(entry())
    finally:
        await client.aclose()


@pytest.mark.parametrize("kind", ["5xx", "429"])
async def test_server_faults_are_transient(netsuite, sandbox, kind):
    sandbox.fault("netsuite", kind, method="PUT", times=1)
    with pytest.raises(TransientError):
        await netsuite.post_journal_entry(entry())
    assert sandbox.count("netsuite", "journalEntry") == 0
    await netsuite.post_journal_entry(entry())
    assert sandbox.count("netsuite", "journalEntry") == 1


async def test_commit_then_timeout_converges_to_one_entry(sandbox):
    sandbox.fault("netsuite", "commit_then_timeout", method="PUT", times=1, hold_seconds=2)
    client = NetSuiteErp(sandbox.netsuite_url, "sandbox-token", timeout=1)
    try:
        with pytest.raises(TransientError):
            await client.post_journal_entry(entry())
        ref = await client.post_journal_entry(entry())
    finally:
        await client.aclose()
    [record] = sandbox.records("netsuite", "journalEntry")
    assert record["id"] == ref.internal_id
