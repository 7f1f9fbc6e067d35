"""Large, valid wheels for upload tests and benchmarks, written in pieces (a 1 GB wheel never
sits in memory): one module, one incompressible data file of the requested size, and a
``.dist-info`` with METADATA, WHEEL and a RECORD that hashes every member."""

from __future__ import annotations

import base64
import hashlib
import os
import zipfile
from pathlib import Path

from headwater.simple.names import normalize_name
from headwater.testing.wheels import core_metadata, wheel_filename

__all__ = ["big_wheel", "sha256_of"]

_PIECE = 1 << 20


def _record_hash(digest: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def big_wheel(directory: Path, display: str, version: str, size: int) -> Path:
    """A wheel of ``display`` ``version`` carrying ``size`` random bytes; returns its path."""
    name = normalize_name(display)
    module = name.replace("-", "_")
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / wheel_filename(name, version)
    dist_info = f"{module}-{version}.dist-info"
    records: list[str] = []
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as wheel:

        def small(member: str, data: bytes) -> None:
            wheel.writestr(member, data)
            records.append(f"{member},{_record_hash(hashlib.sha256(data).digest())},{len(data)}")

        small(f"{module}/__init__.py", f'__version__ = "{version}"\n'.encode())
        digest = hashlib.sha256()
        member = f"{module}/payload.bin"
        with wheel.open(member, "w", force_zip64=True) as out:
            left = size
            while left > 0:
                piece = os.urandom(min(_PIECE, left))
                digest.update(piece)
                out.write(piece)
                left -= len(piece)
        records.append(f"{member},{_record_hash(digest.digest())},{size}")
        small(f"{dist_info}/METADATA", core_metadata(display, version))
        small(
            f"{dist_info}/WHEEL",
            b"Wheel-Version: 1.0\nGenerator: headwater-tests\nRoot-Is-Purelib: true\n"
            b"Tag: py3-none-any\n",
        )
        records.append(f"{dist_info}/RECORD,,")
        wheel.writestr(f"{dist_info}/RECORD", "\n".join(records) + "\n")
    return path


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while piece := handle.read(_PIECE):
            digest.update(piece)
    return digest.hexdigest()
