"""Acceptance audit of issue 14 (closure mirrors, bundles, adoption): the cases an outside suite
checks beyond what the issue lists, each found failing by driving the real commands, and kept
here so they stay fixed. Pure and fast where the mechanism is pure; the real commands where the
failure was in their wiring."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from headwater.sync.closure import Closure, compute_closure
from headwater.sync.environments import (
    Environment,
    InvalidEnvironment,
    parse_environments,
)
from headwater.sync.lockfiles import Inputs, InvalidLockfile, Locked, LockedFile, Root, read_inputs
from headwater.sync.satisfiable import dead_demands, explain
from headwater.testing.corpus import Corpus
from headwater.testing.graph import GRAPH_ROOTS, add_graph
from headwater.testing.upstream import Upstream
from tests.sync.bundles import HEADWATER
from tests.sync.test_closure import LINUX, WIN, World, sha

SHA = "ab" * 32


def complete(
    world: World, inputs: Inputs, envs: Sequence[Environment], **options: object
) -> Closure:
    """The closure, asked again until complete; a page it asks for that the world lacks is a
    project the upstream does not have."""
    pages = dict(world.pages)
    while True:
        result = compute_closure(inputs, envs, pages, world.metadata, **options)  # type: ignore[arg-type]
        if result.complete:
            return result
        assert not result.missing_metadata
        pages.update(dict.fromkeys(result.missing_pages))


def reader(files: dict[str, str]):  # type: ignore[no-untyped-def]
    def read(path: str) -> str:
        if path not in files:
            raise FileNotFoundError(2, "No such file or directory", path)
        return files[path]

    return read


# --- constraints: a marker limits where a constraint applies (pip ignores it elsewhere) ----------


def test_a_constraint_with_a_marker_applies_only_where_the_marker_holds() -> None:
    world = World().add("core", "1.0").add("core", "1.2")
    inputs = Inputs(
        roots=(Root("core", "r.txt line 1"),),
        constraints=(Root('core==1.0; sys_platform == "win32"', "c.txt line 1"),),
    )
    closure = complete(world, inputs, [LINUX, WIN])
    assert closure.files[WIN.label]["core"] == {"core-1.0-py3-none-any.whl"}
    # Before the fix the Windows-only pin applied on Linux too, and Linux lost core 1.2.
    assert closure.files[LINUX.label]["core"] == {
        "core-1.0-py3-none-any.whl",
        "core-1.2-py3-none-any.whl",
    }
    assert closure.problems == ()


# --- unsatisfiable: only what an installer cannot satisfy, not a dead end it backtracks from ----


def test_a_dead_end_an_installer_backtracks_from_is_not_reported() -> None:
    # web 2.1 needs core>=1.2, the constraint pins core==1.0: pip installs web 2.0 instead.
    world = (
        World()
        .add("core", "1.0")
        .add("core", "1.2")
        .add("web", "2.0", requires=["core>=1.0"])
        .add("web", "2.1", requires=["core>=1.2"])
    )
    inputs = Inputs(
        roots=(Root("web>=2.0", "r.txt line 1"),),
        constraints=(Root("core==1.0", "c.txt line 1"),),
    )
    closure = complete(world, inputs, [LINUX])
    assert closure.problems == ()  # before the fix: "core==1.0,>=1.2: no release matches", exit 1
    assert "web-2.0-py3-none-any.whl" in closure.files[LINUX.label]["web"]


def test_an_old_release_depending_on_a_deleted_project_is_not_a_failure() -> None:
    world = World().add("app", "1.0", requires=["gone"]).add("app", "2.0")
    closure = complete(world, Inputs(roots=(Root("app", "r.txt line 1"),)), [LINUX])
    assert closure.problems == ()


def test_a_requirement_every_candidate_of_which_is_dead_is_reported_with_the_leaf_reason() -> None:
    world = World().add("app", "1.0", requires=["mid"]).add("mid", "1.0", requires=["gone"])
    closure = complete(world, Inputs(roots=(Root("app", "r.txt line 1"),)), [LINUX, WIN])
    assert [(p.origin, p.environment, p.kind) for p in closure.problems] == [
        ("r.txt line 1", LINUX.label, "missing-project"),
        ("r.txt line 1", WIN.label, "missing-project"),
    ]
    assert "gone is not on the upstream" in closure.problems[0].detail


def test_a_platform_only_dead_end_is_reported_for_that_environment_only() -> None:
    world = (
        World()
        .add("app", "1.0", requires=["native"])
        .add("native", "1.0", tags=["cp312-cp312-win_amd64"])
    )
    closure = complete(
        world, Inputs(roots=(Root("app", "r.txt line 1"),)), [LINUX, WIN], sdists="never"
    )
    assert [(p.environment, p.kind) for p in closure.problems] == [(LINUX.label, "no-file")]


# The truth table of headwater.sync.satisfiable, row by row (its module docstring).
@pytest.mark.parametrize(
    ("failed", "candidates", "dead"),
    [
        ({"a"}, {"a": {"f": []}}, {"a"}),  # failed: dead whatever its candidates
        (set(), {"a": {}}, set()),  # no candidates known yet: alive
        (set(), {"a": {"f": []}}, set()),  # one candidate without dependencies
        ({"x"}, {"a": {"f": ["x"], "g": ["x"]}, "x": {}}, {"a", "x"}),  # all dead
        ({"x"}, {"a": {"f": ["x"], "g": []}, "x": {}}, {"x"}),  # one alive: backtrack to it
        (set(), {"a": {"f": ["b"]}, "b": {"g": ["a"]}}, set()),  # a cycle is satisfiable
        ({"x"}, {"a": {"f": ["b"]}, "b": {"g": ["x"]}, "x": {}}, {"a", "b", "x"}),  # transitive
    ],
)
def test_satisfiable_truth_table(
    failed: set[str], candidates: dict[str, dict[str, list[str]]], dead: set[str]
) -> None:
    assert dead_demands(failed, candidates) == dead


def test_explain_names_the_failed_demands_beneath() -> None:
    candidates = {"a": {"f": ["b", "y"]}, "b": {"g": ["x"]}, "x": {}, "y": {}}
    dead = dead_demands({"x", "y"}, candidates)
    assert explain("a", dead, {"x", "y"}, candidates) == ["x", "y"]
    assert explain("b", dead, {"x", "y"}, candidates) == ["x"]


# --- malformed inputs: refused naming the file, never a traceback; what cannot apply refused -----

UV_ROOT = 'version = 1\n[[package]]\nname = "svc"\nversion = "1"\nsource = { virtual = "." }\n'


@pytest.mark.parametrize(
    ("name", "text", "words"),
    [
        # uv.lock of the wrong shape crashed with AttributeError before.
        (
            "uv.lock",
            UV_ROOT + 'dependencies = [{ name = "a" }]\n[[package]]\nname = "a"\nversion = "1"\n'
            'source = { registry = "x" }\nwheels = "w"\n',
            "uv.lock package a 1 wheels: must be an array of tables",
        ),
        (
            "uv.lock",
            UV_ROOT + 'dependencies = [{ name = "a" }]\n[[package]]\nname = "a"\nversion = "1"\n'
            'source = { registry = "x" }\nwheels = ["w"]\n',
            "uv.lock package a 1 wheels: must be an array of tables",
        ),
        # ... or was read as nothing at all.
        (
            "uv.lock",
            UV_ROOT + 'dependencies = "a"\n',
            "uv.lock package svc 1 dependencies: must be an array of tables",
        ),
        (
            "uv.lock",
            UV_ROOT.replace('{ virtual = "." }', '"x"'),
            "uv.lock package svc 1: source must be a table",
        ),
        ("uv.lock", "version = 1\n", "uv.lock: no package of the workspace"),
        (
            "uv.lock",
            UV_ROOT + "[package.optional-dependencies]\nx = 'a'\n",
            "uv.lock package svc 1 [optional-dependencies] x: must be an array of tables",
        ),
        # A git dependency was silently left out; pylock.toml already refused its vcs.
        (
            "uv.lock",
            UV_ROOT + 'dependencies = [{ name = "a" }]\n[[package]]\nname = "a"\nversion = "1"\n'
            'source = { git = "https://example.com/a.git" }\n',
            "uv.lock package a 1: comes from a git source, not an index",
        ),
        (
            "uv.lock",
            UV_ROOT + 'dependencies = [{ name = "a" }]\n[[package]]\nname = "a"\nversion = "1"\n'
            'source = { registry = "x" }\nwheels = [{ url = "https://f/a-1-py3-none-any.whl", '
            'hash = "sha256:00" }]\n',
            "sha256 '00' is not 64 hex digits",
        ),
        (
            "pylock.toml",
            'lock-version = "1.0"\n[[packages]]\nname = "a"\nversion = "1"\n'
            f'wheels = [{{ name = "a-1.tar.gz", hashes = {{ sha256 = "{SHA}" }} }}]\n',
            "pylock.toml package a wheels[0]: 'a-1.tar.gz' is listed as a wheel but is not a .whl",
        ),
        (
            "pylock.toml",
            'lock-version = "1.0"\n[[packages]]\nname = "a"\nversion = "1"\nrequires-python = 3\n'
            f'wheels = [{{ name = "a-1-py3-none-any.whl", hashes = {{ sha256 = "{SHA}" }} }}]\n',
            "pylock.toml package a: requires-python must be a string",
        ),
        (
            "pylock.toml",
            'lock-version = "1.0"\n[[packages]]\nname = "a"\nversion = "1"\n'
            'wheels = [{ name = "a-1-py3-none-any.whl", hashes = { sha256 = "zz" } }]\n',
            "sha256 'zz' is not 64 hex digits",
        ),
        # dynamic dependencies were read as none.
        (
            "pyproject.toml",
            '[project]\nname = "a"\ndynamic = ["dependencies"]\n',
            "pyproject.toml [project] dynamic: dependencies are computed by the build backend",
        ),
        # VCS and archive lines: named as such (a git+https line was a PEP 508 parse error, and
        # a bare wheel filename was taken as a project name).
        (
            "r.txt",
            "ok\ngit+https://example.com/a.git#egg=a\n",
            "r.txt line 2: 'git+https://example.com/a.git#egg=a' is a path or URL",
        ),
        (
            "r.txt",
            "ok\na-1.0-py3-none-any.whl\n",
            "r.txt line 2: 'a-1.0-py3-none-any.whl' is a path",
        ),
        ("r.txt", "ok\na==1 --hash=sha256:abc\n", "r.txt line 2: a --hash=sha256:... is not 64"),
        # An include by URL was joined to the directory as a path ("https:/example.com/...").
        (
            "r.txt",
            "-r https://example.com/r.txt\n",
            "r.txt line 1: -r https://example.com/r.txt names a URL",
        ),
    ],
)
def test_malformed_inputs_are_refused_naming_the_file(name: str, text: str, words: str) -> None:
    with pytest.raises(InvalidLockfile) as caught:
        read_inputs([name], reader({name: text}))
    assert words in str(caught.value)


def test_require_hashes_in_a_requirements_file_is_accepted() -> None:
    text = f"--require-hashes\na==1.0 \\\n    --hash=sha256:{SHA}\n"
    (root,) = read_inputs(["r.txt"], reader({"r.txt": text})).roots
    assert root.requirement == "a==1.0" and root.hashes == {SHA}


def test_an_environment_refusal_names_it_once_with_one_example() -> None:
    with pytest.raises(InvalidEnvironment) as caught:
        parse_environments([{"python": "3.12", "platform": "windows"}])
    message = str(caught.value)
    # It said "environments[0]: environments: platform ... e.g. {...}; e.g. {...}".
    assert message.startswith("environments[0]: platform 'windows'"), message
    assert message.count("e.g.") == 1, message


# --- an environment "3.12" is every 3.12.z: markers on python_full_version ----------------------


@pytest.mark.parametrize(
    ("marker", "python", "taken"),
    [
        ('python_full_version >= "3.12.1"', "3.12", True),  # 3.12.1 and later need it
        ('python_full_version < "3.12.1"', "3.12", True),  # 3.12.0 needs it
        ('python_full_version >= "3.12.1" and python_full_version < "3.12.3"', "3.12", True),
        ('python_full_version == "3.12.4"', "3.12", True),
        ('python_full_version > "3.12.4" and python_full_version < "3.12.5"', "3.12", False),
        ('python_full_version >= "3.13.1"', "3.12", False),
        ('python_full_version >= "3.12.1"', "3.12.0", False),  # a named patch is that patch only
        ('python_full_version >= "3.12.1"', "3.12.7", True),
        ('python_version >= "3.12"', "3.12", True),
    ],
)
def test_a_python_series_environment_takes_what_any_of_its_patch_releases_needs(
    marker: str, python: str, taken: bool
) -> None:
    world = World().add("app", "1.0", requires=[f"dep; {marker}"]).add("dep", "1.0")
    env = Environment(python=python, platform="manylinux_2_28_x86_64")
    closure = complete(world, Inputs(roots=(Root("app", "r.txt line 1"),)), [env])
    assert ("dep" in closure.files[env.label]) is taken
    locked = Inputs(
        locked=(
            Locked(
                "dep",  # type: ignore[arg-type]
                "1.0",
                (LockedFile("dep-1.0-py3-none-any.whl", sha("dep-1.0-py3-none-any.whl"), True),),
                "uv.lock package dep 1.0",
                marker,
            ),
        )
    )
    assert ("dep" in complete(world, locked, [env]).files[env.label]) is taken


def test_uv_lock_follows_only_the_chosen_extras_and_groups_of_the_workspace() -> None:
    """`extras`/`groups` chose a pyproject.toml's groups but a uv.lock took every one of them
    (a mirror for production carried the dev tools)."""
    files = {"uv.lock": UV_LOCK_GROUPS}
    every = {p.name for p in read_inputs(["uv.lock"], reader(files)).locked}
    assert every == {"web", "speedups", "pytest"}
    none = read_inputs(["uv.lock"], reader(files), extras=(), groups=())
    assert {p.name for p in none.locked} == {"web"}
    chosen = read_inputs(["uv.lock"], reader(files), extras=("Fast",), groups=("dev",))
    assert {p.name for p in chosen.locked} == {"web", "speedups", "pytest"}


def _uv_package(name: str) -> str:
    wheel = f"{name}-1.0-py3-none-any.whl"
    return (
        f'[[package]]\nname = "{name}"\nversion = "1.0"\nsource = {{ registry = "https://x" }}\n'
        f'wheels = [{{ url = "https://f/{wheel}", hash = "sha256:{SHA}" }}]\n'
    )


UV_LOCK_GROUPS = (
    'version = 1\n[[package]]\nname = "me"\nversion = "0.1"\nsource = { editable = "." }\n'
    'dependencies = [{ name = "web" }]\n'
    '[package.optional-dependencies]\nfast = [{ name = "speedups" }]\n'
    '[package.dev-dependencies]\ndev = [{ name = "pytest" }]\n'
    + _uv_package("web")
    + _uv_package("speedups")
    + _uv_package("pytest")
)


SELF_REFERENCE = """
[project]
name = "Service"
version = "1.0"
dependencies = ["leaf"]
[project.optional-dependencies]
fast = ["app[fast]"]
color = ["cli[color]; sys_platform == 'win32'"]
all = ["service[fast,color]", "Service[all]"]
[dependency-groups]
test = ["service[all]; python_version >= '3.12'", "richtext"]
"""


def test_a_pyproject_requirement_on_the_project_itself_stands_for_its_extras() -> None:
    """`all = ["service[fast,color]"]` was followed as a project on the upstream: "service is not
    on the upstream", exit 1, for every environment."""
    files = {"pyproject.toml": SELF_REFERENCE}
    chosen = read_inputs(["pyproject.toml"], reader(files), extras=("all",), groups=())
    assert [(r.requirement, r.where) for r in chosen.roots] == [
        ("leaf", "pyproject.toml [project] dependencies"),
        (
            'cli[color]; sys_platform == "win32"',
            "pyproject.toml [project.optional-dependencies] all",
        ),
        ("app[fast]", "pyproject.toml [project.optional-dependencies] all"),
    ]
    grouped = read_inputs(["pyproject.toml"], reader(files), extras=(), groups=("test",))
    assert [r.requirement for r in grouped.roots] == [
        "leaf",
        'cli[color]; python_version >= "3.12" and sys_platform == "win32"',
        'app[fast]; python_version >= "3.12"',
        "richtext",
    ]
    assert not [r for r in grouped.roots if r.parsed.name.lower() == "service"]


