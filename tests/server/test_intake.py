"""receive_upload / validate_form / inspect_upload: twine-shaped bodies and hostile ones.

Item ids are those of standards.md section 4.3 (U1..U11). Every refusal is checked for its status,
for a message that names the problem, and for an empty spool directory afterwards.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterable
from pathlib import Path

import pytest

from headwater.server.intake import inspect_upload, validate_form
from headwater.server.upload_body import Upload, UploadRejected, receive_upload
from headwater.simple.names import normalize_name
from headwater.testing.wheels import build_sdist, build_wheel

BOUNDARY = "----headwaterBoundary7MA4YWxk"
CONTENT_TYPE = f"multipart/form-data; boundary={BOUNDARY}"
WHEEL = build_wheel(normalize_name("foo"), "Foo", "1.0")
WHEEL_NAME = "foo-1.0-py3-none-any.whl"
SDIST = build_sdist(normalize_name("foo"), "Foo", "1.0")
MiB = 1024 * 1024


def md5_b64(data: bytes) -> str:
    digest = hashlib.md5(data, usedforsecurity=False).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def twine_fields(data: bytes = WHEEL, **overrides: str | None) -> list[tuple[str, str]]:
    """The fields twine sends for a wheel (twine package.py / repository.py), with overrides."""
    fields: dict[str, str | None] = {
        "name": "Foo",
        "version": "1.0",
        "metadata_version": "2.1",
        "summary": "A test",
        "filetype": "bdist_wheel",
        "pyversion": "py3",
        "sha256_digest": hashlib.sha256(data).hexdigest(),
        "blake2_256_digest": hashlib.blake2b(data, digest_size=32).hexdigest(),
        ":action": "file_upload",
        "protocol_version": "1",
    }
    fields.update(overrides)
    return [(key, value) for key, value in fields.items() if value is not None]


def multipart(
    fields: Iterable[tuple[str, str]],
    files: Iterable[tuple[str, str, bytes]] = (("content", WHEEL_NAME, WHEEL),),
) -> bytes:
    out = bytearray()
    for name, value in fields:
        out += f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
        out += value.encode() + b"\r\n"
    for name, filename, data in files:
        out += (
            f"--{BOUNDARY}\r\nContent-Disposition: form-data; "
            f'name="{name}"; filename="{filename}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        out += data + b"\r\n"
    out += f"--{BOUNDARY}--\r\n".encode()
    return bytes(out)


async def chunked(body: bytes, size: int = 997) -> AsyncIterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


def receive(
    body: bytes,
    spool: Path,
    *,
    content_type: str = CONTENT_TYPE,
    max_file_size: int = 10 * MiB,
    max_fields_size: int = 64 * 1024,
    chunk: int = 997,
) -> Upload:
    return asyncio.run(
        receive_upload(
            chunked(body, chunk),
            content_type,
            spool,
            max_file_size=max_file_size,
            max_fields_size=max_fields_size,
        )
    )


@pytest.fixture
def spool(tmp_path: Path) -> Path:
    path = tmp_path / "spool"
    path.mkdir()
    return path


def refused(spool: Path, body: bytes, **kw: object) -> UploadRejected:
    with pytest.raises(UploadRejected) as caught:
        receive(body, spool, **kw)  # type: ignore[arg-type]
    assert list(spool.iterdir()) == [], "the spool file must be removed on failure"
    return caught.value


# --- accepted -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "chunk", [1, 997, 1 << 20], ids=["1-byte-chunks", "odd-chunks", "one-chunk"]
)
def test_u1_u3_twine_body_received(spool: Path, chunk: int) -> None:
    upload = receive(multipart(twine_fields()), spool, chunk=chunk)
    with upload:
        assert upload.filename == WHEEL_NAME
        assert upload.path.parent == spool
        assert upload.path.read_bytes() == WHEEL
        assert upload.size == len(WHEEL)
        assert upload.sha256 == hashlib.sha256(WHEEL).hexdigest()
        assert upload.blake2_256 == hashlib.blake2b(WHEEL, digest_size=32).hexdigest()
        assert upload.md5 == hashlib.md5(WHEEL, usedforsecurity=False).hexdigest()
        assert upload.fields["name"] == ("Foo",)
        assert upload.fields[":action"] == ("file_upload",)
    assert not upload.path.exists()


def test_u6_multi_use_fields_kept_in_order(spool: Path) -> None:
    fields = [*twine_fields(), ("requires_dist", "a>=1"), ("requires_dist", "b; extra == 'x'")]
    with receive(multipart(fields), spool) as upload:
        form = validate_form(upload)
    assert form.metadata["requires_dist"] == ("a>=1", "b; extra == 'x'")
    assert form.metadata["summary"] == ("A test",)
    assert ":action" not in form.metadata and "sha256_digest" not in form.metadata


def test_u7_gpg_signature_file_part_discarded(spool: Path) -> None:
    files = [("content", WHEEL_NAME, WHEEL), ("gpg_signature", WHEEL_NAME + ".asc", b"sig")]
    with receive(multipart(twine_fields(), files), spool) as upload:
        assert upload.discarded_files == ("gpg_signature",)
        assert upload.path.read_bytes() == WHEEL
        assert len(list(spool.iterdir())) == 1


def test_u2_to_u7_valid_form(spool: Path) -> None:
    fields = twine_fields(comment="hello")
    with receive(multipart(fields), spool) as upload:
        form = validate_form(upload)
        assert (form.filename, form.filetype, form.pyversion) == (WHEEL_NAME, "bdist_wheel", "py3")
        assert (form.name, form.version, form.metadata_version) == ("Foo", "1.0", "2.1")
        assert form.comment == "hello"
        dist = asyncio.run(inspect_upload(form))
        assert (dist.name, dist.version, dist.filetype) == ("foo", "1.0", "bdist_wheel")


def test_u5_sdist_pyversion_defaults_to_source(spool: Path) -> None:
    fields = twine_fields(SDIST, filetype="sdist", pyversion=None)
    with receive(multipart(fields, [("content", "foo-1.0.tar.gz", SDIST)]), spool) as upload:
        form = validate_form(upload)
        assert form.pyversion == "source"
        assert asyncio.run(inspect_upload(form)).filetype == "sdist"


@pytest.mark.parametrize(
    "digests",
    [
        {"sha256_digest": None, "blake2_256_digest": None, "md5_digest": md5_b64(WHEEL)},
        # twine (6.x) sends md5 as hex, and PyPI takes it.
        {
            "sha256_digest": None,
            "blake2_256_digest": None,
            "md5_digest": hashlib.md5(WHEEL, usedforsecurity=False).hexdigest(),
        },
        {"sha256_digest": hashlib.sha256(WHEEL).hexdigest().upper(), "blake2_256_digest": None},
        {"sha256_digest": None},
    ],
    ids=["U4-md5-only-base64", "U4-md5-only-hex", "U4-sha256-uppercase-hex", "U4-blake2-only"],
)
def test_u4_any_one_matching_digest_is_enough(spool: Path, digests: dict[str, str | None]) -> None:
    with receive(multipart(twine_fields(**digests)), spool) as upload:
        validate_form(upload)


def test_reason_phrase_is_one_printable_line() -> None:
    rejected = UploadRejected(400, "bad\r\nname 'é\x00'")
    assert rejected.reason == "bad name 'é?'"
    assert rejected.status == 400


# --- refused while receiving ----------------------------------------------------------------------


def test_u1_wrong_content_type(spool: Path) -> None:
    rejected = refused(spool, multipart(twine_fields()), content_type="application/json")
    assert rejected.status == 400 and "multipart/form-data" in rejected.reason


def test_u1_missing_boundary(spool: Path) -> None:
    rejected = refused(spool, multipart(twine_fields()), content_type="multipart/form-data")
    assert rejected.status == 400 and "boundary" in rejected.reason


@pytest.mark.parametrize("cut", [10, 30, len(WHEEL) // 2], ids=["closing", "in-trailer", "in-file"])
def test_truncated_body(spool: Path, cut: int) -> None:
    body = multipart(twine_fields())
    rejected = refused(spool, body[:-cut])
    assert rejected.status == 400 and "truncated" in rejected.reason


def test_garbage_body(spool: Path) -> None:
    rejected = refused(spool, b"this is not multipart at all\r\n" * 10)
    assert rejected.status == 400 and "Malformed" in rejected.reason


def test_a_malformed_body_logs_nothing(spool: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The 400 tells the client; the server's log gets no line per bad request (python-multipart
    logged a warning for each)."""
    with caplog.at_level(logging.DEBUG):
        refused(spool, b"this is not multipart at all\r\n" * 10)
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


