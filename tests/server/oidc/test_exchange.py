"""The token exchange through the real application (in process) against the tests' own OIDC
issuer on loopback: every refusal, and what a minted token may then upload."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric import rsa

from headwater.config.settings import (
    HostedSettings,
    IndexSettings,
    PublisherSettings,
    ServePlan,
    ServeSettings,
)
from headwater.db import Database, GitHubIdentity, OidcIdentity
from headwater.db import schema as t
from headwater.server.factory import build_app
from headwater.server.oidc.exchange import PUBLISHERS_TTL
from tests.oidc_issuer import Issuer
from tests.server.asgi import Answer, call
from tests.server.hosting import dists, upload_form

AUD = "hw-test"


class World:
    def __init__(self, tmp: Path, issuer: Issuer, publishers: list[PublisherSettings]) -> None:
        self.tmp = tmp
        self.issuer = issuer
        self.db = Database.connect(f"sqlite:///{tmp / 'db.sqlite3'}")
        self.db.upgrade()
        plan = ServePlan(
            settings=ServeSettings(data_dir=str(tmp / "data"), oidc_audience=AUD),
            hosted={"main": HostedSettings(publishers=publishers), "second": HostedSettings()},
            indexes={"comp": IndexSettings(sources=["main"], upload="main")},
            default="main",
        )
        self.app = build_app(plan, db=self.db)
        self.runner = asyncio.Runner()
        self.counter = 0
        # The app's startup (the config's publishers into the database) and its shutdown.
        self.lifespan: list[str] = []

    def run(self, coro: Any) -> Any:
        return self.runner.run(coro)

    def startup(self) -> None:
        for hook in self.app._on_startup:
            self.run(hook())

    def close(self) -> None:
        for hook in self.app._on_shutdown:
            with contextlib.suppress(Exception):
                self.run(hook())
        self.runner.close()
        self.db.close()

    def get(self, path: str, query: str = "", **headers: str) -> Answer:
        return self.run(call(self.app, "GET", path, query=query, headers=headers))

    def mint(self, body: Any, path: str = "/_/oidc/mint-token", **headers: str) -> Answer:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        return self.run(
            call(
                self.app,
                "POST",
                path,
                body=raw,
                headers={"content-type": "application/json", **headers},
            )
        )

    def token_for(self, **overrides: Any) -> str:
        return self.issuer.github_token(AUD, **overrides)

    def upload(self, token: str, project: str = "acme-tools", index: str = "main") -> Answer:
        self.counter += 1
        wheel = dists(self.tmp / f"d{self.counter}", project, f"1.{self.counter}")[0]
        body, content_type = upload_form(wheel)
        auth = base64.b64encode(f"__token__:{token}".encode()).decode()
        return self.run(
            call(
                self.app,
                "POST",
                f"/{index}/legacy/",
                body=body,
                headers={"content-type": content_type, "authorization": f"Basic {auth}"},
            )
        )


@pytest.fixture
def issuer() -> Iterator[Issuer]:
    with Issuer() as running:
        yield running


def _publisher(issuer: Issuer, **fields: str) -> GitHubIdentity:
    values = {"repository": "acme/tools", "workflow": "release.yml", **fields}
    return GitHubIdentity(issuer=issuer.url, **values)


@pytest.fixture
def world(tmp_path: Path, issuer: Issuer) -> Iterator[World]:
    made = World(tmp_path, issuer, [])
    made.db.create_user("alice")
    made.db.add_publisher(
        "main", "acme-tools", _publisher(issuer, environment="pypi"), pending=True, owner="alice"
    )
    yield made
    made.close()


def _error(answer: Answer) -> tuple[str, str]:
    body = json.loads(answer.body)
    assert body["message"] == "Token request failed"
    assert body["status"] == answer.status and body["title"]
    assert answer.headers["content-type"] == "application/problem+json"
    (error,) = body["errors"]
    return error["code"], error["description"]


def _minted(answer: Answer) -> str:
    assert answer.status == 200, answer.body
    body = json.loads(answer.body)
    assert body["success"] is True
    assert abs(body["expires"] - (time.time() + 900)) < 60
    return str(body["token"])


# --- the endpoints -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/_/oidc/audience", "/main/_/oidc/audience", "/comp/_/oidc/audience"]
)
def test_the_audience_is_served_at_the_root_and_per_upload_index(world: World, path: str) -> None:
    answer = world.get(path)
    assert answer.status == 200
    assert json.loads(answer.body) == {"audience": AUD}


def test_an_index_without_uploads_has_no_audience(world: World) -> None:
    assert world.get("/nothing/_/oidc/audience").status == 404


# --- the happy path ----------------------------------------------------------------------------


def test_a_pending_publisher_mints_creates_the_project_and_is_bound(world: World) -> None:
    token = _minted(world.mint({"token": world.token_for()}))
    assert world.upload(token).status == 200
    (publisher,) = world.db.publishers("main", "acme-tools")
    assert publisher.status == "active"
    assert world.db.owners("main", "acme-tools") == ["alice"]
    record = world.db.project("main", "acme-tools")
    assert record is not None and record.files[0].uploader is not None
    assert record.files[0].uploader.startswith("trusted-publisher:repo:acme/tools")
    # The same token uploads again (multi-use by default) ...
    assert world.upload(token).status == 200
    # ... but only to the projects it was minted for.
    other = world.upload(token, project="other-thing")
    assert other.status == 403 and b"limited to the project(s) acme-tools" in other.body
    # The publishing log has the mint, its claims and both uploads.
    (record_,) = world.db.publishing_log()
    assert record_.claims["repository"] == "acme/tools"
    assert [u.filename for u in record_.uploads] == [
        "acme_tools-1.1-py3-none-any.whl",
        "acme_tools-1.2-py3-none-any.whl",
    ]


def test_the_per_index_endpoint_grants_only_in_its_index(world: World, issuer: Issuer) -> None:
    world.db.add_publisher("second", "acme-tools", _publisher(issuer), pending=True)
    # Only second's publisher (any environment) matches a staging job: main's endpoint refuses.
    staging = world.token_for(environment="staging")
    code, text = _error(world.mint({"token": staging}, "/main/_/oidc/mint-token"))
    assert code == "invalid-publisher" and "index 'main'" in text
    token = _minted(world.mint({"token": world.token_for()}, "/second/_/oidc/mint-token"))
    assert world.upload(token, index="second").status == 200
    refused = world.upload(token, index="main")
    assert refused.status == 403 and b"limited to the index(es) second" in refused.body


def test_the_root_endpoint_grants_in_every_index_whose_publisher_matches(
    world: World, issuer: Issuer
) -> None:
    world.db.add_publisher("second", "acme-tools", _publisher(issuer), pending=True)
    token = _minted(world.mint({"token": world.token_for()}))
    assert world.upload(token, index="main").status == 200
    assert world.upload(token, index="second").status == 200


def test_a_removed_publisher_stops_its_tokens_at_once(world: World) -> None:
    token = _minted(world.mint({"token": world.token_for()}))
    (publisher,) = world.db.publishers("main")
    world.db.remove_publisher(publisher.id)
    answer = world.upload(token)
    assert answer.status == 403 and b"trusted publisher that may no longer publish" in answer.body
    assert world.db.project("main", "acme-tools") is None


def test_a_pending_publisher_cannot_take_over_a_project_someone_else_created(world: World) -> None:
    token = _minted(world.mint({"token": world.token_for()}))
    _, alice = world.db.create_token("alice")
    world.db.create_user("mallory")
    _, mallory = world.db.create_token("mallory")
    assert world.upload(mallory).status == 200  # mallory creates acme-tools first
    answer = world.upload(token)
    assert answer.status == 403
    # A token minted while the publishers of the issuer are still in memory cannot upload
    # either (uploads ask the database) ...
    again = world.mint({"token": world.token_for()})
    if again.status == 200:
        assert world.upload(json.loads(again.body)["token"]).status == 403
    # ... and once they are read again, the stale publisher mints nothing.
    time.sleep(PUBLISHERS_TTL + 0.1)
    code, _ = _error(world.mint({"token": world.token_for()}))
    assert code == "invalid-publisher"
    assert alice


def test_an_expired_minted_token_gets_the_usual_refusal(world: World) -> None:
    token = _minted(world.mint({"token": world.token_for()}))
    with world.db._engine.begin() as conn:
        conn.execute(
            sa.update(t.minted_tokens).values(expires=datetime.now(UTC) - timedelta(seconds=1))
        )
    answer = world.upload(token)
    assert answer.status == 403
    assert b"unknown, revoked or expired" in answer.body


def test_a_single_use_token_uploads_once(world: World) -> None:
    answer = world.mint({"token": world.token_for(), "features": ["single-use-token"]})
    token = _minted(answer)
    assert world.upload(token).status == 200
    second = world.upload(token)
    assert second.status == 403


@pytest.mark.parametrize(
    "features", [["both"], ["single-use-token", "multi-use-token"], "single-use-token"]
)
def test_unknown_or_contradictory_features_are_refused(world: World, features: Any) -> None:
    code, _ = _error(world.mint({"token": world.token_for(), "features": features}))
    assert code == "invalid-payload"


# --- refusals -----------------------------------------------------------------------------------


def _hs256(world: World) -> str:
    from cryptography.hazmat.primitives import serialization

    pem = world.issuer.key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = {"alg": "HS256", "kid": world.issuer.kid}
    claims = world.issuer.claims(AUD)

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    import hashlib
    import hmac

    return f"{signing_input}.{b64(hmac.new(pem, signing_input.encode(), hashlib.sha256).digest())}"


def _alg_none(world: World) -> str:
    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    header = b64(json.dumps({"alg": "none", "kid": world.issuer.kid}).encode())
    return f"{header}.{b64(json.dumps(world.issuer.claims(AUD)).encode())}."


NEGATIVE: list[tuple[str, Any, int, str, str]] = [
    (
        "wrong repository",
        lambda w: w.token_for(repository="acme/other"),
        422,
        "invalid-publisher",
        "repository=acme/other",
    ),
    (
        "wrong workflow",
        lambda w: w.token_for(
            job_workflow_ref="acme/tools/.github/workflows/ci.yml@refs/tags/v1.0"
        ),
        422,
        "invalid-publisher",
        "ci.yml",
    ),
    (
        "wrong environment",
        lambda w: w.token_for(environment="staging"),
        422,
        "invalid-publisher",
        "environment=staging",
    ),
    (
        "no environment",
        lambda w: w.token_for(environment=None),
        422,
        "invalid-publisher",
        "no trusted publisher",
    ),
    ("expired", lambda w: w.token_for(exp=int(time.time()) - 120), 422, "invalid-token", "expired"),
    ("wrong audience", lambda w: w.issuer.github_token("pypi"), 422, "invalid-token", "audience"),
    (
        "bad signature",
        lambda w: w.issuer.token(
            w.issuer.claims(AUD), key=rsa.generate_private_key(public_exponent=65537, key_size=2048)
        ),
        422,
        "invalid-token",
        "signature",
    ),
    (
        "unknown kid",
        lambda w: w.issuer.token(w.issuer.claims(AUD), headers={"kid": "made-up"}),
        422,
        "invalid-token",
        "no key 'made-up'",
    ),
    ("alg none", _alg_none, 422, "invalid-token", "algorithm"),
    ("HS256 with the public key as secret", _hs256, 422, "invalid-token", "algorithm"),
    (
        "oversized token",
        lambda w: w.token_for(padding="x" * 20_000),
        422,
        "invalid-token",
        "longer than",
    ),
    ("garbage", lambda w: "garbage", 422, "invalid-token", "not a JWT"),
    (
        "unknown issuer",
        lambda w: w.token_for(iss="https://token.actions.githubusercontent.com"),
        422,
        "invalid-publisher",
        "uses the issuer",
    ),
]


@pytest.mark.parametrize(
    ("case", "make", "status", "code", "words"), NEGATIVE, ids=[row[0] for row in NEGATIVE]
)
def test_every_bad_token_is_refused_and_mints_nothing(
    world: World, case: str, make: Any, status: int, code: str, words: str
) -> None:
    answer = world.mint({"token": make(world)})
    assert answer.status == status, (case, answer.body)
    got_code, description = _error(answer)
    assert got_code == code, (case, description)
    assert words in description, (case, description)
    assert world.db.publishing_log() == []


def test_an_unknown_issuer_is_never_contacted(world: World, issuer: Issuer) -> None:
    token = issuer.token(issuer.claims(AUD, iss="http://127.0.0.1:9/"))
    code, _ = _error(world.mint({"token": token}))
    assert code == "invalid-publisher"
    assert issuer.requests == []


def test_a_replayed_token_is_refused(world: World) -> None:
    token = world.token_for()
    _minted(world.mint({"token": token}))
    code, description = _error(world.mint({"token": token}))
    assert (code, "exchanged before" in description) == ("invalid-token", True)
    assert len(world.db.publishing_log()) == 1


@pytest.mark.parametrize(
    "body",
    [b"", b"not json", b"[]", b'{"token": 5}', b'{"tok": "x"}', b'{"token": null}', b"\xff\xfe"],
)
def test_bad_bodies_are_invalid_payload(world: World, body: bytes) -> None:
    answer = world.mint(body)
    assert answer.status == 422
    assert _error(answer)[0] in ("invalid-payload", "invalid-token")


def test_a_body_over_the_limit_is_413(world: World) -> None:
    answer = world.mint({"token": "x" * 70_000})
    assert answer.status == 413


def test_issuer_down_with_no_keys_is_a_503_naming_it(world: World, issuer: Issuer) -> None:
    issuer.down = True
    answer = world.mint({"token": world.token_for()})
    assert answer.status == 503
    code, description = _error(answer)
    assert code == "issuer-unavailable" and issuer.url in description
    assert "nothing was minted" in description


def test_issuer_down_with_cached_keys_still_mints(world: World, issuer: Issuer) -> None:
    _minted(world.mint({"token": world.token_for()}))
    issuer.down = True
    _minted(world.mint({"token": world.token_for()}))


def test_a_rotated_key_is_fetched_on_its_new_kid(world: World, issuer: Issuer) -> None:
    _minted(world.mint({"token": world.token_for()}))
    old_kid = issuer.kid
    old_key = issuer.key
    issuer.rotate()
    _minted(world.mint({"token": world.token_for()}))  # unknown kid: fetched again
    # The old key left the JWKS: a token it signs is refused (and, within the minute, the
    # issuer is not asked again for every unknown kid).
    asked = len(issuer.requests)
    stale = issuer.token(issuer.claims(AUD), key=old_key, headers={"kid": old_kid})
    code, description = _error(world.mint({"token": stale}))
    assert code == "invalid-token" and old_kid in description
    assert len(issuer.requests) == asked


# --- PEP 807 discovery -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("upload_path", "index"),
    [
        ("/main/legacy/", "main"),
        ("/main/legacy", "main"),
        ("/legacy/", "main"),
        ("/comp/legacy/", "comp"),
        ("/second/legacy/", "second"),
    ],
)
def test_discovery_answers_the_endpoints_of_an_upload_url(
    world: World, upload_path: str, index: str
) -> None:
    answer = world.get(
        "/.well-known/pytp",
        query="discover=" + quote(upload_path, safe=""),
        host="pypi.example.org",
    )
    assert answer.status == 200, answer.body
    assert answer.headers["content-type"] == "application/vnd.pypi.pytp.v1+json"
    document = json.loads(answer.body)
    assert document == {
        "audience-endpoint": f"http://pypi.example.org/{index}/_/oidc/audience",
        "token-mint-endpoint": f"http://pypi.example.org/{index}/_/oidc/mint-token",
        "features": ["single-use-token", "multi-use-token"],
        "default-features": ["multi-use-token"],
    }
    # The endpoints it names work.
    assert world.get(f"/{index}/_/oidc/audience").status == 200


@pytest.mark.parametrize(
    "upload_path", ["/nothing/legacy/", "/main/simple/", "", "/", "/main/legacy/x"]
)
def test_discovery_of_a_path_without_trusted_publishing_is_a_bare_404(
    world: World, upload_path: str
) -> None:
    answer = world.get("/.well-known/pytp", query="discover=" + quote(upload_path, safe=""))
    assert (answer.status, answer.body) == (404, b"")


def test_discovery_negotiates_its_media_type(world: World) -> None:
    query = "discover=%2Fmain%2Flegacy%2F"
    host = "127.0.0.1:8080"
    for accept, status in [
        ("application/vnd.pypi.pytp.v1+json", 200),
        ("*/*", 200),
        ("application/json", 200),
        ("application/vnd.pypi.pytp.v2+json", 406),
        ("application/vnd.pypi.pytp.v2+json, application/vnd.pypi.pytp.v1+json", 200),
    ]:
        assert (
            world.get("/.well-known/pytp", query=query, accept=accept, host=host).status == status
        )
    assert world.get("/.well-known/pytp", host=host).status == 400
    # A Host header that is not a host never reaches the answer.
    assert world.get("/.well-known/pytp", query=query, host="evil.example/<x>").status == 404


# --- the configuration file ---------------------------------------------------------------------


def test_publishers_in_the_configuration_are_synced_at_startup(
    tmp_path: Path, issuer: Issuer
) -> None:
    configured = [
        PublisherSettings(
            project="acme-tools",
            github={"repository": "acme/tools", "workflow": "release.yml", "issuer": issuer.url},
        ),
        PublisherSettings(project="other", oidc={"issuer": issuer.url, "claims": {"sub": "job"}}),
    ]
    world = World(tmp_path, issuer, configured)
    try:
        world.startup()
        found = world.db.publishers("main")
        assert [(p.project, p.origin, p.status) for p in found] == [
            ("acme-tools", "config", "pending"),
            ("other", "config", "pending"),
        ]
        assert isinstance(found[1].identity, OidcIdentity)
        token = _minted(world.mint({"token": world.token_for()}))
        assert world.upload(token).status == 200
    finally:
        world.close()


@pytest.mark.parametrize(
    ("entry", "words"),
    [
        ({"github": {"repository": "acme/tools"}}, "workflow"),
        ({"github": {"repository": "acme/tools", "workflow": "r.yml", "colour": "red"}}, "colour"),
        ({"gitlab": {"project_path": "nogroup"}}, "project path"),
    ],
)
def test_a_bad_publisher_in_the_configuration_stops_the_server_clearly(
    tmp_path: Path, issuer: Issuer, entry: dict[str, Any], words: str
) -> None:
    from headwater.errors import HeadwaterError

    with pytest.raises(HeadwaterError, match=words) as caught:
        world = World(tmp_path, issuer, [PublisherSettings(project="p", **entry)])
        try:
            world.startup()
        finally:
            world.close()
    assert "hosted.main.publishers" in str(caught.value)


def test_a_publisher_entry_names_exactly_one_kind() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        PublisherSettings(project="p")
    with pytest.raises(ValueError, match="exactly one"):
        PublisherSettings(project="p", github={}, gitlab={})
