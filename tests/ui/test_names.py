"""NameIndex against a brute-force reading of its own contract, over generated name lists."""

from __future__ import annotations

import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from headwater.simple.names import normalize_name
from headwater.ui.names import MIN_SIMILAR, PREFIX_BEFORE_TYPOS, Hit, NameIndex, normalize_query

_ALPHABET = "abcde-1"
names = st.lists(
    st.from_regex(r"[a-e1](?:[a-e1-]{0,7}[a-e1])?", fullmatch=True).map(normalize_name),
    max_size=60,
)
queries = st.text(_ALPHABET + "_. A", min_size=0, max_size=8)


def _edit(a: str, b: str) -> int | None:
    """How b is a with one edit, the slow, obvious way: 0 two neighbours swapped, 1 a character
    replaced, 2 one left out or added; None when the distance is not exactly 1."""
    if a == b:
        return None
    found = []
    for i in range(len(a) + 1):
        if i + 1 < len(a) and a[:i] + a[i + 1] + a[i] + a[i + 2 :] == b:
            found.append(0)
        for c in _ALPHABET + string.ascii_lowercase + string.digits:
            if i < len(a) and a[:i] + c + a[i + 1 :] == b:
                found.append(1)
            if a[:i] + c + a[i:] == b:
                found.append(2)
        if i < len(a) and a[:i] + a[i + 1 :] == b:
            found.append(2)
    return min(found) if found else None


def expected(all_names: list[str], query: str, limit: int) -> list[Hit]:
    """The ranking of names.py's docstring, written out directly."""
    unique = sorted(set(all_names))
    if not query:
        return []
    by_length = sorted(unique, key=lambda n: (len(n), n))
    prefixed = [
        Hit(n, "exact" if n == query else "prefix") for n in by_length if n.startswith(query)
    ]
    ranked: list[Hit] = []
    if len(query) >= MIN_SIMILAR:
        first = PREFIX_BEFORE_TYPOS + (1 if query in unique else 0)
        typos = [
            (edit, n)
            for n in unique
            if not n.startswith(query) and (edit := _edit(query, n)) is not None
        ]
        ranked += prefixed[:first] + [Hit(n, "similar") for _, n in sorted(typos)]
        ranked += prefixed[first:]
    else:
        ranked += prefixed
    seen: set[str] = set()
    out = []
    for hit in ranked:
        if hit.name not in seen:
            seen.add(hit.name)
            out.append(hit)
    out += [Hit(n, "substring") for n in by_length if query in n and n not in seen]
    return out[:limit]


@settings(max_examples=150, deadline=None)
@given(names, queries, st.integers(1, 12))
def test_search_is_the_documented_ranking(all_names: list[str], text: str, limit: int) -> None:
    index = NameIndex(all_names)
    query = normalize_query(text)
    assert index.search(query, limit=limit) == expected(all_names, query, limit)


@settings(max_examples=100, deadline=None)
@given(names, st.text(_ALPHABET, max_size=9))
def test_membership_length_and_iteration(all_names: list[str], probe: str) -> None:
    index = NameIndex(all_names)
    assert len(index) == len(set(all_names))
    assert sorted(index) == sorted(set(all_names))
    assert (probe in index) == (probe in set(all_names))


def test_queries_are_normalized_like_names() -> None:
    assert normalize_query("  Foo_Bar.baz  ") == "foo-bar-baz"
    assert normalize_query("<script>alert(1)</script>") == "scriptalert1script"
    assert normalize_query("a" * 1000) == "a" * 200
    # Accents and compatibility forms (full-width letters) fold to the ASCII names are made of.
    assert normalize_query("Réquests") == "requests"
    assert normalize_query("ｎｕｍｐｙ") == "numpy"
    assert normalize_query("Ｆｌａｓｋ－ＲＥＳＴful") == "flask-restful"


def test_typos_of_every_kind_are_found() -> None:
    index = NameIndex(["requests", "django", "numpy", "flask", "pytest", "other"])
    for typo, meant in (
        ("requets", "requests"),  # left out
        ("requestss", "requests"),  # added
        ("requesta", "requests"),  # replaced
        ("djnago", "django"),  # swapped
        ("nunpy", "numpy"),
    ):
        assert index.search(typo)[0] == Hit(meant, "similar"), typo