def test_u3_two_content_parts(spool: Path) -> None:
    files = [("content", WHEEL_NAME, WHEEL), ("content", WHEEL_NAME, WHEEL)]
    rejected = refused(spool, multipart(twine_fields(), files))
    assert rejected.status == 400 and "more than one 'content'" in rejected.reason


def test_u3_missing_content(spool: Path) -> None:
    rejected = refused(spool, multipart(twine_fields(), []))
    assert rejected.status == 400 and "no 'content' file part" in rejected.reason


def test_u3_content_without_filename_is_missing_content(spool: Path) -> None:
    rejected = refused(spool, multipart([*twine_fields(), ("content", "not a file")], []))
    assert rejected.status == 400 and "no 'content' file part" in rejected.reason


def test_file_over_size(spool: Path) -> None:
    rejected = refused(spool, multipart(twine_fields()), max_file_size=len(WHEEL) - 1)
    assert rejected.status == 413 and "File too large" in rejected.reason


def test_fields_over_size(spool: Path) -> None:
    fields = [*twine_fields(), ("description", "x" * 70_000)]
    rejected = refused(spool, multipart(fields))
    assert rejected.status == 413 and "Form fields too large" in rejected.reason


def test_many_empty_parts_count_against_fields_size(spool: Path) -> None:
    rejected = refused(spool, multipart([("a", "")] * 2000), max_fields_size=64 * 1024)
    assert rejected.status == 413


