"""A real ``headwater serve`` with the interface, real uploads, a hostile upstream, and a real
browser, for tests/ui.

The server has:

- ``main``: a public hosted index (the default) with ``Hello_World`` 0.9 (yanked), 1.0 (a
  Markdown README) and 2.0rc1, uploaded with real twine, and ``hostile-readme`` whose README,
  summary and yank reason carry script injections and control characters;
- ``secret``: a private hosted index (``read = "token"``) with ``secret-thing``;
- ``up``: a caching proxy of :class:`HostileUpstream`, whose project page ``evil`` puts
  injections in every text field a page has (yank reason, Requires-Python, status reason,
  versions, tracks, file and provenance URLs) and in its README;
- ``all``: a composed index over ``secret``, ``main`` and ``up`` (priority).

``admin`` is the token ``headwater serve`` created on first start.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from headwater.simple.names import normalize_name
from headwater.testing.wheels import build_wheel, wheel_filename
from tests.browser import Browser, launch
from tests.server.hosting import api, cli, twine

#: Payloads: each would set window.__pwned (or call alert) if it ever ran.
SCRIPT = "<script>window.__pwned='script'</script>"
IMG = "<img src=x onerror=\"window.__pwned='img'\">"
SVG = "<svg onload=\"window.__pwned='svg'\"></svg>"
QUOTE = "\"><script>window.__pwned='attr'</script>"
JS_URL = "javascript:window.__pwned='url'"
CONTROL = "\x1b[31mred\x07\x08bell\x7f"
PAYLOADS = (SCRIPT, IMG, SVG, QUOTE)

README = """\
# Hello World

A **friendly** greeting package.

| column | value |
|--------|-------|
| one    | 1     |

```python
import hello_world
```
"""

HOSTILE_README = f"""\
# Hostile {SCRIPT}

{IMG} {SVG}

[click me]({JS_URL}) <a href="{JS_URL}">raw link</a>

<iframe src="{JS_URL}"></iframe> <object data="{JS_URL}"></object>
<form action="{JS_URL}"><button>go</button></form>
<div style="background:url(javascript:alert(1))" onmouseover="window.__pwned='hover'">hover</div>

{QUOTE} {CONTROL}
"""

CONFIG = """\
[serve]
default_index = "main"

[hosted.main]

[hosted.secret]
read = "token"

[proxy.up]
url = "{upstream}/simple/"
ttl = 0

[index.all]
sources = ["secret", "main", "up"]
"""


def metadata(display: str, version: str, readme: str, *, summary: str = "a package") -> bytes:
    head = (
        f"Metadata-Version: 2.1\nName: {display}\nVersion: {version}\nSummary: {summary}\n"
        "Description-Content-Type: text/markdown\n\n"
    )
    return (head + readme).encode()


def wheel(directory: Path, display: str, version: str, readme: str) -> Path:
    name = normalize_name(display)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / wheel_filename(name, version)
    path.write_bytes(
        build_wheel(name, display, version, metadata=metadata(display, version, readme))
    )
    return path


class HostileUpstream:
    """A PEP 691 index on loopback serving one project, ``evil``, whose page carries injections
    in every text field (see the module docstring), and its wheel and ``.metadata``."""

    def __init__(self) -> None:
        meta = metadata("evil", "1.0", HOSTILE_README)
        self.wheel_name = wheel_filename(normalize_name("evil"), "1.0")
        body = build_wheel(normalize_name("evil"), "evil", "1.0", metadata=meta)
        sha = hashlib.sha256(body).hexdigest()
        path = f"/packages/{sha[:2]}/{sha[2:4]}/{sha[4:]}/{self.wheel_name}"
        self.files = {path: body, path + ".metadata": meta}
        page = {
            "meta": {
                "api-version": "1.1",
                "project-status": {"status": "deprecated", "reason": f"{SCRIPT} {CONTROL}"},
            },
            "name": "evil",
            "versions": ["1.0", "2.0", "3.0", "4.0"],
            "files": [
                {
                    "filename": self.wheel_name,
                    "url": path,
                    "hashes": {"sha256": sha},
                    "requires-python": f">=3.8{QUOTE}",
                    "yanked": f"{SCRIPT}{IMG}{CONTROL}",
                    "core-metadata": {"sha256": hashlib.sha256(meta).hexdigest()},
                    "size": len(body),
                    "upload-time": "2025-01-01T00:00:00Z",
                    "provenance": JS_URL,
                },
                {
                    "filename": "evil-2.0.tar.gz",
                    "url": JS_URL,
                    "hashes": {"sha256": "ab" * 32},
                    "size": 1,
                },
            ],
            "tracks": [f"https://example.org/{SCRIPT}/"],
        }
        self.page = json.dumps(page).encode()
        self.root = json.dumps(
            {"meta": {"api-version": "1.1"}, "projects": [{"name": "evil"}]}
        ).encode()
        handler = self._handler()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                path = self.path.split("?")[0]
                kind = "application/vnd.pypi.simple.v1+json"
                if path == "/simple/":
                    body = upstream.root
                elif path == "/simple/evil/":
                    body = upstream.page
                elif path in upstream.files:
                    body, kind = upstream.files[path], "application/octet-stream"
                else:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        return Handler

    def __enter__(self) -> HostileUpstream:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class Site:
    live: object
    url: str
    data: Path
    admin: str
    work: Path

    def token(self, user: str, *scopes: str, index: str | None = None) -> str:
        args = ["token", "create", "--data-dir", str(self.data), "--user", user]
        for scope in scopes or ("read",):
            args += ["--scope", scope]
        if index:
            args += ["--index", index]
        return cli(*args).stdout.strip()


def _upload(site_url: str, index: str, token: str, files: list[Path]) -> None:
    done = twine(f"{site_url}/{index}/legacy/", token, files)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.fixture(scope="package")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    from tests.server.live import serve

    work = tmp_path_factory.mktemp("ui")
    data = work / "headwater-data"
    with HostileUpstream() as upstream:
        (work / "headwater.toml").write_text(CONFIG.format(upstream=upstream.url))
        with serve(["--data-dir", str(data)], work) as live:
            admin = (data / "admin-token").read_text().strip()
            site = Site(live, live.url, data, admin, work)
            dist = work / "dist"
            _upload(live.url, "main", admin, [
                wheel(dist, "Hello_World", "0.9", README),
                wheel(dist, "Hello_World", "1.0", README),
                wheel(dist, "Hello_World", "2.0rc1", README),
                wheel(dist, "hostile-readme", "1.0", HOSTILE_README),
            ])  # fmt: skip
            _upload(live.url, "secret", admin, [wheel(dist, "secret-thing", "1.0", README)])
            for project, reason in (("hello-world", "broken build"), ("hostile-readme", SCRIPT)):
                version = "0.9" if project == "hello-world" else "1.0"
                answer = api(
                    f"{live.url}/api/main/projects/{project}/yank",
                    "POST",
                    admin,
                    {"version": version, "reason": reason},
                )
                assert answer.status == 200, answer.text
            yield site


@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    with launch() as opened:
        yield opened
