"""``aria storage <verb>``: desync's verbs and flags, one-line errors, exit codes."""

from __future__ import annotations

import functools
import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from aria.cli import main

BLOB1_SHA256 = "eb2fb317e36a1296ee6018371ca621017634f4a4790e4990846126b251147fca"
BLOB2_SHA256 = "e26d0014dd1df50931d32f4ab518efb1ddc2f6d1eb842b3aa1bade2c0c33b01f"


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["storage", *args])
    return result.exit_code, result.stdout, result.stderr


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class TestVerbs:
    def test_make_then_extract_then_info(self, desync_data: Path, tmp_path: Path) -> None:
        store = str(tmp_path / "store")
        code, _, err = run(
            "make", str(tmp_path / "b.caibx"), str(desync_data / "blob1"), "-s", store, "-m", "2:8:32"
        )
        assert code == 0, err
        assert (tmp_path / "b.caibx").read_bytes() == (desync_data / "blob1.caibx").read_bytes()
        code, _, err = run(
            "extract", str(tmp_path / "b.caibx"), str(tmp_path / "out"), "-s", store, "-n", "2"
        )
        assert code == 0, err
        assert sha256_of(tmp_path / "out") == BLOB1_SHA256
        code, out, _ = run("info", str(tmp_path / "b.caibx"), "-s", store)
        summary = json.loads(out)
        assert (
            summary["total-chunks"] == 161 and summary["in-store"] == 131 and summary["dedup-size"] == 1114112
        )

    def test_extract_with_seed_and_cache(self, desync_data: Path, tmp_path: Path) -> None:
        code, _, err = run(
            "extract",
            str(desync_data / "blob2.caibx"),
            str(tmp_path / "blob2"),
            "-s",
            str(desync_data / "blob2.store"),
            "--seed",
            str(desync_data / "blob1.caibx"),
            "-c",
            str(tmp_path / "cache"),
        )
        assert code == 0, err
        assert sha256_of(tmp_path / "blob2") == BLOB2_SHA256
        assert len(list((tmp_path / "cache").rglob("*.cacnk"))) == 7  # only what was fetched

    def test_cat_with_offset_and_length(self, desync_data: Path) -> None:
        blob = (desync_data / "blob1").read_bytes()
        result = CliRunner().invoke(
            main,
            [
                "storage",
                "cat",
                str(desync_data / "blob1.caibx"),
                "-s",
                str(desync_data / "blob1.store"),
                "--offset",
                "3000",
                "--length",
                "100000",
            ],
        )
        assert result.exit_code == 0
        assert result.stdout_bytes == blob[3000:103000]

    def test_chop_verify_prune_cache_list(self, desync_data: Path, tmp_path: Path) -> None:
        store = str(tmp_path / "store")
        index = str(desync_data / "blob1.caibx")
        assert run("chop", index, str(desync_data / "blob1"), "-s", store)[0] == 0
        code, out, _ = run("verify", "-s", store)
        assert code == 0 and out.strip() == "131 chunks checked, 0 invalid"
        victim = next((tmp_path / "store").rglob("*.cacnk"))
        victim.write_bytes(b"rot")
        code, out, err = run("verify", "-s", store)
        assert code == 1 and victim.stem in err and "1 invalid" in out
        assert run("verify", "-s", store, "-r")[0] == 0
        assert not victim.exists()
        code, _, err = run("cache", index, "--from", str(desync_data / "blob1.store"), "--to", store)
        assert code == 0 and "130 already there, 1 copied" in err
        code, out, err = run("prune", "-s", store, str(desync_data / "blob2.caibx"), "--dry-run")
        assert code == 0 and "would delete 7 chunks" in err and len(out.split()) == 7
        code, _, err = run("prune", "-s", store, str(desync_data / "blob2.caibx"))
        assert code == 2 and "without confirmation: pass -y" in err
        assert run("prune", "-s", store, str(desync_data / "blob2.caibx"), "-y")[0] == 0
        assert len(list((tmp_path / "store").rglob("*.cacnk"))) == 124
        code, out, _ = run("list-chunks", index)
        assert out.split()[0] == "686d5bf0fe02c431327829269ee90938d56921f01d0583f4fe94f1cd98c82cd8"
        assert len(out.split()) == 161


