"""OS-process children against real programs: readiness, logs, crashes, stop signals, orphans."""

from __future__ import annotations

import json
import os
import pwd
import select
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import structlog
import trio
import trio.testing

from aria.errors import StartError
from aria.supervisor import (
    ChildState,
    HttpProbe,
    LogLineProbe,
    OSProcess,
    Supervisor,
    TcpProbe,
    UnixSocketProbe,
    process_child,
)

# Real programs take real time; this bounds each wait so a bug fails the test instead of hanging it.
WAIT = 20


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pid_gone(pid: int, timeout: float) -> bool:
    """True if process ``pid`` exits within ``timeout`` seconds (zombies count as gone)."""
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        readable, _, _ = select.select([pidfd], [], [], timeout)
        return bool(readable)
    finally:
        os.close(pidfd)


async def wait_for_event(supervisor: Supervisor, kind: str, path: str) -> None:
    async with supervisor.events.subscribe() as events:
        async for event in events:
            if event.kind == kind and event.path == path:
                return


def shell(script: str) -> list[str]:
    return ["/bin/sh", "-c", script]


class TestReadiness:
    async def test_log_line_probe_and_pid_in_the_tree(self, nursery: trio.Nursery) -> None:
        spec = process_child(
            "sleeper",
            shell("echo booting; echo 'listening now'; exec sleep 600"),
            ready=LogLineProbe(r"listening now"),
        )
        supervisor = Supervisor([spec], id="sup")
        with trio.fail_after(WAIT):
            await nursery.start(supervisor.run)
        child = supervisor.snapshot()["children"][0]
        assert child["kind"] == "process" and child["state"] == "running"
        handle = supervisor.which_children()[0].handle
        assert isinstance(handle, OSProcess) and child["pid"] == handle.pid
        assert (await trio.Path(f"/proc/{handle.pid}/cmdline").read_bytes()).startswith(b"sleep")
        with trio.fail_after(WAIT):
            await supervisor.stop()
        assert handle.returncode == -signal.SIGTERM

    async def test_tcp_and_http_probes(self, nursery: trio.Nursery, tmp_path: Path) -> None:
        port = free_port()
        server = [
            sys.executable,
            "-m",
            "http.server",
            str(port),
            "--bind",
            "127.0.0.1",
            "--directory",
            str(tmp_path),
        ]
        supervisor = Supervisor(
            [
                process_child("tcp", server, ready=TcpProbe(port)),
                process_child("http", [*server[:3], str(free_port()), *server[4:]], ready=None),
            ]
        )
        with trio.fail_after(WAIT):
            await nursery.start(supervisor.run)
        # The first server is up: an HTTP probe against it passes too.
        with trio.fail_after(WAIT):
            await HttpProbe(f"http://127.0.0.1:{port}/").wait_ready()

    async def test_unix_socket_probe(self, nursery: trio.Nursery, tmp_path: Path) -> None:
        path = tmp_path / "s.sock"
        program = textwrap.dedent(f"""
            import socket, time
            time.sleep(0.2)
            s = socket.socket(socket.AF_UNIX); s.bind({str(path)!r}); s.listen()
            while True: s.accept()[0].close()
        """)
        supervisor = Supervisor(
            [process_child("unix", [sys.executable, "-c", program], ready=UnixSocketProbe(path))]
        )
        with trio.fail_after(WAIT):
            await nursery.start(supervisor.run)
        assert path.exists()

    async def test_exit_before_ready_fails_the_start_with_its_output(self) -> None:
        spec = process_child(
            "db",
            shell("echo 'FATAL: data directory is corrupt' >&2; exit 3"),
            ready=LogLineProbe("never printed"),
        )
        with pytest.raises(StartError) as info, trio.fail_after(WAIT):
            await Supervisor([spec], id="sup").run()
        message = str(info.value)
        assert "child 'sup/db' failed to start" in message
        assert "exited with code 3" in message
        assert "FATAL: data directory is corrupt" in message

    async def test_a_missing_program_is_a_clear_start_error(self) -> None:
        with pytest.raises(StartError, match=r"No such file or directory.*no-such-program"):
            await Supervisor([process_child("x", ["/nonexistent/no-such-program"])]).run()


