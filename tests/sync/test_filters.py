"""Mirror filters: config validation, the project filter, and the per-page file filter."""

from __future__ import annotations

import fnmatch
import re
import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from headwater.config import parse_config
from headwater.errors import InvalidInput
from headwater.simple.model import File, ProjectPage, ProjectStatus
from headwater.simple.names import NormalizedName, normalize_name
from headwater.sync.filters import (
    DropReason,
    FilterConfig,
    InvalidFilter,
    filter_page,
    normalize_glob,
    parse_requirements,
    project_filter,
)
from headwater.sync.plan import plan_sync
from tests.simple.strategies import names, normalized_names, project_pages

DOCS = Path(__file__).parents[2] / "docs" / "filters.md"
T0 = datetime(2024, 1, 1, tzinfo=UTC)


def N(name: str) -> NormalizedName:
    return normalize_name(name)


def F(filename: str, **fields: Any) -> File:
    return File(filename=filename, url=f"https://files.example/{filename}", **fields)


def page(*files: File, versions: tuple[str, ...] | None = None, name: str = "foo") -> ProjectPage:
    return ProjectPage(name=N(name), files=files, versions=versions)


def kept(result_page: ProjectPage) -> list[str]:
    return [f.filename for f in result_page.files]


def run(p: ProjectPage, **options: Any) -> tuple[list[str], dict[str, str]]:
    result = filter_page(p, FilterConfig(**options))
    return kept(result.page), {d.file.filename: str(d.reason) for d in result.dropped}


# --- config ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("table", "message"),
    [
        pytest.param(
            {"prerelease": False},
            "unknown field `prerelease`; did you mean 'prereleases'?",
            id="unknown-key",
        ),
        pytest.param({"colour": 1}, "unknown field `colour`", id="unknown-key-no-hint"),
        pytest.param({"latest": "3"}, "Expected `int | null`", id="wrong-type"),
        pytest.param({"latest": 0}, "latest = 0", id="latest-zero"),
        pytest.param({"allow": ["not a name"]}, "allow: 'not a name'", id="bad-name"),
        pytest.param({"block": ["foo[ab]*"]}, "block: glob 'foo[ab]*'", id="char-class"),
        pytest.param({"allow": [""]}, "allow: ''", id="empty-name"),
        pytest.param({"platforms": ["Win-AMD64"]}, "platforms: 'Win-AMD64'", id="platform-chars"),
        pytest.param({"exclude_platforms": ["windows"]}, "did you mean 'win*'", id="platform-word"),
        pytest.param({"python_versions": ["3"]}, "python_versions: '3'", id="python-major-only"),
        pytest.param({"python_versions": [3.1]}, "Expected `str`", id="python-float"),
        pytest.param({"min_size": -1}, "min_size = -1", id="negative-size"),
        pytest.param({"min_size": 10, "max_size": 5}, "larger than max_size", id="size-range"),
        pytest.param({"yanked": "hide"}, "yanked", id="yanked-value"),
        pytest.param({"requirements": ["requests>>2"]}, "requirements[0]", id="bad-requirement"),
        pytest.param({"allow_requirements": [" "]}, "allow_requirements", id="empty-path"),
        pytest.param(
            {"uploaded_after": datetime(2024, 1, 1)}, "give a timezone", id="naive-datetime"
        ),
        pytest.param(
            {"uploaded_after": T0, "uploaded_before": T0}, "is not before", id="empty-window"
        ),
    ],
)
def test_bad_config_names_key_and_value(table: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidFilter, match=re.escape(message)) as info:
        FilterConfig.from_table(table)
    assert isinstance(info.value, InvalidInput)
    assert "[mirror.filters]" in str(info.value)


def test_direct_construction_validates_too() -> None:
    with pytest.raises(InvalidFilter, match="latest = -2"):
        FilterConfig(latest=-2)


def test_every_field_has_a_default_and_the_default_keeps_everything() -> None:
    config = FilterConfig.from_table({})
    assert config == FilterConfig()
    assert project_filter(config) is None
    assert set(FilterConfig.__struct_fields__) == set(msgspec.structs.asdict(config))


def test_docs_document_every_option() -> None:
    text = DOCS.read_text()
    for field in FilterConfig.__struct_fields__:
        assert f"| `{field}` |" in text, f"docs/filters.md does not document {field}"


def _doc_examples() -> list[str]:
    return re.findall(r"```toml\n(.*?)```", DOCS.read_text(), flags=re.DOTALL)


