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

    def _ok(self, response: httpx.Response) -> dict[str, Any]:
        # Every control-plane answer is a JSON object.
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body

    def _data(self, response: httpx.Response) -> list[dict[str, Any]]:
        """The `data` list of a listing answer."""
        rows: list[dict[str, Any]] = self._ok(response)["data"]
        return rows

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
    def sap_url(self) -> str:
        """The SAP tenant's API host; the services' paths start with /sap/bc/... and /sap/opu/..."""
        return f"{self.url}/sap"

    @property
    def entitlements_url(self) -> str:
        return f"{self.url}/entitlements/v1"

    @property
    def notifications_url(self) -> str:
        return f"{self.url}/notifications/v1"

    @property
    def bank_url(self) -> str:
        return f"{self.url}/bank/v1"

    def reset(self) -> None:
        self._ok(self._http.post("/reset"))

    def seed(
        self,
        *,
        customer: dict[str, Any] | None = None,
        subscription: dict[str, Any] | None = None,
        meters: list[dict[str, Any]] | None = None,
        stripe_account: str = "",
    ) -> dict[str, Any]:
        """Seed meters, a customer and a subscription (see control/seeding.py for the body), in
        the platform's account or the connected `stripe_account`."""
        body = {
            k: v
            for k, v in (
                ("meters", meters),
                ("customer", customer),
                ("subscription", subscription),
                ("stripe_account", stripe_account),
            )
            if v
        }
        return self._ok(self._http.post("/seed", json=body))

    def seed_period(self, *, timeout: float = 600.0, **spec: Any) -> dict[str, Any]:
        """Seed a reconciliation period in bulk (see period_seed.py for the body and the
        answer): tag, period, invoices, currency, stripe_account, company_code,
        subsidiary, tax_rate, paid_every, breaks, revenue, erp ("netsuite" or "sap": the
        subsidiary is then an SAP company code), logical_system. Large seeds take a while,
        hence the long timeout."""
        return self._ok(self._http.post("/seed/period", json=spec, timeout=timeout))

    def set_period(self, subsidiary: str, period: str, closed: bool = True) -> dict[str, Any]:
        return self._ok(
            self._http.post("/netsuite/periods", json={"subsidiary": subsidiary, "period": period, "closed": closed})
        )

    def sap_company_code(self, company_code: str, currency: str, name: str = "") -> dict[str, Any]:
        body = {"company_code": company_code, "currency": currency, "name": name}
        return self._ok(self._http.post("/sap/company_codes", json=body))

    def sap_gl_account(self, gl_account: str) -> dict[str, Any]:
        return self._ok(self._http.post("/sap/gl_accounts", json={"gl_account": gl_account}))

    def sap_set_period(self, company_code: str, period: str, closed: bool = True) -> dict[str, Any]:
        body = {"company_code": company_code, "period": period, "closed": closed}
        return self._ok(self._http.post("/sap/periods", json=body))

    def sap_messages(self) -> list[dict[str, Any]]:
        """The asynchronous bulk service's outcomes (SAP's Message Dashboard)."""
        return self._data(self._http.get("/sap/messages"))

    def fault(self, system: str, kind: str, **spec: Any) -> dict[str, Any]:
        return self._ok(self._http.post("/faults", json={"system": system, "kind": kind, **spec}))

    def faults(self) -> list[dict[str, Any]]:
        return self._data(self._http.get("/faults"))

    def clear_faults(self) -> None:
        self._ok(self._http.delete("/faults"))

    def summary(self) -> dict[str, Any]:
        return self._ok(self._http.get("/summary"))

    def records(self, system: str, type_: str) -> list[dict[str, Any]]:
        return self._data(self._http.get(f"/records/{system}/{type_}"))

    def count(self, system: str, type_: str, status: str | None = None) -> int:
        entry = self.summary().get(system, {}).get(type_, {"total": 0, "by_status": {}})
        total: int = entry["total"] if status is None else entry["by_status"].get(status, 0)
        return total

    # -- dunning: the CRM stand-in and Stripe's payment side ---------------------------------

    @property
    def salesforce_url(self) -> str:
        return f"{self.url}/salesforce/services/data/v60.0"

    def renewal_charge(
        self, subscription: str, amount: int | None = None, description: str | None = None
    ) -> dict[str, Any]:
        """A recurring charge as Stripe makes it: invoice, finalize, charge the default
        payment method. Returns the invoice after the attempt."""
        body: dict[str, Any] = {"subscription": subscription}
        if amount is not None:
            body["amount"] = amount
        if description:
            body["description"] = description
        return self._ok(self._http.post("/stripe/renewal_charge", json=body))

    def partial_payment(self, invoice: str, amount: int) -> dict[str, Any]:
        return self._ok(self._http.post(f"/stripe/invoices/{invoice}/partial_payment", json={"amount": amount}))

    def pay_out_of_band(self, invoice: str) -> dict[str, Any]:
        return self._ok(self._http.post(f"/stripe/invoices/{invoice}/pay_out_of_band", json={}))

    def open_dispute(self, charge: str, **options: Any) -> dict[str, Any]:
        """The cardholder disputes `charge`; options: reason, amount, evidence_due_days, fee."""
        return self._ok(self._http.post("/stripe/disputes", json={"charge": charge, **options}))

    def close_dispute(self, dispute: str, status: str) -> dict[str, Any]:
        return self._ok(self._http.post(f"/stripe/disputes/{dispute}/close", json={"status": status}))

    def redeliver(self, event: str, times: int = 1) -> dict[str, Any]:
        return self._ok(self._http.post(f"/stripe/events/{event}/redeliver", json={"times": times}))

    def deliveries(self, **filters: str) -> list[dict[str, Any]]:
        return self._data(self._http.get("/stripe/deliveries", params=filters))

    # -- usage billing: Stripe's meters, period ends and the sandbox's clock ------------------

    @property
    def stripe_v2_url(self) -> str:
        """Stripe's v2 API (meter event session and stream, v2 events) on the sandbox."""
        return f"{self.url}/stripe/v2"

    def clock(self) -> dict[str, Any]:
        """The sandbox's clock: `now` (unix seconds) and its `offset` from the real time."""
        return self._ok(self._http.get("/clock"))

    def advance_clock(self, seconds: int) -> dict[str, Any]:
        """Let `seconds` pass on the sandbox's clock; drafts whose grace is over finalise.
        Returns `now`, `offset` and the ids `finalized`."""
        return self._ok(self._http.post("/clock/advance", json={"seconds": seconds}))

    def end_period(self, subscription: str) -> dict[str, Any]:
        """End a metered subscription's current period as Stripe does: the draft invoice
        from the meters (`invoice.created`) and the next period. Returns `invoice` and
        `subscription`."""
        return self._ok(self._http.post(f"/stripe/subscriptions/{subscription}/end_period", json={}))

    def fail_finalization(
        self, invoice: str, *, code: str | None = None, message: str | None = None, times: int | None = None
    ) -> dict[str, Any]:
        """Make the invoice's finalisation fail (`times` times, or until cleared)."""
        body: dict[str, Any] = {"code": code, "message": message, "times": times}
        return self._ok(
            self._http.post(
                f"/stripe/invoices/{invoice}/finalization_failure",
                json={k: v for k, v in body.items() if v is not None},
            )
        )

    def clear_finalization_failure(self, invoice: str) -> dict[str, Any]:
        return self._ok(self._http.post(f"/stripe/invoices/{invoice}/finalization_failure", json={"clear": True}))
