"""Adopting an existing mirror in place: a tree made by bandersnatch 8.2 itself (files at
pypi.org-style blake2b URL paths), and a directory of downloaded files. Adoption downloads nothing
the tree has, keeps every page it serves pointing at existing files at every step, records what it
adopted, and after the next sync the tree is exactly what a direct headwater mirror of the same
upstream makes (that sync removes bandersnatch's names once its own pages replace theirs)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from posixpath import normpath

import pytest

from headwater.simple.html import parse_project_page_html
from headwater.simple.json import parse_project_page_json
from headwater.storage.layout import file_key, metadata_key
from headwater.testing.corpus import Corpus
from headwater.testing.upstream import Upstream
from tests.clients import installed_version, pip_install
from tests.server.live import serve
from tests.sync.bundles import HEADWATER, cli, mirror, served, snapshot
from tests.sync.test_crash import assert_consistent

ROOT = Path(__file__).resolve().parents[2]
# Reused across runs: installing bandersnatch takes a minute.
_VENV = Path(
    os.environ.get(
        "HEADWATER_BANDERSNATCH_VENV", Path.home() / ".cache/headwater-tests/bandersnatch-venv"
    )
)


def _runs(exe: Path) -> bool:
    try:
        return (
            subprocess.run([str(exe), "--help"], capture_output=True, timeout=120).returncode == 0
        )
    except OSError:
        return False


@pytest.fixture(scope="session")
def bandersnatch() -> Path:
    """bandersnatch 8.2 in its own venv, installed by bench/bandersnatch-setup.sh (isolated pip)."""
    exe = _VENV / "bin" / "bandersnatch"
    if exe.exists() and not _runs(exe):
        shutil.rmtree(_VENV)  # e.g. a venv moved from elsewhere: its scripts name another python
    if not exe.exists():
        _VENV.parent.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(
            ["bash", str(ROOT / "bench/bandersnatch-setup.sh"), str(_VENV)],
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        assert done.returncode == 0, (
            "could not install bandersnatch 8.2 for the adoption tests (bench/bandersnatch-setup.sh "
            f"needs a Python 3.12 and a package index):\n{done.stderr[-2000:]}"
        )
    version = subprocess.run(
        [
            str(_VENV / "bin/python"),
            "-c",
            "import importlib.metadata as m; print(m.version('bandersnatch'))",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert version.startswith("8."), version
    return exe


def bandersnatch_mirror(exe: Path, up: Upstream, target: Path) -> None:
    conf = target.parent / f"{target.name}.conf"
    conf.write_text(
        "[mirror]\n"
        f"directory = {target}\n"
        f"master = {up.url}\n"
        "allow-non-https = true\nworkers = 3\njson = false\nrelease-files = true\n"
        "core-metadata = true\nsimple-format = ALL\nhash-index = false\nstop-on-error = true\n"
        "storage-backend = filesystem\ntimeout = 60\nglobal-timeout = 600\n"
    )
    env = {"PATH": "/usr/bin:/bin", "HOME": str(target.parent)}
    done = subprocess.run(
        [str(exe), "-c", str(conf), "mirror"],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]


def links_resolve(root: Path) -> int:
    """Every link on every HTML page the tree serves points at a file it has (what nginx
    serves during the switch, whoever wrote the page). Returns how many links were checked."""
    checked = 0
    for page in (root / "web/simple").glob("*/index.html"):
        parsed = parse_project_page_html(page.read_bytes(), name=page.parent.name)
        for file in parsed.files:
            path = root / normpath(f"web/simple/{page.parent.name}/{file.url.partition('#')[0]}")
            assert path.is_file(), f"{page.parent.name} links to missing {file.url}"
            checked += 1
    return checked


def _corpus() -> Corpus:
    corpus = Corpus.generate(12, releases=2, files=2, seed=41)
    names = [e.normalized for e in corpus.project_list().projects]
    project = corpus.get(names[0])
    assert project is not None
    corpus.yank(names[0], next(iter(project.releases)), "bad release")
    return corpus


def _pages(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in (root / "web/simple").rglob("index*")}


def _sha256_names(root: Path) -> dict[Path, Path]:
    """Each file (and .metadata) a bandersnatch page links -> its name in headwater's layout."""
    names: dict[Path, Path] = {}
    for page in (root / "web/simple").glob("*/index.v1_json"):
        for f in parse_project_page_json(page.read_bytes()).files:
            old = root / normpath(f"web/simple/{page.parent.name}/{f.url.partition('#')[0]}")
            new = root / file_key(f.hashes["sha256"], f.filename)
            names[old] = new
            if f.core_metadata:
                names[old.with_name(old.name + ".metadata")] = new.with_name(new.name + ".metadata")
    return names


