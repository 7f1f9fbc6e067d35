"""Storage URLs and S3 options: parsing, the config tables that carry them, secrets kept out of
every message, and the AWS credential chain against a real SeaweedFS."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import msgspec
import pytest

from headwater.assembly import hosted_storage, proxy_storage
from headwater.config import ConfigError, parse_config
from headwater.config.settings import HostedSettings, ServePlan, ServeSettings
from headwater.storage import FileStorage
from headwater.storage.location import InvalidStorageURL, S3Options, parse_s3_url
from headwater.storage.open import aclose_storage, open_storage
from headwater.storage.s3 import S3Storage
from tests.seaweed import SeaweedServer


@pytest.mark.parametrize(
    ("url", "bucket", "prefix", "expect"),
    [
        ("s3://pkgs", "pkgs", "", {}),
        ("s3://pkgs/", "pkgs", "", {}),
        ("s3://pkgs/pypi", "pkgs", "pypi/", {}),
        ("s3://pkgs/a/b/", "pkgs", "a/b/", {}),
        ("S3://pkgs/a", "pkgs", "a/", {}),
        (
            "s3://my.bucket-1/x?endpoint=http://127.0.0.1:8333&region=eu-west-1&addressing_style=path",
            "my.bucket-1",
            "x/",
            {
                "endpoint": "http://127.0.0.1:8333",
                "region": "eu-west-1",
                "addressing_style": "path",
            },
        ),
        (
            "s3://pkgs?addressing-style=virtual&profile=ci",
            "pkgs",
            "",
            {"addressing_style": "virtual", "profile": "ci"},
        ),
        (
            "s3://pkgs?part_size=8388608&trust_stored_sha256=true",
            "pkgs",
            "",
            {"part_size": 8 << 20, "trust_stored_sha256": True},
        ),
    ],
)
def test_good_urls(url: str, bucket: str, prefix: str, expect: dict[str, object]) -> None:
    location = parse_s3_url(url)
    assert (location.bucket, location.prefix) == (bucket, prefix)
    for key, value in expect.items():
        assert getattr(location.options, key) == value


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("/srv/tree", "not s3://"),
        ("s3://", "bucket name"),
        ("s3://ab", "bucket name"),
        ("s3://Upper", "bucket name"),
        ("s3://-bad", "bucket name"),
        ("s3://a..b", "bucket name"),
        ("s3://b" + "x" * 63, "bucket name"),
        ("s3://key:secret@bucket/p", "credentials never go in a URL"),
        ("s3://bucket/a/../b", "prefix"),
        ("s3://bucket/a//b", "prefix"),
        ("s3://bucket/a/./b", "prefix"),
        ("s3://bucket/a%00b", "prefix"),
        ("s3://bucket/a\\b", "prefix"),
        ("s3://bucket/p#frag", "fragment"),
        ("s3://bucket?secret_access_key=abc", "unknown or secret option"),
        ("s3://bucket?access_key_id=abc", "unknown or secret option"),
        ("s3://bucket?allow_plaintext_secrets=true", "unknown or secret option"),
        ("s3://bucket?colour=blue", "unknown or secret option"),
        ("s3://bucket?endpoint=ftp://x", "endpoint"),
        ("s3://bucket?endpoint=http://user:pw@host", "must not carry credentials"),
        ("s3://bucket?addressing_style=sideways", "addressing_style"),
        ("s3://bucket?part_size=1024", "part_size"),
        ("s3://bucket?max_attempts=0", "max_attempts"),
        ("s3://bucket?read_timeout=0", "read_timeout"),
        # Found by the acceptance audit: a key given twice was reported as "in the URL and in
        # the s3 table"; an empty value was taken as the default without a word.
        ("s3://bucket?region=eu-west-1&region=us-east-1", "region is given twice in the URL"),
        ("s3://bucket?region=", "region is empty in the URL's query"),
        ("s3://bucket?endpoint=", "endpoint is empty in the URL's query"),
        ("s3://bucket?endpoint=http://10.1.2.3:9000&addressing_style=virtual", "IP address"),
    ],
)
def test_bad_urls_name_the_problem(url: str, why: str) -> None:
    with pytest.raises(InvalidStorageURL, match=why) as caught:
        parse_s3_url(url)
    message = str(caught.value)
    assert "=abc" not in message and "abc" not in message.replace("s3://bucket", "")
    assert "pw" not in message and "key:secret" not in message


def test_url_and_table_must_agree() -> None:
    table = S3Options(region="eu-west-1")
    assert parse_s3_url("s3://pkgs?region=eu-west-1", table).options.region == "eu-west-1"
    assert parse_s3_url("s3://pkgs?endpoint=http://h:1", table).options.endpoint == "http://h:1"
    with pytest.raises(InvalidStorageURL, match="given in the URL"):
        parse_s3_url("s3://pkgs?region=us-east-2", table)


def test_plaintext_secrets_need_the_opt_in_and_never_show() -> None:
    with pytest.raises(InvalidStorageURL, match="allow_plaintext_secrets") as caught:
        S3Options(access_key_id="AKIAEXAMPLE", secret_access_key="TOPSECRET-VALUE")
    assert "TOPSECRET-VALUE" not in str(caught.value)
    options = S3Options(
        access_key_id="AKIAEXAMPLE",
        secret_access_key="TOPSECRET-VALUE",
        session_token="TOKEN-VALUE",
        allow_plaintext_secrets=True,
    )
    location = parse_s3_url("s3://pkgs/p", options)
    storage = S3Storage(location)
    for text in (repr(options), str(options), repr(location), str(location), repr(storage)):
        assert "TOPSECRET-VALUE" not in text and "TOKEN-VALUE" not in text
        assert "AKIAEXAMPLE" not in text


_HOSTED = """
[hosted.private]
storage = "s3://pkgs/hosted/private?endpoint=http://127.0.0.1:9"
s3 = {{ region = "eu-west-1", addressing_style = "path"{extra} }}