def test_docs_have_examples() -> None:
    assert len(_doc_examples()) >= 6


@pytest.mark.parametrize("example", _doc_examples())
def test_docs_examples_parse(example: str) -> None:
    # Accepted by the real config loader, under a [mirror.pypi] table like a user writes it.
    full = '[mirror.pypi]\nupstream = "https://pypi.org/simple/"\ntarget = "t"\n' + example
    assert parse_config(full).mirror["pypi"].filters is not None
    table = tomllib.loads(example)["mirror"]["pypi"]["filters"]
    config = msgspec.convert(table, FilterConfig)
    assert config == FilterConfig.from_table(table)
    assert config != FilterConfig()  # every example configures something
    texts = dict.fromkeys(config.allow_requirements, "requests\n")
    loaded = config.with_requirements(texts)
    filter_page(page(F("foo-1.0.tar.gz")), loaded)  # usable end to end
    project_filter(loaded)


# --- names and globs ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "normalized"),
    [
        ("Foo_*", "foo-*"),
        ("foo._-bar?", "foo-bar?"),
        ("Django", "django"),
        ("zope.interface", "zope-interface"),
        ("*", "*"),
    ],
)
def test_item_1_globs_are_normalized_like_names(pattern: str, normalized: str) -> None:
    assert normalize_glob(pattern) == normalized


@pytest.mark.parametrize(
    ("config", "wanted", "unwanted"),
    [
        pytest.param(
            {"allow": ["Foo_Bar", "acme-*"]},
            ["foo-bar", "acme-x", "acme-1-2"],
            ["foo", "acmex", "foo-bar-baz"],
            id="item-1-allow",
        ),
        pytest.param(
            {"block": ["evil*", "Bad.Name"]},
            ["good", "not-evil"],
            ["evil", "evil-x", "bad-name"],
            id="item-1-block",
        ),
        pytest.param(
            {"allow": ["acme-*"], "block": ["acme-secret"]},
            ["acme-public"],
            ["acme-secret", "other"],
            id="block-wins",
        ),
        pytest.param(
            {"requirements": ["Requests>=2", "numpy"]},
            ["requests", "numpy"],
            ["django"],
            id="requirements-allow",
        ),
        pytest.param(
            {"allow": ["django"], "requirements": ["numpy"], "block": ["numpy"]},
            ["django"],
            ["numpy", "flask"],
            id="allow-plus-requirements-minus-block",
        ),
        pytest.param({"allow": ["?"]}, ["a", "1"], ["ab"], id="question-mark"),
    ],
)
def test_project_filter_table(
    config: dict[str, Any], wanted: list[str], unwanted: list[str]
) -> None:
    f = project_filter(FilterConfig.from_table(config))
    assert f is not None
    assert [n for n in wanted if not f(N(n))] == []
    assert [n for n in unwanted if f(N(n))] == []


def test_no_project_filter_when_only_file_filters() -> None:
    assert project_filter(FilterConfig(latest=3, platforms=["any"])) is None


def _naive(config: FilterConfig, name: str) -> bool:
    allow = [normalize_glob(p) for p in config.allow]
    allow += [N(re.split(r"[^A-Za-z0-9._-]", r, maxsplit=1)[0]) for r in config.requirements]
    block = [normalize_glob(p) for p in config.block]
    if any(fnmatch.fnmatchcase(name, g) for g in block):
        return False
    return not allow or any(fnmatch.fnmatchcase(name, g) for g in allow)


_glob_parts = st.text(alphabet="abcAB._-*?", min_size=1, max_size=6).filter(
    lambda s: (
        any(c in s for c in "*?") or re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?", s)
    )
)


@given(
    allow=st.lists(_glob_parts, max_size=4),
    block=st.lists(_glob_parts, max_size=3),
    reqs=st.lists(names, max_size=2),
    candidates=st.lists(normalized_names, max_size=20),
)
def test_project_filter_agrees_with_naive_fnmatch_loop(
    allow: list[str], block: list[str], reqs: list[str], candidates: list[NormalizedName]
) -> None:
    config = FilterConfig(allow=tuple(allow), block=tuple(block), requirements=tuple(reqs))
    f = project_filter(config)
    extra = [N(p.replace("*", "x").replace("?", "y").strip("._-") or "a") for p in allow + block]
    for name in [*candidates, *extra]:
        expected = _naive(config, name)
        assert (f(name) if f is not None else True) is expected, name


