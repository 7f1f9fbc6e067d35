"""Benchmark realism in the test upstream: generated files padded to a given size stay valid
archives, and a bandwidth-limited upstream takes as long as its link needs (and no longer)."""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import tarfile
import time
import zipfile

import pytest

from headwater.testing.corpus import Corpus
from headwater.testing.upstream import Upstream
from tests.testing.conftest import JSON, fetch


@pytest.mark.parametrize("target", [0, 500, 50_000, 1_000_000])
def test_padded_files_are_about_the_size_asked_and_valid(target: int) -> None:
    corpus = Corpus.generate(1, releases=1, files=2, seed=7, sizes=lambda _name: target)
    project = corpus.get(corpus.project_list().projects[0].name)
    assert project is not None
    for dist in project.files():
        body = dist.body
        # A padded file is within a few hundred bytes (archive entry headers) of the target.
        assert target <= len(body) + 2 <= target + 800 or (target < 2000 and len(body) < 2000)
        if dist.filename.endswith(".whl"):
            with zipfile.ZipFile(io.BytesIO(body)) as archive:
                assert archive.testzip() is None
                record = next(n for n in archive.namelist() if n.endswith("/RECORD"))
                listed = archive.read(record).decode()
                for name in archive.namelist():
                    assert name in listed  # every member (the padding too) is in RECORD
                    if name != record:
                        digest = hashlib.sha256(archive.read(name)).digest()
                        encoded = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
                        assert f"{name},sha256={encoded}," in listed
        else:
            with tarfile.open(fileobj=io.BytesIO(gzip.decompress(body))) as archive:
                assert any(m.name.endswith("PKG-INFO") for m in archive.getmembers())
    # Deterministic: the same corpus again gives the same bytes.
    again = Corpus.generate(1, releases=1, files=2, seed=7, sizes=lambda _name: target)
    other = again.get(project.name)
    assert other is not None
    assert [d.sha256 for d in other.files()] == [d.sha256 for d in project.files()]


def test_bandwidth_limits_the_shared_link() -> None:
    size = 400_000
    corpus = Corpus.generate(1, releases=1, files=2, seed=3, sizes=lambda _name: size)
    name = corpus.project_list().projects[0].name
    project = corpus.get(name)
    assert project is not None
    paths = [d.path for d in project.files()]
    for d in project.files():
        _ = d.body  # built before the clock starts
    rate = 4_000_000.0  # bytes per second: two files of 0.4 MB need >= 0.2 s
    with Upstream(corpus, bandwidth=rate).running() as up:
        assert fetch(f"{up.url}/simple/{name}/", headers={"Accept": JSON}).status == 200
        started = time.monotonic()
        for path in paths:
            assert fetch(up.url + path).status == 200
        limited = time.monotonic() - started
    with Upstream(corpus).running() as up:
        started = time.monotonic()
        for path in paths:
            assert fetch(up.url + path).status == 200
        loopback = time.monotonic() - started
    assert limited >= 2 * size / rate * 0.95
    assert limited < 2 * size / rate + 1.5  # no more than the link needs (plus slack)
    assert loopback < limited


def test_bandwidth_must_be_positive() -> None:
    with pytest.raises(ValueError, match="bandwidth must be positive"):
        Upstream(Corpus.generate(1), bandwidth=0)
