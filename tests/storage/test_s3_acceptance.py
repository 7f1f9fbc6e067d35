"""Issue 11's storage promises as an outside tester checks them, against the real SeaweedFS:

- ``addressing_style`` ``virtual`` (and ``auto`` choosing it) with an endpoint of the operator's:
  every operation, multipart included, reaches ``BUCKET.HOST`` and the object lands in that
  bucket under its key. (The endpoint used to lose the bucket: requests went to ``HOST/KEY``.)
  The test server accepts virtual-hosted names (``-s3.domainName``); a forward proxy that
  sends every name to it stands in for DNS.
- A wrong endpoint says what went wrong: refused, unresolvable, not accepting a connection in
  time, or silent; the time it names is the option that ran out. (A refused connection used to
  be reported as "did not answer in time (60 s)", read from obstore's ``retry_timeout``.)
- Keys with characters that need escaping, under prefixes that do too: written, read, listed by
  prefix, presigned and deleted.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import signal
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from headwater.storage import StorageError
from headwater.storage.location import (
    InvalidStorageURL,
    S3Location,
    S3Options,
    addressing,
    request_endpoint,
)
from headwater.storage.s3 import S3Storage
from headwater.storage.s3_obstore import transport_failure
from tests.seaweed import VIRTUAL_DOMAIN, SeaweedServer, s3_location
from tests.server.hosting import request
from tests.server.live import serve
from tests.storage.host_proxy import HostProxy, host_proxy


def run(storage: S3Storage, work: Callable[[], Awaitable[Any]]) -> Any:
    async def main() -> Any:
        try:
            return await work()
        finally:
            await storage.aclose()

    return asyncio.run(main())


# --- addressing: one decision for every client -----------------------------------------------

ADDRESSING = [
    # (addressing_style, endpoint, bucket) -> style, the base URL requests go to
    ("path", "https://s3.example.org", "pkgs", "path", "https://s3.example.org"),
    ("virtual", "https://s3.example.org/", "pkgs", "virtual", "https://pkgs.s3.example.org"),
    ("auto", "https://s3.eu-west-1.amazonaws.com", "pkgs", "virtual",
     "https://pkgs.s3.eu-west-1.amazonaws.com"),
    ("auto", "https://minio.internal:9000", "pkgs", "virtual", "https://pkgs.minio.internal:9000"),
    ("auto", "https://minio.internal:9000", "my.pkgs", "path", "https://minio.internal:9000"),
    ("auto", "http://localhost:8333", "pkgs", "path", "http://localhost:8333"),
    ("auto", "http://127.0.0.1:8333", "pkgs", "path", "http://127.0.0.1:8333"),
    ("auto", "http://[::1]:8333", "pkgs", "path", "http://[::1]:8333"),
    ("auto", None, "pkgs", "virtual", None),
    ("auto", None, "my.pkgs", "path", None),
]  # fmt: skip


@pytest.mark.parametrize(("style", "endpoint", "bucket", "chosen", "base"), ADDRESSING)
def test_addressing_truth_table(
    style: str, endpoint: str | None, bucket: str, chosen: str, base: str | None
) -> None:
    options = S3Options(endpoint=endpoint, addressing_style=style)  # type: ignore[arg-type]
    assert addressing(options, bucket) == chosen
    assert request_endpoint(options, bucket) == base


def test_virtual_addressing_with_an_ip_endpoint_is_refused_with_the_fix() -> None:
    with pytest.raises(InvalidStorageURL, match="is an IP address: use addressing_style = 'path'"):
        S3Options(endpoint="http://127.0.0.1:8333", addressing_style="virtual")


@pytest.mark.parametrize(("style", "endpoint", "bucket", "chosen", "base"), ADDRESSING)
def test_presigned_urls_name_the_bucket_as_the_style_says(
    style: str, endpoint: str | None, bucket: str, chosen: str, base: str | None
) -> None:
    """A presigned URL is built by the same client as every request: it shows where requests go."""
    options = S3Options(
        endpoint=endpoint, addressing_style=style, region="eu-west-1",  # type: ignore[arg-type]
        access_key_id="AKIDEXAMPLE", secret_access_key="never-shown", allow_plaintext_secrets=True,
    )  # fmt: skip
    storage = S3Storage(S3Location(bucket=bucket, prefix="pre/", options=options))
    url = run(storage, lambda: storage.presigned_url("web/a b+c.whl", expires=60))
    parts = urlsplit(url)
    host = urlsplit(base or "https://s3.eu-west-1.amazonaws.com").netloc
    if chosen == "virtual":
        assert parts.netloc == (host if base else f"{bucket}.{host}")
        assert parts.path == "/pre/web/a%20b%2Bc.whl"
    else:
        assert parts.netloc == (host if base else "s3.eu-west-1.amazonaws.com")
        assert parts.path == f"/{bucket}/pre/web/a%20b%2Bc.whl"
    assert "never-shown" not in url


@pytest.fixture
def virtual_host(
    seaweed: SeaweedServer, s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[str, HostProxy]]:
    """The test server under a name only a proxy resolves (``s3.headwater.test``), reached
    through that proxy by every client (obstore, aiobotocore and urllib read ``HTTP_PROXY``)."""
    address = urlsplit(seaweed.endpoint)
    with host_proxy((address.hostname or "127.0.0.1", address.port or 80)) as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        monkeypatch.setenv("http_proxy", proxy.url)
        monkeypatch.setenv("NO_PROXY", "")
        monkeypatch.setenv("no_proxy", "")
        yield f"http://{VIRTUAL_DOMAIN}:{address.port}", proxy


@pytest.mark.parametrize("style", ["virtual", "auto"])
def test_virtual_hosted_addressing_on_a_real_server(
    seaweed: SeaweedServer, s3_bucket: str, virtual_host: tuple[str, HostProxy], style: str
) -> None:
    endpoint, proxy = virtual_host
    base = s3_location(seaweed, s3_bucket, "v/").options
    location = S3Location(
        bucket=s3_bucket,
        prefix="v/",
        options=S3Options(**{**_fields(base), "endpoint": endpoint, "addressing_style": style}),
    )
    storage = S3Storage(location)
    big = os.urandom(1 << 20) * 11  # multipart: three parts of 5 MiB at most

    async def go() -> tuple[list[str], bytes, str]:
        await storage.write_bytes("web/simple/p/index.html", b"<html>page</html>")
        async with storage.writer("web/packages/aa/big.whl") as w:
            for offset in range(0, len(big), 1 << 20):
                await w.write(big[offset : offset + (1 << 20)])
        assert await storage.read_bytes("web/simple/p/index.html") == b"<html>page</html>"
        ranged = b"".join(
            [c async for c in storage.open_read("web/packages/aa/big.whl", start=7, end=19)]
        )
        assert await storage.digest("web/packages/aa/big.whl") == (
            hashlib.sha256(big).hexdigest(),
            len(big),
        )
        keys = sorted([k async for k in storage.iter_keys("web")])
        url = await storage.presigned_url("web/simple/p/index.html", expires=60)
        return keys, ranged, url

    keys, ranged, url = run(storage, go)
    assert keys == ["web/packages/aa/big.whl", "web/simple/p/index.html"]
    assert ranged == big[7:19]
    assert urlsplit(url).netloc == f"{s3_bucket}.{VIRTUAL_DOMAIN}:{urlsplit(endpoint).port}"
    # Through the proxy (urlopen's global opener keeps the proxy of its first use), no credentials.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({"http": proxy.url}))
    with opener.open(url, timeout=30) as answer:
        assert answer.read() == b"<html>page</html>"
    # Every request named the bucket in the host, and the objects are in that bucket.
    assert proxy.hosts and all(h.startswith(f"{s3_bucket}.{VIRTUAL_DOMAIN}:") for h in proxy.hosts)
    listed = seaweed.client().list_objects_v2(Bucket=s3_bucket, Prefix="v/").get("Contents", [])
    assert sorted(o["Key"] for o in listed) == [
        "v/web/packages/aa/big.whl",
        "v/web/simple/p/index.html",
    ]
    assert run(storage, lambda: storage.delete("web/simple/p/index.html")) is True


def _fields(options: S3Options) -> dict[str, Any]:
    return {f: getattr(options, f) for f in options.__struct_fields__}


# --- a wrong endpoint says which way it is wrong ---------------------------------------------


def _options(endpoint: str, **extra: Any) -> S3Location:
    given: dict[str, Any] = {
        "endpoint": endpoint, "addressing_style": "path", "access_key_id": "AKID",
        "secret_access_key": "s3cr3t-value", "allow_plaintext_secrets": True, "max_attempts": 2,
    }  # fmt: skip
    return S3Location(bucket="bucket", options=S3Options(**{**given, **extra}))


def _failure(location: S3Location) -> tuple[str, float]:
    storage = S3Storage(location)

    async def go() -> tuple[str, float]:
        started = time.monotonic()
        with pytest.raises(StorageError) as caught:
            await storage.write_bytes("web/x", b"1")
        return str(caught.value), time.monotonic() - started

    message, took = run(storage, go)
    assert "s3cr3t-value" not in message and "Traceback" not in message
    return message, took


def test_a_refused_connection_is_named_as_such() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nobody listens
    message, took = _failure(_options(f"http://127.0.0.1:{port}"))
    assert f"cannot reach the S3 endpoint http://127.0.0.1:{port}" in message
    assert "refused" in message and "in time" not in message
    assert took < 10


def test_an_unknown_host_is_named_as_such() -> None:
    message, _ = _failure(_options("http://no-such-host.invalid:8333"))
    assert "the host of the S3 endpoint http://no-such-host.invalid:8333 cannot be resolved" in (
        message
    )


def test_a_silent_endpoint_names_the_read_timeout_that_ran_out() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        held: list[socket.socket] = []

        def hold() -> None:  # accept, and never answer
            for _ in range(2):
                held.append(server.accept()[0])

        threading.Thread(target=hold, daemon=True).start()
        port = server.getsockname()[1]
        message, took = _failure(
            _options(f"http://127.0.0.1:{port}", read_timeout=1, max_attempts=1)
        )
        for conn in held:
            conn.close()
    assert "did not answer in time (1 s)" in message
    assert took < 10


def test_an_endpoint_that_accepts_no_connection_names_the_connect_timeout() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(0)
        port = server.getsockname()[1]
        fillers = []
        for _ in range(16):  # fill the backlog: further connections are not accepted
            filler = socket.socket()
            filler.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                filler.connect(("127.0.0.1", port))
            fillers.append(filler)
        try:
            message, _ = _failure(
                _options(f"http://127.0.0.1:{port}", connect_timeout=1, max_attempts=1)
            )
        finally:
            for filler in fillers:
                filler.close()
    assert "did not accept a connection within 1 s" in message


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("HTTP error: error sending request | Debug: retry_timeout: 60s, HttpError { kind: "
         "Connect, source: tcp connect error, Connection refused }", "connect"),
        ("retry_timeout: 180s HttpError {\n kind: Timeout, ... ConnectError(\"tcp connect "
         "error\", TimedOut)", "connect-timeout"),
        ("retry_timeout: 60s HttpError {\n kind: Timeout, source: reqwest::Error { kind: "
         "Request, source: TimedOut }", "timeout"),
        ("HttpError { kind: Connect, ... dns error: failed to lookup address", "resolve"),
        ("Error performing PUT ... retry_timeout: 60s ... status code: 403", None),
        ("<Code>NoSuchBucket</Code> retry_timeout: 60s", None),
    ],
)  # fmt: skip
def test_transport_failure_truth_table(text: str, kind: str | None) -> None:
    assert transport_failure(text) == kind


# --- keys that need escaping -----------------------------------------------------------------

ODD_KEYS = [
    "web/packages/a b/c+d/f%20g.whl",
    "web/simple/ü-ñ/index.html",
    "web/x?y/#z.whl",
    "web/a&b=c/@x:y;z.whl",
    "web/~t/!$'()*,.whl",
    "web/[br]/{c}/f.whl",
]


@pytest.mark.parametrize("prefix", ["", "p re+fix%/ü/"])
def test_keys_that_need_escaping_in_every_operation(
    seaweed: SeaweedServer, s3_bucket: str, prefix: str
) -> None:
    storage = S3Storage(s3_location(seaweed, s3_bucket, prefix))

    async def go() -> dict[str, list[str]]:
        await storage.write_many([(k, k.encode()) for k in ODD_KEYS])
        for key in ODD_KEYS:
            assert await storage.read_bytes(key) == key.encode()
            assert b"".join([c async for c in storage.open_read(key, start=4)]) == key.encode()[4:]
            with urllib.request.urlopen(await storage.presigned_url(key, expires=60)) as answer:
                assert answer.read() == key.encode()
        listed = {
            directory: sorted([k async for k in storage.iter_keys(directory)])
            for directory in ("web", "web/packages/a b", "web/x?y", "web/a&b=c", "web/[br]")
        }
        assert all([await storage.delete(k) for k in ODD_KEYS])
        assert [k async for k in storage.iter_keys("web")] == []
        return listed

    listed = run(storage, go)
    for directory, keys in listed.items():
        assert keys == sorted(k for k in ODD_KEYS if k.startswith(directory + "/")), directory


# --- a node started with a bucket it cannot use says so at once ------------------------------


def test_serve_warns_at_start_about_each_bucket_it_cannot_use(
    seaweed: SeaweedServer, s3_bucket: str, tmp_path: Path
) -> None:
    """Wrong credentials, a missing bucket and an endpoint nobody listens on are each named at
    start (source, bucket URL, the reason and its fix); a bucket that answers is not; the node
    starts all the same and stops on SIGTERM (the probe's client never lives in the process
    that starts the workers)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = sock.getsockname()[1]
    ok = f"endpoint={seaweed.endpoint}&addressing_style=path"
    (tmp_path / "headwater.toml").write_text(
        f"""
[hosted.fine]
storage = "s3://{s3_bucket}/fine?{ok}"

[hosted.missing]
storage = "s3://hw-no-such-bucket/x?{ok}"

[proxy.unreachable]
url = "http://127.0.0.1:{dead}/simple/"
storage = "s3://{s3_bucket}/proxy?endpoint=http://127.0.0.1:{dead}&addressing_style=path"
""",
        encoding="utf-8",
    )
    env = {**seaweed.env(), "AWS_CONFIG_FILE": "/nonexistent", "AWS_SHARED_CREDENTIALS_FILE": "/x"}
    with serve(["--data-dir", str(tmp_path / "data")], tmp_path, env=env) as live:
        said = live.output()
        assert request(live.url + "/health/ready").status == 503
        live.process.send_signal(signal.SIGTERM)
        live.process.wait(timeout=20)
    assert "[hosted.fine]" not in said
    assert (
        "headwater: warning: [hosted.missing] storage s3://hw-no-such-bucket/x: the bucket "
        "'hw-no-such-bucket' at " + seaweed.endpoint + " does not exist"
    ) in said
    assert "Create the bucket, or fix the bucket name in the storage URL" in said
    assert (
        f"headwater: warning: [proxy.unreachable] storage s3://{s3_bucket}/proxy: cannot reach "
        f"the S3 endpoint http://127.0.0.1:{dead}"
    ) in said
    assert said.count("The server starts anyway: /health/ready answers 503") == 2
    # Wrong credentials: named as access denied, the secret never shown.
    wrong = {**env, "AWS_SECRET_ACCESS_KEY": "wrong-" + seaweed.secret_key}
    with serve(["--data-dir", str(tmp_path / "data")], tmp_path, env=wrong) as live:
        said = live.output()
    assert f"[hosted.fine] storage s3://{s3_bucket}/fine: access denied to bucket" in said
    assert "Check the credentials and the bucket policy" in said
    assert seaweed.secret_key not in said


