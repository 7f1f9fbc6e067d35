"""Acceptance audit of issue 14, adoption and bundles: a `pip download` directory adopted into a
closure mirror, bandersnatch 8.2 trees (HTML-only behind a plain nginx through the switch, and
the hash-index layout), and PEP 740 provenance carried by a bundle. Each case was found failing
(or unproven) by driving the real commands; see tests/sync/test_acceptance14.py for the closure's
inputs and environments."""

from __future__ import annotations

import shutil
import ssl
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import tests.sync.test_adopt as adopt_tests
from headwater.simple.html import parse_project_page_html
from headwater.storage.layout import provenance_key
from headwater.sync.environments import (
    Environment,
    expand_platform,
)
from headwater.testing.corpus import Corpus
from headwater.testing.graph import GRAPH_ROOTS, add_graph
from headwater.testing.upstream import Upstream
from tests.cli.test_mirror_provenance import cert
from tests.clients import clean_env
from tests.nginx import start_nginx
from tests.provenance.assets import GITHUB_SDIST, sha256
from tests.sync.bundles import HEADWATER, cli, snapshot

# --- adoption: a `pip download` directory into a closure mirror; bandersnatch behind nginx ------


def _pip_download(index: str, env: Environment, dest: Path, home: Path) -> set[str]:
    platforms: list[str] = []
    for platform in expand_platform(env.platform):
        platforms += ["--platform", platform]
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--isolated",
            "--no-cache-dir",
            "--index-url",
            index,
            "--only-binary",
            ":all:",
            *platforms,
            "--python-version",
            env.python,
            "--dest",
            str(dest),
            *GRAPH_ROOTS,
        ],
        env=clean_env(home),
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return {p.name for p in dest.iterdir()}


