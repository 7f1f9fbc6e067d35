"""Reading pyproject.toml (PEP 621, PEP 735, [tool.uv]) and pylock.toml (PEP 751)."""

from __future__ import annotations

from pathlib import Path

import pytest

from headwater.check import Client, InvalidRequirements, read_requirements

PYPROJECT = """\
[build-system]
requires = ["hatchling>=1.20"]
build-backend = "hatchling.build"

[project]
name = "My_App"
dependencies = ["Foo_Bar>=1", "requests; python_version >= '3.9'"]

[project.optional-dependencies]
gpu = ["torchtriton==2.0.0"]
all = ["my-app[gpu]"]

[dependency-groups]
test = ["pytest", {include-group = "Lint"}]
lint = ["ruff"]

[tool.uv]
dev-dependencies = ["mypy"]
index-url = "https://default.example/simple/"
extra-index-url = ["https://extra.example/simple/"]

[[tool.uv.index]]
name = "private"
url = "https://private.example/simple/"
explicit = true

[tool.uv.sources]
torchtriton = { index = "private" }
foo-bar = { git = "https://git.example/foo-bar.git" }
"""


def test_pyproject_dependencies_extras_groups_build_and_uv(tmp_path: Path) -> None:
    path = tmp_path / "pyproject.toml"
    path.write_text(PYPROJECT)
    got = read_requirements(path)
    by_project = {str(r.project): r for r in got.requirements}
    # The project's own name (my-app[gpu]) is a self-reference, not a requirement.
    assert list(by_project) == [
        "foo-bar",
        "requests",
        "torchtriton",
        "hatchling",
        "pytest",
        "ruff",
        "mypy",
    ]
    assert by_project["torchtriton"].pins[0].index == "private"
    assert by_project["torchtriton"].pins[0].clients == (Client.UV,)
    assert by_project["foo-bar"].direct is not None and "git" in by_project["foo-bar"].direct
    # Origins name the file, the line and the table.
    assert by_project["torchtriton"].origin == f"{path}:10 ([project.optional-dependencies] gpu)"
    assert by_project["pytest"].origin == f"{path}:14 ([dependency-groups] test)"
    assert got.uv_project
    assert [(d.action, d.value, d.name, d.explicit) for d in got.directives] == [
        ("index", "https://private.example/simple/", "private", True),
        ("extra-index-url", "https://extra.example/simple/", None, False),
        ("index-url", "https://default.example/simple/", None, False),
    ]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("[project\n", "not valid TOML"),
        ("[project]\ndependencies = 'requests'\n", "must be an array of strings"),
        (
            "[project]\ndependencies = ['requests>>1']\n",
            ":2 ([project] dependencies): 'requests>>1'",
        ),
        (
            "[dependency-groups]\na = [{include-group = 'b'}]\nb = [{include-group = 'a'}]\n",
            "include-group cycle a -> b -> a",
        ),
        ("[dependency-groups]\na = [{include-group = 'nope'}]\n", "names no group"),
        ("[tool.uv.sources]\nx = { branch = 'main' }\n", "a source needs one of index"),
        ("[[tool.uv.index]]\nname = 'x'\n", "an index needs a url"),
    ],
)
def test_bad_pyproject_names_the_file(tmp_path: Path, body: str, expected: str) -> None:
    path = tmp_path / "pyproject.toml"
    path.write_text(body)
    with pytest.raises(InvalidRequirements) as caught:
        read_requirements(path)
    assert str(path) in str(caught.value)
    assert expected in str(caught.value)


PYLOCK = """\
lock-version = "1.0"
created-by = "test"

[[packages]]
name = "torchtriton"
version = "2.0.0"
index = "https://private.example/simple/"
wheels = [{ name = "torchtriton-2.0.0-py3-none-any.whl", hashes = { sha256 = "AB12" } }]

[[packages]]
name = "requests"
version = "2.32.3"
index = "https://pypi.org/simple/"
sdist = { name = "requests-2.32.3.tar.gz", hashes = { sha256 = "cd34", md5 = "ignored" } }

[[packages]]
name = "local-thing"
directory = { path = "./local" }
"""


def test_pylock_names_index_pins_and_hashes(tmp_path: Path) -> None:
    path = tmp_path / "pylock.dev.toml"
    path.write_text(PYLOCK)
    got = read_requirements(path).requirements
    assert [r.project for r in got] == ["torchtriton", "requests", "local-thing"]
    assert got[0].pins[0].index == "https://private.example/simple/"
    assert set(got[0].pins[0].clients) == {Client.PIP, Client.UV}  # a lock binds every installer
    assert got[0].hashes == ("sha256:ab12",)
    assert got[1].hashes == ("sha256:cd34",)
    assert got[1].specifier == "==2.32.3"
    assert got[2].direct is not None and "directory" in got[2].direct


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("[[packages]]\nname = 'x'\n", "lock-version None is not a PEP 751 version 1.x"),
        ("lock-version = '2.0'\n", "lock-version '2.0'"),
        ("lock-version = '1.0'\n[[packages]]\nversion = '1'\n", "packages[0]"),
        ("lock-version = '1.0'\n[[packages]]\nname = 'x'\nindex = 3\n", "index must be a URL"),
    ],
)
def test_bad_pylock_names_the_file(tmp_path: Path, body: str, expected: str) -> None:
    path = tmp_path / "pylock.toml"
    path.write_text(body)
    with pytest.raises(InvalidRequirements) as caught:
        read_requirements(path)
    assert str(path) in str(caught.value)
    assert expected in str(caught.value)
