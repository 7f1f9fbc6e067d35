"""Every parser of a file or page headwater reads is total for nesting: input nested past the
interpreter's recursion limit is the parser's own InvalidX / ConfigError, never a RecursionError
(tomllib and msgspec both raise RecursionError for deep arrays and tables). The Simple API parsers
have their own table in tests/simple/test_json_depth.py."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from headwater.check import projectfiles
from headwater.check.indexes import _read_toml
from headwater.config import ConfigError, parse_config
from headwater.errors import HeadwaterError
from headwater.policy import PolicyError
from headwater.policy.config import routes_from_mapping_file

DEEP_TOML = "a = " + "[" * 100_000 + "]" * 100_000 + "\n"
DEEP_JSON = b'{"repositories": {}, "mapping": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"


def _file(tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    path.write_text(DEEP_TOML)
    return path


CASES: list[tuple[str, Callable[[Path], object], type[HeadwaterError]]] = [
    ("config", lambda tmp: parse_config(DEEP_TOML), ConfigError),
    (
        "routes-file",
        lambda tmp: routes_from_mapping_file(DEEP_JSON, source_urls={}, where="routes.json"),
        PolicyError,
    ),
    (
        "pyproject",
        lambda tmp: projectfiles.read_pyproject(_file(tmp, "pyproject.toml")),
        HeadwaterError,
    ),
    ("pylock", lambda tmp: projectfiles.read_pylock(_file(tmp, "pylock.toml")), HeadwaterError),
    (
        "uv.toml",
        lambda tmp: _read_toml(_file(tmp, "uv.toml"), "uv configuration file"),
        HeadwaterError,
    ),
]


@pytest.mark.parametrize(("what", "parse", "error"), CASES, ids=[c[0] for c in CASES])
def test_deep_nesting_is_the_parsers_own_error(
    tmp_path: Path, what: str, parse: Callable[[Path], object], error: type[HeadwaterError]
) -> None:
    with pytest.raises(error):
        parse(tmp_path)