def test_adopting_a_bandersnatch_tree_downloads_nothing(tmp_path: Path, bandersnatch: Path) -> None:
    corpus = _corpus()
    tree, direct = tmp_path / "tree", tmp_path / "direct"
    with Upstream(corpus, pypi_paths=True).running() as up:
        bandersnatch_mirror(bandersnatch, up, tree)
        blake2_paths = {p for p in (tree / "web/packages").rglob("*") if p.is_file()}
        links_before = links_resolve(tree)
        pages_before = _pages(tree)
        assert links_before > 0

        done = cli("adopt", "--target", tree, "--upstream", up.simple_url, "--format", "json")
        report = json.loads(done.stdout)
        files = sum(1 for p in blake2_paths if not p.name.endswith(".metadata"))
        assert report["files"] == files and report["linked"] == files
        assert report["metadata"] == len(blake2_paths) - files and report["not_adopted"] == []
        assert json.loads((tree / "state/adopted.json").read_text())["files"] == files
        # Servable throughout: bandersnatch's pages are untouched and link the old names...
        assert _pages(tree) == pages_before
        assert links_resolve(tree) == links_before
        # ...and every file has its sha256 name too, as a hard link (no copy, no download).
        names = _sha256_names(tree)
        assert set(names) == blake2_paths
        assert all(new.samefile(old) for old, new in names.items())

        up.reset_stats()
        out = cli("mirror", "--upstream", up.simple_url, "--target", tree, "--quiet").stdout
        assert "downloaded 0 files (0 bytes)" in out, out
        assert not [p for p in up.stats if p.startswith("/packages/")], up.stats
        assert_consistent(tree)
        assert links_resolve(tree) == links_before
        # headwater's pages replaced bandersnatch's and the sync released the old names (in one
        # batch per project): a clean headwater tree, with nothing left to repair.
        assert not [p for p in blake2_paths if p.exists()]
        assert all(new.is_file() for new in names.values())
        cli("verify", "--target", tree)  # exit 0
        mirror(up, direct)
    # bandersnatch's own web/local-stats/ (download statistics) is not headwater's to remove.
    ours = {k: v for k, v in served(tree).items() if not k.startswith("web/local-stats/")}
    assert ours == served(direct)


