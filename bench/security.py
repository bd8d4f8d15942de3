"""aria_security figures, against the real OpenBao it supervises.

Run: ``.venv/bin/python bench/security.py [--calls N]``

Prints the p50/p99 latency of ``get_secret`` and ``encrypt`` through aria's API (trio, hvac in a
worker thread, typed errors) next to the same calls made with bare hvac on the same server and the
same token in the same run, and aria's overhead; then OpenBao's cold boot (initialise, unseal,
bootstrap) and warm restart (unseal) as Aria performs them. Target (issue #3): overhead under 20 %.
"""

from __future__ import annotations

import argparse
import base64
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import hvac
import trio

import aria
import aria.logging
from aria.apps.security.api import AppSecrets


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def describe(name: str, samples: list[float]) -> str:
    p50, p99 = percentile(samples, 0.5) * 1e3, percentile(samples, 0.99) * 1e3
    return f"{name:<34} p50 {p50:7.3f} ms   p99 {p99:7.3f} ms"


async def timed_async(calls: int, operation: Callable[[], object]) -> list[float]:
    samples = []
    for _ in range(calls):
        began = time.perf_counter()
        await operation()  # type: ignore[misc]
        samples.append(time.perf_counter() - began)
    return samples


def timed_sync(calls: int, operation: Callable[[], object]) -> list[float]:
    samples = []
    for _ in range(calls):
        began = time.perf_counter()
        operation()
        samples.append(time.perf_counter() - began)
    return samples


async def main(calls: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "var"
        config = {"node": {"data_dir": str(data_dir)}, "log": {"format": "json", "level": "warning"}}
        aria.logging.configure("warning", "json")
        began = time.perf_counter()
        async with aria.running(apps=["aria_security"], config=config, configure_logging=False):
            cold = time.perf_counter() - began
        began = time.perf_counter()
        async with aria.running(apps=["aria_security"], config=config, configure_logging=False):
            warm = time.perf_counter() - began
            keeper = await aria.whereis("aria_security").get()
            secrets = AppSecrets(aria.whereis("aria_security"), "aria_data")
            await secrets.put_secret("bench/value", {"value": "x" * 64})
            await secrets.encrypt("default", b"warm up")
            session = keeper._sessions["aria_data"]  # the same identity, for the bare client
            bare = hvac.Client(url=keeper.url, token=session.client.token, verify=keeper.ca_file)
            plaintext = base64.b64encode(b"p" * 64).decode()

            rounds = {
                "get_secret": (
                    lambda: secrets.get_secret("bench/value"),
                    lambda: bare.secrets.kv.v2.read_secret_version(
                        "apps/aria_data/bench/value", mount_point="aria", raise_on_deleted_version=True
                    ),
                ),
                "encrypt": (
                    lambda: secrets.encrypt("default", b"p" * 64),
                    lambda: bare.secrets.transit.encrypt_data("aria_data", plaintext, mount_point="transit"),
                ),
            }
            for name, (through_aria, through_hvac) in rounds.items():
                # Interleave the two in blocks so drift in machine speed hits both alike.
                aria_samples: list[float] = []
                hvac_samples: list[float] = []
                for _ in range(10):
                    aria_samples += await timed_async(calls // 10, through_aria)
                    hvac_samples += await trio.to_thread.run_sync(timed_sync, calls // 10, through_hvac)
                overhead = statistics.median(aria_samples) / statistics.median(hvac_samples) - 1
                print(describe(f"{name} through aria", aria_samples))
                print(describe(f"{name} with bare hvac", hvac_samples))
                print(f"{'':<34} aria's overhead at p50: {overhead * 100:+.1f} % (target < 20 %)")
    print(f"OpenBao cold boot to unsealed and bootstrapped: {cold:.2f} s")
    print(f"OpenBao warm restart to unsealed and active:    {warm:.2f} s")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1000)
    trio.run(main, parser.parse_args().calls)
