"""aria_storage figures: ``aria storage make``/``extract`` against ``casync make``/``extract``.

Run: ``.venv/bin/python -m bench.storage [--size-mib 256] [--rounds 3] [--memory-gib 1]``

Makes a test file (half random bytes, half random pieces repeated 2 to 5 times, so chunks repeat),
then, in the same run and alternating the order, times each tool's ``make`` into an empty local
zstd store and its ``extract`` of its own index into a new file (the store made in the same round).
Both run as the commands a user types, so process start-up counts for both. The ratio is casync's
time over aria's: at least 1.0 means aria is at least as fast. Wall time is what a user waits (and
depends on what else the machine runs); CPU time (user + system) is what the work costs. Then the
peak memory (max RSS of the process) of each tool's make and extract of a larger file. Needs casync
(Debian package ``casync``).

Before timing, aria's modules are compiled to bytecode (``compileall``), as an installed aria has
them: with ``PYTHONDONTWRITEBYTECODE`` set, an editable checkout would otherwise recompile its own
modules on every start. The chunker's boundary scan (C extension, or the numpy fallback) and how
chunk IDs are hashed (eight at once with AVX-512, or hashlib) are printed.

Targets (issue #5): aria at least as fast as casync for make and extract; peak memory under
200 MiB for a 1 GiB file.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

MIB = 1 << 20


def aria_command() -> list[str]:
    script = Path(sys.executable).with_name("aria")
    return [str(script)] if script.exists() else [sys.executable, "-m", "aria.cli"]


def make_test_file(path: Path, size: int, seed: int) -> str:
    """Half random, half repeated random pieces; returns the file's sha256."""
    rng = np.random.default_rng(seed)
    digest = hashlib.sha256()
    with open(path, "wb") as handle:
        written = 0
        while written < size // 2:
            block = rng.integers(0, 256, min(16 * MIB, size // 2 - written), dtype=np.uint8).tobytes()
            handle.write(block)
            digest.update(block)
            written += len(block)
        while written < size:
            piece = rng.integers(0, 256, int(rng.integers(1000, 300_000)), dtype=np.uint8).tobytes()
            run = piece * int(rng.integers(2, 6))
            run = run[: size - written]
            handle.write(run)
            digest.update(run)
            written += len(run)
    return digest.hexdigest()


def timed(command: list[str], *, watch_memory: bool = False) -> tuple[float, float, int]:
    """Wall seconds, CPU seconds (user + system) and peak RSS (KiB, 0 unless ``watch_memory``).

    CPU time says what the work costs whatever else the machine runs; wall time is what a user
    waits. The peak is the process's own high-water mark (``VmHWM`` in /proc), read until it exits:
    the ``ru_maxrss`` that ``wait4`` reports would include this benchmark's own memory, inherited
    through the spawn. The command must succeed.
    """
    began = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = 0
    while watch_memory and process.poll() is None:
        peak = max(peak, high_water_mark(process.pid))
        time.sleep(0.01)  # sampling a monotonic counter; the last sample is within 10 ms of exit
    if process.returncode is None:
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        cpu = usage.ru_utime + usage.ru_stime
    else:  # reaped by poll(): fall back to the children's totals, which then include it
        cpu = float("nan")
    elapsed = time.perf_counter() - began
    error = process.stderr.read().decode() if process.stderr else ""
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({process.returncode}): {error.strip()}")
    return elapsed, cpu, peak


def high_water_mark(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass  # it just exited
    return 0


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(16 * MIB):
            digest.update(block)
    return digest.hexdigest()


def fresh(*paths: Path) -> None:
    for path in paths:
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def commands(tool: str, work: Path, source: Path) -> tuple[list[str], list[str]]:
    store, index, out = work / f"{tool}.store", work / f"{tool}.caibx", work / f"{tool}.out"
    if tool == "casync":
        make = ["casync", "make", f"--store={store}", str(index), str(source)]
        extract = ["casync", "extract", f"--store={store}", str(index), str(out)]
    else:
        make = [*aria_command(), "storage", "make", str(index), str(source), "-s", str(store)]
        extract = [*aria_command(), "storage", "extract", str(index), str(out), "-s", str(store)]
    return make, extract


def speed(work: Path, size: int, rounds: int) -> None:
    source = work / "input"
    expected = make_test_file(source, size, seed=5)
    sha256_of(source)  # into the page cache for both tools alike
    times: dict[tuple[str, str], list[float]] = {}
    cpu: dict[tuple[str, str], list[float]] = {}
    for round_number in range(rounds):
        order = ["casync", "aria"] if round_number % 2 == 0 else ["aria", "casync"]
        for tool in order:
            make, extract = commands(tool, work, source)
            fresh(work / f"{tool}.store", work / f"{tool}.caibx", work / f"{tool}.out")
            for verb, command in (("make", make), ("extract", extract)):
                wall, seconds, _ = timed(command)
                times.setdefault((tool, verb), []).append(wall)
                cpu.setdefault((tool, verb), []).append(seconds)
            if round_number == 0 and sha256_of(work / f"{tool}.out") != expected:
                raise SystemExit(f"{tool} extract did not reproduce the input")
    aria_index = (work / "aria.caibx").read_bytes()
    casync_index = (work / "casync.caibx").read_bytes()
    same_table = aria_index[24:] == casync_index[24:]
    print(f"test file: {size // MIB} MiB (half random, half repeated pieces), {rounds} rounds, medians")
    print(f"aria and casync indexes have the same chunk table: {same_table}")
    for verb in ("make", "extract"):
        ours = statistics.median(times[("aria", verb)])
        theirs = statistics.median(times[("casync", verb)])
        our_cpu = statistics.median(cpu[("aria", verb)])
        their_cpu = statistics.median(cpu[("casync", verb)])
        print(
            f"{verb:8} wall: aria {ours:6.2f} s ({size / MIB / ours:6.1f} MiB/s)  "
            f"casync {theirs:6.2f} s ({size / MIB / theirs:6.1f} MiB/s)  "
            f"ratio casync/aria {theirs / ours:5.2f}"
        )
        print(
            f"{'':8} cpu:  aria {our_cpu:6.2f} s                  casync {their_cpu:6.2f} s"
            f"                  ratio casync/aria {their_cpu / our_cpu:5.2f}"
        )
    fresh(source, *(work / f"{tool}{suffix}" for tool in ("aria", "casync") for suffix in (".store", ".out")))


def memory(work: Path, size: int) -> None:
    source = work / "big"
    make_test_file(source, size, seed=6)
    print(f"peak memory (max RSS) for a {size / (1 << 30):g} GiB file:")
    for tool in ("aria", "casync"):
        make, extract = commands(tool, work, source)
        fresh(work / f"{tool}.store", work / f"{tool}.caibx", work / f"{tool}.out")
        make_seconds, _, make_rss = timed(make, watch_memory=True)
        extract_seconds, _, extract_rss = timed(extract, watch_memory=True)
        print(
            f"  {tool:7} make {make_rss / 1024:6.1f} MiB ({make_seconds:5.1f} s)   "
            f"extract {extract_rss / 1024:6.1f} MiB ({extract_seconds:5.1f} s)"
        )
        fresh(work / f"{tool}.store", work / f"{tool}.out")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size-mib", type=int, default=256, help="Size of the timed test file.")
    parser.add_argument("--rounds", type=int, default=3, help="Timed rounds per tool (median reported).")
    parser.add_argument("--memory-gib", type=float, default=1.0, help="File size for peak memory; 0 skips.")
    arguments = parser.parse_args()
    if shutil.which("casync") is None:
        # Not an error for `make bench`, which runs every bench in turn: say why nothing was measured.
        print("casync is not installed (Debian package casync), the peer this bench measures: skipped")
        return
    import aria
    from aria.apps.storage.chunker import SCANNER
    from aria.apps.storage.format import SHA512_256_MANY

    subprocess.run([sys.executable, "-m", "compileall", "-q", str(Path(aria.__file__).parent)], check=True)
    print(f"cores available: {len(os.sched_getaffinity(0))}, load average: {os.getloadavg()[0]:.2f}")
    print(f"aria's boundary scan: {SCANNER}, chunk IDs (SHA-512/256 of many chunks): {SHA512_256_MANY}")
    with tempfile.TemporaryDirectory(prefix="aria-bench-storage-") as directory:
        work = Path(directory)
        speed(work, arguments.size_mib * MIB, arguments.rounds)
        if arguments.memory_gib > 0:
            memory(work, int(arguments.memory_gib * (1 << 30)))


if __name__ == "__main__":
    main()
