"""The corpus and its archives: valid, deterministic, lazily built, and mutable with serials."""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import tarfile
import time
import zipfile
from email.parser import BytesHeaderParser
from pathlib import Path

import pytest
from packaging.utils import parse_sdist_filename, parse_wheel_filename

from headwater.simple.model import ProjectStatus
from headwater.simple.names import is_normalized, normalize_name
from headwater.testing.corpus import Corpus, CorpusError

BASE = "http://upstream.test"


def _first(corpus: Corpus) -> str:
    return corpus.project_list().projects[0].normalized


def _all_bytes(corpus: Corpus) -> dict[str, bytes]:
    out = {}
    for entry in corpus.project_list().projects:
        project = corpus.get(entry.normalized)
        assert project is not None
        for dist in project.files():
            out[dist.filename] = dist.body
    return out


def test_same_seed_gives_byte_identical_files() -> None:
    a = _all_bytes(Corpus.generate(12, 2, 3, seed=7))
    b = _all_bytes(Corpus.generate(12, 2, 3, seed=7))
    assert a == b
    assert len(a) == 12 * 2 * 3


def test_different_seed_gives_different_corpus() -> None:
    a = Corpus.generate(12, 2, 2, seed=1).project_list()
    b = Corpus.generate(12, 2, 2, seed=2).project_list()
    assert [e.name for e in a.projects] != [e.name for e in b.projects]


def test_names_are_realistic_and_valid() -> None:
    names = [e.name for e in Corpus.generate(3000, seed=0).project_list().projects]
    assert len({normalize_name(n) for n in names}) == len(names)  # unique after normalization
    assert any(n != n.lower() for n in names)  # mixed case
    assert any("." in n for n in names)  # dotted
    assert any("_" in n for n in names)


def test_wheel_is_valid_with_correct_record_hashes() -> None:
    corpus = Corpus.generate(3, 1, 3, seed=3)
    project = corpus.get(_first(corpus))
    assert project is not None
    wheel = next(d for d in project.files() if d.filename.endswith("-py3-none-any.whl"))
    name, version, _, tags = parse_wheel_filename(wheel.filename)
    assert name == project.name and str(version) == wheel.version
    assert {str(t) for t in tags} == {"py3-none-any"}
    with zipfile.ZipFile(io.BytesIO(wheel.body)) as archive:
        assert archive.testzip() is None
        names = archive.namelist()
        assert names == sorted(names)
        assert all(i.date_time == (1980, 1, 1, 0, 0, 0) for i in archive.infolist())
        dist_info = f"{project.name.replace('-', '_')}-{wheel.version}.dist-info"
        record = archive.read(f"{dist_info}/RECORD").decode()
        metadata = archive.read(f"{dist_info}/METADATA")
        rows = list(csv.reader(record.splitlines()))
        assert {r[0] for r in rows} == set(names)
        for path, digest, size in rows:
            if path.endswith("RECORD"):
                assert digest == size == ""
                continue
            data = archive.read(path)
            expected = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
            assert digest == "sha256=" + expected.decode()
            assert int(size) == len(data)
    # PEP 658: the .metadata file is exactly the wheel's METADATA.
    assert wheel.metadata == metadata
    headers = BytesHeaderParser().parsebytes(metadata)
    assert headers["Name"] == project.display_name and headers["Version"] == wheel.version


def test_sdist_is_valid_tar_gz_with_pkg_info() -> None:
    corpus = Corpus.generate(3, 1, 2, seed=3)
    project = corpus.get(_first(corpus))
    assert project is not None
    sdist = next(d for d in project.files() if d.filename.endswith(".tar.gz"))
    name, version = parse_sdist_filename(sdist.filename)
    assert name == project.name and str(version) == sdist.version
    with tarfile.open(fileobj=io.BytesIO(sdist.body), mode="r:gz") as archive:
        root = sdist.filename.removesuffix(".tar.gz")
        member = archive.extractfile(f"{root}/PKG-INFO")
        assert member is not None
        headers = BytesHeaderParser().parsebytes(member.read())
    assert headers["Name"] == project.display_name and headers["Version"] == sdist.version
    assert sdist.metadata is None  # PyPI serves .metadata for wheels only


def test_hashes_cover_sha256_md5_blake2b() -> None:
    corpus = Corpus.generate(2, 1, 1, seed=0)
    project = corpus.get(_first(corpus))
    assert project is not None
    dist = next(project.files())
    assert dist.hashes == {
        "sha256": hashlib.sha256(dist.body).hexdigest(),
        "md5": hashlib.md5(dist.body).hexdigest(),
        "blake2b_256": hashlib.blake2b(dist.body, digest_size=32).hexdigest(),
    }
    assert dist.path.endswith(f"/{dist.sha256[4:]}/{dist.filename}")


def test_metadata_only_scales_to_700k_projects() -> None:
    started = time.perf_counter()
    corpus = Corpus.generate(700_000, 2, 2, seed=1, metadata_only=True)
    listing = corpus.project_list()
    elapsed = time.perf_counter() - started
    assert len(listing.projects) == 700_000
    assert listing.last_serial == 700_000
    assert elapsed < 15, f"root list took {elapsed:.1f}s"
    last = listing.projects[-1]
    page = corpus.project_page(last.normalized, BASE)
    assert page is not None and len(page.files) == 4
    assert page.last_serial == last.last_serial == 700_000
    assert len(corpus._projects) == 1  # only the project asked for was built