def test_a_self_reference_to_an_undefined_extra_is_refused_naming_it() -> None:
    text = '[project]\nname = "me"\ndependencies = ["me[nope]"]\n'
    with pytest.raises(InvalidLockfile, match=r"pyproject.toml \[project\] dependencies: .*'nope'"):
        read_inputs(["pyproject.toml"], reader({"pyproject.toml": text}))


def test_a_dry_run_against_an_upstream_without_sizes_says_so(tmp_path: Path) -> None:
    """An HTML-only upstream gives no PEP 700 sizes: the dry run printed "0 bytes" for every
    environment; now it says the sizes are unknown (and counts files as before)."""
    corpus = Corpus()
    add_graph(corpus)
    (tmp_path / "requirements.txt").write_text("\n".join(GRAPH_ROOTS) + "\n")
    with Upstream(corpus).running() as up:
        (tmp_path / "headwater.toml").write_text(
            f'[mirror.m]\nupstream = "{up.url}/simple/"\ntarget = "tree"\n'
            'allowed_networks = ["127.0.0.0/8"]\n[mirror.m.closure]\n'
            'inputs = ["requirements.txt"]\nenvironments = [{ python = "3.12", '
            'platform = "manylinux_2_28_x86_64" }]\n'
        )

        def dry_run() -> str:
            done = subprocess.run(
                [HEADWATER, "mirror", "--dry-run", "--quiet"],
                cwd=tmp_path,
                capture_output=True,
                text=True,
                timeout=300,
                check=False,
            )
            assert done.returncode == 0, done.stdout + done.stderr
            return done.stdout

        with_sizes = dry_run()
        up.configure(json=False)
        without = dry_run()
    assert " 0 bytes" not in with_sizes and "unknown" not in with_sizes, with_sizes
    line = next(x for x in without.splitlines() if "closure cp312" in x)
    assert " 0 bytes" not in line and "bytes unknown" in line, without
    assert (
        line.split(":")[1].split(",")[0]
        == with_sizes.split("closure cp312")[1].split(":")[1].split(",")[0]
    )  # the same number of files


