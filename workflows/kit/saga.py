"""A compensation stack: register the undo before the step runs, undo in reverse."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass


@dataclass
class Compensation:
    name: str
    undo: Callable[[], Awaitable[object]]


class Saga:
    """Steps register their compensation *before* they run, so a step whose outcome is
    unknown (it timed out after the remote system committed) is still undone. Every
    compensation must therefore be idempotent and harmless when its step never happened."""

    def __init__(self) -> None:
        self._stack: list[Compensation] = []
        self.undone: list[str] = []

    def add(self, name: str, undo: Callable[[], Awaitable[object]]) -> None:
        self._stack.append(Compensation(name, undo))

    @property
    def pending(self) -> list[str]:
        return [c.name for c in reversed(self._stack)]

    async def compensate(self, run: Callable[[str, Callable[[], Awaitable[object]]], Awaitable[object]]) -> None:
        """Undo in reverse order. `run` executes one compensation (the workflow passes its
        exception-queue runner, so a compensation that keeps failing waits for a person
        instead of being silently dropped)."""
        while self._stack:
            compensation = self._stack.pop()
            await run(compensation.name, compensation.undo)
            self.undone.append(compensation.name)
