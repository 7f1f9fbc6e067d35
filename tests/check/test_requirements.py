"""Reading pip requirements files the way pip does."""

from __future__ import annotations

from pathlib import Path

import pytest

from headwater.check import InvalidRequirements, read_requirements_txt

SHA = "a" * 64


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_names_specifiers_markers_and_line_numbers(tmp_path: Path) -> None:
    req = _write(
        tmp_path / "requirements.txt",
        "# a comment\n"
        "Foo_Bar>=1.0  # trailing comment\n"
        "\n"
        'requests[socks]==2.32.3 ; python_version < "3.8"\n'
        "urllib3 \\\n"
        "    <3\n",
    )
    got = read_requirements_txt(req).requirements
    assert [(r.name, r.project, r.specifier, r.origin) for r in got] == [
        ("Foo_Bar", "foo-bar", ">=1.0", f"{req}:2"),
        ("requests", "requests", "==2.32.3", f"{req}:4"),
        ("urllib3", "urllib3", "<3", f"{req}:5"),
    ]
    assert got[1].marker == 'python_version < "3.8"'  # kept, and the name is still checked


def test_nested_requirements_and_constraints_relative_to_the_including_file(
    tmp_path: Path,
) -> None:
    _write(tmp_path / "sub" / "base.txt", "attrs\n-c ../constraints.txt\n")
    _write(tmp_path / "constraints.txt", "idna==3.7\n")
    top = _write(
        tmp_path / "requirements.txt", "-r sub/base.txt\n--requirement=sub/base.txt\nsix\n"
    )
    got = read_requirements_txt(top).requirements
    assert [(r.project, r.constraint) for r in got] == [
        ("attrs", False),
        ("idna", True),
        ("six", False),
    ]
    assert got[1].origin == f"{tmp_path / 'sub' / '../constraints.txt'}:1"


def test_hashes_are_kept_with_their_requirement(tmp_path: Path) -> None:
    req = _write(
        tmp_path / "r.txt",
        f"torchtriton==2.0.0 \\\n    --hash=sha256:{SHA.upper()} \\\n    --hash sha512:{'b' * 128}\n",
    )
    (only,) = read_requirements_txt(req).requirements
    assert only.hashes == (f"sha256:{SHA}", f"sha512:{'b' * 128}")


def test_editable_urls_and_paths_are_not_from_an_index(tmp_path: Path) -> None:
    req = _write(
        tmp_path / "r.txt",
        "-e ./src/mypkg#egg=mypkg\n"
        "pkg @ https://example.org/pkg-1.0.tar.gz\n"
        "./dist/other_pkg-2.0-py3-none-any.whl\n"
        "git+https://example.org/repo.git\n",
    )
    got = read_requirements_txt(req).requirements
    assert [r.project for r in got] == ["mypkg", "pkg", "other-pkg", None]
    assert all(r.direct for r in got)
    assert "editable" in (got[0].direct or "")


def test_index_options_inside_the_file_become_directives_in_order(tmp_path: Path) -> None:
    (tmp_path / "wheels").mkdir()
    req = _write(
        tmp_path / "r.txt",
        "-i https://private.example/simple/\n"
        "--extra-index-url https://extra.example/simple/\n"
        "--find-links wheels\n"
        "--no-index\n"
        "--pre\n--only-binary :all:\n--trusted-host private.example\n"
        "name\n",
    )
    got = read_requirements_txt(req)
    assert [(d.action, d.value, d.origin) for d in got.directives] == [
        ("index-url", "https://private.example/simple/", f"{req}:1"),
        ("extra-index-url", "https://extra.example/simple/", f"{req}:2"),
        # pip: a relative find-links path is taken relative to the file when it exists there
        ("find-links", str(tmp_path / "wheels"), f"{req}:3"),
        ("no-index", "", f"{req}:4"),
    ]
    assert [r.project for r in got.requirements] == ["name"]


def test_environment_variables_are_expanded_like_pip(tmp_path: Path) -> None:
    req = _write(
        tmp_path / "r.txt",
        "--index-url ${INDEX}/simple/\n--extra-index-url https://${UNSET_HOST}/simple/\n",
    )
    got = read_requirements_txt(req, environ={"INDEX": "https://private.example"})
    assert [d.value for d in got.directives] == [
        "https://private.example/simple/",
        "https://${UNSET_HOST}/simple/",  # pip leaves an unset variable as written
    ]


def test_a_file_included_twice_or_in_a_cycle_is_read_once(tmp_path: Path) -> None:
    _write(tmp_path / "a.txt", "-r b.txt\nalpha\n")
    _write(tmp_path / "b.txt", "-r a.txt\nbeta\n")
    got = read_requirements_txt(tmp_path / "a.txt").requirements
    assert sorted(r.project or "" for r in got) == ["alpha", "beta"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("good\nnot a requirement!!\n", ":2: 'not a requirement!!' is not a requirement"),
        ("--frobnicate\n", ":1: '--frobnicate' is not an option pip allows"),
        ("name --hash=md5:abcd\n", ":1: --hash='md5:abcd' is not a hash pip accepts"),
        ("name --index-url https://x.example/\n", ":1: --index-url cannot follow a requirement"),
        ("-r missing.txt\n", "missing.txt does not exist (included from"),
        ("--index-url\n", ":1: --index-url needs a value"),
        ("-r https://example.org/r.txt\n", "requirements files from URLs are not read"),
    ],
)
def test_bad_input_names_the_file_and_line(tmp_path: Path, text: str, expected: str) -> None:
    req = _write(tmp_path / "req.txt", text)
    with pytest.raises(InvalidRequirements) as caught:
        read_requirements_txt(req)
    assert expected in str(caught.value)
    assert "req.txt" in str(caught.value)


def test_a_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(InvalidRequirements, match="does not exist; check the path"):
        read_requirements_txt(tmp_path / "nope.txt")
