"""The keeper: brings OpenBao up (init, unseal, bootstrap), holds each app's identity, and runs
every OpenBao call with typed errors and waiting through restarts.

hvac is a blocking library: every call runs in a worker thread (``trio.to_thread``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import hvac
import hvac.exceptions
import requests
import requests.adapters
import structlog
import trio

from aria.apps.security.errors import (
    PermissionDenied,
    Sealed,
    SecretNotFound,
    SecurityError,
    SecurityUnavailable,
)
from aria.apps.security.server import Layout
from aria.apps.security.tls import LocalCA
from aria.apps.security.unseal import KeySource, OperatorKeySource, open_credential, seal_credential

log = structlog.get_logger("aria_security")

T = TypeVar("T")

KV_MOUNT = "aria"
TRANSIT_MOUNT = "transit"
APPROLE_MOUNT = "approle"
ADMIN_ROLE = "aria_security-admin"
ADMIN_POLICY = "aria-security-admin"
HTTP_TIMEOUT = 10.0
POOL_CONNECTIONS = 40  # trio.to_thread's default limit of worker threads

ADMIN_POLICY_TEXT = f"""
# aria_security's own identity: manages the apps' policies, roles and keys; seals on request.
path "sys/policies/acl/aria-app-*" {{ capabilities = ["create", "read", "update", "list"] }}
path "sys/policy/aria-app-*" {{ capabilities = ["create", "read", "update"] }}
path "auth/{APPROLE_MOUNT}/role/*" {{ capabilities = ["create", "read", "update", "list"] }}
path "auth/token/revoke-accessor" {{ capabilities = ["update"] }}
path "auth/token/lookup-accessor" {{ capabilities = ["update"] }}
path "{TRANSIT_MOUNT}/keys/*" {{ capabilities = ["create", "read", "update"] }}
path "sys/seal" {{ capabilities = ["update", "sudo"] }}
path "sys/audit-hash/*" {{ capabilities = ["update"] }}
"""


def app_policy(app: str) -> str:
    """The policy of one app: its own KV subtree and transit keys named for it, nothing else."""
    keys = [app, f"{app}-*"]
    transit = "\n".join(
        f'path "{TRANSIT_MOUNT}/{operation}/{key}" {{ capabilities = ["create", "update"] }}'
        for operation in (
            "encrypt",
            "decrypt",
            "rewrap",
            "datakey/plaintext",
            "datakey/wrapped",
            "sign",
            "verify",
        )
        for key in keys
    )
    return f"""
# Written by aria_security: {app} reaches only its own secrets and keys.
path "{KV_MOUNT}/data/apps/{app}/*" {{ capabilities = ["create", "read", "update", "patch", "delete"] }}
path "{KV_MOUNT}/metadata/apps/{app}" {{ capabilities = ["list"] }}
path "{KV_MOUNT}/metadata/apps/{app}/*" {{ capabilities = ["read", "list", "delete"] }}
path "{KV_MOUNT}/delete/apps/{app}/*" {{ capabilities = ["update"] }}
path "{KV_MOUNT}/undelete/apps/{app}/*" {{ capabilities = ["update"] }}
path "{KV_MOUNT}/destroy/apps/{app}/*" {{ capabilities = ["update"] }}
path "{TRANSIT_MOUNT}/keys/{app}" {{ capabilities = ["read"] }}
path "{TRANSIT_MOUNT}/keys/{app}/rotate" {{ capabilities = ["update"] }}
path "{TRANSIT_MOUNT}/keys/{app}-*" {{ capabilities = ["create", "read", "update"] }}
{transit}
path "sys/tools/random/*" {{ capabilities = ["update"] }}
"""


@dataclass
class _AppSession:
    """One app's identity: its token and the client that carries it."""

    app: str
    client: hvac.Client
    expires_at: float = 0.0
    ttl: float = 0.0
    accessor: str = ""
    logins: int = 0
    renewals: int = 0
    lock: trio.Lock = field(default_factory=trio.Lock)


@dataclass(frozen=True)
class SessionStatistics:
    """How an app's identity has been kept alive (see :meth:`Keeper.statistics`)."""

    logins: int
    renewals: int
    ttl: float


_UNAVAILABLE = (
    requests.exceptions.ConnectionError,
    requests.exceptions.Timeout,
    hvac.exceptions.VaultDown,
    hvac.exceptions.InternalServerError,
    hvac.exceptions.RateLimitExceeded,
    hvac.exceptions.BadGateway,
    hvac.exceptions.VaultNotInitialized,
)


