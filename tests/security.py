"""Test material for authentication and TLS: keys, tokens, API key files and certificates,
all made here (nothing is read from outside)."""
from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

SECRET = "a-test-secret-that-is-long-enough-for-hs256!"
ISSUER = "https://issuer.test"
AUDIENCE = "bet-tests"


def claims(**overrides: Any) -> dict[str, Any]:
    """Valid claims for the test issuer and audience, with the predict scope."""
    now = int(time.time())
    base = {"sub": "alice", "iss": ISSUER, "aud": AUDIENCE, "iat": now, "nbf": now - 1,
            "exp": now + 300, "scope": "predict"}
    return {k: v for k, v in (base | overrides).items() if v is not None}


def hs256(**overrides: Any) -> str:
    return jwt.encode(claims(**overrides), SECRET, algorithm="HS256")


def unsigned(**overrides: Any) -> str:
    """`alg: none`, no signature."""
    return jwt.encode(claims(**overrides), None, algorithm="none")


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def pem_private(key: Any) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def pem_public(key: Any) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)


def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def key_line(key_id: str, key: str, scopes: list[str]) -> str:
    return json.dumps({"id": key_id, "sha256": hashlib.sha256(key.encode()).hexdigest(), "scopes": scopes})


def write_keys(path: Path, entries: dict[str, tuple[str, list[str]]]) -> None:
    """entries: id -> (the key itself, scopes); the file holds only the digests."""
    lines = ["# bet API keys: one JSON object a line"]
    lines += [key_line(key_id, key, scopes) for key_id, (key, scopes) in entries.items()]
    path.write_text("\n".join(lines) + "\n")


@dataclass
class Pki:
    """A CA and a server certificate for 127.0.0.1 and localhost that it signed."""

    ca_pem: bytes
    cert_file: Path
    key_file: Path


def make_pki(folder: Path, name: str = "test") -> Pki:
    now = dt.datetime.now(dt.timezone.utc)
    ca_key = ec_key()
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"bet {name} CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    server_key = ec_key()
    server = (x509.CertificateBuilder()
              .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
              .issuer_name(ca_name).public_key(server_key.public_key())
              .serial_number(x509.random_serial_number())
              .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
              .add_extension(x509.SubjectAlternativeName([
                  x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                  critical=False)
              .sign(ca_key, hashes.SHA256()))
    cert_file, key_file = folder / f"{name}-cert.pem", folder / f"{name}-key.pem"
    cert_file.write_bytes(server.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(pem_private(server_key))
    return Pki(ca.public_bytes(serialization.Encoding.PEM), cert_file, key_file)
