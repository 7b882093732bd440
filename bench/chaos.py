"""The chaos run at a larger size: many amendments, dunnings, renewals and usage releases, a
reconciliation, a bank statement applied, credits (some approved by finance) and disputes won
and lost, amendments and renewals of an entity on SAP S/4HANA, at once on the real dev server, faults on every system's requests, the worker
process killed with SIGKILL and restarted mid-run. Prints the figures: processes and how they
ended, faults injected, kills, duplicates found, unbalanced entries, the receivable booked
against what was invoiced, the receipts and what the ERP applied of them, and the ledger
invariants broken; the last line is the same figures as one JSON object. Never asserts
(tests/integration/test_chaos.py runs a CI-sized one that does).

    .venv/bin/python bench/chaos.py [--amendments 40] [--dunnings 15] [--renewals 15] [--usage 15]
                                    [--sap-amendments 15] [--sap-renewals 5]
                                    [--kills 4] [--reconciled-invoices 10000]
                                    [--payers 30] [--credits 10] [--disputes 6]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from sandbox import SandboxControl, SandboxServer
from settings import Settings
from starter.binaries import dev_server_binary
from tests.integration.chaos_kit import CALENDAR, Chaos
from workflows.kit.status import SEARCH_ATTRIBUTES


async def main(args: argparse.Namespace) -> None:
    os.environ.update(CALENDAR)
    scratch = Path(tempfile.mkdtemp(prefix="o2c-chaos-"))
    database_url = args.database_url or f"sqlite:///{scratch / 'chaos.sqlite'}"
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=dev_server_binary(),
        search_attributes=SEARCH_ATTRIBUTES,
        data_converter=pydantic_data_converter,
        ip="127.0.0.1",
        dev_server_extra_args=["--headless"],
    )
    try:
        with SandboxServer(database_url) as sandbox:
            control = SandboxControl(sandbox.url)
            settings = Settings.from_env().on_sandbox(sandbox.url).model_copy(update={"database_url": database_url})
            chaos = Chaos(env.client, env.client.service_client.config.target_host, control, settings, scratch)
            os.environ.update(chaos.environment)  # the legal entities, the SAP one included
            # Kills spread over the first minute, while the processes are in full swing.
            kills = [2.0 + 12.0 * k for k in range(args.kills)]
            report = await chaos.run(
                amendments=args.amendments,
                dunnings=args.dunnings,
                usage=args.usage,
                renewals=args.renewals,
                sap_amendments=args.sap_amendments,
                sap_renewals=args.sap_renewals,
                reconciled_invoices=args.reconciled_invoices,
                payers=args.payers,
                credits=args.credits,
                disputes=args.disputes,
                kill_after=kills,
                timeout=args.timeout,
            )
            control.close()
    finally:
        await env.shutdown()
    print()
    print(report.figures())
    for title, items in (
        ("duplicates", report.duplicates),
        ("unbalanced entries", report.unbalanced),
        ("wrong outcomes", report.wrong_outcomes),
        ("ledger invariants broken", report.ledger_failures),
    ):
        print(f"{title}: {len(items)}" + "".join(f"\n  {x}" for x in items))
    print(f"worker log: {scratch}")
    print(json.dumps({"bench": "chaos", **report.summary()}, sort_keys=True))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--amendments", type=int, default=40)
    parser.add_argument("--dunnings", type=int, default=15)
    parser.add_argument("--renewals", type=int, default=15)
    parser.add_argument("--usage", type=int, default=15, help="usage releases, each with its month of events")
    parser.add_argument("--sap-amendments", type=int, default=15, help="amendments of customers of the SAP entity")
    parser.add_argument("--sap-renewals", type=int, default=5, help="renewals of customers of the SAP entity")
    parser.add_argument("--kills", type=int, default=4)
    parser.add_argument(
        "--reconciled-invoices",
        type=int,
        default=10_000,
        help="invoices in the period a reconciliation reads through it all (0: none)",
    )
    parser.add_argument(
        "--payers",
        type=int,
        default=30,
        help="customers paying their invoices (3 each) on one bank statement, with one receipt from nobody known",
    )
    parser.add_argument("--credits", type=int, default=10, help="credit workflows, every fifth approved by finance")
    parser.add_argument("--disputes", type=int, default=6, help="card payments disputed, closed won and lost in turn")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds the processes get to settle")
    parser.add_argument("--database-url", help="default: a scratch SQLite file")
    asyncio.run(main(parser.parse_args()))
    # The figures are out; leave before interpreter teardown, where Temporal's native runtime
    # can abort the process (as the o2c CLI does).
    sys.stdout.flush()
    os._exit(0)
