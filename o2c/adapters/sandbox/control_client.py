"""A small synchronous client for the sandbox's control plane, for tests and the demo."""

from __future__ import annotations

from typing import Any

import httpx


class SandboxControl:
    def __init__(self, url: str, timeout: float = 10.0):
        self.url = url.rstrip("/")
        self._http = httpx.Client(base_url=self.url + "/_sandbox", timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def _ok(self, response: httpx.Response) -> Any:
        response.raise_for_status()
        return response.json()

    # Base URLs of the emulated systems, as the adapters expect them.
    @property
    def stripe_url(self) -> str:
        return f"{self.url}/stripe/v1"

    @property
    def avatax_url(self) -> str:
        return f"{self.url}/avatax"

    @property
    def netsuite_url(self) -> str:
        return f"{self.url}/netsuite/services/rest"

    @property
    def entitlements_url(self) -> str:
        return f"{self.url}/entitlements/v1"

    @property
    def notifications_url(self) -> str:
        return f"{self.url}/notifications/v1"

    def reset(self) -> None:
        self._ok(self._http.post("/reset"))

    def seed(self, *, customer: dict[str, Any] | None = None, subscription: dict[str, Any] | None = None) -> dict:
        body = {k: v for k, v in (("customer", customer), ("subscription", subscription)) if v}
        return self._ok(self._http.post("/seed", json=body))

    def set_period(self, subsidiary: str, period: str, closed: bool = True) -> dict:
        return self._ok(self._http.post("/netsuite/periods",
                                        json={"subsidiary": subsidiary, "period": period, "closed": closed}))

    def fault(self, system: str, kind: str, **spec: Any) -> dict:
        return self._ok(self._http.post("/faults", json={"system": system, "kind": kind, **spec}))

    def faults(self) -> list[dict]:
        return self._ok(self._http.get("/faults"))["data"]

    def clear_faults(self) -> None:
        self._ok(self._http.delete("/faults"))

    def summary(self) -> dict:
        return self._ok(self._http.get("/summary"))

    def records(self, system: str, type_: str) -> list[dict]:
        return self._ok(self._http.get(f"/records/{system}/{type_}"))["data"]

    def count(self, system: str, type_: str, status: str | None = None) -> int:
        entry = self.summary().get(system, {}).get(type_, {"total": 0, "by_status": {}})
        return entry["total"] if status is None else entry["by_status"].get(status, 0)