class TestBadInput:
    """Every bad input is one line naming the problem; nothing stored is touched."""

    def test_unknown_scheme(self, desync_data: Path, tmp_path: Path) -> None:
        code, _, err = run(
            "extract", str(desync_data / "blob1.caibx"), str(tmp_path / "o"), "-s", "ftp://host/x"
        )
        assert code == 1
        assert err.strip() == (
            "aria storage extract: store location 'ftp://host/x': unknown scheme 'ftp'; "
            "supported: file, http, https, s3+http, s3+https, sftp, memory"
        )

    def test_foreign_truncated_and_missing_indexes(self, desync_data: Path, tmp_path: Path) -> None:
        (tmp_path / "notes.caibx").write_text("hello, I am not an index but I am long enough to be read" * 3)
        code, _, err = run("info", str(tmp_path / "notes.caibx"))
        assert code == 1 and "notes.caibx is not a valid casync index: wrong magic" in err
        (tmp_path / "cut.caibx").write_bytes((desync_data / "blob1.caibx").read_bytes()[:3000])
        code, _, err = run("extract", str(tmp_path / "cut.caibx"), str(tmp_path / "o"), "-s", str(tmp_path))
        assert code == 1 and "cut.caibx is not a valid casync index: truncated in the chunk table" in err
        code, _, err = run("info", str(tmp_path / "absent.caibx"))
        assert code == 1 and "cannot read index" in err and "No such file" in err

    def test_missing_chunks_and_no_store(self, desync_data: Path, tmp_path: Path) -> None:
        store = tmp_path / "store"
        shutil.copytree(desync_data / "blob1.store", store)
        before = sorted(p.name for p in store.rglob("*"))
        code, _, err = run("extract", str(desync_data / "blob2.caibx"), str(tmp_path / "o"), "-s", str(store))
        assert code == 1 and "is missing from store" in err and "(and 6 more chunks)" in err
        assert sorted(p.name for p in store.rglob("*")) == before
        assert not (tmp_path / "o").exists()
        code, _, err = run("cat", str(desync_data / "blob1.caibx"))
        assert code == 2 and "no store given: use -s STORE" in err

    def test_an_unwritable_index_path(self, desync_data: Path, tmp_path: Path) -> None:
        code, _, err = run("make", str(tmp_path / "no" / "dir" / "x.caibx"), str(desync_data / "blob1"))
        assert code == 1 and "cannot write" in err and "x.caibx" in err

    def test_bad_flags(self, desync_data: Path, tmp_path: Path) -> None:
        code, _, err = run("make", str(tmp_path / "x.caibx"), str(desync_data / "blob1"), "-m", "1:2")
        assert code == 1 and "must be min:avg:max in KiB" in err
        code, _, err = run("make", str(tmp_path / "x.caibx"), str(desync_data / "blob1"), "--digest", "md5")
        assert code == 1 and "unknown digest 'md5'" in err
        code, _, err = run("make", str(tmp_path / "x.caibx"), str(tmp_path / "nothing"))
        assert code == 1 and "nothing': No such file or directory" in err
        assert not (tmp_path / "x.caibx").exists()

    @pytest.mark.parametrize("verb", ["make", "extract", "cat", "chop", "verify", "prune", "info", "cache"])
    def test_every_verb_has_help(self, verb: str) -> None:
        code, out, _ = run(verb, "--help")
        assert code == 0 and f"storage {verb} [OPTIONS]" in out


class TestChunkServerCommand:
    async def test_serves_a_store_until_stopped(self, desync_data: Path) -> None:
        import socket
        import sys

        import httpx
        import trio

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        command = [
            sys.executable,
            "-m",
            "aria.cli",
            "storage",
            "chunk-server",
            "-s",
            str(desync_data / "blob1.store"),
        ]
        chunk = "686d5bf0fe02c431327829269ee90938d56921f01d0583f4fe94f1cd98c82cd8"
        async with trio.open_nursery() as nursery:
            process = await nursery.start(
                functools.partial(
                    trio.run_process,
                    [*command, "--listen", f"127.0.0.1:{port}"],
                    stderr=subprocess.PIPE,
                    check=False,
                )
            )
            banner = b""
            while b"serving" not in banner:  # the command announces itself once it listens
                banner += await process.stderr.receive_some(1024)
            async with httpx.AsyncClient() as client:
                response = await client.get(f"http://127.0.0.1:{port}/{chunk[:4]}/{chunk}.cacnk")
            assert response.status_code == 200
            process.terminate()
        assert process.returncode is not None  # it stopped on SIGTERM, leaving nothing behind


class TestSeeds:
    def test_a_missing_seed_is_named(self, desync_data: Path, tmp_path: Path) -> None:
        code, _, err = run(
            "extract",
            str(desync_data / "blob1.caibx"),
            str(tmp_path / "out"),
            "-s",
            str(desync_data / "blob1.store"),
            "--seed",
            str(tmp_path / "no-such-seed"),
        )
        assert code == 1 and "no-such-seed': No such file or directory" in err
        assert not (tmp_path / "out").exists()


class TestCrashSafety:
    def test_a_killed_make_leaves_only_whole_chunks_and_resumes(self, tmp_path: Path) -> None:
        """SIGKILL in the middle of make: every visible chunk verifies, and a re-run adds the rest."""
        import random
        import signal
        import sys
        import time

        data = tmp_path / "data"
        data.write_bytes(random.Random(3).randbytes(48 << 20))
        store = tmp_path / "store"
        command = [sys.executable, "-m", "aria.cli", "storage", "make", str(tmp_path / "d.caibx"), str(data)]
        process = subprocess.Popen([*command, "-s", str(store), "-n", "2"], stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while process.poll() is None and time.monotonic() < deadline:
            if store.exists() and sum(1 for _ in store.rglob("*.cacnk")) >= 20:
                process.send_signal(signal.SIGKILL)
                break
            time.sleep(0.005)  # polling another process's progress on disk
        process.wait()
        killed = process.returncode == -signal.SIGKILL
        code, out, _ = run("verify", "-s", str(store))
        assert code == 0 and out.strip().endswith(", 0 invalid")
        if killed:
            assert not (tmp_path / "d.caibx").exists()  # the index is written only at the end
        before = sum(1 for _ in store.rglob("*.cacnk"))
        assert run("make", str(tmp_path / "d.caibx"), str(data), "-s", str(store))[0] == 0
        after = sum(1 for _ in store.rglob("*.cacnk"))
        code, _, _ = run("extract", str(tmp_path / "d.caibx"), str(tmp_path / "out"), "-s", str(store))
        assert code == 0 and (tmp_path / "out").read_bytes() == data.read_bytes()
        if killed:
            assert 20 <= before < after
