"""``headwater check`` reports who published what it would install (PEP 740), and flags a
publisher change: a real https index on loopback serves PyPI's real provenance document for a real
sdist; later releases arrive unattested, or with a document that does not verify.

The check runs as users run it (the ``headwater`` command, JSON and text), trusting the test
certificate through ``SSL_CERT_FILE`` as any OpenSSL client does.
"""

from __future__ import annotations

import json
import os
import shutil
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from headwater.testing.corpus import Corpus
from headwater.testing.upstream import Upstream
from tests.provenance.assets import GITHUB_SDIST, tampered
from tests.tls import self_signed

HEADWATER = str(Path(sys.executable).with_name("headwater"))
GITHUB = "GitHub trailofbits/pypi-attestations, workflow release.yml"


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return self_signed(tmp_path_factory.mktemp("tls"))


def _corpus(directory: Path, *, document: bytes | None = None) -> Corpus:
    """pypi-attestations 0.0.19 (the real sdist) with PyPI's provenance document for it, or
    ``document`` instead; plus ``plain`` 1.0, which nobody attests."""
    directory.mkdir()
    shutil.copyfile(GITHUB_SDIST, directory / GITHUB_SDIST.name)
    target = directory / (GITHUB_SDIST.name + ".provenance")
    if document is None:
        shutil.copyfile(GITHUB_SDIST.with_name(GITHUB_SDIST.name + ".provenance"), target)
    else:
        target.write_bytes(document)
    corpus = Corpus.from_directory(directory)
    corpus.add_release("plain", "1.0", files=1)
    return corpus


@pytest.fixture
def index(tmp_path: Path, cert: tuple[Path, Path]) -> Iterator[Upstream]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*cert)
    with Upstream(_corpus(tmp_path / "corpus"), ssl=context).running() as up:
        yield up


def check(
    up: Upstream, cert: tuple[Path, Path], cwd: Path, *requirements: str, fmt: str = "json"
) -> tuple[int, Any]:
    (cwd / "requirements.txt").write_text("\n".join(requirements) + "\n")
    env = {**os.environ, "SSL_CERT_FILE": str(cert[0]), "PIP_CONFIG_FILE": "/dev/null"}
    done = subprocess.run(
        [HEADWATER, "check", "requirements.txt", "--from", "none", "--index-url", up.simple_url,
         "--public", up.simple_url, "--format", fmt, "--timeout", "20"],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode in (0, 1), done.stdout + done.stderr
    if fmt != "json":
        return done.returncode, done.stdout
    report = json.loads(done.stdout)
    return done.returncode, {r["project"]: r for r in report["requirements"]}


def test_the_verified_publisher_of_what_would_be_installed_is_reported(
    index: Upstream, cert: tuple[Path, Path], tmp_path: Path
) -> None:
    status, found = check(index, cert, tmp_path, "pypi-attestations", "plain")
    assert status == 0, found
    attested = found["pypi-attestations"]
    assert attested["risk"] == "ok"
    assert attested["publishers"]["version"] == "0.0.19"
    assert attested["publishers"]["publishers"] == [GITHUB]
    assert attested["publishers"]["changed"] is False
    plain = found["plain"]
    assert plain["risk"] == "ok"
    assert plain["publishers"]["publishers"] == [] and plain["publishers"]["changed"] is False
    assert "nobody" in plain["publishers"]["message"]
    _, text = check(index, cert, tmp_path, "pypi-attestations", fmt="text")
    assert f"publisher: pypi-attestations 0.0.19 from 'public' was published by {GITHUB}" in text


def test_an_unattested_release_after_attested_ones_is_flagged(
    index: Upstream, cert: tuple[Path, Path], tmp_path: Path
) -> None:
    # A hijacked account uploading from a laptop: 0.0.20 arrives without provenance.
    index.corpus.add_release("pypi-attestations", "0.0.20", files=1)
    status, found = check(index, cert, tmp_path, "pypi-attestations")
    assert status == 1
    finding = found["pypi-attestations"]
    assert finding["risk"] == "publisher" and finding["risks"] == ["publisher"]
    assert finding["publishers"]["version"] == "0.0.20"
    assert finding["publishers"]["publishers"] == []
    assert finding["publishers"]["established"] == [GITHUB]
    assert finding["publishers"]["changed"] is True
    assert "0.0.20" in finding["message"] and GITHUB in finding["message"]
    assert "without provenance" in finding["message"]
    assert "pin the last release" in finding["advice"]
    # The release before it, asked for explicitly, is as before: attested, not flagged.
    status, found = check(index, cert, tmp_path, "pypi-attestations==0.0.19")
    assert status == 0 and found["pypi-attestations"]["risk"] == "ok"
    # The text report says it too.
    _, text = check(index, cert, tmp_path, "pypi-attestations", fmt="text")
    assert text.startswith("Indexes") and "\npublisher  pypi-attestations" in text, text


def test_a_provenance_document_that_does_not_verify_is_flagged(
    cert: tuple[Path, Path], tmp_path: Path
) -> None:
    document = json.loads(GITHUB_SDIST.with_name(GITHUB_SDIST.name + ".provenance").read_text())
    document["attestation_bundles"][0]["attestations"] = [
        tampered(GITHUB_SDIST, "signature changed")
    ]
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*cert)
    corpus = _corpus(tmp_path / "corpus", document=json.dumps(document).encode())
    with Upstream(corpus, ssl=context).running() as up:
        status, found = check(up, cert, tmp_path, "pypi-attestations")
    assert status == 1
    finding = found["pypi-attestations"]
    assert finding["risk"] == "publisher"
    assert finding["publishers"]["changed"] is True
    assert "does not verify" in finding["message"], finding["message"]


