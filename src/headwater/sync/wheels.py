"""What the mirror reads inside a wheel: its core metadata, for PEP 658 ``.metadata`` files."""

from __future__ import annotations

import io
import zipfile

from headwater.simple.filenames import InvalidFilename, parse_filename
from headwater.simple.names import is_valid_name, normalize_name

__all__ = ["wheel_metadata"]

# A METADATA file is a few KiB; refuse to inflate anything absurd (a zip bomb in a wheel).
_MAX_METADATA = 16 << 20


def _dist_name(member: str) -> str | None:
    stem = member.split("/", 1)[0].removesuffix(".dist-info")
    name = stem.rpartition("-")[0]
    return normalize_name(name) if is_valid_name(name) else None


def wheel_metadata(filename: str, data: bytes) -> bytes | None:
    """The ``{name}-{version}.dist-info/METADATA`` of the wheel ``data``, or None when ``filename``
    is not a wheel, the archive is unreadable, or the member is missing or oversized.

    PEP 658: the ``.metadata`` file an index serves for a wheel is that wheel's METADATA file,
    byte for byte, so a mirror that has the (verified) wheel can take it from there; the caller
    still checks it against the digest the page promises.
    """
    if not filename.endswith(".whl"):
        return None
    try:
        parsed = parse_filename(filename)
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            # The .dist-info directory is "{name}-{version}.dist-info"; older wheels vary in case
            # and escaping, so compare normalized names, and insist on exactly one.
            candidates = [
                info
                for info in archive.infolist()
                if info.filename.endswith(".dist-info/METADATA")
                and info.filename.count("/") == 1
                and _dist_name(info.filename) == parsed.name
            ]
            if len(candidates) != 1 or candidates[0].file_size > _MAX_METADATA:
                return None
            return archive.read(candidates[0])
    except (InvalidFilename, zipfile.BadZipFile, KeyError, OSError, ValueError, EOFError):
        return None
