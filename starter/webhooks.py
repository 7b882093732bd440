"""The webhook ingress: Stripe-signed payment events become dunning workflows or signals,
a usage invoice's draft (`invoice.created`) or failed finalisation
(`invoice.finalization_failed`) a signal to its subscription period's usage release, and a
card payment (`charge.succeeded`, `invoice.paid`: the same receipt, keyed by the charge) a
receipt in o2c's cash store applied by `cash-<receipt id>`, when the app is given the store;
with the store, an invoice finalised, voided, marked uncollectible or paid without a card
charge is kept (or lowered) as an open item there, for cash application to match.
`invoice.paid` still reaches the invoice's dunning as before. Every `charge.dispute.*`
event starts or feeds `dispute-<dispute id>` (starter.credits.start_dispute), and created and
closed still pause and resume the invoice's dunning (see `dunning_event_of_dispute`).

`POST /webhooks/stripe` reads the raw body (at most `max_body_bytes`), verifies the
`Stripe-Signature` against those exact bytes, maps the event and routes it with
`deliver_payment_event`. The answers tell Stripe what to do next:

- 200 `{"received": true, "workflows": [...]}`: done (also for event types o2c ignores,
  for events about a dunning that has already ended, and for a usage draft whose release
  has not started yet or has ended: the release reads the draft itself), so Stripe stops.
- 400 `{"received": false, "error": ..., "reason": ...}`: bad or stale signature, a body
  that is not a Stripe event. Nothing was touched. Stripe's redeliveries will fail the
  same way, which shows up on its dashboard as a failing endpoint.
- 413: body over the limit, refused before verification.
- 503: Temporal (or billing, for a dispute's charge lookup) is unreachable; nothing may
  have happened, so Stripe must redeliver. Redelivery is safe: events land on
  `dunning-<invoice>` by signal-with-start, and the workflow ignores event IDs it has seen.

The ingress is stateless (no event-ID store of its own), so any number of replicas can
run behind one Stripe endpoint.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Callable, Coroutine
from typing import Any, TextIO

import structlog
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from temporalio.client import Client
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from adapters.errors import AdapterError, BusinessError, IntegrationBug, TransientError
from adapters.ports import BillingPort, CashStorePort
from adapters.stripe_webhooks import (
    DEFAULT_TOLERANCE_SECONDS,
    DISPUTE_TYPES,
    OPEN_ITEM_TYPES,
    RECEIPT_TYPES,
    USAGE_INVOICE_TYPES,
    EventError,
    SignatureError,
    StripeEvent,
    parse_event,
    to_dispute_event,
    to_open_item,
    to_payment_event,
    to_receipt,
    to_usage_invoice_event,
    verify_signature,
)
from canonical.approval import ApprovalPolicy
from canonical.cash.models import OpenItem, Receipt
from canonical.credits import DisputeEvent
from canonical.dispute import DisputePolicy
from canonical.dunning import DunningPolicies
from canonical.models import DEFAULT_ENTITIES, LegalEntity, PaymentEvent, PaymentEventKind
from canonical.requests import id_problem
from settings import Settings
from starter.cash import take_receipt
from starter.client import deliver_payment_event, deliver_usage_event
from starter.credits import start_dispute
from workflows.dispute import dispute_workflow_id

log = structlog.get_logger("o2c.webhooks")

STRIPE_PATH = "/webhooks/stripe"
MAX_BODY_BYTES = 256 * 1024
# Temporal answers in milliseconds when healthy; past this, tell Stripe to come back
# rather than hold its connection (Stripe gives up on slow endpoints and redelivers).
DELIVERY_TIMEOUT_SECONDS = 10.0
# Temporal statuses that mean "not now" rather than "never".
UNAVAILABLE = frozenset(
    {
        RPCStatusCode.UNAVAILABLE,
        RPCStatusCode.DEADLINE_EXCEEDED,
        RPCStatusCode.RESOURCE_EXHAUSTED,
        RPCStatusCode.ABORTED,
        RPCStatusCode.CANCELLED,
    }
)


class BodyTooLarge(Exception):
    pass


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise BodyTooLarge
    return bytes(body)


DISPUTE_KINDS = frozenset({PaymentEventKind.DISPUTE_OPENED, PaymentEventKind.DISPUTE_CLOSED})


def dunning_event_of_dispute(event: PaymentEvent) -> PaymentEvent:
    """A dispute's pause or resume for the dunning, keyed by the dispute, not by Stripe's event.

    The dunning hears of a dispute twice: from here, as soon as Stripe reports it, and from
    `dispute-<id>`, which pauses and resumes it too once it has booked the withdrawal (or the
    outcome) (workflows/dispute.py, `_tell_dunning`). Both name the event
    `dispute-<id>-<kind>`, so the dunning (which ignores an event ID it has seen) acts on
    whichever comes first and ignores the other. Keyed apart, the workflow's pause could come
    after the ingress's resume (its withdrawal still posting when the network closed the
    dispute) and pause a dunning whose dispute is over, moving its calendar by the time it
    waits for the workflow's resume."""
    if event.kind not in DISPUTE_KINDS or not event.dispute_id:
        return event
    return event.model_copy(update={"event_id": f"{dispute_workflow_id(event.dispute_id)}-{event.kind.value}"})


