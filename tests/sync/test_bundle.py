"""Bundles across the air gap: a bundle imported into a tree gives, byte for byte, the tree the
source mirrored (and the tree a direct mirror of the same upstream makes), full and incremental,
by --since and by --against, in one volume or many; and the far side refuses, changing nothing,
every bundle that is damaged, incomplete, forged, replayed or for another tree."""

from __future__ import annotations

import random
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from headwater.simple.model import ProjectStatus
from headwater.sync.bundle.apply import import_bundle, verify_bundle
from headwater.sync.bundle.create import create_bundle
from headwater.sync.bundle.manifest import (
    InvalidBundle,
    generate_keys,
    load_private_key,
    load_public_key,
)
from headwater.testing.corpus import Corpus
from headwater.testing.upstream import Upstream
from tests.sync.bundles import HEADWATER, cli, mirror, served, snapshot
from tests.sync.test_crash import assert_consistent


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, Path]:
    private, public = tmp_path / "k", tmp_path / "k.pub"
    generate_keys(private, public)
    return private, public


def _volumes(out: Path) -> list[str]:
    found = sorted(str(p) for p in out.parent.glob(out.name + ".[0-9][0-9][0-9]"))
    return found or [str(out)]


def _change(corpus: Corpus) -> None:
    """Every kind of change an upstream makes: a release, a yank, a status, a deletion."""
    names = [e.normalized for e in corpus.project_list().projects]
    corpus.add_release(names[0], "9.0")
    project = corpus.get(names[1])
    assert project is not None
    corpus.yank(names[1], next(iter(project.releases)), "broken build")
    corpus.set_status(names[2], ProjectStatus.ARCHIVED, "moved on")
    corpus.delete_project(names[3])


@pytest.mark.parametrize("volume_size", [None, "40K"], ids=["one-volume", "volumes"])
@pytest.mark.parametrize("delta", ["since", "against"])
def test_import_gives_the_tree_a_direct_mirror_makes(
    tmp_path: Path, keys: tuple[Path, Path], volume_size: str | None, delta: str
) -> None:
    private, public = keys
    corpus = Corpus.generate(8, releases=2, files=2, seed=5)
    source, far, direct = tmp_path / "source", tmp_path / "far", tmp_path / "direct"
    split = ["--volume-size", volume_size] if volume_size else []
    with Upstream(corpus).running() as up:
        mirror(up, source)
        cli(
            "bundle",
            "create",
            "--target",
            source,
            "--private-key",
            private,
            "-o",
            tmp_path / "b1",
            *split,
        )
        if volume_size:
            assert len(_volumes(tmp_path / "b1")) > 2  # files split across volumes
        cli("bundle", "verify", "--public-key", public, *_volumes(tmp_path / "b1"))
        cli("bundle", "import", "--target", far, "--public-key", public, *_volumes(tmp_path / "b1"))
        assert snapshot(far) == snapshot(source)

        _change(corpus)
        mirror(up, source)
        mirror(up, direct)
        if delta == "since":
            base = ["--since", "1"]
        else:
            cli("bundle", "manifest", "--target", far, "-o", tmp_path / "far.json")
            base = ["--against", str(tmp_path / "far.json")]
        cli(
            "bundle",
            "create",
            "--target",
            source,
            "--private-key",
            private,
            "-o",
            tmp_path / "b2",
            *split,
            *base,
        )
        cli("bundle", "import", "--target", far, "--public-key", public, *_volumes(tmp_path / "b2"))
    assert snapshot(far) == snapshot(source)
    assert served(far) == served(direct)
    # .metadata, yanks and statuses travelled
    assert any(k.endswith(".metadata") for k in served(far))
    page = (
        far / "web/simple" / corpus.project_list().projects[1].normalized / "index.v1_json"
    ).read_text()
    assert "broken build" in page


def test_an_incremental_bundle_carries_only_the_change(
    tmp_path: Path, keys: tuple[Path, Path]
) -> None:
    private, _public = keys
    corpus = Corpus.generate(20, releases=2, files=2, seed=6)
    source = tmp_path / "source"
    with Upstream(corpus).running() as up:
        mirror(up, source)
        full = create_bundle(source, load_private_key(private), tmp_path / "b1")
        corpus.add_release(corpus.project_list().projects[0].normalized, "7.0")
        mirror(up, source)
    delta = create_bundle(source, load_private_key(private), tmp_path / "b2", since=1)
    assert delta.base == 1 and delta.serial == 2
    assert delta.included < full.included / 5
    assert delta.bytes < full.bytes / 5


# -- refusals: every damaged, incomplete, forged, replayed or foreign bundle changes nothing ----