def test_lookup_of_unknown_names() -> None:
    corpus = Corpus.generate(10, seed=0)
    assert corpus.get("no-such-thing") is None
    assert corpus.project_serial("zephyr-zephyr-zephyr") is None  # synthetic shape, out of range
    assert corpus.file("nothing-1.0-py3-none-any.whl") is None


def test_versions_and_filenames_are_normalized() -> None:
    corpus = Corpus.generate(40, 4, 3, seed=9)
    for entry in corpus.project_list().projects:
        page = corpus.project_page(entry.normalized, BASE)
        assert page is not None and is_normalized(page.name)
        for file in page.files:
            assert file.filename.startswith(page.name.replace("-", "_") + "-")


@pytest.mark.parametrize(
    "mutation",
    ["add_release", "add_file", "yank", "unyank", "delete_file", "delete_project", "set_status"],
)
def test_each_mutation_advances_serials(mutation: str) -> None:
    corpus = Corpus.generate(5, 2, 2, seed=4)
    name = _first(corpus)
    project = corpus.get(name)
    assert project is not None
    version = next(iter(project.releases))
    before_global = corpus.serial
    before_page = corpus.project_page(name, BASE)
    if mutation == "add_release":
        serial = corpus.add_release(name, "99.0")
    elif mutation == "add_file":
        serial = corpus.add_file(name, version)
    elif mutation == "yank":
        serial = corpus.yank(name, version, "broken build")
    elif mutation == "unyank":
        corpus.yank(name, version)
        before_global, before_page = corpus.serial, corpus.project_page(name, BASE)
        serial = corpus.unyank(name, version)
    elif mutation == "delete_file":
        serial = corpus.delete_file(name, project.releases[version][0].filename)
    elif mutation == "delete_project":
        serial = corpus.delete_project(name)
    else:
        serial = corpus.set_status(name, "archived", "moved")
    assert serial == corpus.serial == before_global + 1
    after = corpus.project_page(name, BASE)
    if mutation == "delete_project":
        assert after is None
        assert name not in {e.normalized for e in corpus.project_list().projects}
        return
    assert after is not None and after.last_serial == serial
    assert after != before_page
    assert corpus.project_list().projects[0].last_serial == serial
    # The previous state stays available (for the stale fault).
    assert corpus.previous_page(name, BASE) == before_page


def test_yank_reason_and_quarantine_hide_files() -> None:
    corpus = Corpus.generate(3, 2, 1, seed=2)
    name = _first(corpus)
    version = corpus.project_page(name, BASE).versions[0]  # type: ignore[union-attr]
    corpus.yank(name, version, "security issue")
    page = corpus.project_page(name, BASE)
    assert page is not None
    yanked = [f for f in page.files if f.yanked]
    assert yanked and all(f.yanked_reason == "security issue" for f in yanked)
    corpus.set_status(name, ProjectStatus.QUARANTINED)
    page = corpus.project_page(name, BASE)
    assert page is not None and page.files == () and page.status is ProjectStatus.QUARANTINED
    assert name not in {e.normalized for e in corpus.project_list().projects}


def test_add_release_creates_a_new_project() -> None:
    corpus = Corpus.generate(2, 1, 1, seed=0)
    serial = corpus.add_release("My.New_Project", "1.0", files=2)
    assert corpus.get("my-new-project") is not None
    entry = corpus.project_list().projects[-1]
    assert (entry.name, entry.last_serial) == ("My.New_Project", serial)
    with pytest.raises(CorpusError, match="already exists"):
        corpus.add_release("my-new-project", "1.0")


def test_mutations_on_unknown_things_raise() -> None:
    corpus = Corpus.generate(2, 1, 1, seed=0)
    with pytest.raises(CorpusError, match="no project"):
        corpus.yank("nope", "1.0")
    with pytest.raises(CorpusError, match="no release"):
        corpus.yank(_first(corpus), "42.0")
    with pytest.raises(CorpusError, match="unknown project status"):
        corpus.set_status(_first(corpus), "retired")


def test_from_directory_reads_names_versions_and_metadata(tmp_path: Path) -> None:
    source = Corpus.generate(2, 1, 2, seed=5)
    for filename, body in _all_bytes(source).items():
        (tmp_path / filename).write_bytes(body)
    corpus = Corpus.from_directory(tmp_path)
    assert {e.name for e in corpus.project_list().projects} == {
        e.name for e in source.project_list().projects
    }
    name = _first(source)
    ours, theirs = corpus.get(name), source.get(name)
    assert ours is not None and theirs is not None
    for a, b in zip(ours.files(), theirs.files(), strict=True):
        assert (a.filename, a.sha256, a.metadata) == (b.filename, b.sha256, b.metadata)


def test_from_directory_refuses_unknown_files(tmp_path: Path) -> None:
    (tmp_path / "README.txt").write_text("hello")
    with pytest.raises(CorpusError, match=r"README\.txt"):
        Corpus.from_directory(tmp_path)
    with pytest.raises(CorpusError, match="not a directory"):
        Corpus.from_directory(tmp_path / "missing")
