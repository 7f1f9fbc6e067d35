"""Every page of one index says the same api-version, whatever kind the index is.

A table over every kind of index the server answers (hosted, mirror tree, caching proxy,
directory, a composed index with a hosted source and one without): the project list and every
project page of one index claim one JSON api-version, 1.5 exactly where the index implements
PEP 752 (and then every project page carries ``namespaces`` and ``/<index>/namespaces`` answers),
1.4 elsewhere with no ``namespaces`` key and a 404 for ``/<index>/namespaces``. Each page also
passes the version validator of tests/simple/test_versions.py. Negotiated answers (200, 304, 406)
say ``Vary: Accept``; ``X-PyPI-Last-Serial`` is there exactly when the page knows a serial.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from headwater.config.settings import (
    HostedSettings,
    IndexSettings,
    ProxySettings,
    ServePlan,
    ServeSettings,
)
from headwater.db import Database
from headwater.server.factory import build_app
from headwater.testing.corpus import Corpus
from headwater.testing.upstream import Upstream
from tests.server.asgi import Answer, call
from tests.server.conftest import build_tree
from tests.server.hosting import dists, upload_form
from tests.server.test_hosted_app import _auth
from tests.simple.test_versions import conformance_problems

JSON = {"Accept": "application/vnd.pypi.simple.v1+json"}

#: index -> (kind, implements PEP 752)
INDEXES = {
    "main": ("hosted", True),
    "mirror": ("mirror", False),
    "proxy": ("proxy", False),
    "folder": ("directory", False),
    "composed": ("index with a hosted source", True),
    "public": ("index without one", False),
}


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Iterator[Database]:
    db = Database.connect(f"sqlite:///{tmp_path / 'hw.sqlite3'}")
    db.upgrade()
    yield db
    db.close()


def test_every_page_of_an_index_claims_one_version(tmp_path: Path, sqlite_db: Database) -> None:
    corpus = Corpus.generate(3, releases=1, files=2, seed=1010)
    tree = tmp_path / "tree"
    build_tree(tree, corpus)
    folder = tmp_path / "folder"
    dists(folder, "loose-thing", "1.0")

    async def go() -> dict[str, list[tuple[str, Answer]]]:
        async with Upstream(corpus, serials=False) as up:
            plan = ServePlan(
                settings=ServeSettings(data_dir=str(tmp_path / "data")),
                hosted={"main": HostedSettings()},
                mirrors={"mirror": str(tree)},
                proxies={"proxy": ProxySettings(url=up.simple_url)},
                directories={"folder": str(folder)},
                indexes={
                    "composed": IndexSettings(sources=["main", "proxy"]),
                    "public": IndexSettings(sources=["mirror", "folder"]),
                },
                default="main",
            )
            app = build_app(plan, db=sqlite_db)
            sqlite_db.create_user("alice")
            _, admin = sqlite_db.create_token("alice", scopes={"admin"})
            sqlite_db.grant_namespace("main", "acme", "alice")
            for display in ("acme-tool", "plain-thing"):
                for dist in dists(tmp_path / "dist" / display, display, "1.0"):
                    body, content_type = upload_form(dist)
                    headers = {"Content-Type": content_type, **_auth(admin)}
                    answer = await call(app, "POST", "/main/legacy/", headers=headers, body=body)
                    assert answer.status == 200, answer.body
            seen: dict[str, list[tuple[str, Answer]]] = {}
            for index in INDEXES:
                root = await call(app, "GET", f"/{index}/simple/", headers=JSON)
                assert root.status == 200, (index, root.body)
                pages = [("(list)", root)]
                for entry in json.loads(root.body)["projects"][:6]:
                    path = f"/{index}/simple/{entry['name']}/"
                    pages.append((entry["name"], await call(app, "GET", path, headers=JSON)))
                listed = await call(app, "GET", f"/{index}/namespaces")
                pages.append(("/namespaces", listed))
                seen[index] = pages
            return seen

    seen = asyncio.run(go())
    for index, (kind, pep752) in INDEXES.items():
        expected = "1.5" if pep752 else "1.4"
        *pages, (_, listed) = seen[index]
        claimed = {}
        for name, answer in pages:
            assert answer.status == 200, (index, name, answer.body)
            assert "Accept" in answer.headers["vary"]
            doc = json.loads(answer.body)
            claimed[name] = doc["meta"]["api-version"]
            serial = doc["meta"].get("_last-serial")
            assert answer.headers.get("x-pypi-last-serial") == (
                None if serial is None else str(serial)
            ), (index, name)
            if name != "(list)":
                assert conformance_problems(doc) == [], (index, name)
                assert ("namespaces" in doc) is pep752, (index, kind, name)
        assert set(claimed.values()) == {expected}, (index, kind, claimed)
        assert len(claimed) > 1, (index, "no project page was checked")
        assert listed.status == (200 if pep752 else 404), (index, listed.body)
        if pep752:
            assert json.loads(listed.body) == [{"name": "acme"}]
    composed = dict(seen["composed"][:-1])
    # The proxy's project, served through an index that implements PEP 752: in no namespace.
    proxied = next(
        json.loads(a.body) for n, a in composed.items() if n not in ("(list)", "acme-tool")
    )
    assert proxied["namespaces"] is None
    assert json.loads(composed["acme-tool"].body)["namespaces"] == [{"name": "acme", "owned": True}]


def test_406_says_vary_accept(tmp_path: Path, sqlite_db: Database) -> None:
    plan = ServePlan(
        settings=ServeSettings(data_dir=str(tmp_path / "data")),
        hosted={"main": HostedSettings()},
        default="main",
    )
    app = build_app(plan, db=sqlite_db)
    for path in ("/main/simple/", "/simple/", "/main/simple/anything/"):
        answer = asyncio.run(call(app, "GET", path, headers={"Accept": "image/png"}))
        assert answer.status == 406
        assert "Accept" in answer.headers["vary"], path
