"""The Stripe stand-in's wiring: authentication, injected faults, its routes, and
idempotent execution as Stripe documents it."""

from __future__ import annotations

import base64
import json
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import Response

from sandbox.core import ApiError, dumps, json_response, new_id, parse_nested, request_hash
from sandbox.routing import Handler, Routes, System
from sandbox.store import Store
from sandbox.stripe import SYSTEM
from sandbox.stripe.accounts import current_account, current_request
from sandbox.stripe.credit_notes import (
    create_credit_note,
    get_credit_note,
    list_credit_notes,
    preview_credit_note,
    preview_credit_note_lines,
    void_credit_note,
)
from sandbox.stripe.customers import (
    create_balance_transaction,
    create_customer,
    get_customer,
    list_balance_transactions,
    update_customer,
)
from sandbox.stripe.disputes import accept_dispute, get_dispute, list_disputes, update_dispute
from sandbox.stripe.errors import error, invalid
from sandbox.stripe.events import (
    create_webhook_endpoint,
    delete_webhook_endpoint,
    get_event,
    get_webhook_endpoint,
    list_events,
    list_webhook_endpoints,
)
from sandbox.stripe.invoices import (
    create_invoice,
    create_invoiceitem,
    delete_invoiceitem,
    finalize_invoice,
    get_invoice,
    get_invoiceitem,
    mark_uncollectible,
    pay_invoice,
    update_invoice,
    void_invoice,
)
from sandbox.stripe.listing import list_invoices
from sandbox.stripe.meter_events import create_meter_event, create_meter_event_adjustment
from sandbox.stripe.meters import (
    create_meter,
    deactivate_meter,
    get_meter,
    list_event_summaries,
    list_meters,
    reactivate_meter,
    update_meter,
)
from sandbox.stripe.payments import attach_payment_method, get_charge, get_payment_intent, get_payment_method
from sandbox.stripe.prices import create_price, get_price
from sandbox.stripe.refunds import create_refund, get_balance_transaction, get_refund
from sandbox.stripe.subscriptions import (
    cancel_subscription,
    create_subscription,
    get_subscription,
    list_subscriptions,
    update_subscription,
)
from sandbox.stripe.v2 import STREAM_PATH, V2_ROUTES, v2_error


def fault_response(status: int) -> Response:
    if status == 429:
        err = error(429, "invalid_request_error", "Too many requests hit the API too quickly.", code="rate_limit")
    else:
        err = error(status, "api_error", "Something went wrong on Stripe's end (injected fault).")
    return json_response(err.status, err.body, err.headers)


def authenticate(request: Request) -> Response | None:
    if request.scope["path"].endswith(STREAM_PATH):
        return None  # the meter event stream takes a session's token, checked by its handler
    header = request.headers.get("authorization", "")
    key = ""
    if header.lower().startswith("bearer "):
        key = header[7:].strip()
    elif header.lower().startswith("basic "):
        try:
            key = base64.b64decode(header[6:].strip()).decode().split(":", 1)[0]
        except Exception:
            key = ""
    if key.startswith("sk_test_"):
        return None
    shown = (key[:8] + "*" * 4) if key else ""
    message = (
        f"Invalid API Key provided: {shown}"
        if key
        else "You did not provide an API key. Provide it in the Authorization header."
    )
    err = error(401, "invalid_request_error", message)
    return json_response(401, err.body, err.headers)


