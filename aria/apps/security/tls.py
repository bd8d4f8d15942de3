"""The node's local certificate authority.

Created on first boot under ``<data>/security/tls/``; it signs OpenBao's listener certificate and,
later, the gateway's. Clients verify against ``ca.pem`` (never ``verify=False``). The CA key is a
0600 file: anyone who can read the data directory as Aria's user can already read everything else.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_DAYS = 3650
LEAF_DAYS = 397


def _write_private(path: Path, data: bytes) -> None:
    """Write a file readable only by its owner, atomically."""
    temporary = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


@dataclass(frozen=True)
class IssuedCertificate:
    cert_file: Path
    key_file: Path


class LocalCA:
    """A small CA kept in ``directory`` (created on first use)."""

    def __init__(self, directory: Path, node_name: str) -> None:
        self.directory = directory
        self.cert_file = directory / "ca.pem"
        self._key_file = directory / "ca-key.pem"
        self._node_name = node_name

    def ensure(self) -> None:
        """Create the CA if it does not exist yet."""
        if self.cert_file.exists() and self._key_file.exists():
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Aria Character Core"),
                x509.NameAttribute(NameOID.COMMON_NAME, f"Aria local CA ({self._node_name})"),
            ]
        )
        now = datetime.datetime.now(datetime.UTC)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=CA_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=False,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256())
        )
        _write_private(self._key_file, _key_pem(key))
        _write_private(self.cert_file, certificate.public_bytes(serialization.Encoding.PEM))

    def issue(
        self,
        name: str,
        *,
        dns_names: tuple[str, ...] = ("localhost",),
        ip_addresses: tuple[str, ...] = ("127.0.0.1",),
        directory: Path | None = None,
        days: int = LEAF_DAYS,
    ) -> IssuedCertificate:
        """Issue a server certificate for ``name`` and write ``<name>.pem`` and ``<name>-key.pem``.

        A certificate that exists, was signed by this CA and is valid for at least 30 more days is
        kept as it is.
        """
        self.ensure()
        target = directory or self.directory
        target.mkdir(parents=True, exist_ok=True)
        cert_file, key_file = target / f"{name}.pem", target / f"{name}-key.pem"
        ca_cert = x509.load_pem_x509_certificate(self.cert_file.read_bytes())
        if cert_file.exists() and key_file.exists():
            existing = x509.load_pem_x509_certificate(cert_file.read_bytes())
            still_valid = existing.not_valid_after_utc - datetime.datetime.now(datetime.UTC)
            if existing.issuer == ca_cert.subject and still_valid > datetime.timedelta(days=30):
                return IssuedCertificate(cert_file, key_file)
        ca_key = serialization.load_pem_private_key(self._key_file.read_bytes(), password=None)
        assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        alternative_names: list[x509.GeneralName] = [x509.DNSName(d) for d in dns_names]
        alternative_names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ip_addresses]
        certificate = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName(alternative_names), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key()),  # type: ignore[arg-type]
                critical=False,
            )
            .sign(ca_key, hashes.SHA256())
        )
        _write_private(key_file, _key_pem(key))
        _write_private(cert_file, certificate.public_bytes(serialization.Encoding.PEM))
        return IssuedCertificate(cert_file, key_file)
