"""PEP 740 verification against real, Sigstore-signed attestations, and tampered copies."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pypi_attestations import Attestation

from headwater.policy.publishers import parse_publisher_spec
from headwater.provenance import (
    ProvenanceInvalid,
    TrustRoot,
    TrustRootError,
    VerifyCache,
    provenance_for_upload,
    verify_provenance_document,
)
from tests.provenance.assets import (
    GITHUB_SDIST,
    GITLAB_SDIST,
    STAGING_WHEEL,
    TAMPERINGS,
    attestation,
    sha256,
    tampered,
)

TRUST = TrustRoot()
GITHUB = "github:trailofbits/pypi-attestations:release.yml"
GITLAB = "gitlab:facutuesca/gitlab-oidc-project:.gitlab-ci.yml"


def field(*attestations: dict[str, object]) -> str:
    return json.dumps(list(attestations))


@pytest.mark.parametrize(("dist", "spec"), [(GITHUB_SDIST, GITHUB), (GITLAB_SDIST, GITLAB)])
def test_real_attestations_verify_offline_and_name_their_publisher(dist: Path, spec: str) -> None:
    verified = provenance_for_upload(
        field(attestation(dist)), dist.name, sha256(dist), TRUST, [parse_publisher_spec(spec)]
    )
    assert [p.spec() for p in verified.publishers] == [spec]
    # The document built for the file verifies as a served provenance document too.
    again = verify_provenance_document(verified.document, dist.name, sha256(dist), TRUST)
    assert again.publishers == verified.publishers
    bundle = json.loads(verified.document)["attestation_bundles"][0]
    assert bundle["publisher"]["kind"] in ("GitHub", "GitLab")


def test_pypis_own_provenance_document_verifies() -> None:
    raw = GITHUB_SDIST.with_name(GITHUB_SDIST.name + ".provenance").read_bytes()
    verified = verify_provenance_document(raw, GITHUB_SDIST.name, sha256(GITHUB_SDIST), TRUST)
    assert [p.spec() for p in verified.publishers] == [GITHUB]


@pytest.mark.parametrize("how", sorted(TAMPERINGS))
def test_every_tampered_copy_is_refused(how: str) -> None:
    att = tampered(GITHUB_SDIST, how)
    with pytest.raises(ProvenanceInvalid):
        provenance_for_upload(field(att), GITHUB_SDIST.name, sha256(GITHUB_SDIST), TRUST)
    # The same tampering inside a provenance document is refused too.
    document = json.dumps(
        {
            "version": 1,
            "attestation_bundles": [
                {
                    "publisher": {
                        "kind": "GitHub",
                        "repository": "trailofbits/pypi-attestations",
                        "workflow": "release.yml",
                    },
                    "attestations": [att],
                }
            ],
        }
    ).encode()
    with pytest.raises(ProvenanceInvalid):
        verify_provenance_document(document, GITHUB_SDIST.name, sha256(GITHUB_SDIST), TRUST)


def test_the_file_changed_is_refused(tmp_path: Path) -> None:
    changed = GITHUB_SDIST.read_bytes() + b"\0"
    digest = __import__("hashlib").sha256(changed).hexdigest()
    with pytest.raises(ProvenanceInvalid, match="sha256"):
        provenance_for_upload(field(attestation(GITHUB_SDIST)), GITHUB_SDIST.name, digest, TRUST)


def test_a_wrong_subject_name_is_refused() -> None:
    with pytest.raises(ProvenanceInvalid, match="subject name mismatch"):
        provenance_for_upload(
            field(attestation(GITHUB_SDIST)),
            "pypi_attestations-0.0.20.tar.gz",
            sha256(GITHUB_SDIST),
            TRUST,
        )


def test_another_identity_than_the_trusted_publisher_is_refused() -> None:
    with pytest.raises(ProvenanceInvalid) as info:
        provenance_for_upload(
            field(attestation(GITLAB_SDIST)),
            GITLAB_SDIST.name,
            sha256(GITLAB_SDIST),
            TRUST,
            [parse_publisher_spec("github:facutuesca/gitlab-oidc-project")],
        )
    message = str(info.value)
    assert "GitLab facutuesca/gitlab-oidc-project, workflow .gitlab-ci.yml" in message
    assert "GitHub facutuesca/gitlab-oidc-project" in message


def test_a_document_cannot_claim_another_publisher() -> None:
    document = json.dumps(
        {
            "version": 1,
            "attestation_bundles": [
                {
                    "publisher": {
                        "kind": "GitHub",
                        "repository": "pypa/pip",
                        "workflow": "release.yml",
                    },
                    "attestations": [attestation(GITHUB_SDIST)],
                }
            ],
        }
    ).encode()
    with pytest.raises(ProvenanceInvalid, match="names the publisher GitHub pypa/pip"):
        verify_provenance_document(document, GITHUB_SDIST.name, sha256(GITHUB_SDIST), TRUST)


def test_another_trust_root_does_not_verify() -> None:
    # Signed on Sigstore's staging instance: its certificate chain is not in the production root.
    with pytest.raises(ProvenanceInvalid, match="trust root"):
        provenance_for_upload(
            field(attestation(STAGING_WHEEL)), STAGING_WHEEL.name, sha256(STAGING_WHEEL), TRUST
        )


@pytest.mark.parametrize("raw", ["", "{", "{}", "[]", "[1]", '[{"version": 1}]', '{"version": 1}'])
def test_malformed_input_is_refused_with_a_reason(raw: str) -> None:
    with pytest.raises(ProvenanceInvalid):
        provenance_for_upload(raw, GITHUB_SDIST.name, sha256(GITHUB_SDIST), TRUST)
    with pytest.raises(ProvenanceInvalid):
        verify_provenance_document(raw.encode(), GITHUB_SDIST.name, sha256(GITHUB_SDIST), TRUST)


def test_an_unreadable_trust_root_says_so(tmp_path: Path) -> None:
    with pytest.raises(TrustRootError, match="cannot read"):
        _ = TrustRoot(tmp_path / "missing.json").verifier
    bad = tmp_path / "bad.json"
    bad.write_text('{"mediaType": "nope"}')
    with pytest.raises(TrustRootError, match="not a Sigstore trusted root"):
        _ = TrustRoot(bad).verifier


def test_the_cache_answers_a_second_verification_without_the_cryptography(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Counted, not timed: a timing comparison failed on a loaded machine.
    checked: list[str] = []
    real = Attestation.to_bundle

    def to_bundle(self: Attestation) -> Any:
        checked.append("signature")
        return real(self)

    monkeypatch.setattr(Attestation, "to_bundle", to_bundle)
    cache = VerifyCache()
    raw = field(attestation(GITHUB_SDIST))
    first = provenance_for_upload(raw, GITHUB_SDIST.name, sha256(GITHUB_SDIST), TRUST, cache=cache)
    assert checked == ["signature"]
    second = provenance_for_upload(raw, GITHUB_SDIST.name, sha256(GITHUB_SDIST), TRUST, cache=cache)
    assert first == second and cache.hits == 1
    assert checked == ["signature"]  # the second answer came from the cache
    # The cache is per file: the same attestation for another digest is verified (and refused).
    with pytest.raises(ProvenanceInvalid):
        provenance_for_upload(raw, GITHUB_SDIST.name, "0" * 64, TRUST, cache=cache)
