"""The certificate side of the test Sigstore: a Fulcio-like CA and a CT log.

:class:`TestCA` is a root and an intermediate certificate (the trust root's
``certificateAuthorities``) that issues, per attestation, a short-lived leaf certificate for a
fresh P-256 key carrying Fulcio's identity extensions for a :class:`Signer` (a CI job on GitHub
or GitLab). :class:`TestCTLog` signs the precertificate SCT embedded in each leaf (RFC 6962).
:mod:`headwater.testing.sigstore_root` puts them together with a transparency log; see its
docstring for what the verifier checks of each part. For tests and benchmarks only.
"""

from __future__ import annotations

import base64
import hashlib
import struct
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from headwater.testing.certificates import ca_certificate, distinguished_name, key_usage

__all__ = ["LEAF_LIFETIME", "Signer", "TestCA", "TestCTLog", "b64", "key_id", "sign", "spki"]

# Fulcio's certificate extensions (sigstore/fulcio docs/oid-info.md).
_FULCIO = "1.3.6.1.4.1.57264.1."
_OID_ISSUER_V1 = x509.ObjectIdentifier(_FULCIO + "1")  # raw string, deprecated but still issued
_CLAIM_OIDS = {
    "issuer": _FULCIO + "8",
    "build_signer_uri": _FULCIO + "9",
    "build_signer_digest": _FULCIO + "10",
    "runner_environment": _FULCIO + "11",
    "source_repository_uri": _FULCIO + "12",
    "source_repository_digest": _FULCIO + "13",
    "source_repository_ref": _FULCIO + "14",
    "build_config_uri": _FULCIO + "18",
    "build_trigger": _FULCIO + "20",
}
_OID_SCT_LIST = x509.ObjectIdentifier("1.3.6.1.4.1.11129.2.4.2")
#: How long a leaf certificate is valid (Fulcio: 10 minutes).
LEAF_LIFETIME = timedelta(minutes=10)
_GITHUB_ISSUER = "https://token.actions.githubusercontent.com"
_GITLAB_ISSUER = "https://gitlab.com"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _der_length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def _der_utf8(text: str) -> bytes:
    data = text.encode()
    return b"\x0c" + _der_length(len(data)) + data


def _der_octets(data: bytes) -> bytes:
    return b"\x04" + _der_length(len(data)) + data


