"""Inputs of a closure mirror: requirements files, pyproject.toml, pylock.toml, uv.lock; and the
target environments' tags and markers."""

from __future__ import annotations

import pytest

from headwater.sync.closure_config import ClosureConfig, GraceRecord, apply_grace
from headwater.sync.environments import Environment, InvalidEnvironment, expand_platform
from headwater.sync.lockfiles import (
    InvalidLockfile,
    constraint_specifiers,
    input_kind,
    read_inputs,
)


def reader(files: dict[str, str]):  # type: ignore[no-untyped-def]
    def read(path: str) -> str:
        if path not in files:
            raise FileNotFoundError(2, "No such file or directory")
        return files[path]

    return read


def test_requirements_with_includes_markers_hashes_and_constraints() -> None:
    files = {
        "req/main.txt": (
            "# comment\n"
            "-r common.txt\n"
            "-c ../constraints.txt\n"
            "--pre\n"
            'web[fast]>=2 ; sys_platform != "win32"  # trailing comment\n'
            "core==1.2 \\\n    --hash=sha256:"
            + "A" * 64
            + " \\\n    --hash=sha256:"
            + "b" * 64
            + "\n"
            "--only-binary :all:\n"
        ),
        "req/common.txt": "leaf\n",
        "constraints.txt": "leaf<3\n",
    }
    inputs = read_inputs(["req/main.txt"], reader(files))
    roots = {r.requirement: r for r in inputs.roots}
    assert set(roots) == {'web[fast]>=2; sys_platform != "win32"', "core==1.2", "leaf"}
    assert roots["core==1.2"].hashes == {"a" * 64, "b" * 64}
    assert roots["leaf"].where == "req/common.txt line 1"
    assert roots["core==1.2"].where == "req/main.txt line 6"
    assert inputs.prereleases
    assert str(constraint_specifiers(inputs)["leaf"]) == "<3"


@pytest.mark.parametrize(
    ("line", "words"),
    [
        ("--index-url https://elsewhere/simple/", "--index-url"),
        ("--extra-index-url=https://elsewhere/simple/", "--extra-index-url"),
        ("-f ./wheels", "--find-links"),
        ("--no-index", "--no-index"),
        ("-e ./src", "--editable"),
        ("./local/pkg", "path or URL"),
        ("pkg @ https://example.com/pkg-1.0.tar.gz", "names a URL"),
        ("--weird-option", "not understood"),
        ("pkg==1.0 --hash=md5:abcdef", "sha256"),
        ("not a requirement!!", "PEP 508"),
        ("-r missing.txt", "cannot read"),
        ("-r req.txt", "includes itself"),
    ],
)
def test_requirements_refuse_what_a_mirror_cannot_honour_naming_the_line(
    line: str, words: str
) -> None:
    files = {"req.txt": f"ok\n{line}\n"}
    with pytest.raises(InvalidLockfile) as caught:
        read_inputs(["req.txt"], reader(files))
    message = str(caught.value)
    assert words in message
    assert "req.txt" in message
    if "cannot read" not in message and "includes itself" not in message:
        assert "line 2" in message


PYPROJECT = """
[project]
name = "me"
dependencies = ["web>=2", "core; platform_machine == 'x86_64'"]
[project.optional-dependencies]
fast = ["speedups"]
docs = ["sphinxish"]
[dependency-groups]
test = ["pytestish", {include-group = "lint"}]
lint = ["ruffish"]
"""


def test_pyproject_dependencies_extras_and_dependency_groups() -> None:
    read = reader({"pyproject.toml": PYPROJECT})
    every = {r.requirement for r in read_inputs(["pyproject.toml"], read).roots}
    assert every == {
        "web>=2",
        'core; platform_machine == "x86_64"',
        "speedups",
        "sphinxish",
        "pytestish",
        "ruffish",
    }
    chosen = read_inputs(["pyproject.toml"], read, extras=("fast",), groups=("lint",))
    assert {r.requirement for r in chosen.roots} == {
        "web>=2",
        'core; platform_machine == "x86_64"',
        "speedups",
        "ruffish",
    }


