"""The test Sigstore (headwater.testing.sigstore_root): attestations it makes verify through the
production code path against its trusted_root.json, and every tampered or foreign one is refused;
Sigstore's public trust root (the shipped default) refuses them all."""

from __future__ import annotations

import base64
import copy
import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pypi_attestations import Attestation, GitHubPublisher, GitLabPublisher
from sigstore.errors import VerificationError

from headwater.policy.publishers import parse_publisher_spec
from headwater.provenance import (
    ProvenanceInvalid,
    TrustRoot,
    provenance_for_upload,
    verify_provenance_document,
)
from headwater.testing.sigstore_ca import Signer, TestCA, TestCTLog
from headwater.testing.sigstore_root import TestLog, TestSigstore

WHEEL = "demo_pkg-1.0-py3-none-any.whl"
BODY = b"the wheel's bytes"
SHA = hashlib.sha256(BODY).hexdigest()
GITHUB = Signer("github", "acme/demo", "release.yml")
GITLAB = Signer("gitlab", "acme/group/demo", ".gitlab-ci.yml", "refs/tags/v1.0")


@pytest.fixture(scope="module")
def sigstore() -> TestSigstore:
    return TestSigstore()


@pytest.fixture(scope="module")
def trust(sigstore: TestSigstore, tmp_path_factory: pytest.TempPathFactory) -> TrustRoot:
    return TrustRoot(sigstore.write_trusted_root(tmp_path_factory.mktemp("root") / "root.json"))


def field(*attestations: dict[str, Any]) -> str:
    return json.dumps(list(attestations))


@pytest.mark.parametrize(
    ("signer", "spec"),
    [
        (GITHUB, "github:acme/demo:release.yml"),
        (GITLAB, "gitlab:acme/group/demo:.gitlab-ci.yml"),
    ],
)
def test_an_attestation_of_the_test_root_verifies_and_proves_its_signer(
    sigstore: TestSigstore, trust: TrustRoot, signer: Signer, spec: str
) -> None:
    att = sigstore.attest(WHEEL, SHA, signer)
    verified = provenance_for_upload(field(att), WHEEL, SHA, trust, [parse_publisher_spec(spec)])
    assert [p.spec() for p in verified.publishers] == [spec]
    document = sigstore.provenance(WHEEL, SHA, signer)
    again = verify_provenance_document(document, WHEEL, SHA, trust)
    assert [p.spec() for p in again.publishers] == [spec]


def test_the_certificate_passes_pypi_attestations_own_publisher_policies(
    sigstore: TestSigstore, trust: TrustRoot
) -> None:
    # pypi-attestations' GitHub and GitLab policies read the Fulcio extensions the way PyPI
    # does (issuer, source repository, build config URI, ref, digest): the leaf has them all.
    verifier = trust.verifier
    for signer, policy in (
        (GITHUB, GitHubPublisher(repository="acme/demo", workflow="release.yml")),
        (GITLAB, GitLabPublisher(repository="acme/group/demo", workflow_filepath=".gitlab-ci.yml")),
    ):
        bundle = Attestation.model_validate(sigstore.attest(WHEEL, SHA, signer)).to_bundle()
        payload_type, payload = verifier.verify_dsse(bundle, policy._as_policy())
        assert payload_type == "application/vnd.in-toto+json"
        assert json.loads(payload)["subject"][0]["digest"]["sha256"] == SHA
    other = GitHubPublisher(repository="acme/other", workflow="release.yml")
    bundle = Attestation.model_validate(sigstore.attest(WHEEL, SHA, GITHUB)).to_bundle()
    with pytest.raises(VerificationError):
        verifier.verify_dsse(bundle, other._as_policy())


def test_the_shipped_public_trust_root_refuses_test_root_attestations(
    sigstore: TestSigstore,
) -> None:
    with pytest.raises(ProvenanceInvalid, match="does not verify against the Sigstore trust root"):
        verify_provenance_document(sigstore.provenance(WHEEL, SHA), WHEEL, SHA, TrustRoot())


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _statement_changed(att: dict[str, Any], _: TestSigstore) -> None:
    statement = json.loads(base64.b64decode(att["envelope"]["statement"]))
    statement["subject"][0]["digest"]["sha256"] = hashlib.sha256(b"another file").hexdigest()
    att["envelope"]["statement"] = _b64(json.dumps(statement).encode())


