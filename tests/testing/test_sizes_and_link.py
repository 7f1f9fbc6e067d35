"""Benchmark realism in the test upstream: generated files padded to a given size stay valid
archives, and a bandwidth-limited upstream takes as long as its link needs (and no longer)."""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import subprocess
import sys
import tarfile
import time
import zipfile
from pathlib import Path

import pytest

from headwater.testing.corpus import Corpus
from headwater.testing.sizes import size_sampler
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


# -- the sampler and `headwater test-upstream --file-sizes/--bandwidth` --------------------------

SAMPLES = Path(__file__).resolve().parents[2] / "bench" / "pypi_file_sizes.json"


def test_the_sampler_draws_real_sizes_scaled_to_the_bound() -> None:
    size_of, scale, expected = size_sampler(SAMPLES, 4000, 3e9)
    assert expected > 3e9 and 0 < scale < 1  # PyPI's files are larger than the bound allows
    drawn = [size_of(f"p{i}-1.0-py3-none-any.whl") for i in range(4000)]
    assert drawn == [size_of(f"p{i}-1.0-py3-none-any.whl") for i in range(4000)]  # by name
    assert len(set(drawn)) > 100  # a distribution, not one size
    assert 0.5 * 3e9 < sum(drawn) < 1.5 * 3e9
    unscaled, one, _ = size_sampler(SAMPLES, 10, 1e15)
    assert one == 1.0 and unscaled("x.whl") >= size_of("x.whl")


@pytest.mark.parametrize(
    "content", ["not json", '{"projects": []}', '{"projects": {"a": []}}', '{"other": 1}']
)
def test_a_file_that_is_not_a_samples_file_is_named(tmp_path: Path, content: str) -> None:
    bad = tmp_path / "sizes.json"
    bad.write_text(content)
    with pytest.raises(ValueError, match=r"sizes\.json"):
        size_sampler(bad, 10, 1e9)


def test_the_command_serves_padded_files_through_its_link(tmp_path: Path) -> None:
    headwater = Path(sys.executable).with_name("headwater")
    command = [str(headwater), "test-upstream", "--projects", "2", "--releases", "1"]
    command += ["--files", "1", "--seed", "5", "--file-sizes", str(SAMPLES), "--max-gb", "0.001"]
    command += ["--bandwidth", "8"]  # 1 MB/s
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert url.startswith("http://"), proc.stderr.read() if proc.stderr else ""
        page = json.loads(fetch(f"{url}/simple/", headers={"Accept": JSON}).body)
        name = page["projects"][0]["name"]
        files = json.loads(fetch(f"{url}/simple/{name}/", headers={"Accept": JSON}).body)["files"]
        wanted = size_sampler(SAMPLES, 2, 1e6)[0](files[0]["filename"])
        assert abs(files[0]["size"] - wanted) < 2000  # padded to the sampled size
        started = time.monotonic()
        body = fetch(files[0]["url"]).body
        took = time.monotonic() - started
        assert len(body) == files[0]["size"]
        assert took >= len(body) / 1e6 * 0.9  # the link's pace, not loopback's
    finally:
        proc.terminate()
        proc.communicate(timeout=30)


@pytest.mark.parametrize(
    ("options", "said"),
    [
        (["--bandwidth", "-1"], "--bandwidth must be 0"),
        (["--max-gb", "0"], "--max-gb more than 0"),
        (["--file-sizes", "/nonexistent/sizes.json"], "/nonexistent/sizes.json"),
    ],
)
def test_bad_options_are_named(options: list[str], said: str) -> None:
    headwater = Path(sys.executable).with_name("headwater")
    done = subprocess.run(
        [str(headwater), "test-upstream", "--projects", "1", *options],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2 and said in done.stderr
    assert "Traceback" not in done.stderr
