"""The Python API of aria_security, for other apps and scripts.

An app reaches its secrets with its own identity::

    secrets = AppSecrets(ctx.api("aria_security"), ctx.app.name)
    await secrets.put_secret("db/password", {"value": await secrets.generate_password()})
    token = await secrets.encrypt("default", b"plaintext", context=b"row 42")

``aria.whereis("aria_security")`` returns the service itself (``SecurityApi``): ``status()``,
``await health()``, ``ca_file``, ``await issue_certificate(name)``, and the operator's
``await seal()`` / ``await unseal(shares)``.
"""

from aria.apps.security.client import AppSecrets, DataKey, SecretVersion, check_path
from aria.apps.security.errors import (
    CasConflict,
    DecryptionFailed,
    InvalidSecretRequest,
    PermissionDenied,
    Sealed,
    SecretNotFound,
    SecurityError,
    SecurityUnavailable,
)
from aria.apps.security.keeper import Keeper as SecurityApi
from aria.apps.security.keeper import SessionStatistics

__all__ = [
    "AppSecrets",
    "CasConflict",
    "DataKey",
    "DecryptionFailed",
    "InvalidSecretRequest",
    "PermissionDenied",
    "Sealed",
    "SecretNotFound",
    "SecretVersion",
    "SecurityApi",
    "SecurityError",
    "SecurityUnavailable",
    "SessionStatistics",
    "check_path",
]
