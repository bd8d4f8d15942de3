"""aria_coordinate's figure: a trivial authenticated endpoint through the whole gateway, next to a
bare quart-trio app on hypercorn, in the same run.

Run: ``.venv/bin/python -m bench.gateway [--seconds S] [--connections C]`` (needs Debian's ``wrk``).

The gateway runs with TLS off (plain HTTP on loopback) and everything else on: request ids,
authentication of a bearer JWT (aria_auth, cached JWKS), authorisation of the route's permission,
the token bucket (set high enough not to refuse), the circuit check, metrics and the per-request
log line (JSON, to /dev/null). The bare app answers the same JSON from one quart-trio route on
hypercorn's trio worker, in a process of its own. wrk (a second process) loads each in turn,
several rounds, alternating; besides wrk's figures, each server's CPU time per request is read
from /proc (it varies less than throughput when other work shares the machine, and throughput of
a one-threaded server is its inverse). Target (issue #9): the gateway keeps at least 70 % of the
bare throughput.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import trio

import aria
import aria.logging

BARE_APP = textwrap.dedent(
    """
    import sys, trio, hypercorn.trio, logging
    from hypercorn.config import Config
    from quart import jsonify
    from quart_trio import QuartTrio
    app = QuartTrio(__name__)
    @app.get("/api/v1/coordinate/ping")
    async def ping():
        return jsonify({"pong": True, "principal": "bench"})
    config = Config()
    config.bind = [f"127.0.0.1:{sys.argv[1]}"]
    config.accesslog = None
    config.errorlog = logging.getLogger("silent")
    trio.run(hypercorn.trio.serve, app, config)
    """
)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of process ``pid`` (all its threads) so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(
    url: str, token: str, seconds: float, connections: int, server: int
) -> tuple[float, float, float]:
    """wrk's requests per second and p99 (ms), and the server's CPU microseconds per request: a
    figure that holds better than throughput when other work shares the machine."""
    before = cpu_seconds(server)
    rate, p99, count = wrk(url, token, seconds, connections)
    return rate, p99, (cpu_seconds(server) - before) / count * 1e6


def wrk(url: str, token: str, seconds: float, connections: int) -> tuple[float, float, int]:
    """Requests per second, the 99th percentile latency in ms, and the requests answered."""
    load = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency"]
    result = subprocess.run(
        [*load, "-H", f"Authorization: Bearer {token}", url],
        capture_output=True,
        text=True,
        check=True,
    )
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", result.stdout).group(1))  # type: ignore[union-attr]
    value, unit = re.search(r"\s99%\s+([\d.]+)(\w+)", result.stdout).groups()  # type: ignore[union-attr]
    p99 = float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", result.stdout)
    if non_2xx:
        raise RuntimeError(f"{url} answered {non_2xx.group(1)} requests with errors:\n{result.stdout}")
    count = int(re.search(r"(\d+) requests in", result.stdout).group(1))  # type: ignore[union-attr]
    return rate, p99, count


async def main(seconds: float, connections: int, rounds: int) -> None:
    if shutil.which("wrk") is None:
        print("wrk is not installed (Debian: apt-get install wrk); nothing measured")
        return
    base = Path(tempfile.mkdtemp(prefix="aria-bench-", dir="/tmp"))
    os.chmod(base, 0o711)  # PostgreSQL runs as the postgres user when this runs as root
    config = {
        "node": {"data_dir": str(base / "var")},
        "log": {"format": "json", "level": "info"},
        "coordinate": {"port": 0, "tls": False, "rate_limit": 1e6, "rate_burst": 1_000_000},
    }
    bare_port = free_port()
    bare = await trio.lowlevel.open_process(
        [sys.executable, "-c", BARE_APP, str(bare_port)], stderr=subprocess.DEVNULL
    )
    try:
        with open(os.devnull, "w") as sink:  # noqa: ASYNC230 - opened once, before measuring
            aria.logging.configure("info", "json", stream=sink)
            async with aria.running(config=config, configure_logging=False):
                auth = await aria.whereis("aria_auth").get()
                await auth.put_role("bench", ["coordinate:read"])
                await auth.add_user("bench", "a bench password of some length", roles=["bench"])
                token = (await auth.login("bench", "a bench password of some length")).access_token
                gateway = aria.whereis("aria_coordinate").url + "/api/v1/coordinate/ping"
                plain = f"http://127.0.0.1:{bare_port}/api/v1/coordinate/ping"
                await trio.to_thread.run_sync(wrk, gateway, token, 2, connections)  # warm-up
                await trio.to_thread.run_sync(wrk, plain, token, 2, connections)
                results: dict[str, list[tuple[float, float, float]]] = {"gateway": [], "bare": []}
                servers = {"gateway": os.getpid(), "bare": bare.pid}
                urls = {"gateway": gateway, "bare": plain}
                for _ in range(rounds):
                    for name in ("gateway", "bare"):
                        measured = await trio.to_thread.run_sync(
                            measure, urls[name], token, seconds, connections, servers[name]
                        )
                        results[name].append(measured)
    finally:
        bare.terminate()
        await bare.wait()
        shutil.rmtree(base, ignore_errors=True)
    rate, cpu = {}, {}
    for name, runs in results.items():
        rate[name] = statistics.median(r for r, _, _ in runs)
        cpu[name] = statistics.median(c for _, _, c in runs)
        p99 = statistics.median(p for _, p, _ in runs)
        print(
            f"{name:<8} {rate[name]:8.0f} requests/s   p99 {p99:7.2f} ms   "
            f"server CPU {cpu[name]:6.0f} us/request   (medians of {rounds})"
        )
    print(
        f"the gateway keeps {rate['gateway'] / rate['bare'] * 100:.0f} % of the bare throughput "
        f"({cpu['bare'] / cpu['gateway'] * 100:.0f} % by server CPU per request; target >= 70 %)"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    arguments = parser.parse_args()
    trio.run(main, arguments.seconds, arguments.connections, arguments.rounds)