def _key_problem(**ids: str) -> str:
    """Why an id an event names cannot be part of a workflow id (dunning-<invoice>,
    dispute-<dispute>, usage-<subscription>-<period>); empty when each can."""
    for what, value in ids.items():
        wrong = id_problem(value) if value else ""
        if wrong:
            return f"the event's {what} id {wrong}"
    return ""


def _refused(error: str, reason: str, status: int = 400) -> JSONResponse:
    return JSONResponse({"received": False, "error": error, "reason": reason}, status_code=status)


def create_webhook_app(
    client: Client,
    *,
    secret: str,
    task_queue: str = "o2c",
    billing: BillingPort | None = None,
    policies: DunningPolicies | None = None,
    max_body_bytes: int = MAX_BODY_BYTES,
    tolerance: int = DEFAULT_TOLERANCE_SECONDS,
    delivery_timeout: float = DELIVERY_TIMEOUT_SECONDS,
    clock: Callable[[], float] = time.time,
    cash: CashStorePort | None = None,
    legal_entities: list[LegalEntity] | None = None,
    dispute_policy: DisputePolicy | None = None,
    approvals: ApprovalPolicy | None = None,
) -> Starlette:
    """The ASGI app. `billing` resolves a disputed charge to its invoice (without it, a
    dispute's workflow starts with no invoice and no dunning hears of it); `policies` go to
    new dunning workflows, with `approvals` (who approves their restrictions and write-offs,
    and how long those wait), `dispute_policy` to new dispute workflows (unset, the settings');
    `cash` keeps card payments as receipts (without it they only feed dunnings), in the
    legal entity of `legal_entities` that bills from the event's Stripe account."""
    entities = legal_entities or DEFAULT_ENTITIES
    if not secret:
        raise ValueError("a Stripe webhook endpoint secret (whsec_...) is required")
    lookup = billing.invoice_of_charge if billing is not None else None

    async def stripe_webhook(request: Request) -> JSONResponse:
        try:
            payload = await _read_body(request, max_body_bytes)
        except BodyTooLarge:
            log.warning("stripe_webhook", outcome="too_large", limit=max_body_bytes)
            return _refused("too_large", f"body exceeds {max_body_bytes} bytes", 413)
        except ClientDisconnect:
            return _refused("disconnected", "client went away", 400)
        try:
            verify_signature(payload, request.headers.get("stripe-signature"), secret, now=clock(), tolerance=tolerance)
        except SignatureError as bad:
            log.warning("stripe_webhook", outcome="bad_signature", reason=bad.reason)
            return _refused("invalid_signature", bad.reason)
        try:
            event = parse_event(payload)
        except EventError as bad:
            log.warning("stripe_webhook", outcome="bad_event", reason=bad.reason)
            return _refused("invalid_event", bad.reason)
        fields: dict[str, Any] = {"event_id": event.id, "event_type": event.type}
        if event.type in USAGE_INVOICE_TYPES:
            return await usage_invoice(event, fields)
        receipt: Receipt | None = None
        dispute: DisputeEvent | None = None
        open_item: OpenItem | None = None
        try:
            if cash is not None and event.type in RECEIPT_TYPES:
                receipt = to_receipt(event, entities)
            if cash is not None and event.type in OPEN_ITEM_TYPES and receipt is None:
                # A card payment's receipt lowers its invoice's balance when the cash
                # application applies it; lowered here first, the receipt would find the
                # invoice settled and wait for a person as a duplicate settlement.
                open_item = to_open_item(event, entities)
            if event.type in DISPUTE_TYPES:
                dispute = await with_customer(await to_dispute_event(event, lookup))
            payment_event = await to_payment_event(event, lookup)
            if payment_event is not None:
                payment_event = dunning_event_of_dispute(payment_event)
        except EventError as bad:
            log.error("stripe_webhook", outcome="unmappable", reason=bad.reason, **fields)
            return _refused("invalid_event", bad.reason)
        except TransientError as error:
            log.warning("stripe_webhook", outcome="billing_unavailable", reason=str(error), **fields)
            return _refused("billing_unavailable", "billing is unreachable; redeliver later", 503)
        except AdapterError as error:
            log.error("stripe_webhook", outcome="billing_error", reason=str(error), **fields)
            return _refused("billing_error", str(error), 502)
        wrong = _key_problem(
            invoice=payment_event.invoice_id if payment_event else "",
            dispute=dispute.dispute.dispute_id if dispute else "",
        )
        if wrong:
            log.error("stripe_webhook", outcome="unsafe_id", reason=wrong, **fields)
            return _refused("invalid_event", wrong)
        if payment_event is None and receipt is None and dispute is None and open_item is None:
            log.info("stripe_webhook", outcome="ignored", **fields)
            return JSONResponse({"received": True, "workflows": []})
        if payment_event is not None:
            fields.update(
                kind=payment_event.kind.value,
                invoice_id=payment_event.invoice_id or None,
                account_id=payment_event.account_id or None,
            )
        if receipt is not None:
            fields.update(receipt_id=receipt.receipt_id)
        if dispute is not None:
            fields.update(dispute_id=dispute.dispute.dispute_id, invoice_id=dispute.dispute.invoice_id or None)
        if open_item is not None:
            fields.update(open_item=open_item.invoice_id, balance=str(open_item.balance))
        return await deliver(payment(receipt, payment_event, dispute, open_item), fields)

    async def with_customer(dispute: DisputeEvent | None) -> DisputeEvent | None:
        """A dispute names its charge, not its customer (Stripe expands neither in a webhook):
        the customer is that of the invoice the charge paid, read from billing."""
        if dispute is None or dispute.dispute.customer or not dispute.dispute.invoice_id or billing is None:
            return dispute
        try:
            invoice = await billing.get_invoice(dispute.dispute.invoice_id)
        except (BusinessError, IntegrationBug):
            return dispute  # billing will not say: the dispute's workflow starts without one
        if invoice is None:
            return dispute
        return dispute.model_copy(
            update={"dispute": dispute.dispute.model_copy(update={"customer": invoice.account_id})}
        )

    async def payment(
        receipt: Receipt | None,
        payment_event: PaymentEvent | None,
        dispute: DisputeEvent | None = None,
        open_item: OpenItem | None = None,
    ) -> list[str]:
        """The open item and the receipt kept (the receipt applied) first, the dispute's
        workflow started or fed next (a redelivery finds each again), then the dunning fed."""
        workflows: list[str] = []
        if open_item is not None and cash is not None:
            await cash.upsert_open_items([open_item])
        if dispute is not None:
            started = await start_dispute(client, dispute, policy=dispute_policy, task_queue=task_queue)
            if started is not None:  # None: that dispute's workflow has ended; a late event changes nothing
                workflows.append(started)
        if receipt is not None and cash is not None:
            applying = await take_receipt(
                client, receipt, store=cash, legal_entities=entities, task_queue=task_queue, billing=billing
            )
            workflows += [applying] if applying else []
        if payment_event is not None:
            workflows += await deliver_payment_event(
                client, payment_event, task_queue=task_queue, policies=policies, approvals=approvals
            )
        return workflows

    async def usage_invoice(event: StripeEvent, fields: dict[str, Any]) -> JSONResponse:
        try:
            usage_event = to_usage_invoice_event(event)
        except EventError as bad:
            log.error("stripe_webhook", outcome="unmappable", reason=bad.reason, **fields)
            return _refused("invalid_event", bad.reason)
        if usage_event is None:  # not a metered subscription's invoice
            log.info("stripe_webhook", outcome="ignored", **fields)
            return JSONResponse({"received": True, "workflows": []})
        wrong = _key_problem(subscription=usage_event.subscription_id)
        if wrong:
            log.error("stripe_webhook", outcome="unsafe_id", reason=wrong, **fields)
            return _refused("invalid_event", wrong)
        fields.update(
            invoice_id=usage_event.invoice_id, subscription_id=usage_event.subscription_id, period=usage_event.period
        )
        return await deliver(deliver_usage_event(client, usage_event), fields)

    async def deliver(delivery: Coroutine[Any, Any, list[str]], fields: dict[str, Any]) -> JSONResponse:
        try:
            workflows = await asyncio.wait_for(delivery, timeout=delivery_timeout)
        except WorkflowAlreadyStartedError:
            # The invoice's dunning has already ended (in cash, cancellation or write-off):
            # a late or redelivered failure changes nothing.
            log.info("stripe_webhook", outcome="dunning_closed", **fields)
            return JSONResponse({"received": True, "workflows": []})
        except TransientError as error:  # o2c's cash store
            log.error("stripe_webhook", outcome="store_unavailable", reason=str(error), **fields)
            return _refused("store_unavailable", "o2c's database is unavailable; redeliver later", 503)
        except TimeoutError:
            log.error("stripe_webhook", outcome="temporal_unavailable", reason="timeout", **fields)
            return _refused("temporal_unavailable", "Temporal did not answer in time; redeliver later", 503)
        except RPCError as error:
            if error.status in UNAVAILABLE:
                log.error("stripe_webhook", outcome="temporal_unavailable", reason=error.message, **fields)
                return _refused("temporal_unavailable", "Temporal is unreachable; redeliver later", 503)
            log.error(
                "stripe_webhook",
                outcome="temporal_error",
                reason=error.message,
                status=error.status.name if error.status else None,
                **fields,
            )
            return _refused("temporal_error", error.message, 500)
        except RuntimeError as error:
            # A client that has lost (or never had) its connection fails in the SDK's
            # bridge with "Failed client connect: ..." rather than an RPCError.
            if "client connect" not in str(error):
                raise
            log.error("stripe_webhook", outcome="temporal_unavailable", reason=str(error), **fields)
            return _refused("temporal_unavailable", "Temporal is unreachable; redeliver later", 503)
        log.info("stripe_webhook", outcome="delivered", workflows=workflows, **fields)
        return JSONResponse({"received": True, "workflows": workflows})

    async def healthz(request: Request) -> JSONResponse:
        return JSONResponse({"ok": True})

    return Starlette(
        routes=[
            Route(STRIPE_PATH, stripe_webhook, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
        ]
    )


def configure_logging(stream: TextIO | None = None) -> None:
    """Plain lines on stdout (or `stream`) for the ingress's own process: time, level, logger,
    then the event and its fields."""
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)
    structlog.configure(
        processors=[structlog.processors.KeyValueRenderer(key_order=["event"])],
        logger_factory=structlog.stdlib.LoggerFactory(),
    )


