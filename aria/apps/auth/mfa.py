"""TOTP (RFC 6238) second factor and single-use recovery codes.

A code is accepted for the current 30-second step or one step either side (clock skew), and only for a
step later than the last one accepted for that account, so a code seen once cannot be replayed within
its step (the caller stores the returned step atomically). Comparisons are constant-time.
"""

from __future__ import annotations

import re
import secrets

import pyotp

from aria.apps.auth.passwords import same

STEP_SECONDS = 30
_CODE = re.compile(r"^[0-9]{6}$")
_RECOVERY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"


def new_secret() -> str:
    """A fresh TOTP secret (160 random bits, base32)."""
    return pyotp.random_base32(32)


def provisioning_uri(secret: str, account: str, issuer: str) -> str:
    """The ``otpauth://`` URI an authenticator app scans."""
    return pyotp.TOTP(secret).provisioning_uri(name=account, issuer_name=issuer)


def normalise_code(code: object) -> str | None:
    """The six digits of a TOTP code as typed (spaces allowed), or None if it is not one."""
    if not isinstance(code, str):
        return None
    digits = code.replace(" ", "")
    return digits if _CODE.match(digits) else None


def matching_step(secret: str, code: object, now: float, last_step: int, window: int = 1) -> int | None:
    """The time step ``code`` belongs to, if it is valid now and later than ``last_step``."""
    digits = normalise_code(code)
    if digits is None:
        return None
    totp = pyotp.TOTP(secret)
    current = int(now // STEP_SECONDS)
    found = None
    for step in range(current - window, current + window + 1):
        # Every candidate is compared, so the time taken does not depend on which one matched.
        if same(totp.generate_otp(step), digits) and step > last_step and found is None:
            found = step
    return found


def new_recovery_codes(count: int) -> list[str]:
    """``count`` single-use recovery codes like ``k7m2p-x9qrt`` (about 49 random bits each)."""
    codes = []
    for _ in range(count):
        raw = "".join(secrets.choice(_RECOVERY_ALPHABET) for _ in range(10))
        codes.append(f"{raw[:5]}-{raw[5:]}")
    return codes


def normalise_recovery_code(code: object) -> str | None:
    if not isinstance(code, str):
        return None
    cleaned = code.strip().lower().replace(" ", "")
    if len(cleaned) == 10:
        cleaned = f"{cleaned[:5]}-{cleaned[5:]}"
    if len(cleaned) != 11 or cleaned[5] != "-":
        return None
    return cleaned