# --- every kind of object a tree holds gets the Content-Type a static server must send -------


def test_every_object_kind_of_a_tree_has_its_content_type_in_the_bucket(
    seaweed: SeaweedServer, s3_bucket: str
) -> None:
    """Pages (three forms, root and project), distribution files, PEP 658 metadata, PEP 740
    provenance (it was ``application/octet-stream``), ``last-modified``: each object gets the
    type headwater itself serves it with, so a static website endpoint in front of the bucket
    sends the same."""
    from headwater.provenance import INTEGRITY_MEDIA_TYPE
    from headwater.server.files import _content_type
    from headwater.simple.names import normalize_name
    from headwater.storage.layout import (
        LAST_MODIFIED,
        file_key,
        metadata_key,
        page_key,
        provenance_key,
    )

    sha = "ab" * 32
    wheel, sdist = "pkg-1.0-py3-none-any.whl", "pkg-1.0.tar.gz"
    expected = {
        page_key(None, "json"): "application/vnd.pypi.simple.v1+json",
        page_key(None, "html"): "application/vnd.pypi.simple.v1+html",
        page_key(None, "plain-html"): "text/html; charset=utf-8",
        page_key(normalize_name("Pkg"), "json"): "application/vnd.pypi.simple.v1+json",
        page_key(normalize_name("Pkg"), "html"): "application/vnd.pypi.simple.v1+html",
        page_key(normalize_name("Pkg"), "plain-html"): "text/html; charset=utf-8",
        file_key(sha, wheel): "application/octet-stream",
        file_key(sha, sdist): "application/octet-stream",
        metadata_key(sha, wheel): "text/plain; charset=utf-8",
        provenance_key(sha, wheel): INTEGRITY_MEDIA_TYPE,
        provenance_key(sha, sdist): INTEGRITY_MEDIA_TYPE,
        LAST_MODIFIED: "text/plain; charset=utf-8",
    }
    storage = S3Storage(s3_location(seaweed, s3_bucket, "tree/"))
    run(storage, lambda: storage.write_many([(key, b"x") for key in expected]))
    client = seaweed.client()
    for key, content_type in expected.items():
        stored = client.head_object(Bucket=s3_bucket, Key="tree/" + key)["ContentType"]
        # SeaweedFS takes application/octet-stream for "no type given" and puts its own guess
        # in its place (application/gzip for .tar.gz); AWS keeps the type given.
        allowed = {content_type, "application/gzip"} if key.endswith(".tar.gz") else {content_type}
        assert stored in allowed, (key, stored)
        if key.startswith("web/packages/"):  # what headwater serve sends for the same file
            assert _content_type(key).decode() == content_type, key