@pytest.fixture
def world(tmp_path: Path, keys: tuple[Path, Path]) -> dict[str, Path]:
    """A source tree with bundles 1 (full) and 2 (since 1) in volumes, and a far tree at 1."""
    private, public = keys
    corpus = Corpus.generate(6, releases=2, files=2, seed=8)
    source, far = tmp_path / "source", tmp_path / "far"
    with Upstream(corpus).running() as up:
        mirror(up, source)
        create_bundle(source, load_private_key(private), tmp_path / "b1", volume_size=40 << 10)
        _change(corpus)
        mirror(up, source)
        create_bundle(
            source, load_private_key(private), tmp_path / "b2", since=1, volume_size=32 << 10
        )
    import_bundle(_volumes(tmp_path / "b1"), load_public_key(public), far)
    return {
        "source": source,
        "far": far,
        "b1": tmp_path / "b1",
        "b2": tmp_path / "b2",
        "public": public,
        "private": private,
        "tmp": tmp_path,
    }


def _refused(
    world: dict[str, Path], volumes: list[str], target: Path | None = None, match: str | None = None
) -> None:
    target = target or world["far"]
    before = snapshot(target)
    with pytest.raises(InvalidBundle, match=match):
        import_bundle(volumes, load_public_key(world["public"]), target)
    assert snapshot(target) == before
    # and the same bundle through the command line: exit 2, a message, nothing changed
    done = cli(
        "bundle",
        "import",
        "--target",
        target,
        "--public-key",
        world["public"],
        *volumes,
        check=False,
    )
    assert done.returncode == 2 and "nothing was changed" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    assert snapshot(target) == before


def _flip(path: Path, offset: int, into: Path) -> str:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    into.write_bytes(bytes(data))
    return str(into)


def test_a_flipped_byte_anywhere_is_refused(world: dict[str, Path]) -> None:
    """Every byte of a volume is covered: tar headers (checksum), the manifest and signature
    (Ed25519), data (sha256 per piece and per file), padding and the end blocks (must be zeros)."""
    volumes = _volumes(world["b2"])
    rng = random.Random(14)
    public = load_public_key(world["public"])
    for n, volume in enumerate(volumes):
        size = Path(volume).stat().st_size
        # every 512-byte block boundary region plus random offsets
        offsets = sorted(
            {*range(0, size, 4093), *(rng.randrange(size) for _ in range(40)), size - 1}
        )
        for offset in offsets:
            bad = list(volumes)
            bad[n] = _flip(Path(volume), offset, world["tmp"] / "flipped")
            with pytest.raises(InvalidBundle):
                verify_bundle(bad, public)
    bad = list(volumes)
    bad[-1] = _flip(
        Path(volumes[-1]), Path(volumes[-1]).stat().st_size // 2, world["tmp"] / "flipped"
    )
    _refused(world, bad)


@pytest.mark.parametrize(
    "case", ["missing-volume", "truncated", "duplicate", "mixed-bundles", "wrong-key"]
)
def test_incomplete_or_foreign_volumes_are_refused(world: dict[str, Path], case: str) -> None:
    volumes = _volumes(world["b2"])
    if case == "missing-volume":
        missing = volumes.pop(1)
        with pytest.raises(InvalidBundle, match=r"volume 2 of \d+ missing"):
            import_bundle(volumes, load_public_key(world["public"]), world["far"])
        assert missing not in volumes
    elif case == "truncated":
        cut = world["tmp"] / "cut"
        cut.write_bytes(Path(volumes[-1]).read_bytes()[:-2000])
        volumes[-1] = str(cut)
    elif case == "duplicate":
        volumes[1] = volumes[0]
    elif case == "mixed-bundles":
        volumes[0] = _volumes(world["b1"])[0]
    else:
        other, other_pub = world["tmp"] / "other", world["tmp"] / "other.pub"
        generate_keys(other, other_pub)
        world = {**world, "public": other_pub}
    _refused(world, volumes)


def test_a_single_volume_verifies_alone(world: dict[str, Path]) -> None:
    volumes = _volumes(world["b2"])
    result = verify_bundle([volumes[1]], load_public_key(world["public"]))
    assert result.volumes == [2] and not result.complete
    done = cli("bundle", "verify", "--public-key", world["public"], volumes[1])
    assert "partial: volumes 2 of" in done.stdout


def test_a_replayed_older_bundle_is_refused(world: dict[str, Path]) -> None:
    import_bundle(_volumes(world["b2"]), load_public_key(world["public"]), world["far"])
    _refused(world, _volumes(world["b1"]), match="not newer")


