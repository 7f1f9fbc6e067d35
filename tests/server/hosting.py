"""Helpers for hosted-index tests: building distributions, uploading them like twine does, and
talking to the management API."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from headwater.simple.names import NormalizedName, normalize_name
from headwater.testing.wheels import build_sdist, build_wheel, sdist_filename, wheel_filename

TWINE = str(Path(sys.executable).with_name("twine"))
HEADWATER = str(Path(sys.executable).with_name("headwater"))


@dataclass
class Reply:
    status: int
    body: bytes
    headers: dict[str, str]

    @property
    def text(self) -> str:
        return self.body.decode(errors="replace")


def dists(directory: Path, display: str, version: str) -> list[Path]:
    """A wheel and an sdist of ``display`` ``version`` in ``directory``."""
    name: NormalizedName = normalize_name(display)
    directory.mkdir(parents=True, exist_ok=True)
    wheel = directory / wheel_filename(name, version)
    wheel.write_bytes(build_wheel(name, display, version))
    sdist = directory / sdist_filename(name, version)
    sdist.write_bytes(build_sdist(name, display, version))
    return [wheel, sdist]


def twine(
    url: str,
    token: str,
    files: list[Path],
    *extra: str,
    program: str | Path = TWINE,
    user: str = "__token__",
) -> subprocess.CompletedProcess[str]:
    """``twine upload`` with no configuration from this machine."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TWINE_", "PIP_"))}
    env.update(PYTHON_KEYRING_BACKEND="keyring.backends.null.Keyring")
    cmd = [
        str(program), "upload", "--non-interactive", "--disable-progress-bar", "--verbose",
        "--repository-url", url, "-u", user, "-p", token, *extra, *map(str, files),
    ]  # fmt: skip
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120, check=False)


def request(
    url: str,
    *,
    method: str = "GET",
    token: str | None = None,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> Reply:
    """One HTTP request; any status is returned, not raised."""
    all_headers = dict(headers or {})
    if token is not None:
        all_headers["Authorization"] = (
            "Basic " + base64.b64encode(f"__token__:{token}".encode()).decode()
        )
    req = urllib.request.Request(url, data=body, method=method, headers=all_headers)
    try:
        with urllib.request.urlopen(req, timeout=30) as answer:
            return Reply(
                answer.status, answer.read(), {k.lower(): v for k, v in answer.headers.items()}
            )
    except urllib.error.HTTPError as exc:
        with exc:
            return Reply(exc.code, exc.read(), {k.lower(): v for k, v in exc.headers.items()})


def api(url: str, method: str, token: str | None, data: dict[str, Any] | None = None) -> Reply:
    body = json.dumps(data).encode() if data is not None else None
    return request(
        url, method=method, token=token, body=body, headers={"Content-Type": "application/json"}
    )


def upload_form(path: Path, **overrides: str | None) -> tuple[bytes, str]:
    """A multipart body as twine builds it for ``path`` (fields can be overridden or dropped)."""
    content = path.read_bytes()
    filename = overrides.pop("filename", None) or path.name
    is_wheel = filename.endswith(".whl")
    stem = path.name.split("-")
    fields: dict[str, str | None] = {
        ":action": "file_upload",
        "protocol_version": "1",
        "metadata_version": "2.1",
        "name": stem[0].replace("_", "-"),
        "version": stem[1].removesuffix(".tar.gz"),
        "filetype": "bdist_wheel" if is_wheel else "sdist",
        "pyversion": "py3" if is_wheel else "source",
        "sha256_digest": hashlib.sha256(content).hexdigest(),
    }
    fields.update(overrides)
    boundary = uuid.uuid4().hex
    parts: list[bytes] = []
    for key, value in fields.items():
        if value is None:
            continue
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n{value}\r\n'.encode()
        )
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="content"; filename="{filename}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n".encode()
        + content
        + b"\r\n"
    )
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def post_upload(url: str, token: str | None, path: Path, **overrides: str | None) -> Reply:
    body, content_type = upload_form(path, **overrides)
    return request(
        url, method="POST", token=token, body=body, headers={"Content-Type": content_type}
    )


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    """Run ``headwater ARGS``; fail with its output if it fails."""
    done = subprocess.run(
        [HEADWATER, *args], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, f"headwater {' '.join(args)}\n{done.stdout}\n{done.stderr}"
    return done