def _entry(att: dict[str, Any]) -> dict[str, Any]:
    entry: dict[str, Any] = att["verification_material"]["transparency_entries"][0]
    return entry


def _body_truncated(att: dict[str, Any], _: TestSigstore) -> None:
    body = base64.b64decode(_entry(att)["canonicalizedBody"])
    _entry(att)["canonicalizedBody"] = _b64(body[: len(body) // 2])


def _proof_truncated(att: dict[str, Any], _: TestSigstore) -> None:
    proof = _entry(att)["inclusionProof"]
    assert proof["hashes"], "the test log's proofs are never empty (prefill)"
    proof["hashes"] = proof["hashes"][:-1]


def _checkpoint_truncated(att: dict[str, Any], _: TestSigstore) -> None:
    checkpoint = _entry(att)["inclusionProof"]["checkpoint"]
    checkpoint["envelope"] = checkpoint["envelope"].split("\n\n", 1)[0] + "\n"


def _promise_dropped(att: dict[str, Any], _: TestSigstore) -> None:
    # Without the signed entry timestamp the log's time is not proved (and there is no TSA).
    del _entry(att)["inclusionPromise"]


def _integrated_time_moved(att: dict[str, Any], _: TestSigstore) -> None:
    entry = _entry(att)
    entry["integratedTime"] = str(int(entry["integratedTime"]) + 60)


def _log_index_moved(att: dict[str, Any], _: TestSigstore) -> None:
    proof = _entry(att)["inclusionProof"]
    proof["logIndex"] = str(int(proof["logIndex"]) - 1)


def _signature_of_another_statement(att: dict[str, Any], sigstore: TestSigstore) -> None:
    att["envelope"]["signature"] = sigstore.attest("other-1.0.tar.gz", SHA)["envelope"]["signature"]


TAMPERINGS: dict[str, Callable[[dict[str, Any], TestSigstore], None]] = {
    "statement changed": _statement_changed,
    "signature of another statement": _signature_of_another_statement,
    "log entry body truncated": _body_truncated,
    "inclusion proof truncated": _proof_truncated,
    "checkpoint signature cut off": _checkpoint_truncated,
    "signed entry timestamp dropped": _promise_dropped,
    "integrated time moved": _integrated_time_moved,
    "log index moved": _log_index_moved,
}


@pytest.mark.parametrize("how", sorted(TAMPERINGS))
def test_every_tampered_attestation_is_refused(
    sigstore: TestSigstore, trust: TrustRoot, how: str
) -> None:
    good = sigstore.attest(WHEEL, SHA, GITHUB)
    provenance_for_upload(field(good), WHEEL, SHA, trust)  # the untouched copy verifies
    att = copy.deepcopy(good)
    TAMPERINGS[how](att, sigstore)
    with pytest.raises(ProvenanceInvalid):
        provenance_for_upload(field(att), WHEEL, SHA, trust)


def test_a_changed_file_is_refused(sigstore: TestSigstore, trust: TrustRoot) -> None:
    att = sigstore.attest(WHEEL, SHA, GITHUB)
    changed = hashlib.sha256(BODY + b"!").hexdigest()
    with pytest.raises(ProvenanceInvalid, match="the file or the statement was changed"):
        provenance_for_upload(field(att), WHEEL, changed, trust)
    with pytest.raises(ProvenanceInvalid, match="subject name mismatch"):
        provenance_for_upload(field(att), "demo_pkg-1.1-py3-none-any.whl", SHA, trust)


def test_another_identity_is_refused(sigstore: TestSigstore, trust: TrustRoot) -> None:
    # On upload: signed by a publisher the project does not trust.
    att = sigstore.attest(WHEEL, SHA, Signer("github", "mallory/demo", "release.yml"))
    with pytest.raises(
        ProvenanceInvalid, match=r"signed by GitHub mallory/demo.*not a trusted publisher"
    ):
        provenance_for_upload(
            field(att), WHEEL, SHA, trust, [parse_publisher_spec("github:acme/demo")]
        )
    # In a document: a bundle naming acme/demo whose attestation mallory signed.
    document = json.loads(sigstore.provenance(WHEEL, SHA, GITHUB))
    document["attestation_bundles"][0]["attestations"] = [att]
    with pytest.raises(ProvenanceInvalid, match="names the publisher GitHub acme/demo"):
        verify_provenance_document(json.dumps(document).encode(), WHEEL, SHA, trust)


@pytest.mark.parametrize("foreign", ["ca", "log", "ct", "everything"])
def test_a_key_outside_the_trust_root_is_refused(
    sigstore: TestSigstore, trust: TrustRoot, foreign: str
) -> None:
    parts: dict[str, Any] = {"ca": sigstore.ca, "log": sigstore.log, "ct": sigstore.ct}
    if foreign in ("ca", "everything"):
        parts["ca"] = TestCA(name="outsider")
    if foreign in ("log", "everything"):
        parts["log"] = TestLog(prefill=10)
    if foreign in ("ct", "everything"):
        parts["ct"] = TestCTLog()
    outsider = TestSigstore(**parts)
    # Verifies against its own root, so the refusal below is the trust root's doing alone.
    own = TrustRoot(outsider.write_trusted_root(Path(str(trust.path) + f".{foreign}.json")))
    document = outsider.provenance(WHEEL, SHA, GITHUB)
    verify_provenance_document(document, WHEEL, SHA, own)
    with pytest.raises(ProvenanceInvalid, match="does not verify against the Sigstore trust root"):
        verify_provenance_document(document, WHEEL, SHA, trust)


@settings(max_examples=25, deadline=None)
@given(prefill=st.integers(min_value=0, max_value=300), more=st.integers(min_value=1, max_value=4))
def test_inclusion_proofs_hold_for_any_log_size(
    sigstore: TestSigstore, trust: TrustRoot, prefill: int, more: int
) -> None:
    # The Merkle proof and checkpoint of the newest leaf of trees of every shape (sizes that are
    # and are not powers of two), checked by sigstore's own inclusion-proof code.
    log = TestLog(sigstore.log.key, prefill=prefill)
    signing = TestSigstore(ca=sigstore.ca, log=log, ct=sigstore.ct)
    for _ in range(more):
        att = signing.attest(WHEEL, SHA, GITHUB)
        provenance_for_upload(field(att), WHEEL, SHA, trust)
    assert log.size == prefill + more


def test_saved_keys_reload_to_the_same_root(tmp_path: Path) -> None:
    first = TestSigstore()
    path = first.save(tmp_path / "keys")
    again = TestSigstore.load(tmp_path / "keys")
    assert again.trusted_root() == first.trusted_root()
    trust = TrustRoot(path)
    verify_provenance_document(again.provenance(WHEEL, SHA), WHEEL, SHA, trust)
    verify_provenance_document(first.provenance(WHEEL, SHA), WHEEL, SHA, trust)
    with pytest.raises(OSError):
        TestSigstore.load(tmp_path / "missing")


def test_signer_kinds_are_checked() -> None:
    with pytest.raises(ValueError, match="github"):
        Signer("bitbucket", "acme/demo", "ci.yml")


def test_a_claim_the_ca_did_not_encode_as_fulcio_does_is_refused_not_a_crash(
    tmp_path: Path,
) -> None:
    # A CA of the trust root that writes a Fulcio claim as raw bytes instead of a DER
    # UTF8String: the chain verifies, the claim cannot be read. Before: an uncaught ValueError
    # from the ASN.1 decoder (a 500 on upload, a traceback in a mirror).
    sigstore = TestSigstore()
    sigstore.ca.encode_claim = str.encode
    trust = TrustRoot(sigstore.write_trusted_root(tmp_path / "root.json"))
    with pytest.raises(ProvenanceInvalid, match=r"1\.3\.6\.1\.4\.1\.57264\.1\.8 is not a DER"):
        verify_provenance_document(sigstore.provenance(WHEEL, SHA), WHEEL, SHA, trust)
