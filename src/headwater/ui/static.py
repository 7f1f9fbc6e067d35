"""The interface's own files (``/ui/static/<name>``): a stylesheet and one small script.

The files are read once, from this package, into memory; a name that is not one of them is a 404
(no path from a request ever reaches the filesystem, so no traversal). Nothing is loaded from
another host: the content security policy (:mod:`headwater.ui.security`) would refuse it anyway.
"""

from __future__ import annotations

import hashlib
from importlib import resources

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from headwater.ui.interface import Interface
from headwater.ui.security import static_headers

__all__ = ["FILES", "serve"]

_TYPES = {
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
}


def _load() -> dict[str, tuple[bytes, str, str]]:
    files: dict[str, tuple[bytes, str, str]] = {}
    for entry in resources.files("headwater.ui").joinpath("static").iterdir():
        suffix = "." + entry.name.rpartition(".")[2]
        if entry.is_file() and suffix in _TYPES:
            body = entry.read_bytes()
            etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
            files[entry.name] = (body, _TYPES[suffix], etag)
    return files


#: name -> (bytes, content type, ETag)
FILES = _load()


async def serve(request: Request, ui: Interface) -> Response:
    found = FILES.get(request.path_params["name"])
    if found is None:
        return PlainTextResponse("no such file in the interface's static files", status_code=404)
    body, content_type, etag = found
    headers = {**static_headers(), "etag": etag}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    return Response(body, media_type=content_type, headers=headers)
