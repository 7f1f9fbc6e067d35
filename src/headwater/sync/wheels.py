"""What the mirror reads inside a wheel: its core metadata, for PEP 658 ``.metadata`` files.

A mirror reads the METADATA of every wheel it downloads, so the common case (a single-disk
archive, no zip64, the member stored or deflated) is read straight from the central directory
with :mod:`struct` and :mod:`zlib`: about a fifth of the CPU time of :class:`zipfile.ZipFile`,
whose constructor decodes every member's header. Anything else (zip64, other compression
methods, an archive this reader does not understand) goes to :mod:`zipfile`, with the same
answer rules either way.
"""

from __future__ import annotations

import io
import struct
import zipfile
import zlib

from headwater.simple.filenames import InvalidFilename, parse_filename
from headwater.simple.names import NormalizedName, is_valid_name, normalize_name

__all__ = ["wheel_metadata"]

# A METADATA file is a few KiB; refuse to inflate anything absurd (a zip bomb in a wheel).
_MAX_METADATA = 16 << 20
_SUFFIX = ".dist-info/METADATA"

_END = struct.Struct("<4s4H2LH")  # end of central directory record
_CENTRAL = struct.Struct("<4s6H3L5H2L")  # central directory file header
_LOCAL = struct.Struct("<4s5H3L2H")  # local file header
_END_SIG, _CENTRAL_SIG, _LOCAL_SIG = b"PK\x05\x06", b"PK\x01\x02", b"PK\x03\x04"
_FLAG_ENCRYPTED, _FLAG_UTF8 = 0x1, 0x800
_STORED, _DEFLATED = 0, 8


class _Unsupported(Exception):
    """The fast reader does not handle this archive; :mod:`zipfile` decides."""


def _dist_name(member: str) -> str | None:
    stem = member.split("/", 1)[0].removesuffix(".dist-info")
    name = stem.rpartition("-")[0]
    return normalize_name(name) if is_valid_name(name) else None


def _is_candidate(member: str, project: NormalizedName) -> bool:
    return member.endswith(_SUFFIX) and member.count("/") == 1 and _dist_name(member) == project


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
        project = parse_filename(filename).name
    except InvalidFilename:
        return None
    try:
        return _read_fast(data, project)
    except (_Unsupported, struct.error, UnicodeDecodeError):
        # Not a shape the fast reader knows: zipfile gives the answer.
        return _read_with_zipfile(data, project)
    except (zlib.error, ValueError):
        # A member that contradicts its own headers (a deflate stream longer than promised is
        # how a zip bomb looks): no metadata. Never handed to zipfile, whose read() would
        # inflate the whole stream before checking its size.
        return None


def _read_fast(data: bytes, project: NormalizedName) -> bytes | None:
    end = data.rfind(_END_SIG, max(0, len(data) - _END.size - 0xFFFF))
    if end < 0:
        raise _Unsupported  # not found where a plain archive has it: let zipfile look
    _, disk, cd_disk, _on_disk, entries, cd_size, cd_offset, _ = _END.unpack_from(data, end)
    if disk or cd_disk or entries == 0xFFFF or cd_size == 0xFFFFFFFF or cd_offset == 0xFFFFFFFF:
        raise _Unsupported  # multi-disk or zip64
    if cd_offset + cd_size != end:
        raise _Unsupported  # data prepended to the archive (offsets shifted): zipfile copes
    found: tuple[int, int, int, int, int, int, bytes] | None = None
    position = cd_offset
    for _ in range(entries):
        fields = _CENTRAL.unpack_from(data, position)
        if fields[0] != _CENTRAL_SIG:
            raise ValueError("bad central directory entry")
        flags, method, crc, csize, usize = fields[3], fields[4], fields[7], fields[8], fields[9]
        name_len, extra_len, comment_len, local = fields[10], fields[11], fields[12], fields[16]
        start = position + _CENTRAL.size
        raw = data[start : start + name_len]
        position = start + name_len + extra_len + comment_len
        if b"\x00" in raw:  # zipfile ends a member name at a NUL; so does this reader
            raw = raw[: raw.index(b"\x00")]
        if not raw.endswith(b"/METADATA"):
            continue
        name = raw.decode("utf-8" if flags & _FLAG_UTF8 else "cp437")
        if not _is_candidate(name, project):
            continue
        if found is not None:
            return None  # two candidates: no guessing
        found = (flags, method, crc, csize, usize, local, raw)
    if found is None:
        return None
    flags, method, crc, csize, usize, local, raw = found
    if 0xFFFFFFFF in (csize, usize, local):
        raise _Unsupported  # zip64 sizes in the extra field: zipfile reads them
    if usize > _MAX_METADATA or flags & _FLAG_ENCRYPTED:
        return None
    if method not in (_STORED, _DEFLATED):
        raise _Unsupported
    header = _LOCAL.unpack_from(data, local)
    name_start = local + _LOCAL.size
    if header[0] != _LOCAL_SIG or not data.startswith(raw, name_start):
        raise ValueError("local file header does not match the central directory")
    body = name_start + header[9] + header[10]
    compressed = data[body : body + csize]
    if len(compressed) != csize:
        raise ValueError("truncated member")
    if method == _STORED:
        content = compressed
    else:
        inflater = zlib.decompressobj(-zlib.MAX_WBITS)
        content = inflater.decompress(compressed, usize + 1)  # never more than promised
        if not inflater.eof:
            raise ValueError("deflate stream does not end where the header says")
    if len(content) != usize or zlib.crc32(content) != crc:
        raise ValueError("member does not match its header")
    return content


def _read_with_zipfile(data: bytes, project: NormalizedName) -> bytes | None:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            # The .dist-info directory is "{name}-{version}.dist-info"; older wheels vary in case
            # and escaping, so compare normalized names, and insist on exactly one.
            candidates = [
                info for info in archive.infolist() if _is_candidate(info.filename, project)
            ]
            if len(candidates) != 1 or candidates[0].file_size > _MAX_METADATA:
                return None
            return archive.read(candidates[0])
    except (zipfile.BadZipFile, KeyError, OSError, ValueError, EOFError, NotImplementedError):
        return None
    except RuntimeError:  # zipfile's "File is encrypted, password required"
        return None
