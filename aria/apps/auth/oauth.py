"""The OAuth 2.0 / OpenID Connect provider, built on authlib's framework-neutral server.

authlib's grants and endpoints are synchronous, so each request runs them in a worker thread
(``trio.to_thread.run_sync``); their callbacks reach the service (the database, OpenBao) with
``trio.from_thread.run``. Supported: authorization code with PKCE (S256 required for public
clients, constant-time comparison), client credentials, refresh (rotation and reuse detection by
the service), introspection (RFC 7662) and revocation (RFC 7009). Access tokens are our JWTs; ID
tokens are minted by the service with the same OpenBao key.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import trio
from authlib.oauth2 import AuthorizationServer as _AuthorizationServer
from authlib.oauth2.rfc6749 import (
    AuthorizationCodeMixin,
    ClientMixin,
    OAuth2Payload,
    OAuth2Request,
    TokenMixin,
    grants,
)
from authlib.oauth2.rfc6749.util import scope_to_list
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oauth2.rfc7662 import IntrospectionEndpoint

from aria.apps.auth.errors import InvalidToken
from aria.apps.auth.passwords import digest, same
from aria.apps.auth.service import AuthService, TokenSet
from aria.apps.auth.tokens import b64url

AUTHORIZATION_CODE_BYTES = 48


def _run(fn: Any, *args: Any) -> Any:
    """Call the async ``fn`` on the trio loop from authlib's worker thread."""
    return trio.from_thread.run(fn, *args)


class _Payload(OAuth2Payload):
    def __init__(self, values: list[tuple[str, str]]) -> None:
        self._datalist: defaultdict[str, list[str]] = defaultdict(list)
        for key, value in values:
            self._datalist[key].append(value)
        self._data = {key: items[0] for key, items in self._datalist.items()}

    @property
    def data(self) -> dict[str, str]:
        return self._data

    @property
    def datalist(self) -> defaultdict[str, list[str]]:
        return self._datalist


class HttpRequest(OAuth2Request):
    """A request already read by the web framework: method, URL, headers, query and form items."""

    def __init__(
        self,
        method: str,
        uri: str,
        headers: dict[str, str],
        args: list[tuple[str, str]],
        form: list[tuple[str, str]],
    ) -> None:
        super().__init__(method, uri, headers=headers)
        self._args = {k: v for k, v in reversed(args)}
        self._form = {k: v for k, v in reversed(form)}
        self.payload = _Payload(args + form)

    @property
    def args(self) -> dict[str, str]:
        return self._args

    @property
    def form(self) -> dict[str, str]:
        return self._form


class Client(ClientMixin):
    def __init__(self, record: dict[str, Any]) -> None:
        self.record = record
        self.client_id: str = record["client_id"]
        self.public = record["secret_hash"] is None

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str | None:
        uris = self.record["redirect_uris"]
        return uris[0] if len(uris) == 1 else None

    def get_allowed_scope(self, scope: str) -> str:
        if not scope:
            return ""
        allowed = set(scope_to_list(self.record["scope"]))
        return " ".join(s for s in scope_to_list(scope) if s in allowed)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        # Exact match only (no prefixes or patterns): open redirectors start with loose matching.
        return any(same(redirect_uri, registered) for registered in self.record["redirect_uris"])

    def check_client_secret(self, client_secret: str) -> bool:
        stored = self.record["secret_hash"]
        return stored is not None and isinstance(client_secret, str) and same(digest(client_secret), stored)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        if self.public:
            return method == "none"
        return method in ("client_secret_basic", "client_secret_post")

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code" and "authorization_code" in self.record["grant_types"]

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in self.record["grant_types"]


@dataclass
class GrantUser:
    """The resource owner an authorization stands for, as the service authenticated them."""

    row: dict[str, Any]
    roles: list[str]
    amr: list[str]
    auth_time: float
    nonce: str = ""
    issued: TokenSet | None = field(default=None, repr=False)

    def get_user_id(self) -> str:
        return str(self.row["id"])


class AuthorizationCode(AuthorizationCodeMixin):
    def __init__(self, record: dict[str, Any]) -> None:
        self.record = record
        self.code_challenge = record["code_challenge"] or None
        self.code_challenge_method = record["code_challenge_method"] or None

    def get_redirect_uri(self) -> str:
        return str(self.record["redirect_uri"])

    def get_scope(self) -> str:
        return str(self.record["scope"])

    def get_nonce(self) -> str | None:
        return self.record["nonce"] or None

    def get_auth_time(self) -> int:
        return int(self.record["auth_time"])