@pytest.mark.parametrize("wrong", ["the file's bytes", "the digest its page records"])
def test_a_file_that_does_not_match_its_page_is_not_adopted(
    tmp_path: Path, bandersnatch: Path, wrong: str
) -> None:
    corpus = _corpus()
    tree = tmp_path / "tree"
    with Upstream(corpus, pypi_paths=True).running() as up:
        bandersnatch_mirror(bandersnatch, up, tree)
        page = next(iter(sorted((tree / "web/simple").glob("*/index.v1_json"))))
        data = json.loads(page.read_bytes())
        entry = next(f for f in data["files"] if f["filename"].endswith(".whl"))
        victim = page.parent / entry["url"]
        if wrong == "the file's bytes":
            body = bytearray(victim.read_bytes())
            body[len(body) // 2] ^= 0xFF
            victim.write_bytes(bytes(body))
            claimed = entry["hashes"]["sha256"]
        else:  # the page lies about an intact file (the digest of other bytes)
            claimed = hashlib.sha256(b"other bytes").hexdigest()
            entry["hashes"]["sha256"] = claimed
            page.write_text(json.dumps(data))
        done = cli("adopt", "--target", tree, "--upstream", up.simple_url, check=False)
        assert done.returncode == 1
        assert victim.name in done.stderr and "do not match the sha256" in done.stderr
        # Nothing under the claimed digest, nor under the file's real one (not adopted at all).
        real = hashlib.sha256(victim.read_bytes()).hexdigest()
        for digest in {claimed, real}:
            assert not (tree / file_key(digest, victim.name)).exists()
            assert not (tree / metadata_key(digest, victim.name)).exists()
        up.reset_stats()
        out = cli("mirror", "--upstream", up.simple_url, "--target", tree, "--quiet").stdout
        # exactly that file is fetched again (its .metadata comes out of it)
        assert "downloaded 1 files" in out, out
        assert_consistent(tree)


def test_adopting_a_directory_of_downloaded_files(tmp_path: Path) -> None:
    """Files from `pip download` (a flat directory): their sha256 is computed; the sync then
    downloads only what the directory lacked."""
    corpus = _corpus()
    downloads, tree = tmp_path / "downloads", tmp_path / "tree"
    downloads.mkdir()
    names = [e.normalized for e in corpus.project_list().projects]
    given = 0
    for name in names[:6]:
        project = corpus.get(name)
        assert project is not None
        for dist in project.files():
            (downloads / dist.filename).write_bytes(dist.body)
            given += 1
    (downloads / "README.txt").write_text("not a distribution")
    tree.mkdir()
    with Upstream(corpus).running() as up:
        report = json.loads(
            cli(
                "adopt",
                "--target",
                tree,
                "--upstream",
                up.simple_url,
                "--files",
                downloads,
                "--format",
                "json",
            ).stdout
        )
        assert report["from_directories"] == given and report["projects"] == 6
        out = cli("mirror", "--upstream", up.simple_url, "--target", tree, "--quiet").stdout
        total = sum(1 for n in names for _ in corpus.get(n).files())  # type: ignore[union-attr]
        assert f"downloaded {total - given} files" in out and f"{given} already present" in out, out
        assert_consistent(tree)


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("missing", "does not exist"),
        ("empty", "nothing to adopt"),
        ("other-upstream", "was mirrored from"),
    ],
)
def test_adopt_refuses_what_it_cannot_adopt(tmp_path: Path, setup: str, message: str) -> None:
    tree = tmp_path / "tree"
    corpus = Corpus.generate(2, seed=1)
    with Upstream(corpus).running() as up:
        if setup == "empty":
            tree.mkdir()
        elif setup == "other-upstream":
            mirror(up, tree)
        upstream = (
            "https://elsewhere.example/simple/" if setup == "other-upstream" else up.simple_url
        )
        done = cli("adopt", "--target", tree, "--upstream", upstream, check=False)
    assert done.returncode == 2 and message in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


