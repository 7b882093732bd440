"""The ingress process: the Stripe webhook endpoint and the usage endpoint in one ASGI app,
served by `o2c ingress` (and `o2c webhooks`, its older name).

    POST /webhooks/stripe   Stripe-signed payment events (starter/webhooks.py), when
                            O2C_STRIPE_WEBHOOK_SECRET is set
    POST /v1/usage/events   usage batches from the product platform (starter/usage_ingress.py)
    POST /v1/cash/statements  bank statement files (starter/cash_ingress.py), with the usage
                            endpoint's API keys; served when Temporal is reachable at start
    GET  /healthz
"""

from __future__ import annotations

from collections.abc import Sequence

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from adapters.storage.usage import UsageLedger
from settings import Settings
from starter.cash_ingress import STATEMENTS_PATH
from starter.usage_ingress import USAGE_PATH, usage_routes
from starter.webhooks import STRIPE_PATH, log


def create_ingress_app(webhooks: Starlette | None, ledger: UsageLedger, cash: Sequence[BaseRoute] = ()) -> Starlette:
    """One app with the webhook app's routes (when given), the usage endpoint and the bank
    statement endpoint (when given: see cash_ingress.cash_routes)."""

    async def healthz(request: Request) -> JSONResponse:
        return JSONResponse({"ok": True})

    routes: list[BaseRoute] = [*usage_routes(ledger), *cash]
    if webhooks is not None:
        routes += [r for r in webhooks.routes if getattr(r, "path", "") != "/healthz"]
    routes.append(Route("/healthz", healthz, methods=["GET"]))
    return Starlette(routes=routes)


async def serve_ingress(settings: Settings, *, host: str | None = None, port: int | None = None) -> None:
    """Serve the endpoints until SIGINT/SIGTERM. The webhook endpoint needs Temporal and the
    endpoint secret; without the secret it is not served. The statement endpoint needs
    Temporal: when it cannot be reached at start, only the usage endpoint is served."""
    import uvicorn
    from temporalio.client import Client

    from adapters.storage.cash import SqlCashStore
    from adapters.stripe import StripeBilling
    from adapters.temporal import connect
    from starter.cash_ingress import cash_routes
    from starter.client import temporal_config
    from starter.webhooks import create_webhook_app

    ledger = UsageLedger(settings.database_url, policy=settings.usage_policy)
    store = SqlCashStore(settings.database_url)
    billing = None
    webhooks = None
    client: Client | None = None
    try:
        client = await connect(temporal_config(settings))
    except RuntimeError as error:  # the SDK's way of saying the connection failed
        if settings.stripe_webhook_secret:
            raise
        log.warning("ingress_without_temporal", reason=str(error), serves=USAGE_PATH)
    if settings.stripe_webhook_secret and client is not None:
        billing = StripeBilling(
            settings.stripe_base_url, settings.stripe_api_key, timeout=settings.http_timeout_seconds
        )
        webhooks = create_webhook_app(
            client,
            secret=settings.stripe_webhook_secret,
            task_queue=settings.task_queue,
            billing=billing,
            policies=settings.dunning_policies(),
            approvals=settings.approval_policy,
            dispute_policy=settings.dispute_policy,
            cash=store,
            legal_entities=settings.legal_entities,
        )
    statements = (
        cash_routes(client, store, ledger, legal_entities=settings.legal_entities, task_queue=settings.task_queue)
        if client is not None
        else []
    )
    config = uvicorn.Config(
        create_ingress_app(webhooks, ledger, statements),
        host=host or settings.webhook_host,
        port=port or settings.webhook_port,
        log_config=None,
        access_log=False,
    )
    base = f"http://{config.host}:{config.port}"
    log.info(
        "ingress_listening",
        usage=base + USAGE_PATH,
        webhooks=base + STRIPE_PATH if webhooks else None,
        statements=base + STATEMENTS_PATH if statements else None,
    )
    try:
        await uvicorn.Server(config).serve()
    finally:
        if billing is not None:
            await billing.aclose()
        await ledger.aclose()
        close = getattr(store, "aclose", None)
        if close is not None:
            await close()