ROUTES: Routes = [
    ("POST", "/v1/customers", create_customer),
    ("GET", "/v1/customers/{id}", get_customer),
    ("POST", "/v1/customers/{id}", update_customer),
    ("POST", "/v1/customers/{id}/balance_transactions", create_balance_transaction),
    ("GET", "/v1/customers/{id}/balance_transactions", list_balance_transactions),
    ("POST", "/v1/subscriptions", create_subscription),
    ("GET", "/v1/subscriptions", list_subscriptions),
    ("GET", "/v1/subscriptions/{id}", get_subscription),
    ("POST", "/v1/subscriptions/{id}", update_subscription),
    ("POST", "/v1/invoices", create_invoice),
    ("GET", "/v1/invoices", list_invoices),
    ("GET", "/v1/invoices/{id}", get_invoice),
    ("POST", "/v1/invoices/{id}", update_invoice),
    ("POST", "/v1/invoices/{id}/finalize", finalize_invoice),
    ("POST", "/v1/invoices/{id}/void", void_invoice),
    ("POST", "/v1/invoices/{id}/pay", pay_invoice),
    ("POST", "/v1/invoices/{id}/mark_uncollectible", mark_uncollectible),
    ("DELETE", "/v1/subscriptions/{id}", cancel_subscription),
    ("POST", "/v1/payment_methods/{id}/attach", attach_payment_method),
    ("GET", "/v1/payment_methods/{id}", get_payment_method),
    ("GET", "/v1/charges/{id}", get_charge),
    ("GET", "/v1/payment_intents/{id}", get_payment_intent),
    ("GET", "/v1/balance_transactions/{id}", get_balance_transaction),
    ("POST", "/v1/credit_notes", create_credit_note),
    ("GET", "/v1/credit_notes", list_credit_notes),
    ("GET", "/v1/credit_notes/preview", preview_credit_note),
    ("GET", "/v1/credit_notes/preview/lines", preview_credit_note_lines),
    ("GET", "/v1/credit_notes/{id}", get_credit_note),
    ("POST", "/v1/credit_notes/{id}/void", void_credit_note),
    ("POST", "/v1/refunds", create_refund),
    ("GET", "/v1/refunds/{id}", get_refund),
    ("GET", "/v1/disputes", list_disputes),
    ("GET", "/v1/disputes/{id}", get_dispute),
    ("POST", "/v1/disputes/{id}", update_dispute),
    ("POST", "/v1/disputes/{id}/close", accept_dispute),
    ("GET", "/v1/events", list_events),
    ("GET", "/v1/events/{id}", get_event),
    ("POST", "/v1/webhook_endpoints", create_webhook_endpoint),
    ("GET", "/v1/webhook_endpoints", list_webhook_endpoints),
    ("GET", "/v1/webhook_endpoints/{id}", get_webhook_endpoint),
    ("DELETE", "/v1/webhook_endpoints/{id}", delete_webhook_endpoint),
    ("POST", "/v1/invoiceitems", create_invoiceitem),
    ("GET", "/v1/invoiceitems/{id}", get_invoiceitem),
    ("DELETE", "/v1/invoiceitems/{id}", delete_invoiceitem),
    ("POST", "/v1/prices", create_price),
    ("GET", "/v1/prices/{id}", get_price),
    ("POST", "/v1/billing/meters", create_meter),
    ("GET", "/v1/billing/meters", list_meters),
    ("GET", "/v1/billing/meters/{id}", get_meter),
    ("POST", "/v1/billing/meters/{id}", update_meter),
    ("POST", "/v1/billing/meters/{id}/deactivate", deactivate_meter),
    ("POST", "/v1/billing/meters/{id}/reactivate", reactivate_meter),
    ("GET", "/v1/billing/meters/{id}/event_summaries", list_event_summaries),
    ("POST", "/v1/billing/meter_events", create_meter_event),
    ("POST", "/v1/billing/meter_event_adjustments", create_meter_event_adjustment),
    *V2_ROUTES,
]


def params_of(method: str, raw: bytes, query: str) -> dict[str, Any]:
    pairs = parse_qsl(query, keep_blank_values=True)
    if method == "POST" and raw:
        pairs += parse_qsl(raw.decode("utf-8"), keep_blank_values=True)
    return parse_nested(pairs)


def run_v2(
    store: Store, handler: Handler, method: str, request: Request, raw: bytes, path_params: dict[str, str]
) -> Response:
    """The v2 API's way: JSON bodies, one unit of work, errors as the handler raised them."""
    try:
        body = json.loads(raw, parse_float=Decimal) if raw else {}
    except (UnicodeDecodeError, ValueError):
        err = v2_error(400, "invalid_request", "The body is not valid JSON.")
        return json_response(err.status, err.body, err.headers)
    request_id = new_id("req")
    # v2 names the connected account a request acts for in `Stripe-Context` (v1: `Stripe-Account`).
    account = request.headers.get("stripe-context") or request.headers.get("stripe-account") or None
    account_token = current_account.set(account)
    try:
        with store.tx() as tx:
            status, out = handler(tx, request, body, **path_params)
        return json_response(status, out, {"Request-Id": request_id})
    except ApiError as exc:
        return json_response(exc.status, exc.body, exc.headers)
    finally:
        current_account.reset(account_token)