def test_field_not_utf8(spool: Path) -> None:
    body = multipart(twine_fields(summary="SUMMARY")).replace(b"SUMMARY", b"\xff\xfe")
    rejected = refused(spool, body)
    assert rejected.status == 400 and "'summary' is not valid UTF-8" in rejected.reason


def test_part_without_name(spool: Path) -> None:
    body = multipart(twine_fields()).replace(b'form-data; name="summary"', b"form-data", 1)
    rejected = refused(spool, body)
    assert rejected.status == 400 and "Content-Disposition" in rejected.reason


def test_missing_spool_directory_is_the_servers_fault(tmp_path: Path) -> None:
    with pytest.raises(UploadRejected) as caught:
        receive(multipart(twine_fields()), tmp_path / "missing")
    assert caught.value.status == 500 and "could not store the upload" in caught.value.reason


def test_client_disconnect_removes_spool_file(spool: Path) -> None:
    body = multipart(twine_fields())

    async def disconnecting() -> AsyncIterator[bytes]:
        yield body[: len(body) - 200]
        raise ConnectionResetError("client went away")

    with pytest.raises(UploadRejected) as caught:
        asyncio.run(
            receive_upload(
                disconnecting(), CONTENT_TYPE, spool, max_file_size=MiB, max_fields_size=MiB
            )
        )
    assert caught.value.status == 400 and "interrupted" in caught.value.reason
    assert list(spool.iterdir()) == []


def test_cancelled_upload_removes_spool_file(spool: Path) -> None:
    body = multipart(twine_fields())
    started = asyncio.Event()

    async def stalling() -> AsyncIterator[bytes]:
        yield body[:-100]  # into the content part
        started.set()
        await asyncio.sleep(3600)
        yield b""

    async def go() -> None:
        task = asyncio.create_task(
            receive_upload(stalling(), CONTENT_TYPE, spool, max_file_size=MiB, max_fields_size=MiB)
        )
        await started.wait()
        await asyncio.sleep(0)
        assert len(list(spool.iterdir())) == 1  # the spool file exists while receiving
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(go())
    assert list(spool.iterdir()) == []


# --- refused by validate_form ---------------------------------------------------------------------

