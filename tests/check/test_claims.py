"""Every claim ``headwater check`` makes about pip and uv, against what the real tools do.

One world of real servers on loopback (tests/data/check/claims.toml, realized as the policy
scenarios are: a private hosted index 'internal' with a deleted project and a PEP 752 namespace,
a public index 'pypi', a headwater composed index 'main' over them with a cooldown and a source
that is down). For every way of pointing the installers at them (the private index first, the
public index first, the composed index alone, the composed index plus the public one) and every
project of the world, the real ``headwater check`` (``--from pip`` and ``--from uv``) says what
the installer would install (``installs``) and its verdict; the real ``pip download`` and
``uv pip compile`` are then run with the same options, isolated from this machine's
configuration. The check must name the version (and so the index: each version exists on one
index only) the tool took, or say the install fails when the tool failed, and its verdict must
fit: never ``ok`` when the tool took a public file although a private index was asked, or when
the install fails.
"""

from __future__ import annotations

import json
import re
import subprocess
import tomllib
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from headwater.simple.filenames import parse_filename
from headwater.simple.names import normalize_name
from headwater.testing import wheels
from headwater.testing.policy_scenarios import load_scenario
from tests.check.conftest import clean_env as check_env
from tests.check.conftest import run_check
from tests.clients import clean_env, make_venv
from tests.server.test_index_e2e import realize

SCENARIO = Path(__file__).resolve().parents[1] / "data" / "check" / "claims.toml"
PROJECTS = (
    "foo-bar",  # private only
    "torchtriton",  # both, the public version higher
    "newer-private",  # both, the private version higher
    "billing-client",  # deleted from the private index; the public index has it
    "corp-secret",  # in the private index's PEP 752 namespace; the public index has it
    "requests",  # public only
    "brand-new",  # public only, every file inside main's cooldown
    "half-new",  # public only, its newest file inside main's cooldown
    "nowhere-lib",  # nowhere; main refuses it with 503 (a source of it is down)
)
RISKS = {"unavailable", "confusion", "exposed", "shadowed", "unclaimed", "missing", "refused"}
RISKS |= {"cooldown"}


@dataclass
class World:
    private: str  # the hosted index 'internal'
    public: str  # the public index
    main: str  # the composed index over both
    venv: Path  # a venv with pip, for pip download
    work: Path
    links: Path  # a --find-links directory: foo-bar 1.5 (private has 1.0), half-new 1.5


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    work = tmp_path_factory.mktemp("claims")
    scenario = load_scenario(SCENARIO.read_text(), name=SCENARIO.name)
    with realize(scenario, work) as realized:
        config = tomllib.loads((work / "headwater.toml").read_text())
        base = realized.index_url.removesuffix("/main/simple/")
        links = work / "links"
        links.mkdir()
        for display, version in (("Foo_Bar", "1.5"), ("half-new", "1.5")):
            metadata = wheels.core_metadata(display, version)
            name = wheels.wheel_filename(normalize_name(display), version)
            (links / name).write_bytes(
                wheels.build_wheel(normalize_name(display), display, version, metadata=metadata)
            )
        yield World(
            private=f"{base}/internal/simple/",
            public=config["proxy"]["pypi"]["url"],
            main=realized.index_url,
            venv=make_venv(work / "venv"),
            work=work,
            links=links,
        )


def _setups(w: World) -> dict[str, tuple[str, ...]]:
    return {
        "private-then-public": ("--index-url", w.private, "--extra-index-url", w.public),
        "public-then-private": ("--index-url", w.public, "--extra-index-url", w.private),
        "main": ("--index-url", w.main),
        "main-and-public": ("--index-url", w.main, "--extra-index-url", w.public),
        "private-public-and-links": (
            *("--index-url", w.private, "--extra-index-url", w.public),
            *("--find-links", str(w.links)),
        ),
    }