# --- redirects to presigned URLs, through the server -----------------------------------------


def test_a_presigned_redirect_names_the_object_works_without_credentials_and_expires(
    seaweed: SeaweedServer, s3_bucket: str, tmp_path: Path
) -> None:
    """``files = "redirect-presigned"`` with ``presign_expires = 2``: the 307 goes to the object
    of the file asked for, the URL alone fetches it, and it is refused once it has expired.
    (Keys that need escaping are signed right: test_keys_that_need_escaping_in_every_operation.)"""
    import http.client

    from tests.server.hosting import dists as make_dists
    from tests.server.hosting import post_upload

    query = f"endpoint={seaweed.endpoint}&addressing_style=path"
    (tmp_path / "headwater.toml").write_text(
        f'[hosted.main]\nstorage = "s3://{s3_bucket}/main?{query}"\n'
        's3 = { files = "redirect-presigned", presign_expires = 2 }\n',
        encoding="utf-8",
    )
    env = {**seaweed.env(), "AWS_CONFIG_FILE": "/nonexistent", "AWS_SHARED_CREDENTIALS_FILE": "/x"}
    data = tmp_path / "data"
    wheel = make_dists(tmp_path / "d", "Plus-Pkg", "1.0")[0]
    with serve(["--data-dir", str(data)], tmp_path, env=env) as live:
        admin = (data / "admin-token").read_text().strip()
        reply = post_upload(f"{live.url}/main/legacy/", admin, wheel)
        assert reply.status == 200, reply.text
        page = request(
            f"{live.url}/main/simple/plus-pkg/",
            headers={"Accept": "application/vnd.pypi.simple.v1+json"},
        )
        from headwater.simple.json import parse_project_page_json

        entry = parse_project_page_json(page.body).files[0]
        parts = urlsplit(live.url)
        conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=30)
        path = urlsplit(f"{live.url}/main/simple/plus-pkg/{entry.url}").path
        from posixpath import normpath

        conn.request("GET", normpath(path))
        answer = conn.getresponse()
        answer.read()
        conn.close()
        assert answer.status == 307, answer.status
        location = answer.getheader("location") or ""
    signed = urlsplit(location)
    assert signed.path.startswith(f"/{s3_bucket}/main/web/packages/")
    assert signed.path.endswith(f"/{entry.hashes['sha256'][4:]}/{wheel.name}"), signed.path
    assert "X-Amz-Expires=2" in signed.query and seaweed.secret_key not in location
    with urllib.request.urlopen(location, timeout=30) as got:
        assert hashlib.sha256(got.read()).hexdigest() == entry.hashes["sha256"]
    time.sleep(3.5)
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(location, timeout=30)
    refused.value.close()
    assert refused.value.code == 403