def test_the_bundle_imported_last_imports_again_as_nothing_to_do(world: dict[str, Path]) -> None:
    """A run killed after it recorded the bundle but before it exited is run again by the
    operator: that finishes (clearing what the kill left) instead of calling it a replay
    (test_sigkill_at_any_point_then_resume failed that way when the kill landed there)."""
    public = load_public_key(world["public"])
    import_bundle(_volumes(world["b2"]), public, world["far"])
    before = snapshot(world["far"])
    leftover = world["far"] / "state/bundle-import/left-by-a-kill"
    leftover.mkdir(parents=True)
    done = import_bundle(_volumes(world["b2"]), public, world["far"])
    assert done.already and done.written == 0 and done.removed == 0
    assert not (world["far"] / "state/bundle-import").exists()
    assert snapshot(world["far"]) == before
    answer = cli("bundle", "import", "--target", world["far"], "--public-key", world["public"],
                 *_volumes(world["b2"]))  # fmt: skip
    assert "imported in" in answer.stdout and "already: nothing to do" in answer.stdout


def test_a_bundle_for_another_tree_is_refused(world: dict[str, Path], tmp_path: Path) -> None:
    other_source, other_far = tmp_path / "other-source", tmp_path / "other-far"
    with Upstream(Corpus.generate(3, seed=99)).running() as up:
        mirror(up, other_source)
    create_bundle(other_source, load_private_key(world["private"]), tmp_path / "o1")
    import_bundle([str(tmp_path / "o1")], load_public_key(world["public"]), other_far)
    # the far tree follows the first source: a full bundle of another source is refused
    _refused(world, [str(tmp_path / "o1")], match="another tree")
    # and an incremental bundle of the first source does not apply to the other far tree
    _refused(world, _volumes(world["b2"]), target=other_far, match="another tree")


def test_a_bundle_whose_base_the_tree_lacks_is_refused(
    world: dict[str, Path], tmp_path: Path
) -> None:
    empty = tmp_path / "empty"
    _refused(world, _volumes(world["b2"]), target=empty, match="imported no bundle")
    # a tree that did not come from a bundle is never overwritten by one
    stranger = tmp_path / "stranger"
    (stranger / "web/simple").mkdir(parents=True)
    (stranger / "web/simple/index.html").write_text("<html></html>")
    _refused(world, _volumes(world["b1"]), target=stranger, match="no bundle made")
    # an unchanged file the bundle relies on was removed from the far tree
    victim = next((world["far"] / "web/packages").rglob("*.whl"))
    victim.unlink()
    _refused(world, _volumes(world["b2"]), match="unchanged file")


def test_bad_arguments_are_named(world: dict[str, Path], tmp_path: Path) -> None:
    cases: list[tuple[list[str | Path], str]] = [
        (
            [
                "create",
                "--target",
                world["source"],
                "--private-key",
                world["public"],
                "-o",
                tmp_path / "x",
            ],
            "not an Ed25519 private key|cannot read the private key",
        ),
        (
            [
                "create",
                "--target",
                world["source"],
                "--private-key",
                world["private"],
                "-o",
                tmp_path / "x",
                "--volume-size",
                "lots",
            ],
            "volume size 'lots' is not a size",
        ),
        (
            [
                "create",
                "--target",
                world["source"],
                "--private-key",
                world["private"],
                "-o",
                tmp_path / "x",
                "--volume-size",
                "1K",
            ],
            "leaves no room",
        ),
        (
            [
                "create",
                "--target",
                world["source"],
                "--private-key",
                world["private"],
                "-o",
                tmp_path / "x",
                "--since",
                "9",
            ],
            "made no bundle 9",
        ),
        (
            [
                "create",
                "--target",
                world["source"],
                "--private-key",
                world["private"],
                "-o",
                world["tmp"] / "b1.001",
            ],
            "exists",
        ),
        (["verify", "--public-key", world["public"], tmp_path / "nope"], "cannot open the volume"),
        (
            ["keygen", "--private-key", world["private"], "--public-key", tmp_path / "p"],
            "never overwritten",
        ),
    ]
    for args, message in cases:
        done = cli("bundle", *args, check=False)
        assert done.returncode == 2, (args, done.stderr)
        assert "Traceback" not in done.stderr
        assert re.search(message, done.stderr), (args, done.stderr)
    assert not (tmp_path / "x").exists()
    assert not list(tmp_path.glob("x.*"))


def test_stdin_and_stdout(world: dict[str, Path], tmp_path: Path) -> None:
    out = subprocess.run(
        [
            HEADWATER,
            "bundle",
            "create",
            "--target",
            str(world["source"]),
            "--private-key",
            str(world["private"]),
            "-o",
            "-",
        ],
        capture_output=True,
        check=True,
        timeout=120,
    ).stdout
    far = tmp_path / "piped"
    subprocess.run(
        [
            HEADWATER,
            "bundle",
            "import",
            "--target",
            str(far),
            "--public-key",
            str(world["public"]),
            "-",
        ],
        input=out,
        capture_output=True,
        check=True,
        timeout=120,
    )
    assert snapshot(far) == snapshot(world["source"])


