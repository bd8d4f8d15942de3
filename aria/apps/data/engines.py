"""Database engines: the embedded PostgreSQL or CockroachDB child, or an external server.

All credentials live in aria_security (aria_data's namespace), never in a config file:
``db/password`` for the ``aria`` role every connection uses, and the engine's administrator
credential. PostgreSQL listens on 127.0.0.1 only, with SCRAM-SHA-256 for every TCP login and no
unix socket; CockroachDB runs in secure mode with certificates from ``cockroach cert``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import pwd
import shutil
import signal
import socket
import ssl
import stat
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import asyncpg
import structlog
import trio

from aria.apps.data.errors import EngineError
from aria.apps.data.pool import in_asyncio
from aria.apps.security.api import AppSecrets, CasConflict, SecretNotFound
from aria.config import PROJECT_ROOT
from aria.supervisor import ChildSpec, HttpProbe, LogLineProbe, process_child, run_command

log = structlog.get_logger("aria_data")

ROLE = "aria"
DATABASE = "aria"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def kept_ports(state_file: Path, names: Sequence[str], configured: dict[str, int]) -> dict[str, int]:
    """Ports from config, else chosen on first boot and remembered in ``state_file``."""
    saved: dict[str, int] = json.loads(state_file.read_text()) if state_file.exists() else {}
    chosen = {name: configured.get(name) or saved.get(name) or _free_port() for name in names}
    if chosen != saved:
        state_file.parent.mkdir(parents=True, exist_ok=True)
        state_file.write_text(json.dumps(chosen))
    return chosen


async def stored_password(secrets: AppSecrets, path: str) -> str:
    """The password at ``path`` in aria_data's secrets, created on first use."""
    try:
        return str((await secrets.get_secret(path))["value"])
    except SecretNotFound:
        pass
    password = await secrets.generate_password(32)
    try:
        await secrets.put_secret(path, {"value": password}, cas=0)
    except CasConflict:  # another process created it first
        return str((await secrets.get_secret(path))["value"])
    return password


def scram_verifier(password: str, iterations: int = 4096) -> str:
    """A SCRAM-SHA-256 verifier (RFC 7677), so the server never receives the plain password."""
    salt = os.urandom(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    stored_key = hashlib.sha256(hmac.new(salted, b"Client Key", "sha256").digest()).digest()
    server_key = hmac.new(salted, b"Server Key", "sha256").digest()

    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode()

    return f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"


def _quote_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


class Engine:
    """What aria_data needs from a database engine."""

    name = ""
    host = "127.0.0.1"
    port = 0
    user = ROLE
    database = DATABASE

    def children(self, secrets: AppSecrets) -> list[ChildSpec]:
        """The server's supervised process, if the engine runs one."""
        return []

    async def ensure_role(self, loop: Any, secrets: AppSecrets) -> str:
        """Make sure the ``aria`` role and database exist with the stored password; return it."""
        return await stored_password(secrets, "db/password")

    def ssl(self) -> ssl.SSLContext | bool | None:
        return None

    def describe(self) -> str:
        return f"{self.name} at {self.host}:{self.port}"

    def _binary(self, name: str) -> str:
        found = shutil.which(name)
        if found is None:
            raise EngineError(f"{name} is not installed (Debian: apt-get install postgresql-client)")
        return found

    async def backup(self, path: Path, password: str) -> None:
        """A custom-format pg_dump of the aria database into ``path``."""
        await self._tool(["pg_dump", "-Fc", "-f", str(path)], password)

    async def restore(self, path: Path, password: str) -> None:
        """Replace the aria database's objects with those in a pg_dump file."""
        await self._tool(["pg_restore", "--clean", "--if-exists", "--no-owner", str(path)], password)

    async def _tool(self, args: list[str], password: str) -> None:
        command = [
            self._binary(args[0]),
            *args[1:],
            "-h", self.host,
            "-p", str(self.port),
            "-U", self.user,
            "-d", self.database,
        ]  # fmt: skip
        try:
            await run_command(command, env={**os.environ, "PGPASSWORD": password})
        except subprocess.CalledProcessError as exc:
            raise EngineError(f"{args[0]} failed: {exc.stderr.decode(errors='replace').strip()}") from None

    def psql_command(self, password: str) -> tuple[list[str], dict[str, str]]:
        env = {**os.environ, "PGPASSWORD": password}
        args = [
            self._binary("psql"),
            "-h",
            self.host,
            "-p",
            str(self.port),
            "-U",
            self.user,
            "-d",
            self.database,
        ]
        return args, env


# ---- PostgreSQL ---------------------------------------------------------------------------------


def find_postgres_binaries(configured: str = "") -> Path | None:
    """The directory holding initdb and postgres: from config, PATH, or /usr/lib/postgresql/*/bin."""
    if configured:
        directory = Path(configured)
        return directory if (directory / "initdb").exists() else None
    on_path = shutil.which("initdb")
    if on_path and shutil.which("postgres"):
        return Path(on_path).resolve().parent
    versions = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name)
    )
    return versions[-1].parent if versions else None


