"""Stripe's HTTP protocol, shared by the billing and metering adapters: form encoding, the
error table and its reading of Stripe's answers, and the call itself (API version, Connect
account, idempotency key, 404 as "none" on request)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Literal, overload
from urllib.parse import urlencode

import httpx

from adapters.errors import AdapterError, Answer, ErrorKind, ErrorTable, Rule
from adapters.http import HttpAdapter, read_json, send

SYSTEM = "stripe"
# The v2 meter event stream says its session token expired with this code: renew and resend.
SESSION_EXPIRED = "billing_meter_event_session_expired"
STRIPE_VERSION = "2024-06-20"


def encode_form(params: dict[str, Any]) -> list[tuple[str, str]]:
    """Stripe's form encoding: nested keys in brackets, arrays always indexed,
    booleans as true/false, None omitted."""
    pairs: list[tuple[str, str]] = []

    def walk(prefix: str, value: Any) -> None:
        if value is None:
            return
        if isinstance(value, dict):
            for key, sub in value.items():
                walk(f"{prefix}[{key}]" if prefix else str(key), sub)
        elif isinstance(value, (list, tuple)):
            for index, sub in enumerate(value):
                walk(f"{prefix}[{index}]", sub)
        elif isinstance(value, bool):
            pairs.append((prefix, "true" if value else "false"))
        elif isinstance(value, Decimal):
            pairs.append((prefix, format(value, "f")))
        else:
            pairs.append((prefix, str(value)))

    walk("", params)
    return pairs


# Stripe's refusals beyond the shared status rules. Stripe's own retry advice
# (`Stripe-Should-Retry`) outranks the status; without it, a 408 stays a refusal, as o2c
# has always read it from Stripe.
ERRORS = ErrorTable(
    SYSTEM,
    credentials=Rule(
        ErrorKind.BUG, "Stripe rejected o2c's credentials or permissions: {message}", code="authentication"
    ),
    refused=Rule(ErrorKind.BUSINESS, "Stripe refused the request: {message}"),
    codes={
        "idempotency_error": Rule(ErrorKind.BUG, "idempotency key reused with different parameters: {message}"),
        # Renewed and retried inside the adapter; should it reach a caller, it is "not now".
        SESSION_EXPIRED: Rule(ErrorKind.TRANSIENT, "the meter event session expired: {message}"),
    },
    business={
        "payment_declined": Rule(ErrorKind.BUSINESS, "The payment was declined: {message}"),
        # A draft Stripe cannot finalise for want of the customer's tax location: fix the
        # customer master, then retry.
        "failed_tax_calculation": Rule(
            ErrorKind.BUSINESS, "Billing could not finalise the invoice: {message}", fixable=True
        ),
    },
    transient_statuses=frozenset({409, 429}),
)
RETRY_ADVICE = {"true": True, "false": False}


def read_error(response: httpx.Response) -> Answer:
    """Stripe's error answer: `{"error": {type, code, decline_code, message}}`."""
    status = response.status_code
    body = read_json(response)
    err = body.get("error", {}) if isinstance(body, dict) else {}
    type_ = err.get("type", "")
    retry = RETRY_ADVICE.get(response.headers.get("stripe-should-retry", ""))
    # A 402 that Stripe does not advise repeating is a declined payment, known by its decline code.
    declined = status == 402 and retry is not True
    if type_ == "idempotency_error":
        code = type_  # the mismatch is told by the type; a code would only narrow it
    elif declined:
        code = err.get("decline_code") or err.get("code") or type_
    else:
        code = err.get("code") or err.get("decline_code") or type_
    return Answer(
        status,
        code,
        err.get("message") or f"HTTP {status}",
        retry=retry,
        reason="payment_declined" if declined else "",
    )


def classify(response: httpx.Response) -> AdapterError:
    """Turn a Stripe error answer into one of the three error kinds."""
    return ERRORS.classify(read_error(response))


class StripeApi(HttpAdapter):
    """One Stripe account's API (v1): what every Stripe adapter calls through."""

    @overload
    async def _call(
        self,
        method: str,
        path: str,
        params: dict[str, Any] | None = None,
        *,
        idempotency_key: str | None = None,
        not_found_none: Literal[False] = False,
        stripe_account: str = "",
    ) -> dict[str, Any]: ...

    @overload
    async def _call(
        self,
        method: str,
        path: str,
        params: dict[str, Any] | None = None,
        *,
        idempotency_key: str | None = None,
        not_found_none: bool,
        stripe_account: str = "",
    ) -> dict[str, Any] | None: ...

    async def _call(
        self,
        method: str,
        path: str,
        params: dict[str, Any] | None = None,
        *,
        idempotency_key: str | None = None,
        not_found_none: bool = False,
        stripe_account: str = "",
    ) -> dict[str, Any] | None:
        """Stripe's JSON object; None for a 404 only when asked with `not_found_none`."""
        headers = {}
        if stripe_account:
            # Stripe Connect: act for a connected account (another legal entity's billing).
            headers["Stripe-Account"] = stripe_account
        kwargs: dict[str, Any] = {}
        if method == "GET":
            kwargs["params"] = encode_form(params or {})
        else:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            kwargs["content"] = urlencode(encode_form(params or {})).encode()
            if idempotency_key:
                headers["Idempotency-Key"] = idempotency_key
        response = await send(self._client, SYSTEM, method, path, headers=headers, **kwargs)
        if response.status_code == 404 and not_found_none:
            return None
        if response.status_code >= 400:
            raise classify(response)
        return read_json(response)