# --- headwater installed without its s3 extra ------------------------------------------------


@pytest.mark.parametrize(
    ("blocked", "command"),
    [
        (("obstore", "aiobotocore"), ["serve", "--config", "h.toml", "--data-dir", "data",
                                      "--listen", "127.0.0.1:9"]),
        (("obstore",), ["mirror", "--upstream", "http://127.0.0.1:9/simple/", "--target",
                        "s3://packages/pypi"]),
    ],
)  # fmt: skip
def test_a_bucket_without_the_s3_extra_names_the_install_command(
    tmp_path: Path, blocked: tuple[str, ...], command: list[str]
) -> None:
    """The S3 client is headwater's ``s3`` extra: an installation without it, given a bucket,
    says what to install and exits 2 (it was a traceback in a crash-looping worker)."""
    import subprocess
    import sys

    (tmp_path / "h.toml").write_text(
        '[hosted.main]\nstorage = "s3://packages/hosted/main?endpoint=http://127.0.0.1:9"\n',
        encoding="utf-8",
    )
    script = (
        "import sys\n"
        f"for name in {blocked!r}: sys.modules[name] = None  # as if not installed\n"
        "from headwater.cli.main import main\n"
        f"sys.argv = ['headwater', *{command!r}]\n"
        "raise SystemExit(main())\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=60,
        check=False,
    )  # fmt: skip
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert "install headwater with its s3 extra, pip install 'headwater[s3]'" in done.stderr
    assert " and ".join(blocked) in done.stderr