def _pip(w: World, options: tuple[str, ...], project: str, home: Path) -> str | None:
    """The version ``pip download`` takes, or None when it fails."""
    got = home / "got"
    result = subprocess.run(
        [str(w.venv), "-m", "pip", "download", "--isolated", "--no-deps", "--retries", "0",
         "--timeout", "10", "-d", str(got), *options, project],
        capture_output=True, text=True, env=clean_env(home), timeout=300, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        return None
    [name] = [p.name for p in got.iterdir()]
    return str(parse_filename(name).version)


def _uv(uv: Path, options: tuple[str, ...], project: str, home: Path) -> str | None:
    """The version ``uv pip compile`` resolves, or None when it fails."""
    home.mkdir(parents=True, exist_ok=True)
    (home / "in.txt").write_text(project + "\n")
    env = clean_env(home) | {"UV_HTTP_RETRIES": "0"}
    result = subprocess.run(
        [str(uv), "pip", "compile", "--no-config", "--no-cache", "--python-version", "3.11",
         *options, str(home / "in.txt")],
        capture_output=True, text=True, env=env, timeout=300, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        return None
    [pin] = [line for line in result.stdout.splitlines() if line.startswith(f"{project}==")]
    return pin.split("==", 1)[1].strip()


def _check(w: World, options: tuple[str, ...], client: str, home: Path) -> dict[str, Any]:
    home.mkdir(parents=True, exist_ok=True)
    (home / "requirements.txt").write_text("".join(f"{p}\n" for p in PROJECTS))
    result = run_check(
        ["requirements.txt", "--from", client, "--public", w.public, "--format", "json",
         "--timeout", "10", *options],
        env=check_env(home), cwd=home,
    )  # fmt: skip
    assert result.returncode in (0, 1), result.stderr
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def _public_versions() -> dict[str, set[str]]:
    """The versions of each project on the public index (and nowhere else: the world gives
    every release to one index only), from the scenario file."""
    scenario = load_scenario(SCENARIO.read_text(), name=SCENARIO.name)
    found: dict[str, set[str]] = {}
    for source in scenario.sources:
        if source.name == "pypi":
            for project in source.projects:
                found[project.normalized] = {
                    str(parse_filename(f.filename).version) for f in project.files
                }
    return found


PUBLIC_VERSIONS = _public_versions()


def _wrong(
    finding: dict[str, Any], took: str | None, index_urls: dict[str, str], w: World
) -> list[str]:
    """What the finding says that the tool's choice (``took``: a version, None: failed)
    contradicts."""
    wrong: list[str] = []
    if took is None and finding["risk"] not in RISKS:
        wrong.append(f"the install fails, but the verdict is {finding['risk']}")
    asked_private = any(url != w.public for url in index_urls.values())
    same_release = any(
        index_urls[s["index"]] != w.public and s["highest"] == took for s in finding["served_by"]
    )  # a private (or composed) index serves that release too (the composed index proxies it)
    public = took in PUBLIC_VERSIONS.get(finding["project"], set())
    # A public release is installed that the private (or composed) index does not serve.
    flagged = {"exposed", "shadowed", "confusion"} & set(finding["risks"])
    if public and asked_private and not same_release and not flagged:
        wrong.append(f"the public file is installed, but the verdict is {finding['risks']}")
    installs = finding.get("installs") or {"indexes": [], "version": None, "why": "(none)"}
    said = installs["version"] if installs["indexes"] else None
    if said != took:
        wrong.append(f"installs {said} ({installs['why']}), the tool took {took}")
    if took is not None and said == took:
        urls = {index_urls[name] for name in installs["indexes"]}
        if public and not same_release and w.public in index_urls.values() and w.public not in urls:
            wrong.append(f"installs names {installs['indexes']}, the file is the public one")
    for client in ("pip", "uv"):
        if f"{client} would install " in finding["message"]:
            claimed = finding["message"].split(f"{client} would install ", 1)[1].split(" ", 1)[0]
            if claimed != (took or "nothing"):
                wrong.append(f"the message says {client} would install {claimed}")
    return wrong


@pytest.mark.parametrize(
    "setup",
    ["private-then-public", "public-then-private", "main", "main-and-public",
     "private-public-and-links"],
)  # fmt: skip
def test_the_check_says_what_pip_and_uv_do(
    world: World, setup: str, uv: Path, tmp_path: Path
) -> None:
    options = _setups(world)[setup]
    mismatches: list[str] = []
    took: dict[tuple[str, str], str | None] = {}  # (tool, project) -> the version it took
    for project in PROJECTS:
        took["pip", project] = _pip(world, options, project, tmp_path / f"pip-{project}")
        took["uv", project] = _uv(uv, options, project, tmp_path / f"uv-{project}")
    # --from none reads only the command line (and files) and follows pip's rules.
    for client, tool in (("pip", "pip"), ("none", "pip"), ("uv", "uv")):
        data = _check(world, options, client, tmp_path / f"check-{client}")
        assert data["client"] == client
        index_urls = {i["name"]: i["url"] for i in data["indexes"]}
        findings = {r["project"]: r for r in data["requirements"]}
        for project in PROJECTS:
            for wrong in _wrong(findings[project], took[tool, project], index_urls, world):
                mismatches.append(f"{client} {project}: {wrong}: {findings[project]['message']}")
    assert not mismatches, f"{setup}:\n" + "\n".join(mismatches)


def test_a_headwater_index_says_why_through_the_check(world: World, tmp_path: Path) -> None:
    """Refusals (409/503 with X-Headwater-Refused) carry their own message and fix, and a page a
    cooldown emptied (X-Headwater-Hidden) is said to be one, in pip mode and in uv mode."""
    for client in ("pip", "uv"):
        data = _check(world, ("--index-url", world.main), client, tmp_path / client)
        found = {r["project"]: r for r in data["requirements"]}
        deleted = found["billing-client"]
        assert deleted["risk"] == "refused", deleted
        [failure] = deleted["unavailable"]
        assert failure["error"].startswith("refused (HTTP 409 claimed): index 'main'")
        assert "HTTP 409 claimed" in deleted["message"]
        assert "'billing-client' is held by 'internal' (hosted)" in deleted["message"]
        assert deleted["advice"].startswith("publish billing-client on internal again")
        assert "make " not in deleted["advice"]
        namespaced = found["corp-secret"]
        assert namespaced["risk"] == "refused"
        assert "belongs to namespace 'corp'" in namespaced["message"], namespaced
        down = found["nowhere-lib"]
        assert down["risk"] == "unavailable", down
        assert "HTTP 503 unavailable" in down["message"] and "'down' (proxy)" in down["message"]
        assert down["advice"].startswith("no config change: retry when 'down' answers again")
        cooled = found["brand-new"]
        assert cooled["risk"] == "cooldown", cooled
        assert "cooldown; files=2; until=" in cooled["message"]
        assert "until" in cooled["advice"] or "cooldown" in cooled["advice"]
        assert found["half-new"]["risk"] == "ok"  # 1.0 is out of the cooldown: installable


def test_deleted_and_namespaced_private_names_are_exposed(world: World, tmp_path: Path) -> None:
    """For --index-url private --extra-index-url public, pip and uv install the public file of a
    name the private index deleted or holds a namespace for (test_the_check_says_what_pip_and_uv_do
    shows they do): the check never says ok there, and names the namespace when the index
    publishes it (PEP 752)."""
    options = ("--index-url", world.private, "--extra-index-url", world.public)
    for client in ("pip", "uv"):
        home = tmp_path / client
        home.mkdir()
        (home / "requirements.txt").write_text("billing-client\ncorp-secret\n")
        result = run_check(
            ["requirements.txt", "--from", client, "--public", world.public, "--format", "json",
             *options],
            env=check_env(home), cwd=home,
        )  # fmt: skip
        assert result.returncode == 1, result.stdout + result.stderr
        found = {r["project"]: r for r in json.loads(result.stdout)["requirements"]}
        deleted, namespaced = found["billing-client"], found["corp-secret"]
        assert deleted["risk"] == namespaced["risk"] == "exposed"
        assert f"{client} would install 9999.0.0 from " in deleted["message"]
        assert "the check cannot tell which from outside" in deleted["message"]
        assert "though it is in its PEP 752 namespace 'corp'" in namespaced["message"]
        assert "takes it from the public index regardless" in namespaced["message"]
        assert "publish corp-secret on " in namespaced["advice"]


def test_uv_pins_and_explicit_indexes_as_uv_lock_resolves_them(
    world: World, uv: Path, tmp_path: Path
) -> None:
    """A uv project pinning torchtriton to an explicit private index: the check (``--from auto``
    follows uv for a pyproject with [tool.uv]) says what ``uv lock`` takes for each name."""
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "app"\nversion = "0"\nrequires-python = ">=3.11"\n'
        'dependencies = ["torchtriton", "requests", "newer-private"]\n'
        f'[[tool.uv.index]]\nname = "internal"\nurl = "{world.private}"\nexplicit = true\n'
        f'[[tool.uv.index]]\nname = "pypi"\nurl = "{world.public}"\ndefault = true\n'
        '[tool.uv.sources]\ntorchtriton = { index = "internal" }\n'
    )
    result = run_check(
        ["pyproject.toml", "--public", world.public, "--format", "json"],
        env=check_env(tmp_path), cwd=tmp_path,
    )  # fmt: skip
    data = json.loads(result.stdout)
    assert data["client"] == "uv", result.stderr
    urls = {i["name"]: i["url"] for i in data["indexes"]}
    said = {
        r["project"]: (urls[r["installs"]["indexes"][0]], r["installs"]["version"])
        for r in data["requirements"]
    }
    # UV_NO_CONFIG (or UV_CONFIG_FILE) would drop the project's own [tool.uv] too: uv is kept
    # from this machine's uv.toml files by a temporary HOME and XDG directories instead.
    env = {k: v for k, v in check_env(tmp_path).items() if k != "UV_NO_CONFIG"}
    env |= {"UV_CACHE_DIR": str(tmp_path / "uv-cache"), "UV_HTTP_RETRIES": "0"}
    if Path("/etc/uv/uv.toml").exists():
        pytest.skip("this machine's /etc/uv/uv.toml would reach uv lock (it cannot be isolated)")
    locked = subprocess.run(
        [str(uv), "lock", "--no-cache", "--directory", str(tmp_path)],
        capture_output=True, text=True, env=env, timeout=300, check=False,
    )  # fmt: skip
    assert locked.returncode == 0, locked.stderr
    lock = tomllib.loads((tmp_path / "uv.lock").read_text())
    took = {
        p["name"]: (p["source"]["registry"], p["version"])
        for p in lock["package"]
        if "registry" in p.get("source", {})
    }
    assert said == took
    assert said["torchtriton"] == (world.private, "2.0.0")  # pinned: not the public 3.0.0
    assert said["newer-private"] == (
        world.public,
        "1.0",
    )  # not pinned: the explicit index is not asked
    found = {r["project"]: r for r in data["requirements"]}
    assert found["torchtriton"]["risk"] == "ok" and found["requests"]["risk"] == "ok"


@pytest.mark.parametrize("accept", ["application/vnd.pypi.simple.v1+json", "text/html"])
def test_the_composed_page_says_what_its_cooldown_hid(world: World, accept: str) -> None:
    """X-Headwater-Hidden on every rendering of a page a cooldown thinned, on no other."""
    seen = {}
    for project in ("brand-new", "half-new", "requests", "foo-bar"):
        request = urllib.request.Request(f"{world.main}{project}/", headers={"Accept": accept})
        with urllib.request.urlopen(request, timeout=30) as answer:
            seen[project] = answer.headers.get("X-Headwater-Hidden")
    assert seen["brand-new"] is not None and seen["half-new"] is not None
    assert re.fullmatch(
        r"cooldown; files=2; until=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", seen["brand-new"]
    )
    assert seen["half-new"].startswith("cooldown; files=1; until=")
    assert seen["requests"] is None and seen["foo-bar"] is None
