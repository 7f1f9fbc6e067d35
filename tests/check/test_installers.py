"""The installer model as a truth table: what pip and uv install, given what each index said.

The rows are the behaviours tests/check/test_claims.py measures with the real tools (pip merges
every index and skips failing ones; uv takes the first index in its order that has the name and
stops at any failure but a 404); here every combination is pinned down without a network.
"""

from __future__ import annotations

import pytest

from headwater.check.installers import predict
from headwater.check.model import Client, IndexSpec
from headwater.check.sources import Lookup, Refusal
from headwater.simple.model import File, ProjectPage
from headwater.simple.names import normalize_name

P = "foo-bar"


def _page(*versions: str, yanked: tuple[str, ...] = ()) -> ProjectPage:
    files = tuple(
        File(
            filename=f"foo_bar-{v}-py3-none-any.whl",
            url=f"https://files.example/foo_bar-{v}-py3-none-any.whl",
            hashes={"sha256": f"{i:064x}"},
            yanked="bad" if v in yanked else None,
        )
        for i, v in enumerate(versions)
    )
    return ProjectPage(name=normalize_name(P), files=files)


def _said(text: str) -> Lookup:
    """``"1.0 2.0"``: found with those versions; ``-``: absent; ``!``: failed; ``409``: refused;
    ``0``: found without files."""
    url = "https://x.example/simple/foo-bar/"
    if text == "-":
        return Lookup(state="absent", url=url)
    if text == "!":
        return Lookup(state="unavailable", url=url, error="down")
    if text == "409":
        refusal = Refusal(kind="claimed", status=409, message="held", fix="publish")
        return Lookup(state="refused", url=url, refusal=refusal)
    if text == "0":
        return Lookup(state="found", url=url, page=_page())
    return Lookup(state="found", url=url, page=_page(*text.split()))


def _observed(row: str) -> list[tuple[IndexSpec, Lookup]]:
    """``"a=1.0; b=-; dir*=2.0"``: indexes in the client's order (``*``: a find-links dir)."""
    out = []
    for part in row.split(";"):
        name, _, said = part.strip().partition("=")
        local = name.endswith("*")
        name = name.rstrip("*")
        spec = IndexSpec(name=name, url=f"https://{name}.example/simple/", origin="t", local=local)
        out.append((spec, _said(said)))
    return out


# (indexes as the client orders them, specifier, pip's (indexes, version), uv's (indexes, version))
TABLE = [
    ("a=1.0; b=2.0", "", ("b", "2.0"), ("a", "1.0")),  # pip: highest; uv: first that has it
    ("a=2.0; b=1.0", "", ("a", "2.0"), ("a", "2.0")),
    ("a=-; b=1.0", "", ("b", "1.0"), ("b", "1.0")),  # a 404 lets uv go on
    ("a=!; b=1.0", "", ("b", "1.0"), ("", None)),  # pip skips a failing index; uv stops
    ("a=409; b=1.0", "", ("b", "1.0"), ("", None)),  # a refusal is a failure to both
    ("a=1.0; b=!", "", ("a", "1.0"), ("a", "1.0")),  # uv never reaches b
    ("a=1.0 3.0; b=2.0", "<3", ("b", "2.0"), ("a", "1.0")),  # the specifier first
    ("a=1.0; b=2.0", ">=2", ("b", "2.0"), ("", None)),  # uv: a has it, no version fits
    ("a=0; b=1.0", "", ("b", "1.0"), ("", None)),  # a page without files (a cooldown)
    ("a=1.0; b=1.0", "", ("a b", "1.0"), ("a", "1.0")),  # a tie: pip may take either
    ("a=-; b=-", "", ("", None), ("", None)),
    ("a=1.0 2.0rc1", "", ("a", "1.0"), ("a", "1.0")),  # finals before pre-releases
    ("a=2.0rc1", "", ("a", "2.0rc1"), ("a", "2.0rc1")),  # ...unless only pre-releases fit
    ("d*=3.0; a=1.0", "", ("d", "3.0"), ("d", "3.0")),  # find-links are searched alongside
    ("d*=1.0; a=-; b=2.0", "", ("b", "2.0"), ("b", "2.0")),
    ("d*=1.0; a=-", "", ("d", "1.0"), ("d", "1.0")),
]


@pytest.mark.parametrize(("row", "specifier", "pip", "uv"), TABLE, ids=[r[0] for r in TABLE])
def test_what_pip_and_uv_install(
    row: str,
    specifier: str,
    pip: tuple[str, str | None],
    uv: tuple[str, str | None],
) -> None:
    observed = _observed(row)
    for client, (indexes, version) in ((Client.PIP, pip), (Client.UV, uv), (Client.NONE, pip)):
        got = predict(client, observed, specifier)
        assert (got.indexes, got.version) == (tuple(indexes.split()), version), (client, got)
        assert got.client == ("uv" if client is Client.UV else "pip")
        assert got.fails == (version is None)
        assert got.why


def test_yanked_files_are_not_installed() -> None:
    observed = [
        (IndexSpec(name="a", url="https://a/simple/", origin="t"),
         Lookup(state="found", url="u", page=_page("1.0", "2.0", yanked=("2.0",)))),
    ]  # fmt: skip
    assert predict(Client.PIP, observed, "").version == "1.0"


def test_the_why_names_what_was_skipped_and_uvs_order() -> None:
    pip = predict(Client.PIP, _observed("a=!; b=1.0"), "")
    assert pip.why == "pip takes the highest version of all indexes; it skips 'a', which failed"
    uv = predict(Client.UV, _observed("a=-; b=1.0; c=2.0"), "")
    assert (
        uv.why == "uv takes the first index that has the name ('b', in uv's order 'a', 'b' and 'c')"
    )
    stopped = predict(Client.UV, _observed("a=!; b=1.0"), "")
    assert "uv stops at 'a', which failed" in stopped.why