FORM_CASES: list[tuple[str, dict[str, str | None], str, int, str]] = [
    # (id, field overrides, content filename, status, what the reason must say)
    ("U2-action-submit", {":action": "submit"}, WHEEL_NAME, 410, "pre-registration is no longer"),
    (
        "U2-action-submit-pkg-info",
        {":action": "submit_pkg_info"},
        WHEEL_NAME,
        410,
        "pre-registration",
    ),
    (
        "U2-action-doc-upload",
        {":action": "doc_upload"},
        WHEEL_NAME,
        410,
        "documentation is no longer supported",
    ),
    ("U2-action-missing", {":action": None}, WHEEL_NAME, 400, "':action'"),
    ("U2-action-unknown", {":action": "remove_pkg"}, WHEEL_NAME, 400, "'remove_pkg'"),
    (
        "U2-protocol-version-2",
        {"protocol_version": "2"},
        WHEEL_NAME,
        400,
        "Unknown protocol version",
    ),
    (
        "U4-no-digest",
        {"sha256_digest": None, "blake2_256_digest": None},
        WHEEL_NAME,
        400,
        "at least one message digest",
    ),
    (
        "U4-sha256-wrong",
        {"sha256_digest": "0" * 64},
        WHEEL_NAME,
        400,
        "digest supplied does not match",
    ),
    (
        "U4-blake2-wrong",
        {"blake2_256_digest": "a" * 64},
        WHEEL_NAME,
        400,
        "digest supplied does not match",
    ),
    (
        "U4-md5-wrong",
        {"md5_digest": md5_b64(b"other")},
        WHEEL_NAME,
        400,
        "digest supplied does not match",
    ),
    (
        "U4-md5-hex-wrong",
        {"md5_digest": "0" * 32},
        WHEEL_NAME,
        400,
        "digest supplied does not match",
    ),
    ("U4-md5-malformed", {"md5_digest": "not-a-digest"}, WHEEL_NAME, 400, "Invalid md5_digest"),
    ("U4-sha256-malformed", {"sha256_digest": "xyz"}, WHEEL_NAME, 400, "Invalid SHA256 digest"),
    ("U5-filetype-unknown", {"filetype": "bdist_egg"}, WHEEL_NAME, 400, "filetype"),
    ("U5-filetype-missing", {"filetype": None}, WHEEL_NAME, 400, "filetype"),
    (
        "U5-wheel-without-pyversion",
        {"pyversion": None},
        WHEEL_NAME,
        400,
        "Python version is required",
    ),
    (
        "U5-sdist-with-python-tag",
        {"filetype": "sdist", "pyversion": "py3"},
        "foo-1.0.tar.gz",
        400,
        "'source'",
    ),
    (
        "U5-sdist-filetype-for-wheel-file",
        {"filetype": "sdist", "pyversion": None},
        WHEEL_NAME,
        400,
        "Invalid file extension",
    ),
    ("U6-name-missing", {"name": None}, WHEEL_NAME, 400, "name. Error: This field is required"),
    (
        "U6-version-missing",
        {"version": None},
        WHEEL_NAME,
        400,
        "version. Error: This field is required",
    ),
    (
        "U6-metadata-version-missing",
        {"metadata_version": None},
        WHEEL_NAME,
        400,
        "metadata_version. Error",
    ),
    ("U6-name-invalid", {"name": "-foo-"}, WHEEL_NAME, 400, "Invalid value for name"),
    ("U6-version-not-pep440", {"version": "one"}, WHEEL_NAME, 400, "PEP 440"),
    ("U6-null-byte", {"summary": "a\x00b"}, WHEEL_NAME, 400, "null byte"),
    # PEP 740: the field must be a JSON array of attestation objects; a malformed one is refused
    # with PyPI's text before anything is verified (the signatures are checked in
    # tests/server/test_upload_provenance.py).
    (
        "U7-attestations-not-json",
        {"attestations": "{nope"},
        WHEEL_NAME,
        400,
        "Invalid attestations supplied during upload: the attestations field is not JSON",
    ),
    ("U7-attestations-empty", {"attestations": "[]"}, WHEEL_NAME, 400, "Invalid attestations"),
    ("U7-attestations-object", {"attestations": "{}"}, WHEEL_NAME, 400, "Invalid attestations"),
    ("U7-attestations-scalars", {"attestations": "[1]"}, WHEEL_NAME, 400, "Invalid attestations"),
    (
        "U7-attestations-too-many",
        {"attestations": "[" + ",".join(["{}"] * 17) + "]"},
        WHEEL_NAME,
        400,
        "more than 16 attestations",
    ),
    ("U7-attestations-blank", {"attestations": ""}, WHEEL_NAME, 400, "Invalid attestations"),
    (
        "U11-traversal-filename",
        {},
        "../../foo-1.0-py3-none-any.whl",
        400,
        "unsafe distribution filename",
    ),
    (
        "U11-backslash-filename",
        {},
        "..\\foo-1.0-py3-none-any.whl",
        400,
        "unsafe distribution filename",
    ),
    ("U11-hidden-filename", {}, ".foo-1.0-py3-none-any.whl", 400, "may not start with '.'"),
]


