"""``aria auth user|service|token|role|group|client|key|audit ...``: act on the running node.

Every command goes through the control socket (``aria/control.py``) to the running aria_auth;
passwords are prompted for without echo (or read from stdin with ``--password-stdin``).
"""

from __future__ import annotations

import getpass
import json
import sys
from typing import Any

import click

from aria.config import load
from aria.control import ControlError, request

_config = click.option("--config", "config_file", type=click.Path(dir_okay=False), help="A TOML config file.")


def _call(config_file: str | None, op: str, **args: Any) -> dict[str, Any]:
    try:
        return request(load(config_file).control_socket, op, timeout=120.0, **args)
    except ControlError as exc:
        click.echo(f"aria auth: {exc}", err=True)
        sys.exit(1)


def _password(from_stdin: bool, prompt: str) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass(f"{prompt}: ")
    if getpass.getpass(f"{prompt} again: ") != first:
        click.echo("aria auth: the passwords differ", err=True)
        sys.exit(2)
    return first


def _show(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, default=str))


@click.group()
def cli() -> None:
    """Identities, roles, tokens and the audit log of the running node."""


@cli.group()
def user() -> None:
    """Users: add, passwd, disable, enable, show, list, mfa."""


@user.command("add")
@click.argument("name")
@click.option("--tenant", default="", help="The user's tenant.")
@click.option("--role", "roles", multiple=True, help="A role to bind (repeat).")
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of stdin.")
@click.option("--no-password", is_flag=True, help="No password: the user logs in through federation only.")
@_config
def user_add(
    name: str,
    tenant: str,
    roles: tuple[str, ...],
    password_stdin: bool,
    no_password: bool,
    config_file: str | None,
) -> None:
    """Create user NAME."""
    password = None if no_password else _password(password_stdin, f"password for {name}")
    _show(
        _call(config_file, "auth.user.add", name=name, password=password, tenant=tenant, roles=list(roles))[
            "user"
        ]
    )


@user.command("passwd")
@click.argument("name")
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of stdin.")
@_config
def user_passwd(name: str, password_stdin: bool, config_file: str | None) -> None:
    """Set NAME's password (lifts a lockout, ends NAME's sessions)."""
    _call(
        config_file,
        "auth.user.passwd",
        name=name,
        password=_password(password_stdin, f"new password for {name}"),
    )
    click.echo(f"password of {name} changed; its sessions were ended")


@user.command("disable")
@click.argument("name")
@_config
def user_disable(name: str, config_file: str | None) -> None:
    """Disable NAME: logins fail and its tokens stop verifying at once."""
    _call(config_file, "auth.user.disable", name=name)
    click.echo(f"{name} disabled")


@user.command("enable")
@click.argument("name")
@_config
def user_enable(name: str, config_file: str | None) -> None:
    """Enable NAME again."""
    _call(config_file, "auth.user.enable", name=name)
    click.echo(f"{name} enabled")


@user.command("show")
@click.argument("name")
@_config
def user_show(name: str, config_file: str | None) -> None:
    """Print NAME with its roles and groups."""
    _show(_call(config_file, "auth.user.show", name=name)["user"])


@user.command("list")
@click.option("--kind", type=click.Choice(["user", "service"]), help="Only users or only services.")
@_config
def user_list(kind: str | None, config_file: str | None) -> None:
    """List users and service identities."""
    for row in _call(config_file, "auth.user.list", kind=kind)["principals"]:
        flags = " disabled" if row["disabled"] else ""
        click.echo(f"{row['kind']:<8} {row['name']:<32} {row['tenant']:<12}{flags}")


@user.command("mfa")
@click.argument("name")
@click.option("--code", help="Confirm enrolment with a code from the authenticator app.")
@_config
def user_mfa(name: str, code: str | None, config_file: str | None) -> None:
    """Enrol NAME in TOTP (prints the otpauth URI); then confirm with --code (prints recovery codes)."""
    answer = _call(config_file, "auth.user.mfa", name=name, code=code)
    if code is None:
        click.echo(answer["uri"])
    else:
        click.echo("\n".join(answer["recovery_codes"]))


@cli.group()
def service() -> None:
    """Service identities."""


@service.command("add")
@click.argument("name")
@click.option("--tenant", default="")
@click.option("--role", "roles", multiple=True, help="A role to bind (repeat).")
@_config
def service_add(name: str, tenant: str, roles: tuple[str, ...], config_file: str | None) -> None:
    """Create service identity NAME."""
    _show(_call(config_file, "auth.service.add", name=name, tenant=tenant, roles=list(roles))["service"])


@cli.command("token")
@click.argument("principal")
@click.argument("name")
@click.option("--ttl", type=float, help="Seconds until it expires (default: never).")
@_config
def token(principal: str, name: str, ttl: float | None, config_file: str | None) -> None:
    """Create an API token NAME for PRINCIPAL (printed once)."""
    click.echo(_call(config_file, "auth.token.create", principal=principal, name=name, ttl=ttl)["token"])


@cli.group()
def role() -> None:
    """Roles: put, delete, list, grant, revoke."""


