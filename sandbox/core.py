"""Shared machinery of the sandbox: nested form parsing, JSON responses, ids, and
fault injection."""

from __future__ import annotations

import hashlib
import itertools
import json
import re
import secrets
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import Response

SYSTEMS = ("stripe", "avatax", "netsuite", "entitlements", "notifications", "salesforce")


# -- form encoding ----------------------------------------------------------------------

_KEY_PART = re.compile(r"\[([^\]]*)\]")


def parse_nested(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """Turn Stripe-style form pairs (`items[0][price_data][currency]=usd`,
    `metadata[k]=v`) into nested dicts; dicts whose keys are all integers become lists
    ordered by index."""
    root: dict[str, Any] = {}
    for raw_key, value in pairs:
        head, _, rest = raw_key.partition("[")
        parts = [head] + (_KEY_PART.findall("[" + rest) if rest else [])
        node = root
        for part in parts[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = {}
                node[part] = child
            node = child
        node[parts[-1]] = value
    return _listify(root)


def _listify(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    converted = {k: _listify(v) for k, v in node.items()}
    if converted and all(k.isdigit() for k in converted):
        return [converted[k] for k in sorted(converted, key=int)]
    return converted


def parse_form(raw: bytes) -> dict[str, Any]:
    return parse_nested(parse_qsl(raw.decode("utf-8"), keep_blank_values=True))


def request_hash(method: str, path: str, params: Any) -> str:
    canonical = json.dumps([method, path, params], sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


# -- responses ----------------------------------------------------------------------------


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        # JSON numbers, as the real APIs send them. Amounts here have at most a few
        # decimals, so the float's shortest repr is exactly the decimal.
        return float(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def dumps(body: Any) -> str:
    return json.dumps(body, default=_default)


def bearer_accepted(request: Request) -> bool:
    """The sandbox takes any bearer token except those starting with "invalid", so tests can
    provoke an authentication failure."""
    header = request.headers.get("authorization", "")
    token = header[7:].strip() if header.lower().startswith("bearer ") else ""
    return bool(token) and not token.startswith("invalid")


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    content = b"" if body is None else dumps(body).encode()
    return Response(
        content=content,
        status_code=status,
        headers=headers or {},
        media_type=None if body is None else "application/json",
    )


_counter = itertools.count(1)


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(7)}{next(_counter):04d}"


async def json_body(request: Request) -> Any:
    raw = await request.body()
    if not raw:
        return {}
    return json.loads(raw, parse_float=Decimal)


class ApiError(Exception):
    """Raised by a handler to answer with a system-specific error."""

    def __init__(self, status: int, body: Any, headers: dict[str, str] | None = None, *, store: bool = False):
        self.status = status
        self.body = body
        self.headers = headers or {}
        self.store = store  # whether an idempotent replay store keeps this response


# -- faults --------------------------------------------------------------------------------

FAULT_KINDS = ("latency", "5xx", "429", "commit_then_timeout")


@dataclass
class Fault:
    id: str
    system: str
    kind: str
    method: str | None = None
    path_contains: str | None = None
    times: int | None = None
    every: int | None = None
    latency_ms: int = 0
    hold_seconds: float = 5.0
    status: int = 500
    matched: int = 0
    fired: int = 0

    def matches(self, system: str, method: str, path: str) -> bool:
        if self.system not in ("*", system):
            return False
        if self.method and self.method.upper() != method.upper():
            return False
        return not (self.path_contains and self.path_contains not in path)

    def fires(self) -> bool:
        """Count one matching request and say whether this one is faulted."""
        self.matched += 1
        if self.times is not None and self.fired >= self.times:
            return False
        if self.every is not None and self.matched % self.every != 0:
            return False
        self.fired += 1
        return True

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class FaultPlan:
    """What the injected faults ask of one request."""

    latency_seconds: float = 0.0
    reject: Fault | None = None
    hold_seconds: float | None = None


@dataclass
class Faults:
    faults: list[Fault] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, spec: dict[str, Any]) -> Fault:
        kind = str(spec.get("kind", ""))
        if kind not in FAULT_KINDS:
            raise ValueError(f"kind must be one of {', '.join(FAULT_KINDS)}")
        system = str(spec.get("system", "*"))
        if system not in (*SYSTEMS, "*"):
            raise ValueError(f"system must be one of {', '.join(SYSTEMS)} or *")
        status = int(spec.get("status") or (429 if kind == "429" else 500))
        fault = Fault(
            id=new_id("fault"),
            system=system,
            kind=kind,
            method=spec.get("method") or None,
            path_contains=spec.get("path_contains") or None,
            times=None if spec.get("times") is None else int(spec["times"]),
            every=None if spec.get("every") is None else int(spec["every"]),
            latency_ms=int(spec.get("latency_ms") or 0),
            hold_seconds=float(spec.get("hold_seconds") if spec.get("hold_seconds") is not None else 5.0),
            status=status,
        )
        if fault.every is not None and fault.every < 1:
            raise ValueError("every must be at least 1")
        with self.lock:
            self.faults.append(fault)
        return fault

    def clear(self) -> None:
        with self.lock:
            self.faults.clear()

    def remove(self, fault_id: str) -> bool:
        with self.lock:
            before = len(self.faults)
            self.faults = [f for f in self.faults if f.id != fault_id]
            return len(self.faults) != before

    def list(self) -> list[dict[str, Any]]:
        with self.lock:
            return [f.to_json() for f in self.faults]

    def plan(self, system: str, method: str, path: str) -> FaultPlan:
        plan = FaultPlan()
        with self.lock:
            for fault in self.faults:
                # One failing fault claims a request; later ones wait for the next request,
                # so "5xx, then 429, then commit-then-timeout" hit three attempts in turn.
                claimed = plan.reject is not None or plan.hold_seconds is not None
                if not fault.matches(system, method, path) or (claimed and fault.kind != "latency"):
                    continue
                if not fault.fires():
                    continue
                if fault.kind == "latency":
                    plan.latency_seconds += fault.latency_ms / 1000
                elif fault.kind in ("5xx", "429"):
                    plan.reject = plan.reject or fault
                elif fault.kind == "commit_then_timeout":
                    plan.hold_seconds = max(plan.hold_seconds or 0.0, fault.hold_seconds)
        return plan


Handler = Callable[..., Response]
