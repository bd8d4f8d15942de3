"""aria_auth's place in the boot tree: one worker, ``service``, that applies the migrations, prepares
the signing key and TURN secret in aria_security, loads roles and the revocation list, publishes the
:class:`~aria.apps.auth.service.AuthService` as ``aria_auth`` and runs its background work (audit
flushing, cache refresh). The HTTP routes are a Blueprint (``http.py``) that the gateway mounts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import trio
from pydantic import Field, model_validator

from aria.application import App, AppContext
from aria.apps.auth.service import AuthService
from aria.config import Section
from aria.supervisor import ChildSpec

MIGRATIONS = Path(__file__).parent / "migrations"


class AuthSection(Section):
    issuer: str = Field(
        "",
        description="Public URL of the auth routes: the `iss` of every token and the base of discovery; "
        "empty: the gateway's URL + /api/v1/auth.",
    )
    audience: str = Field("aria", description="The `aud` of access tokens.")
    access_token_ttl: float = Field(900.0, ge=10, description="Seconds an access (and ID) token lives.")
    refresh_token_ttl: float = Field(2592000.0, ge=60, description="Seconds a refresh token lives unused.")
    authorization_code_ttl: float = Field(60.0, gt=0, le=600, description="Seconds an OAuth code lives.")
    clock_leeway: float = Field(30.0, ge=0, le=300, description="Seconds of clock skew tolerated on tokens.")
    jwks_previous_keys: int = Field(
        1, ge=1, le=10, description="Previous signing key versions still published."
    )
    jwks_refresh_interval: float = Field(60.0, gt=0, description="Seconds between public key refreshes.")
    unknown_kid_refresh_interval: float = Field(
        5.0, ge=0, description="At most one key refresh per this many seconds when a token names a new kid."
    )
    cache_refresh_interval: float = Field(
        5.0, gt=0, description="Seconds between reloads of roles, revocations and session cutoffs."
    )
    api_token_cache_seconds: float = Field(5.0, ge=0, description="Seconds a verified API token is cached.")
    argon2_time_cost: int = Field(3, ge=1, description="argon2id passes.")
    argon2_memory_kib: int = Field(65536, ge=1024, description="argon2id memory in KiB.")
    argon2_parallelism: int = Field(4, ge=1, le=64, description="argon2id lanes.")
    min_password_length: int = Field(12, ge=8, le=128, description="Shortest password accepted.")
    max_failed_logins: int = Field(5, ge=1, description="Failed logins in a row that lock an account.")
    lockout_seconds: float = Field(900.0, gt=0, description="How long an account stays locked.")
    ip_max_failures: int = Field(20, ge=1, description="Failed logins from one address within ip_window...")
    ip_window: float = Field(300.0, gt=0, description="...seconds that lock the address out...")
    ip_lockout: float = Field(900.0, gt=0, description="...for this many seconds.")
    totp_issuer: str = Field("Aria", description="Issuer shown by authenticator apps.")
    recovery_codes: int = Field(10, ge=1, le=50, description="Recovery codes made at TOTP enrolment.")
    turn_ttl: int = Field(3600, ge=60, description="Seconds TURN credentials stay valid.")
    turn_uris: list[str] = Field(default_factory=list, description="TURN server URIs given with credentials.")
    signalling_auth_timeout: float = Field(
        5.0, gt=0, description="Seconds a signalling client has to authenticate."
    )
    federation_timeout: float = Field(
        10.0, gt=0, description="Seconds to wait for an external OIDC provider."
    )
    audit_flush_interval: float = Field(0.5, gt=0, description="Seconds between audit log writes.")
    audit_retention_days: float = Field(90.0, ge=0, description="Days audit records are kept; 0: forever.")

    @model_validator(mode="after")
    def _consistent(self) -> AuthSection:
        if self.issuer and not self.issuer.startswith(("https://", "http://")):
            raise ValueError(f"issuer {self.issuer!r} must be an http(s) URL (or empty: the gateway's)")
        if self.refresh_token_ttl < self.access_token_ttl:
            raise ValueError(
                f"refresh_token_ttl ({self.refresh_token_ttl:g}) cannot be below access_token_ttl "
                f"({self.access_token_ttl:g})"
            )
        return self


def build(context: AppContext) -> list[ChildSpec]:
    settings: AuthSection = context.settings
    services = [app.name for app in context.system.known_apps]

    async def run_service(*, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        db = context.api("aria_data")
        await db.migrate("aria_auth", MIGRATIONS)
        service = AuthService(
            settings,
            db,
            context.api("aria_security"),
            services=services,
            # The issuer follows the gateway, which boots after aria_auth and announces its URL
            # (gateway_listening) once it listens; a restart of aria_auth restarts it too.
            coordinate=getattr(context.system.config, "coordinate", None),
        )
        await service.start()
        context.log.info(
            "auth ready",
            issuer=service.issuer,
            signing_key_version=service.verifier.ring.current,
            argon2=service.passwords.parameters.describe(),
        )
        async with trio.open_nursery() as nursery:
            nursery.start_soon(service.run)
            task_status.started(service)

    _register_control_ops(context)
    return [ChildSpec("service", run_service, name="aria_auth", start_timeout=120.0)]


def _register_control_ops(context: AppContext) -> None:
    """``aria auth ...`` reaches the running node through these (see ``cli.py``)."""
    system = context.system

    async def auth() -> AuthService:
        found: AuthService = await system.registry.wait_for("aria_auth", 10.0)
        return found

    async def user_add(
        name: str, password: str | None, tenant: str = "", roles: list[str] | None = None
    ) -> dict[str, Any]:
        return {"user": await (await auth()).add_user(name, password, tenant=tenant, roles=roles or [])}

    async def user_passwd(name: str, password: str) -> dict[str, Any]:
        await (await auth()).set_password(name, password)
        return {"user": name}

    async def user_disable(name: str) -> dict[str, Any]:
        await (await auth()).disable(name)
        return {"user": name, "disabled": True}

    async def user_enable(name: str) -> dict[str, Any]:
        await (await auth()).enable(name)
        return {"user": name, "disabled": False}

    async def user_show(name: str) -> dict[str, Any]:
        return {"user": await (await auth()).principal(name)}

    async def user_list(kind: str | None = None) -> dict[str, Any]:
        return {"principals": await (await auth()).principals(kind)}

    async def user_mfa(name: str, code: str | None = None) -> dict[str, Any]:
        service = await auth()
        if code is None:
            return await service.enrol_totp(name)
        return {"recovery_codes": await service.confirm_totp(name, code)}

    async def service_add(name: str, tenant: str = "", roles: list[str] | None = None) -> dict[str, Any]:
        return {"service": await (await auth()).add_service(name, tenant=tenant, roles=roles or [])}

    async def token_create(principal: str, name: str, ttl: float | None = None) -> dict[str, Any]:
        token, token_id = await (await auth()).create_api_token(principal, name, ttl=ttl)
        return {"token": token, "id": token_id}

    async def role_put(
        name: str, permissions: list[Any], require_mfa: bool = False, description: str = ""
    ) -> dict[str, Any]:
        role = await (await auth()).put_role(
            name, permissions, require_mfa=require_mfa, description=description
        )
        return {"role": role}

    async def role_delete(name: str) -> dict[str, Any]:
        await (await auth()).delete_role(name)
        return {"role": name}

    async def role_list() -> dict[str, Any]:
        return {"roles": (await auth()).roles()}

    async def role_grant(role: str, principal: str | None = None, group: str | None = None) -> dict[str, Any]:
        await (await auth()).grant_role(role, principal=principal, group=group)
        return {"role": role}

    async def role_revoke(
        role: str, principal: str | None = None, group: str | None = None
    ) -> dict[str, Any]:
        await (await auth()).revoke_role(role, principal=principal, group=group)
        return {"role": role}

    async def group_add(name: str, description: str = "") -> dict[str, Any]:
        await (await auth()).add_group(name, description)
        return {"group": name}

    async def group_member(group: str, principal: str, remove: bool = False) -> dict[str, Any]:
        service = await auth()
        if remove:
            await service.remove_from_group(group, principal)
        else:
            await service.add_to_group(group, principal)
        return {"group": group}

    async def client_add(
        client_id: str,
        redirect_uris: list[str],
        grant_types: list[str],
        public: bool = False,
        service: str | None = None,
        scope: str = "openid profile",
        id_token_alg: str = "RS256",
    ) -> dict[str, Any]:
        secret = await (await auth()).register_client(
            client_id,
            redirect_uris=redirect_uris,
            grant_types=grant_types,
            public=public,
            service=service,
            scope=scope,
            id_token_signed_response_alg=id_token_alg,
        )
        return {"client_id": client_id, "client_secret": secret}

    async def key_rotate() -> dict[str, Any]:
        service = await auth()
        version = await service.rotate_signing_key()
        return {"version": version, "rs256_version": service.verifier.ring.rsa_current}

    async def audit(
        limit: int = 50, principal: str | None = None, kind: str | None = None, result: str | None = None
    ) -> dict[str, Any]:
        records = await (await auth()).audit(principal=principal, kind=kind, result=result, limit=limit)
        return {"records": records}

    system.control_ops.update(
        {
            "auth.user.add": user_add,
            "auth.user.passwd": user_passwd,
            "auth.user.disable": user_disable,
            "auth.user.enable": user_enable,
            "auth.user.show": user_show,
            "auth.user.list": user_list,
            "auth.user.mfa": user_mfa,
            "auth.service.add": service_add,
            "auth.token.create": token_create,
            "auth.role.put": role_put,
            "auth.role.delete": role_delete,
            "auth.role.list": role_list,
            "auth.role.grant": role_grant,
            "auth.role.revoke": role_revoke,
            "auth.group.add": group_add,
            "auth.group.member": group_member,
            "auth.client.add": client_add,
            "auth.key.rotate": key_rotate,
            "auth.audit": audit,
        }
    )


APP = App(
    name="aria_auth",
    layer=2,
    depends_on=("aria_security", "aria_data"),
    summary="identities, tokens, OAuth2/OIDC, RBAC/ABAC, MFA and WebRTC credentials",
    build=build,
    config_model=AuthSection,
)
