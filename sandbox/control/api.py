"""The control plane's routes under `/_sandbox`: no authentication and no injected faults.
Bodies are JSON objects; a malformed request answers 400 `{"error": ...}`."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route, Router
from starlette.types import Receive, Scope, Send

from sandbox import clock
from sandbox.control import BadRequest, period_seed, seeding
from sandbox.control.faults import Faults
from sandbox.control.summary import summary
from sandbox.core import ApiError, json_response
from sandbox.netsuite.journal_entries import period_key
from sandbox.routing import ExactRoute, decoded_path
from sandbox.sap import master as sap_master
from sandbox.store import Store
from sandbox.stripe import world
from sandbox.stripe.collection import pay_out_of_band
from sandbox.stripe.usage_invoices import end_period, fail_finalization, finalize_due

# An action answers a JSON body (status 200) or a whole response.
Action = Callable[..., Any]


def _route(method: str, path: str, action: Action) -> Route:
    async def endpoint(request: Request) -> Response:
        try:
            body: dict[str, Any] = {}
            if request.method in ("POST", "PUT"):
                raw = await request.body()
                body = json.loads(raw) if raw else {}
                if not isinstance(body, dict):
                    raise BadRequest("JSON object expected")
            out = action(request, body, **request.path_params)
        except ApiError as exc:
            return json_response(exc.status, exc.body, exc.headers)
        except (ValueError, KeyError) as exc:  # BadRequest and malformed JSON included
            return json_response(400, {"error": str(exc)})
        return out if isinstance(out, Response) else json_response(200, out)

    return ExactRoute(path, endpoint, methods=[method])


def control_mount(store: Store, faults: Faults) -> Mount:
    def reset(request: Request, body: dict[str, Any]) -> Any:
        store.reset()
        faults.clear()
        return {"reset": True}

    def set_period(request: Request, body: dict[str, Any]) -> Any:
        subsidiary = str(body.get("subsidiary") or "")
        period = str(body.get("period") or "")
        if not subsidiary or len(period) != 7 or period[4] != "-":
            raise BadRequest("subsidiary and period (YYYY-MM) are required")
        record = {"subsidiary": subsidiary, "period": period, "closed": bool(body.get("closed", True))}
        with store.tx() as tx:
            tx.put("netsuite", "accountingPeriod", period_key(subsidiary, period), record)
        return record

    def periods(request: Request, body: dict[str, Any]) -> Any:
        return records(request, body, "netsuite", "accountingPeriod")

    def sap_company_code(request: Request, body: dict[str, Any]) -> Any:
        code, currency = str(body.get("company_code") or ""), str(body.get("currency") or "")
        if len(code) != 4 or len(currency) != 3:
            raise BadRequest("company_code (4 characters) and currency (ISO 4217) are required")
        with store.tx() as tx:
            return sap_master.add_company_code(tx, code, currency.upper(), str(body.get("name") or ""))

    def sap_gl_account(request: Request, body: dict[str, Any]) -> Any:
        account = str(body.get("gl_account") or "")
        if not account or len(account) > 10:
            raise BadRequest("gl_account (up to 10 characters) is required")
        with store.tx() as tx:
            return sap_master.add_gl_account(tx, account)

    def sap_period(request: Request, body: dict[str, Any]) -> Any:
        code, period = str(body.get("company_code") or ""), str(body.get("period") or "")
        if not code or len(period) != 7 or period[4] != "-":
            raise BadRequest("company_code and period (YYYY-MM) are required")
        with store.tx() as tx:
            return sap_master.set_period(tx, code, period, bool(body.get("closed", True)))

    def clear_faults(request: Request, body: dict[str, Any]) -> Any:
        faults.clear()
        return {"deleted": True}

    def remove_fault(request: Request, body: dict[str, Any], fault_id: str) -> Any:
        found = faults.remove(fault_id)
        return json_response(200 if found else 404, {"deleted": found})

    def records(request: Request, body: dict[str, Any], system: str, type_: str) -> Any:
        with store.tx() as tx:
            return {"data": tx.list(system, type_)}

    def records_misnamed(request: Request, body: dict[str, Any], rest: str) -> Any:
        raise BadRequest("use /_sandbox/records/{system}/{type}")

    def deliveries(request: Request, body: dict[str, Any]) -> Any:
        with store.tx() as tx:
            found = tx.list("stripe", "webhook_delivery")
        for name in ("event", "type", "endpoint"):
            if request.query_params.get(name):
                found = [d for d in found if d.get(name) == request.query_params[name]]
        return {"data": found}

    def in_stripe(act: Callable[..., Any]) -> Action:
        """A Stripe world action (what a customer, a bank or a card network would do), in
        one unit of work; its effects and events are exactly those of the real flows."""

        def action(request: Request, body: dict[str, Any], **params: str) -> Any:
            with store.tx() as tx:
                return act(tx, body=body, **params)

        return action

    def read_clock(request: Request, body: dict[str, Any]) -> Any:
        with store.tx() as tx:
            return {"now": clock.now(tx), "offset": clock.offset(tx)}

    def advance_clock(tx: Any, body: dict[str, Any]) -> Any:
        """Move the sandbox's clock forward by `seconds` (0 just runs what is due), then do
        what Stripe does when that time passes: finalise the drafts whose grace is over."""
        seconds = body.get("seconds", 0)
        if isinstance(seconds, bool) or not isinstance(seconds, int) or seconds < 0:
            raise BadRequest("seconds must be a whole number of seconds, 0 or more")
        now = clock.advance(tx, seconds)
        return {"now": now, "offset": clock.offset(tx), "finalized": finalize_due(tx)}

    routes = [
        _route("GET", "/health", lambda request, body: {"ok": True}),
        _route("GET", "/clock", read_clock),
        _route("POST", "/clock/advance", in_stripe(advance_clock)),
        _route("POST", "/stripe/subscriptions/{id}/end_period", in_stripe(end_period)),
        _route("POST", "/stripe/invoices/{id}/finalization_failure", in_stripe(fail_finalization)),
        _route("POST", "/reset", reset),
        _route("POST", "/seed", lambda request, body: seeding.seed(store, body)),
        _route("POST", "/seed/period", lambda request, body: period_seed.seed_period(store, body)),
        _route("POST", "/netsuite/periods", set_period),
        _route("GET", "/netsuite/periods", periods),
        _route("POST", "/sap/company_codes", sap_company_code),
        _route("POST", "/sap/gl_accounts", sap_gl_account),
        _route("POST", "/sap/periods", sap_period),
        _route("GET", "/sap/periods", lambda request, body: records(request, body, "sap", "postingPeriod")),
        _route("GET", "/sap/messages", lambda request, body: records(request, body, "sap", "bulkMessage")),
        _route("POST", "/faults", lambda request, body: faults.add(body).to_json()),
        _route("GET", "/faults", lambda request, body: {"data": faults.list()}),
        _route("DELETE", "/faults", clear_faults),
        _route("DELETE", "/faults/{fault_id}", remove_fault),
        _route("GET", "/summary", lambda request, body: summary(store, faults)),
        _route("GET", "/records/{system}/{type_}", records),
        _route("GET", "/records/{rest:path}", records_misnamed),
        _route("GET", "/stripe/deliveries", deliveries),
        _route("POST", "/stripe/renewal_charge", in_stripe(world.renewal_charge)),
        _route("POST", "/stripe/invoices/{id}/partial_payment", in_stripe(world.partial_payment)),
        _route(
            "POST", "/stripe/invoices/{id}/pay_out_of_band", in_stripe(lambda tx, id, body: pay_out_of_band(tx, id))
        ),
        _route("POST", "/stripe/disputes", in_stripe(world.open_dispute)),
        _route("POST", "/stripe/disputes/{id}/close", in_stripe(world.close_dispute)),
        _route("POST", "/stripe/events/{id}/redeliver", in_stripe(world.redeliver)),
    ]

    async def not_found(scope: Scope, receive: Receive, send: Send) -> None:
        message = f"no control endpoint {scope['method']} {decoded_path(scope)}"
        await json_response(404, {"error": message})(scope, receive, send)

    return Mount("/_sandbox", app=Router(routes, redirect_slashes=False, default=not_found))
