"""A real ``headwater serve`` with the interface, and a real browser, for tests/ui.

The server has a public hosted index ``main`` (the default), a private hosted index ``secret``
(``read = "token"``) and a composed index ``all`` over both; ``admin`` is the token
``headwater serve`` created on first start.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.browser import Browser, launch
from tests.server.hosting import cli
from tests.server.live import Live, serve

CONFIG = """\
[serve]
default_index = "main"

[hosted.main]

[hosted.secret]
read = "token"

[index.all]
sources = ["secret", "main"]
"""


@dataclass
class Site:
    live: Live
    data: Path
    admin: str
    work: Path

    @property
    def url(self) -> str:
        return self.live.url

    def token(self, user: str, *scopes: str, index: str | None = None) -> str:
        args = ["token", "create", "--data-dir", str(self.data), "--user", user]
        for scope in scopes or ("read",):
            args += ["--scope", scope]
        if index:
            args += ["--index", index]
        return cli(*args).stdout.strip()


@pytest.fixture(scope="package")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    work = tmp_path_factory.mktemp("ui")
    data = work / "headwater-data"
    (work / "headwater.toml").write_text(CONFIG)
    with serve(["--data-dir", str(data)], work) as live:
        admin = (data / "admin-token").read_text().strip()
        yield Site(live, data, admin, work)


@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    with launch() as opened:
        yield opened