@dataclass
class IssuedToken(TokenMixin):
    """A token as introspection and revocation see it."""

    value: str
    info: dict[str, Any]

    def check_client(self, client: Client) -> bool:
        return bool(self.info.get("client_id")) and same(self.info["client_id"], client.client_id)

    def get_scope(self) -> str:
        return str(self.info.get("scope", ""))

    def get_expires_in(self) -> int:
        return int(self.info.get("exp", 0))

    def is_expired(self) -> bool:
        return not self.info.get("active")

    def is_revoked(self) -> bool:
        return not self.info.get("active")


def _s256(verifier: str, challenge: str) -> bool:
    return same(b64url(hashlib.sha256(verifier.encode()).digest()), challenge)


class PkceChallenge(CodeChallenge):
    """PKCE (RFC 7636); S256 only, compared in constant time."""

    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]
    DEFAULT_CODE_CHALLENGE_METHOD = "S256"
    CODE_CHALLENGE_METHODS = {"S256": _s256}


def make_server(service: AuthService) -> AuthorizationServer:
    """An authlib authorization server wired to ``service``."""
    server = AuthorizationServer(service)
    server.register_grant(AuthorizationCodeGrant, [PkceChallenge(required=True)])
    server.register_grant(ClientCredentialsGrant)
    server.register_grant(RefreshTokenGrant)
    server.register_endpoint(Introspection)
    server.register_endpoint(Revocation)
    server.register_token_generator("default", server.generate_tokens)
    return server


class AuthorizationServer(_AuthorizationServer):
    def __init__(self, service: AuthService) -> None:
        super().__init__(scopes_supported=None)
        self.service = service

    def query_client(self, client_id: str) -> Client | None:
        if not isinstance(client_id, str) or not client_id:
            return None
        record = _run(self.service.store.client, client_id)
        return Client(record) if record else None

    def save_token(self, token: dict[str, Any], request: OAuth2Request) -> None:
        """Nothing to do: the service stored the refresh token when it issued it."""

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        """No signal subscribers: the service writes the audit records itself."""

    def create_oauth2_request(self, request: Any) -> OAuth2Request:
        return request

    def create_json_request(self, request: Any) -> Any:
        return request

    def handle_response(
        self, status: int, body: Any, headers: list[tuple[str, str]]
    ) -> tuple[int, Any, list]:
        return status, body, list(headers)

    def generate_tokens(
        self,
        grant_type: str,
        client: Client,
        user: GrantUser | None = None,
        scope: str | None = None,
        expires_in: int | None = None,
        include_refresh_token: bool = True,
    ) -> dict[str, Any]:
        """The token generator for every grant: the service mints our JWTs."""
        if user is not None and user.issued is not None:  # the refresh grant has issued already
            return user.issued.to_json()
        if user is None:  # client credentials: the token stands for the client's service identity
            principal_id = client.record["principal_id"]
            row = _run(self.service.store.principal_by_id, principal_id) if principal_id else None
            if row is None or row["disabled"]:
                raise InvalidToken(f"client {client.client_id!r} has no enabled service identity")
            roles = _run(self.service.store.roles_of, row["id"])
            user = GrantUser(row, roles, ["client"], self.service.clock())
            include_refresh_token = False
        tokens: TokenSet = _run(
            _issue,
            self.service,
            user,
            client,
            client.get_allowed_scope(scope or ""),
            include_refresh_token,
        )
        return tokens.to_json()


async def _issue(
    service: AuthService, user: GrantUser, client: Client, scope: str, refresh: bool
) -> TokenSet:
    return await service.issue_tokens(
        user.row,
        user.roles,
        amr=user.amr,
        client_id=client.client_id,
        scope=scope,
        auth_time=user.auth_time,
        refresh=refresh,
        nonce=user.nonce,
        id_token_alg=client.record["id_token_signed_response_alg"],
    )