class PostgresEngine(Engine):
    name = "postgres"

    def __init__(self, settings: Any, app_dir: Path, binaries: Path) -> None:
        self.settings = settings
        self.binaries = binaries
        self.cluster = Path(settings.postgres_dir) if settings.postgres_dir else app_dir / "postgres"
        self.port = kept_ports(app_dir / "postgres-port.json", ["port"], {"port": settings.port})["port"]
        self.run_as = settings.postgres_user if os.geteuid() == 0 else None

    def _binary(self, name: str) -> str:
        path = self.binaries / name
        return str(path) if path.exists() else super()._binary(name)

    def children(self, secrets: AppSecrets) -> list[ChildSpec]:
        args = [
            self._binary("postgres"),
            "-D", str(self.cluster),
            "-c", "listen_addresses=127.0.0.1",
            "-c", f"port={self.port}",
            "-c", "unix_socket_directories=",
            "-c", "default_transaction_isolation=serializable",
            "-c", "password_encryption=scram-sha-256",
            "-c", "logging_collector=off",
            "-c", f"max_connections={self.settings.max_connections}",
        ]  # fmt: skip
        account = pwd.getpwnam(self.run_as) if self.run_as else None
        server = process_child(
            "postgres",
            args,
            user=account.pw_uid if account else None,
            group=account.pw_gid if account else None,
            cwd=self.cluster.parent,
            ready=LogLineProbe(r"database system is ready to accept connections"),
            stop_signal=signal.SIGINT,  # PostgreSQL's fast shutdown
            shutdown=self.settings.shutdown_timeout,
            start_timeout=120.0,
        )

        async def start(*, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
            await self._prepare(secrets)
            await server.start(*server.args, task_status=task_status)

        return [ChildSpec("postgres", start, shutdown=server.shutdown, start_timeout=180.0, kind="process")]

    async def _prepare(self, secrets: AppSecrets) -> None:
        """initdb on first boot; clear leftovers of a postmaster that was killed."""
        account = pwd.getpwnam(self.run_as) if self.run_as else None
        if not (self.cluster / "PG_VERSION").exists():
            superuser_password = await stored_password(secrets, "db/superuser-password")
            await trio.to_thread.run_sync(self._check_reachable, account)
            await self._initdb(superuser_password, account)
        await trio.to_thread.run_sync(self._clear_stale_postmaster)

    def _check_reachable(self, account: pwd.struct_passwd | None) -> None:
        if account is None:
            return
        for parent in reversed(self.cluster.parents):
            if not parent.exists():
                break
            info = parent.stat()
            if info.st_uid != account.pw_uid and not info.st_mode & stat.S_IXOTH:
                raise EngineError(
                    f"the {account.pw_name!r} user (which runs PostgreSQL, since Aria runs as root) cannot "
                    f"enter {parent}: allow it (chmod o+x {parent}) or set data.postgres_dir to a directory "
                    "it can reach"
                )

    async def _initdb(self, superuser_password: str, account: pwd.struct_passwd | None) -> None:
        self.cluster.mkdir(parents=True, exist_ok=True, mode=0o700)
        password_file = self.cluster.parent / ".postgres-initdb-password"
        if account is not None:
            os.chown(self.cluster, account.pw_uid, account.pw_gid)
        fd = os.open(password_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(superuser_password + "\n")
        if account is not None:
            os.chown(password_file, account.pw_uid, account.pw_gid)
        try:
            await run_command(
                [
                    self._binary("initdb"),
                    "-D",
                    str(self.cluster),
                    "-U",
                    "postgres",
                    f"--pwfile={password_file}",
                    "--auth-local=peer",
                    "--auth-host=scram-sha-256",
                    "--encoding=UTF8",
                    "--locale=C",
                ],
                user=account.pw_uid if account else None,
                group=account.pw_gid if account else None,
                cwd=self.cluster.parent,
            )
        except subprocess.CalledProcessError as exc:
            raise EngineError(
                f"initdb of {self.cluster} failed: {exc.stderr.decode(errors='replace').strip()}"
            ) from None
        finally:
            password_file.unlink(missing_ok=True)
        log.info("PostgreSQL cluster initialised", cluster=str(self.cluster))

    def _clear_stale_postmaster(self) -> None:
        """After a kill -9 of the postmaster its backends linger briefly and keep its shared memory,
        which blocks a new start. They share its process group (it ran in a session of its own):
        kill them and wait until none is left alive (zombies hold no shared memory). A postmaster
        that is a zombie not yet reaped (a slow init) still passes PostgreSQL's own ``kill(pid, 0)``
        check of ``postmaster.pid``; once its group is gone the lock file is removed for it."""
        lock_file = self.cluster / "postmaster.pid"
        try:
            pid = int(lock_file.read_text().split()[0])
        except (FileNotFoundError, ValueError, IndexError):
            return
        if _process_alive(pid):
            return  # a running postmaster is not ours to touch (the data dir lock keeps other Arias out)
        deadline = time.monotonic() + 10.0
        while members := _live_members_of_group(pid):
            for member in members:
                try:
                    os.kill(member, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            if time.monotonic() > deadline:
                raise EngineError(
                    f"processes {members} of a killed PostgreSQL on {self.cluster} did not exit"
                )
            time.sleep(0.02)
        if Path(f"/proc/{pid}").exists():  # a zombie: dead, but its pid still answers kill(pid, 0)
            lock_file.unlink(missing_ok=True)

    async def _admin(self, loop: Any, secrets: AppSecrets) -> asyncpg.Connection:
        superuser_password = await stored_password(secrets, "db/superuser-password")
        connection: asyncpg.Connection = await in_asyncio(
            loop,
            asyncpg.connect,
            host=self.host,
            port=self.port,
            user="postgres",
            password=superuser_password,
            database="postgres",
            timeout=self.settings.connect_timeout,
        )
        return connection

    async def ensure_role(self, loop: Any, secrets: AppSecrets) -> str:
        password = await stored_password(secrets, "db/password")
        admin = await self._admin(loop, secrets)
        try:
            exists = await loop.run_aio_coroutine(
                admin.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", ROLE)
            )
            verb = "ALTER" if exists else "CREATE"
            # A verifier, not the password: statement logs never see it.
            await loop.run_aio_coroutine(
                admin.execute(f"{verb} ROLE {ROLE} LOGIN PASSWORD {_quote_literal(scram_verifier(password))}")
            )
            if not await loop.run_aio_coroutine(
                admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", DATABASE)
            ):
                await loop.run_aio_coroutine(admin.execute(f"CREATE DATABASE {DATABASE} OWNER {ROLE}"))
        finally:
            await loop.run_aio_coroutine(admin.close())
        return password


# ---- CockroachDB --------------------------------------------------------------------------------


class CockroachEngine(Engine):
    """``vendor_bin/cockroach start-single-node`` in secure mode (certificates from ``cockroach cert``)."""

    name = "cockroach"

    def __init__(self, settings: Any, app_dir: Path, binary: Path) -> None:
        self.settings = settings
        self.binary = binary
        self.root = app_dir / "cockroach"
        self.certs = self.root / "certs"
        ports = kept_ports(
            app_dir / "cockroach-ports.json", ["port", "http_port"], {"port": settings.port, "http_port": 0}
        )
        self.port, self.http_port = ports["port"], ports["http_port"]

    def children(self, secrets: AppSecrets) -> list[ChildSpec]:
        server = process_child(
            "cockroach",
            [
                str(self.binary),
                "start-single-node",
                f"--certs-dir={self.certs}",
                f"--listen-addr=127.0.0.1:{self.port}",
                f"--http-addr=127.0.0.1:{self.http_port}",
                f"--store=path={self.root / 'store'}",
                f"--listening-url-file={self.root / 'listening-url'}",
                f"--pid-file={self.root / 'cockroach.pid'}",
            ],
            ready=HttpProbe(
                f"https://127.0.0.1:{self.http_port}/health?ready=1", ca_file=self.certs / "ca.crt"
            ),
            stop_signal=signal.SIGTERM,
            shutdown=self.settings.shutdown_timeout,
            start_timeout=120.0,
        )

        async def start(*, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
            await self._certificates()
            await server.start(*server.args, task_status=task_status)

        return [ChildSpec("cockroach", start, shutdown=server.shutdown, start_timeout=180.0, kind="process")]

    async def _certificates(self) -> None:
        if (self.certs / "client.root.crt").exists():
            return
        self.certs.mkdir(parents=True, exist_ok=True, mode=0o700)
        ca_key = self.root / "ca.key"
        for args in (
            ["cert", "create-ca", f"--certs-dir={self.certs}", f"--ca-key={ca_key}"],
            [
                "cert",
                "create-node",
                "127.0.0.1",
                "localhost",
                f"--certs-dir={self.certs}",
                f"--ca-key={ca_key}",
            ],
            ["cert", "create-client", "root", f"--certs-dir={self.certs}", f"--ca-key={ca_key}"],
        ):
            await run_command([str(self.binary), *args])

    def ssl(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.certs / "ca.crt"))
        return context

    async def ensure_role(self, loop: Any, secrets: AppSecrets) -> str:
        password = await stored_password(secrets, "db/password")
        context = ssl.create_default_context(cafile=str(self.certs / "ca.crt"))
        context.load_cert_chain(self.certs / "client.root.crt", self.certs / "client.root.key")
        admin = await in_asyncio(
            loop,
            asyncpg.connect,
            host=self.host,
            port=self.port,
            user="root",
            database="defaultdb",
            ssl=context,
        )
        try:
            for statement in (
                f"CREATE USER IF NOT EXISTS {ROLE}",
                f"ALTER USER {ROLE} WITH PASSWORD {_quote_literal(password)}",
                f"CREATE DATABASE IF NOT EXISTS {DATABASE}",
                f"ALTER DATABASE {DATABASE} OWNER TO {ROLE}",
                f"GRANT ALL ON DATABASE {DATABASE} TO {ROLE}",
            ):
                await loop.run_aio_coroutine(admin.execute(statement))
        finally:
            await loop.run_aio_coroutine(admin.close())
        return password

    async def backup(self, path: Path, password: str) -> None:
        """CockroachDB's own BACKUP, into the node's external-IO directory, packed into ``path``."""
        raise EngineError(
            "backups of the embedded CockroachDB use its SQL: BACKUP DATABASE aria INTO 'nodelocal://1/...' "
            "(see aria/apps/data/README.md); `aria data backup` covers PostgreSQL"
        )

    async def restore(self, path: Path, password: str) -> None:
        raise EngineError(
            "restore the embedded CockroachDB with RESTORE DATABASE aria FROM ... (see the README)"
        )


# ---- external -----------------------------------------------------------------------------------


class ExternalEngine(Engine):
    """A server Aria does not run (a CockroachDB cluster a fleet of nodes shares)."""

    name = "external"

    def __init__(self, dsn: str) -> None:
        parts = urlsplit(dsn)
        if parts.scheme not in ("postgres", "postgresql", "cockroachdb"):
            raise EngineError(f"data.dsn {dsn!r} must start with postgresql://")
        if parts.password:
            raise EngineError("data.dsn must not contain a password: store it with `aria data set-password`")
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 5432
        self.user = unquote(parts.username or ROLE)
        self.database = parts.path.lstrip("/") or DATABASE
        query = dict(item.split("=", 1) for item in parts.query.split("&") if "=" in item)
        self._sslmode = query.get("sslmode", "prefer")
        self._sslrootcert = query.get("sslrootcert")

    def ssl(self) -> ssl.SSLContext | bool | None:
        if self._sslmode in ("verify-full", "verify-ca"):
            context = ssl.create_default_context(cafile=self._sslrootcert)
            context.check_hostname = self._sslmode == "verify-full"
            return context
        if self._sslmode == "require":
            return True
        return None

    async def ensure_role(self, loop: Any, secrets: AppSecrets) -> str:
        try:
            return str((await secrets.get_secret("db/password"))["value"])
        except SecretNotFound:
            raise EngineError(
                f"data.engine = external: no password for {self.user}@{self.host}:{self.port} in "
                "aria_security (apps/aria_data/db/password); store it with `aria data set-password`"
            ) from None


def _process_alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


def _live_members_of_group(group: int) -> list[int]:
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        if int(fields[2]) == group and fields[0] != "Z":
            members.append(int(entry.name))
    return members


def choose_engine(settings: Any, app_dir: Path) -> Engine:
    """The engine for ``data.engine`` (see the README for ``auto``).

    Raises:
        EngineError: if the chosen engine's binaries are missing, naming how to fix it.
    """
    vendored = PROJECT_ROOT / "vendor_bin" / "cockroach"
    binary = Path(settings.cockroach_binary) if settings.cockroach_binary else vendored
    postgres = find_postgres_binaries(settings.postgres_bin_dir)
    engine = settings.engine
    if engine == "auto":
        engine = "cockroach" if binary.is_file() else "postgres" if postgres else ""
        if not engine:
            raise EngineError(
                "no database engine found: install PostgreSQL (initdb and postgres; Debian: apt-get install "
                "postgresql), run `make vendor` for CockroachDB, or set data.engine = external with data.dsn"
            )
    if engine == "cockroach":
        if not binary.is_file():
            raise EngineError(f"data.engine = cockroach but {binary} does not exist: run `make vendor`")
        return CockroachEngine(settings, app_dir, binary)
    if engine == "postgres":
        if postgres is None:
            raise EngineError(
                "data.engine = postgres but initdb/postgres were not found: "
                "install PostgreSQL or set data.postgres_bin_dir"
            )
        return PostgresEngine(settings, app_dir, postgres)
    if not settings.dsn:
        raise EngineError("data.engine = external needs data.dsn (postgresql://user@host:port/database)")
    return ExternalEngine(settings.dsn)
