"""Injected faults: latency, 5xx, 429 and "commit then time out", matched by system,
method and path, fired every n-th time or a number of times."""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass, field
from typing import Any

from sandbox.core import SYSTEMS, new_id

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
        hold_seconds = spec.get("hold_seconds")
        fault = Fault(
            id=new_id("fault"),
            system=system,
            kind=kind,
            method=spec.get("method") or None,
            path_contains=spec.get("path_contains") or None,
            times=None if spec.get("times") is None else int(spec["times"]),
            every=None if spec.get("every") is None else int(spec["every"]),
            latency_ms=int(spec.get("latency_ms") or 0),
            hold_seconds=5.0 if hold_seconds is None else float(hold_seconds),
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