def test_project_filter_at_pypi_scale() -> None:
    # Correctness on 700,000 names; the speed of this is measured in bench/bench_mirror.py
    # (planning at PyPI's size), not asserted here, where a loaded machine would make it flaky.
    config = FilterConfig(
        allow=["acme-*", "*-plugin", "requests", *[f"proj{i}" for i in range(500)]],
        block=["evil*", "*-nightly"],
        requirements=["django>=4"],
    )
    f = project_filter(config)
    assert f is not None
    listing = [NormalizedName(f"project-{i}-plugin" if i % 7 else f"p{i}") for i in range(700_000)]
    assert sum(1 for name in listing if f(name)) == 600_000


def test_plan_deletes_projects_a_changed_filter_no_longer_wants() -> None:
    from headwater.simple.model import ProjectList, ProjectListEntry

    upstream = ProjectList(
        projects=(ProjectListEntry("acme-a", 1), ProjectListEntry("other", 1)), last_serial=1
    )
    wanted = project_filter(FilterConfig(allow=["acme-*"]))
    plan = plan_sync(upstream, {N("acme-a"): 1, N("other"): 1}, wanted=wanted)
    assert plan.delete == ("other",)


# --- requirements ---------------------------------------------------------------------------------


def test_parse_requirements_understands_pip_files() -> None:
    text = (
        "# pinned by pip-compile\n"
        "requests==2.31.0 \\\n"
        "    --hash=sha256:aaaa \\\n"
        "    --hash=sha256:bbbb\n"
        "\n"
        "--index-url https://pypi.org/simple\n"
        "-e ./local-package\n"
        "Django>=4.2,<5  # LTS\n"
        'pywin32; sys_platform == "win32"\n'
        "attrs[tests] @ https://example.invalid/attrs.whl\n"
    )
    assert parse_requirements(text) == (
        "requests==2.31.0",
        "Django<5,>=4.2",
        'pywin32; sys_platform == "win32"',
        "attrs[tests] @ https://example.invalid/attrs.whl",
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("ok\n\nrequests>>1\n", "reqs.txt line 3"),
        ("-r other.txt\n", "includes another file"),
        ("--constraint=c.txt\n", "includes another file"),
    ],
)
def test_parse_requirements_errors_name_file_and_line(text: str, message: str) -> None:
    with pytest.raises(InvalidFilter, match=re.escape(message)):
        parse_requirements(text, source="reqs.txt")


def test_with_requirements_merges_files_and_checks_paths() -> None:
    config = FilterConfig(allow_requirements=["a.txt", "b.txt"], requirements=["numpy"])
    with pytest.raises(InvalidFilter, match="were not loaded"):
        project_filter(config)
    with pytest.raises(InvalidFilter, match="were not loaded"):
        filter_page(page(), config)
    with pytest.raises(InvalidFilter, match=r"missing: \['b.txt'\]"):
        config.with_requirements({"a.txt": "requests"})
    with pytest.raises(InvalidFilter, match=r"not listed: \['c.txt'\]"):
        config.with_requirements({"a.txt": "", "b.txt": "", "c.txt": ""})
    loaded = config.with_requirements({"a.txt": "requests>=2\n", "b.txt": "flask\n"})
    assert loaded.allow_requirements == ()
    assert loaded.requirements == ("numpy", "requests>=2", "flask")
    f = project_filter(loaded)
    assert f is not None
    assert [n for n in ("numpy", "requests", "flask", "django") if f(N(n))] == [
        "numpy",
        "requests",
        "flask",
    ]


RELEASES = page(
    F("foo-1.0.tar.gz"),
    F("foo-1.5-py3-none-any.whl"),
    F("foo-2.0rc1-py3-none-any.whl"),
    F("foo-2.0-py3-none-any.whl"),
    F("foo-2.1.dev1.tar.gz"),
    F("foo-2.0.post1.tar.gz"),
    versions=("1.0", "1.5", "2.0rc1", "2.0", "2.1.dev1", "2.0.post1"),
)


