"""The pure closure (:func:`headwater.sync.closure.compute_closure`): a truth table of what one
environment gets for one input, and hypothesis properties over random dependency graphs."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from headwater.simple.model import File, ProjectPage
from headwater.simple.names import NormalizedName, normalize_name
from headwater.sync.closure import (
    Closure,
    CoreMetadata,
    Memo,
    MetadataKey,
    compute_closure,
    parse_core_metadata,
)
from headwater.sync.environments import Environment
from headwater.sync.lockfiles import Inputs, Locked, LockedFile, Root

LINUX = Environment(python="3.12", platform="manylinux_2_28_x86_64")
LINUX311 = Environment(python="3.11", platform="manylinux_2_28_x86_64")
WIN = Environment(python="3.12", platform="win_amd64")
MAC = Environment(python="3.12", platform="macosx_14_0_arm64")


def sha(filename: str) -> str:
    return hashlib.sha256(filename.encode()).hexdigest()


class World:
    """Pages and metadata built from a compact description."""

    def __init__(self) -> None:
        self.files: dict[NormalizedName, list[File]] = {}
        self.metadata: dict[MetadataKey, CoreMetadata | None] = {}

    def add(
        self,
        name: str,
        version: str,
        *,
        requires: Sequence[str] = (),
        tags: Sequence[str] = ("py3-none-any",),
        sdist: bool = False,
        requires_python: str | None = None,
        yanked: bool = False,
        build: Sequence[str] | None = None,
    ) -> World:
        key = normalize_name(name)
        filenames = [f"{name.replace('-', '_')}-{version}-{tag}.whl" for tag in tags]
        if sdist:
            filenames.append(f"{name.replace('-', '_')}-{version}.tar.gz")
        self.files.setdefault(key, [])  # a project with no files still has a page
        for filename in filenames:
            self.files.setdefault(key, []).append(
                File(
                    filename=filename,
                    url=f"https://files.example/{filename}",
                    hashes={"sha256": sha(filename)},
                    requires_python=requires_python,
                    yanked=yanked,
                    size=100,
                )
            )
            self.metadata[(key, filename)] = CoreMetadata(
                tuple(requires),
                requires_python,
                tuple(build) if build is not None and filename.endswith(".tar.gz") else None,
            )
        return self

    @property
    def pages(self) -> dict[NormalizedName, ProjectPage | None]:
        return {n: ProjectPage(name=n, files=tuple(f)) for n, f in self.files.items()}


def close(
    world: World,
    roots: Sequence[str] = (),
    envs: Sequence[Environment] = (LINUX,),
    *,
    locked: Sequence[Locked] = (),
    pages: Mapping[NormalizedName, ProjectPage | None] | None = None,
    hashes: frozenset[str] = frozenset(),
    **options: object,
) -> Closure:
    inputs = Inputs(
        roots=tuple(Root(r, f"line {i}", hashes) for i, r in enumerate(roots)),
        locked=tuple(locked),
    )
    result = compute_closure(
        inputs,
        envs,
        world.pages if pages is None else pages,
        world.metadata,
        **options,  # type: ignore[arg-type]
    )
    assert result.complete, (result.missing_pages, result.missing_metadata)
    return result


def got(result: Closure, env: Environment = LINUX) -> set[str]:
    return {f for files in result.files[env.label].values() for f in files}


def kinds(result: Closure) -> set[str]:
    return {p.kind for p in result.problems}


def base_world() -> World:
    world = World()
    world.add("a", "1.0", requires=["b>=1"]).add("a", "2.0", requires=["b>=2"])
    world.add("b", "1.0").add("b", "2.0").add("b", "3.0rc1")
    world.add("w", "1.0", tags=["cp39-abi3-win_amd64"])
    world.add("n", "1.0", tags=["cp312-cp312-manylinux_2_17_x86_64", "cp312-cp312-win_amd64"])
    world.add("n", "1.0.1", tags=["cp311-cp311-manylinux_2_17_x86_64"], sdist=True)
    world.add("x", "1.0", requires=['w; sys_platform == "win32"', 'b; extra == "more"'])
    world.add("old", "1.0", yanked=True).add("old", "0.9")
    world.add("py", "1.0", requires_python=">=3.13").add("py", "0.5", requires_python=">=3.8")
    return world


# (case, roots, environment, options, files expected in that environment, problem kinds)
TABLE: list[tuple[str, list[str], Environment, dict[str, object], set[str], set[str]]] = [
    (
        "every admitted release, and the dependencies of each",
        ["a"],
        LINUX,
        {},
        {
            "a-1.0-py3-none-any.whl",
            "a-2.0-py3-none-any.whl",
            "b-1.0-py3-none-any.whl",
            "b-2.0-py3-none-any.whl",
        },
        set(),
    ),
    (
        "a specifier narrows the releases and so the dependencies",
        ["a>=2"],
        LINUX,
        {},
        {"a-2.0-py3-none-any.whl", "b-2.0-py3-none-any.whl"},
        set(),
    ),
    (
        "a pre-release is taken only when the specifier names one",
        ["b>=3.0rc1"],
        LINUX,
        {},
        {"b-3.0rc1-py3-none-any.whl"},
        set(),
    ),
    (
        "prereleases = true admits pre-releases everywhere",
        ["b>=2"],
        LINUX,
        {"prereleases": True},
        {"b-2.0-py3-none-any.whl", "b-3.0rc1-py3-none-any.whl"},
        set(),
    ),
    ("a yanked release is skipped", ["old"], LINUX, {}, {"old-0.9-py3-none-any.whl"}, set()),
    (
        "a yanked release pinned with == is kept (PEP 592)",
        ["old==1.0"],
        LINUX,
        {},
        {"old-1.0-py3-none-any.whl"},
        set(),
    ),
    (
        "a root marker false in the environment",
        ['a; sys_platform == "win32"'],
        LINUX,
        {},
        set(),
        set(),
    ),
    ("a dependency marker false here", ["x"], LINUX, {}, {"x-1.0-py3-none-any.whl"}, set()),
    (
        "a dependency marker true here",
        ["x"],
        WIN,
        {},
        {"x-1.0-py3-none-any.whl", "w-1.0-cp39-abi3-win_amd64.whl"},
        set(),
    ),
    (
        "an extra's dependency only when the extra is asked for",
        ["x[more]"],
        LINUX,
        {},
        {"x-1.0-py3-none-any.whl", "b-1.0-py3-none-any.whl", "b-2.0-py3-none-any.whl"},
        set(),
    ),
    ("a wheel for another platform only", ["w"], LINUX, {}, set(), {"no-file"}),
    (
        "wheels by tag and Python; the sdist where no wheel fits",
        ["n"],
        LINUX,
        {},
        {"n-1.0-cp312-cp312-manylinux_2_17_x86_64.whl", "n-1.0.1.tar.gz"},
        set(),
    ),
    (
        "the cp311 wheel on 3.11, so no sdist",
        ["n"],
        LINUX311,
        {},
        {"n-1.0.1-cp311-cp311-manylinux_2_17_x86_64.whl"},
        set(),
    ),
    (
        "sdists = never: a release without a fitting wheel is left out",
        ["n>1.0"],
        LINUX,
        {"sdists": "never"},
        set(),
        {"no-file"},
    ),
    (
        "sdists = always: the sdist too",
        ["n==1.0.1"],
        LINUX311,
        {"sdists": "always"},
        {"n-1.0.1-cp311-cp311-manylinux_2_17_x86_64.whl", "n-1.0.1.tar.gz"},
        set(),
    ),
    (
        "Requires-Python leaves a release out",
        ["py"],
        LINUX,
        {},
        {"py-0.5-py3-none-any.whl"},
        set(),
    ),
    ("a project the upstream lacks", ["ghost"], LINUX, {}, set(), {"missing-project"}),
    ("no release matches", ["a>=9"], LINUX, {}, set(), {"no-file"}),
    (
        "roots that no single release satisfies",
        ["b==1.0", "b==2.0"],
        LINUX,
        {},
        {"b-1.0-py3-none-any.whl", "b-2.0-py3-none-any.whl"},
        {"conflict"},
    ),
]


@pytest.mark.parametrize(
    ("roots", "env", "options", "expected", "problems"),
    [row[1:] for row in TABLE],
    ids=[row[0] for row in TABLE],
)
def test_truth_table(
    roots: list[str],
    env: Environment,
    options: dict[str, object],
    expected: set[str],
    problems: set[str],
) -> None:
    world = base_world()
    world.add("ghost-free", "1.0")
    pages = dict(world.pages)
    pages[normalize_name("ghost")] = None
    result = close(world, roots, (env,), pages=pages, **options)
    assert got(result, env) == expected
    assert kinds(result) == problems


def test_problems_name_the_input_and_the_environment() -> None:
    result = close(base_world(), ["w"], (LINUX, WIN))
    (problem,) = result.problems
    assert problem.origin == "line 0"
    assert problem.environment == LINUX.label
    assert "w" in problem.detail
    assert got(result, WIN) == {"w-1.0-cp39-abi3-win_amd64.whl"}


def test_cycles_terminate() -> None:
    world = World().add("p", "1.0", requires=["q"]).add("q", "1.0", requires=["p[x]"])
    assert got(close(world, ["p"])) == {"p-1.0-py3-none-any.whl", "q-1.0-py3-none-any.whl"}


def test_build_requirements_of_an_included_sdist_only_when_asked() -> None:
    world = World().add("s", "1.0", tags=(), sdist=True, build=["backend>=1"])
    world.add("backend", "1.0")
    assert got(close(world, ["s"])) == {"s-1.0.tar.gz"}
    assert got(close(world, ["s"], build_requirements=True)) == {
        "s-1.0.tar.gz",
        "backend-1.0-py3-none-any.whl",
    }


def test_hash_options_keep_only_those_files_and_refuse_a_mismatch() -> None:
    world = base_world()
    chosen = frozenset({sha("b-2.0-py3-none-any.whl")})
    assert got(close(world, ["b==2.0"], hashes=chosen)) == {"b-2.0-py3-none-any.whl"}
    wrong = frozenset({"0" * 64})
    result = close(world, ["b==2.0"], hashes=wrong)
    assert got(result) == set()
    assert kinds(result) == {"hash-mismatch"}


def locked(
    name: str, version: str, *files: tuple[str, str | None], marker: str | None = None
) -> Locked:
    return Locked(
        normalize_name(name),
        version,
        tuple(LockedFile(f, h, f.endswith(".whl")) for f, h in files),
        f"pylock.toml package {name}",
        marker,
    )


def test_locked_files_are_taken_as_listed_and_checked_against_the_upstream() -> None:
    world = base_world()
    wheel = "n-1.0-cp312-cp312-manylinux_2_17_x86_64.whl"
    win = "n-1.0-cp312-cp312-win_amd64.whl"
    ok = locked("n", "1.0", (wheel, sha(wheel)), (win, sha(win)))
    result = close(world, locked=[ok], envs=(LINUX, WIN))
    assert got(result, LINUX) == {wheel}
    assert got(result, WIN) == {win}
    assert not result.problems
    # No recursion: b is not followed from a locked a.
    a = "a-2.0-py3-none-any.whl"
    assert got(close(world, locked=[locked("a", "2.0", (a, sha(a)))])) == {a}


@pytest.mark.parametrize(
    ("entry", "kind"),
    [
        (("b-2.0-py3-none-any.whl", "f" * 64), "hash-mismatch"),
        (("b-2.5-py3-none-any.whl", "f" * 64), "missing-file"),
    ],
)
def test_a_locked_file_that_differs_from_the_upstream_is_a_problem_naming_it(
    entry: tuple[str, str], kind: str
) -> None:
    result = close(base_world(), locked=[locked("b", "2.0", entry)])
    (problem,) = result.problems
    assert problem.kind == kind
    assert entry[0] in problem.detail
    assert problem.origin == "pylock.toml package b"
    assert got(result) == set()


@pytest.mark.parametrize("marker", [None, 'sys_platform == "cygwin"'])
def test_a_locked_file_no_environment_takes_is_checked_all_the_same(marker: str | None) -> None:
    """The sdist is not taken (a wheel fits), or the package is for no listed environment: a
    wrong sha256 for it still refuses the lockfile."""
    wheel, sdist = "n-1.0.1-cp311-cp311-manylinux_2_17_x86_64.whl", "n-1.0.1.tar.gz"
    entry = locked("n", "1.0.1", (wheel, sha(wheel)), (sdist, "e" * 64), marker=marker)
    result = close(base_world(), locked=[entry], envs=(LINUX311,))
    assert got(result, LINUX311) == (set() if marker else {wheel})
    (problem,) = result.problems
    assert (problem.kind, problem.environment) == ("hash-mismatch", "every environment")
    assert sdist in problem.detail


def test_a_locked_marker_chooses_environments() -> None:
    w = "w-1.0-cp39-abi3-win_amd64.whl"
    entry = locked("w", "1.0", (w, sha(w)), marker='sys_platform == "win32"')
    result = close(base_world(), locked=[entry], envs=(LINUX, WIN))
    assert got(result, LINUX) == set()
    assert got(result, WIN) == {w}
    assert not result.problems


def test_it_asks_for_what_it_lacks_then_completes() -> None:
    world = base_world()
    inputs = Inputs(roots=(Root("a>=2", "line 1"),))
    first = compute_closure(inputs, (LINUX,), {}, {})
    assert first.missing_pages == {"a"} and not first.missing_metadata
    pages = {"a": world.pages[normalize_name("a")]}
    second = compute_closure(inputs, (LINUX,), pages, {})  # type: ignore[arg-type]
    assert second.missing_metadata == {("a", "a-2.0-py3-none-any.whl")}
    metadata = {k: v for k, v in world.metadata.items() if k[0] == "a"}
    third = compute_closure(inputs, (LINUX,), pages, metadata)  # type: ignore[arg-type]
    assert third.missing_pages == {"b"}


def test_unreadable_metadata_is_a_problem() -> None:
    world = World().add("a", "1.0")
    world.metadata[(normalize_name("a"), "a-1.0-py3-none-any.whl")] = None
    assert kinds(close(world, ["a"])) == {"bad-metadata"}


def test_core_metadata_parsing() -> None:
    data = (
        b"Metadata-Version: 2.1\nName: a\nVersion: 1\nRequires-Python: >=3.9\n"
        b"Requires-Dist: b>=1\nRequires-Dist: c; extra == 'x'\n\nbody Requires-Dist: nope\n"
    )
    parsed = parse_core_metadata(data)
    assert parsed.requires_dist == ("b>=1", "c; extra == 'x'")
    assert parsed.requires_python == ">=3.9"


# --- properties over random graphs ----------------------------------------------------------------

NAMES = ["p0", "p1", "p2", "p3", "p4", "p5"]
MARKERS = ["", '; sys_platform == "win32"', '; python_version < "3.12"', '; extra == "e"']
TAGS = [
    "py3-none-any",
    "cp39-abi3-win_amd64",
    "cp39-abi3-manylinux_2_17_x86_64",
    "cp312-cp312-macosx_11_0_arm64",
]
ENVS = (LINUX, LINUX311, WIN, MAC)


@st.composite
def worlds(draw: st.DrawFn) -> World:
    world = World()
    for name in NAMES:
        for version in draw(st.sets(st.sampled_from(["1.0", "1.1", "2.0"]), min_size=1)):
            deps = draw(
                st.lists(
                    st.tuples(
                        st.sampled_from(NAMES),
                        st.sampled_from(["", ">=1.1", "<2"]),
                        st.sampled_from(MARKERS),
                    ),
                    max_size=3,
                )
            )
            world.add(
                name,
                version,
                requires=[f"{n}{s}{m}" for n, s, m in deps],
                tags=draw(st.sets(st.sampled_from(TAGS), min_size=0, max_size=2)),
                sdist=draw(st.booleans()),
            )
    return world


roots_strategy = st.lists(
    st.tuples(st.sampled_from(NAMES), st.sampled_from(["", "[e]", ">=2", "<1.1"])).map("".join),
    min_size=1,
    max_size=3,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(worlds(), roots_strategy, st.sampled_from(["fallback", "always", "never"]))
def test_properties(world: World, roots: list[str], sdists: str) -> None:
    together = close(world, roots, ENVS, sdists=sdists)
    pages = world.pages
    for env in ENVS:
        # Environments do not influence each other: computed alone, the same answer.
        alone = close(world, roots, (env,), sdists=sdists)
        assert alone.files[env.label] == together.files[env.label]
        for name, filenames in together.files[env.label].items():
            page = pages[name]
            assert page is not None
            listed = {f.filename for f in page.files}
            for filename in filenames:
                # Every file is on its page, installs here (or is an sdist), and is not yanked.
                assert filename in listed
                if filename.endswith(".whl"):
                    assert any(
                        f"-{tag}.whl" in filename
                        for tag in TAGS
                        if any(str(t) == tag for t in env.tags)
                    ), (filename, env.label)
                else:
                    assert sdists != "never"
    # More inputs never take a file away (the closure is monotone), and order does not matter.
    more = close(world, [*roots, NAMES[0]], ENVS, sdists=sdists)
    for label, projects in together.files.items():
        for name, filenames in projects.items():
            assert filenames <= more.files[label].get(name, frozenset())
    assert close(world, list(reversed(roots)), ENVS, sdists=sdists).files == together.files


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(worlds(), roots_strategy)
def test_asking_round_by_round_with_a_memo_gives_the_same_answer(
    world: World, roots: list[str]
) -> None:
    """What the fetching driver does: start knowing nothing, add what each answer asks for,
    keep the memo between calls; the end is the answer computed with everything known."""
    inputs = Inputs(roots=tuple(Root(r, f"line {i}") for i, r in enumerate(roots)))
    all_pages = world.pages
    pages: dict[NormalizedName, ProjectPage | None] = {}
    metadata: dict[MetadataKey, CoreMetadata | None] = {}
    memo: Memo = {}
    for _ in range(100):
        answer = compute_closure(inputs, ENVS, pages, metadata, memo=memo)
        if answer.complete:
            break
        for name in answer.missing_pages:
            pages[name] = all_pages.get(name)
        for key in answer.missing_metadata:
            metadata[key] = world.metadata[key]
    else:
        raise AssertionError("never complete")
    assert answer == compute_closure(inputs, ENVS, all_pages, world.metadata)