def test_the_adopt_command_imports_only_what_it_needs() -> None:
    """`headwater adopt` is a short command whose start counts against its time (docs/mirror.md,
    "How fast adoption is"): the mirror's state, filters and policy are imported only when it
    records the projects, not when the command starts."""
    heavy = ("headwater.sync.state", "headwater.sync.filters", "headwater.policy")
    code = (
        "import sys; import headwater.cli.adopt; "
        f"print([m for m in sys.modules if m.startswith({heavy!r})])"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.strip() == "[]", done.stdout


def _names_are_earned(root: Path) -> int:
    """Every file under headwater's layout (web/packages/<sha256 path>/<file>, not .metadata)
    that a page of the tree promises by that sha256 hashes to it: a killed adoption never leaves a
    name its bytes did not earn. Returns how many such names were checked."""
    checked = 0
    for old, new in _sha256_names(root).items():
        if new.name.endswith(".metadata") or not new.exists() or new == old:
            continue
        digest = hashlib.sha256(new.read_bytes()).hexdigest()
        assert new.parent.name == digest[4:], f"{new} holds bytes of sha256 {digest}"
        checked += 1
    return checked


def test_adoption_killed_at_any_point_leaves_a_servable_tree_and_resumes(
    tmp_path: Path, bandersnatch: Path
) -> None:
    """SIGKILL `headwater adopt` at later and later points (start, pages, hashing and linking,
    recording), narrowing in on the linking phase whatever the machine's load: after each kill
    every page still links existing files and every new name is earned by its bytes; a second
    `adopt` finishes the job, and after a kill while linking, the sync downloads nothing and
    leaves a tree `verify` passes."""
    corpus = Corpus.generate(300, releases=1, files=2, seed=43)
    pristine = tmp_path / "pristine"
    with Upstream(corpus, pypi_paths=True).running() as up:
        bandersnatch_mirror(bandersnatch, up, pristine)
        links_before = links_resolve(pristine)
        adopt = ["adopt", "--upstream", up.simple_url, "--format", "json"]

        def killed_after(delay: float, step: int) -> tuple[Path, int | None]:
            """A fresh copy adopted with a kill after ``delay`` s: (tree, names made before the
            kill, None when the run finished first)."""
            tree = tmp_path / f"killed-{step}"
            subprocess.run(["cp", "-a", str(pristine), str(tree)], check=True)
            proc = subprocess.Popen(
                [HEADWATER, *adopt, "--target", str(tree)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            time.sleep(delay)
            finished = proc.poll() is not None
            if not finished:
                os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            assert links_resolve(tree) == links_before  # servable by the same nginx throughout
            made = None if finished else _names_are_earned(tree)
            report = json.loads(cli(*adopt, "--target", tree).stdout)  # resumes (exit 0)
            assert report["not_adopted"] == []
            assert _names_are_earned(tree) == 600
            return tree, made

        early, late = 0.05, None  # killed before any name / not killed or all names made
        kills: list[int] = []
        partial = 0
        for step in range(24):
            delay = early * 1.5 if late is None else (early + late) / 2
            tree, made = killed_after(delay, step)
            if made is not None:
                kills.append(made)
            if made == 0:
                early = delay
            elif made is None or made == 600:
                late = delay
            else:  # killed while linking: the sync after the resumed adoption
                partial += 1
                up.reset_stats()
                out = cli("mirror", "--upstream", up.simple_url, "--target", tree, "--quiet")
                assert "downloaded 0 files (0 bytes)" in out.stdout, out.stdout
                assert not [p for p in up.stats if p.startswith("/packages/")], up.stats
                cli("verify", "--target", tree)  # exit 0
                early = delay  # and look for a later point in the same phase
            shutil.rmtree(tree)
            if partial >= 2:
                break
        assert len(kills) >= 3, f"only {len(kills)} adoptions were killed: too little tested"
        assert partial >= 1, f"no kill landed while linking: names made per kill {kills}"


def test_an_adopted_tree_serves_pip_repairs_and_bundles(tmp_path: Path, bandersnatch: Path) -> None:
    """The adopted tree in use: `headwater serve --tree` serves it to real pip before the first
    sync (bandersnatch's pages) and after it (headwater's); `verify --repair` run between adoption
    and that sync breaks nothing; the synced tree travels by bundle, byte for byte."""
    corpus = _corpus()
    tree, far = tmp_path / "tree", tmp_path / "far"
    name = sorted(e.normalized for e in corpus.project_list().projects)[-1]
    project = corpus.get(name)
    assert project is not None
    newest = max(project.releases, key=lambda v: tuple(int(p) for p in v.split(".")))
    module = name.replace("-", "_")

    def pip_from_headwater(home: Path) -> None:
        with serve(["--tree", f"adopted={tree}", "--data-dir", str(home / "data")], home) as live:
            python = pip_install(f"{live.url}/adopted/simple/", name, home)
        assert installed_version(python, module) == newest

    with Upstream(corpus, pypi_paths=True).running() as up:
        bandersnatch_mirror(bandersnatch, up, tree)
        links_before = links_resolve(tree)
        cli("adopt", "--target", tree, "--upstream", up.simple_url)
        (tmp_path / "before").mkdir()
        pip_from_headwater(tmp_path / "before")
        adopted = set(_sha256_names(tree).values())
        repaired = cli("verify", "--target", tree, "--repair", check=False)
        assert links_resolve(tree) == links_before, repaired.stdout + repaired.stderr
        up.reset_stats()
        out = cli("mirror", "--upstream", up.simple_url, "--target", tree, "--quiet").stdout
        assert "downloaded 0 files (0 bytes)" in out, (out, repaired.stdout, repaired.stderr)
        assert all(p.is_file() for p in adopted)
        cli("verify", "--target", tree)
    (tmp_path / "after").mkdir()
    pip_from_headwater(tmp_path / "after")
    private, public = tmp_path / "bundle.key", tmp_path / "bundle.pub"
    cli("bundle", "keygen", "--private-key", private, "--public-key", public)
    cli("bundle", "create", "--target", tree, "--private-key", private, "-o", tmp_path / "b")
    cli("bundle", "import", "--target", far, "--public-key", public, tmp_path / "b")
    cli("verify", "--target", far)
    # Everything the tree serves but bandersnatch's own (empty) web/local-stats/, not headwater's.
    ours = {k: v for k, v in snapshot(tree, web_only=True).items() if "local-stats/" not in k}
    assert snapshot(far, web_only=True) == ours


def test_verify_repair_before_the_first_sync_keeps_files_adopted_from_a_directory(
    tmp_path: Path,
) -> None:
    """Files adopted with `--files` have no page until the first sync writes one: adoption holds
    them for their project's next sync (the state's `held`), so `verify` counts them as held,
    `verify --repair` run before that sync keeps them, and the sync downloads none of them."""
    corpus = _corpus()
    downloads, tree = tmp_path / "downloads", tmp_path / "tree"
    downloads.mkdir()
    keys = []
    for entry in corpus.project_list().projects:
        project = corpus.get(entry.normalized)
        assert project is not None
        for dist in project.files():
            (downloads / dist.filename).write_bytes(dist.body)
            keys.append(tree / file_key(hashlib.sha256(dist.body).hexdigest(), dist.filename))
    tree.mkdir()
    with Upstream(corpus).running() as up:
        cli("adopt", "--target", tree, "--upstream", up.simple_url, "--files", downloads)
        assert all(k.is_file() for k in keys)
        checked = cli("verify", "--target", tree, "--format", "json", check=False).stdout
        report = json.loads(checked)
        assert not [p for p in report["problems"] if p["kind"] == "orphan"], checked
        assert report["held"] == len(keys), checked
        repaired = cli("verify", "--target", tree, "--repair", check=False)
        assert all(k.is_file() for k in keys), repaired.stdout + repaired.stderr
        out = cli("mirror", "--upstream", up.simple_url, "--target", tree, "--quiet").stdout
        assert "downloaded 0 files (0 bytes)" in out, (out, repaired.stdout, repaired.stderr)
        assert f"{len(keys)} already present" in out, out
        cli("verify", "--target", tree)
        assert_consistent(tree)


def test_adopting_files_into_a_synced_tree_keeps_what_its_pages_list(tmp_path: Path) -> None:
    """`adopt --files` into a tree headwater already synced: the directory's files are held for
    their projects' next sync, and a sync in which those projects are unchanged upstream (so not
    synced again) releases the hold without removing what their pages list."""
    corpus = _corpus()
    downloads, tree = tmp_path / "downloads", tmp_path / "tree"
    downloads.mkdir()
    names = [e.normalized for e in corpus.project_list().projects]
    keys = []
    for name in names[:3]:
        project = corpus.get(name)
        assert project is not None
        for dist in project.files():
            (downloads / dist.filename).write_bytes(dist.body)
            keys.append(tree / file_key(hashlib.sha256(dist.body).hexdigest(), dist.filename))
    with Upstream(corpus).running() as up:
        mirror(up, tree)
        cli("adopt", "--target", tree, "--upstream", up.simple_url, "--files", downloads)
        out = cli("mirror", "--upstream", up.simple_url, "--target", tree, "--quiet").stdout
        assert "downloaded 0 files" in out, out
        missing = [str(k) for k in keys if not k.is_file()]
        assert not missing, (out, missing)
        cli("verify", "--target", tree)
        assert_consistent(tree)
