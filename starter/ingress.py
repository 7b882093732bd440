"""The ingress process: the Stripe webhook endpoint and the usage endpoint in one ASGI app,
served by `o2c ingress` (and `o2c webhooks`, its older name).

    POST /webhooks/stripe   Stripe-signed payment events (starter/webhooks.py), when
                            O2C_STRIPE_WEBHOOK_SECRET is set
    POST /v1/usage/events   usage batches from the product platform (starter/usage_ingress.py)
    GET  /healthz
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from adapters.storage.usage import UsageLedger
from settings import Settings
from starter.usage_ingress import USAGE_PATH, usage_routes
from starter.webhooks import STRIPE_PATH, log


def create_ingress_app(webhooks: Starlette | None, ledger: UsageLedger) -> Starlette:
    """One app with the webhook app's routes (when given) and the usage endpoint."""

    async def healthz(request: Request) -> JSONResponse:
        return JSONResponse({"ok": True})

    routes: list[BaseRoute] = [*usage_routes(ledger)]
    if webhooks is not None:
        routes += [r for r in webhooks.routes if getattr(r, "path", "") != "/healthz"]
    routes.append(Route("/healthz", healthz, methods=["GET"]))
    return Starlette(routes=routes)


async def serve_ingress(settings: Settings, *, host: str | None = None, port: int | None = None) -> None:
    """Serve both endpoints until SIGINT/SIGTERM. The webhook endpoint needs Temporal and the
    endpoint secret; without the secret only the usage endpoint is served."""
    import uvicorn

    from adapters.stripe import StripeBilling
    from adapters.temporal import connect
    from starter.client import temporal_config
    from starter.webhooks import create_webhook_app

    ledger = UsageLedger(settings.database_url, policy=settings.usage_policy)
    billing = None
    webhooks = None
    if settings.stripe_webhook_secret:
        client = await connect(temporal_config(settings))
        billing = StripeBilling(
            settings.stripe_base_url, settings.stripe_api_key, timeout=settings.http_timeout_seconds
        )
        webhooks = create_webhook_app(
            client,
            secret=settings.stripe_webhook_secret,
            task_queue=settings.task_queue,
            billing=billing,
            policies=settings.dunning_policies(),
        )
    config = uvicorn.Config(
        create_ingress_app(webhooks, ledger),
        host=host or settings.webhook_host,
        port=port or settings.webhook_port,
        log_config=None,
        access_log=False,
    )
    base = f"http://{config.host}:{config.port}"
    log.info("ingress_listening", usage=base + USAGE_PATH, webhooks=base + STRIPE_PATH if webhooks else None)
    try:
        await uvicorn.Server(config).serve()
    finally:
        if billing is not None:
            await billing.aclose()
        await ledger.aclose()
