"""Small structured-concurrency helpers for the chunk pipelines: ordered parallel map, progress."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import AsyncIterable, Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any, Generic, TextIO, TypeVar

import trio

T = TypeVar("T")
R = TypeVar("R")


def default_concurrency() -> int:
    """How many jobs run at once by default: the cores this process may use (at least 2)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cores = os.cpu_count() or 2
    return max(2, cores)


def map_ordered(
    nursery: trio.Nursery,
    source: AsyncIterable[T],
    job: Callable[[T], Awaitable[R]],
    concurrency: int,
) -> trio.MemoryReceiveChannel[R]:
    """Run ``job`` on each item of ``source``, ``concurrency`` at a time, yielding results in order.

    Items are taken from ``source`` only while fewer than ``concurrency`` jobs are running or
    waiting to be collected, so memory stays bounded by the window. An exception in a job cancels
    the nursery (and so the whole pipeline), as structured concurrency wants.

    Returns:
        A channel that yields each job's result in the order of ``source``, then closes.
    """
    if concurrency < 1:
        raise ValueError(f"concurrency must be at least 1, got {concurrency}")
    results_in, results_out = trio.open_memory_channel[R](concurrency)
    slots_in, slots_out = trio.open_memory_channel[_Slot[R]](concurrency)
    window = trio.Semaphore(concurrency)

    async def run(item: T, slot: _Slot[R]) -> None:
        slot.value = await job(item)
        slot.done.set()

    async def dispatch() -> None:
        async with slots_in:
            async for item in source:
                await window.acquire()
                slot: _Slot[R] = _Slot()
                await slots_in.send(slot)
                nursery.start_soon(run, item, slot)

    async def collect() -> None:
        async with results_in, slots_out:
            async for slot in slots_out:
                await slot.done.wait()
                window.release()
                await results_in.send(slot.value)

    nursery.start_soon(dispatch)
    nursery.start_soon(collect)
    return results_out


class _Slot(Generic[R]):
    __slots__ = ("done", "value")

    def __init__(self) -> None:
        self.done = trio.Event()
        self.value: Any = None


class Progress:
    """A one-line progress bar on a terminal (stderr by default); silent when not a terminal.

    Args:
        label: What is being done (``make``, ``extract``...).
        total: The total amount of work (bytes or chunks), 0 if unknown.
        stream: Where to draw; only drawn when it is a terminal unless ``force``.
    """

    def __init__(self, label: str, total: int, *, stream: TextIO | None = None, force: bool = False) -> None:
        self.label = label
        self.total = total
        self.done = 0
        self._stream = stream or sys.stderr
        self._enabled = force or self._stream.isatty()
        self._last = 0.0
        self._started = time.monotonic()

    def advance(self, amount: int) -> None:
        self.done += amount
        if not self._enabled:
            return
        now = time.monotonic()
        if now - self._last >= 0.1 or (self.total and self.done >= self.total):
            self._last = now
            self._draw(now)

    def _draw(self, now: float) -> None:
        elapsed = max(now - self._started, 1e-9)
        rate = self.done / elapsed / (1 << 20)
        if self.total:
            fraction = min(self.done / self.total, 1.0)
            bar = "#" * int(fraction * 30)
            text = f"\r{self.label} [{bar:<30}] {fraction:6.1%} {rate:7.1f} MiB/s"
        else:
            text = f"\r{self.label} {self.done / (1 << 20):.1f} MiB {rate:7.1f} MiB/s"
        self._stream.write(text)
        self._stream.flush()

    def close(self) -> None:
        if self._enabled:
            self._draw(time.monotonic())
            self._stream.write("\n")
            self._stream.flush()


@contextmanager
def single_errors() -> Iterator[None]:
    """Re-raise an exception group from a pipeline's nursery as its most telling single exception.

    Nurseries wrap whatever crosses them in exception groups, but a caller of an operation wants the
    error itself (``ChunkMissing``, not a group holding it). The first exception that is not a
    cancellation is raised (a ``KeyboardInterrupt`` or ``SystemExit`` first of all); when several
    jobs failed, a note says how many more there were.
    """
    try:
        yield
    except BaseExceptionGroup as group:
        leaves = list(_leaves(group))
        urgent = [e for e in leaves if isinstance(e, KeyboardInterrupt | SystemExit)]
        real = urgent or [e for e in leaves if not isinstance(e, trio.Cancelled)] or leaves
        first = real[0]
        if len(real) > 1:
            first.add_note(f"({len(real) - 1} more concurrent errors)")
        raise first  # noqa: B904 - the leaf keeps its own __cause__; the group is its context


def _leaves(group: BaseExceptionGroup) -> Iterator[BaseException]:
    for error in group.exceptions:
        if isinstance(error, BaseExceptionGroup):
            yield from _leaves(error)
        else:
            yield error
