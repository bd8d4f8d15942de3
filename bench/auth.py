"""aria_auth figures: JWT verification against a bare joserfc verify, login latency, token issuance.

Run: ``.venv/bin/python -m bench.auth [--seconds 2] [--rounds 5] [--logins 60] [--argon2-memory-kib 65536]``

Boots a real node (OpenBao, PostgreSQL, aria_auth) in a temporary directory, then, in one run:

* **JWT verifications per second on one core**: ``AuthService.verify_claims(cached=False)`` (what
  ``verify_token`` does with a token it has not seen: cached JWKS, algorithm, type, signature,
  issuer, audience, times, revocation list) and, on the same token and thread, a bare
  ``joserfc.jwt.decode`` with the public key (signature only), swapping every 200 calls so both
  see the same machine load. Overhead = bare rate / aria rate - 1 (target: under 10 %). Also the
  rates for a token seen before (its signature already checked under a key still held; every
  claim checked again), which is what a client re-sending its token gets: ``await verify_token``
  (with the Principal it returns) and ``verify_claims``.
* **Login p50/p99**: sequential password logins (argon2id verify in a worker thread, the account
  row, the roles, an OpenBao signature and a refresh-token insert), with the argon2 parameters
  stated.
* **Token issuance per second**: ``issue_tokens`` for an authenticated user, access token only,
  with a refresh token, and with an ID token signed ES256 or RS256 (OpenID Connect's default), one
  at a time and 16 concurrently; next to it, raw OpenBao transit sign calls per second, ECDSA P-256
  and RSA 2048 (the floor every token pays: the private keys never leave OpenBao).

The machine may be shared: every figure is measured in this same run, and rounds alternate.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a file, this script's folder comes first on sys.path, where bench/queue.py would shadow the
# standard library's queue module: put the project root there instead.
sys.path[0] = str(Path(__file__).resolve().parent.parent)

import argparse  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

import trio  # noqa: E402
from joserfc import jwt  # noqa: E402
from joserfc.jwk import ECKey  # noqa: E402

import aria  # noqa: E402
from aria.apps.security.api import AppSecrets  # noqa: E402

PASSWORD = "a long enough benchmark password"


async def concurrent_rate(fn: Any, seconds: float, width: int) -> float:
    calls = 0
    began = time.perf_counter()
    deadline = began + seconds

    async def worker() -> None:
        nonlocal calls
        while time.perf_counter() < deadline:
            await fn()
            calls += 1

    async with trio.open_nursery() as nursery:
        for _ in range(width):
            nursery.start_soon(worker)
    return calls / (time.perf_counter() - began)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


async def bench(args: argparse.Namespace, data_dir: Path) -> None:
    config = {
        "node": {"data_dir": str(data_dir)},
        "log": {"level": "warning", "format": "json"},
        "auth": {
            "issuer": "https://bench.invalid/api/v1/auth",
            "argon2_time_cost": args.argon2_time_cost,
            "argon2_memory_kib": args.argon2_memory_kib,
            "argon2_parallelism": args.argon2_parallelism,
            "max_failed_logins": 1_000_000,
        },
    }
    print("booting a node (OpenBao, PostgreSQL, aria_auth)...", flush=True)
    async with aria.running(apps=["aria_auth"], config=config) as system:
        auth = await system.whereis("aria_auth").get()
        await auth.put_role("reader", ["notes:read"])
        await auth.add_user("bench", PASSWORD, roles=["reader"])
        token = (await auth.login("bench", PASSWORD)).access_token
        public = ECKey.import_key(auth.jwks()["keys"][0])
        assert jwt.decode(token, public, algorithms=["ES256"]).claims["name"] == "bench"

        print(
            f"\nJWT verification, one core, {args.rounds} rounds of {args.seconds:g} s (sides swap every 200)"
        )
        bare, ours, ours_async, seen = [], [], [], []
        for _ in range(args.rounds):
            spent = {"bare": 0.0, "ours": 0.0, "async": 0.0, "seen": 0.0}
            calls = 0
            deadline = time.perf_counter() + args.seconds
            while time.perf_counter() < deadline:
                began = time.perf_counter()
                for _ in range(200):
                    jwt.decode(token, public, algorithms=["ES256"])
                middle = time.perf_counter()
                for _ in range(200):
                    auth.verify_claims(token, cached=False)
                after = time.perf_counter()
                for _ in range(200):
                    await auth.verify_token(token)
                async_done = time.perf_counter()
                for _ in range(200):
                    auth.verify_claims(token)
                spent["bare"] += middle - began
                spent["ours"] += after - middle
                spent["async"] += async_done - after
                spent["seen"] += time.perf_counter() - async_done
                calls += 200
            bare.append(calls / spent["bare"])
            ours.append(calls / spent["ours"])
            ours_async.append(calls / spent["async"])
            seen.append(calls / spent["seen"])
        best_bare, best_ours, best_async = max(bare), max(ours), max(ours_async)
        for label, best, rounds in (
            ("bare joserfc jwt.decode (signature only)", best_bare, bare),
            ("aria verify_claims (all checks, signature)", best_ours, ours),
            ("aria await verify_token (token seen before)", best_async, ours_async),
            ("aria verify_claims (token seen before)", max(seen), seen),
        ):
            print(f"  {label:<42} {best:10.0f} /s  (median {statistics.median(rounds):.0f})")
        print(
            f"  overhead of aria's signature-checked path over bare: "
            f"{100 * (best_bare / best_ours - 1):+.1f} % (best), "
            f"{100 * (statistics.median(bare) / statistics.median(ours) - 1):+.1f} % (median)"
        )

        print(f"\nlogin latency, {args.logins} sequential logins, {auth.passwords.parameters.describe()}")
        latencies = []
        for _ in range(args.logins):
            began = time.perf_counter()
            await auth.login("bench", PASSWORD, ip="198.51.100.1")
            latencies.append(time.perf_counter() - began)
        hash_times = []
        for _ in range(10):
            began = time.perf_counter()
            await auth.passwords.verify(None, PASSWORD)
            hash_times.append(time.perf_counter() - began)
        p50, p99 = 1000 * percentile(latencies, 0.5), 1000 * percentile(latencies, 0.99)
        alone = 1000 * statistics.median(hash_times)
        print(f"  p50 {p50:7.1f} ms   p99 {p99:7.1f} ms   (argon2 verify alone: p50 {alone:.1f} ms)")

        row = await auth.store.principal_by_name("bench")
        secrets = AppSecrets(system.whereis("aria_security"), "aria_auth")

        async def access_only() -> None:
            await auth.issue_tokens(
                row, ["reader"], amr=["pwd"], client_id="", scope="", auth_time=0, refresh=False
            )

        async def with_refresh() -> None:
            await auth.issue_tokens(row, ["reader"], amr=["pwd"], client_id="", scope="", auth_time=0)

        async def raw_sign() -> None:
            await secrets.sign("jwt", b"header.payload", key_version=auth.verifier.ring.current)

        async def raw_sign_rsa() -> None:
            await secrets.sign(
                "jwt-rsa",
                b"header.payload",
                key_version=auth.verifier.ring.rsa_current,
                signature_algorithm="pkcs1v15",
            )

        def with_id_token(algorithm: str) -> Any:
            async def issue() -> None:
                await auth.issue_tokens(
                    row,
                    ["reader"],
                    amr=["pwd"],
                    client_id="bench-client",
                    scope="openid",
                    auth_time=0,
                    refresh=False,
                    id_token_alg=algorithm,
                )

            return issue

        print(f"\ntoken issuance, {args.seconds:g} s each")
        for label, fn in (
            ("OpenBao transit sign alone (the floor)", raw_sign),
            ("OpenBao RSA 2048 sign alone (RS256)", raw_sign_rsa),
            ("access token", access_only),
            ("access + refresh token", with_refresh),
            ("access + ES256 ID token (OIDC)", with_id_token("ES256")),
            ("access + RS256 ID token (OIDC default)", with_id_token("RS256")),
        ):
            one = await concurrent_rate(fn, args.seconds, 1)
            many = await concurrent_rate(fn, args.seconds, 16)
            print(f"  {label:<40} {one:8.0f} /s one at a time   {many:8.0f} /s with 16 concurrent")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="Length of each timed round.")
    parser.add_argument("--rounds", type=int, default=5, help="Alternating verification rounds.")
    parser.add_argument("--logins", type=int, default=60, help="Logins timed for p50/p99.")
    parser.add_argument("--argon2-time-cost", type=int, default=3)
    parser.add_argument("--argon2-memory-kib", type=int, default=65536)
    parser.add_argument("--argon2-parallelism", type=int, default=4)
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="aria-bench-auth-", dir="/tmp"))
    base.chmod(0o711)  # PostgreSQL runs as its own user when Aria runs as root
    try:
        trio.run(bench, args, base / "var")
    finally:
        shutil.rmtree(base, ignore_errors=True)
    print(f"\ncores on this machine: {os.cpu_count()}; figures are from this one run")


if __name__ == "__main__":
    main()
