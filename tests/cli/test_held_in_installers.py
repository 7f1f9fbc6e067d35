"""A release held by the publisher guard, as real pip and uv see it through ``headwater serve``.

A mirror of a TLS test upstream whose project ``pypi-attestations`` has a release attested by
GitHub ``trailofbits/pypi-attestations`` (PyPI's real provenance document) and then a release
without provenance. The guard holds the new release; the mirror lists it yanked with the
refusal at a URL that refuses (policy/held.py). Asking pip or uv for it prints the refusal (both
identities, the fix); after ``headwater provenance accept`` and the next sync it installs.
"""

from __future__ import annotations

import html
import json
import shutil
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from headwater.sync.nginx import NginxConfig, render_nginx_config
from headwater.testing.corpus import Corpus
from headwater.testing.upstream import Upstream
from tests.cli.test_mirror_provenance import headwater
from tests.clients import clean_env, make_venv
from tests.nginx import free_port, start_nginx
from tests.provenance.assets import GITHUB_SDIST
from tests.server.live import serve
from tests.tls import self_signed

PROJECT = "pypi-attestations"
HELD = "0.0.20"
WHEEL = f"pypi_attestations-{HELD}-py3-none-any.whl"
ESTABLISHED = "GitHub trailofbits/pypi-attestations, workflow release.yml"
FIX = f"headwater provenance accept m {PROJECT} {HELD}"


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return self_signed(tmp_path_factory.mktemp("tls"))


def _corpus(directory: Path) -> Corpus:
    directory.mkdir()
    shutil.copyfile(GITHUB_SDIST, directory / GITHUB_SDIST.name)
    shutil.copyfile(
        GITHUB_SDIST.with_name(GITHUB_SDIST.name + ".provenance"),
        directory / (GITHUB_SDIST.name + ".provenance"),
    )
    return Corpus.from_directory(directory)


def _joined(text: str) -> str:
    # uv wraps long lines to the terminal's width, and URLs carry the text with "+" for spaces.
    return " ".join(text.replace("+", " ").split())


def _pip(pip: list[str], index: str, requirement: str, home: Path) -> str:
    """``pip download --no-deps`` (nothing is built or installed); its whole output."""
    done = subprocess.run(
        [*pip, "download", "--isolated", "--no-deps", "--no-cache-dir", "--retries", "0",
         "-d", str(home / "got"), "--index-url", index, requirement],
        capture_output=True, text=True, env=clean_env(home), timeout=180, check=False,
    )  # fmt: skip
    return _joined(done.stdout + done.stderr) + f" [exit {done.returncode}]"


def _uv(uv: Path, index: str, requirement: str, home: Path) -> str:
    python = make_venv(home / "uv-venv", pip=False)
    done = subprocess.run(
        [str(uv), "pip", "install", "--no-config", "--no-cache", "--no-deps", "--python",
         str(python), "--index-url", index, requirement],
        capture_output=True, text=True, env=clean_env(home), timeout=180, check=False,
    )  # fmt: skip
    return _joined(done.stdout + done.stderr) + f" [exit {done.returncode}]"


def _assert_refusal(said: str) -> None:
    for words in (f"{PROJECT} {HELD}", "arrived without provenance", ESTABLISHED, FIX):
        assert words in said, f"{words!r} not in:\n{said}"


