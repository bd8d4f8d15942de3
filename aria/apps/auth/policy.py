"""Authorisation: roles grant ``resource:action`` permissions (with wildcards) under ABAC conditions.

One call decides: :meth:`Policy.decide` (``AuthService.authorize`` wraps it, adds the audit record).
Deny by default: a request is allowed only when some role of the subject has a grant whose pattern
matches the resource type and action *and* whose conditions all hold. The decision carries the
reason, so an operator can see why.

Grants are written ``"storage:read"``, ``"storage.*:*"`` or ``{"permission": "notes:write",
"when": {"owner": true, "ip": ["10.0.0.0/8"], "hours": [8, 18], "weekdays": [0, 1, 2, 3, 4]}}``.
``*`` in a pattern matches any run of characters (``*:*`` grants everything).
"""

from __future__ import annotations

import fnmatch
import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

_PATTERN = re.compile(r"^[A-Za-z0-9_.*/-]+$")
_CONDITION_KEYS = {"owner", "tenant", "ip", "hours", "weekdays"}


@dataclass(frozen=True)
class Principal:
    """Who is asking: a user or a service identity, as a verified token or credential describes it.

    ``amr`` lists how it authenticated (``pwd``, ``otp``, ``fed``, ``client``, ``api_token``);
    ``mfa`` is true when a second factor was part of it.
    """

    id: str
    name: str
    kind: str = "user"
    tenant: str = ""
    roles: tuple[str, ...] = ()
    amr: tuple[str, ...] = ()
    scope: str = ""
    claims: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def mfa(self) -> bool:
        return "otp" in self.amr or "mfa" in self.amr

    @classmethod
    def from_claims(cls, claims: Mapping[str, Any]) -> Principal:
        """The principal described by verified access-token claims."""
        return cls(
            id=str(claims["sub"]),
            name=str(claims.get("name", claims["sub"])),
            kind=str(claims.get("kind", "user")),
            tenant=str(claims.get("tenant", "")),
            roles=tuple(claims.get("roles", ())),
            amr=tuple(claims.get("amr", ())),
            scope=str(claims.get("scope", "")),
            claims=claims,
        )


@dataclass(frozen=True)
class Resource:
    """What is acted on: its type (``storage.chunks``), id, owner (a principal id) and tenant."""

    type: str
    id: str = ""
    owner: str = ""
    tenant: str = ""
    attributes: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def __str__(self) -> str:
        return f"{self.type}/{self.id}" if self.id else self.type


@dataclass(frozen=True)
class Decision:
    """The answer of :meth:`Policy.decide`: ``allowed``, the human-readable ``reason``, and the role
    and grant that allowed it (None when denied). Truthy when allowed."""

    allowed: bool
    reason: str
    role: str | None = None
    permission: str | None = None

    def __bool__(self) -> bool:
        return self.allowed


@dataclass(frozen=True)
class Conditions:
    """ABAC conditions of one grant; every one set must hold."""

    owner: bool = False
    tenant: bool = False
    ip: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    hours: tuple[int, int] | None = None
    weekdays: tuple[int, ...] | None = None

    @classmethod
    def parse(cls, value: Mapping[str, Any] | None, where: str) -> Conditions:
        if not value:
            return cls()
        if not isinstance(value, Mapping):
            raise TypeError(f"{where}: conditions must be a mapping, not {type(value).__name__}")
        unknown = set(value) - _CONDITION_KEYS
        if unknown:
            raise ValueError(
                f"{where}: unknown condition(s) {sorted(unknown)}; known: {sorted(_CONDITION_KEYS)}"
            )
        networks = []
        for entry in value.get("ip", ()) or ():
            try:
                networks.append(ipaddress.ip_network(str(entry), strict=False))
            except ValueError as exc:
                raise ValueError(f"{where}: ip condition {entry!r} is not an address or CIDR block") from exc
        hours = value.get("hours")
        if hours is not None:
            if (
                not isinstance(hours, list | tuple)
                or len(hours) != 2
                or not all(isinstance(h, int) and 0 <= h <= 24 for h in hours)
            ):
                raise ValueError(f"{where}: hours must be [start, end] in 0..24 (UTC), not {hours!r}")
            hours = (int(hours[0]), int(hours[1]))
        weekdays = value.get("weekdays")
        if weekdays is not None:
            if not isinstance(weekdays, list | tuple) or not all(
                isinstance(d, int) and 0 <= d <= 6 for d in weekdays
            ):
                raise ValueError(f"{where}: weekdays must be a list of 0 (Monday) .. 6, not {weekdays!r}")
            weekdays = tuple(int(d) for d in weekdays)
        for flag in ("owner", "tenant"):
            if flag in value and not isinstance(value[flag], bool):
                raise ValueError(f"{where}: condition {flag!r} must be true or false, not {value[flag]!r}")
        return cls(
            owner=bool(value.get("owner", False)),
            tenant=bool(value.get("tenant", False)),
            ip=tuple(networks),
            hours=hours,
            weekdays=weekdays,
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.owner:
            out["owner"] = True
        if self.tenant:
            out["tenant"] = True
        if self.ip:
            out["ip"] = [str(n) for n in self.ip]
        if self.hours is not None:
            out["hours"] = list(self.hours)
        if self.weekdays is not None:
            out["weekdays"] = list(self.weekdays)
        return out

    def failure(self, principal: Principal, resource: Resource, context: Mapping[str, Any]) -> str | None:
        """None when every condition holds, else which one failed (for the decision's reason)."""
        if self.owner and (not resource.owner or resource.owner != principal.id):
            return "the subject owns the resource"
        if self.tenant and (not resource.tenant or resource.tenant != principal.tenant):
            return "the resource is in the subject's tenant"
        if self.ip:
            address = _address(context.get("ip"))
            if address is None or not any(address in network for network in self.ip):
                return f"the request comes from {', '.join(str(n) for n in self.ip)}"
        if self.hours is not None or self.weekdays is not None:
            moment = _moment(context.get("time"))
            if self.hours is not None:
                start, end = self.hours
                inside = (
                    start <= moment.hour < end if start <= end else moment.hour >= start or moment.hour < end
                )
                if not inside:
                    return f"the time is between {start:02d}:00 and {end:02d}:00 UTC"
            if self.weekdays is not None and moment.weekday() not in self.weekdays:
                return f"the weekday is one of {list(self.weekdays)} (0 = Monday)"
        return None


def _address(value: object) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    if value is None or value == "":
        return None
    try:
        return ipaddress.ip_address(str(value))
    except ValueError:
        return None


def _moment(value: object) -> datetime:
    if isinstance(value, datetime):
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC)
    return datetime.now(UTC)


