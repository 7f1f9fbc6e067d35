"""PyPI's legacy JSON API (``/pypi/<project>/json``, ``/pypi/<project>/<version>/json``).

Not a standard: the shape is warehouse's (docs/user/api/json.md), limited to what mirrors read.
bandersnatch 8 reads ``info``, ``last_serial``, ``releases`` (version -> files) and ``urls``, and
per file ``url``, ``filename``, ``digests`` (``sha256``, ``md5``, ``blake2b_256``), ``size``,
``packagetype``, ``upload_time_iso_8601`` and the PEP 658 keys; warehouse keeps ``releases``
"because changing this breaks bandersnatch". JSON ``dist-info-metadata`` is never emitted (item 60:
pip 22.3 crashed on it); ``data-dist-info-metadata`` is, as PyPI does.
"""

from __future__ import annotations

from typing import Any

import msgspec
from packaging.version import InvalidVersion, Version

from headwater.simple.model import ProjectStatus
from headwater.testing.projects import DistFile, Project

__all__ = ["project_json", "release_json"]

_encoder = msgspec.json.Encoder()


def _file(
    dist: DistFile, base_url: str, metadata: bool, pypi_paths: bool = False
) -> dict[str, Any]:
    hashes = dist.hashes
    core: dict[str, str] | bool = False
    if metadata and dist.metadata is not None:
        core = {"sha256": dist.metadata_sha256 or ""}
    when = dist.upload_time
    return {
        "comment_text": "",
        "digests": {
            "blake2b_256": hashes["blake2b_256"],
            "md5": hashes["md5"],
            "sha256": hashes["sha256"],
        },
        "downloads": -1,
        "filename": dist.filename,
        "has_sig": False,
        "md5_digest": hashes["md5"],
        "packagetype": dist.packagetype,
        "python_version": dist.python_version,
        "requires_python": dist.requires_python,
        "size": dist.size,
        "upload_time": when.strftime("%Y-%m-%dT%H:%M:%S"),
        "upload_time_iso_8601": when.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "url": base_url + dist.url_path(pypi_paths),
        "yanked": dist.yanked,
        "yanked_reason": dist.yanked_reason,
        "core-metadata": core,
        "data-dist-info-metadata": core,
    }


def _sort_key(version: str) -> tuple[int, Version | str]:
    try:
        return (1, Version(version))
    except InvalidVersion:
        return (0, version)


def _latest(project: Project) -> str | None:
    # Like PyPI: the highest version that has a file that is not yanked, else the highest at all.
    live = [v for v, fs in project.releases.items() if any(not f.yanked for f in fs)]
    candidates = live or list(project.releases)
    return max(candidates, key=_sort_key) if candidates else None


def _info(project: Project, version: str | None, base_url: str) -> dict[str, Any]:
    files = project.releases.get(version, []) if version else []
    requires_python = files[0].requires_python if files else project.requires_python
    return {
        "name": project.display_name,
        "version": version,
        "summary": "A generated project served by the headwater test upstream",
        "requires_python": requires_python,
        "license": "Apache-2.0",
        "author": "headwater",
        "package_url": f"{base_url}/project/{project.name}/",
        "project_url": f"{base_url}/project/{project.name}/",
        "release_url": f"{base_url}/project/{project.name}/{version}/",
        "yanked": bool(files) and all(f.yanked for f in files),
        "yanked_reason": files[0].yanked_reason if files else None,
    }


def _visible(project: Project, version: str) -> list[DistFile]:
    # Item 41: a quarantined project MUST NOT offer any files.
    if project.status is ProjectStatus.QUARANTINED:
        return []
    return project.releases.get(version, [])


def project_json(
    project: Project, base_url: str, *, serials: bool, metadata: bool, pypi_paths: bool = False
) -> bytes:
    """The ``/pypi/<project>/json`` body: info, last_serial, releases, urls."""
    latest = _latest(project)
    body: dict[str, Any] = {
        "info": _info(project, latest, base_url),
        "releases": {
            v: [_file(f, base_url, metadata, pypi_paths) for f in _visible(project, v)]
            for v in project.releases
        },
        "urls": [_file(f, base_url, metadata, pypi_paths) for f in _visible(project, latest)]
        if latest
        else [],
        "vulnerabilities": [],
    }
    if serials:
        body["last_serial"] = project.last_serial
    return _encoder.encode(body)


def release_json(
    project: Project,
    version: str,
    base_url: str,
    *,
    serials: bool,
    metadata: bool,
    pypi_paths: bool = False,
) -> bytes | None:
    """The ``/pypi/<project>/<version>/json`` body (no ``releases``); ``None`` if no such release."""
    if version not in project.releases:
        return None
    body: dict[str, Any] = {
        "info": _info(project, version, base_url),
        "urls": [_file(f, base_url, metadata, pypi_paths) for f in _visible(project, version)],
        "vulnerabilities": [],
    }
    if serials:
        body["last_serial"] = project.last_serial
    return _encoder.encode(body)
