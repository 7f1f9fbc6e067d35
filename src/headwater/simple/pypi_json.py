"""PyPI's legacy JSON API body (``/pypi/<project>/json``), rendered from a project page.

Not a standard: the shape is warehouse's, limited to what mirroring tools read. bandersnatch 8
lists projects from the simple JSON root and then reads, per project, ``/pypi/<project>/json``:
``info``, ``last_serial``, ``releases`` (version -> files) and ``urls``, and per file ``url``,
``filename``, ``digests``, ``size``, ``packagetype``, ``upload_time_iso_8601`` and the PEP 658
keys. A headwater serves this so that bandersnatch can mirror it.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urljoin

import msgspec
from packaging.version import InvalidVersion, Version

from headwater.simple.filenames import InvalidFilename, parse_filename
from headwater.simple.model import File, ProjectPage

__all__ = ["render_pypi_json"]

_encoder = msgspec.json.Encoder()


def _version_of(file: File) -> str | None:
    try:
        return str(parse_filename(file.filename).version)
    except (InvalidFilename, ValueError):
        return None


def _sort_key(version: str) -> tuple[int, Version | str]:
    try:
        return (1, Version(version))
    except InvalidVersion:
        return (0, version)


def _file(file: File, page_url: str) -> dict[str, Any]:
    core: dict[str, str] | bool = (
        file.core_metadata if isinstance(file.core_metadata, dict) else bool(file.core_metadata)
    )
    when = file.upload_time
    digests = {k: v for k, v in file.hashes.items() if k in ("sha256", "md5")}
    if "blake2b_256" in file.hashes:
        digests["blake2b_256"] = file.hashes["blake2b_256"]
    return {
        "filename": file.filename,
        "url": urljoin(page_url, file.url.partition("#")[0]),
        "digests": digests,
        "md5_digest": file.hashes.get("md5"),
        "packagetype": "bdist_wheel" if file.filename.endswith(".whl") else "sdist",
        "requires_python": file.requires_python,
        "size": file.size if file.size is not None else -1,
        "upload_time": when.strftime("%Y-%m-%dT%H:%M:%S") if when else None,
        "upload_time_iso_8601": when.strftime("%Y-%m-%dT%H:%M:%S.%fZ") if when else None,
        "yanked": file.yanked,
        "yanked_reason": file.yanked_reason,
        "core-metadata": core,
        "data-dist-info-metadata": core,
    }


def render_pypi_json(page: ProjectPage, *, page_url: str) -> bytes:
    """The ``/pypi/<project>/json`` body for ``page``; file URLs are made absolute against
    ``page_url`` (the project page's own URL). ``info.version`` is, as on PyPI, the highest
    version with a file that is not yanked (else the highest)."""
    releases: dict[str, list[dict[str, Any]]] = {}
    live: set[str] = set()
    for file in page.files:
        version = _version_of(file)
        if version is None:
            continue
        releases.setdefault(version, []).append(_file(file, page_url))
        if not file.yanked:
            live.add(version)
    candidates = live or set(releases)
    latest = max(candidates, key=_sort_key) if candidates else None
    body = {
        "info": {
            "name": page.name,
            "version": latest,
            "requires_python": releases[latest][0]["requires_python"] if latest else None,
            "yanked": latest is not None and latest not in live,
        },
        "last_serial": page.last_serial,
        "releases": releases,
        "urls": releases.get(latest, []) if latest else [],
        "vulnerabilities": [],
    }
    return _encoder.encode(body)
