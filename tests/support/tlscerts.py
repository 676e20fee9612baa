"""A throwaway certificate authority for TLS tests: a CA, a server and a client certificate, all PEM.

Made with `cryptography` (already installed for the gate's JWTs), so no openssl or keytool run.
The server certificate names 127.0.0.1 and localhost, so clients verify the host as they would
in production (librdkafka's default `ssl.endpoint.identification.algorithm=https`).
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID


@dataclass(frozen=True)
class Certs:
    ca: Path  # the CA certificate
    server: Path  # server key (PKCS#8, unencrypted) followed by its certificate: a PEM keystore for Kafka
    client_cert: Path
    client_key: Path
    stranger_ca: Path  # a CA that signed none of these


def make_certs(folder: Path) -> Certs:
    folder.mkdir(parents=True, exist_ok=True)
    ca_key, ca_cert = _ca("flashgate test CA")
    _, stranger = _ca("some other CA")
    server_key, server = _leaf("kafka", ca_key, ca_cert, server=True)
    client_key, client = _leaf("flashgate-gate", ca_key, ca_cert, server=False)
    paths = Certs(
        ca=folder / "ca.pem",
        server=folder / "server.pem",
        client_cert=folder / "client.crt",
        client_key=folder / "client.key",
        stranger_ca=folder / "stranger.pem",
    )
    paths.ca.write_bytes(_pem(ca_cert))
    paths.stranger_ca.write_bytes(_pem(stranger))
    paths.server.write_bytes(_key(server_key) + _pem(server))
    paths.client_cert.write_bytes(_pem(client))
    paths.client_key.write_bytes(_key(client_key))
    return paths


def _ca(name: str) -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    cert = (
        _base(subject, subject, key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _leaf(
    name: str, ca_key: rsa.RSAPrivateKey, ca_cert: x509.Certificate, *, server: bool
) -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    builder = _base(subject, ca_cert.subject, key.public_key())
    if server:
        names = [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return key, builder.sign(ca_key, hashes.SHA256())


def _base(subject: x509.Name, issuer: x509.Name, public_key: rsa.RSAPublicKey) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
    )


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