# --- any lockfile or pyproject.toml: read, or refused naming the file; never a traceback ---------

_KEYS = st.sampled_from(
    [
        *("name", "version", "source", "dependencies", "wheels", "sdist", "marker", "extra"),
        *("optional-dependencies", "dev-dependencies", "url", "filename", "hash", "hashes"),
        *("sha256", "registry", "virtual", "editable", "git", "requires-python", "vcs"),
        *("dynamic", "include-group", "a"),
    ]
)
_SCALARS = st.one_of(
    st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=8),
    st.integers(min_value=-(2**31), max_value=2**31),
    st.booleans(),
    st.sampled_from(["1.0", f"sha256:{SHA}", "a-1.0-py3-none-any.whl", "me", "a", "dev", ".zip"]),
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(_KEYS, inner, max_size=4)),
    max_leaves=10,
)
_PACKAGE = st.dictionaries(_KEYS, _VALUES, max_size=6)
#: A workspace package depending on "a", and packages "a" from a registry with random fields:
#: the walk reaches them, so their fields are read.
_UV_PACKAGES = st.lists(_PACKAGE, min_size=1, max_size=3).map(
    lambda found: [
        {
            "name": "me",
            "version": "0.1",
            "source": {"virtual": "."},
            "dependencies": [{"name": "a"}],
        },
        *({"name": "a", "version": "1.0", "source": {"registry": "x"}, **p} for p in found),
    ]
)


