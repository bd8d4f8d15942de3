"""aria_auth's errors (re-exported by ``api.py``).

* ``AuthError`` (an ``AriaError``): an authentication or token check failed, or the app could not
  decide. Messages never say *which* credential was wrong (no user enumeration).

  * ``InvalidCredentials``: wrong user name, password, one-time code or client secret; always the
    same generic message.
  * ``TooManyAttempts``: the account or the client address is locked out for ``retry_after`` s.
  * ``MfaRequired``: a second factor is needed (``enrolment`` is True when none is enrolled yet).
  * ``InvalidToken``: a token is malformed, forged, expired, not yet valid, for another audience,
    revoked or of the wrong type; ``reason`` says which (for logs and the audit, not for clients).

    * ``RefreshTokenReused``: a rotated refresh token was presented again; its family is revoked.

  * ``AuthUnavailable``: a dependency (OpenBao, the database) did not answer.

Misuse raises ``ValueError`` (a weak password, a malformed permission), ``KeyError`` subclasses
(``UnknownPrincipal``, ``UnknownRole``...) or ``aria.errors.UsageError``.
"""

from __future__ import annotations

from aria.errors import AriaError


class AuthError(AriaError):
    """Base class of aria_auth's errors."""


class InvalidCredentials(AuthError):
    """The credentials do not authenticate anyone. Deliberately says nothing more."""

    def __init__(self, message: str = "invalid user name or password") -> None:
        super().__init__(message)


class TooManyAttempts(AuthError):
    """Too many failed attempts for this account or client address; try again later."""

    def __init__(self, retry_after: float) -> None:
        self.retry_after = max(0.0, float(retry_after))
        super().__init__(f"too many failed attempts; try again in {int(self.retry_after) + 1} s")


class MfaRequired(AuthError):
    """The password was right but a second factor is required.

    ``enrolment`` is True when the account has none enrolled and its roles require one.
    """

    def __init__(self, enrolment: bool = False) -> None:
        self.enrolment = enrolment
        if enrolment:
            message = "a second factor is required for this account's roles; enrol TOTP first"
        else:
            message = "a one-time code (TOTP or recovery code) is required"
        super().__init__(message)


class InvalidToken(AuthError):
    """A token failed verification; ``reason`` names the check that failed."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"invalid token: {reason}")


class RefreshTokenReused(InvalidToken):
    """A refresh token that was already rotated came back: the whole family is revoked."""

    def __init__(self, family: str) -> None:
        self.family = family
        super().__init__(f"refresh token reused; token family {family} revoked")


class AuthUnavailable(AuthError):
    """aria_auth could not reach OpenBao or the database to decide."""


class UnknownPrincipal(KeyError):
    """No user or service identity of that name or id."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"no user or service named {name!r}")

    def __str__(self) -> str:
        return str(self.args[0])


class UnknownRole(KeyError):
    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"no role named {name!r}")

    def __str__(self) -> str:
        return str(self.args[0])


class UnknownGroup(KeyError):
    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"no group named {name!r}")

    def __str__(self) -> str:
        return str(self.args[0])


class UnknownClient(KeyError):
    def __init__(self, client_id: str) -> None:
        self.client_id = client_id
        super().__init__(f"no OAuth client {client_id!r}")

    def __str__(self) -> str:
        return str(self.args[0])
