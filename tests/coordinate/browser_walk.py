"""A user's walk through the dashboard in Debian's Chromium, driven by Playwright.

Run as ``python -m tests.coordinate.browser_walk URL SHOTS_DIR USER PASSWORD``. It runs in a process
of its own because Playwright's sync API needs a plain asyncio event loop, and the test process
has trio-asyncio's policy installed. It prints ``need-log-line`` when the logs page is open and
waits for one line on stdin (the test logs a marker meanwhile), and at the end one JSON object
with what it saw.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from playwright.sync_api import sync_playwright

CHROMIUM = "/usr/bin/chromium"
PAGES = ("home", "tree", "apps", "charts", "logs", "queue", "storage", "security", "os")
MARKER = "browser-marker-7d3f"


def walk(url: str, shots: Path, user: str, password: str) -> dict[str, object]:
    seen: dict[str, object] = {}
    quiet = [
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
    ]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu", *quiet]
        )
        page = browser.new_context(
            ignore_https_errors=True, viewport={"width": 1400, "height": 1000}
        ).new_page()
        page.set_default_timeout(30_000)
        actions: list[str] = []
        page.on(
            "response",
            lambda r: actions.append(f"{r.request.method} {r.url} {r.status}") if "/tree/" in r.url else None,
        )
        page.on("dialog", lambda d: actions.append(f"dialog: {d.message}"))
        page.on("console", lambda m: print(f"console {m.type}: {m.text}", file=sys.stderr))
        page.on("pageerror", lambda e: print(f"page error: {e}", file=sys.stderr))
        page.on("requestfailed", lambda r: print(f"request failed: {r.url} {r.failure}", file=sys.stderr))
        page.goto(f"{url}/tree")
        seen["redirected_to_login"] = page.url.endswith("/login?next=/tree")
        page.fill("#username", user)
        page.fill("#password", password)
        page.click("#login-button")
        page.wait_for_url(f"{url}/tree")
        page.wait_for_function(
            "document.querySelectorAll('#tree tbody tr[data-path^=\"root/aria_\"]').length >= 14"
        )
        seen["apps"] = page.eval_on_selector_all(
            "#tree tbody tr", "rows => rows.map(r => r.dataset.path).filter(p => p.split('/').length === 2)"
        )
        page.screenshot(path=str(shots / "tree.png"), full_page=True)
        page.click('button[data-action="kill"][data-path="root/aria_interpret/api"]')
        seen["actions"] = actions
        try:
            page.wait_for_function(
                "(() => { const row = document.querySelector('tr[data-path=\"root/aria_interpret/api\"]');"
                " return row && row.querySelector('.restarts').textContent === '1'"
                " && row.querySelector('.state').textContent === 'running'; })()"
            )
        except Exception:
            print(
                json.dumps(
                    {"failed": "kill", "actions": actions, "row": page.inner_html("#tree tbody")[:3000]}
                )
            )
            raise
        seen["killed_and_back"] = True
        page.screenshot(path=str(shots / "tree-after-kill.png"), full_page=True)
        page.click("#nav-logs")
        page.wait_for_url(f"{url}/logs")
        page.wait_for_selector("#logs tbody tr")
        print("need-log-line", flush=True)
        sys.stdin.readline()
        page.wait_for_selector(f"text={MARKER}")
        seen["live_log"] = True
        page.screenshot(path=str(shots / "logs-live.png"), full_page=True)
        for name in PAGES:
            page.goto(f"{url}/" if name == "home" else f"{url}/{name}")
            page.wait_for_selector("#live-status:text('live')")
            page.wait_for_timeout(500)  # let the page draw what arrived, for the screenshot
            page.screenshot(path=str(shots / f"{name}.png"), full_page=True)
            seen[f"title:{name}"] = page.inner_text("h1")
        browser.close()
    return seen


if __name__ == "__main__":
    result = walk(sys.argv[1], Path(sys.argv[2]), sys.argv[3], sys.argv[4])
    print(json.dumps(result), flush=True)