@pytest.mark.parametrize(
    ("overrides", "filename", "status", "says"),
    [pytest.param(*case[1:], id=case[0]) for case in FORM_CASES],
)
def test_form_refused(
    spool: Path, overrides: dict[str, str | None], filename: str, status: int, says: str
) -> None:
    body = multipart(twine_fields(**overrides), [("content", filename, WHEEL)])
    with receive(body, spool) as upload, pytest.raises(UploadRejected) as caught:
        validate_form(upload)
    assert caught.value.status == status
    assert says in caught.value.reason
    assert list(spool.iterdir()) == []


def test_u2_field_given_twice(spool: Path) -> None:
    body = multipart([*twine_fields(), ("name", "Bar")])
    with receive(body, spool) as upload, pytest.raises(UploadRejected) as caught:
        validate_form(upload)
    assert caught.value.status == 400 and "'name' is given more than once" in caught.value.reason


# --- refused by inspect_upload (the file against the form) ----------------------------------------

MISMATCH: list[tuple[str, dict[str, str | None], str, bytes, str]] = [
    (
        "U6-form-name-is-another-project",
        {"name": "Bar"},
        WHEEL_NAME,
        WHEEL,
        "not the project in the file",
    ),
    (
        "U6-form-version-differs",
        {"version": "2.0"},
        WHEEL_NAME,
        WHEEL,
        "not the version in the file",
    ),
    (
        "U11-filename-names-another-project",
        {},
        "bar-1.0-py3-none-any.whl",
        WHEEL,
        "names another project",
    ),
    ("U11-filename-not-normalized", {}, "Foo-1.0-py3-none-any.whl", WHEEL, "not normalized"),
    (
        "U11-pep625-sdist-name",
        {"filetype": "sdist", "pyversion": None},
        "Foo-1.0.tar.gz",
        SDIST,
        "not normalized",
    ),
    ("corrupt-wheel", {}, WHEEL_NAME, WHEEL[:100], "corrupt zip"),
    ("sdist-content-sent-as-wheel", {}, WHEEL_NAME, SDIST, "not a zip"),
]


@pytest.mark.parametrize(
    ("overrides", "filename", "data", "says"),
    [pytest.param(*case[1:], id=case[0]) for case in MISMATCH],
)
def test_file_against_form_refused(
    spool: Path, overrides: dict[str, str | None], filename: str, data: bytes, says: str
) -> None:
    body = multipart(twine_fields(data, **overrides), [("content", filename, data)])
    with receive(body, spool) as upload:
        form = validate_form(upload)
        with pytest.raises(UploadRejected) as caught:
            asyncio.run(inspect_upload(form))
    assert caught.value.status == 400
    assert says in caught.value.reason
    assert list(spool.iterdir()) == []


# --- memory and event loop for a large body (slow) ------------------------------------------------