@role.command("put")
@click.argument("name")
@click.option("--permission", "permissions", multiple=True, help="resource:action, or JSON with conditions.")
@click.option("--require-mfa", is_flag=True, help="Members must use a second factor.")
@click.option("--description", default="")
@_config
def role_put(
    name: str, permissions: tuple[str, ...], require_mfa: bool, description: str, config_file: str | None
) -> None:
    """Create or replace role NAME with its permissions."""
    parsed: list[Any] = [json.loads(p) if p.lstrip().startswith("{") else p for p in permissions]
    answer = _call(
        config_file,
        "auth.role.put",
        name=name,
        permissions=parsed,
        require_mfa=require_mfa,
        description=description,
    )
    _show(answer["role"])


@role.command("delete")
@click.argument("name")
@_config
def role_delete(name: str, config_file: str | None) -> None:
    """Delete role NAME (and its bindings)."""
    _call(config_file, "auth.role.delete", name=name)
    click.echo(f"role {name} deleted")


@role.command("list")
@_config
def role_list(config_file: str | None) -> None:
    """List roles with their permissions."""
    for entry in _call(config_file, "auth.role.list")["roles"]:
        mfa = " (MFA)" if entry["require_mfa"] else ""
        perms = ", ".join(p if isinstance(p, str) else json.dumps(p) for p in entry["permissions"])
        click.echo(f"{entry['name']}{mfa}: {perms}")


@role.command("grant")
@click.argument("role_name")
@click.option("--user", "principal", help="A user or service.")
@click.option("--group")
@_config
def role_grant(role_name: str, principal: str | None, group: str | None, config_file: str | None) -> None:
    """Bind ROLE_NAME to a user/service or a group."""
    _call(config_file, "auth.role.grant", role=role_name, principal=principal, group=group)
    click.echo(f"role {role_name} granted to {principal or group}")


@role.command("revoke")
@click.argument("role_name")
@click.option("--user", "principal")
@click.option("--group")
@_config
def role_revoke(role_name: str, principal: str | None, group: str | None, config_file: str | None) -> None:
    """Unbind ROLE_NAME from a user/service or a group."""
    _call(config_file, "auth.role.revoke", role=role_name, principal=principal, group=group)
    click.echo(f"role {role_name} revoked from {principal or group}")


@cli.group()
def group() -> None:
    """Groups of users and services."""


@group.command("add")
@click.argument("name")
@click.option("--description", default="")
@_config
def group_add(name: str, description: str, config_file: str | None) -> None:
    """Create group NAME."""
    _call(config_file, "auth.group.add", name=name, description=description)
    click.echo(f"group {name} created")


@group.command("member")
@click.argument("group_name")
@click.argument("principal")
@click.option("--remove", is_flag=True)
@_config
def group_member(group_name: str, principal: str, remove: bool, config_file: str | None) -> None:
    """Add PRINCIPAL to GROUP_NAME (or --remove it)."""
    _call(config_file, "auth.group.member", group=group_name, principal=principal, remove=remove)
    click.echo(f"{principal} {'removed from' if remove else 'added to'} {group_name}")


@cli.group()
def client() -> None:
    """OAuth clients."""


@client.command("add")
@click.argument("client_id")
@click.option("--redirect-uri", "redirect_uris", multiple=True)
@click.option(
    "--grant",
    "grants",
    multiple=True,
    type=click.Choice(["authorization_code", "refresh_token", "client_credentials"]),
)
@click.option("--public", is_flag=True, help="No secret (native and browser apps; PKCE required).")
@click.option("--service", help="The service identity of client_credentials tokens.")
@click.option("--scope", default="openid profile")
@click.option(
    "--id-token-alg",
    type=click.Choice(["RS256", "ES256"]),
    default="RS256",
    show_default=True,
    help="How the client's ID tokens are signed.",
)
@_config
def client_add(
    client_id: str,
    redirect_uris: tuple[str, ...],
    grants: tuple[str, ...],
    public: bool,
    service: str | None,
    scope: str,
    id_token_alg: str,
    config_file: str | None,
) -> None:
    """Register OAuth client CLIENT_ID (its secret is printed once)."""
    answer = _call(
        config_file,
        "auth.client.add",
        client_id=client_id,
        redirect_uris=list(redirect_uris),
        grant_types=list(grants) or ["authorization_code", "refresh_token"],
        public=public,
        service=service,
        scope=scope,
        id_token_alg=id_token_alg,
    )
    _show(answer)


@cli.group()
def key() -> None:
    """The token signing keys (in OpenBao)."""


@key.command("rotate")
@_config
def key_rotate(config_file: str | None) -> None:
    """Start signing with new versions of both keys (ES256, RS256); tokens signed with the previous
    ones stay valid."""
    answer = _call(config_file, "auth.key.rotate")
    click.echo(
        f"signing keys now at ES256 version {answer['version']}, RS256 version {answer['rs256_version']}"
    )


@cli.command()
@click.option("--limit", default=50, show_default=True)
@click.option("--principal")
@click.option("--kind", type=click.Choice(["authn", "authz", "token", "admin"]))
@click.option("--result", type=click.Choice(["success", "failure", "allow", "deny"]))
@_config
def audit(
    limit: int, principal: str | None, kind: str | None, result: str | None, config_file: str | None
) -> None:
    """The newest audit records: who, what, result, reason, request id."""
    answer = _call(config_file, "auth.audit", limit=limit, principal=principal, kind=kind, result=result)
    for r in answer["records"]:
        click.echo(
            f"{r['at']:.3f} {r['kind']:<5} {r['result']:<7} {r['principal']:<20} {r['action']:<16} "
            f"{r['resource']:<20} {r['request_id']:<16} {r['reason']}"
        )
