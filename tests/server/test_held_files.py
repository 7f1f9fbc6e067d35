"""server/held_files.py: the held URL answers the refusal the page carries, never the file, and
404s that say why for everything else; hostile words stay printable."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import msgspec
import pytest

from headwater.config.settings import ServeSettings
from headwater.policy.held import hold_files
from headwater.repository.tree import TreeSource
from headwater.server.app import IndexApp
from headwater.simple.model import File, ProjectPage
from headwater.simple.names import normalize_name
from headwater.storage import FileStorage
from headwater.sync.tree import Tree
from tests.server.asgi import Answer, call

SHA = "cd" * 32
HELD = "demo-2.0-py3-none-any.whl"
SERVED = "demo-1.0-py3-none-any.whl"


class Hold(msgspec.Struct, frozen=True):
    filename: str
    message: str
    fix: str


def _file(filename: str) -> File:
    return File(
        filename=filename,
        url=f"../../packages/cd/cd/{SHA[4:]}/{filename}#sha256={SHA}",
        hashes={"sha256": SHA},
    )


def _app(tmp_path: Path, message: str, fix: str) -> IndexApp:
    storage = FileStorage(tmp_path / "tree")
    page = ProjectPage(name=normalize_name("demo"), files=(_file(SERVED), _file(HELD)))
    asyncio.run(Tree(storage).write_project(hold_files(page, [Hold(HELD, message, fix)])))
    source = TreeSource("m", storage, revalidate=0.0, memory_file_size=1 << 16)
    return IndexApp(ServeSettings(), {"m": source}, default="m")


def _get(app: IndexApp, path: str, **kw: Any) -> Answer:
    return asyncio.run(call(app, kw.pop("method", "GET"), path, **kw))


def test_the_held_url_answers_the_refusal(tmp_path: Path) -> None:
    app = _app(tmp_path, "held: demo 2.0 was published by A, not B", "accept it: headwater x")
    for path in (f"/m/held/demo/{HELD}", f"/held/demo/{HELD}", f"/m/held/Demo/{HELD}"):
        answer = _get(app, path)
        assert answer.status == 409, (path, answer.body)
        assert answer.body == (
            b"held: demo 2.0 was published by A, not B\nTo resolve: accept it: headwater x\n"
        )
        assert answer.headers["x-headwater-refused"] == "publisher-held"
        assert answer.headers["cache-control"] == "no-store"
    head = _get(app, f"/m/held/demo/{HELD}", method="HEAD")
    assert head.status == 409 and head.body == b""
    # Counted apart from files: an operator sees who asks for held releases.
    assert app.metrics.data.requests["m|held|409"] == 4


@pytest.mark.parametrize(
    ("path", "says"),
    [
        (f"/m/held/demo/{SERVED}", b"holds no file"),  # listed, but served: not held
        ("/m/held/demo/demo-3.0.tar.gz", b"holds no file"),  # not listed at all
        (f"/m/held/other/{HELD}", b"holds no file"),  # no such project
        (f"/m/held/-bad-/{HELD}", b"not a valid project name"),
        ("/m/held/demo/", b"no such URL"),
        (f"/m/held/demo/{HELD}/more", b"no such URL"),
        ("/m/held/", b"no such URL"),
    ],
)
def test_everything_else_is_a_404_that_says_why(tmp_path: Path, path: str, says: bytes) -> None:
    answer = _get(_app(tmp_path, "m", "f"), path)
    assert answer.status == 404 and says in answer.body, (path, answer.body)


def test_hostile_words_are_printable_in_the_answer(tmp_path: Path) -> None:
    message = 'held: x\x1b[2J\r\nSet-Cookie: a=b\x00\u2028\x85 "quoted" <script>'
    answer = _get(_app(tmp_path, message, "fix\x07\nnow"), f"/m/held/demo/{HELD}")
    assert answer.status == 409
    text = answer.body.decode()
    assert text.count("\n") == 2, text  # the message line, the fix line
    for bad in ("\x1b", "\r", "\x00", "\u2028", "\x85", "\x07"):
        assert bad not in text
    assert "set-cookie" not in answer.headers