@pytest.mark.parametrize(
    ("options", "expected_versions", "reason"),
    [
        pytest.param({"requirements": ["foo>=1.5,<2"]}, ["1.5"], "requirements", id="range"),
        pytest.param(
            {"requirements": ["foo==1.0", "foo>=2"]},
            ["1.0", "2.0", "2.1.dev1", "2.0.post1"],
            "requirements",
            id="lines-union",
        ),
        pytest.param(
            {"requirements": ["foo"], "prereleases": False},
            ["1.0", "1.5", "2.0", "2.0.post1"],
            "prerelease",
            id="no-specifier",
        ),
        pytest.param(
            {"requirements": ["foo==2.0rc1", "foo<2"], "prereleases": False},
            ["1.0", "1.5", "2.0rc1"],
            "requirements",
            id="pinned-prerelease-kept",
        ),
        pytest.param(
            {"requirements": ["bar>=9"]},
            ["1.0", "1.5", "2.0rc1", "2.0", "2.1.dev1", "2.0.post1"],
            None,
            id="other-project-unrestricted",
        ),
        pytest.param(
            {"prereleases": False},
            ["1.0", "1.5", "2.0", "2.0.post1"],
            "prerelease",
            id="prereleases-false",
        ),
        pytest.param({"latest": 2}, ["2.1.dev1", "2.0.post1"], "latest", id="latest-2"),
        pytest.param(
            {"latest": 2, "prereleases": False},
            ["2.0", "2.0.post1"],
            "latest",
            id="latest-after-prereleases",
        ),
        pytest.param(
            {"latest": 2, "requirements": ["foo<2"]},
            ["1.0", "1.5"],
            "requirements",
            id="latest-req",
        ),
        pytest.param(
            {"latest": 99}, ["1.0", "1.5", "2.0rc1", "2.0", "2.1.dev1", "2.0.post1"], None, id="big"
        ),
    ],
)
def test_release_rules(
    options: dict[str, Any], expected_versions: list[str], reason: str | None
) -> None:
    result = filter_page(RELEASES, FilterConfig(**options))
    assert result.page.versions == tuple(
        v for v in RELEASES.versions or () if v in expected_versions
    )
    assert {f.filename.split("-")[1].removesuffix(".tar.gz") for f in result.page.files} == set(
        expected_versions
    )
    if reason is not None:
        assert reason in {str(d.reason) for d in result.dropped}
    else:
        assert result.dropped == ()


def test_latest_is_counted_after_file_filters() -> None:
    # The newest release has no wheel for the wanted platform: "latest 1" is the newest that has.
    p = page(
        F("foo-3.0-cp312-cp312-win_amd64.whl"),
        F("foo-2.0-cp312-cp312-manylinux_2_28_x86_64.whl"),
        F("foo-1.0-cp312-cp312-manylinux_2_28_x86_64.whl"),
    )
    names_kept, dropped = run(p, latest=1, platforms=["manylinux*"], sdists=False)
    assert names_kept == ["foo-2.0-cp312-cp312-manylinux_2_28_x86_64.whl"]
    assert dropped["foo-1.0-cp312-cp312-manylinux_2_28_x86_64.whl"] == "latest"


def test_item_55_latest_does_not_count_yanked_releases() -> None:
    p = page(
        F("foo-4.0.tar.gz", yanked=True),  # newest, yanked: kept, does not count
        F("foo-3.0.tar.gz"),
        F("foo-2.0.tar.gz", yanked=True),  # between the two kept: kept
        F("foo-1.5.tar.gz"),
        F("foo-1.0.tar.gz", yanked=True),  # older than the 2nd: dropped
        F("foo-0.9.tar.gz"),
        versions=("0.9", "1.0", "1.5", "2.0", "3.0", "4.0", "5.0"),
    )
    result = filter_page(p, FilterConfig(latest=2))
    assert kept(result.page) == [
        "foo-4.0.tar.gz",
        "foo-3.0.tar.gz",
        "foo-2.0.tar.gz",
        "foo-1.5.tar.gz",
    ]
    assert all(f.yanked for f in result.page.files if f.filename in ("foo-4.0.tar.gz",))
    # 5.0 lists no files upstream (item 30 allows it) and is newer than the floor: listed still.
    assert result.page.versions == ("1.5", "2.0", "3.0", "4.0", "5.0")


# --- file rules -----------------------------------------------------------------------------------

WHEELS = page(
    F("foo-1.0.tar.gz"),
    F("foo-1.0-py3-none-any.whl"),
    F("foo-1.0-py2.py3-none-any.whl"),
    F("foo-1.0-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"),
    F("foo-1.0-cp311-cp311-musllinux_1_1_aarch64.whl"),
    F("foo-1.0-cp311-cp311-win_amd64.whl"),
    F("foo-1.0-cp311-cp311-macosx_11_0_arm64.whl"),
    F("foo-1.0-cp38-abi3-manylinux_2_17_x86_64.whl"),
    F("foo-1.0-cp313-cp313t-manylinux_2_17_x86_64.whl"),
    F("foo-1.0-pp310-pypy310_pp73-manylinux_2_17_x86_64.whl"),
    F("foo-1.0-py27-none-any.whl"),
    versions=("1.0",),
)