def test_pip_and_uv_print_the_refusal_of_a_held_release_until_it_is_accepted(
    tmp_path: Path, cert: tuple[Path, Path], uv: Path
) -> None:
    corpus = _corpus(tmp_path / "corpus")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*cert)
    pip_new = [sys.executable, "-m", "pip"]  # this venv's pip (26.x): downloads only
    pip_old = [str(make_venv(tmp_path / "pip-venv")), "-m", "pip"]  # the interpreter's bundled pip
    port = free_port()
    with Upstream(corpus, ssl=context).running() as up:
        (tmp_path / "headwater.toml").write_text(
            f'[serve]\ndata_dir = "data"\n\n'
            f'[mirror.m]\nupstream = "{up.simple_url}"\ntarget = "tree"\nworkers = 2\n'
            f'retries = 1\nca_bundle = "{cert[0]}"\npublisher_continuity = true\n\n'
            # Yanked upstream files are dropped; held ones are the guard's and stay listed.
            '[mirror.m.filters]\nyanked = "drop"\n\n[index.all]\nsources = ["m"]\n\n'
            # A mirror of this server's mirror (headwater mirroring headwater).
            f'[mirror.down]\nupstream = "http://127.0.0.1:{port}/m/simple/"\ntarget = "tree2"\n'
            # (the page keeps the first upstream's provenance URL)
            f'ca_bundle = "{cert[0]}"\nallowed_hosts = ["{urlsplit(up.simple_url).netloc}"]\n'
        )
        assert headwater("mirror", "--quiet", "--name", "m", cwd=tmp_path).returncode == 0
        corpus.add_release(PROJECT, HELD, files=1)  # a wheel without provenance
        second = headwater("mirror", "--quiet", "--name", "m", cwd=tmp_path)
        assert second.returncode == 0, second.stdout + second.stderr
        assert not list((tmp_path / "tree/web/packages").rglob(f"*{HELD}*"))  # not in the tree
        # The tree with its held entry is consistent (nothing listed is missing, the filters
        # agree): `headwater verify` passes.
        checked = headwater("verify", "--config", "headwater.toml", "--name", "m", cwd=tmp_path)
        assert checked.returncode == 0, checked.stdout + checked.stderr
        repaired = headwater("verify", "--repair", "--name", "m", cwd=tmp_path)
        assert repaired.returncode == 0, repaired.stdout + repaired.stderr
        assert not list((tmp_path / "tree/web/packages").rglob(f"*{HELD}*"))  # still held

        with serve(["--config", str(tmp_path / "headwater.toml")], tmp_path, port=port) as live:
            # The downstream mirror keeps the held entry (with the upstream's words) and never
            # fetches its URL.
            down = headwater("mirror", "--quiet", "--name", "down", cwd=tmp_path)
            assert down.returncode == 0, down.stdout + down.stderr
            assert not list((tmp_path / "tree2/web/packages").rglob(f"*{HELD}*"))
            for index in (
                f"{live.url}/m/simple/",
                f"{live.url}/all/simple/",
                f"{live.url}/down/simple/",
            ):
                home = tmp_path / index.rsplit("/", 3)[1]
                # Asking for the held release: the refusal, from pip (both) and uv.
                for pip in (pip_new, pip_old):
                    said = _pip(pip, index, f"{PROJECT}=={HELD}", home / "pip")
                    assert "[exit 0]" not in said and "409" in said, said
                    _assert_refusal(said)
                said = _uv(uv, index, f"{PROJECT}=={HELD}", home / "uv-pin")
                assert "[exit 0]" not in said and "409 Conflict" in said, said
                _assert_refusal(said)
                # A range only the held release satisfies: uv quotes the refusal; pip 26 names
                # the release it ignored (pip prints no yank reason when it skips one).
                said = _uv(uv, index, f"{PROJECT}>={HELD}", home / "uv-range")
                assert "[exit 0]" not in said and "was yanked" in said, said
                _assert_refusal(said)
                said = _pip(pip_new, index, f"{PROJECT}>={HELD}", home / "pip-range")
                assert f"Ignored the following yanked versions: {HELD}" in said, said
                # The held URL answers the refusal, never the file, to any client.
                url = f"{index.removesuffix('simple/')}held/{PROJECT}/{WHEEL}"
                with pytest.raises(urllib.error.HTTPError) as refused:
                    urllib.request.urlopen(url, timeout=30)
                with refused.value:  # the error holds the connection
                    assert refused.value.code == 409
                    assert refused.value.headers["x-headwater-refused"] == "publisher-held"
                    assert refused.value.headers["cache-control"] == "no-store"
                    _assert_refusal(_joined(refused.value.read().decode()))
            # The page pip reads: the held wheel is yanked with the refusal as its reason.
            request = urllib.request.Request(
                f"{live.url}/m/simple/{PROJECT}/",
                headers={"Accept": "application/vnd.pypi.simple.v1+json"},
            )
            with urllib.request.urlopen(request, timeout=30) as answer:
                page = json.loads(answer.read())
            # The interface's project page shows it with the refusal.
            with urllib.request.urlopen(f"{live.url}/ui/m/project/{PROJECT}", timeout=30) as ui:
                shown = _joined(html.unescape(ui.read().decode()))
            assert WHEEL in shown and ESTABLISHED in shown and FIX in shown, shown[-3000:]
            held = next(f for f in page["files"] if f["filename"] == WHEEL)
            _assert_refusal(held["yanked"])
            assert held["url"].startswith(f"../../held/{PROJECT}/{WHEEL}?headwater-refused=")
            assert held["core-metadata"] is False and "provenance" not in held

        # The same tree served by nginx alone (headwater nginx-config): the page is the same
        # file, and the held URL's query carries the refusal into pip's and uv's output.
        site = start_nginx(
            tmp_path / "nginx",
            lambda port: render_nginx_config(
                NginxConfig(root=str(tmp_path / "tree"), listen=(f"127.0.0.1:{port}",))
            ),
        )
        try:
            index = f"{site.url}/simple/"
            said = _pip(pip_old, index, f"{PROJECT}=={HELD}", tmp_path / "nginx-pip")
            assert "[exit 0]" not in said and "409" in said, said
            _assert_refusal(said)
            said = _uv(uv, index, f"{PROJECT}=={HELD}", tmp_path / "nginx-uv")
            assert "[exit 0]" not in said and "409 Conflict" in said, said
            _assert_refusal(said)
        finally:
            site.stop()

        accepted = headwater("provenance", "accept", "m", PROJECT, HELD, cwd=tmp_path)
        assert accepted.returncode == 0, accepted.stderr
        third = headwater("mirror", "--quiet", "--name", "m", "--project", PROJECT, cwd=tmp_path)
        assert third.returncode == 0, third.stdout + third.stderr

        with serve(["--config", str(tmp_path / "headwater.toml")], tmp_path) as live:
            index = f"{live.url}/m/simple/"
            said = _uv(uv, index, f"{PROJECT}=={HELD}", tmp_path / "after-uv")
            assert (
                "[exit 0]" in said
                and "Installed 1 package" in said
                and f"{PROJECT}=={HELD}" in said
            ), said
            said = _pip(pip_old, index, f"{PROJECT}=={HELD}", tmp_path / "after-pip")
            assert "[exit 0]" in said and "Saved" in said, said
            assert (tmp_path / "after-pip" / "got" / WHEEL).exists()
            with pytest.raises(urllib.error.HTTPError) as gone:
                urllib.request.urlopen(f"{live.url}/m/held/{PROJECT}/{WHEEL}", timeout=30)
            gone.value.close()
            assert gone.value.code == 404  # no longer held: the page lists the file itself
