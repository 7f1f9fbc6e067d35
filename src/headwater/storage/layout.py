"""Where things live in a static tree (bandersnatch-compatible), as storage keys.

::

    web/simple/index.html, index.v1_html, index.v1_json
    web/simple/<normalized>/index.html, index.v1_html, index.v1_json
    web/packages/<sha256[0:2]>/<sha256[2:4]>/<sha256[4:]>/<filename>[.metadata|.provenance]
    web/last-modified
    state/...                         (not served: serials, journal, locks)

``index.html`` and ``index.v1_html`` hold the same bytes: the first is what a plain web server
serves for a directory, the second what a PEP 691-aware config picks for the HTML media types.
File URLs on pages are relative (``../../packages/...``) so a tree can be served under any prefix
and copied anywhere.
"""

from __future__ import annotations

import re
from typing import Final, Literal

from headwater.errors import printable
from headwater.simple.filenames import check_safe_filename
from headwater.simple.names import NormalizedName
from headwater.storage.base import InvalidKey

__all__ = [
    "IN_PROGRESS",
    "LAST_MODIFIED",
    "PAGE_FILES",
    "ROOT_INDEX_DIR",
    "STATE_DIR",
    "WEB",
    "file_key",
    "file_url_from_project_page",
    "metadata_key",
    "page_key",
    "provenance_key",
    "sha256_of_file_key",
    "tree_content_type",
]

WEB: Final = "web"
STATE_DIR: Final = "state"
ROOT_INDEX_DIR: Final = f"{WEB}/simple"
LAST_MODIFIED: Final = f"{WEB}/last-modified"
#: Present while a sync runs or after one was interrupted, and after an adoption: the next sync
#: reconciles the state with the pages on disk and sweeps the files no page lists
#: (``sync/engine.py``, whose ``IN_PROGRESS`` is this key; ``sync/adopt.py``).
IN_PROGRESS: Final = f"{STATE_DIR}/in-progress"
PageFormat = Literal["json", "html", "plain-html"]
#: Format -> the file name of a page in its directory.
PAGE_FILES: Final[dict[str, str]] = {
    "json": "index.v1_json",
    "html": "index.v1_html",
    "plain-html": "index.html",
}
_SHA256 = re.compile(r"^[0-9a-f]{64}\Z")


def page_key(name: NormalizedName | None, fmt: PageFormat) -> str:
    """The key of a project page (or of the root page when ``name`` is None)."""
    directory = ROOT_INDEX_DIR if name is None else f"{ROOT_INDEX_DIR}/{name}"
    return f"{directory}/{PAGE_FILES[fmt]}"


def _check_sha256(sha256: str) -> str:
    """``sha256`` if it is a lowercase hex digest.

    Raises:
        InvalidKey: it is not (a ValueError, and a HeadwaterError: the digest usually comes from
            an upstream's page, and the project fails with this reason instead of the run).
    """
    if not isinstance(sha256, str) or not _SHA256.match(sha256):
        raise InvalidKey(f"not a lowercase hex sha256 digest: {printable(str(sha256), 80)!r}")
    return sha256


def file_key(sha256: str, filename: str) -> str:
    """The key of a distribution file, addressed by its sha256 (checked) and safe filename."""
    _check_sha256(sha256)
    check_safe_filename(filename)
    return f"{WEB}/packages/{sha256[:2]}/{sha256[2:4]}/{sha256[4:]}/{filename}"


def metadata_key(sha256: str, filename: str) -> str:
    """The key of a file's PEP 658 core metadata (``<file>.metadata``)."""
    return file_key(sha256, filename) + ".metadata"


def provenance_key(sha256: str, filename: str) -> str:
    """The key of a file's PEP 740 provenance document (``<file>.provenance``), kept beside the
    file so a copy of the tree (rsync) carries it and can be verified again offline."""
    return file_key(sha256, filename) + ".provenance"


def file_url_from_project_page(sha256: str, filename: str) -> str:
    """The relative URL of a file as written on ``web/simple/<name>/`` pages."""
    return "../../" + file_key(sha256, filename).removeprefix(f"{WEB}/")


def sha256_of_file_key(key: str) -> str | None:
    """The sha256 a ``web/packages/...`` key is addressed by, or None if the key is not one."""
    parts = key.split("/")
    if len(parts) != 6 or parts[0] != WEB or parts[1] != "packages":
        return None
    digest = parts[2] + parts[3] + parts[4]
    if len(parts[2]) != 2 or len(parts[3]) != 2:
        return None
    return digest if _SHA256.match(digest) else None


#: (how a key's last component ends, or its whole name after "=") -> Content-Type. The first
#: row that matches decides; no row: ``application/octet-stream`` (distribution files, state).
CONTENT_TYPES: Final[tuple[tuple[str, str], ...]] = (
    ("=index.v1_json", "application/vnd.pypi.simple.v1+json"),
    ("=index.v1_html", "application/vnd.pypi.simple.v1+html"),
    (".html", "text/html; charset=utf-8"),
    (".json", "application/json"),
    # PEP 658: the core metadata file, an RFC 822-style text document.
    (".metadata", "text/plain; charset=utf-8"),
    ("=last-modified", "text/plain; charset=utf-8"),
    # PEP 740: a file's provenance document (the integrity API's body), as headwater serves it.
    (".provenance", "application/vnd.pypi.integrity.v1+json"),
)


def tree_content_type(key: str) -> str:
    """The ``Content-Type`` of a static tree's object, chosen by its name as a web server would
    (:data:`CONTENT_TYPES`): the type a bucket stores with each object, so that a static website
    endpoint or CDN serves it right, and the type ``headwater serve`` sends for files."""
    name = key.rsplit("/", 1)[-1]
    for pattern, content_type in CONTENT_TYPES:
        if name == pattern[1:] if pattern[0] == "=" else name.endswith(pattern):
            return content_type
    return "application/octet-stream"
