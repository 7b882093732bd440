"""Bad bank statement files at the front doors (`import_statement`, `o2c cash import`): refused
whole with the line and the reason, nothing kept in o2c's cash store, no workflow started.
A good file, imported twice, is one statement on one workflow."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from canonical.models import LegalEntity
from starter.cash import StatementRefused, import_statement
from tests.badinput.kit import RecordingClient
from tests.badinput.test_cli_bad_requests import Trap, connections, trap  # noqa: F401  (the fixture)
from tests.fakes import Ledger
from tests.fakes_cash import FakeCashStore

ROOT = Path(__file__).resolve().parents[2]
ENTITIES = [
    LegalEntity(code="US01", company_code="US01", functional_currency="USD"),
    LegalEntity(code="DE01", company_code="DE01", functional_currency="EUR", erp_subsidiary="2"),
]

CAMT = """<?xml version="1.0" encoding="UTF-8"?>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.02"><BkToCstmrStmt>
<GrpHdr><MsgId>M1</MsgId><CreDtTm>2024-01-31T06:00:00</CreDtTm></GrpHdr>
<Stmt><Id>S1</Id><CreDtTm>2024-01-31T06:00:00</CreDtTm><Acct><Id><IBAN>DE89370400440532013000</IBAN></Id><Ccy>EUR</Ccy></Acct>
<Bal><Tp><CdOrPrtry><Cd>OPBD</Cd></CdOrPrtry></Tp><Amt Ccy="EUR">100.00</Amt><CdtDbtInd>CRDT</CdtDbtInd><Dt><Dt>2024-01-31</Dt></Dt></Bal>
<Bal><Tp><CdOrPrtry><Cd>CLBD</Cd></CdOrPrtry></Tp><Amt Ccy="EUR">{closing}</Amt><CdtDbtInd>CRDT</CdtDbtInd><Dt><Dt>2024-01-31</Dt></Dt></Bal>
<Ntry><Amt Ccy="EUR">150.00</Amt><CdtDbtInd>CRDT</CdtDbtInd><Sts>BOOK</Sts><BookgDt><Dt>2024-01-31</Dt></BookgDt><ValDt><Dt>2024-01-31</Dt></ValDt>
<AcctSvcrRef>B-1</AcctSvcrRef><BkTxCd><Domn><Cd>PMNT</Cd><Fmly><Cd>RCDT</Cd><SubFmlyCd>ESCT</SubFmlyCd></Fmly></Domn></BkTxCd>
<NtryDtls><TxDtls><Refs><EndToEndId>INV-1001</EndToEndId></Refs><RltdPties><Dbtr><Nm>ACME Corp</Nm></Dbtr></RltdPties><RmtInf><Ustrd>INV-1001</Ustrd></RmtInf></TxDtls></NtryDtls></Ntry>
</Stmt></BkToCstmrStmt></Document>
"""

BAI2 = """01,122000661,CUSTID,240131,0600,1,,,2/
02,CUSTID,122000661,1,240130,2400,USD,2/
03,123456789,USD,010,1000000,,,015,1150000,,/
16,165,150000,0,BANKREF1,CUSTREF1,ACH CREDIT ACME CORP/
88,INV-1001
49,{control},4/
98,2300000,1,6/
99,2300000,1,8/
"""

BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.02"><BkToCstmrStmt>&lol2;</BkToCstmrStmt></Document>
"""

BAD = {
    "empty": ("", "US01"),
    "not a statement": ("hello, world\n", "US01"),
    "camt does not balance": (CAMT.format(closing="260.00"), "DE01"),
    "camt cut short": (CAMT.format(closing="250.00")[:900], "DE01"),
    "camt with entities": (BILLION_LAUGHS, "DE01"),
    "bai2 control total wrong": (BAI2.format(control="2300001"), "US01"),
    "bai2 without its trailer": ("\n".join(BAI2.format(control="2300000").splitlines()[:-1]) + "\n", "US01"),
    "statement in another currency than the entity's": (CAMT.format(closing="250.00"), "US01"),
    "unknown legal entity": (CAMT.format(closing="250.00"), "XX99"),
}


@pytest.mark.parametrize("name", sorted(BAD))
async def test_a_bad_statement_is_refused_whole_and_starts_nothing(name):
    text, entity = BAD[name]
    store, client = FakeCashStore(Ledger()), RecordingClient()
    with pytest.raises(StatementRefused) as refused:
        await import_statement(
            client,  # type: ignore[arg-type]
            text.encode(),
            legal_entity=entity,
            store=store,
            legal_entities=ENTITIES,
        )
    assert refused.value.problems and all(reason for _, reason in refused.value.problems)
    assert "nothing imported" in str(refused.value)
    assert store.ledger.calls == [] and store.statements == {} and store.receipts_by_id == {}
    assert client.calls == []


async def test_a_bad_statement_names_the_line_at_fault():
    store = FakeCashStore(Ledger())
    with pytest.raises(StatementRefused) as refused:
        await import_statement(
            RecordingClient(),  # type: ignore[arg-type]
            BAI2.format(control="2300001").encode(),
            legal_entity="US01",
            store=store,
            legal_entities=ENTITIES,
        )
    line, reason = refused.value.problems[0]
    assert line == 6, reason  # the 49 record that carries the control total


class StartsOnce:
    """A Temporal client that starts a workflow once per id, as the server does under USE_EXISTING."""

    def __init__(self) -> None:
        self.started: list[str] = []

    async def start_workflow(self, run, arg, *, id, **options):
        if id not in self.started:
            self.started.append(id)

        class Handle:
            pass

        handle = Handle()
        handle.id = id  # type: ignore[attr-defined]
        return handle


async def test_a_good_statement_imported_twice_is_one_statement_on_one_workflow():
    store, client = FakeCashStore(Ledger()), StartsOnce()
    data = CAMT.format(closing="250.00").encode()
    first = await import_statement(client, data, legal_entity="DE01", store=store, legal_entities=ENTITIES)  # type: ignore[arg-type]
    again = await import_statement(client, data, legal_entity="DE01", store=store, legal_entities=ENTITIES)  # type: ignore[arg-type]
    [one], [two] = first.statements, again.statements
    assert one.new and not two.new
    assert one.statement_id == two.statement_id and one.workflow_id == two.workflow_id == f"cash-{one.statement_id}"
    assert client.started == [one.workflow_id]
    assert one.receipts == 1 and str(one.total) == "150.00 EUR"
    assert len(store.receipts_by_id) == 1


def test_the_cli_refuses_a_bad_file_with_exit_2_before_reaching_anything(trap, tmp_path):  # noqa: F811
    bad = tmp_path / "statement.bai"
    bad.write_text(BAI2.format(control="2300001"))
    address = f"127.0.0.1:{trap.getsockname()[1]}"
    database = tmp_path / "o2c.sqlite"
    done = subprocess.run(
        [sys.executable, "-m", "starter.cli", "cash", "import", str(bad), "--entity", "US01"],
        cwd=ROOT,
        env={
            **os.environ,
            "O2C_TEMPORAL_ADDRESS": address,
            "O2C_DATABASE_URL": f"sqlite:///{database}",
            "O2C_HTTP_TIMEOUT_SECONDS": "2",
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert done.stderr.startswith("o2c: ") and "Traceback" not in done.stderr
    assert "line 6" in done.stderr and "nothing imported" in done.stderr
    assert connections(trap) == 0
    assert not database.exists()