def test_a_pip_download_directory_adopted_into_a_closure_mirror_leaves_a_clean_tree(
    tmp_path: Path,
) -> None:
    """A wheelhouse made by `pip download` for Linux and Windows, adopted into a closure mirror
    for Linux only: the Windows wheels are adopted (their sha256 matches the upstream's) but the
    closure does not want them. Before the fix the sync left them behind with no page listing
    them (verify: orphan, exit 1)."""
    corpus = Corpus()
    add_graph(corpus)
    linux = Environment(python="3.12", platform="manylinux_2_28_x86_64")
    windows = Environment(python="3.12", platform="win_amd64")
    (tmp_path / "requirements.txt").write_text("\n".join(GRAPH_ROOTS) + "\n")
    tree = tmp_path / "tree"
    tree.mkdir()
    with Upstream(corpus).running() as up:
        index = f"{up.url}/simple/"
        fetched = _pip_download(index, linux, tmp_path / "dl", tmp_path)
        fetched |= _pip_download(index, windows, tmp_path / "dl", tmp_path)
        unwanted = {"core-1.2-cp39-abi3-win_amd64.whl"}
        assert unwanted <= fetched
        (tmp_path / "headwater.toml").write_text(
            f'[mirror.m]\nupstream = "{index}"\ntarget = "tree"\n'
            'allowed_networks = ["127.0.0.0/8"]\n[mirror.m.closure]\n'
            'inputs = ["requirements.txt"]\nenvironments = [{ python = "3.12", '
            'platform = "manylinux_2_28_x86_64" }]\n'
        )
        cli("adopt", "--target", tree, "--upstream", index, "--files", tmp_path / "dl")
        up.reset_stats()
        done = subprocess.run(
            [HEADWATER, "mirror", "--quiet"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        requested = [p for p, n in up.stats.items() if p.endswith(".whl") and n]
    # Nothing pip fetched was downloaded again.
    assert not {p.rsplit("/", 1)[1] for p in requested} & fetched, requested
    checked = cli("verify", "--target", tree, check=False)
    assert checked.returncode == 0, checked.stdout
    kept = {p.name for p in (tree / "web/packages").rglob("*.whl")}
    assert not kept & unwanted
    assert {f for f in fetched if "win_amd64" not in f} - {
        "tzshim-1.0-py3-none-any.whl",  # pip picks it on a host older than 3.12 (its markers)
        "winhelper-1.0-cp39-abi3-win_amd64.whl",
    } <= kept


__all__ = ["bandersnatch", "cert"]  # fixtures shared with the adoption and provenance tests
bandersnatch = adopt_tests.bandersnatch  # the session fixture: bandersnatch 8.2 in its own venv


def _get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=30) as reply:
            reply.read()
            return int(reply.status)
    except urllib.error.HTTPError as exc:
        exc.close()
        return exc.code


def _every_link_answers(base: str, tree: Path) -> int:
    """Fetch, through nginx, every project page on disk and every file it links: all 200."""
    checked = 0
    for page in sorted((tree / "web/simple").glob("*/index.html")):
        url = f"{base}/simple/{page.parent.name}/"
        with urllib.request.urlopen(url, timeout=30) as reply:
            body = reply.read()
        parsed = parse_project_page_html(body, name=page.parent.name)
        for file in parsed.files:
            target = urllib.parse.urljoin(url, file.url.partition("#")[0])
            assert _get(target) == 200, (url, file.url)
            checked += 1
    return checked


def test_an_html_only_bandersnatch_tree_stays_servable_by_its_nginx_through_the_switch(
    tmp_path: Path, bandersnatch: Path
) -> None:
    """bandersnatch 8.2 with `simple-format = HTML` (no JSON pages), served by a plain static
    nginx (as bandersnatch sites run it). Through `adopt` and while the first `headwater mirror`
    runs, that same nginx answers every page and every link on it; real pip downloads from it
    before and after; the sync downloads no file; afterwards the tree verifies clean. Before the
    fix the old blake2b names stayed as orphans (verify failed until `verify --repair`)."""
    corpus = adopt_tests._corpus()
    tree = tmp_path / "tree"
    with Upstream(corpus, pypi_paths=True).running() as up:
        conf = tmp_path / "bandersnatch.conf"
        conf.write_text(
            f"[mirror]\ndirectory = {tree}\nmaster = {up.url}\nallow-non-https = true\n"
            "workers = 3\njson = false\nrelease-files = true\ncore-metadata = true\n"
            "simple-format = HTML\nhash-index = false\nstop-on-error = true\n"
            "storage-backend = filesystem\ntimeout = 60\nglobal-timeout = 600\n"
        )
        made = subprocess.run(
            [str(bandersnatch), "-c", str(conf), "mirror"],
            capture_output=True,
            text=True,
            env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
            timeout=600,
            check=False,
        )
        assert made.returncode == 0, made.stderr[-3000:]
        assert not list((tree / "web/simple").glob("*/index.v1_json"))  # HTML only
        server = start_nginx(
            tmp_path / "nginx",
            "server {\n  listen 127.0.0.1:{port};\n"
            f'  root "{tree}/web";\n  index index.html;\n'
            "  location / { try_files $uri $uri/ =404; }\n}\n",
        )
        name = sorted(e.normalized for e in corpus.project_list().projects)[-1]

        def pip_gets_it(into: Path) -> None:
            done = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "pip",
                    "download",
                    "--isolated",
                    "--no-cache-dir",
                    "--no-deps",
                    "--disable-pip-version-check",
                    "--index-url",
                    f"{server.url}/simple/",
                    "--dest",
                    str(into),
                    name,
                ],
                env=clean_env(tmp_path),
                capture_output=True,
                text=True,
                timeout=300,
                check=False,
            )
            assert done.returncode == 0, done.stdout + done.stderr

        pip_gets_it(tmp_path / "before")
        links = _every_link_answers(server.url, tree)
        cli("adopt", "--target", tree, "--upstream", up.simple_url)
        assert _every_link_answers(server.url, tree) == links
        up.reset_stats()
        sync = subprocess.Popen(
            [HEADWATER, "mirror", "--upstream", up.simple_url, "--target", str(tree), "--quiet"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        rounds = 0
        while sync.poll() is None or rounds == 0:  # at least one full pass during the sync
            _every_link_answers(server.url, tree)
            rounds += 1
        out, err = sync.communicate(timeout=300)
        assert sync.returncode == 0, out + err
        assert "downloaded 0 files" in out, out
        assert not [p for p, n in up.stats.items() if n and not p.startswith("/simple")]
    pip_gets_it(tmp_path / "after")
    assert _every_link_answers(server.url, tree) >= links
    checked = cli("verify", "--target", tree, check=False)
    assert checked.returncode == 0, checked.stdout
    errors = [line for line in server.access_lines() if " 404 " in line or " 50" in line]
    server.stop()
    assert not errors, errors


# --- bundles carry PEP 740 provenance: the far tree is the near tree, and verifies offline -----


def test_a_bundle_carries_provenance_and_the_far_tree_verifies_it_offline(
    tmp_path: Path, cert: tuple[Path, Path]
) -> None:
    corpus_dir = tmp_path / "corpus"
    corpus_dir.mkdir()
    shutil.copyfile(GITHUB_SDIST, corpus_dir / GITHUB_SDIST.name)
    shutil.copyfile(
        GITHUB_SDIST.with_name(GITHUB_SDIST.name + ".provenance"),
        corpus_dir / (GITHUB_SDIST.name + ".provenance"),
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*cert)
    with Upstream(Corpus.from_directory(corpus_dir), ssl=context).running() as up:
        (tmp_path / "headwater.toml").write_text(
            f'[mirror.m]\nupstream = "{up.simple_url}"\ntarget = "near"\nretries = 1\n'
            f'ca_bundle = "{cert[0]}"\n'
        )
        done = subprocess.run(
            [HEADWATER, "mirror", "--quiet"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr
    near, far = tmp_path / "near", tmp_path / "far"
    key = provenance_key(sha256(GITHUB_SDIST), GITHUB_SDIST.name)
    assert (near / key).is_file()
    private, public = tmp_path / "bundle.key", tmp_path / "bundle.pub"
    cli("bundle", "keygen", "--private-key", private, "--public-key", public)
    cli("bundle", "create", "--target", near, "--private-key", private, "-o", tmp_path / "b.hwb")
    cli("bundle", "import", "--target", far, "--public-key", public, tmp_path / "b.hwb")
    assert snapshot(far, web_only=True) == snapshot(near, web_only=True)
    assert (far / key).read_bytes() == (near / key).read_bytes()
    cli("verify", "--target", far)  # provenance checked again on the far side, offline
    # A provenance document altered on the far side is caught there.
    (far / key).write_bytes((far / key).read_bytes().replace(b'"version"', b'"versions"', 1))
    caught = cli("verify", "--target", far, check=False)
    assert caught.returncode != 0, caught.stdout


def _bandersnatch(exe: Path, up: Upstream, tree: Path, *, hash_index: bool, force: bool) -> None:
    conf = tree.parent / "bandersnatch.conf"
    conf.write_text(
        f"[mirror]\ndirectory = {tree}\nmaster = {up.url}\nallow-non-https = true\n"
        "workers = 3\njson = false\nrelease-files = true\ncore-metadata = true\n"
        f"simple-format = ALL\nhash-index = {str(hash_index).lower()}\nstop-on-error = true\n"
        "storage-backend = filesystem\ntimeout = 60\nglobal-timeout = 600\n"
    )
    made = subprocess.run(
        [str(exe), "-c", str(conf), "mirror", *(["--force-check"] if force else [])],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tree.parent)},
        timeout=600,
        check=False,
    )
    assert made.returncode == 0, made.stderr[-3000:]


def test_a_hash_index_bandersnatch_tree_is_refused_with_the_way_to_adopt_it(
    tmp_path: Path, bandersnatch: Path
) -> None:
    """bandersnatch's hash-index layout (web/simple/<letter>/<name>/) was refused as "no project
    pages", and the sync that followed downloaded everything again. Now: a refusal naming the
    layout and the fix; the fix, run as given, adopts with 0 downloads and a clean verify."""
    corpus = Corpus.generate(6, releases=2, files=2, seed=41)
    tree = tmp_path / "tree"
    with Upstream(corpus, pypi_paths=True).running() as up:
        _bandersnatch(bandersnatch, up, tree, hash_index=True, force=False)
        before = snapshot(tree)
        refused = cli("adopt", "--target", tree, "--upstream", up.simple_url, check=False)
        assert refused.returncode == 2, refused.stdout + refused.stderr
        assert "hash-index = true" in refused.stderr and "--force-check" in refused.stderr
        assert snapshot(tree) == before  # nothing was changed
        up.reset_stats()
        _bandersnatch(bandersnatch, up, tree, hash_index=False, force=True)  # the fix, as given
        assert not [p for p, n in up.stats.items() if n and p.startswith("/packages")]
        adopted = cli("adopt", "--target", tree, "--upstream", up.simple_url)
        assert "not adopted 0" in adopted.stdout, adopted.stdout
        up.reset_stats()
        out = cli("mirror", "--upstream", up.simple_url, "--target", tree, "--quiet").stdout
        assert "downloaded 0 files" in out, out
    cli("verify", "--target", tree)
