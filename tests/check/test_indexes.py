"""Which indexes pip and uv would use, and where each came from. Configuration files are written
in tmp and found through :class:`ConfigPaths`; the machine's own pip/uv configuration is never
read."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from headwater.check import (
    CheckError,
    Client,
    CommandLineIndexes,
    ConfigPaths,
    IndexDirective,
    IndexPlan,
    InvalidRequirements,
    resolve_indexes,
)

PUBLIC = "https://pypi.org/simple/"
NO_CLI = CommandLineIndexes()


def _paths(root: Path) -> ConfigPaths:
    env = {"HOME": str(root / "home"), "XDG_CONFIG_DIRS": str(root / "xdg")}
    paths = ConfigPaths.from_environ(env, root / "project")
    # /etc/pip.conf and /etc/uv/uv.toml are pip's and uv's fixed places: replace them with tmp.
    return ConfigPaths(
        pip_global=(root / "xdg" / "pip" / "pip.conf", root / "etc" / "pip.conf"),
        pip_user=paths.pip_user,
        pip_site=(root / "venv" / "pip.conf",),
        uv_system=(root / "xdg" / "uv" / "uv.toml",),
        uv_user=paths.uv_user,
        project_dir=root / "project",
    )


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _used(plan: IndexPlan) -> list[tuple[str, str]]:
    return [(s.url, s.origin) for s in plan.indexes if s.used]


def test_pip_with_nothing_configured_uses_the_public_index(tmp_path: Path) -> None:
    plan = resolve_indexes(Client.PIP, command_line=NO_CLI, environ={}, paths=_paths(tmp_path))
    assert _used(plan) == [(PUBLIC, "pip's default index (no index-url configured)")]
    assert plan.indexes[0].public and plan.indexes[0].name == "pypi"


def test_pip_config_files_in_pips_order_then_environment_then_command_line(
    tmp_path: Path,
) -> None:
    paths = _paths(tmp_path)
    _write(tmp_path / "etc" / "pip.conf", "[global]\nindex-url = https://global.example/simple/\n")
    user = _write(
        tmp_path / "home" / ".config" / "pip" / "pip.conf",
        "[global]\nindex-url = https://user.example/simple/\n"
        "extra-index-url =\n    https://extra1.example/simple/\n    https://extra2.example/simple/\n",
    )
    site = _write(
        tmp_path / "venv" / "pip.conf", "[install]\nindex_url = https://site.example/simple/\n"
    )
    plan = resolve_indexes(Client.PIP, command_line=NO_CLI, environ={}, paths=paths)
    assert _used(plan) == [
        ("https://site.example/simple/", f"{site} [install] index-url"),
        ("https://extra1.example/simple/", f"{user} [global] extra-index-url"),
        ("https://extra2.example/simple/", f"{user} [global] extra-index-url"),
    ]
    env = {"PIP_INDEX_URL": "https://env.example/simple/"}
    plan = resolve_indexes(Client.PIP, command_line=NO_CLI, environ=env, paths=paths)
    assert _used(plan)[0] == ("https://env.example/simple/", "PIP_INDEX_URL")
    cli = CommandLineIndexes(
        index_url="https://cli.example/simple/", extra_index_urls=("https://cli-extra.example/",)
    )
    plan = resolve_indexes(Client.PIP, command_line=cli, environ=env, paths=paths)
    # --index-url overrides; --extra-index-url adds to the configured extras (pip's append).
    assert _used(plan) == [
        ("https://cli.example/simple/", "--index-url"),
        ("https://extra1.example/simple/", f"{user} [global] extra-index-url"),
        ("https://extra2.example/simple/", f"{user} [global] extra-index-url"),
        ("https://cli-extra.example/", "--extra-index-url"),
    ]


def test_pip_config_file_variable_replaces_the_user_file_and_devnull_loads_none(
    tmp_path: Path,
) -> None:
    paths = _paths(tmp_path)
    _write(tmp_path / "home" / ".pip" / "pip.conf", "[global]\nindex-url = https://user.example/\n")
    chosen = _write(tmp_path / "ci.conf", "[global]\nextra-index-url = https://ci.example/\n")
    plan = resolve_indexes(
        Client.PIP, command_line=NO_CLI, environ={"PIP_CONFIG_FILE": str(chosen)}, paths=paths
    )
    assert [url for url, _ in _used(plan)] == [PUBLIC, "https://ci.example/"]
    plan = resolve_indexes(
        Client.PIP, command_line=NO_CLI, environ={"PIP_CONFIG_FILE": os.devnull}, paths=paths
    )
    assert [url for url, _ in _used(plan)] == [PUBLIC]


def test_requirements_file_options_apply_in_order_as_pip_applies_them(tmp_path: Path) -> None:
    env = {"PIP_EXTRA_INDEX_URL": "https://env-extra.example/simple/"}
    directives = [
        IndexDirective(action="extra-index-url", value="https://a.example/simple/", origin="r:1"),
        # pip: a file's --index-url replaces every index named before it.
        IndexDirective(action="index-url", value="https://private.example/simple/", origin="r:2"),
        IndexDirective(action="extra-index-url", value="https://b.example/simple/", origin="r:3"),
    ]
    plan = resolve_indexes(
        Client.PIP, command_line=NO_CLI, directives=directives, environ=env, paths=_paths(tmp_path)
    )
    assert _used(plan) == [
        ("https://private.example/simple/", "r:2"),
        ("https://b.example/simple/", "r:3"),
    ]
    unused = [s for s in plan.indexes if not s.used]
    assert [(s.url, s.public) for s in unused] == [(PUBLIC, True)]


def test_no_index_leaves_only_find_links(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    directives = [
        IndexDirective(action="find-links", value=str(wheels), origin="r:1"),
        IndexDirective(action="no-index", value="", origin="r:2"),
        IndexDirective(action="find-links", value=str(tmp_path / "missing"), origin="r:3"),
        IndexDirective(action="find-links", value="https://flat.example/links/", origin="r:4"),
    ]
    plan = resolve_indexes(
        Client.NONE, command_line=NO_CLI, directives=directives, paths=_paths(tmp_path)
    )
    local = [s for s in plan.indexes if s.used]
    assert [(s.url, s.local) for s in local] == [(str(wheels.resolve()), True)]
    assert len(plan.warnings) == 2
    assert "does not exist" in plan.warnings[0] and "is a URL" in plan.warnings[1]


def test_from_none_ignores_pip_configuration(tmp_path: Path) -> None:
    _write(tmp_path / "etc" / "pip.conf", "[global]\nindex-url = https://global.example/\n")
    plan = resolve_indexes(
        Client.NONE,
        command_line=NO_CLI,
        environ={"PIP_INDEX_URL": "https://env.example/"},
        paths=_paths(tmp_path),
    )
    assert _used(plan) == [(PUBLIC, "the default index (no --index-url given)")]


def test_a_broken_pip_config_is_an_error_naming_it(tmp_path: Path) -> None:
    bad = _write(tmp_path / "etc" / "pip.conf", "index-url = no section\n")
    with pytest.raises(InvalidRequirements, match=str(bad)):
        resolve_indexes(Client.PIP, command_line=NO_CLI, environ={}, paths=_paths(tmp_path))


def test_uv_order_environment_files_and_default_last(tmp_path: Path) -> None:
    paths = _paths(tmp_path)
    project = _write(
        tmp_path / "project" / "uv.toml",
        '[[index]]\nname = "corp"\nurl = "https://corp.example/simple/"\n\n'
        '[[index]]\nname = "mirror"\nurl = "https://mirror.example/simple/"\ndefault = true\n',
    )
    user = _write(
        tmp_path / "home" / ".config" / "uv" / "uv.toml",
        'extra-index-url = ["https://user.example/simple/"]\n',
    )
    env = {
        "UV_INDEX": "envidx=https://env.example/simple/",
        "UV_EXTRA_INDEX_URL": "https://env-extra.example/simple/",
    }
    plan = resolve_indexes(Client.UV, command_line=NO_CLI, environ=env, paths=paths)
    assert [(s.name, s.url, s.origin) for s in plan.indexes if s.used] == [
        ("envidx", "https://env.example/simple/", "UV_INDEX"),
        ("env-extra", "https://env-extra.example/simple/", "UV_EXTRA_INDEX_URL"),
        ("corp", "https://corp.example/simple/", f"{project}:3 (uv.toml index[0])"),
        ("user", "https://user.example/simple/", f"{user}:1 (uv.toml extra-index-url)"),
        ("mirror", "https://mirror.example/simple/", f"{project}:7 (uv.toml index[1])"),
    ]


def test_uv_config_file_variable_and_no_config(tmp_path: Path) -> None:
    paths = _paths(tmp_path)
    _write(tmp_path / "project" / "uv.toml", 'index-url = "https://project.example/simple/"\n')
    chosen = _write(tmp_path / "ci-uv.toml", 'index-url = "https://ci.example/simple/"\n')
    plan = resolve_indexes(
        Client.UV, command_line=NO_CLI, environ={"UV_CONFIG_FILE": str(chosen)}, paths=paths
    )
    assert [s.url for s in plan.indexes if s.used] == ["https://ci.example/simple/"]
    plan = resolve_indexes(
        Client.UV, command_line=NO_CLI, environ={"UV_NO_CONFIG": "1"}, paths=paths
    )
    assert [s.origin for s in plan.indexes if s.used] == [
        "uv's default index (no index-url configured)"
    ]
    with pytest.raises(CheckError, match="UV_CONFIG_FILE names"):
        resolve_indexes(
            Client.UV,
            command_line=NO_CLI,
            environ={"UV_CONFIG_FILE": str(tmp_path / "nope.toml")},
            paths=paths,
        )


def test_uv_project_pyproject_is_found_in_a_parent_and_skipped_when_given(
    tmp_path: Path,
) -> None:
    pyproject = _write(
        tmp_path / "project" / "pyproject.toml",
        '[project]\nname = "x"\n[tool.uv]\nindex-url = "https://proj.example/simple/"\n',
    )
    paths = ConfigPaths(project_dir=tmp_path / "project" / "src" / "pkg")
    (tmp_path / "project" / "src" / "pkg").mkdir(parents=True)
    plan = resolve_indexes(Client.UV, command_line=NO_CLI, environ={}, paths=paths)
    assert [s.url for s in plan.indexes if s.used] == ["https://proj.example/simple/"]
    plan = resolve_indexes(
        Client.UV, command_line=NO_CLI, environ={}, paths=paths, skip_files=[pyproject]
    )
    assert [s.url for s in plan.indexes if s.used] == [PUBLIC]


def test_the_public_index_is_recognised_whatever_its_spelling(tmp_path: Path) -> None:
    cli = CommandLineIndexes(
        index_url="https://private.example/simple",
        extra_index_urls=("HTTPS://PyPI.org/simple",),
    )
    plan = resolve_indexes(Client.NONE, command_line=cli, paths=_paths(tmp_path))
    assert [(s.url, s.public, s.used) for s in plan.indexes] == [
        ("https://private.example/simple/", False, True),
        ("HTTPS://PyPI.org/simple/", True, True),
    ]


@pytest.mark.parametrize("url", ["private.example/simple", "ftp://private.example/simple/"])
def test_an_index_that_is_not_an_http_url_is_an_error(tmp_path: Path, url: str) -> None:
    with pytest.raises(CheckError) as caught:
        resolve_indexes(
            Client.NONE, command_line=CommandLineIndexes(index_url=url), paths=_paths(tmp_path)
        )
    assert f"--index-url: index URL {url!r} is not an http(s) URL" in str(caught.value)


def test_credentials_are_masked_for_display(tmp_path: Path) -> None:
    cli = CommandLineIndexes(index_url="https://user:s3cret@private.example/simple/")
    plan = resolve_indexes(Client.NONE, command_line=cli, paths=_paths(tmp_path))
    assert plan.indexes[0].display_url == "https://user:***@private.example/simple/"
