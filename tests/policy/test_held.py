"""policy/held.py: how a held file is listed (truth table) and that hostile words stay inert
(properties over the rendered JSON and HTML pages, as pip and uv read them)."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, unquote, urlsplit

import msgspec
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from headwater.policy.held import (
    HELD_PREFIX,
    MAX_TEXT,
    MAX_URL_TEXT,
    held_entry,
    held_reason,
    held_url,
    hold_files,
    refusal_text,
    upstream_hold,
)
from headwater.simple.html import parse_project_page_html, render_project_page_html
from headwater.simple.json import parse_project_page_json, render_project_page_json
from headwater.simple.model import File, ProjectPage
from headwater.simple.names import normalize_name

SHA = "ab" * 32
WHEEL = "demo-2.0-py3-none-any.whl"


class Hold(msgspec.Struct, frozen=True):
    filename: str
    message: str
    fix: str


def _file(filename: str, **fields: object) -> File:
    return File(
        filename=filename,
        url=f"../../packages/ab/ab/{SHA[4:]}/{filename}#sha256={SHA}",
        hashes={"sha256": SHA},
        **fields,  # type: ignore[arg-type]
    )


PAGE = ProjectPage(
    name=normalize_name("demo"),
    files=(_file("demo-1.0-py3-none-any.whl"), _file(WHEEL, core_metadata={"sha256": SHA})),
)
HOLD = Hold(WHEEL, "held: demo 2.0 was published by X, but earlier by Y", "accept: headwater x")

# (case, file as listed, is it a held entry)
TRUTH = [
    ("a held entry", held_entry("demo", PAGE.files[1], HOLD), True),
    ("a plain file", PAGE.files[0], False),
    ("yanked by its upstream", _file(WHEEL, yanked=True, yanked_reason="broken"), False),
    (
        "a held URL, not yanked",
        msgspec.structs.replace(held_entry("demo", PAGE.files[1], HOLD), yanked=False),
        False,
    ),
    (
        "a held URL naming another file",
        msgspec.structs.replace(held_entry("demo", PAGE.files[1], HOLD), filename="x-1.tar.gz"),
        False,
    ),
    (
        "yanked, absolute URL into a held path elsewhere",
        _file(WHEEL, yanked=True, yanked_reason="r").__class__(
            filename=WHEEL, url=f"https://e.example/held/demo/{WHEEL}", yanked=True
        ),
        False,
    ),
]


@pytest.mark.parametrize(("case", "file", "held"), TRUTH, ids=[t[0] for t in TRUTH])
def test_which_entries_are_held(case: str, file: File, held: bool) -> None:
    assert (held_reason(file) is not None) is held, case


def test_hold_files_changes_only_the_held_file() -> None:
    page = hold_files(PAGE, [HOLD, Hold("not-on-the-page-1.0.tar.gz", "m", "f")])
    assert page.files[0] == PAGE.files[0]
    entry = page.files[1]
    assert entry.filename == WHEEL and entry.hashes == {"sha256": SHA}
    assert entry.yanked and entry.yanked_reason == refusal_text(HOLD.message, HOLD.fix)
    assert entry.url.startswith(f"{HELD_PREFIX}demo/{WHEEL}?headwater-refused=held:+demo+2.0")
    # No .metadata and no provenance are kept for a held file: promise neither.
    assert entry.core_metadata is False and entry.provenance is None
    assert hold_files(PAGE, []) is PAGE


_TEXT = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=900
)
_CONTROL = re.compile(
    "[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029]"
)


@settings(max_examples=150, deadline=None)
@given(message=_TEXT, fix=_TEXT)
@example(message="held: by \u202eevil\u202c \u2066x\u2069 \x1b[2J", fix="accept\u200f it")
@example(message="\U0001f600" * 900, fix="\u00e9" * 900)
def test_hostile_words_stay_inert_in_both_formats(message: str, fix: str) -> None:
    page = hold_files(PAGE, [Hold(WHEEL, message, fix)])
    reason = page.files[1].yanked_reason
    assert reason is not None and not _CONTROL.search(reason) and '"' not in reason
    assert len(reason) <= 2 * (MAX_TEXT + 3) + len(" To resolve: ")
    url = page.files[1].url
    # One URL token: no whitespace, quote, fragment or control character; the path names the
    # file and the query carries exactly the two parameters.
    assert not re.search(r"[\s\"'#<>\\]", url) and url.isascii()
    # Short enough for any server's request line (nginx: 8 KiB), whatever the words.
    assert len(url) <= 2 * MAX_URL_TEXT + 200
    parts = urlsplit(url)
    assert unquote(parts.path) == f"{HELD_PREFIX}demo/{WHEEL}"
    query = parse_qs(parts.query, keep_blank_values=True)
    assert set(query) <= {"headwater-refused", "fix"} and all(len(v) == 1 for v in query.values())
    for read in (
        parse_project_page_json(render_project_page_json(page)),
        parse_project_page_html(render_project_page_html(page), name="demo"),
    ):
        assert held_reason(read.files[1]) == reason
        assert held_reason(read.files[0]) is None


@given(project=st.from_regex(r"[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?", fullmatch=True))
def test_the_held_url_resolves_beside_packages(project: str) -> None:
    url = held_url(project, f"{project}-1.0.tar.gz", "m", "f")
    page_url = f"https://h.example/idx/simple/{project}/"
    from urllib.parse import urljoin

    assert urljoin(page_url, url).startswith(f"https://h.example/idx/held/{project}/")


_UP = "https://up.example/idx/held/demo/"
# (case, url, yanked, reason, the hold's (message, fix) or None)
UPSTREAM = [
    ("an upstream's held entry", _UP + WHEEL + "?headwater-refused=m&fix=f", True,
     "held: m To resolve: f", ("held: m", "f")),
    ("held, its reason without a fix", _UP + WHEEL, True, "held: m", ("held: m", None)),
    ("held, no reason", _UP + WHEEL, True, None, ("held by the upstream's publisher guard", None)),
    ("not yanked", _UP + WHEEL, False, None, None),
    ("another project's held path", "https://up.example/idx/held/other/" + WHEEL, True, "r", None),
    ("another file's held path", _UP + "demo-3.0.tar.gz", True, "r", None),
    ("a packages URL, yanked", f"https://up.example/idx/packages/ab/ab/x/{WHEEL}", True, "r", None),
]  # fmt: skip


@pytest.mark.parametrize(
    ("case", "url", "yanked", "reason", "hold"), UPSTREAM, ids=[u[0] for u in UPSTREAM]
)
def test_an_upstreams_held_entries(
    case: str, url: str, yanked: bool, reason: str | None, hold: tuple[str, str | None] | None
) -> None:
    file = File(filename=WHEEL, url=url, hashes={"sha256": SHA}, yanked=yanked,
                yanked_reason=reason)  # fmt: skip
    found = upstream_hold("demo", file)
    if hold is None:
        assert found is None, case
        return
    assert found is not None and found.filename == WHEEL, case
    assert found.message == hold[0], case
    assert found.fix == hold[1] if hold[1] is not None else "upstream" in found.fix, case
    # Kept as this tree's held entry: recognised, with a URL of this tree.
    entry = held_entry("demo", file, found)
    assert held_reason(entry) is not None and entry.url.startswith(HELD_PREFIX)