def test_pyproject_include_group_loop_is_refused() -> None:
    text = '[dependency-groups]\na = [{include-group = "b"}]\nb = [{include-group = "a"}]\n'
    with pytest.raises(InvalidLockfile, match="loops"):
        read_inputs(["pyproject.toml"], reader({"pyproject.toml": text}))


PYLOCK = """
lock-version = "1.0"
created-by = "test"
[[packages]]
name = "Core"
version = "1.2"
marker = "sys_platform == 'linux'"
wheels = [
  { url = "https://files.example/core-1.2-cp39-abi3-win_amd64.whl", hashes = { sha256 = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA" } },
  { name = "core-1.2-py3-none-any.whl", url = "https://x/y", hashes = { sha256 = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb" } },
]
sdist = { url = "https://files.example/core-1.2.tar.gz", hashes = { sha256 = "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc" } }
"""


def test_pylock_packages_files_and_hashes() -> None:
    (package,) = read_inputs(["pylock.toml"], reader({"pylock.toml": PYLOCK})).locked
    assert package.name == "core" and package.version == "1.2"
    assert package.marker == "sys_platform == 'linux'"
    assert [(f.filename, f.sha256, f.is_wheel) for f in package.files] == [
        ("core-1.2-cp39-abi3-win_amd64.whl", "aa" * 32, True),
        ("core-1.2-py3-none-any.whl", "bb" * 32, True),
        ("core-1.2.tar.gz", "cc" * 32, False),
    ]


@pytest.mark.parametrize(
    ("text", "words"),
    [
        (PYLOCK.replace('"1.0"', '"2.0"'), "lock-version"),
        (
            PYLOCK.replace(
                'sha256 = "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"',
                'md5 = "cc"',
            ),
            "no sha256",
        ),
        (PYLOCK.replace('version = "1.2"\n', ""), "no version"),
        ('lock-version = "1.0"\n[[packages]]\nname = "x"\nversion = "1"\nvcs = {}\n', "vcs"),
        ("lock-version = [", "not valid TOML"),
        (
            PYLOCK.replace("core-1.2-py3-none-any.whl", "core\\u001b[31m.whl"),
            "not a wheel or sdist",
        ),
    ],
)
def test_pylock_refusals_name_the_file(text: str, words: str) -> None:
    with pytest.raises(InvalidLockfile) as caught:
        read_inputs(["pylock.toml"], reader({"pylock.toml": text}))
    assert words in str(caught.value)
    assert "pylock.toml" in str(caught.value)


UV_LOCK = """
version = 1
requires-python = ">=3.11"

[[package]]
name = "me"
version = "0.1.0"
source = { editable = "." }
dependencies = [
    { name = "web" },
    { name = "winhelper", marker = "sys_platform == 'win32'" },
]
[package.optional-dependencies]
fast = [{ name = "speedups", marker = "platform_machine == 'x86_64'" }]

[[package]]
name = "web"
version = "2.1"
source = { registry = "https://pypi.org/simple" }
dependencies = [{ name = "core" }]
wheels = [{ url = "https://f/web-2.1-py3-none-any.whl", hash = "sha256:1111111111111111111111111111111111111111111111111111111111111111", size = 1 }]

[[package]]
name = "core"
version = "1.2"
source = { registry = "https://pypi.org/simple" }
sdist = { url = "https://f/core-1.2.tar.gz", hash = "sha256:2222222222222222222222222222222222222222222222222222222222222222", size = 1 }
wheels = [{ url = "https://f/core-1.2-cp39-abi3-win_amd64.whl", hash = "sha256:3333333333333333333333333333333333333333333333333333333333333333", size = 1 }]

[[package]]
name = "winhelper"
version = "1.0"
source = { registry = "https://pypi.org/simple" }
wheels = [{ url = "https://f/winhelper-1.0-cp39-abi3-win_amd64.whl", hash = "sha256:4444444444444444444444444444444444444444444444444444444444444444", size = 1 }]

[[package]]
name = "speedups"
version = "1.0"
source = { registry = "https://pypi.org/simple" }
wheels = [{ url = "https://f/speedups-1.0-py3-none-any.whl", hash = "sha256:5555555555555555555555555555555555555555555555555555555555555555", size = 1 }]

[[package]]
name = "unreached"
version = "1.0"
source = { registry = "https://pypi.org/simple" }
wheels = [{ url = "https://f/unreached-1.0-py3-none-any.whl", hash = "sha256:6666666666666666666666666666666666666666666666666666666666666666", size = 1 }]
"""


