"""Forking OS processes so that none outlives Aria, even after ``kill -9``.

Linux's ``PR_SET_PDEATHSIG`` sends a signal to a child when its parent *thread* exits, not its
parent process. Trio's ``open_process`` forks from a pooled worker thread that exits after a few
idle seconds, which would kill the child at a random moment. So every supervised process is forked
by one long-lived launcher thread, owned by the running system and joined when it stops: the
children get SIGKILL when that thread dies, and it dies only with the system or the whole process.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import queue
import signal
import subprocess
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import trio

_PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
_prctl = _libc.prctl


def _die_with_parent(parent_pid: int) -> Callable[[], None]:
    """A preexec function: SIGKILL when the forking thread dies; exit if the parent is gone already."""

    def preexec() -> None:
        _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent_pid:  # the parent died between fork and prctl
            os._exit(1)

    return preexec


class ProcessLauncher:
    """A thread that forks processes on request; see the module docstring for why it exists.

    Use it as a context manager (:func:`open_process_launcher`), or let :func:`current_launcher`
    create a process-wide one for programs that run supervisors without an Aria system.
    """

    def __init__(self) -> None:
        self._requests: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._serve, name="aria-process-launcher", daemon=True)
        self._thread.start()
        self._closed = False

    def _serve(self) -> None:
        while (work := self._requests.get()) is not None:
            work()

    async def spawn(
        self,
        args: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        user: str | int | None = None,
        group: str | int | None = None,
        stdin: int | None = subprocess.DEVNULL,
        stdout: int | None = subprocess.PIPE,
        stderr: int | None = subprocess.PIPE,
    ) -> subprocess.Popen[bytes]:
        """Fork and exec ``args`` from the launcher thread; return the ``Popen`` once it exists.

        The child runs in a new session (so a terminal's Ctrl-C reaches only Aria, which then stops
        children in order) and gets SIGKILL if the launcher thread dies.

        Raises:
            OSError: if the program cannot be executed (not found, not executable, bad cwd).
            RuntimeError: if the launcher is closed.
        """
        if self._closed:
            raise RuntimeError("the process launcher is closed")
        token = trio.lowlevel.current_trio_token()
        done = trio.Event()
        outcome: dict[str, Any] = {}
        parent_pid = os.getpid()

        def work() -> None:
            try:
                outcome["popen"] = subprocess.Popen(
                    list(args),
                    env=dict(env) if env is not None else None,
                    cwd=cwd,
                    user=user,
                    group=group,
                    extra_groups=[] if group is not None else None,
                    stdin=stdin,
                    stdout=stdout,
                    stderr=stderr,
                    start_new_session=True,
                    preexec_fn=_die_with_parent(parent_pid),
                )
            except BaseException as exc:
                outcome["error"] = exc
            finally:
                token.run_sync_soon(done.set)

        self._requests.put(work)
        # Shielded: once queued the fork happens anyway, and we must own the Popen it returns.
        with trio.CancelScope(shield=True):
            await done.wait()
        if "error" in outcome:
            raise outcome["error"]
        return outcome["popen"]

    def close(self) -> None:
        """Stop the thread (its children then receive SIGKILL: stop them first)."""
        if not self._closed:
            self._closed = True
            self._requests.put(None)
            self._thread.join()


_current_launcher: ContextVar[ProcessLauncher | None] = ContextVar("aria_process_launcher", default=None)
_process_wide: ProcessLauncher | None = None
_process_wide_lock = threading.Lock()


@contextmanager
def open_process_launcher() -> Iterator[ProcessLauncher]:
    """Run a launcher for the duration of the block and make it the current one."""
    launcher = ProcessLauncher()
    token = _current_launcher.set(launcher)
    try:
        yield launcher
    finally:
        _current_launcher.reset(token)
        launcher.close()


def current_launcher() -> ProcessLauncher:
    """The launcher of the running system, or a process-wide one that lives until interpreter exit."""
    global _process_wide
    launcher = _current_launcher.get()
    if launcher is not None:
        return launcher
    with _process_wide_lock:
        if _process_wide is None:
            _process_wide = ProcessLauncher()
        return _process_wide


async def wait_for_exit(popen: subprocess.Popen[bytes]) -> int:
    """Wait, without blocking trio, until ``popen`` exits; reap it and return its return code."""
    if popen.returncode is not None:
        return popen.returncode
    try:
        pidfd = os.pidfd_open(popen.pid)
    except ProcessLookupError:
        return popen.wait()
    try:
        await trio.lowlevel.wait_readable(pidfd)
    finally:
        os.close(pidfd)
    return popen.wait()


async def run_command(
    args: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    user: str | int | None = None,
    group: str | int | None = None,
    input: bytes | None = None,
    check: bool = True,
) -> subprocess.CompletedProcess[bytes]:
    """Run a one-shot program (``initdb``, ``pg_dump``...) to completion through the launcher.

    Output is captured. Cancelling kills the program (SIGKILL) and reaps it.

    Raises:
        subprocess.CalledProcessError: with ``check=True``, on a non-zero exit (its ``stderr`` holds
            the program's error output).
    """
    launcher = current_launcher()
    popen = await launcher.spawn(
        args,
        env=env,
        cwd=cwd,
        user=user,
        group=group,
        stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
    )
    assert popen.stdout is not None and popen.stderr is not None
    out = trio.lowlevel.FdStream(os.dup(popen.stdout.fileno()))
    err = trio.lowlevel.FdStream(os.dup(popen.stderr.fileno()))
    popen.stdout.close()
    popen.stderr.close()
    chunks: dict[str, list[bytes]] = {"out": [], "err": []}

    async def drain(stream: trio.lowlevel.FdStream, key: str) -> None:
        async with stream:
            while data := await stream.receive_some():
                chunks[key].append(data)

    async def feed() -> None:
        assert popen.stdin is not None
        stdin = trio.lowlevel.FdStream(os.dup(popen.stdin.fileno()))
        popen.stdin.close()
        async with stdin:
            try:
                await stdin.send_all(input or b"")
            except trio.BrokenResourceError:
                pass

    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(drain, out, "out")
            nursery.start_soon(drain, err, "err")
            if input is not None:
                nursery.start_soon(feed)
            returncode = await wait_for_exit(popen)
    finally:
        if popen.returncode is None:
            popen.kill()
            with trio.CancelScope(shield=True):
                await wait_for_exit(popen)
    result = subprocess.CompletedProcess(
        list(args), returncode, b"".join(chunks["out"]), b"".join(chunks["err"])
    )
    if check:
        result.check_returncode()
    return result
