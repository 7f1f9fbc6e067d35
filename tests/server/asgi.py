"""Calling an ASGI app in-process, as a server would, and collecting what it sends."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from headwater.server.types import ASGIApp, Message


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    messages: list[Message] = field(default_factory=list)


async def call(
    app: ASGIApp,
    method: str,
    path: str,
    *,
    headers: dict[str, str] | None = None,
    query: str = "",
    body: bytes = b"",
    extensions: dict[str, Any] | None = None,
) -> Answer:
    """One request; raw header names are lowercased like a real server does."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8080),
        "extensions": extensions or {},
    }
    sent: list[Message] = []
    chunks = [body]

    async def receive() -> Message:
        if chunks:
            return {"type": "http.request", "body": chunks.pop(), "more_body": False}
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    out = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    hdrs: dict[str, str] = {}
    for key, value in start.get("headers", []):
        name = key.decode().lower()
        hdrs[name] = hdrs[name] + ", " + value.decode() if name in hdrs else value.decode()
    return Answer(start["status"], hdrs, out, sent)
