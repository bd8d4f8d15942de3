"""OS-process children: an external program supervised like any other child.

The program is started through the :mod:`launcher <aria.supervisor._launcher>` (so it dies with
Aria), its stdout and stderr go into the structured log under the child's name, readiness is
decided by a :class:`~aria.supervisor.Probe`, and an exit nobody asked for is a crash
(:class:`~aria.errors.ChildProcessExited`). Stopping sends ``stop_signal`` (SIGTERM by default;
PostgreSQL wants SIGINT), waits for the shutdown budget, then sends SIGKILL.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
import trio

from aria.errors import ChildProcessExited
from aria.supervisor._child import current_child, shutdown_grace
from aria.supervisor._launcher import current_launcher, wait_for_exit
from aria.supervisor._probes import Probe
from aria.supervisor._spec import ChildSpec, Restart, Shutdown

# After the program exits, how long its output pipes may stay open (held by a grandchild) before
# Aria stops reading them.
_DRAIN_SECONDS = 1.0
_MAX_LINE = 64 * 1024
_TAIL_LINES = 40


@dataclass(frozen=True)
class ProcessSpec:
    """What to run and how; see :func:`process_child` for the meaning of each field."""

    args: tuple[str, ...]
    env: Mapping[str, str] | None = None
    cwd: str | None = None
    user: str | int | None = None
    group: str | int | None = None
    ready: Probe | None = None
    stop_signal: signal.Signals = signal.SIGTERM
    on_line: Callable[[str, str], None] | None = None


class OSProcess:
    """The handle of a running OS-process child (what ``task_status.started`` publishes)."""

    def __init__(self, popen: subprocess.Popen[bytes], label: str, spec: ProcessSpec) -> None:
        self._popen = popen
        self.label = label
        self.spec = spec
        self.args = spec.args
        self._tail: deque[str] = deque(maxlen=_TAIL_LINES)
        self._exited = trio.Event()
        self._pumps_done = trio.Event()
        self.returncode: int | None = None
        self._log = structlog.get_logger("aria.process").bind(process=label)

    @property
    def pid(self) -> int:
        return self._popen.pid

    @property
    def running(self) -> bool:
        return self.returncode is None

    def tail(self) -> list[str]:
        """The last lines the program printed (stdout and stderr interleaved)."""
        return list(self._tail)

    def send_signal(self, sig: int) -> None:
        """Send ``sig`` to the program if it is still running."""
        if self.returncode is None:
            try:
                self._popen.send_signal(sig)
            except ProcessLookupError:
                pass

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    async def wait(self) -> int:
        """Wait for the program to exit; return its code (negative: killed by that signal)."""
        await self._exited.wait()
        assert self.returncode is not None
        return self.returncode

    async def terminate(self) -> int:
        """Send the stop signal and wait for the exit (callers bound the wait)."""
        self._log.info("stopping process", signal=self.spec.stop_signal.name)
        self.send_signal(self.spec.stop_signal)
        return await self.wait()

    async def _wait_ready(self) -> bool:
        """True once the probe passes; False if the program exits first."""
        probe = self.spec.ready
        if probe is None:
            return self.returncode is None
        outcome = {"ready": False}
        async with trio.open_nursery() as nursery:

            async def run_probe() -> None:
                await probe.wait_ready()
                outcome["ready"] = True
                nursery.cancel_scope.cancel()

            async def watch_exit() -> None:
                await self._exited.wait()
                nursery.cancel_scope.cancel()

            nursery.start_soon(run_probe)
            nursery.start_soon(watch_exit)
        return outcome["ready"]

    async def _run_io(self, scope: trio.CancelScope) -> None:
        with scope:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._watch_exit)
                async with trio.open_nursery() as pumps:
                    for name in ("stdout", "stderr"):
                        pipe = getattr(self._popen, name)
                        if pipe is not None:
                            stream = trio.lowlevel.FdStream(os.dup(pipe.fileno()))
                            pipe.close()
                            pumps.start_soon(self._pump, stream, name)
                self._pumps_done.set()

    async def _watch_exit(self) -> None:
        self.returncode = await wait_for_exit(self._popen)
        self._exited.set()

    async def _pump(self, stream: trio.lowlevel.FdStream, name: str) -> None:
        buffer = b""
        async with stream:
            while True:
                data = await stream.receive_some(65536)
                if not data:
                    break
                buffer += data
                *lines, buffer = buffer.split(b"\n")
                if len(buffer) > _MAX_LINE:
                    lines.append(buffer)
                    buffer = b""
                for raw in lines:
                    self._line(raw, name)
        if buffer:
            self._line(buffer, name)

    def _line(self, raw: bytes, stream: str) -> None:
        line = raw.decode("utf-8", errors="replace").rstrip("\r")
        if not line:
            return
        self._tail.append(line)
        self._log.info(line, stream=stream)
        if self.spec.ready is not None:
            self.spec.ready.feed_line(line)
        if self.spec.on_line is not None:
            self.spec.on_line(stream, line)

    def __repr__(self) -> str:
        state = "running" if self.returncode is None else f"exited {self.returncode}"
        return f"<OSProcess {self.label!r} pid={self.pid} {state}>"


async def run_os_process(spec: ProcessSpec, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
    """The start function of an OS-process child (see :func:`process_child`)."""
    context = current_child()
    label = context.path if context is not None else Path(spec.args[0]).name
    if spec.ready is not None:
        spec.ready.reset()
    popen = await current_launcher().spawn(
        spec.args, env=spec.env, cwd=spec.cwd, user=spec.user, group=spec.group
    )
    process = OSProcess(popen, label, spec)
    process._log.info("process started", pid=popen.pid, program=spec.args[0])
    failure: ChildProcessExited | None = None
    async with trio.open_nursery() as nursery:
        io_scope = trio.CancelScope(shield=True)  # keep reading output while the program stops
        nursery.start_soon(process._run_io, io_scope)
        try:
            if await process._wait_ready():
                process._log.info("process ready", pid=popen.pid, probe=spec.ready and spec.ready.describe())
                task_status.started(process)
                await process.wait()
            assert process.returncode is not None
            failure = ChildProcessExited(label, process.returncode, process.tail())
        except trio.Cancelled:
            with shutdown_grace():
                await process.terminate()
            raise
        finally:
            with trio.CancelScope(shield=True):
                if process.returncode is None:
                    process._log.warning("killing process", pid=popen.pid)
                    process.kill()
                    await process.wait()
                with trio.move_on_after(_DRAIN_SECONDS):
                    await process._pumps_done.wait()
            io_scope.cancel()
            process._log.info("process exited", pid=popen.pid, returncode=process.returncode)
    if failure is not None:
        raise failure


def process_child(
    id: str,
    args: Sequence[str | os.PathLike[str]],
    *,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    user: str | int | None = None,
    group: str | int | None = None,
    ready: Probe | None = None,
    stop_signal: signal.Signals = signal.SIGTERM,
    on_line: Callable[[str, str], None] | None = None,
    restart: Restart | str = Restart.PERMANENT,
    shutdown: Shutdown = 5.0,
    start_timeout: float = 30.0,
    significant: bool = False,
    name: str | None = None,
) -> ChildSpec:
    """A child spec that runs an external program.

    Args:
        id: The child id.
        args: The program and its arguments.
        env: The whole environment (None inherits Aria's).
        cwd: Working directory.
        user, group: Run as this user/group (Aria must be root to switch).
        ready: A probe deciding readiness (TCP port, HTTP URL, unix socket, log line). Without one
            the program is ready once it has been started.
        stop_signal: Sent for a graceful stop; SIGKILL follows when the budget is spent.
        on_line: Called as ``on_line(stream, line)`` for each output line.
        restart, shutdown, start_timeout, significant, name: as in :class:`ChildSpec`.

    Raises:
        ValueError: if ``args`` is empty.
    """
    if not args:
        raise ValueError(f"process child {id!r}: args must name a program")
    spec = ProcessSpec(
        args=tuple(os.fspath(a) for a in args),
        env=dict(env) if env is not None else None,
        cwd=os.fspath(cwd) if cwd is not None else None,
        user=user,
        group=group,
        ready=ready,
        stop_signal=signal.Signals(stop_signal),
        on_line=on_line,
    )
    return ChildSpec(
        id=id,
        start=run_os_process,
        args=(spec,),
        restart=restart,
        shutdown=shutdown,
        start_timeout=start_timeout,
        significant=significant,
        name=name,
        kind="process",
    )
