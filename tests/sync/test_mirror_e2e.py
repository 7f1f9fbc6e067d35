"""End to end, as an operator runs it: ``headwater mirror`` syncs the test upstream into a tree,
real nginx serves the tree with ``headwater nginx-config``'s output, and real pip and uv install from
it in fresh venvs, with the test upstream stopped (the tree stands alone)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from headwater.testing.corpus import Corpus
from headwater.testing.upstream import Upstream
from tests.clients import installed_version, pip_install, uv_install
from tests.nginx import Nginx, start_nginx

HEADWATER = str(Path(sys.executable).with_name("headwater"))


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> tuple[Nginx, Corpus]:
    work = tmp_path_factory.mktemp("mirror-e2e")
    corpus = Corpus.generate(3, releases=3, files=2, seed=77)
    with Upstream(corpus).running() as up:
        done = subprocess.run(
            [
                HEADWATER,
                "mirror",
                "--upstream",
                up.simple_url,
                "--target",
                str(work / "tree"),
                "--quiet",
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr

    def config(port: int) -> str:  # exactly what an operator would pipe into nginx
        return subprocess.run(
            [
                HEADWATER,
                "nginx-config",
                "--root",
                str(work / "tree"),
                "--listen",
                f"127.0.0.1:{port}",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout

    server = start_nginx(work / "nginx", config)
    yield server, corpus
    server.stop()


def _newest(corpus: Corpus) -> tuple[str, str, str]:
    name = corpus.project_list().projects[0].normalized
    project = corpus.get(name)
    assert project is not None
    from packaging.version import Version

    version = str(max((Version(v) for v in project.releases), default=None))
    return name, version, name.replace("-", "_")


@pytest.mark.slow
def test_pip_installs_from_the_mirrored_tree(served: tuple[Nginx, Corpus], tmp_path: Path) -> None:
    server, corpus = served
    name, version, module = _newest(corpus)
    python = pip_install(server.url + "/simple/", name, tmp_path)
    assert installed_version(python, module) == version
    lines = [line for line in server.access_lines() if "pip/" in line]
    assert any(
        line.startswith(f'GET /simple/{name}/ 200 "application/vnd.pypi.simple.v1+json"')
        for line in lines
    )


@pytest.mark.slow
def test_uv_installs_from_the_mirrored_tree(
    served: tuple[Nginx, Corpus], tmp_path: Path, uv: Path
) -> None:
    server, corpus = served
    name, version, module = _newest(corpus)
    python = uv_install(uv, server.url + "/simple/", name, tmp_path)
    assert installed_version(python, module) == version
