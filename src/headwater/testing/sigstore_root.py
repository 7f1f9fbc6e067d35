"""A Sigstore of our own, for tests and benchmarks: a CA, a transparency log, a CT log, and the
``trusted_root.json`` that names them, so PEP 740 attestations can be made offline for any file.

Nothing can be signed against Sigstore's public trust root without its services (Fulcio issues
the signing certificate after an OIDC login, Rekor logs the signature). This module plays both
services with keys made on the spot, and writes a ``trusted_root.json`` (media type
``application/vnd.dev.sigstore.trustedroot+json;version=0.1``) that headwater's
:class:`~headwater.provenance.TrustRoot` reads like any other. Attestations made here are then
verified by the **production code path** (sigstore-python's ``Verifier.verify_dsse`` through
:mod:`headwater.provenance.verify`); no check is switched off. Against the shipped (public-good)
trust root they are refused. For tests and benchmarks only: the keys are not secret.

What each part makes, and what the verifier checks of it:

===================  ==========================================================================
part                 what it makes (and the check that reads it)
===================  ==========================================================================
``TestCA``           a root and an intermediate certificate (the trust root's
                     ``certificateAuthorities``) and, per attestation, a short-lived leaf
                     certificate for a fresh P-256 key carrying Fulcio's identity extensions
                     (OIDs ``1.3.6.1.4.1.57264.1.*``: issuer, source repository, build config
                     URI ...), a URI subject alternative name, key usage *digital signature*,
                     extended key usage *code signing* (chain built at the log's time)
``TestCTLog``        the embedded precertificate SCT of each leaf (RFC 6962 ``digitally-signed``
                     over the issuer key hash and the TBS certificate without the SCT list;
                     the trust root's ``ctlogs``)
``TestLog``          a Rekor-like append-only log: each attestation's ``dsse`` 0.0.1 entry is a
                     leaf of an RFC 6962 Merkle tree; the entry carries its inclusion proof, a
                     checkpoint (signed note) for the tree it was added to, the integrated time
                     and the signed entry timestamp (the trust root's ``tlogs``)
``TestSigstore``     the three together: :meth:`TestSigstore.attest` signs an in-toto statement
                     about one file (a DSSE envelope) and returns the PEP 740 attestation object;
                     :meth:`TestSigstore.provenance` wraps attestations in a provenance document
===================  ==========================================================================

:meth:`TestSigstore.save` / :meth:`TestSigstore.load` keep the keys and CA certificates (PEM) beside
the ``trusted_root.json``, so a test upstream in another process (``headwater test-upstream
--provenance DIR``) signs with the same root the mirror under test verifies against.
"""

from __future__ import annotations

import base64
import hashlib
import json
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import rfc8785
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = [
    "PUBLISH_PREDICATE",
    "Signer",
    "TestCA",
    "TestCTLog",
    "TestLog",
    "TestSigstore",
]

#: PyPI's publish attestation (the predicate type ``pypi-attestations`` writes).
PUBLISH_PREDICATE = "https://docs.pypi.org/attestations/publish/v1"
_STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
_DSSE_TYPE = "application/vnd.in-toto+json"
_TRUSTED_ROOT_TYPE = "application/vnd.dev.sigstore.trustedroot+json;version=0.1"
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


def _b64(data: bytes) -> str:
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