class TestCrashesAndStops:
    async def test_a_crashed_program_is_restarted(self, nursery: trio.Nursery) -> None:
        spec = process_child("worker", shell("echo up; exec sleep 600"), ready=LogLineProbe("up"))
        supervisor = Supervisor([spec], id="sup", intensity=3)
        with trio.fail_after(WAIT):
            await nursery.start(supervisor.run)
        first = supervisor.which_children()[0].handle
        assert isinstance(first, OSProcess)
        with trio.fail_after(WAIT):
            async with trio.open_nursery() as watch:
                watch.start_soon(wait_for_event, supervisor, "restarted", "sup/worker")
                await trio.testing.wait_all_tasks_blocked()
                os.kill(first.pid, signal.SIGKILL)
        second = supervisor.which_children()[0].handle
        assert isinstance(second, OSProcess) and second.pid != first.pid
        snapshot = supervisor.snapshot()["children"][0]
        assert snapshot["restarts"] == 1
        assert "killed by signal 9" in snapshot["last_error"]

    async def test_output_goes_to_the_log_and_the_stop_signal_is_configurable(self) -> None:
        """PostgreSQL wants SIGINT: the program sees SIGINT, and its lines land in the log."""
        script = "trap 'echo got INT; exit 0' INT; echo ready; while :; do sleep 0.05; done"
        spec = process_child("pg", shell(script), ready=LogLineProbe("ready"), stop_signal=signal.SIGINT)
        supervisor = Supervisor([spec], id="sup")
        with structlog.testing.capture_logs() as logs:
            async with trio.open_nursery() as nursery:
                with trio.fail_after(WAIT):
                    await nursery.start(supervisor.run)
                    await supervisor.stop()
        lines = [(entry["event"], entry.get("process"), entry.get("stream")) for entry in logs]
        assert ("ready", "sup/pg", "stdout") in lines
        assert ("got INT", "sup/pg", "stdout") in lines

    async def test_a_program_that_ignores_the_stop_signal_is_killed_after_its_budget(self) -> None:
        script = "trap '' TERM; echo ready; while :; do sleep 0.05; done"
        spec = process_child("deaf", shell(script), ready=LogLineProbe("ready"), shutdown=0.5)
        supervisor = Supervisor([spec])
        async with trio.open_nursery() as nursery:
            with trio.fail_after(WAIT):
                await nursery.start(supervisor.run)
            handle = supervisor.which_children()[0].handle
            assert isinstance(handle, OSProcess)
            began = trio.current_time()
            with trio.fail_after(WAIT):
                await supervisor.stop()
            assert trio.current_time() - began >= 0.5
        assert handle.returncode == -signal.SIGKILL
        assert supervisor.which_children()[0].state is ChildState.STOPPED

    @pytest.mark.skipif(os.geteuid() != 0, reason="switching users needs root")
    async def test_run_as_another_user(self, nursery: trio.Nursery) -> None:
        nobody = pwd.getpwnam("nobody")
        spec = process_child(
            "id",
            shell("echo uid=$(id -u); exec sleep 600"),
            user="nobody",
            group=nobody.pw_gid,
            ready=LogLineProbe("uid="),
        )
        supervisor = Supervisor([spec])
        with trio.fail_after(WAIT):
            await nursery.start(supervisor.run)
        handle = supervisor.which_children()[0].handle
        assert isinstance(handle, OSProcess)
        assert f"uid={nobody.pw_uid}" in handle.tail()


ORPHAN_SCRIPT = """
import json, sys, trio
import aria.logging
from aria.supervisor import LogLineProbe, Supervisor, process_child

aria.logging.configure("warning", "json")  # logs to stderr; stdout carries the pids

async def main():
    sleeper = ["/bin/sh", "-c", "echo up; exec sleep 600"]
    children = [process_child("sleeper", sleeper, ready=LogLineProbe("up"))]
    if len(sys.argv) > 1:
        children.append(process_child("as-nobody", ["/bin/sh", "-c", "echo up; exec sleep 600"],
                                      user="nobody", ready=LogLineProbe("up")))
    supervisor = Supervisor(children)
    async with trio.open_nursery() as nursery:
        await nursery.start(supervisor.run)
        pids = [info.handle.pid for info in supervisor.which_children()]
        print(json.dumps(pids), flush=True)
        await trio.sleep_forever()

trio.run(main)
"""


class TestNoOrphans:
    def test_children_die_with_a_kill_minus_nine_of_aria(self, tmp_path: Path) -> None:
        """kill -9 of the Python process takes its OS-process children with it (PR_SET_PDEATHSIG)."""
        script = tmp_path / "node.py"
        script.write_text(ORPHAN_SCRIPT)
        args = [sys.executable, str(script)] + (["as-root"] if os.geteuid() == 0 else [])
        with subprocess.Popen(
            args,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            cwd=Path(__file__).resolve().parents[2],
        ) as parent:
            try:
                assert parent.stdout is not None
                pids = json.loads(parent.stdout.readline())
                assert pids and all(not pid_gone(pid, 0) for pid in pids)
                parent.send_signal(signal.SIGKILL)
                parent.wait(timeout=WAIT)
                for pid in pids:
                    assert pid_gone(pid, WAIT), f"child {pid} survived kill -9 of its parent"
            finally:
                parent.kill()

    def test_launcher_children_outlive_trio_worker_threads(self, tmp_path: Path) -> None:
        """Regression guard: a child forked from a pooled worker thread would die when that thread
        idles out; ours is forked by the launcher thread and lives on."""
        program = textwrap.dedent("""
            import json, trio, trio._core._thread_cache as cache
            from aria.supervisor import open_process_launcher
            cache.IDLE_TIMEOUT = 0.1  # make pooled threads idle out quickly (default 10 s)
            async def main():
                with open_process_launcher() as launcher:
                    popen = await launcher.spawn(["sleep", "600"], stdout=None, stderr=None)
                    await trio.to_thread.run_sync(lambda: None)  # use (and later idle out) a worker thread
                    print(json.dumps(popen.pid), flush=True)
                    await trio.sleep(1)  # ten times the worker-thread idle timeout set above
                    print(json.dumps(popen.poll()), flush=True)
                    popen.kill(); popen.wait()
            trio.run(main)
        """)
        result = subprocess.run(
            [sys.executable, "-c", program],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=Path(__file__).resolve().parents[2],
            check=True,
        )
        pid_line, poll_line = result.stdout.splitlines()
        assert json.loads(poll_line) is None, "the child died while its parent was alive"
        assert int(pid_line) > 0