def check_pattern(pattern: object, what: str) -> str:
    if not isinstance(pattern, str) or not _PATTERN.match(pattern):
        raise ValueError(f"{what} {pattern!r} may use only letters, digits, '_', '.', '/', '-' and '*'")
    return pattern


@dataclass(frozen=True)
class Grant:
    """One permission of a role: ``resource:action`` patterns and the conditions it holds under."""

    resource: str
    action: str
    when: Conditions = Conditions()

    @property
    def permission(self) -> str:
        return f"{self.resource}:{self.action}"

    @classmethod
    def parse(cls, value: str | Mapping[str, Any], role: str = "?") -> Grant:
        """Read ``"res:act"`` or ``{"permission": "res:act", "when": {...}}``.

        Raises:
            ValueError: naming the role and the malformed part.
        """
        when: Mapping[str, Any] | None = None
        if isinstance(value, Mapping):
            unknown = set(value) - {"permission", "when"}
            if unknown:
                raise ValueError(f"role {role!r}: a grant has unknown key(s) {sorted(unknown)}")
            when = value.get("when")
            value = value.get("permission", "")
        if not isinstance(value, str) or value.count(":") != 1:
            raise ValueError(f"role {role!r}: permission {value!r} must be 'resource:action'")
        resource, action = value.split(":")
        check_pattern(resource, f"role {role!r}: resource pattern")
        check_pattern(action, f"role {role!r}: action pattern")
        return cls(resource, action, Conditions.parse(when, f"role {role!r}, grant {value!r}"))

    def to_json(self) -> str | dict[str, Any]:
        conditions = self.when.to_json()
        return {"permission": self.permission, "when": conditions} if conditions else self.permission

    def matches(self, resource_type: str, action: str) -> bool:
        return fnmatch.fnmatchcase(resource_type, self.resource) and fnmatch.fnmatchcase(action, self.action)


@dataclass(frozen=True)
class Role:
    """A named set of grants. ``require_mfa`` makes its grants count only for sessions that used a
    second factor, and makes login of its members ask for one (the adaptive MFA policy)."""

    name: str
    grants: tuple[Grant, ...] = ()
    require_mfa: bool = False
    description: str = ""

    @classmethod
    def build(
        cls,
        name: str,
        permissions: Iterable[str | Mapping[str, Any]],
        *,
        require_mfa: bool = False,
        description: str = "",
    ) -> Role:
        check_name(name, "role")
        return cls(name, tuple(Grant.parse(p, name) for p in permissions), require_mfa, description)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "permissions": [g.to_json() for g in self.grants],
            "require_mfa": self.require_mfa,
            "description": self.description,
        }


_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@:-]{0,127}$")


def check_name(name: object, what: str) -> str:
    """Names of users, services, roles, groups and clients: 1-128 of letters, digits, ``_.@:-``."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(
            f"{what} name {name!r} must be 1-128 characters: letters, digits, '_', '.', '@', ':', '-', "
            "starting with a letter or digit"
        )
    return name


class Policy:
    """The roles known to this node and the decision procedure over them."""

    def __init__(self, roles: Iterable[Role] = ()) -> None:
        self.roles: dict[str, Role] = {role.name: role for role in roles}

    def decide(
        self,
        principal: Principal,
        action: str,
        resource: Resource,
        context: Mapping[str, Any] | None = None,
    ) -> Decision:
        """Whether ``principal`` may do ``action`` on ``resource``; deny unless a grant allows it."""
        context = context or {}
        wanted = f"{resource.type}:{action}"
        near_misses: list[str] = []
        for role_name in principal.roles:
            role = self.roles.get(role_name)
            if role is None:
                continue
            for grant in role.grants:
                if not grant.matches(resource.type, action):
                    continue
                failed = grant.when.failure(principal, resource, context)
                if failed is not None:
                    near_misses.append(f"role {role.name!r} grants {grant.permission} only when {failed}")
                    continue
                if role.require_mfa and not principal.mfa:
                    near_misses.append(
                        f"role {role.name!r} grants {grant.permission} only to sessions that used a "
                        "second factor"
                    )
                    continue
                return Decision(
                    True,
                    f"allowed: role {role.name!r} grants {grant.permission}",
                    role.name,
                    grant.permission,
                )
        if near_misses:
            return Decision(False, "denied: " + "; ".join(near_misses))
        if not principal.roles:
            return Decision(False, f"denied: {principal.name} has no roles (deny by default)")
        return Decision(False, f"denied: no role of {principal.name} grants {wanted} (deny by default)")