def _spki(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _key_id(key: ec.EllipticCurvePublicKey) -> bytes:
    """RFC 6962's key id: the sha256 of the DER SubjectPublicKeyInfo (logs and CT logs)."""
    return hashlib.sha256(_spki(key)).digest()


def _sign(key: ec.EllipticCurvePrivateKey, data: bytes) -> bytes:
    return key.sign(data, ec.ECDSA(hashes.SHA256()))


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _load_key(path: Path) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{path} is not an EC private key")
    return key


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
        root_name = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, name),
                x509.NameAttribute(NameOID.COMMON_NAME, f"{name} root"),
            ]
        )
        inter_name = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, name),
                x509.NameAttribute(NameOID.COMMON_NAME, f"{name} intermediate"),
            ]
        )
        root_public = self.root_key.public_key()
        inter_public = self.intermediate_key.public_key()
        usage = x509.KeyUsage(
            digital_signature=False,
            content_commitment=False,
            key_encipherment=False,
            data_encipherment=False,
            key_agreement=False,
            key_cert_sign=True,
            crl_sign=True,
            encipher_only=False,
            decipher_only=False,
        )
        self.root = (
            x509.CertificateBuilder()
            .subject_name(root_name)
            .issuer_name(root_name)
            .public_key(root_public)
            .serial_number(int.from_bytes(_key_id(root_public)[:16], "big") >> 1)
            .not_valid_before(self.not_before)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
            .add_extension(usage, critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(root_public), critical=False)
            .sign(self.root_key, hashes.SHA384())
        )
        self.intermediate = (
            x509.CertificateBuilder()
            .subject_name(inter_name)
            .issuer_name(root_name)
            .public_key(inter_public)
            .serial_number(int.from_bytes(_key_id(inter_public)[:16], "big") >> 1)
            .not_valid_before(self.not_before)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(usage, critical=True)
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
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
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
                    {"rawBytes": _b64(c.public_bytes(serialization.Encoding.DER))}
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
        self.log_id = _key_id(self.key.public_key())

    def sct(self, tbs: bytes, issuer: ec.EllipticCurvePublicKey, when: datetime) -> bytes:
        """A ``SignedCertificateTimestampList`` (TLS encoding) holding one precertificate SCT."""
        millis = int(when.timestamp() * 1000)
        extensions = b""
        signed_entry = _key_id(issuer) + len(tbs).to_bytes(3, "big") + tbs
        # digitally-signed struct: version v1 (0), certificate_timestamp (0), timestamp,
        # precert_entry (1), the entry, the extensions.
        to_sign = (
            struct.pack("!BBQH", 0, 0, millis, 1)
            + signed_entry
            + struct.pack("!H", len(extensions))
            + extensions
        )
        signature = _sign(self.key, to_sign)
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


def _leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def _node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


class TestLog:
    """A Rekor-like transparency log (``dsse`` 0.0.1 entries, RFC 6962 Merkle tree).

    Append-only, in memory: it keeps the roots of the perfect subtrees of the tree so far (the
    tree's right border), so adding an entry and proving it (against the tree it was added to:
    the entry is the newest leaf) costs O(log n). ``prefill`` leaves stand for other people's
    entries, so proofs are as long as in a busy log.
    """

    __test__ = False

    def __init__(
        self,
        key: ec.EllipticCurvePrivateKey | None = None,
        *,
        prefill: int = 4_000,
        name: str = "headwater-test-log",
    ) -> None:
        self.key = key or ec.generate_private_key(ec.SECP256R1())
        self.log_id = _key_id(self.key.public_key())
        self.name = name
        self.origin = f"{name} - {int.from_bytes(self.log_id[:8], 'big')}"
        self.size = 0
        # (height, hash) of the perfect subtrees, largest (leftmost) first.
        self._border: list[tuple[int, bytes]] = []
        self._lock = threading.Lock()
        for n in range(prefill):
            self._append(_leaf_hash(b"other entry %d" % n))

    def _append(self, leaf: bytes) -> list[bytes]:
        """Add a leaf; return its inclusion proof in the new tree (the border hashes below it,
        nearest first), the tree's root being :meth:`_root`."""
        proof = [h for _, h in reversed(self._border)]
        height, node = 0, leaf
        while self._border and self._border[-1][0] == height:
            _, left = self._border.pop()
            node = _node_hash(left, node)
            height += 1
        self._border.append((height, node))
        self.size += 1
        return proof

    def _root(self) -> bytes:
        node = self._border[-1][1]
        for _, left in reversed(self._border[:-1]):
            node = _node_hash(left, node)
        return node

    def checkpoint(self, size: int, root: bytes) -> str:
        """A signed note for the tree of ``size`` leaves with ``root`` (what Rekor returns)."""
        note = f"{self.origin}\n{size}\n{_b64(root)}\n"
        signature = _sign(self.key, note.encode())
        return f"{note}\n\u2014 {self.name} {_b64(self.log_id[:4] + signature)}\n"

    def add(self, body: bytes, when: datetime) -> dict[str, Any]:
        """Log ``body`` (a canonical entry) at ``when``: the bundle's ``tlogEntries`` item
        (protobuf JSON: inclusion proof with checkpoint, integrated time, signed entry
        timestamp)."""
        with self._lock:
            proof = self._append(_leaf_hash(body))
            index, size, root = self.size - 1, self.size, self._root()
        integrated = int(when.timestamp())
        promise = rfc8785.dumps(
            {
                "body": _b64(body),
                "integratedTime": integrated,
                "logID": self.log_id.hex(),
                "logIndex": index,
            }
        )
        return {
            "logIndex": str(index),
            "logId": {"keyId": _b64(self.log_id)},
            "kindVersion": {"kind": "dsse", "version": "0.0.1"},
            "integratedTime": str(integrated),
            "inclusionPromise": {"signedEntryTimestamp": _b64(_sign(self.key, promise))},
            "inclusionProof": {
                "logIndex": str(index),
                "rootHash": _b64(root),
                "treeSize": str(size),
                "hashes": [_b64(h) for h in proof],
                "checkpoint": {"envelope": self.checkpoint(size, root)},
            },
            "canonicalizedBody": _b64(body),
        }


def _public_key_entry(key: ec.EllipticCurvePrivateKey, start: datetime, url: str) -> dict[str, Any]:
    public = key.public_key()
    return {
        "baseUrl": url,
        "hashAlgorithm": "SHA2_256",
        "publicKey": {
            "rawBytes": _b64(_spki(public)),
            "keyDetails": "PKIX_ECDSA_P256_SHA_256",
            "validFor": {"start": start.strftime("%Y-%m-%dT%H:%M:%SZ")},
        },
        "logId": {"keyId": _b64(_key_id(public))},
    }


class TestSigstore:
    """A CA, a transparency log and a CT log, and the attestations they make (module docstring).

    Parts can be mixed to make attestations the trust root must refuse: ``TestSigstore(ca=TestCA(),
    log=root.log, ct=root.ct)`` signs with a CA outside ``root``'s trust root.
    """

    __test__ = False

    def __init__(
        self,
        *,
        ca: TestCA | None = None,
        log: TestLog | None = None,
        ct: TestCTLog | None = None,
    ) -> None:
        self.ca = ca or TestCA()
        self.log = log or TestLog()
        self.ct = ct or TestCTLog()

    # -- the trust root ------------------------------------------------------------------------

    def trusted_root(self) -> dict[str, Any]:
        """The ``trusted_root.json`` document naming this CA, log and CT log."""
        start = self.ca.not_before
        return {
            "mediaType": _TRUSTED_ROOT_TYPE,
            "tlogs": [_public_key_entry(self.log.key, start, "https://rekor.invalid")],
            "certificateAuthorities": [self.ca.trusted_root_entry()],
            "ctlogs": [_public_key_entry(self.ct.key, start, "https://ctfe.invalid")],
            "timestampAuthorities": [],
        }

    def write_trusted_root(self, path: Path | str) -> Path:
        """Write :meth:`trusted_root` to ``path``; returns it."""
        target = Path(path)
        target.write_text(json.dumps(self.trusted_root(), indent=2) + "\n")
        return target

    _KEY_FILES = ("ca-root", "ca-intermediate", "log", "ct")

    def save(self, directory: Path | str) -> Path:
        """Keep the keys (PEM) and ``trusted_root.json`` in ``directory``; returns the trusted
        root's path. :meth:`load` makes the same root from them."""
        where = Path(directory)
        where.mkdir(parents=True, exist_ok=True)
        keys = (self.ca.root_key, self.ca.intermediate_key, self.log.key, self.ct.key)
        for name, key in zip(self._KEY_FILES, keys, strict=True):
            (where / f"{name}.pem").write_bytes(_pem_key(key))
        (where / "ca.crt").write_bytes(
            b"".join(
                c.public_bytes(serialization.Encoding.PEM)
                for c in (self.ca.root, self.ca.intermediate)
            )
        )
        return self.write_trusted_root(where / "trusted_root.json")

    @classmethod
    def load(cls, directory: Path | str, *, prefill: int = 4_000) -> TestSigstore:
        """The root :meth:`save` wrote into ``directory`` (its log starts afresh).

        Raises:
            OSError: a file is missing; ValueError: a key or certificate file is not one.
        """
        where = Path(directory)
        root, inter, log, ct = (_load_key(where / f"{n}.pem") for n in cls._KEY_FILES)
        certs = x509.load_pem_x509_certificates((where / "ca.crt").read_bytes())
        if len(certs) != 2:
            raise ValueError(f"{where / 'ca.crt'} must hold the root and intermediate certificates")
        ca = TestCA(root, inter, name=cls._name_of(certs[0]), certificates=(certs[0], certs[1]))
        return cls(ca=ca, log=TestLog(log, prefill=prefill), ct=TestCTLog(ct))

    @staticmethod
    def _name_of(root: x509.Certificate) -> str:
        names = root.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
        return str(names[0].value) if names else "headwater-test"

    # -- attestations --------------------------------------------------------------------------

    def attest(
        self,
        filename: str,
        sha256: str,
        signer: Signer | None = None,
        *,
        when: datetime | None = None,
        predicate_type: str = PUBLISH_PREDICATE,
    ) -> dict[str, Any]:
        """A PEP 740 attestation object: ``signer``'s CI job signed an in-toto statement saying
        ``filename`` has ``sha256``, and the log recorded it at ``when`` (default: now)."""
        signer = signer or Signer()
        when = (when or datetime.now(UTC)).replace(microsecond=0)
        statement = json.dumps(
            {
                "_type": _STATEMENT_TYPE,
                "subject": [{"name": filename, "digest": {"sha256": sha256}}],
                "predicateType": predicate_type,
                "predicate": None,
            },
            separators=(",", ":"),
        ).encode()
        key = ec.generate_private_key(ec.SECP256R1())
        cert = self.ca.issue(key.public_key(), signer, when, self.ct)
        pae = b"DSSEv1 %d %s %d %s" % (
            len(_DSSE_TYPE),
            _DSSE_TYPE.encode(),
            len(statement),
            statement,
        )
        signature = _sign(key, pae)
        envelope: dict[str, Any] = {
            "payload": _b64(statement),
            "payloadType": _DSSE_TYPE,
            "signatures": [{"sig": _b64(signature)}],
        }
        body = rfc8785.dumps(
            {
                "apiVersion": "0.0.1",
                "kind": "dsse",
                "spec": {
                    "envelopeHash": {
                        "algorithm": "sha256",
                        "value": hashlib.sha256(rfc8785.dumps(envelope)).hexdigest(),
                    },
                    "payloadHash": {
                        "algorithm": "sha256",
                        "value": hashlib.sha256(statement).hexdigest(),
                    },
                    "signatures": [
                        {
                            "signature": _b64(signature),
                            "verifier": _b64(cert.public_bytes(serialization.Encoding.PEM)),
                        }
                    ],
                },
            }
        )
        entry = self.log.add(body, when)
        return {
            "version": 1,
            "verification_material": {
                "certificate": _b64(cert.public_bytes(serialization.Encoding.DER)),
                "transparency_entries": [entry],
            },
            "envelope": {"statement": _b64(statement), "signature": _b64(signature)},
        }

    def provenance(
        self, filename: str, sha256: str, signer: Signer | None = None, **kwargs: Any
    ) -> bytes:
        """A PEP 740 provenance document (what an index serves for a file) with one bundle of
        one attestation by ``signer``."""
        signer = signer or Signer()
        document = {
            "version": 1,
            "attestation_bundles": [
                {
                    "publisher": signer.publisher(),
                    "attestations": [self.attest(filename, sha256, signer, **kwargs)],
                }
            ],
        }
        return json.dumps(document, separators=(",", ":")).encode()
