"""Workers for supervisor tests: they record what happens to them and crash on demand."""

from __future__ import annotations

from typing import Any

import trio

from aria.supervisor import ChildSpec, shutdown_grace


class Journal(list[tuple[str, str]]):
    """The order in which children started and stopped: [("start", "a"), ("stop", "a"), ...]."""

    def of(self, kind: str) -> list[str]:
        return [name for event, name in self if event == kind]


class Worker:
    """A child that runs until stopped, or until the test makes it return or crash.

    Each incarnation gets a fresh trigger, so a test can crash a restarted child again.
    """

    def __init__(self, name: str, journal: Journal) -> None:
        self.name = name
        self.journal = journal
        self.incarnations = 0
        self.started_at: list[float] = []
        self._trigger = trio.Event()
        self._mode = ""

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        self.incarnations += 1
        self._trigger = trio.Event()
        self._mode = ""
        self.journal.append(("start", self.name))
        self.started_at.append(trio.current_time())
        task_status.started(self)
        try:
            await self._trigger.wait()
            if self._mode == "crash":
                raise RuntimeError(f"{self.name} crashed")
        finally:
            self.journal.append(("stop", self.name))

    def crash(self) -> None:
        self._mode = "crash"
        self._trigger.set()

    def finish(self) -> None:
        """Return normally."""
        self._mode = "finish"
        self._trigger.set()

    def spec(self, **options: Any) -> ChildSpec:
        return ChildSpec(id=self.name, start=self.run, **options)


async def stubborn(journal: Journal, name: str, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
    """Ignores the graceful stop: its clean-up tries to run forever inside its grace period."""
    task_status.started()
    try:
        await trio.sleep_forever()
    finally:
        with shutdown_grace():
            journal.append(("cleanup-begins", name))
            await trio.sleep_forever()
        journal.append(("killed", name))


async def slow_cleanup(
    journal: Journal, name: str, seconds: float, *, task_status: Any = trio.TASK_STATUS_IGNORED
) -> None:
    """Needs ``seconds`` of clean-up after the stop request (within its budget, it finishes)."""
    task_status.started()
    try:
        await trio.sleep_forever()
    finally:
        with shutdown_grace():
            await trio.sleep(seconds)
            journal.append(("cleaned-up", name))