def _rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="needs /proc (Linux)")
def test_200_mb_upload_memory_stays_flat(spool: Path) -> None:
    size = 200 * MiB
    block = os.urandom(64 * 1024)
    head = multipart(twine_fields(sha256_digest=None, blake2_256_digest=None), []).removesuffix(
        f"--{BOUNDARY}--\r\n".encode()
    )
    head += (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="content"; '
        f'filename="{WHEEL_NAME}"\r\nContent-Type: application/octet-stream\r\n\r\n'
    ).encode()
    tail = f"\r\n--{BOUNDARY}--\r\n".encode()
    expected = hashlib.sha256()
    for _ in range(size // len(block)):
        expected.update(block)

    async def body() -> AsyncIterator[bytes]:
        yield head
        for _ in range(size // len(block)):
            yield block
        yield tail

    peak = baseline = _rss()
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, _rss())
            time.sleep(0.005)

    lag = 0.0

    async def go() -> Upload:
        nonlocal lag

        async def ticker() -> None:
            nonlocal lag
            while True:
                before = time.perf_counter()
                await asyncio.sleep(0.001)
                lag = max(lag, time.perf_counter() - before - 0.001)

        tick = asyncio.create_task(ticker())
        try:
            return await receive_upload(
                body(), CONTENT_TYPE, spool, max_file_size=size, max_fields_size=MiB
            )
        finally:
            tick.cancel()

    sampler = threading.Thread(target=sample)
    sampler.start()
    started = time.perf_counter()
    try:
        upload = asyncio.run(go())
    finally:
        done.set()
        sampler.join()
    elapsed = time.perf_counter() - started
    with upload:
        assert upload.size == size
        assert upload.sha256 == expected.hexdigest()
    growth = peak - baseline
    print(
        f"200 MiB upload: {elapsed:.2f} s, peak RSS growth {growth / MiB:.1f} MiB, max loop lag {lag * 1000:.1f} ms"
    )
    assert growth < 32 * MiB
    assert lag < 0.25


# --- the body real twine sends (loopback; skipped when no twine is available) -----------------


def _find_twine() -> str | None:
    # twine is a test dependency (pyproject's test extra): it sits beside this interpreter.
    candidates = [
        os.environ.get("HEADWATER_TWINE"),
        str(Path(sys.executable).with_name("twine")),
        shutil.which("twine"),
    ]
    return next((c for c in candidates if c and Path(c).is_file()), None)


TWINE = _find_twine()


async def _serve_once(
    spool: Path, results: list[object], max_file_size: int
) -> tuple[asyncio.Server, int]:
    """A one-route HTTP/1.1 server on loopback that runs the intake on each POST."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        headers = {
            k.strip().lower(): v.strip()
            for k, _, v in (
                line.partition(":") for line in head.decode("latin-1").split("\r\n")[1:]
            )
        }
        length = int(headers["content-length"])

        async def body() -> AsyncIterator[bytes]:
            left = length
            while left:
                chunk = await reader.read(min(left, 65536))
                if not chunk:
                    raise ConnectionResetError("client closed")
                left -= len(chunk)
                yield chunk

        try:
            upload = await receive_upload(
                body(),
                headers["content-type"],
                spool,
                max_file_size=max_file_size,
                max_fields_size=MiB,
            )
            with upload:
                form = validate_form(upload)
                results.append((form, await inspect_upload(form)))
            status = "200 OK"
        except UploadRejected as exc:
            results.append(exc)
            status = f"{exc.status} {exc.reason}"
        writer.write(
            f"HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".encode()
        )
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


def _twine_upload(
    tmp_path: Path, spool: Path, files: list[Path], max_file_size: int = 10 * MiB
) -> tuple[subprocess.CompletedProcess[str], list[object]]:
    if TWINE is None:
        pytest.fail("twine not found beside this Python: run scripts/setup (twine is a test extra)")
    results: list[object] = []
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TWINE_", "PIP_"))}
    env.update(HOME=str(tmp_path), PYTHON_KEYRING_BACKEND="keyring.backends.null.Keyring")

    async def go() -> subprocess.CompletedProcess[str]:
        server, port = await _serve_once(spool, results, max_file_size)
        async with server:
            cmd = [
                TWINE, "upload", "--non-interactive", "--disable-progress-bar",
                "--repository-url", f"http://127.0.0.1:{port}/legacy/",
                "-u", "__token__", "-p", "secret", *map(str, files),
            ]  # fmt: skip
            return await asyncio.to_thread(
                subprocess.run, cmd, env=env, capture_output=True, text=True, timeout=120
            )

    return asyncio.run(go()), results


def test_u1_to_u7_real_twine_body_accepted(tmp_path: Path, spool: Path) -> None:
    dist = tmp_path / "dist"
    dist.mkdir()
    (dist / WHEEL_NAME).write_bytes(WHEEL)
    (dist / "foo-1.0.tar.gz").write_bytes(SDIST)
    done, results = _twine_upload(tmp_path, spool, sorted(dist.iterdir()))
    assert done.returncode == 0, done.stdout + done.stderr
    kinds = sorted(
        (form.filetype, artifact.filename)  # type: ignore[attr-defined]
        for form, artifact in results  # type: ignore[misc]
    )
    assert kinds == [("bdist_wheel", WHEEL_NAME), ("sdist", "foo-1.0.tar.gz")]
    assert list(spool.iterdir()) == []


def test_u9_twine_shows_the_reason_phrase(tmp_path: Path, spool: Path) -> None:
    path = tmp_path / WHEEL_NAME
    path.write_bytes(WHEEL)
    done, results = _twine_upload(tmp_path, spool, [path], max_file_size=100)
    assert done.returncode != 0
    assert isinstance(results[0], UploadRejected) and results[0].status == 413
    assert "File too large. Limit for this index is 100 bytes" in done.stdout + done.stderr
    assert list(spool.iterdir()) == []
