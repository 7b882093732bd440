"""Stripe webhook delivery: signed POSTs of stored events to registered endpoints.

As Stripe does it: the body is the event's JSON, the header is
`Stripe-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<body>" with the endpoint's
whsec_ secret>`, delivery is at least once and not ordered. Deliveries run in a small
thread pool after the API call that caused the event has committed and answered, so
a receiver can read back what the event names. A delivery is retried a few times with
a short backoff on connection errors and non-2xx answers (Stripe retries for days; the
sandbox compresses that). Every attempt is recorded as a `stripe/webhook_delivery`
document (`GET /_sandbox/stripe/deliveries`).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import httpx

from sandbox.core import dumps, new_id

if TYPE_CHECKING:
    from sandbox.store import Store

SYSTEM = "stripe"
BACKOFF_SECONDS = (0.1, 0.3, 0.8, 1.5)  # after attempts 1..4; attempt 5 is the last


def sign(secret: str, body: bytes, timestamp: int) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def matches(endpoint: dict[str, Any], event_type: str) -> bool:
    if endpoint.get("status", "enabled") != "enabled":
        return False
    enabled = endpoint.get("enabled_events") or []
    return "*" in enabled or event_type in enabled


class WebhookDispatcher:
    def __init__(
        self, store: Store, *, workers: int = 4, timeout: float = 5.0, backoff: tuple[float, ...] = BACKOFF_SECONDS
    ):
        self.store = store
        self.timeout = timeout
        self.backoff = backoff
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="o2c-sandbox-webhook")
        self._closed = False

    def close(self) -> None:
        self._closed = True
        self._pool.shutdown(wait=False, cancel_futures=True)

    def schedule(self, event: dict[str, Any], endpoints: list[dict[str, Any]], *, reason: str = "event") -> None:
        if self._closed:
            return
        for endpoint in endpoints:
            try:
                self._pool.submit(self._deliver, event, endpoint, reason)
            except RuntimeError:  # shut down meanwhile
                return

    def _record(self, delivery: dict[str, Any]) -> None:
        try:
            with self.store.tx() as tx:
                tx.put(SYSTEM, "webhook_delivery", delivery["id"], delivery)
        except Exception:
            pass

    def _deliver(self, event: dict[str, Any], endpoint: dict[str, Any], reason: str) -> None:
        # Let the API answer that caused the event reach its caller first.
        time.sleep(0.05)
        body = dumps(event).encode()
        attempts = 1 + len(self.backoff)
        with httpx.Client(timeout=self.timeout) as client:
            for attempt in range(1, attempts + 1):
                if self._closed:
                    return
                timestamp = int(time.time())
                delivery: dict[str, Any] = {
                    "id": new_id("whdel"),
                    "event": event["id"],
                    "type": event["type"],
                    "endpoint": endpoint["id"],
                    "url": endpoint["url"],
                    "attempt": attempt,
                    "reason": reason,
                    "status": None,
                    "error": None,
                    "created": time.time(),
                }
                try:
                    response = client.post(
                        endpoint["url"],
                        content=body,
                        headers={
                            "Content-Type": "application/json; charset=utf-8",
                            "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
                            "Stripe-Signature": sign(endpoint["secret"], body, timestamp),
                        },
                    )
                    delivery["status"] = response.status_code
                    ok = 200 <= response.status_code < 300
                    if not ok:
                        delivery["error"] = response.text[:300]
                except httpx.HTTPError as exc:
                    delivery["error"] = f"{type(exc).__name__}: {exc}"
                    ok = False
                delivery["succeeded"] = ok
                self._record(delivery)
                if ok or attempt == attempts:
                    return
                time.sleep(self.backoff[attempt - 1])
