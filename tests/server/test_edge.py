"""server/edge.py: the headers every response gets, and the last resort for escaped errors."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from headwater.server.edge import describe_failure, guarded
from headwater.server.types import Message, Receive, Scope, Send

SCOPE: Scope = {"type": "http", "method": "GET", "path": "/x/simple/", "headers": []}


async def _receive() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


def run(app: Any, *, hsts: bool = False, scope: Scope = SCOPE) -> list[Message]:
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    asyncio.run(guarded(app, scope, _receive, send, hsts=hsts))
    return sent


async def _ok(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [(b"a", b"b")]})
    await send({"type": "http.response.body", "body": b"hi"})


async def _fails_before(scope: Scope, receive: Receive, send: Send) -> None:
    raise RecursionError("maximum recursion depth exceeded while deserializing an object")


async def _fails_after(scope: Scope, receive: Receive, send: Send) -> None:
    await _ok(scope, receive, send)
    raise ValueError("after the end")


async def _fails_midway(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"part", "more_body": True})
    raise ValueError("hash mismatch")


def test_every_response_gets_nosniff_and_hsts_with_tls() -> None:
    sent = run(_ok)
    assert sent[0]["headers"] == [(b"a", b"b"), (b"x-content-type-options", b"nosniff")]
    sent = run(_ok, hsts=True)
    assert (b"strict-transport-security", b"max-age=31536000") in sent[0]["headers"]
    assert (b"x-content-type-options", b"nosniff") in sent[0]["headers"]


def test_an_escaped_error_is_one_log_line_and_a_plain_500(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.ERROR, logger="headwater.server"):
        sent = run(_fails_before)
    assert sent[0]["status"] == 500
    assert (b"x-content-type-options", b"nosniff") in sent[0]["headers"]
    body = sent[1]["body"]
    assert b"internal error" in body and b"Recursion" not in body  # nothing internal leaks
    (record,) = caplog.records
    line = record.getMessage()
    assert "\n" not in line and "Traceback" not in line
    assert "GET '/x/simple/'" in line
    assert "RecursionError: maximum recursion depth" in line
    assert "tests/server/test_edge.py" in line or "in _fails_before" in line
    assert record.exc_info is None


def test_head_gets_no_body() -> None:
    sent = run(_fails_before, scope={**SCOPE, "method": "HEAD"})
    assert sent[0]["status"] == 500 and sent[1]["body"] == b""


def test_an_error_after_a_complete_response_is_logged_not_raised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.ERROR, logger="headwater.server"):
        sent = run(_fails_after)
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
    assert "ValueError: after the end" in caplog.records[0].getMessage()


def test_an_error_part_way_through_a_body_is_raised_so_the_connection_drops() -> None:
    with pytest.raises(ValueError, match="hash mismatch"):
        run(_fails_midway)


def test_describe_failure_names_headwater_code() -> None:
    from headwater.simple.names import normalize_name

    try:
        normalize_name("-")
    except Exception as exc:
        text = describe_failure(exc)
    assert text.startswith("InvalidName: invalid project name '-'")
    assert " at headwater/simple/names.py:" in text


def test_describe_failure_escapes_control_characters() -> None:
    text = describe_failure(ValueError("upstream said \x1b[31mred\x00\r\nX-Injected: 1"))
    assert "\x1b" not in text and "\x00" not in text and "\n" not in text and "\r" not in text
    assert "\\x1b[31mred\\x00 X-Injected: 1" in text