def _toml(value: object) -> str:
    """TOML for what the strategies make: inline tables and arrays, JSON-quoted strings."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    assert isinstance(value, dict)
    return "{" + ", ".join(f"{json.dumps(k)} = {_toml(v)}" for k, v in value.items()) + "}"


_DOCUMENTS = st.one_of(
    st.tuples(
        st.just("uv.lock"),
        _UV_PACKAGES.map(lambda p: {"version": 1, "package": p}),
    ),
    st.tuples(
        st.just("pylock.toml"),
        st.lists(_PACKAGE, max_size=4).map(lambda p: {"lock-version": "1.0", "packages": p}),
    ),
    st.tuples(
        st.just("pyproject.toml"),
        st.tuples(st.dictionaries(_KEYS, _VALUES, max_size=5), _VALUES).map(
            lambda t: {"project": t[0], "dependency-groups": t[1]}
        ),
    ),
)


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(_DOCUMENTS)
def test_any_input_file_is_read_or_refused_naming_it(
    document: tuple[str, dict[str, object]],
) -> None:
    """A uv.lock whose wheels were not tables raised AttributeError (found by hand, caught by
    this property too); a pyproject.toml whose [project] name is not a project name raised
    InvalidName (found by this property)."""
    name, data = document
    text = "".join(f"{json.dumps(k)} = {_toml(v)}\n" for k, v in data.items())
    try:
        read_inputs([name], reader({name: text}))
    except InvalidLockfile as exc:
        assert name in str(exc)