@pytest.mark.parametrize(
    ("options", "dropped_substrings", "reason"),
    [
        pytest.param(
            {"platforms": ["manylinux*_x86_64"]},
            ["musllinux", "win_amd64", "macosx"],
            "platform",
            id="platforms-any-kept",
        ),
        pytest.param(
            {"platforms": ["manylinux2014_x86_64"]},
            ["musllinux", "win_amd64", "macosx", "cp38-abi3", "cp313", "pp310"],
            "platform",
            id="N2-compressed-platform-tags-one-suffices",
        ),
        pytest.param(
            {"exclude_platforms": ["win*", "macosx*"]},
            ["win_amd64", "macosx"],
            "platform",
            id="exclude",
        ),
        pytest.param(
            {"exclude_platforms": ["manylinux2014*"]},
            [],
            None,
            id="exclude-needs-every-tag",
        ),
        pytest.param(
            {"exclude_platforms": ["any"]},
            ["py3-none-any", "py2.py3-none-any", "py27-none-any"],
            "platform",
            id="exclude-any",
        ),
        pytest.param(
            {"platforms": ["win_amd64"], "exclude_platforms": ["win*"]},
            ["musllinux", "win_amd64", "macosx", "manylinux"],
            "platform",
            id="exclude-beats-platforms",
        ),
        pytest.param({"sdists": False}, [".tar.gz"], "sdist", id="no-sdists"),
        pytest.param(
            {"python_versions": ["3.12"]},
            ["cp311-cp311", "cp313", "pp310", "py27"],
            "python version",
            id="py312",
        ),
        pytest.param(
            {"python_versions": ["3.10"]},
            ["cp311-cp311", "cp313", "py27"],
            "python version",
            id="py310-pypy-counts",
        ),
        pytest.param(
            {"python_versions": ["3.7"]},
            ["cp311-cp311", "cp313", "pp310", "py27", "cp38-abi3"],
            "python version",
            id="abi3-not-backwards",
        ),
        pytest.param(
            {"python_versions": ["2.7"]},
            ["-py3-none", "cp311", "cp313", "pp310", "cp38"],
            "python version",
            id="py27",
        ),
        pytest.param(
            {"python_versions": ["3.11", "3.13"]},
            ["pp310", "py27"],
            "python version",
            id="several-versions",
        ),
    ],
)
def test_wheel_tag_filters(
    options: dict[str, Any], dropped_substrings: list[str], reason: str | None
) -> None:
    names_kept, dropped = run(WHEELS, **options)
    expected_dropped = {
        f.filename for f in WHEELS.files if any(s in f.filename for s in dropped_substrings)
    }
    assert set(dropped) == expected_dropped
    assert set(names_kept) == {f.filename for f in WHEELS.files} - expected_dropped
    if reason is not None:
        assert set(dropped.values()) == {reason}


@pytest.mark.parametrize(
    ("requires_python", "targets", "keep"),
    [
        (">=3.12", ["3.11"], False),
        (">=3.12", ["3.11", "3.12"], True),
        (">=3.11.4", ["3.11"], True),
        ("<3.11", ["3.11"], False),
        ("!=3.11.*", ["3.11"], False),
        ("==3.11.2", ["3.11"], True),
        ("~=2.7", ["3.12"], False),
        (">=3.6, <4", ["3.12"], True),
        ("not a specifier", ["3.12"], True),
    ],
)
def test_item_17_requires_python_excludes_targets(
    requires_python: str, targets: list[str], keep: bool
) -> None:
    p = page(F("foo-1.0.tar.gz", requires_python=requires_python), versions=("1.0",))
    names_kept, dropped = run(p, python_versions=targets)
    assert bool(names_kept) is keep
    if not keep:
        assert dropped == {"foo-1.0.tar.gz": "requires-python"}


def test_item_17_requires_python_ignored_without_python_versions() -> None:
    p = page(F("foo-1.0.tar.gz", requires_python=">=3.99"))
    assert filter_page(p, FilterConfig(latest=1)).page == p


LEGACY = page(
    F("foo-0.1.win32.exe"),
    F("foo-0.2-py2.7.egg"),
    F("foo-0.3.tar.bz2"),
    F("foo-0.4.linux-x86_64.tar.gz"),
    F("foo-1.0.tar.gz"),
    versions=("0.1", "0.2", "0.3", "0.4", "1.0"),
)


