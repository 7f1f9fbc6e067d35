"""End to end: the real ``headwater serve`` (granian, two worker processes) serving a mirrored tree
to real pip and uv in fresh venvs, isolated from this machine's configuration."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from packaging.version import Version

from headwater.simple.json import parse_project_page_json
from headwater.testing.corpus import Corpus
from tests.clients import installed_version, pip_install, uv_install
from tests.server.live import Live, serve


@pytest.fixture(scope="module")
def live(tree: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    work = tmp_path_factory.mktemp("serve-e2e")
    with serve(
        ["--tree", f"pypi={tree}", "--workers", "2", "--data-dir", str(work / "data")], work
    ) as server:
        yield server


def _newest(corpus: Corpus) -> tuple[str, str, str]:
    name = corpus.project_list().projects[0].normalized
    project = corpus.get(name)
    assert project is not None
    version = str(max(Version(v) for v in project.releases))
    return name, version, name.replace("-", "_")


@pytest.mark.slow
def test_pip_installs_through_headwater_serve(live: Live, corpus: Corpus, tmp_path: Path) -> None:
    name, version, module = _newest(corpus)
    python = pip_install(live.url + "/pypi/simple/", name, tmp_path)
    assert installed_version(python, module) == version


@pytest.mark.slow
def test_uv_installs_through_the_default_index(
    live: Live, corpus: Corpus, tmp_path: Path, uv: Path
) -> None:
    name, version, module = _newest(corpus)
    python = uv_install(uv, live.url + "/simple/", name, tmp_path)
    assert installed_version(python, module) == version


def test_serve_answers_with_negotiation_and_announces_itself(live: Live, corpus: Corpus) -> None:
    name, _, _ = _newest(corpus)
    request = urllib.request.Request(
        f"{live.url}/pypi/simple/{name}/", headers={"Accept": "application/vnd.pypi.simple.v1+json"}
    )
    with urllib.request.urlopen(request, timeout=5) as answer:
        assert answer.headers["Content-Type"] == "application/vnd.pypi.simple.v1+json"
        page = parse_project_page_json(answer.read())
    assert page.name == name
    assert "pip install --index-url" in live.output()


@pytest.mark.slow
def test_headwater_mirrors_a_headwater(live: Live, tree: Path, tmp_path: Path) -> None:
    """The serial headers and pages are enough for `headwater mirror` to follow a headwater."""
    import subprocess

    from headwater.simple.json import parse_project_list_json
    from tests.server.live import HEADWATER

    target = tmp_path / "copy"
    done = subprocess.run(
        [
            HEADWATER,
            "mirror",
            "--upstream",
            f"{live.url}/pypi/simple/",
            "--target",
            str(target),
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    original = parse_project_list_json((tree / "web/simple/index.v1_json").read_bytes())
    copied = parse_project_list_json((target / "web/simple/index.v1_json").read_bytes())
    assert [p.name for p in copied.projects] == [p.name for p in original.projects]
    assert copied.last_serial == original.last_serial
    files = sorted(p.name for p in (target / "web/packages").rglob("*") if p.is_file())
    assert files == sorted(p.name for p in (tree / "web/packages").rglob("*") if p.is_file())
