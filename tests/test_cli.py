"""The `aria` command as a user runs it: a real process, real signals, the control socket."""

from __future__ import annotations

import json
import os
import signal
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

ARIA = [sys.executable, "-m", "aria.cli"]
WAIT = 30


def environment(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARIA_")}
    env.update({"ARIA_DATA_DIR": str(data_dir), "ARIA_LOG__FORMAT": "json", **extra})
    return env


def aria(data_dir: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*ARIA, *args], env=environment(data_dir, **extra), capture_output=True, text=True, timeout=WAIT
    )


class Node:
    """`aria start` in the background; ready once it has printed its banner."""

    def __init__(self, data_dir: Path, *args: str) -> None:
        self.process = subprocess.Popen(
            [*ARIA, "start", *args],
            env=environment(data_dir),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        self.banner = [self.process.stdout.readline()]
        while self.banner[-1] and "stop with Ctrl-C" not in self.banner[-1]:
            self.banner.append(self.process.stdout.readline())
        assert "aria is running" in self.banner[0], self.process.stderr.read() if self.process.stderr else ""

    def stop(self, sig: signal.Signals) -> tuple[int, str]:
        self.process.send_signal(sig)
        _, stderr = self.process.communicate(timeout=WAIT)
        return self.process.returncode, stderr


@pytest.fixture
def node(data_dir: Path) -> Iterator[Node]:
    started = Node(data_dir)
    yield started
    if started.process.poll() is None:
        started.process.kill()
        started.process.communicate()


class TestStartAndStop:
    def test_banner_status_and_sigterm(self, node: Node, data_dir: Path) -> None:
        assert "14 apps ready" in node.banner[0]
        assert any(str(data_dir) in line for line in node.banner)
        labelled = (line.partition(":") for line in node.banner[1:-1])
        shown = {label.strip(): text.strip() for label, _, text in labelled}
        dashboard = shown["dashboard"]
        ca_file = shown["local CA"].split()[0]  # "<path>  (trust it ...)"
        setup = shown["first start"].split()[-1]  # "create the admin account at <url>"
        assert dashboard.startswith("https://127.0.0.1:") and setup.startswith(dashboard + "setup?token=")
        context = ssl.create_default_context(cafile=ca_file)
        page = httpx.get(setup, verify=context, timeout=WAIT)
        assert page.status_code == 200 and "<form" in page.text  # the one-time admin account form
        assert httpx.get(dashboard + "setup?token=wrong", verify=context, timeout=WAIT).status_code == 404
        status = aria(data_dir, "status")
        assert status.returncode == 0, status.stderr
        lines = status.stdout.splitlines()
        assert lines[0].startswith("node ")
        app_lines = [line.split() for line in lines if line.startswith("  aria_")]
        assert [words[0] for words in app_lines][:2] == ["aria_security", "aria_data"]
        assert len(app_lines) == 14 and all(words[1] == "running" for words in app_lines)
        tree = json.loads(aria(data_dir, "status", "--json").stdout)
        assert tree["root"]["strategy"] == "rest_for_one"
        code, stderr = node.stop(signal.SIGTERM)
        assert code == 0
        assert "aria: stopped" in stderr
        # Apps stopped in reverse boot order.
        stopped = [
            json.loads(line)["child_id"]
            for line in stderr.splitlines()
            if line.startswith("{")
            and json.loads(line).get("event") == "child stopped"
            and json.loads(line).get("supervisor") == "root"
        ]
        assert stopped[0] == "aria_coordinate" and stopped[-1] == "aria_security" and len(stopped) == 14

    def test_ctrl_c_stops_cleanly(self, data_dir: Path) -> None:
        node = Node(data_dir, "--only", "security")
        code, stderr = node.stop(signal.SIGINT)
        assert code == 0, stderr
        assert "SIGINT received, stopping" in stderr

    def test_aria_stop_and_events(self, data_dir: Path) -> None:
        node = Node(data_dir, "--only", "interpret")
        events = aria(data_dir, "events")
        assert "started       root/aria_interpret" in events.stdout
        assert aria(data_dir, "stop").returncode == 0
        node.process.communicate(timeout=WAIT)
        assert node.process.returncode == 0
        assert "aria is not running" in aria(data_dir, "status").stderr

    def test_a_killed_node_leaves_nothing_that_blocks_the_next_start(self, data_dir: Path) -> None:
        first = Node(data_dir)
        first.process.kill()
        first.process.communicate()
        second = Node(data_dir, "--only", "security")
        assert "1 apps ready" in second.banner[0]
        assert second.stop(signal.SIGTERM)[0] == 0

    def test_only_boots_a_subset_with_dependencies(self, data_dir: Path) -> None:
        node = Node(data_dir, "--only", "storage")
        assert "3 apps ready" in node.banner[0]
        assert node.stop(signal.SIGTERM)[0] == 0


class TestUsageErrors:
    def test_config_errors_exit_2_naming_the_key(self, data_dir: Path) -> None:
        result = aria(data_dir, "start", ARIA_SUPERVISOR__PERIOD="-1")
        assert result.returncode == 2
        assert "supervisor.period = -1 (from ARIA_SUPERVISOR__PERIOD)" in result.stderr

    def test_unknown_apps_exit_2(self, data_dir: Path) -> None:
        result = aria(data_dir, "start", "--only", "telepathy")
        assert result.returncode == 2
        assert "unknown app 'telepathy'" in result.stderr

    def test_config_show_prints_the_effective_configuration(self, data_dir: Path) -> None:
        result = aria(data_dir, "config", "show", ARIA_LOG__LEVEL="debug")
        assert result.returncode == 0
        assert '[log]\nlevel = "debug"' in result.stdout
        as_json = json.loads(aria(data_dir, "config", "show", "--json").stdout)
        assert as_json["node"]["data_dir"] == str(data_dir.resolve())
