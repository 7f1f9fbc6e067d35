"""Verifying PEP 740 attestations and provenance documents for one distribution file.

What "verified" means here, for each attestation (index-hosted-attestations spec, "Attestation
verification"; the checks sigstore-python's ``Verifier.verify_dsse`` does are marked *):

1. it is a version-1 attestation object (``pypi-attestations``' model);
2. * the signing certificate chains to a Fulcio root of the trust root, and was valid when the
   transparency log integrated the entry;
3. * the transparency log entry is signed by a log key of the trust root and its inclusion proof
   (checkpoint and Merkle path) holds; the entry's body is this envelope's signature and payload;
4. * the DSSE envelope's signature verifies with the certificate's key;
5. the in-toto statement has exactly one subject whose name is the file's name (compared as a
   parsed distribution filename, as PyPI does) and whose sha256 is the file's;
6. the predicate type is one PEP 740 names (PyPI publish v1 or SLSA provenance v1);
7. the publisher identity is read from the certificate (:func:`identity_from_certificate`).

Identity is checked by the caller's rule, not by a sigstore policy: an upload against the
project's trusted publishers, a provenance document against the publisher each of its bundles
names. Every failure is :class:`ProvenanceInvalid` with a reason a person can act on.

Verification is pure CPU (a few milliseconds per attestation); :class:`VerifyCache` keeps the
answers per attestation and file so a mirror re-reading the same bundle does it once.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import msgspec
from cryptography import x509
from cryptography.hazmat import asn1
from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    parse_sdist_filename,
    parse_wheel_filename,
)
from pydantic import ValidationError
from pypi_attestations import Attestation, AttestationError
from sigstore.errors import Error as SigstoreError
from sigstore.models import Bundle

from headwater.errors import InvalidInput
from headwater.policy.publishers import (
    OID_BUILD_CONFIG_URI,
    OID_ISSUER,
    OID_SOURCE_REPOSITORY_URI,
    InvalidPublisher,
    PublisherIdentity,
    describe_all,
    identity_from_certificate,
    identity_from_pep740,
    matches,
    matches_any,
)
from headwater.provenance.trust import TrustRoot

__all__ = [
    "INTEGRITY_MEDIA_TYPE",
    "MAX_ATTESTATIONS",
    "ProvenanceInvalid",
    "VerifiedProvenance",
    "VerifyCache",
    "provenance_for_upload",
    "publishers_of_document",
    "verify_provenance_document",
]

#: PyPI's integrity API media type (docs/user/api/integrity.md).
INTEGRITY_MEDIA_TYPE = "application/vnd.pypi.integrity.v1+json"
#: Most attestations one upload (or one provenance bundle) may carry; PyPI accepts a handful.
MAX_ATTESTATIONS = 16
_PREDICATES = frozenset(
    {"https://docs.pypi.org/attestations/publish/v1", "https://slsa.dev/provenance/v1"}
)
_DSSE_TYPE = "application/vnd.in-toto+json"


class ProvenanceInvalid(InvalidInput):
    """An attestation or provenance document does not verify; the message says which check."""


class VerifiedProvenance(msgspec.Struct, frozen=True):
    """A provenance document that verified, and the publisher identities it proved."""

    #: The PEP 740 provenance object, as served (``{"version": 1, "attestation_bundles": ...}``).
    document: bytes
    publishers: tuple[PublisherIdentity, ...]

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.document).hexdigest()


class _AcceptAnyIdentity:
    """A sigstore verification policy that accepts every identity: the chain, log and signature
    are still verified; the identity is checked afterwards by headwater's own rule."""

    def verify(self, cert: x509.Certificate) -> None:
        return None


class VerifyCache:
    """Publisher identities of attestations already verified, per (attestation, file, trust root).

    Bounded (least recently used out). Thread-safe: verification runs in worker threads.
    """

    def __init__(self, max_entries: int = 100_000) -> None:
        self._entries: OrderedDict[tuple[str, str, str, str], PublisherIdentity] = OrderedDict()
        self._max = max_entries
        self._lock = threading.Lock()
        self.hits = 0

    def get(self, key: tuple[str, str, str, str]) -> PublisherIdentity | None:
        with self._lock:
            found = self._entries.get(key)
            if found is not None:
                self._entries.move_to_end(key)
                self.hits += 1
            return found

    def put(self, key: tuple[str, str, str, str], identity: PublisherIdentity) -> None:
        with self._lock:
            self._entries[key] = identity
            if len(self._entries) > self._max:
                self._entries.popitem(last=False)


def _dist_name(filename: str) -> tuple[Any, ...] | None:
    try:
        if filename.endswith(".whl"):
            return tuple(parse_wheel_filename(filename))
        return tuple(parse_sdist_filename(filename))
    except (InvalidWheelFilename, InvalidSdistFilename):
        return None