def test_uv_lock_walks_the_graph_from_the_workspace_with_markers() -> None:
    locked = read_inputs(["uv.lock"], reader({"uv.lock": UV_LOCK})).locked
    by_name = {p.name: p for p in locked}
    assert set(by_name) == {"web", "core", "winhelper", "speedups"}  # not "me", not "unreached"
    assert by_name["web"].marker is None and by_name["core"].marker is None
    assert by_name["winhelper"].marker == "(sys_platform == 'win32')"
    assert by_name["speedups"].marker == "(platform_machine == 'x86_64')"
    assert [f.filename for f in by_name["core"].files] == [
        "core-1.2-cp39-abi3-win_amd64.whl",
        "core-1.2.tar.gz",
    ]
    assert by_name["core"].files[1].sha256 == "22" * 32


def test_uv_lock_without_sha256_is_refused() -> None:
    text = UV_LOCK.replace(
        'hash = "sha256:1111111111111111111111111111111111111111111111111111111111111111"',
        'hash = "md5:11"',
    )
    with pytest.raises(InvalidLockfile, match=r"uv\.lock package web 2\.1"):
        read_inputs(["uv.lock"], reader({"uv.lock": text}))


@pytest.mark.parametrize(
    ("path", "kind"),
    [
        ("requirements.txt", "requirements"),
        ("dev.in", "requirements"),
        ("sub/pyproject.toml", "pyproject"),
        ("pylock.toml", "pylock"),
        ("pylock.prod.toml", "pylock"),
        ("uv.lock", "uv-lock"),
    ],
)
def test_input_kinds(path: str, kind: str) -> None:
    assert input_kind(path) == kind


def test_unknown_input_kind_is_refused() -> None:
    with pytest.raises(InvalidLockfile, match=r"Pipfile\.lock"):
        input_kind("Pipfile.lock")


# --- environments ---------------------------------------------------------------------------------

ENV_TABLE = [
    # platform, python, sys_platform, machine, a tag it installs, a tag it does not
    (
        "manylinux_2_28_x86_64",
        "3.12",
        "linux",
        "x86_64",
        "cp312-cp312-manylinux2014_x86_64",
        "cp312-cp312-manylinux_2_31_x86_64",
    ),
    (
        "manylinux_2_28_aarch64",
        "3.11",
        "linux",
        "aarch64",
        "cp39-abi3-manylinux_2_17_aarch64",
        "cp311-cp311-manylinux_2_28_x86_64",
    ),
    (
        "musllinux_1_2_aarch64",
        "3.12",
        "linux",
        "aarch64",
        "py3-none-musllinux_1_1_aarch64",
        "cp312-cp312-manylinux_2_17_aarch64",
    ),
    (
        "macosx_14_0_arm64",
        "3.12",
        "darwin",
        "arm64",
        "cp312-cp312-macosx_11_0_universal2",
        "cp312-cp312-macosx_15_0_arm64",
    ),
    ("win_amd64", "3.13", "win32", "AMD64", "cp39-abi3-win_amd64", "cp313-cp313-win32"),
    ("win32", "3.12", "win32", "x86", "cp312-cp312-win32", "cp311-cp311-win32"),
    ("linux_x86_64", "3.12", "linux", "x86_64", "py3-none-any", "cp312-cp312-manylinux1_x86_64"),
]


