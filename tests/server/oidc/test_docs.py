"""docs/trusted-publishing.md cannot drift: its TOML is accepted, its publishers are valid, and
every CLI flag and endpoint it shows exists."""

from __future__ import annotations

import re
from pathlib import Path

from headwater.config import parse_config
from headwater.db.identities import check_identity, decode_identity
from headwater.server.routes import ROUTES

DOC = Path(__file__).resolve().parents[3] / "docs" / "trusted-publishing.md"


def test_toml_examples_are_accepted_and_their_publishers_are_valid() -> None:
    examples = re.findall(r"```toml\n(.*?)```", DOC.read_text(), flags=re.DOTALL)
    assert examples
    for example in examples:
        config = parse_config(example, source="docs/trusted-publishing.md")
        for hosted in config.hosted.values():
            for entry in hosted.publishers:
                kind = "github" if entry.github else "gitlab" if entry.gitlab else "oidc"
                table = entry.github or entry.gitlab or entry.oidc or {}
                check_identity(decode_identity({"type": kind, **table}))


def test_every_publisher_flag_shown_exists() -> None:
    from headwater.cli.main import build_parser

    parser = build_parser()
    text = DOC.read_text()
    shown = set(re.findall(r"headwater publisher [^\n]*", text))
    flags = {flag for line in shown for flag in re.findall(r"(--[a-z-]+)", line)}
    assert flags
    sub = next(
        action
        for action in parser._subparsers._group_actions  # type: ignore[union-attr]
        if "publisher" in getattr(action, "choices", {})
    ).choices["publisher"]
    known = {opt for action in sub._actions for opt in action.option_strings}
    assert flags <= known, flags - known


def test_every_endpoint_shown_is_a_route() -> None:
    paths = {route.path for route in ROUTES}
    for path in (
        "/_/oidc/audience",
        "/_/oidc/mint-token",
        "/{index}/_/oidc/mint-token",
        "/.well-known/pytp",
    ):
        assert path in paths
        shown = path.replace("{index}", "<index>")
        assert (
            f"`{shown}" in DOC.read_text()
            or f"{shown}`" in DOC.read_text()
            or shown in DOC.read_text()
        )
