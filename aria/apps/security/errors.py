"""aria_security's errors (re-exported by ``api.py``).

* ``SecurityError`` (an ``AriaError``)

  * ``SecretNotFound`` (also a ``KeyError``): no secret (or no live version) at that path.
  * ``PermissionDenied`` (also a ``PermissionError``): OpenBao's policy refused the app.
  * ``Sealed``: OpenBao is sealed and stayed sealed for the call's timeout.
  * ``CasConflict``: a check-and-set write found another version than the one expected.
  * ``DecryptionFailed``: ciphertext was tampered with, or the wrong key or context was used.
  * ``SecurityUnavailable``: OpenBao did not answer within the call's timeout.
  * ``InvalidSecretRequest`` (also a ``ValueError``): a bad path, key name or value; nothing was sent.
"""

from __future__ import annotations

from aria.errors import AriaError


class SecurityError(AriaError):
    """Base class of aria_security's errors."""


class SecretNotFound(SecurityError, KeyError):
    def __init__(self, app: str, path: str, detail: str = "") -> None:
        self.app = app
        self.path = path
        suffix = f" ({detail})" if detail else ""
        super().__init__(f"no secret at {path!r} for {app}{suffix}")

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class PermissionDenied(SecurityError, PermissionError):
    def __init__(self, app: str, target: str) -> None:
        self.app = app
        self.target = target
        super().__init__(f"{app} is not allowed to use {target!r}: OpenBao's policy for {app} denies it")


class Sealed(SecurityError):
    def __init__(self, target: str, waited: float) -> None:
        super().__init__(
            f"OpenBao is sealed (waited {waited:g} s to reach {target!r}); run `aria security unseal`"
        )


class CasConflict(SecurityError):
    def __init__(self, app: str, path: str, expected: int) -> None:
        self.expected = expected
        super().__init__(
            f"check-and-set write of {path!r} for {app} expected version {expected}, "
            "but the secret is at another version"
        )


class DecryptionFailed(SecurityError):
    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"could not decrypt with key {key!r}: {reason}")


class SecurityUnavailable(SecurityError):
    def __init__(self, target: str, waited: float, reason: str) -> None:
        super().__init__(f"OpenBao did not answer for {target!r} within {waited:g} s: {reason}")


class InvalidSecretRequest(SecurityError, ValueError):
    """Raised before anything is sent when a path, key name or value is not acceptable."""