@pytest.mark.parametrize(
    ("options", "dropped"),
    [
        pytest.param({}, {}, id="N5-kept-by-default"),
        pytest.param({"yanked": "drop", "max_size": 10}, {}, id="N5-kept-by-other-filters"),
        pytest.param(
            {"platforms": ["any"]},
            {
                "foo-0.1.win32.exe": "legacy format",
                "foo-0.2-py2.7.egg": "legacy format",
                "foo-0.3.tar.bz2": "legacy format",
                "foo-0.4.linux-x86_64.tar.gz": "legacy format",
            },
            id="N5-dropped-by-platforms",
        ),
        pytest.param(
            {"python_versions": ["3.12"]},
            {
                "foo-0.1.win32.exe": "legacy format",
                "foo-0.2-py2.7.egg": "legacy format",
                "foo-0.3.tar.bz2": "legacy format",
                "foo-0.4.linux-x86_64.tar.gz": "legacy format",
            },
            id="N5-dropped-by-python",
        ),
        pytest.param(
            {"sdists": False},
            {
                "foo-0.3.tar.bz2": "sdist",
                "foo-0.4.linux-x86_64.tar.gz": "sdist",
                "foo-1.0.tar.gz": "sdist",
            },
            id="N5-legacy-source-archives-are-sdists",
        ),
        pytest.param(
            {"latest": 2},
            {
                "foo-0.1.win32.exe": "latest",
                "foo-0.2-py2.7.egg": "latest",
                "foo-0.3.tar.bz2": "latest",
            },
            id="N5-legacy-versions-read-from-names",
        ),
        pytest.param(
            {"requirements": ["foo==0.2"]},
            {
                "foo-0.1.win32.exe": "requirements",
                "foo-0.3.tar.bz2": "requirements",
                "foo-0.4.linux-x86_64.tar.gz": "requirements",
                "foo-1.0.tar.gz": "requirements",
            },
            id="N5-legacy-and-requirements",
        ),
    ],
)
def test_legacy_files(options: dict[str, Any], dropped: dict[str, str]) -> None:
    _, got = run(LEGACY, **options)
    assert got == dropped


def test_legacy_file_with_unreadable_version_is_judged_by_file_rules_only() -> None:
    p = page(F("foo.exe"), F("foo-latest.win32.exe"), F("foo-1.0.tar.gz"), F("foo-2.0.tar.gz"))
    names_kept, dropped = run(p, latest=1, prereleases=False)
    assert names_kept == ["foo.exe", "foo-latest.win32.exe", "foo-2.0.tar.gz"]
    assert dropped == {"foo-1.0.tar.gz": "latest"}


def test_file_of_another_project_never_crashes() -> None:
    p = page(F("bar-1.0.tar.gz"), F("foo-1.0-py3-none-any.whl"), F("garbage"))
    names_kept, dropped = run(p, platforms=["any"])
    assert names_kept == ["foo-1.0-py3-none-any.whl"]
    assert dropped == {"bar-1.0.tar.gz": "legacy format", "garbage": "legacy format"}


@pytest.mark.parametrize(
    ("options", "dropped"),
    [
        pytest.param({"min_size": 100}, {"small.tar.gz"}, id="min"),
        pytest.param({"max_size": 1000}, {"big.tar.gz"}, id="max"),
        pytest.param(
            {"min_size": 100, "max_size": 100}, {"small.tar.gz", "big.tar.gz"}, id="exact"
        ),
        pytest.param({"min_size": 0, "max_size": 10**9}, set(), id="bounds-inclusive"),
    ],
)
def test_item_37_size_filter_keeps_unknown_sizes(
    options: dict[str, Any], dropped: set[str]
) -> None:
    p = page(
        F("small.tar.gz", size=10),
        F("edge.tar.gz", size=100),
        F("big.tar.gz", size=10_000),
        F("unknown.tar.gz"),  # HTML pages carry no size
    )
    names_kept, got = run(p, **options)
    assert set(got) == dropped
    assert set(got.values()) <= {"size"}
    assert "unknown.tar.gz" in names_kept