def _subject_is(statement: dict[str, Any], filename: str, sha256: str) -> None:
    subjects = statement.get("subject")
    if not isinstance(subjects, list) or len(subjects) != 1 or not isinstance(subjects[0], dict):
        raise ProvenanceInvalid("the statement must have exactly one subject")
    subject = subjects[0]
    name = subject.get("name")
    digest = subject.get("digest")
    if not isinstance(name, str) or _dist_name(name) is None:
        raise ProvenanceInvalid(f"the statement's subject {str(name)[:200]!r} is not a filename")
    if name != filename and _dist_name(name) != _dist_name(filename):
        raise ProvenanceInvalid(
            f"the statement is about {name[:200]!r}, not {filename!r} (subject name mismatch)"
        )
    if not isinstance(digest, dict) or digest.get("sha256") != sha256:
        raise ProvenanceInvalid(
            f"the statement's sha256 is not the sha256 of {filename!r} (the file or the "
            "statement was changed)"
        )
    if statement.get("predicateType") not in _PREDICATES:
        raise ProvenanceInvalid(
            f"unknown attestation type {str(statement.get('predicateType'))[:200]!r}"
        )


#: The Fulcio extensions :func:`identity_from_certificate` reads.
_CLAIMS = tuple(
    x509.ObjectIdentifier(oid)
    for oid in (OID_ISSUER, OID_SOURCE_REPOSITORY_URI, OID_BUILD_CONFIG_URI)
)


def _claims(cert: x509.Certificate) -> dict[str, str]:
    """The identity claims of a verified signing certificate (dotted OID -> text), read from the
    certificate sigstore already parsed. Fulcio encodes these extensions as DER UTF8Strings; a
    certificate whose CA encoded one otherwise is refused, naming the extension.

    Raises:
        ProvenanceInvalid: a claim extension is not a DER UTF8String.
    """
    claims: dict[str, str] = {}
    for oid in _CLAIMS:
        try:
            value = cert.extensions.get_extension_for_oid(oid).value
        except x509.ExtensionNotFound:
            continue
        try:
            claims[oid.dotted_string] = asn1.decode_der(str, value.value)  # type: ignore[attr-defined]
        except ValueError:
            raise ProvenanceInvalid(
                f"the signing certificate's extension {oid.dotted_string} is not a DER "
                "UTF8String (Fulcio's encoding); the certificate authority of the trust root "
                "issued a malformed certificate"
            ) from None
    return claims


def _san(cert: x509.Certificate) -> str | None:
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None
    for kind in (x509.RFC822Name, x509.UniformResourceIdentifier):
        values = ext.get_values_for_type(kind)
        if values:
            return str(values[0])
    return None


def _verify_one(
    raw: dict[str, Any],
    filename: str,
    sha256: str,
    trust: TrustRoot,
    cache: VerifyCache | None,
) -> tuple[Attestation, PublisherIdentity]:
    try:
        attestation = Attestation.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0] if exc.errors() else {"msg": str(exc), "loc": ()}
        where = ".".join(str(p) for p in first.get("loc", ()))
        raise ProvenanceInvalid(
            f"not a PEP 740 attestation object ({where or 'top level'}: {first['msg']})"
        ) from None
    key = (
        hashlib.sha256(json.dumps(raw, sort_keys=True).encode()).hexdigest(),
        filename,
        sha256,
        str(trust.path),
    )
    cached = cache.get(key) if cache is not None else None
    if cached is not None:
        return attestation, cached
    verifier = trust.verifier
    try:
        bundle: Bundle = attestation.to_bundle()
        payload_type, payload = verifier.verify_dsse(bundle, _AcceptAnyIdentity())
    except (SigstoreError, AttestationError, ValueError, ValidationError) as exc:
        reason = " ".join(str(exc).split())[:300] or type(exc).__name__
        raise ProvenanceInvalid(
            f"the signature, certificate or transparency log entry does not verify against the "
            f"Sigstore trust root ({reason})"
        ) from None
    if payload_type != _DSSE_TYPE:
        raise ProvenanceInvalid(
            f"the envelope holds {payload_type[:100]!r}, not an in-toto statement"
        )
    try:
        statement = json.loads(payload)
    except ValueError:
        raise ProvenanceInvalid("the statement is not JSON") from None
    if not isinstance(statement, dict):
        raise ProvenanceInvalid("the statement is not a JSON object")
    _subject_is(statement, filename, sha256)
    cert = bundle.signing_certificate
    identity = identity_from_certificate(_claims(cert), _san(cert))
    if cache is not None:
        cache.put(key, identity)
    return attestation, identity