def test_a_typo_of_a_short_name_is_not_crowded_out_by_longer_prefixes() -> None:
    """``numpyy`` is a typo of numpy and the prefix of many longer names: the ten suggestions
    used to be those prefixes only (numpy was 50th here)."""
    longer = [f"numpyyaml{suffix}" for suffix in ("", "-io", "-db", "-kit", "x", "2")]
    longer += [f"numpyy{n:02d}" for n in range(44)]
    index = NameIndex(["numpy", "numba", *longer])
    top = index.search("numpyy", limit=10)
    assert Hit("numpy", "similar") in top[: PREFIX_BEFORE_TYPOS + 1], top


def test_typos_rank_swapped_then_replaced_then_left_out_or_added() -> None:
    """The likeliest typo first: ``reqeusts`` is requests with two neighbours swapped, and one
    character away from reqeust (left out) and reqeuste (replaced) too."""
    index = NameIndex(["reqeust", "reqeuste", "requests", "aeqeusts"])
    assert [hit.name for hit in index.search("reqeusts")] == [
        "requests",
        "aeqeusts",
        "reqeuste",
        "reqeust",
    ]
    index = NameIndex(["nump", "numpai", "numpy"])
    assert index.search("numpi")[0] == Hit("numpy", "similar")


@settings(max_examples=150, deadline=None)
@given(names, queries, st.integers(1, 12), st.sampled_from([2, 3, 8, 17]))
def test_search_is_the_same_whatever_the_block_size(
    all_names: list[str], text: str, limit: int, block: int
) -> None:
    """Small blocks put matches and names across block edges: nothing is lost or repeated."""
    from headwater.ui import names as module

    saved = module.BLOCK
    module.BLOCK = block
    try:
        index = NameIndex(all_names)
        query = normalize_query(text)
        assert index.search(query, limit=limit) == expected(all_names, query, limit)
    finally:
        module.BLOCK = saved


def test_the_catalog_reads_names_from_any_json_project_list() -> None:
    """The lean decoder and the full parser's fallback give the same, valid, normalized names."""
    from headwater.ui.catalog import _build

    plain = b'{"meta": {"api-version": "1.1"}, "projects": [{"name": "Foo_Bar"}, {"name": "x"},'
    plain += b' {"name": "-bad-"}, {"name": "<script>"}, {"name": "foo.bar"}]}'
    assert sorted(_build(plain)) == ["foo-bar", "x"]
    # Not the plain shape (a name that is not a string): the full parser sets it aside.
    odd = b'{"meta": {"api-version": "1.1"}, "projects": [{"name": 7}, {"name": "Foo_Bar"}]}'
    assert sorted(_build(odd)) == ["foo-bar"]


def _straddling(target: str, query: str, block: int) -> list[str]:
    """Filler names (sharing no triple with ``query``) and ``target``, so many that ``query``'s
    match in ``target`` crosses the edge of a scan block."""
    for count in range(1, 4 * block):
        all_names = [f"a{n:0{len(target) - 1}d}" for n in range(count)] + [target]
        at = NameIndex(all_names)._all.find(query)
        if at // block != (at + len(query) - 1) // block:
            return all_names
    raise AssertionError("no filler count puts the match across an edge")


@pytest.mark.parametrize("block", [2, 3, 2048])
def test_matches_across_block_edges_are_found(block: int) -> None:
    """A substring match that crosses the edge of a scan block has its later triples only in the
    next block; when no other name in its block holds them, the match was lost (found by the
    property test above with 2-character blocks; with the real 2,048, it happened to names that
    straddle an edge)."""
    from headwater.ui import names as module

    saved = module.BLOCK
    module.BLOCK = block
    try:
        query = "quux-zebra-xylophone"
        all_names = _straddling("the-quux-zebra-xylophone-kit", query, block)
        index = NameIndex(all_names)
        assert index.search(query, limit=100) == expected(all_names, query, 100)
        assert index.search(query, limit=100) == [Hit("the-quux-zebra-xylophone-kit", "substring")]
    finally:
        module.BLOCK = saved