class AuthorizationCodeGrant(grants.AuthorizationCodeGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]
    AUTHORIZATION_CODE_LENGTH = AUTHORIZATION_CODE_BYTES

    @property
    def service(self) -> AuthService:
        return self.server.service  # type: ignore[no-any-return]

    def save_authorization_code(self, code: str, request: OAuth2Request) -> None:
        user: GrantUser = request.user
        data = request.payload.data
        values = {
            "client_id": request.client.client_id,
            "principal_id": user.row["id"],
            "redirect_uri": request.payload.redirect_uri or "",
            "scope": request.client.get_allowed_scope(request.payload.scope or ""),
            "nonce": data.get("nonce", ""),
            "code_challenge": data.get("code_challenge", ""),
            "code_challenge_method": data.get(
                "code_challenge_method", "S256" if data.get("code_challenge") else ""
            ),
            "auth_time": user.auth_time,
            "amr": user.amr,
        }
        expires = self.service.clock() + self.service.settings.authorization_code_ttl
        _run(self.service.store.save_code, digest(code), values, expires)

    def query_authorization_code(self, code: str, client: Client) -> AuthorizationCode | None:
        if not isinstance(code, str) or not code:
            return None
        record = _run(self.service.store.take_code, digest(code), client.client_id, self.service.clock())
        return AuthorizationCode(record) if record else None

    def delete_authorization_code(self, authorization_code: AuthorizationCode) -> None:
        """Already gone: :meth:`query_authorization_code` deletes a code as it reads it."""

    def authenticate_user(self, authorization_code: AuthorizationCode) -> GrantUser | None:
        record = authorization_code.record
        row = _run(self.service.store.principal_by_id, record["principal_id"])
        if row is None or row["disabled"]:
            return None
        roles = _run(self.service.store.roles_of, row["id"])
        return GrantUser(row, roles, list(record["amr"]), float(record["auth_time"]), record["nonce"])


class ClientCredentialsGrant(grants.ClientCredentialsGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]


@dataclass
class RotatedRefresh:
    """A refresh token the service has already rotated; ``issued`` holds the new tokens."""

    client_id: str
    issued: TokenSet
    scope: str

    def check_client(self, client: Client) -> bool:
        return same(self.client_id, client.client_id)

    def get_scope(self) -> str:
        return self.scope


class RefreshTokenGrant(grants.RefreshTokenGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]

    @property
    def service(self) -> AuthService:
        return self.server.service  # type: ignore[no-any-return]

    def authenticate_refresh_token(self, refresh_token: str) -> RotatedRefresh | None:
        client = self.request.client
        try:
            issued = _run(_refresh, self.service, refresh_token, client.client_id, self.request.headers)
        except InvalidToken:
            return None  # authlib answers invalid_grant; the service has audited (and revoked) already
        return RotatedRefresh(client.client_id, issued, issued.scope)

    def authenticate_user(self, refresh_token: RotatedRefresh) -> GrantUser:
        return GrantUser({}, [], [], 0.0, issued=refresh_token.issued)

    def revoke_old_credential(self, refresh_token: RotatedRefresh) -> None:
        """Already done: the service marks a refresh token used as it rotates it."""


async def _refresh(service: AuthService, token: str, client_id: str, headers: dict[str, str]) -> TokenSet:
    return await service.refresh(token, client_id=client_id, request_id=headers.get("x-request-id", ""))


class Introspection(IntrospectionEndpoint):
    CLIENT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]

    def query_token(self, token_string: str, token_type_hint: str | None) -> IssuedToken | None:
        info = _run(self.server.service.introspect, token_string)
        return IssuedToken(token_string, info) if info.get("active") else None

    def check_permission(self, token: IssuedToken, client: Client, request: OAuth2Request) -> bool:
        """Any confidential client (a resource server) may introspect."""
        return not client.public

    def introspect_token(self, token: IssuedToken) -> dict[str, Any]:
        return token.info


class Revocation(RevocationEndpoint):
    CLIENT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]

    def query_token(self, token_string: str, token_type_hint: str | None) -> IssuedToken | None:
        info = _run(self.server.service.introspect, token_string)
        return IssuedToken(token_string, info) if info.get("active") else None

    def revoke_token(self, token: IssuedToken, request: OAuth2Request) -> None:
        _run(_revoke, self.server.service, token.value)


async def _revoke(service: AuthService, token: str) -> None:
    await service.revoke_token(token, reason="revoked by its client (RFC 7009)")
