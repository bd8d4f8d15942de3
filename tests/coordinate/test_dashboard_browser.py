"""The dashboard in a real browser (Debian's Chromium driven by Playwright), against a whole node."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import structlog
import trio

from tests.coordinate.browser_walk import CHROMIUM, MARKER, PAGES
from tests.coordinate.conftest import PASSWORD, Node

ROOT = Path(__file__).resolve().parents[2]

if not Path(CHROMIUM).exists():
    pytest.skip("Debian's chromium is not installed (apt-get install chromium)", allow_module_level=True)
pytest.importorskip("playwright.sync_api", reason="playwright is not installed")


async def test_log_in_see_the_tree_kill_a_child_and_follow_the_logs(node: Node, tmp_path: Path) -> None:
    command = [
        sys.executable,
        "-m",
        "tests.coordinate.browser_walk",
        node.url,
        str(tmp_path),
        "oper",
        PASSWORD,
    ]
    # The walk runs in its own process (Playwright needs a plain asyncio loop); lines go both ways.
    walker = subprocess.Popen(  # noqa: ASYNC220
        command, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert walker.stdout is not None and walker.stdin is not None
    try:
        with trio.fail_after(240):
            line = await trio.to_thread.run_sync(walker.stdout.readline)
            assert line.strip() == "need-log-line"
            structlog.get_logger("aria_tune").warning(MARKER, app="aria_tune")
            walker.stdin.write("go\n")
            walker.stdin.flush()
            seen = json.loads(await trio.to_thread.run_sync(walker.stdout.readline))
            await trio.to_thread.run_sync(walker.wait)
    finally:
        if walker.poll() is None:
            walker.kill()
            walker.wait()
        walker.stdout.close()
        walker.stdin.close()
    assert seen["redirected_to_login"] is True
    assert len(seen["apps"]) == 14
    assert seen["killed_and_back"] is True
    assert seen["live_log"] is True
    assert seen["title:queue"] == "Queue"
    for name in PAGES:
        assert (tmp_path / f"{name}.png").stat().st_size > 10_000, name
    interpret = next(c for c in node.system.tree()["root"]["children"] if c["id"] == "aria_interpret")
    assert interpret["children"][0]["restarts"] == 1