@pytest.mark.parametrize(
    ("options", "dropped"),
    [
        pytest.param({"uploaded_after": T0}, {"old", "unknown"}, id="after-inclusive"),
        pytest.param({"uploaded_before": T0}, {"at", "new", "unknown"}, id="before-exclusive"),
        pytest.param(
            {"uploaded_after": T0 - timedelta(days=1), "uploaded_before": T0 + timedelta(days=1)},
            {"old", "new", "unknown"},
            id="window",
        ),
        pytest.param(
            {"uploaded_before": datetime(2024, 1, 1, 2, tzinfo=UTC).astimezone()},
            {"new", "unknown"},
            id="offsets-compare-as-instants",
        ),
    ],
)
def test_item_38_upload_time_window_drops_unknown(
    options: dict[str, Any], dropped: set[str]
) -> None:
    p = page(
        F("old", upload_time=T0 - timedelta(days=30)),
        F("at", upload_time=T0),
        F("new", upload_time=T0 + timedelta(days=30)),
        F("unknown"),
    )
    _, got = run(p, **options)
    assert set(got) == dropped
    assert set(got.values()) == {"upload time"}


def test_item_56_yanked_files_keep_their_flag_or_are_dropped() -> None:
    yanked = F("foo-1.0.tar.gz", yanked=True, yanked_reason="broken")
    p = page(yanked, F("foo-1.1.tar.gz"), versions=("1.0", "1.1"))
    kept_page = filter_page(p, FilterConfig(yanked="keep", max_size=10)).page
    assert kept_page.files[0] == yanked  # flag and reason mirrored with the file
    result = filter_page(p, FilterConfig(yanked="drop"))
    assert kept(result.page) == ["foo-1.1.tar.gz"]
    assert [(d.file, d.reason) for d in result.dropped] == [(yanked, DropReason.YANKED)]
    assert result.page.versions == ("1.1",)


def test_item_30_versions_pruned_to_versions_with_files() -> None:
    p = page(
        F("foo-1.0-cp311-cp311-win_amd64.whl"),
        F("foo-2.0-py3-none-any.whl"),
        versions=("1.0", "2.0", "3.0.dev1", "not-pep-440"),
    )
    result = filter_page(p, FilterConfig(platforms=["manylinux*"]))
    # 1.0 lost its only file; 3.0.dev1 never had files and no release rule refuses it.
    assert result.page.versions == ("2.0", "3.0.dev1", "not-pep-440")
    result = filter_page(p, FilterConfig(platforms=["manylinux*"], prereleases=False))
    assert result.page.versions == ("2.0",)


def test_item_30_unlisted_versions_stay_none() -> None:
    p = page(F("foo-1.0-cp311-cp311-win_amd64.whl"), F("foo-2.0.tar.gz"))
    result = filter_page(p, FilterConfig(platforms=["manylinux*"]))
    assert result.page.versions is None
    assert kept(result.page) == ["foo-2.0.tar.gz"]


def test_item_41_page_fields_other_than_files_pass_through() -> None:
    p = ProjectPage(
        name=N("foo"),
        files=(F("foo-1.0.tar.gz"), F("foo-2.0.tar.gz")),
        versions=("1.0", "2.0"),
        status=ProjectStatus.ARCHIVED,
        status_reason="moved",
        tracks=("https://pypi.org/simple/foo/",),
        last_serial=42,
    )
    result = filter_page(p, FilterConfig(latest=1))
    assert msgspec.structs.replace(result.page, files=p.files, versions=p.versions) == p
    quarantined = ProjectPage(name=N("foo"), status=ProjectStatus.QUARANTINED, versions=())
    assert filter_page(quarantined, FilterConfig(latest=1, sdists=False)).page == quarantined


def test_first_rule_is_the_reason() -> None:
    p = page(F("foo-1.0rc1-cp311-cp311-win_amd64.whl", yanked=True, size=10**10))
    _, dropped = run(p, yanked="drop", platforms=["any"], max_size=1, prereleases=False)
    assert dropped == {"foo-1.0rc1-cp311-cp311-win_amd64.whl": "yanked"}
    _, dropped = run(p, platforms=["any"], max_size=1, prereleases=False)
    assert dropped == {"foo-1.0rc1-cp311-cp311-win_amd64.whl": "platform"}
    _, dropped = run(p, max_size=1, prereleases=False)
    assert dropped == {"foo-1.0rc1-cp311-cp311-win_amd64.whl": "size"}
    _, dropped = run(p, prereleases=False)
    assert dropped == {"foo-1.0rc1-cp311-cp311-win_amd64.whl": "prerelease"}