class Keeper:
    """aria_security's running service; ``aria.whereis("aria_security")`` reaches it.

    Apps use it through :class:`aria.apps.security.api.AppSecrets`; operators through
    ``aria security ...``.
    """

    def __init__(
        self,
        *,
        settings: Any,
        layout: Layout,
        ca: LocalCA,
        port: int,
        key_source: KeySource,
        apps: list[str],
        binary: str,
        binary_source: str,
    ) -> None:
        self.settings = settings
        self.layout = layout
        self.ca = ca
        self.url = f"https://127.0.0.1:{port}"
        self.key_source = key_source
        self.apps = [app for app in apps if app != "aria_security"]
        self.binary = binary
        self.binary_source = binary_source
        self.version = ""
        self._admin = self._client()
        self._admin_expires_at = math.inf
        self._shares: list[str] = []
        self._sessions: dict[str, _AppSession] = {}
        self._sessions_lock = trio.Lock()
        self._sealed_on_purpose = False
        self._wake = trio.Event()
        self._nursery: trio.Nursery | None = None
        self._status: dict[str, Any] = {"initialized": False, "sealed": True}

    # ---- running ------------------------------------------------------------------------------

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Bring OpenBao up, report ready, then watch it and renew tokens until stopped."""
        await self._bring_up()
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            nursery.start_soon(self._watch)
            nursery.start_soon(self._renew_admin)
            task_status.started(self)
            await trio.sleep_forever()

    async def _bring_up(self) -> None:
        health = await self._read_health(wait=True)
        if not health.get("initialized"):
            await self._initialize()
        else:
            self._shares = await self.key_source.load()
            if health.get("sealed"):
                await self._unseal(self._shares)
            await self._wait_active()
        credential = open_credential(self.layout.admin_file, self._shares)
        await self._admin_login(credential)
        await self._ensure_apps()
        await self._refresh_status()
        log.info(
            "OpenBao ready",
            version=self._status.get("version"),
            binary=self.binary,
            binary_source=self.binary_source,
            unseal_source=self.key_source.describe(),
            apps=len(self.apps),
        )

    async def _initialize(self) -> None:
        settings = self.settings
        began = time.monotonic()
        result = await self._thread(self._admin.sys.initialize, settings.key_shares, settings.key_threshold)
        shares: list[str] = result["keys"]
        root = self._client(token=result["root_token"])
        self.key_source.store_initial(shares)
        self._shares = shares
        await self._unseal(shares)
        await self._wait_active()

        def bootstrap() -> dict[str, str]:
            root.sys.enable_secrets_engine("kv", path=KV_MOUNT, options={"version": "2"})
            root.sys.enable_secrets_engine("transit", path=TRANSIT_MOUNT)
            root.sys.enable_auth_method("approle", path=APPROLE_MOUNT)
            root.sys.create_or_update_policy(ADMIN_POLICY, ADMIN_POLICY_TEXT)
            root.auth.approle.create_or_update_approle(
                ADMIN_ROLE,
                token_policies=[ADMIN_POLICY],
                token_period="1h",
                secret_id_ttl="0",
                secret_id_num_uses=0,
                mount_point=APPROLE_MOUNT,
            )
            role_id = root.auth.approle.read_role_id(ADMIN_ROLE, mount_point=APPROLE_MOUNT)["data"]["role_id"]
            secret = root.auth.approle.generate_secret_id(ADMIN_ROLE, mount_point=APPROLE_MOUNT)
            return {"role_id": role_id, "secret_id": secret["data"]["secret_id"]}

        credential = await self._thread(bootstrap)
        await trio.to_thread.run_sync(
            seal_credential, self.layout.admin_file, credential, shares, settings.key_threshold
        )
        await self._thread(root.auth.token.revoke_self)
        log.info(
            "OpenBao initialised and bootstrapped; root token revoked",
            shares=settings.key_shares,
            threshold=settings.key_threshold,
            seconds=round(time.monotonic() - began, 3),
        )

    async def _unseal(self, shares: list[str]) -> None:
        status = await self._thread(self._admin.sys.submit_unseal_keys, shares)
        if status.get("sealed"):
            raise SecurityError(
                f"OpenBao is still sealed after {len(shares)} shares "
                f"({status.get('progress')}/{status.get('t')} accepted): the shares are wrong or too few"
            )
        self._sealed_on_purpose = False
        log.info("OpenBao unsealed", source=self.key_source.describe())

    async def _wait_active(self, timeout: float = 30.0) -> None:
        """Wait for sys/health 200: ``sealed: false`` alone is not enough to serve requests."""
        with trio.move_on_after(timeout):
            while True:
                health = await self._read_health(wait=True)
                if health.get("_status") == 200:
                    return
                await trio.sleep(0.02)
        raise SecurityUnavailable("sys/health", timeout, "OpenBao did not become active")

    async def _read_health(self, *, wait: bool = False) -> dict[str, Any]:
        """sys/health as a dict with the HTTP status under ``_status``."""

        def read() -> dict[str, Any]:
            response = self._admin.adapter.get(
                "/v1/sys/health", raise_exception=False, params={"sealedcode": 200, "uninitcode": 200}
            )
            if isinstance(response, dict):
                return {**response, "_status": 200}
            body = response.json() if response.content else {}
            return {**body, "_status": response.status_code}

        deadline = trio.current_time() + (30.0 if wait else 0.0)
        while True:
            try:
                health = await trio.to_thread.run_sync(read)
                # sealed/uninit answers are mapped to 200 above; "active" is 200 with sealed false.
                if health.get("sealed") or not health.get("initialized"):
                    health["_status"] = 503
                return health
            except requests.exceptions.RequestException as exc:
                if trio.current_time() >= deadline:
                    raise SecurityUnavailable("sys/health", 30.0, str(exc)) from exc
                await trio.sleep(0.05)

    async def _admin_login(self, credential: dict[str, str]) -> None:
        def login() -> dict[str, Any]:
            result: dict[str, Any] = self._admin.auth.approle.login(
                credential["role_id"], credential["secret_id"], mount_point=APPROLE_MOUNT
            )
            return result

        result = await self._thread(login)
        duration = float(result["auth"]["lease_duration"] or 3600)
        self._admin_expires_at = trio.current_time() + duration

    async def _ensure_apps(self) -> None:
        """Write each app's policy and AppRole and create its transit key (idempotent)."""
        settings = self.settings

        def ensure() -> None:
            for app in self.apps:
                policy = f"aria-app-{app}"
                self._admin.sys.create_or_update_policy(policy, app_policy(app))
                self._admin.auth.approle.create_or_update_approle(
                    app,
                    token_policies=[policy],
                    token_ttl=f"{int(settings.token_ttl)}s",
                    token_max_ttl=f"{int(settings.token_max_ttl)}s",
                    secret_id_ttl="300s",
                    secret_id_num_uses=1,
                    mount_point=APPROLE_MOUNT,
                )
                self._admin.secrets.transit.create_key(
                    app, key_type="aes256-gcm96", mount_point=TRANSIT_MOUNT
                )

        await self._thread(ensure)

    # ---- watching and renewing ----------------------------------------------------------------

    async def _watch(self) -> None:
        """Keep the status fresh; unseal again after OpenBao restarts (it always starts sealed)."""
        while True:
            with trio.move_on_after(self.settings.health_interval):
                await self._wake.wait()
            self._wake = trio.Event()
            try:
                health = await self._read_health()
            except SecurityUnavailable:
                self._status.update(sealed=True, reachable=False)
                continue
            if health.get("sealed") and health.get("initialized") and not self._sealed_on_purpose:
                log.warning("OpenBao is sealed (it restarted); unsealing", source=self.key_source.describe())
                try:
                    await self._unseal(self._shares)
                    await self._wait_active()
                except SecurityError as exc:
                    log.error("automatic unseal failed", error=str(exc))
            await self._refresh_status()

    async def _refresh_status(self) -> None:
        try:
            health = await self._read_health()
        except SecurityUnavailable:
            self._status.update(reachable=False)
            return
        leader: dict[str, Any] = {}
        if not health.get("sealed"):
            try:
                leader = await trio.to_thread.run_sync(self._admin.sys.read_leader_status)
            except (*_UNAVAILABLE, hvac.exceptions.VaultError):
                leader = {}
        self.version = str(health.get("version", self.version))
        self._status = {
            "reachable": True,
            "initialized": bool(health.get("initialized")),
            "sealed": bool(health.get("sealed")),
            "active": health.get("_status") == 200,
            "version": self.version,
            "raft_leader": bool(leader.get("is_self")),
            "leader_address": leader.get("leader_address", ""),
            "address": self.url,
            "binary": self.binary,
            "unseal_source": self.key_source.describe(),
        }

    async def _renew_admin(self) -> None:
        while True:
            await trio.sleep_until(
                trio.current_time() + max(1.0, (self._admin_expires_at - trio.current_time()) / 2)
            )
            try:
                result = await self._thread(self._admin.auth.token.renew_self)
                self._admin_expires_at = trio.current_time() + float(result["auth"]["lease_duration"])
            except (*_UNAVAILABLE, SecurityError, hvac.exceptions.VaultError) as exc:
                log.warning("renewing aria_security's token failed; retrying", error=str(exc))
                self._admin_expires_at = trio.current_time() + 2.0

    async def _renew_app(self, session: _AppSession) -> None:
        """Renew an app's token at two thirds of its TTL; log in again when renewal cannot help."""
        while True:
            await trio.sleep_until(session.expires_at - session.ttl / 3)
            async with session.lock:
                try:
                    result = await self._thread(session.client.auth.token.renew_self)
                    granted = float(result["auth"]["lease_duration"])
                    if granted < session.ttl / 3:  # near token_max_ttl: a fresh login is better
                        await self._login(session)
                    else:
                        session.ttl = granted
                        session.expires_at = trio.current_time() + granted
                        session.renewals += 1
                except hvac.exceptions.Forbidden:
                    await self._login(session)
                except _UNAVAILABLE as exc:
                    log.warning("renewing a token failed; retrying", app=session.app, error=str(exc))
                    session.expires_at = trio.current_time() + session.ttl / 3 + 1.0

    # ---- app identities -----------------------------------------------------------------------

    async def _session(self, app: str) -> _AppSession:
        session = self._sessions.get(app)
        if session is not None:
            return session
        if app not in self.apps:
            raise PermissionDenied(app, "an identity (it is not an app of this node)")
        async with self._sessions_lock:
            if app not in self._sessions:
                session = _AppSession(app, self._client())
                await self._login(session)
                self._sessions[app] = session
                if self._nursery is not None:
                    self._nursery.start_soon(self._renew_app, session)
        return self._sessions[app]

    async def _login(self, session: _AppSession) -> None:
        def login() -> dict[str, Any]:
            role_id = self._admin.auth.approle.read_role_id(session.app, mount_point=APPROLE_MOUNT)["data"][
                "role_id"
            ]
            secret = self._admin.auth.approle.generate_secret_id(session.app, mount_point=APPROLE_MOUNT)
            result: dict[str, Any] = session.client.auth.approle.login(
                role_id, secret["data"]["secret_id"], mount_point=APPROLE_MOUNT
            )
            return result

        result = await self._with_retry("the AppRole login", login)
        session.ttl = float(result["auth"]["lease_duration"])
        session.expires_at = trio.current_time() + session.ttl
        session.accessor = result["auth"]["accessor"]
        session.logins += 1
        log.debug("app logged in to OpenBao", app=session.app, ttl=session.ttl)

    async def call(
        self,
        app: str,
        target: str,
        operation: Callable[[hvac.Client], T],
        *,
        translate: Callable[[hvac.exceptions.InvalidRequest], Exception] | None = None,
    ) -> T:
        """Run ``operation(client)`` with ``app``'s identity and map failures to typed errors.

        Waits (up to ``security.call_timeout``) while OpenBao is unreachable or sealed; logs the app
        in again if its token was lost; raises PermissionDenied when the policy says no.
        """
        session = await self._session(app)
        relogged = False
        deadline = trio.current_time() + self.settings.call_timeout
        delay = 0.02
        while True:
            try:
                return await trio.to_thread.run_sync(operation, session.client)
            except hvac.exceptions.Forbidden as exc:
                if not relogged and not await self._token_valid(session):
                    async with session.lock:
                        await self._login(session)
                    relogged = True
                    continue
                raise PermissionDenied(app, target) from exc
            except hvac.exceptions.InvalidPath as exc:
                raise SecretNotFound(app, target) from exc
            except hvac.exceptions.InvalidRequest as exc:
                if translate is not None:
                    raise translate(exc) from exc
                raise SecurityError(f"OpenBao refused the request for {target!r}: {_message(exc)}") from exc
            except _UNAVAILABLE as exc:
                self._wake.set()
                if trio.current_time() + delay > deadline:
                    if isinstance(exc, hvac.exceptions.VaultDown) or self._status.get("sealed"):
                        raise Sealed(target, self.settings.call_timeout) from exc
                    raise SecurityUnavailable(target, self.settings.call_timeout, _message(exc)) from exc
                await trio.sleep(delay)
                delay = min(delay * 2, 0.5)

    async def _token_valid(self, session: _AppSession) -> bool:
        try:
            await trio.to_thread.run_sync(session.client.auth.token.lookup_self)
        except hvac.exceptions.Forbidden:
            return False
        except (*_UNAVAILABLE, hvac.exceptions.VaultError):
            return True
        return True

    async def _with_retry(self, target: str, operation: Callable[[], T]) -> T:
        deadline = trio.current_time() + self.settings.call_timeout
        delay = 0.02
        while True:
            try:
                return await trio.to_thread.run_sync(operation)
            except _UNAVAILABLE as exc:
                self._wake.set()
                if trio.current_time() + delay > deadline:
                    if isinstance(exc, hvac.exceptions.VaultDown):
                        raise Sealed(target, self.settings.call_timeout) from exc
                    raise SecurityUnavailable(target, self.settings.call_timeout, _message(exc)) from exc
                await trio.sleep(delay)
                delay = min(delay * 2, 0.5)

    async def _thread(self, function: Callable[..., T], *args: Any) -> T:
        return await self._with_retry(getattr(function, "__name__", "OpenBao"), lambda: function(*args))

    def _client(self, token: str | None = None) -> hvac.Client:
        # Calls run in trio's worker threads (up to 40 at once): keep as many TLS connections,
        # not requests' default 10, or concurrent calls reconnect (and warn) past the tenth.
        session = requests.Session()
        session.verify = str(self.ca.cert_file)  # hvac sets it only on sessions it makes itself
        adapter = requests.adapters.HTTPAdapter(pool_connections=1, pool_maxsize=POOL_CONNECTIONS)
        session.mount("https://", adapter)
        session.mount("http://", adapter)
        return hvac.Client(
            url=self.url, token=token, verify=str(self.ca.cert_file), timeout=HTTP_TIMEOUT, session=session
        )

    # ---- the service API ----------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """OpenBao's state as last seen: initialized, sealed, version, raft leader, address."""
        return dict(self._status)

    async def health(self) -> dict[str, Any]:
        await self._refresh_status()
        ok = self._status.get("active", False) and not self._status.get("sealed", True)
        return {"ok": ok, **self._status}

    @property
    def ca_file(self) -> str:
        """The local CA certificate that signs OpenBao's and the gateway's certificates."""
        return str(self.ca.cert_file)

    async def issue_certificate(
        self,
        name: str,
        *,
        dns_names: tuple[str, ...] = ("localhost",),
        ip_addresses: tuple[str, ...] = ("127.0.0.1",),
    ) -> tuple[str, str]:
        """Issue (or reuse) a server certificate from the local CA; returns (cert file, key file)."""
        issued = await trio.to_thread.run_sync(
            lambda: self.ca.issue(name, dns_names=dns_names, ip_addresses=ip_addresses)
        )
        return str(issued.cert_file), str(issued.key_file)

    async def seal(self) -> None:
        """Seal OpenBao now: every secret is unreachable until `aria security unseal`."""
        self._sealed_on_purpose = True
        await self._thread(self._admin.sys.seal)
        await self._refresh_status()
        log.warning("OpenBao sealed on request")

    async def unseal(self, shares: list[str]) -> dict[str, Any]:
        """Unseal with operator-provided shares (the ``operator`` source, or after :meth:`seal`)."""
        if isinstance(self.key_source, OperatorKeySource):
            self.key_source.provide(shares)
        await self._unseal(shares)
        self._shares = shares
        await self._wait_active()
        await self._refresh_status()
        return self.status()

    async def audit_hash(self, value: str) -> str:
        """The HMAC the audit device writes for ``value`` (to find a value in the audit log)."""
        result = await self._thread(
            lambda: self._admin.sys.calculate_hash("aria-audit", value)  # type: ignore[no-untyped-call]
        )
        return str(result["data"]["hash"])

    async def rotate_app_identity(self, app: str) -> None:
        """Revoke ``app``'s current token; its next call logs in with a fresh one."""
        session = await self._session(app)
        await self._thread(self._admin.auth.token.revoke_accessor, session.accessor)
        log.info("app token revoked", app=app)

    def statistics(self, app: str) -> SessionStatistics:
        session = self._sessions.get(app)
        if session is None:
            return SessionStatistics(0, 0, 0.0)
        return SessionStatistics(session.logins, session.renewals, session.ttl)


def _message(exc: BaseException) -> str:
    errors = getattr(exc, "errors", None)
    if errors:
        return "; ".join(str(e) for e in errors)
    return str(exc).split(", on ")[0] or type(exc).__name__