@pytest.mark.parametrize(("platform", "python", "sys_platform", "machine", "yes", "no"), ENV_TABLE)
def test_environment_tags_and_markers(
    platform: str, python: str, sys_platform: str, machine: str, yes: str, no: str
) -> None:
    env = Environment(python=python, platform=platform)
    assert env.markers["sys_platform"] == sys_platform
    assert env.markers["platform_machine"] == machine
    assert env.markers["python_version"] == python
    assert yes in {str(t) for t in env.tags}
    assert no not in {str(t) for t in env.tags}


def test_pypy_tags() -> None:
    env = Environment(python="3.10", platform="manylinux_2_28_x86_64", implementation="pp")
    assert "pp310-pypy310_pp73-manylinux_2_17_x86_64" in {str(t) for t in env.tags}
    assert env.markers["implementation_name"] == "pypy"


def test_manylinux_expansion_keeps_legacy_aliases() -> None:
    assert expand_platform("manylinux2014_x86_64")[:2] == [
        "manylinux_2_17_x86_64",
        "manylinux2014_x86_64",
    ]
    assert "manylinux1_x86_64" in expand_platform("manylinux_2_28_x86_64")


@pytest.mark.parametrize(
    ("table", "words"),
    [
        ({"python": "3.1O", "platform": "win_amd64"}, "not a Python 3 version"),
        ({"python": "3.12", "platform": "windows"}, "win_amd64"),
        ({"python": "3.12", "platform": "win_amd64", "implementation": "jy"}, "'cp'"),
    ],
)
def test_bad_environments_say_what_to_write(table: dict[str, str], words: str) -> None:
    with pytest.raises(InvalidEnvironment, match=words):
        Environment(**table)


def test_closure_config_needs_inputs_and_environments() -> None:
    env = Environment(python="3.12", platform="win_amd64")
    with pytest.raises(ValueError, match="give inputs"):
        ClosureConfig(environments=[env])
    with pytest.raises(ValueError, match="give environments"):
        ClosureConfig(requirements=["a"])
    with pytest.raises(ValueError, match="listed twice"):
        ClosureConfig(requirements=["a"], environments=[env, env])
    with pytest.raises(ValueError, match="Pipfile"):
        ClosureConfig(inputs=["Pipfile"], environments=[env])


def test_grace_keeps_files_no_longer_needed_for_a_while() -> None:
    hour = 3600.0
    needed = {"a": frozenset({"a-2.whl"})}
    first, record = apply_grace(GraceRecord(), needed, now=0, grace_seconds=2 * hour)  # type: ignore[arg-type]
    assert first == needed
    # a-2 is replaced by a-3: a-2 stays for the grace, then goes.
    later = {"a": frozenset({"a-3.whl"})}
    second, record = apply_grace(record, later, now=hour, grace_seconds=2 * hour)  # type: ignore[arg-type]
    assert second == {"a": frozenset({"a-2.whl", "a-3.whl"})}
    third, record = apply_grace(record, later, now=2.5 * hour, grace_seconds=2 * hour)  # type: ignore[arg-type]
    assert third == {"a": frozenset({"a-2.whl", "a-3.whl"})}  # unneeded since hour 1: 1.5 h
    fourth, record = apply_grace(record, later, now=3.1 * hour, grace_seconds=2 * hour)  # type: ignore[arg-type]
    assert fourth == later
    # Without a grace, at once.
    gone, _ = apply_grace(GraceRecord(kept={"a": ["a-2.whl"]}), later, now=0, grace_seconds=0)  # type: ignore[arg-type]
    assert gone == later
