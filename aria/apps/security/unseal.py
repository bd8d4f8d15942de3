"""Where unseal keys come from, and how aria's admin credential is kept at rest.

Unseal key sources (``security.unseal_source``):

* ``file`` (the local default): the key shares live in ``<data>/security/unseal-keys.json`` (0600).
  Convenient, and logged as a warning at every boot: whoever reads that file owns the secrets.
* ``env``: the shares come from an environment variable (comma-separated). On first boot they are
  printed once to standard error for the operator to keep.
* ``operator``: nobody stores them; ``aria security unseal`` hands them to the running node. On
  first boot they are printed once to standard error.

After bootstrap OpenBao's root token is revoked, so aria needs its own admin credential (an AppRole
role id and secret id) at every boot. It is stored in ``admin-credential.json`` encrypted with
AES-256-GCM under a key derived (HKDF-SHA256) from the unseal shares: one envelope per subset of
``threshold`` shares, so any set of shares that can unseal OpenBao also unlocks the credential, and
nothing in the data directory holds it in plain text.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import os
import sys
from pathlib import Path
from typing import Any

import structlog
import trio
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from aria.apps.security.errors import SecurityError
from aria.apps.security.tls import _write_private

log = structlog.get_logger("aria_security")

_AAD = b"aria admin credential v1"


def key_id(share: str) -> str:
    """A short, non-secret identifier of an unseal share."""
    return hashlib.sha256(share.encode()).hexdigest()[:16]


class KeySource:
    """Base class: where the unseal shares come from."""

    name = ""

    def store_initial(self, shares: list[str]) -> None:
        raise NotImplementedError

    async def load(self) -> list[str]:
        raise NotImplementedError

    def describe(self) -> str:
        return self.name


def _announce(shares: list[str], where: str) -> None:
    lines = [
        "",
        "=" * 72,
        "OpenBao was initialised. Its unseal key shares are shown ONCE, here:",
        *[f"  share {index + 1}: {share}" for index, share in enumerate(shares)],
        f"Keep them safe: {where}",
        "=" * 72,
        "",
    ]
    print("\n".join(lines), file=sys.stderr, flush=True)


class FileKeySource(KeySource):
    name = "file"

    def __init__(self, path: Path) -> None:
        self.path = path

    def store_initial(self, shares: list[str]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        _write_private(self.path, json.dumps({"shares": shares}).encode())

    async def load(self) -> list[str]:
        log.warning(
            "unseal key shares are read from a file; anyone who can read it can read every secret",
            path=str(self.path),
        )
        try:
            data = json.loads(await trio.Path(self.path).read_text())
        except FileNotFoundError:
            raise SecurityError(
                f"OpenBao is initialised but the unseal key file {self.path} is missing"
            ) from None
        return list(data["shares"])

    def describe(self) -> str:
        return f"file {self.path}"


class EnvKeySource(KeySource):
    name = "env"

    def __init__(self, variable: str) -> None:
        self.variable = variable

    def store_initial(self, shares: list[str]) -> None:
        _announce(shares, f"set {self.variable}=<share>,<share>,... for the next starts")

    async def load(self) -> list[str]:
        value = os.environ.get(self.variable, "")
        shares = [share.strip() for share in value.split(",") if share.strip()]
        if not shares:
            raise SecurityError(f"unseal_source is env but ${self.variable} is empty")
        return shares

    def describe(self) -> str:
        return f"environment variable {self.variable}"


class OperatorKeySource(KeySource):
    """Shares handed over at run time by ``aria security unseal``."""

    name = "operator"

    def __init__(self) -> None:
        self._shares: list[str] = []
        self._given = trio.Event()

    def store_initial(self, shares: list[str]) -> None:
        _announce(shares, "give them to `aria security unseal` after every start")

    def provide(self, shares: list[str]) -> None:
        self._shares = list(shares)
        self._given.set()

    async def load(self) -> list[str]:
        if not self._given.is_set():
            log.warning("OpenBao is sealed: waiting for `aria security unseal`")
        await self._given.wait()
        return self._shares

    def describe(self) -> str:
        return "operator (aria security unseal)"


def _derive(shares: list[str]) -> bytes:
    ordered = sorted(shares, key=key_id)
    return HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=b"aria-admin-credential",
        info=",".join(key_id(s) for s in ordered).encode(),
    ).derive("".join(ordered).encode())


def seal_credential(path: Path, credential: dict[str, Any], shares: list[str], threshold: int) -> None:
    """Encrypt ``credential`` once per threshold-sized subset of ``shares`` and write it to ``path``."""
    plaintext = json.dumps(credential).encode()
    envelopes = []
    for subset in itertools.combinations(sorted(shares, key=key_id), threshold):
        nonce = os.urandom(12)
        ciphertext = AESGCM(_derive(list(subset))).encrypt(nonce, plaintext, _AAD)
        envelopes.append(
            {
                "shares": [key_id(s) for s in subset],
                "nonce": base64.b64encode(nonce).decode(),
                "ciphertext": base64.b64encode(ciphertext).decode(),
            }
        )
    _write_private(path, json.dumps({"version": 1, "threshold": threshold, "envelopes": envelopes}).encode())


def open_credential(path: Path, shares: list[str]) -> dict[str, Any]:
    """Decrypt the admin credential with any threshold of the given shares.

    Raises:
        SecurityError: if the file is missing, or the shares do not open any envelope.
    """
    try:
        stored = json.loads(path.read_text())
    except FileNotFoundError:
        raise SecurityError(f"aria's admin credential {path} is missing; restore it from a backup") from None
    by_id = {key_id(s): s for s in shares}
    for envelope in stored["envelopes"]:
        if all(identifier in by_id for identifier in envelope["shares"]):
            subset = [by_id[identifier] for identifier in envelope["shares"]]
            try:
                plaintext = AESGCM(_derive(subset)).decrypt(
                    base64.b64decode(envelope["nonce"]), base64.b64decode(envelope["ciphertext"]), _AAD
                )
            except InvalidTag:
                continue
            result: dict[str, Any] = json.loads(plaintext)
            return result
    raise SecurityError(
        "the unseal shares given do not open aria's admin credential "
        f"({stored['threshold']} valid shares needed)"
    )