def test_dropped_files_carry_a_detail_for_people() -> None:
    result = filter_page(WHEELS, FilterConfig(python_versions=["3.12"]))
    details = {d.file.filename: d.detail for d in result.dropped}
    assert details["foo-1.0-py27-none-any.whl"] == "tags py27-none run on none of Python 3.12"


# --- properties -----------------------------------------------------------------------------------

configs = st.builds(
    FilterConfig,
    requirements=st.lists(
        st.sampled_from(["x", "x>=1", "x<10,>=2", "x==3.*", "x!=5.0.1"]), max_size=2
    ).map(tuple),
    platforms=st.lists(st.sampled_from(["manylinux*", "any", "win*", "*x86_64"]), max_size=2).map(
        tuple
    ),
    exclude_platforms=st.lists(st.sampled_from(["manylinux_2_28*", "any"]), max_size=1).map(tuple),
    sdists=st.booleans(),
    python_versions=st.lists(st.sampled_from(["2.7", "3.8", "3.12", "3.13"]), max_size=2).map(
        tuple
    ),
    prereleases=st.booleans(),
    latest=st.none() | st.integers(1, 4),
    min_size=st.none() | st.integers(0, 2**30),
    max_size=st.none() | st.integers(2**30, 2**41),
    uploaded_after=st.none() | st.just(datetime(2040, 1, 1, tzinfo=UTC)),
    uploaded_before=st.none() | st.just(datetime(2080, 1, 1, tzinfo=UTC)),
    yanked=st.sampled_from(["keep", "drop"]),
)


def _for_project(config: FilterConfig, p: ProjectPage) -> FilterConfig:
    # Point the sampled requirements at the page's project so the specifiers are exercised.
    reqs = tuple(p.name + r[1:] for r in config.requirements)
    return msgspec.structs.replace(config, requirements=reqs)


@given(p=project_pages(), config=configs)
@settings(max_examples=300)
def test_filter_never_adds_and_accounts_for_every_file(
    p: ProjectPage, config: FilterConfig
) -> None:
    config = _for_project(config, p)
    result = filter_page(p, config)
    # Kept files are a subsequence of the page's files, untouched; dropped are the rest.
    assert [f for f in p.files if f in result.page.files] == list(result.page.files)
    assert len(result.page.files) + len(result.dropped) == len(p.files)
    assert {f.filename for f in result.page.files}.isdisjoint(
        d.file.filename for d in result.dropped
    )
    if p.versions is None:
        assert result.page.versions is None
    else:
        assert result.page.versions is not None
        assert set(result.page.versions) <= set(p.versions)
    # Item 30: every kept file still belongs to a listed version.
    if result.page.versions is not None:
        from packaging.version import Version

        listed = {Version(v) for v in result.page.versions}
        for f in result.page.files:
            assert Version(f.filename.split("-")[1].removesuffix(".tar.gz")) in listed


@given(p=project_pages(), config=configs)
@settings(max_examples=300)
def test_filter_is_idempotent(p: ProjectPage, config: FilterConfig) -> None:
    config = _for_project(config, p)
    once = filter_page(p, config)
    twice = filter_page(once.page, config)
    assert twice.page == once.page
    assert twice.dropped == ()


@given(p=project_pages())
def test_empty_config_keeps_everything(p: ProjectPage) -> None:
    result = filter_page(p, FilterConfig())
    assert result.page == p
    assert result.dropped == ()


@given(p=project_pages())
def test_inactive_rules_keep_everything(p: ProjectPage) -> None:
    # Rules that are set but cannot refuse anything behave like no rules.
    config = FilterConfig(
        min_size=0, max_size=2**41, platforms=["*"], python_versions=[], requirements=[p.name]
    )
    result = filter_page(p, config)
    assert result.page == p


@pytest.mark.parametrize(
    "fixture", [RELEASES, WHEELS, LEGACY], ids=["releases", "wheels", "legacy"]
)
@pytest.mark.parametrize(
    "options",
    [
        {"latest": 2},
        {"latest": 1, "sdists": False},
        {"platforms": ["manylinux*"], "latest": 3},
        {"requirements": ["foo<2"], "prereleases": False, "latest": 1},
        {"python_versions": ["3.11"], "yanked": "drop"},
    ],
)
def test_filter_is_idempotent_on_fixtures(fixture: ProjectPage, options: dict[str, Any]) -> None:
    config = FilterConfig(**options)
    once = filter_page(fixture, config)
    twice = filter_page(once.page, config)
    assert twice.page == once.page
    assert twice.dropped == ()
