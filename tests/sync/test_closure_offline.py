"""The offline proof (issue 14 §3): a closure mirror for five environments, served with no
upstream reachable, installs the requirements with real pip and real uv for every environment;
and its files contain what real ``pip download`` fetches from the upstream per environment.

The world is :func:`headwater.testing.graph.add_graph`: depth 5, extras, markers by platform,
machine and Python version, platform wheels. The mirror is built by the real ``headwater mirror``
command from a ``[mirror.NAME.closure]`` table, and served by the real ``headwater serve --tree``.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from headwater.sync.environments import Environment, expand_platform
from headwater.testing.corpus import Corpus
from headwater.testing.graph import GRAPH_ROOTS, NATIVE_PLATFORMS, add_graph
from headwater.testing.upstream import Upstream
from tests.clients import clean_env
from tests.server.live import HEADWATER, serve


@dataclass(frozen=True)
class Target:
    env: Environment
    uv_platform: str
    #: Projects an installer must end up with here, and projects it must not.
    present: frozenset[str]
    absent: frozenset[str]


_COMMON = {"app", "web", "core", "base", "leaf", "cli", "richtext"}
TARGETS = (
    Target(
        Environment(python="3.12", platform="manylinux_2_28_x86_64"),
        "x86_64-manylinux_2_28",
        frozenset(_COMMON | {"speedups"}),
        frozenset({"winhelper", "tzshim", "colorshim"}),
    ),
    Target(
        Environment(python="3.11", platform="manylinux_2_28_aarch64"),
        "aarch64-manylinux_2_28",
        frozenset(_COMMON | {"tzshim"}),
        frozenset({"winhelper", "speedups", "colorshim"}),
    ),
    Target(
        Environment(python="3.12", platform="musllinux_1_2_x86_64"),
        "x86_64-unknown-linux-musl",
        frozenset(_COMMON | {"speedups"}),
        frozenset({"winhelper", "tzshim", "colorshim"}),
    ),
    Target(
        Environment(python="3.12", platform="macosx_14_0_arm64"),
        "aarch64-apple-darwin",
        frozenset(_COMMON),
        frozenset({"winhelper", "tzshim", "speedups", "colorshim"}),
    ),
    Target(
        Environment(python="3.13", platform="win_amd64"),
        "x86_64-pc-windows-msvc",
        frozenset(_COMMON | {"winhelper", "colorshim"}),
        frozenset({"tzshim", "speedups"}),  # platform_machine is AMD64 on Windows
    ),
)
IDS = [t.env.label for t in TARGETS]


def _config(upstream: str, requirements: Path) -> str:
    envs = ",\n".join(
        f'  {{ python = "{t.env.python}", platform = "{t.env.platform}" }}' for t in TARGETS
    )
    return (
        f'[mirror.graph]\nupstream = "{upstream}"\ntarget = "tree"\n'
        'allowed_networks = ["127.0.0.0/8"]\n\n'
        f'[mirror.graph.closure]\ninputs = ["{requirements.name}"]\nenvironments = [\n{envs}\n]\n'
    )


def _pip_platform_args(env: Environment) -> list[str]:
    # pip takes --platform literally (manylinux_2_28 does not imply manylinux2014), so the
    # target's whole list is passed, as a user emulating that machine must.
    args: list[str] = []
    for platform in expand_platform(env.platform):
        args += ["--platform", platform]
    return [*args, "--python-version", env.python, "--implementation", env.implementation]


def _pip(args: list[str], home: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pip", *args, "--isolated", "--no-cache-dir"],
        env=clean_env(home),
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )


def _installed(target: Path) -> set[str]:
    """Project names of the dist-info directories an installer left in ``target``."""
    return {p.name.split("-")[0].replace("_", "-") for p in target.glob("*.dist-info")}


def _core_platforms(target: Path) -> set[str]:
    """The platform tags of the ``core`` wheel an installer unpacked into ``target``."""
    (wheel,) = target.glob("core-*.dist-info/WHEEL")
    return {
        line.split(": ", 1)[1].strip().rsplit("-", 1)[1]
        for line in wheel.read_text().splitlines()
        if line.startswith("Tag: ")
    }


@dataclass
class World:
    upstream_files: dict[str, set[str]]  # env label -> what pip download fetched upstream
    tree: Path
    mirror_url: str
    dry_run: str
    work: Path


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    work = tmp_path_factory.mktemp("closure-offline")
    (work / "requirements.txt").write_text("\n".join(GRAPH_ROOTS) + "\n")
    corpus = Corpus()
    add_graph(corpus)
    downloaded: dict[str, set[str]] = {}
    with Upstream(corpus).running() as up:
        config = work / "headwater.toml"
        config.write_text(_config(f"{up.url}/simple/", work / "requirements.txt"))
        for target in TARGETS:
            dest = work / "pip-download" / target.env.label
            result = _pip(
                [
                    "download",
                    "--index-url",
                    f"{up.url}/simple/",
                    "--only-binary",
                    ":all:",
                    *_pip_platform_args(target.env),
                    "--dest",
                    str(dest),
                    *GRAPH_ROOTS,
                ],
                work / "home-download",
            )
            assert result.returncode == 0, result.stdout + result.stderr
            downloaded[target.env.label] = {p.name for p in dest.iterdir()}
        command = [HEADWATER, "mirror", "--config", str(config), "--quiet"]
        dry = subprocess.run(
            [*command, "--dry-run"], capture_output=True, text=True, check=False, cwd=work
        )
        assert dry.returncode == 0, dry.stdout + dry.stderr
        synced = subprocess.run(command, capture_output=True, text=True, check=False, cwd=work)
        assert synced.returncode == 0, synced.stdout + synced.stderr
    # The upstream is gone from here on: every install below can only use the mirror.
    with serve(
        ["--tree", f"graph={work / 'tree'}", "--data-dir", str(work / "data")], work
    ) as live:
        yield World(downloaded, work / "tree", f"{live.url}/graph/simple/", dry.stdout, work)


def _mirrored(tree: Path) -> set[str]:
    return {p.name for p in (tree / "web" / "packages").rglob("*") if p.is_file()} - {
        p.name for p in (tree / "web" / "packages").rglob("*.metadata")
    }


@pytest.mark.parametrize("target", TARGETS, ids=IDS)
def test_pip_installs_every_environment_from_the_mirror_alone(
    world: World, target: Target, tmp_path: Path
) -> None:
    into = tmp_path / "site"
    result = _pip(
        [
            "install",
            "--index-url",
            world.mirror_url,
            "--only-binary",
            ":all:",
            *_pip_platform_args(target.env),
            "--target",
            str(into),
            *GRAPH_ROOTS,
        ],
        tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    # pip evaluates markers with the running interpreter's values even with --platform and
    # --python-version (so it picks tzshim here for 3.12, and no winhelper for Windows): only
    # uv's selection below is checked project by project. The platform wheel must be right.
    assert _core_platforms(into) <= set(expand_platform(target.env.platform)), result.stdout


@pytest.mark.parametrize("target", TARGETS, ids=IDS)
def test_uv_installs_every_environment_from_the_mirror_alone(
    world: World, target: Target, tmp_path: Path, uv: Path
) -> None:
    into = tmp_path / "site"
    result = subprocess.run(
        [
            str(uv),
            "pip",
            "install",
            "--no-config",
            "--index-url",
            world.mirror_url,
            "--python-platform",
            target.uv_platform,
            "--python-version",
            target.env.python,
            "--only-binary",
            ":all:",
            "--target",
            str(into),
            *GRAPH_ROOTS,
        ],
        env=clean_env(tmp_path),
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert _core_platforms(into) <= set(expand_platform(target.env.platform)), result.stderr
    installed = _installed(into)
    assert target.present <= installed, (installed, result.stderr)
    assert not (target.absent & installed), (installed, result.stderr)


def test_the_closure_contains_what_pip_download_fetches_per_environment(world: World) -> None:
    mirrored = _mirrored(world.tree)
    for label, files in world.upstream_files.items():
        assert files, label
        assert files <= mirrored, (label, sorted(files - mirrored))
    # What the mirror holds beyond pip's picks, and why:
    # - every other release the specifiers admit (app 1.0, web 2.0, base 1.0, core 1.0 for each
    #   platform, leaf 1.0): pip takes the newest; a client under another constraint may not;
    # - what the Windows target's markers ask for (winhelper, colorshim): pip evaluates markers
    #   with the values of the machine it runs on, this Linux one, even with --platform.
    union = set().union(*world.upstream_files.values())
    older = {"app-1.0-py3-none-any.whl", "web-2.0-py3-none-any.whl", "base-1.0-py3-none-any.whl"}
    older |= {"leaf-1.0-py3-none-any.whl"}
    older |= {f"core-1.0-cp39-abi3-{p}.whl" for p in NATIVE_PLATFORMS}
    windows_only = {"winhelper-1.0-cp39-abi3-win_amd64.whl", "colorshim-1.0-py3-none-any.whl"}
    assert mirrored - union == older | windows_only
    # Nothing the inputs cannot reach: the yanked release, the pre-release, the sdist-only
    # project, and sdists where a wheel fits are not mirrored.
    assert not [f for f in mirrored if f.startswith(("app-0.9", "web-3.0b1", "srconly"))]
    assert not [f for f in mirrored if f.endswith(".tar.gz")]


def test_dry_run_reports_files_and_bytes_per_environment(world: World) -> None:
    for target in TARGETS:
        line = next(
            line for line in world.dry_run.splitlines() if f"closure {target.env.label}:" in line
        )
        count = int(line.split(":")[1].split()[0])
        assert count >= len(target.present), line
        assert " bytes" in line
