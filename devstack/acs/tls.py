"""A throwaway self-signed certificate for the emulator's optional HTTPS listener.

Why: `from_connection_string` always talks HTTPS (acs-contract §2.1), so users who keep connection
strings, or who use bearer-token credentials, need TLS. The certificate is made at start (valid for
localhost and 127.0.0.1, one day) and never written anywhere except a private temporary directory
that is removed as soon as the SSL context has loaded it.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@dataclass(frozen=True)
class SelfSigned:
    """A PEM certificate and its PEM private key."""

    cert_pem: bytes
    key_pem: bytes


def make_certificate(hostnames: tuple[str, ...] = ("localhost",)) -> SelfSigned:
    """A one-day self-signed certificate for the given names plus 127.0.0.1 and ::1."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ACS emulator (local, self-signed)")])
    now = dt.datetime.now(dt.UTC)
    names: list[x509.GeneralName] = [x509.DNSName(host) for host in hostnames]
    names += [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.IPAddress(ipaddress.ip_address("::1"))]
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return SelfSigned(cert.public_bytes(serialization.Encoding.PEM), key_pem)


def server_context(material: SelfSigned) -> ssl.SSLContext:
    """A server-side SSL context loaded from the PEMs (the ssl module only loads from files)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    with tempfile.TemporaryDirectory(prefix="acs-emulator-tls-") as folder:
        cert_path = Path(folder) / "cert.pem"
        key_path = Path(folder) / "key.pem"
        cert_path.write_bytes(material.cert_pem)
        key_path.write_bytes(material.key_pem)
        key_path.chmod(0o600)
        context.load_cert_chain(cert_path, key_path)
    return context
