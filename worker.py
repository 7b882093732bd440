"""The o2c worker: every workflow and every activity, on one task queue.

Run as `python worker.py` or `python -m worker` (which is what `o2c worker` and the embedded
stack run). Adapters are built from the environment (see settings.py); by default they talk
to the embedded sandbox. Logs are JSON lines on stdout carrying the workflow ID, run ID and
the business keys; the embedded stack waits for the "worker started" line. SIGTERM and
SIGINT drain in-flight activity attempts, then exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import AsyncIterator
from typing import Any, TextIO

import structlog
from structlog.typing import EventDict, WrappedLogger
from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.worker import Worker

from activities.registry import all_activities
from adapters.avatax import AvaTaxTax
from adapters.crm import SalesforceCrm
from adapters.entitlements import HttpEntitlements
from adapters.erp_routing import routed_erp
from adapters.notifications import HttpNotifications
from adapters.storage.cash import SqlCashStore
from adapters.storage.reconciliation import SqlReconciliationStore
from adapters.storage.revenue_postings import SqlRevenuePostings
from adapters.storage.schedules import SqlRevenueSchedules
from adapters.storage.usage import SqlUsageStore
from adapters.stripe import StripeBilling
from adapters.temporal import connect, connect_config
from settings import Settings
from workflows.registry import ALL_WORKFLOWS


def build_ports(settings: Settings) -> dict[str, Any]:
    timeout = settings.http_timeout_seconds
    billing = StripeBilling(
        settings.stripe_base_url,
        settings.stripe_api_key,
        timeout=timeout,
        meter_events_url=settings.stripe_meter_events_url,
    )
    tax = AvaTaxTax(
        settings.avatax_base_url,
        settings.avatax_account_id,
        settings.avatax_license_key,
        settings.avatax_company_code,
        timeout=timeout,
        companies=[e.company_code for e in settings.legal_entities],
    )
    erp = routed_erp(settings.legal_entities, **settings.erp_access)
    return dict(
        billing=billing,
        # Stripe bills usage through its meters: the same adapter, in its metering role,
        # and takes payments, credit notes and refunds in its payments role.
        metering=billing,
        tax=tax,
        erp=erp,
        entitlements=HttpEntitlements(settings.entitlements_base_url, timeout=timeout),
        notifications=HttpNotifications(settings.notifications_base_url, timeout=timeout),
        crm=SalesforceCrm(settings.crm_base_url, settings.crm_token, timeout=timeout),
        schedules=SqlRevenueSchedules(settings.database_url),
        reconciliations=SqlReconciliationStore(settings.database_url),
        usage=SqlUsageStore(settings.database_url),
        # Cash, credits and disputes: Stripe's payments, the ERPs' receivables, AvaTax's returns,
        # and o2c's cash store.
        payments=billing,
        receivables=erp,
        tax_returns=tax,
        cash=SqlCashStore(settings.database_url),
        revenue_postings=SqlRevenuePostings(settings.database_url),
    )


@contextlib.asynccontextmanager
async def running_worker(
    client: Client, settings: Settings, ports: dict[str, Any] | None = None, **worker_options: Any
) -> AsyncIterator[Worker]:
    """A started worker; on exit it drains and the adapters' connections close."""
    ports = ports if ports is not None else build_ports(settings)
    worker = Worker(
        client,
        task_queue=settings.task_queue,
        workflows=ALL_WORKFLOWS,
        activities=all_activities(**ports),
        **worker_options,
    )
    try:
        async with worker:
            yield worker
    finally:
        for port in {id(p): p for p in ports.values()}.values():  # one adapter may fill two roles
            close = getattr(port, "aclose", None)
            if close:
                await close()


def _temporal_context(_: WrappedLogger, __: str, event: EventDict) -> EventDict:
    """Lift the Temporal SDK's log extras (workflow/activity info) and o2c's business keys
    into top-level JSON fields an operator can filter on."""
    record = event.get("_record")
    if record is not None:
        for source in ("temporal_workflow", "temporal_activity"):
            info = getattr(record, source, None)
            if isinstance(info, dict):
                event["workflow_id"] = info.get("workflow_id")
                event["run_id"] = info.get("run_id") or info.get("workflow_run_id")
                event.setdefault("activity_type", info.get("activity_type"))
        business = getattr(record, "o2c", None)
        if isinstance(business, dict):
            event.update({k: v for k, v in business.items() if v})
    return {k: v for k, v in event.items() if v is not None}


def configure_logging(level: int = logging.INFO, stream: TextIO | None = None) -> None:
    """JSON lines on stdout (or `stream`): one object per event, Temporal and business keys on top."""
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.stdlib.add_log_level,
            _temporal_context,
        ],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.JSONRenderer(default=str),
        ],
    )
    # The IDs go into JSON fields, so keep them out of the message text.
    workflow.logger.workflow_info_on_message = False
    activity.logger.activity_info_on_message = False
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    structlog.configure(
        processors=[
            structlog.stdlib.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
    )


async def serve(settings: Settings, stop: asyncio.Event | None = None) -> None:
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    log = structlog.get_logger("worker")
    config = connect_config(
        address=settings.temporal_address,
        namespace=settings.temporal_namespace,
        api_key=settings.temporal_api_key,
        tls=settings.temporal_tls,
    )
    client = await connect(config)
    async with running_worker(client, settings):
        log.info("worker started", task_queue=settings.task_queue, temporal=config["target_host"])
        await stop.wait()
        log.info("worker draining")
    log.info("worker stopped")


def main() -> None:
    configure_logging()
    asyncio.run(serve(Settings.from_env()))


if __name__ == "__main__":
    main()