def spki(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def key_id(key: ec.EllipticCurvePublicKey) -> bytes:
    """RFC 6962's key id: the sha256 of the DER SubjectPublicKeyInfo (logs and CT logs)."""
    return hashlib.sha256(spki(key)).digest()


def sign(key: ec.EllipticCurvePrivateKey, data: bytes) -> bytes:
    return key.sign(data, ec.ECDSA(hashes.SHA256()))


@dataclass(frozen=True, slots=True)
class Signer:
    """The CI identity a leaf certificate is issued to (what Fulcio reads from the OIDC token).

    ``kind`` is ``github`` or ``gitlab``; ``repository`` is ``owner/repo`` (``group/project``);
    ``workflow`` the workflow file (``release.yml``, ``.gitlab-ci.yml``); ``ref`` the git ref.
    """

    kind: str = "github"
    repository: str = "headwater-test/project"
    workflow: str = "release.yml"
    ref: str = "refs/heads/main"

    def __post_init__(self) -> None:
        if self.kind not in ("github", "gitlab"):
            raise ValueError(f"Signer kind must be 'github' or 'gitlab', got {self.kind!r}")

    @property
    def issuer(self) -> str:
        return _GITHUB_ISSUER if self.kind == "github" else _GITLAB_ISSUER

    @property
    def build_config_uri(self) -> str:
        if self.kind == "github":
            return (
                f"https://github.com/{self.repository}/.github/workflows/{self.workflow}@{self.ref}"
            )
        return f"https://gitlab.com/{self.repository}//{self.workflow}@{self.ref}"

    def claims(self) -> dict[str, str]:
        host = "https://github.com/" if self.kind == "github" else "https://gitlab.com/"
        digest = hashlib.sha1(  # noqa: S324 - a fake git commit id, not security
            f"{self.repository}@{self.ref}".encode()
        ).hexdigest()
        return {
            "issuer": self.issuer,
            "build_signer_uri": self.build_config_uri,
            "build_signer_digest": digest,
            "runner_environment": "github-hosted" if self.kind == "github" else "gitlab-hosted",
            "source_repository_uri": host + self.repository,
            "source_repository_digest": digest,
            "source_repository_ref": self.ref,
            "build_config_uri": self.build_config_uri,
            "build_trigger": "push",
        }

    def publisher(self) -> dict[str, Any]:
        """The PEP 740 ``publisher`` object of a provenance document's bundle for this signer."""
        if self.kind == "github":
            return {"kind": "GitHub", "repository": self.repository, "workflow": self.workflow}
        return {
            "kind": "GitLab",
            "repository": self.repository,
            "workflow_filepath": self.workflow,
        }


class TestCA:
    """A Fulcio-like CA: a root, an intermediate, and short-lived leaf certificates."""

    __test__ = False  # not a pytest test class

    def __init__(
        self,
        root_key: ec.EllipticCurvePrivateKey | None = None,
        intermediate_key: ec.EllipticCurvePrivateKey | None = None,
        *,
        name: str = "headwater-test",
        not_before: datetime | None = None,
        certificates: tuple[x509.Certificate, x509.Certificate] | None = None,
    ) -> None:
        self.root_key = root_key or ec.generate_private_key(ec.SECP384R1())
        self.intermediate_key = intermediate_key or ec.generate_private_key(ec.SECP384R1())
        self.name = name
        #: How a Fulcio claim is encoded in the leaf (DER UTF8String, as Fulcio does); tests
        #: replace it to make a CA that issues malformed certificates.
        self.encode_claim: Callable[[str], bytes] = _der_utf8
        if certificates is not None:  # a saved CA (root, intermediate) with its keys
            self.root, self.intermediate = certificates
            self.not_before = self.root.not_valid_before_utc
            return
        self.not_before = not_before or datetime(2020, 1, 1, tzinfo=UTC)
        not_after = self.not_before + timedelta(days=365 * 30)
        root_name = distinguished_name(f"{name} root", name)
        inter_name = distinguished_name(f"{name} intermediate", name)
        root_public = self.root_key.public_key()
        inter_public = self.intermediate_key.public_key()
        self.root = (
            ca_certificate(
                root_name,
                root_name,
                root_public,
                serial=int.from_bytes(key_id(root_public)[:16], "big") >> 1,
                not_before=self.not_before,
                not_after=not_after,
                path_length=1,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(root_public), critical=False)
            .sign(self.root_key, hashes.SHA384())
        )
        self.intermediate = (
            ca_certificate(
                inter_name,
                root_name,
                inter_public,
                serial=int.from_bytes(key_id(inter_public)[:16], "big") >> 1,
                not_before=self.not_before,
                not_after=not_after,
                path_length=0,
            )
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(inter_public), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(root_public), critical=False
            )
            .sign(self.root_key, hashes.SHA384())
        )

    def issue(
        self,
        key: ec.EllipticCurvePublicKey,
        signer: Signer,
        when: datetime,
        ct: TestCTLog | None,
    ) -> x509.Certificate:
        """A leaf certificate for ``key`` proving ``signer``, valid from ``when`` for
        :data:`LEAF_LIFETIME`, with an embedded SCT from ``ct`` (none without one)."""
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([]))
            .issuer_name(self.intermediate.subject)
            .public_key(key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(when)
            .not_valid_after(when + LEAF_LIFETIME)
            .add_extension(key_usage(certificate_authority=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(
                    self.intermediate_key.public_key()
                ),
                critical=False,
            )
            .add_extension(
                x509.SubjectAlternativeName(
                    [x509.UniformResourceIdentifier(signer.build_config_uri)]
                ),
                critical=True,
            )
            .add_extension(
                x509.UnrecognizedExtension(_OID_ISSUER_V1, signer.issuer.encode()), False
            )
        )
        for claim, value in signer.claims().items():
            oid = x509.ObjectIdentifier(_CLAIM_OIDS[claim])
            builder = builder.add_extension(
                x509.UnrecognizedExtension(oid, self.encode_claim(value)), critical=False
            )
        if ct is None:
            return builder.sign(self.intermediate_key, hashes.SHA256())
        # The precertificate is this certificate without the SCT list: the CT log signs its TBS.
        precert = builder.sign(self.intermediate_key, hashes.SHA256())
        sct = ct.sct(precert.tbs_certificate_bytes, self.intermediate_key.public_key(), when)
        leaf = builder.add_extension(
            x509.UnrecognizedExtension(_OID_SCT_LIST, _der_octets(sct)), critical=False
        ).sign(self.intermediate_key, hashes.SHA256())
        if leaf.tbs_precertificate_bytes != precert.tbs_certificate_bytes:
            raise AssertionError("the leaf certificate's precertificate is not what was logged")
        return leaf

    def trusted_root_entry(self) -> dict[str, Any]:
        """The ``certificateAuthorities`` item of a trusted root (chain from intermediate up)."""
        return {
            "subject": {"organization": self.name, "commonName": f"{self.name} root"},
            "uri": "https://fulcio.invalid",
            "certChain": {
                "certificates": [
                    {"rawBytes": b64(c.public_bytes(serialization.Encoding.DER))}
                    for c in (self.intermediate, self.root)
                ]
            },
            "validFor": {"start": self.not_before.strftime("%Y-%m-%dT%H:%M:%SZ")},
        }


class TestCTLog:
    """A certificate transparency log that only signs SCTs (RFC 6962, embedded in the leaf)."""

    __test__ = False

    def __init__(self, key: ec.EllipticCurvePrivateKey | None = None) -> None:
        self.key = key or ec.generate_private_key(ec.SECP256R1())
        self.log_id = key_id(self.key.public_key())

    def sct(self, tbs: bytes, issuer: ec.EllipticCurvePublicKey, when: datetime) -> bytes:
        """A ``SignedCertificateTimestampList`` (TLS encoding) holding one precertificate SCT."""
        millis = int(when.timestamp() * 1000)
        extensions = b""
        signed_entry = key_id(issuer) + len(tbs).to_bytes(3, "big") + tbs
        # digitally-signed struct: version v1 (0), certificate_timestamp (0), timestamp,
        # precert_entry (1), the entry, the extensions.
        to_sign = (
            struct.pack("!BBQH", 0, 0, millis, 1)
            + signed_entry
            + struct.pack("!H", len(extensions))
            + extensions
        )
        signature = sign(self.key, to_sign)
        # SCT: version, log id, timestamp, extensions, sha256 (4) + ecdsa (3), signature.
        sct = (
            b"\x00"
            + self.log_id
            + struct.pack("!QH", millis, len(extensions))
            + extensions
            + struct.pack("!BBH", 4, 3, len(signature))
            + signature
        )
        return struct.pack("!HH", len(sct) + 2, len(sct)) + sct