def provenance_for_upload(
    field: str,
    filename: str,
    sha256: str,
    trust: TrustRoot,
    expected: Sequence[PublisherIdentity] = (),
    *,
    cache: VerifyCache | None = None,
) -> VerifiedProvenance:
    """Verify the ``attestations`` form field of an upload and build the file's provenance.

    ``field`` is the JSON array of attestation objects the client sent (PEP 740). Each must
    verify for ``filename``/``sha256``; when ``expected`` names publishers (the project's trusted
    publishers), every attestation's identity must match one of them. The provenance document
    groups the attestations by the identity that signed them.

    Raises:
        ProvenanceInvalid: the message is the part after PyPI's "Invalid attestations supplied
            during upload: ".
    """
    try:
        raw = json.loads(field)
    except ValueError:
        raise ProvenanceInvalid("the attestations field is not JSON") from None
    if not isinstance(raw, list) or not raw or not all(isinstance(a, dict) for a in raw):
        raise ProvenanceInvalid(
            "the attestations field must be a JSON array of attestation objects"
        )
    if len(raw) > MAX_ATTESTATIONS:
        raise ProvenanceInvalid(f"more than {MAX_ATTESTATIONS} attestations for one file")
    groups: dict[PublisherIdentity, list[dict[str, Any]]] = {}
    for item in raw:
        attestation, identity = _verify_one(item, filename, sha256, trust, cache)
        if expected and not matches_any(identity, expected):
            raise ProvenanceInvalid(
                f"the attestation was signed by {identity.describe()}, which is not a trusted "
                f"publisher of this project ({describe_all(expected)})"
            )
        groups.setdefault(identity, []).append(attestation.model_dump(mode="json"))
    document = {
        "version": 1,
        "attestation_bundles": [
            {"publisher": identity.to_pep740(), "attestations": items}
            for identity, items in groups.items()
        ],
    }
    return VerifiedProvenance(json.dumps(document, separators=(",", ":")).encode(), tuple(groups))


def publishers_of_document(raw: bytes) -> tuple[PublisherIdentity, ...]:
    """The publishers a provenance document *names* (not verified: for display of a stored,
    already verified document)."""
    try:
        document = json.loads(raw)
        return tuple(
            identity_from_pep740(bundle["publisher"]) for bundle in document["attestation_bundles"]
        )
    except (ValueError, KeyError, TypeError, InvalidPublisher):
        return ()


def verify_provenance_document(
    raw: bytes,
    filename: str,
    sha256: str,
    trust: TrustRoot,
    *,
    cache: VerifyCache | None = None,
) -> VerifiedProvenance:
    """Verify a PEP 740 provenance document (what an index serves for a file).

    Every attestation of every bundle must verify for ``filename``/``sha256``, and the identity
    its certificate proves must be the publisher its bundle names (a document cannot claim one
    publisher with another's signature). The verified identities keep the bundle's environment,
    which certificates do not carry.

    Raises:
        ProvenanceInvalid: naming the bundle and the check that failed.
    """
    try:
        document = json.loads(raw)
    except ValueError:
        raise ProvenanceInvalid("the provenance document is not JSON") from None
    if not isinstance(document, dict) or document.get("version") != 1:
        raise ProvenanceInvalid("the provenance document is not a version 1 PEP 740 object")
    bundles = document.get("attestation_bundles")
    if not isinstance(bundles, list) or not bundles:
        raise ProvenanceInvalid("the provenance document has no attestation bundles")
    publishers: list[PublisherIdentity] = []
    for n, bundle in enumerate(bundles, 1):
        if not isinstance(bundle, dict) or not isinstance(bundle.get("attestations"), list):
            raise ProvenanceInvalid(f"attestation bundle {n} is not an object with attestations")
        try:
            named = identity_from_pep740(bundle.get("publisher"))  # type: ignore[arg-type]
        except InvalidPublisher as exc:
            raise ProvenanceInvalid(f"attestation bundle {n}: {exc}") from None
        items = bundle["attestations"]
        if (
            not items
            or len(items) > MAX_ATTESTATIONS
            or not all(isinstance(a, dict) for a in items)
        ):
            raise ProvenanceInvalid(
                f"attestation bundle {n} must hold 1-{MAX_ATTESTATIONS} attestation objects"
            )
        for item in items:
            try:
                _, proved = _verify_one(item, filename, sha256, trust, cache)
            except ProvenanceInvalid as exc:
                raise ProvenanceInvalid(f"attestation bundle {n}: {exc}") from None
            if not matches(proved, msgspec.structs.replace(named, environment=None)):
                raise ProvenanceInvalid(
                    f"attestation bundle {n} names the publisher {named.describe()} but is "
                    f"signed by {proved.describe()}"
                )
            publishers.append(msgspec.structs.replace(proved, environment=named.environment))
    unique = tuple(dict.fromkeys(publishers))
    return VerifiedProvenance(bytes(raw), unique)