def run(
    store: Store, handler: Handler, method: str, path: str, request: Request, raw: bytes, path_params: dict[str, str]
) -> Response:
    if path.startswith("/v2/"):
        return run_v2(store, handler, method, request, raw, path_params)
    try:
        params = params_of(method, raw, request.url.query)
    except (UnicodeDecodeError, ValueError):
        err = invalid("Invalid request body: expected application/x-www-form-urlencoded")
        return json_response(err.status, err.body, err.headers)
    key = request.headers.get("idempotency-key") if method == "POST" else None
    if key is not None and len(key) > 255:
        err = invalid("Idempotency-Key must be at most 255 characters", code="idempotency_key_too_long")
        return json_response(err.status, err.body, err.headers)
    account = request.headers.get("stripe-account") or None
    if account is not None and (not account.startswith("acct_") or len(account) > 40):
        # Stripe's exact status and wording for an unknown account are unverified.
        err = error(
            403,
            "invalid_request_error",
            f"The provided key does not have access to account '{account}' (or that account does not exist).",
            code="account_invalid",
        )
        return json_response(err.status, err.body, err.headers)
    # Keys are scoped per account; a header value cannot hold a newline, so the scoped
    # form never collides with a platform key. Only read when the request has a key.
    stored_key = f"{account}\n{key}" if key and account else key or ""
    fingerprint = request_hash(method, path, params)
    try:
        with store.tx() as tx:
            if key:
                stored = tx.stored_response(SYSTEM, stored_key)
                if stored is not None:
                    if stored.request_hash != fingerprint:
                        raise error(
                            400,
                            "idempotency_error",
                            "Keys for idempotent requests can only be used with the same parameters they "
                            f"were first used with. Try using a key other than '{key}' if you meant to "
                            "execute a different request.",
                        )
                    headers = {**stored.headers, "Idempotent-Replayed": "true", "Idempotency-Key": key}
                    return Response(stored.body.encode(), stored.status, headers, media_type="application/json")
            request_id = new_id("req")
            token = current_request.set({"id": request_id, "idempotency_key": key})
            account_token = current_account.set(account)
            if account:
                tx.insert_fields[SYSTEM] = {"_stripe_account": account}
            try:
                status, body, *options = handler(tx, params, **path_params)
            finally:
                current_request.reset(token)
                current_account.reset(account_token)
            # A handler answers an error itself (402 card declines) when what it did
            # must be kept: the failed charge is real, and the answer is replayed. It may
            # ask for the answer not to be kept for the key (a failed finalisation).
            keep = not options or options[0].get("store", True)
            stored_headers = {"Stripe-Should-Retry": "false"} if status >= 400 else {}
            headers = {"Request-Id": request_id, **stored_headers}
            if key:
                headers["Idempotency-Key"] = key
                if keep:
                    tx.store_response(SYSTEM, stored_key, fingerprint, status, body, stored_headers)
        return Response(dumps(body).encode(), status, headers, media_type="application/json")
    except ApiError as exc:
        if key and exc.store:
            with store.tx() as tx:
                if tx.stored_response(SYSTEM, stored_key) is None:
                    tx.store_response(SYSTEM, stored_key, fingerprint, exc.status, exc.body, exc.headers)
        return json_response(exc.status, exc.body, exc.headers)
    except Exception as exc:
        err = error(500, "api_error", f"An unexpected error occurred: {type(exc).__name__}")
        if key:
            with store.tx() as tx:
                if tx.stored_response(SYSTEM, stored_key) is None:
                    tx.store_response(SYSTEM, stored_key, fingerprint, err.status, err.body, err.headers)
        return json_response(err.status, err.body, err.headers)


def not_found(message: str) -> Response:
    err = invalid(message, code="resource_missing")
    return json_response(404, err.body, err.headers)


STRIPE = System(SYSTEM, ROUTES, authenticate, fault_response, not_found, run, form_encoded=True)
