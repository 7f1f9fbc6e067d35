"""``headwater mirror`` with a ``[mirror.NAME.closure]``: lockfiles that do not match the upstream
are refused and change nothing; what cannot be satisfied is reported by requirement and
environment; a changed input or a new upstream release fetches only the difference, and files no
longer needed leave after the grace."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from headwater.cli.main import main
from headwater.testing.corpus import Corpus
from headwater.testing.graph import add_graph, add_project
from headwater.testing.upstream import Upstream

ENVS = (
    '  { python = "3.12", platform = "manylinux_2_28_x86_64" },\n'
    '  { python = "3.13", platform = "win_amd64" },\n'
)


@pytest.fixture
def upstream() -> Iterator[tuple[Upstream, Corpus]]:
    corpus = Corpus()
    add_graph(corpus)
    with Upstream(corpus).running() as up:
        yield up, corpus


def configure(work: Path, url: str, inputs: dict[str, str], *, extra: str = "") -> Path:
    for name, text in inputs.items():
        (work / name).write_text(text)
    names = ", ".join(f'"{n}"' for n in inputs)
    config = work / "headwater.toml"
    config.write_text(
        f'[mirror.m]\nupstream = "{url}/simple/"\ntarget = "tree"\n'
        'allowed_networks = ["127.0.0.0/8"]\n\n'
        f"[mirror.m.closure]\ninputs = [{names}]\nenvironments = [\n{ENVS}]\n{extra}"
    )
    return config


def mirror(config: Path, capsys: pytest.CaptureFixture[str], *more: str) -> tuple[int, str, str]:
    status = main(["mirror", "--config", str(config), "--quiet", *more])
    out, err = capsys.readouterr()
    return status, out, err


def tree_files(work: Path) -> set[str]:
    packages = work / "tree" / "web" / "packages"
    if not packages.exists():
        return set()
    return {p.name for p in packages.rglob("*") if p.is_file() and not p.name.endswith(".metadata")}


def pylock(corpus: Corpus, entries: list[tuple[str, str, list[str]]], *, bad: str = "") -> str:
    lines = ['lock-version = "1.0"', 'created-by = "test"']
    for name, version, filenames in entries:
        lines += ["[[packages]]", f'name = "{name}"', f'version = "{version}"', "wheels = ["]
        for filename in filenames:
            dist = corpus.file(filename)
            assert dist is not None
            digest = "0" * 64 if filename == bad else dist.sha256
            lines.append(
                f'  {{ name = "{filename}", url = "https://x/{filename}", '
                f'hashes = {{ sha256 = "{digest}" }} }},'
            )
        lines.append("]")
    return "\n".join(lines) + "\n"


def uv_lock(corpus: Corpus, entries: list[tuple[str, str, list[str]]], *, bad: str = "") -> str:
    deps = ", ".join(f'{{ name = "{name}" }}' for name, _, _ in entries)
    lines = [
        "version = 1",
        'requires-python = ">=3.11"',
        "[[package]]",
        'name = "me"',
        'version = "0.1"',
        'source = { virtual = "." }',
        f"dependencies = [{deps}]",
    ]
    for name, version, filenames in entries:
        lines += [
            "[[package]]",
            f'name = "{name}"',
            f'version = "{version}"',
            'source = { registry = "https://pypi.org/simple" }',
            "wheels = [",
        ]
        for filename in filenames:
            dist = corpus.file(filename)
            assert dist is not None
            digest = "0" * 64 if filename == bad else dist.sha256
            lines.append(f'  {{ url = "https://x/{filename}", hash = "sha256:{digest}" }},')
        lines.append("]")
    return "\n".join(lines) + "\n"


LOCKED = [
    ("leaf", "2.0", ["leaf-2.0-py3-none-any.whl"]),
    (
        "core",
        "1.2",
        [
            "core-1.2-cp39-abi3-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
            "core-1.2-cp39-abi3-win_amd64.whl",
        ],
    ),
]
BAD = "core-1.2-cp39-abi3-win_amd64.whl"


def requirements_with_hashes(corpus: Corpus, *, bad: str = "") -> str:
    lines = []
    for name, version, filenames in LOCKED:
        hashes = " ".join(
            f"--hash=sha256:{'0' * 64 if f == bad else corpus.file(f).sha256}"  # type: ignore[union-attr]
            for f in filenames
        )
        lines.append(f"{name}=={version} {hashes}")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("kind", ["pylock.toml", "uv.lock", "requirements.txt"])
def test_locked_inputs_mirror_exactly_their_files(
    upstream: tuple[Upstream, Corpus],
    kind: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    up, corpus = upstream
    text = {
        "pylock.toml": pylock(corpus, LOCKED),
        "uv.lock": uv_lock(corpus, LOCKED),
        "requirements.txt": requirements_with_hashes(corpus),
    }[kind]
    config = configure(tmp_path, up.url, {kind: text})
    status, out, err = mirror(config, capsys)
    assert status == 0, out + err
    expected = {f for _, _, files in LOCKED for f in files}
    if kind == "requirements.txt":
        # A requirements file is followed: core 1.2 needs base>=1.1, which needs leaf>=2.0.
        expected |= {"base-1.1-py3-none-any.whl"}
    assert tree_files(tmp_path) == expected


@pytest.mark.parametrize("kind", ["pylock.toml", "uv.lock", "requirements.txt"])
def test_a_lockfile_whose_hashes_differ_from_the_upstream_is_refused_and_changes_nothing(
    upstream: tuple[Upstream, Corpus],
    kind: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    up, corpus = upstream
    text = {
        "pylock.toml": pylock(corpus, LOCKED, bad=BAD),
        "uv.lock": uv_lock(corpus, LOCKED, bad=BAD),
        "requirements.txt": requirements_with_hashes(corpus, bad=BAD),
    }[kind]
    config = configure(tmp_path, up.url, {kind: text})
    status, out, err = mirror(config, capsys)
    assert status == 2, out + err
    assert kind in err and "refused" in err
    assert "core" in err
    if kind != "requirements.txt":
        assert BAD in err and "every environment" in err  # a lockfile names the file
    else:
        assert "cp313-win_amd64" in err  # --hash names the requirement and the environment
    assert not (tmp_path / "tree" / "web").exists()


def test_what_cannot_be_satisfied_is_reported_by_requirement_and_environment(
    upstream: tuple[Upstream, Corpus], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    up, _ = upstream
    config = configure(tmp_path, up.url, {"requirements.txt": "leaf\nwinhelper\nnothere\n"})
    status, _, err = mirror(config, capsys, "--dry-run")
    assert status == 1
    assert "requirements.txt line 2: cp312-manylinux_2_28_x86_64: winhelper" in err
    assert "requirements.txt line 3: cp313-win_amd64: nothere is not on the upstream" in err
    assert "requirements.txt line 2: cp313-win_amd64" not in err
    assert not tree_files(tmp_path)  # a dry run downloads nothing
    status, _, err = mirror(config, capsys)
    assert status == 1
    # What can be satisfied is synced all the same.
    assert "winhelper-1.0-cp39-abi3-win_amd64.whl" in tree_files(tmp_path)


def test_incremental_changes_fetch_only_the_difference_and_the_grace_keeps_old_files(
    upstream: tuple[Upstream, Corpus], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    up, corpus = upstream
    config = configure(tmp_path, up.url, {"requirements.txt": "leaf==1.0\n"})
    assert mirror(config, capsys)[0] == 0
    assert tree_files(tmp_path) == {"leaf-1.0-py3-none-any.whl"}
    # A changed input: only the new file is downloaded.
    (tmp_path / "requirements.txt").write_text("leaf>=1.0\n")
    status, out, _ = mirror(config, capsys)
    assert status == 0
    assert "downloaded 1 files" in out, out
    # A new upstream release: only it, and only its metadata (the rest is read in the tree).
    add_project(corpus, "leaf", "3.0")
    up.reset_stats()
    status, out, _ = mirror(config, capsys)
    assert "downloaded 1 files" in out, out
    fetched_metadata = sorted(p for p in up.stats if p.endswith(".metadata"))
    assert [p.rsplit("/", 1)[1] for p in fetched_metadata] == ["leaf-3.0-py3-none-any.whl.metadata"]
    assert tree_files(tmp_path) == {f"leaf-{v}-py3-none-any.whl" for v in ("1.0", "2.0", "3.0")}
    # Files no longer needed stay for the grace...
    (tmp_path / "requirements.txt").write_text("leaf==3.0\n")
    config = configure(
        tmp_path, up.url, {"requirements.txt": "leaf==3.0\n"}, extra="grace_hours = 1\n"
    )
    status, out, _ = mirror(config, capsys)
    assert status == 0 and "downloaded 0 files" in out, out
    assert len(tree_files(tmp_path)) == 3
    # ... and without one they go at once.
    config = configure(tmp_path, up.url, {"requirements.txt": "leaf==3.0\n"})
    assert mirror(config, capsys)[0] == 0
    assert tree_files(tmp_path) == {"leaf-3.0-py3-none-any.whl"}
    # verify agrees with the tree the closure wrote.
    assert main(["verify", "--target", str(tmp_path / "tree")]) == 0


def test_a_run_that_cannot_satisfy_everything_removes_nothing(
    upstream: tuple[Upstream, Corpus], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    up, _ = upstream
    config = configure(tmp_path, up.url, {"requirements.txt": "leaf\ntzshim\n"})
    assert mirror(config, capsys)[0] == 0
    before = tree_files(tmp_path)
    assert "tzshim-1.0-py3-none-any.whl" in before
    # An input that no release satisfies any more: reported, and nothing leaves the tree.
    config = configure(tmp_path, up.url, {"requirements.txt": "leaf\ntzshim>=5\n"})
    status, _, err = mirror(config, capsys)
    assert status == 1
    assert "requirements.txt line 2: cp313-win_amd64: tzshim>=5: no release matches" in err
    assert tree_files(tmp_path) == before
    # Once the input no longer asks for it, the next clean run removes it.
    config = configure(tmp_path, up.url, {"requirements.txt": "leaf\n"})
    assert mirror(config, capsys)[0] == 0
    assert tree_files(tmp_path) == {f for f in before if f.startswith("leaf-")}
