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

``TestCA``, ``TestCTLog`` and ``Signer`` are :mod:`headwater.testing.sigstore_ca`.

:meth:`TestSigstore.save` / :meth:`TestSigstore.load` keep the keys and CA certificates (PEM) beside
the ``trusted_root.json``, so a test upstream in another process (``headwater test-upstream
--provenance DIR``) signs with the same root the mirror under test verifies against.
"""

from __future__ import annotations

import hashlib
import json
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import rfc8785
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from headwater.testing.certificates import pem_private_key
from headwater.testing.sigstore_ca import Signer, TestCA, TestCTLog, b64, key_id, sign, spki

__all__ = ["PUBLISH_PREDICATE", "TestLog", "TestSigstore"]

#: PyPI's publish attestation (the predicate type ``pypi-attestations`` writes).
PUBLISH_PREDICATE = "https://docs.pypi.org/attestations/publish/v1"
_STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
_DSSE_TYPE = "application/vnd.in-toto+json"
_TRUSTED_ROOT_TYPE = "application/vnd.dev.sigstore.trustedroot+json;version=0.1"


def _load_key(path: Path) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{path} is not an EC private key")
    return key


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
        self.log_id = key_id(self.key.public_key())
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
        note = f"{self.origin}\n{size}\n{b64(root)}\n"
        signature = sign(self.key, note.encode())
        return f"{note}\n\u2014 {self.name} {b64(self.log_id[:4] + signature)}\n"

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
                "body": b64(body),
                "integratedTime": integrated,
                "logID": self.log_id.hex(),
                "logIndex": index,
            }
        )
        return {
            "logIndex": str(index),
            "logId": {"keyId": b64(self.log_id)},
            "kindVersion": {"kind": "dsse", "version": "0.0.1"},
            "integratedTime": str(integrated),
            "inclusionPromise": {"signedEntryTimestamp": b64(sign(self.key, promise))},
            "inclusionProof": {
                "logIndex": str(index),
                "rootHash": b64(root),
                "treeSize": str(size),
                "hashes": [b64(h) for h in proof],
                "checkpoint": {"envelope": self.checkpoint(size, root)},
            },
            "canonicalizedBody": b64(body),
        }


def _public_key_entry(key: ec.EllipticCurvePrivateKey, start: datetime, url: str) -> dict[str, Any]:
    public = key.public_key()
    return {
        "baseUrl": url,
        "hashAlgorithm": "SHA2_256",
        "publicKey": {
            "rawBytes": b64(spki(public)),
            "keyDetails": "PKIX_ECDSA_P256_SHA_256",
            "validFor": {"start": start.strftime("%Y-%m-%dT%H:%M:%SZ")},
        },
        "logId": {"keyId": b64(key_id(public))},
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
            (where / f"{name}.pem").write_bytes(pem_private_key(key))
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
        signature = sign(key, pae)
        envelope: dict[str, Any] = {
            "payload": b64(statement),
            "payloadType": _DSSE_TYPE,
            "signatures": [{"sig": b64(signature)}],
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
                            "signature": b64(signature),
                            "verifier": b64(cert.public_bytes(serialization.Encoding.PEM)),
                        }
                    ],
                },
            }
        )
        entry = self.log.add(body, when)
        return {
            "version": 1,
            "verification_material": {
                "certificate": b64(cert.public_bytes(serialization.Encoding.DER)),
                "transparency_entries": [entry],
            },
            "envelope": {"statement": b64(statement), "signature": b64(signature)},
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