def test_no_provenance_leaves_publishers_out(
    index: Upstream, cert: tuple[Path, Path], tmp_path: Path
) -> None:
    index.corpus.add_release("pypi-attestations", "0.0.20", files=1)
    (tmp_path / "requirements.txt").write_text("pypi-attestations\n")
    env = {**os.environ, "SSL_CERT_FILE": str(cert[0]), "PIP_CONFIG_FILE": "/dev/null"}
    done = subprocess.run(
        [HEADWATER, "check", "requirements.txt", "--from", "none", "--index-url",
         index.simple_url, "--public", index.simple_url, "--format", "json", "--no-provenance"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    finding = json.loads(done.stdout)["requirements"][0]
    assert finding["risk"] == "ok" and finding["publishers"] is None


@pytest.mark.parametrize(
    ("risks", "changed", "want"),
    [
        # Nothing wrong before: a change becomes the verdict (and "ok" no longer applies).
        (("ok",), True, ("publisher",)),
        (("ok",), False, ("ok",)),
        # A hash pin still says what it says; the publisher risk comes first.
        (("protected",), True, ("publisher", "protected")),
        # A more severe risk keeps the verdict, message and advice; publisher is listed too.
        (("confusion",), True, ("confusion", "publisher")),
        (("shadowed", "unclaimed"), True, ("shadowed", "unclaimed", "publisher")),
        (("shadowed",), False, ("shadowed",)),
    ],
)
def test_a_publisher_change_joins_the_risks_in_their_order(
    risks: tuple[str, ...], changed: bool, want: tuple[str, ...]
) -> None:
    from headwater.check.findings import RISKS, Finding, Risk, with_publishers
    from headwater.check.publishers import Publishers

    before = Finding(
        project="x", names=("x",), required_by=("r:1",), risk=Risk(risks[0]),
        risks=tuple(Risk(r) for r in risks), message="before", advice="was",
    )  # fmt: skip
    publishers = Publishers(
        version="2.0", publishers=(), established=("GitHub a/b",), changed=changed, message="who"
    )
    after = with_publishers(before, publishers)
    assert after.publishers == publishers
    assert tuple(str(r) for r in after.risks) == want
    assert after.risk == Risk(want[0])
    assert (after.risk in RISKS) == (changed or before.risk in RISKS)
    if after.risk is Risk.PUBLISHER:
        assert after.message == "who" and "pin the last release" in after.advice
    else:
        assert (after.message, after.advice) == ("before", "was")
    assert with_publishers(before, None) == before
