"""Building blocks for the certificates tests make: CA certificates, key usages, keys as PEM.

Two places make a certificate authority of their own: the test Sigstore's Fulcio-like CA
(:mod:`headwater.testing.sigstore_ca`, a root and an intermediate) and the TLS tests' CA that
signs a server certificate for 127.0.0.1 (``tests/tls.py``). What a CA certificate is (basic
constraints ``ca=True`` with a path length, key usage *certificate sign* and *CRL sign*, both
critical) is written once here, as are the key usage of a signing leaf and the PEM form of a
private key. For tests and benchmarks only: the keys made with these are not secret.
"""

from __future__ import annotations

from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

__all__ = ["ca_certificate", "distinguished_name", "key_usage", "pem_private_key"]


def distinguished_name(common_name: str, organization: str | None = None) -> x509.Name:
    """A distinguished name: ``O=organization`` (when given), ``CN=common_name``."""
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization is not None:
        attributes.insert(0, x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    return x509.Name(attributes)


def key_usage(*, certificate_authority: bool) -> x509.KeyUsage:
    """A CA's key usage (sign certificates and CRLs) or a signing leaf's (digital signature)."""
    return x509.KeyUsage(
        digital_signature=not certificate_authority,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=certificate_authority,
        crl_sign=certificate_authority,
        encipher_only=False,
        decipher_only=False,
    )


def ca_certificate(
    subject: x509.Name,
    issuer: x509.Name,
    public_key: ec.EllipticCurvePublicKey,
    *,
    serial: int,
    not_before: datetime,
    not_after: datetime,
    path_length: int,
) -> x509.CertificateBuilder:
    """A CA certificate for ``public_key``, issued by ``issuer`` (``subject`` for a root), that
    may sign ``path_length`` levels of CAs below it; the caller adds any other extension and
    signs it."""
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(serial)
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
        .add_extension(key_usage(certificate_authority=True), critical=True)
    )


def pem_private_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    """``key`` as unencrypted PKCS#8 PEM."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
