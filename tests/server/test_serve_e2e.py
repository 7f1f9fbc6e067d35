"""End to end: the real ``headwater serve`` (granian, two worker processes) serving a mirrored tree
to real pip and uv in fresh venvs, isolated from this machine's configuration."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from packaging.version import Version

from headwater.simple.json import parse_project_page_json
from headwater.testing.corpus import Corpus
from tests.clients import installed_version, pip_install, uv_install
from tests.server.live import Live, serve
from tests.tls import self_signed


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


def test_tls_serves_https_with_hsts(tree: Path, tmp_path: Path) -> None:
    import ssl

    cert, key = self_signed(tmp_path)
    args = [
        "--tree",
        f"pypi={tree}",
        "--data-dir",
        str(tmp_path / "data"),
        "--tls-certificate",
        str(cert),
        "--tls-key",
        str(key),
    ]
    # The readiness probe in serve() speaks plain HTTP; with TLS on, wait on the log instead.
    import subprocess
    import time

    from tests.nginx import free_port
    from tests.server.live import HEADWATER

    port = free_port()
    process = subprocess.Popen(
        [HEADWATER, "serve", "--listen", f"127.0.0.1:{port}", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        context = ssl.create_default_context(cafile=str(cert))
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(
                    f"https://127.0.0.1:{port}/pypi/simple/", context=context, timeout=2
                ) as answer:
                    assert answer.status == 200
                    assert answer.headers["Strict-Transport-Security"] == "max-age=31536000"
                    break
            except (urllib.error.URLError, ConnectionError) as exc:
                if time.monotonic() > deadline:
                    raise AssertionError(f"no HTTPS answer: {exc}") from exc
                time.sleep(0.2)
    finally:
        process.terminate()
        process.wait(timeout=15)


def test_legacy_host_redirect_over_the_wire(tree: Path, tmp_path: Path) -> None:
    args = [
        "--tree",
        f"pypi={tree}",
        "--data-dir",
        str(tmp_path / "data"),
        "--config",
        str(tmp_path / "hw.toml"),
    ]
    (tmp_path / "hw.toml").write_text(
        '[serve]\nbase_url = "https://pypi.example.org"\nlegacy_hosts = ["old.example.org"]\n'
    )
    with serve(args, tmp_path) as server:
        import http.client

        connection = http.client.HTTPConnection(server.url.removeprefix("http://"), timeout=5)
        connection.request("GET", "/pypi/simple/x/?a=1", headers={"Host": "old.example.org"})
        answer = connection.getresponse()
        answer.read()
        connection.close()
        assert answer.status == 301
        assert answer.headers["Location"] == "https://pypi.example.org/pypi/simple/x/?a=1"


def test_pypi_simple_reads_every_page_of_a_served_tree(live: Live, corpus: Corpus) -> None:
    from pypi_simple import PyPISimple

    with PyPISimple(live.url + "/pypi/simple/") as client:
        index = client.get_index_page()
        assert sorted(index.projects) == sorted(p.name for p in corpus.project_list().projects)
        for project in index.projects:
            page = client.get_project_page(project)
            assert page.packages, project
            assert all(package.digests["sha256"] for package in page.packages)
            assert page.last_serial is not None


@pytest.fixture(scope="session")
def bandersnatch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """bandersnatch 8.2 in its own Python 3.12 venv (bench/bandersnatch-setup.sh)."""
    import subprocess

    venv = tmp_path_factory.mktemp("bandersnatch") / "venv"
    script = Path(__file__).parents[2] / "bench" / "bandersnatch-setup.sh"
    done = subprocess.run(
        [str(script), str(venv)], capture_output=True, text=True, timeout=600, check=False
    )
    if done.returncode != 0:
        pytest.fail(f"could not install bandersnatch (needs Python 3.12 and PyPI):\n{done.stderr}")
    return venv / "bin" / "bandersnatch"


@pytest.mark.slow
def test_bandersnatch_mirrors_a_headwater(
    live: Live, tree: Path, tmp_path: Path, bandersnatch: Path
) -> None:
    """bandersnatch 8 lists projects from the simple JSON root and reads /pypi/<p>/json. It
    insists that file URLs are at /packages/ on the host, so it mirrors the default index."""
    import subprocess

    target = tmp_path / "bandersnatch-tree"
    conf = tmp_path / "bandersnatch.conf"
    conf.write_text(
        "[mirror]\n"
        f"directory = {target}\n"
        f"master = {live.url}\n"
        "allow-non-https = true\n"
        "workers = 2\n"
        "json = false\n"
        "release-files = true\n"
        "simple-format = ALL\n"
        "hash-index = false\n"
        "stop-on-error = true\n"
        "storage-backend = filesystem\n"
        "timeout = 30\n"
        "global-timeout = 600\n"
    )
    done = subprocess.run(
        [str(bandersnatch), "-c", str(conf), "mirror"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    ours = sorted(
        p.name
        for p in (tree / "web/packages").rglob("*")
        if p.is_file() and not p.name.endswith(".metadata")
    )
    theirs = sorted(
        p.name
        for p in (target / "web/packages").rglob("*")
        if p.is_file() and not p.name.endswith(".metadata")
    )
    assert theirs == ours
    assert int((target / "generation").read_text()) > 0