_SLOW_IMPORT = """
import pathlib, sys, time
for name in ("replace", "unlink"):
    def slow(self, *a, _orig=getattr(pathlib.Path, name), **k):
        time.sleep(0.003)
        return _orig(self, *a, **k)
    setattr(pathlib.Path, name, slow)
from headwater.cli.main import main
sys.exit(main(["bundle", "import", *sys.argv[1:]]))
"""


def test_sigkill_at_any_point_then_resume(tmp_path: Path, keys: tuple[Path, Path]) -> None:
    """Kill ``bundle import`` with SIGKILL at points spread over its whole run (staging, the
    barrier, files, pages, root, removals): after every kill the tree is consistent (no page
    points at a missing or wrong file, the root lists only pages that exist), and running the
    same import again finishes it: the tree is then exactly the source."""
    private, public = keys
    corpus = Corpus.generate(150, releases=2, files=2, seed=21)
    source, far = tmp_path / "source", tmp_path / "far"
    with Upstream(corpus).running() as up:
        mirror(up, source)
        create_bundle(source, load_private_key(private), tmp_path / "b1")
        names = [e.normalized for e in corpus.project_list().projects]
        for name in names[:60]:
            corpus.add_release(name, "9.0")
        for name in names[60:90]:
            corpus.delete_project(name)
        mirror(up, source)
    create_bundle(source, load_private_key(private), tmp_path / "b2", since=1, volume_size=1 << 20)
    b2 = _volumes(tmp_path / "b2")
    import_bundle([str(tmp_path / "b1")], load_public_key(public), far)
    # Every rename and unlink the import makes is slowed (in the child only, no hook in the
    # code), so kills land in every phase rather than mostly in interpreter start-up.
    command = [
        sys.executable,
        "-c",
        _SLOW_IMPORT,
        "--target",
        str(far),
        "--public-key",
        str(public),
        *b2,
    ]

    started = time.monotonic()
    probe = tmp_path / "probe"
    shutil.copytree(far, probe)
    subprocess.run([*command[:3], "--target", str(probe), *command[5:]], check=True, timeout=120)
    whole = time.monotonic() - started
    shutil.rmtree(probe)

    rng = random.Random(7)
    staged_seen = 0
    finished = False
    for _round in range(10):
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(whole * rng.uniform(0.1, 0.45))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert_consistent(far)
        staged_seen += (far / "state/bundle-import").is_dir()
        if proc.returncode == 0:  # the kill came after it finished
            finished = True
            break
    if not finished:
        cli("bundle", "import", "--target", far, "--public-key", public, *b2)
    assert_consistent(far)
    assert snapshot(far) == snapshot(source)
    assert staged_seen, "no kill landed after staging began: the test did not test resuming"


def test_against_an_empty_far_tree_is_a_full_bundle(
    tmp_path: Path, keys: tuple[Path, Path]
) -> None:
    private, public = keys
    source, far = tmp_path / "source", tmp_path / "far"
    with Upstream(Corpus.generate(4, seed=3)).running() as up:
        mirror(up, source)
    far.mkdir()
    cli("bundle", "manifest", "--target", far, "-o", tmp_path / "far.json")
    cli(
        "bundle",
        "create",
        "--target",
        source,
        "--private-key",
        private,
        "-o",
        tmp_path / "b",
        "--against",
        tmp_path / "far.json",
    )
    cli("bundle", "import", "--target", far, "--public-key", public, tmp_path / "b")
    assert snapshot(far) == snapshot(source)


@pytest.mark.parametrize("suffix", [".metadata", ".provenance", ".asc"])
def test_sidecars_beside_a_file_travel_with_their_own_digest(
    tmp_path: Path, keys: tuple[Path, Path], suffix: str
) -> None:
    """A sidecar shares its file's sha256 path but not its digest (PEP 740 provenance, or any
    later one): it is hashed, never taken for content addressed by the path."""
    private, public = keys
    source, far = tmp_path / "source", tmp_path / "far"
    with Upstream(Corpus.generate(3, seed=12)).running() as up:
        mirror(up, source)
    wheel = next((source / "web/packages").rglob("*.whl"))
    sidecar = wheel.with_name(wheel.name + suffix)
    sidecar.write_bytes(b'{"attestation_bundles": []}' + suffix.encode())
    create_bundle(source, load_private_key(private), tmp_path / "b1")
    import_bundle([str(tmp_path / "b1")], load_public_key(public), far)
    assert snapshot(far) == snapshot(source)
    # and an incremental bundle relies on it being there, byte for byte
    sidecar.write_bytes(b"changed")
    create_bundle(source, load_private_key(private), tmp_path / "b2", since=1)
    import_bundle([str(tmp_path / "b2")], load_public_key(public), far)
    assert (far / sidecar.relative_to(source)).read_bytes() == b"changed"