[proxy.pypi]
url = "https://pypi.org/simple/"
storage = "s3://pkgs/proxy/pypi"

[proxy.plain]
url = "https://pypi.org/simple/"
storage = "cache/plain"

[mirror.m]
upstream = "https://pypi.org/simple/"
target = "s3://pkgs/mirror?region=eu-west-1"
"""


def test_config_takes_storage_urls(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    config = parse_config(_HOSTED.format(extra=""), base=tmp_path)
    hosted = config.hosted["private"]
    assert hosted.storage == "s3://pkgs/hosted/private?endpoint=http://127.0.0.1:9"
    assert hosted.s3 is not None and hosted.s3.region == "eu-west-1"
    assert config.proxy["pypi"].storage == "s3://pkgs/proxy/pypi"
    assert config.proxy["plain"].storage == str(tmp_path / "cache/plain")  # relative: resolved
    assert config.mirror["m"].target == "s3://pkgs/mirror?region=eu-west-1"  # never a path
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]

    plan = ServePlan(
        settings=ServeSettings(data_dir=str(tmp_path / "data")),
        hosted=config.hosted,
        proxies={"pypi": config.proxy["pypi"], "plain": config.proxy["plain"]},
    )
    built = hosted_storage(plan, "private")
    assert isinstance(built, S3Storage)
    assert (built.location.bucket, built.location.prefix) == ("pkgs", "hosted/private/")
    assert built.options.endpoint == "http://127.0.0.1:9" and built.options.region == "eu-west-1"
    assert isinstance(proxy_storage(plan, "pypi"), S3Storage)
    plain = proxy_storage(plan, "plain")
    assert isinstance(plain, FileStorage) and plain.root == tmp_path / "cache/plain"


def test_default_storage_is_unchanged(tmp_path: Path) -> None:
    plan = ServePlan(
        settings=ServeSettings(data_dir=str(tmp_path)), hosted={"main": HostedSettings()}
    )
    built = hosted_storage(plan, "main")
    assert isinstance(built, FileStorage) and built.root == tmp_path / "hosted" / "main"


@pytest.mark.parametrize(
    ("extra", "why"),
    [
        (', secret_access_key = "TOPSECRET", access_key_id = "AK"', "allow_plaintext_secrets"),
        (', colour = "blue"', "colour"),
        (', region = "us-east-2"', "region"),  # duplicate key in TOML itself
        (", part_size = 1", "part_size"),
    ],
)
def test_config_errors_name_the_table(tmp_path: Path, extra: str, why: str) -> None:
    with pytest.raises(ConfigError, match=why) as caught:
        parse_config(_HOSTED.format(extra=extra), source="hw.toml", base=tmp_path)
    assert "TOPSECRET" not in str(caught.value)
    assert "hw.toml" in str(caught.value)


def test_s3_options_without_an_s3_url_are_refused(tmp_path: Path) -> None:
    text = '[hosted.x]\nstorage = "/srv/x"\ns3 = { region = "eu-west-1" }\n'
    with pytest.raises(ConfigError, match=r"\[hosted.x\].*s3 table needs storage"):
        parse_config(text, base=tmp_path)
    text = '[mirror.m]\nupstream = "https://pypi.org/simple/"\ntarget = "t"\ns3 = {}\n'
    with pytest.raises(ConfigError, match="s3 table needs target"):
        parse_config(text, base=tmp_path)


def test_plaintext_secrets_opt_in_warns_without_the_secret(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    extra = ', access_key_id = "AKIAOPTIN", secret_access_key = "TOPSECRET", allow_plaintext_secrets = true'
    with caplog.at_level(logging.WARNING, logger="headwater.config"):
        config = parse_config(_HOSTED.format(extra=extra), source="hw.toml", base=tmp_path)
    assert config.hosted["private"].s3 is not None
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == 1 and "[hosted.private.s3]" in warned[0]
    assert "TOPSECRET" not in warned[0] and "AKIAOPTIN" not in warned[0]
    assert "TOPSECRET" not in repr(config)


def _roundtrip(url: str, s3: S3Options | None = None) -> bytes:
    storage = open_storage(url, s3=s3)
    assert isinstance(storage, S3Storage)

    async def go() -> bytes:
        try:
            await storage.write_bytes("web/x", b"via the chain")
            return await storage.read_bytes("web/x")
        finally:
            await aclose_storage(storage)

    return asyncio.run(go())


def test_credentials_from_the_environment(
    seaweed: SeaweedServer, s3_bucket: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    for key, value in seaweed.env().items():
        monkeypatch.setenv(key, value)
    url = f"s3://{s3_bucket}/env?endpoint={seaweed.endpoint}&addressing_style=path"
    assert _roundtrip(url) == b"via the chain"


def test_credentials_from_a_profile_in_a_credentials_file(
    seaweed: SeaweedServer, s3_bucket: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    credentials = tmp_path / "credentials"
    credentials.write_text(
        "[default]\naws_access_key_id = wrong\naws_secret_access_key = wrong\n\n"
        f"[headwater]\naws_access_key_id = {seaweed.access_key}\n"
        f"aws_secret_access_key = {seaweed.secret_key}\n"
    )
    options = S3Options(
        endpoint=seaweed.endpoint,
        addressing_style="path",
        profile="headwater",
        credentials_file=str(credentials),
    )
    assert _roundtrip(f"s3://{s3_bucket}/profile", options) == b"via the chain"


def test_options_survive_the_plan_round_trip() -> None:
    """Worker processes get the plan as JSON: the S3 options must come back equal."""
    hosted = HostedSettings(
        storage="s3://pkgs/p", s3=S3Options(region="eu-west-1", part_size=8 << 20)
    )
    plan = ServePlan(settings=ServeSettings(), hosted={"p": hosted})
    back = msgspec.json.decode(msgspec.json.encode(plan), type=ServePlan)
    assert back.hosted["p"].s3 == hosted.s3


@pytest.mark.parametrize(
    ("table", "why"),
    [
        ('files = "redirect-presigned", files_base_url = "https://cdn.example/x"', "choose one"),
        ('files_base_url = "ftp://cdn.example"', "http"),
        ('files_base_url = "https://u:p@cdn.example"', "plain ASCII base URL"),
        ('files_base_url = "https://cdn.example/?a=b"', "plain ASCII base URL"),
        ('files_base_url = "https://cdn.example/a b"', "plain ASCII base URL"),
        ('files_base_url = "https://cdn.éxample/"', "plain ASCII base URL"),
        ('files = "redirect-sometimes"', "files"),
        ("presign_expires = 0", "presign_expires"),
        ("presign_expires = 604801", "presign_expires"),
    ],
)
def test_bad_serving_options_are_refused(tmp_path: Path, table: str, why: str) -> None:
    text = f'[hosted.x]\nstorage = "s3://pkgs/x"\ns3 = {{ {table} }}\n'
    with pytest.raises(ConfigError, match=why):
        parse_config(text, base=tmp_path)


def test_a_private_index_never_redirects_to_a_public_url(tmp_path: Path) -> None:
    text = (
        '[hosted.x]\nread = "token"\nstorage = "s3://pkgs/x"\n'
        's3 = { files_base_url = "https://cdn.example/x" }\n'
    )
    with pytest.raises(ConfigError, match="private index's files to a public URL"):
        parse_config(text, base=tmp_path)
    # Presigned redirects are fine for a private index: they are handed out after authorization.
    text = text.replace('files_base_url = "https://cdn.example/x"', 'files = "redirect-presigned"')
    assert parse_config(text, base=tmp_path).hosted["x"].s3 is not None


def test_redirect_urls(tmp_path: Path) -> None:
    public = S3Storage(parse_s3_url("s3://pkgs/p?files_base_url=https://cdn.example/pkgs/p/"))
    assert public.redirects_files
    got = asyncio.run(public.file_url("web/packages/ab/cd/ef/a b+c.whl"))
    assert got == ("https://cdn.example/pkgs/p/web/packages/ab/cd/ef/a%20b%2Bc.whl", 3600)
    assert not S3Storage(parse_s3_url("s3://pkgs/p")).redirects_files


def test_the_serve_banner_names_the_bucket_never_a_secret(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    from headwater.cli.serve import _announce

    extra = ', access_key_id = "AKIABANNER", secret_access_key = "TOPSECRET-BANNER", allow_plaintext_secrets = true'
    with caplog.at_level(logging.WARNING):
        config = parse_config(_HOSTED.format(extra=extra), source="hw.toml", base=tmp_path)
    plan = ServePlan(
        settings=ServeSettings(data_dir=str(tmp_path)),
        hosted=config.hosted,
        proxies={"pypi": config.proxy["pypi"]},
        mirrors={"m": config.mirror["m"].target},
    )
    _announce(plan)
    banner = capsys.readouterr().err
    assert "files in s3://pkgs/hosted/private" in banner
    assert "files in s3://pkgs/proxy/pypi" in banner and "files in s3://pkgs/mirror" in banner
    everything = banner + caplog.text + repr(plan) + str(plan)
    assert "TOPSECRET-BANNER" not in everything and "AKIABANNER" not in everything