async def serve_webhooks(
    settings: Settings, *, host: str | None = None, port: int | None = None, policies: DunningPolicies | None = None
) -> None:
    """Serve the ingress until SIGINT/SIGTERM, with a connected Temporal client and the
    Stripe billing adapter from `settings`."""
    import uvicorn

    from adapters.stripe import StripeBilling
    from adapters.temporal import connect
    from starter.client import temporal_config

    if not settings.stripe_webhook_secret:
        raise ValueError("set O2C_STRIPE_WEBHOOK_SECRET to the endpoint's signing secret (whsec_...)")
    client = await connect(temporal_config(settings))
    billing = StripeBilling(settings.stripe_base_url, settings.stripe_api_key, timeout=settings.http_timeout_seconds)
    app = create_webhook_app(
        client,
        secret=settings.stripe_webhook_secret,
        task_queue=settings.task_queue,
        billing=billing,
        policies=policies or settings.dunning_policies(),
        approvals=settings.approval_policy,
        dispute_policy=settings.dispute_policy,
        legal_entities=settings.legal_entities,
    )
    config = uvicorn.Config(
        app, host=host or settings.webhook_host, port=port or settings.webhook_port, log_config=None, access_log=False
    )
    log.info(
        "webhooks_listening", url=f"http://{config.host}:{config.port}{STRIPE_PATH}", task_queue=settings.task_queue
    )
    try:
        await uvicorn.Server(config).serve()
    finally:
        await billing.aclose()
