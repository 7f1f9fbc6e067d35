"""What ``headwater check`` reads: requirements, per-project pins and index directives.

The readers (:mod:`headwater.check.requirements`, :mod:`headwater.check.projectfiles`) turn files
into these values; :mod:`headwater.check.indexes` turns directives and the pip/uv configuration
into the list of indexes; :mod:`headwater.check.audit` checks every requirement against them.
"""

from __future__ import annotations

import enum
from typing import Literal

import msgspec

from headwater.simple.names import NormalizedName

__all__ = [
    "Client",
    "IndexDirective",
    "IndexSpec",
    "Pin",
    "Requirement",
    "RequirementSet",
]


class Client(enum.StrEnum):
    """Whose way of choosing indexes the check follows."""

    PIP = "pip"
    UV = "uv"
    NONE = "none"
    #: ``--config``: the indexes of a headwater configuration, run in process.
    HEADWATER = "headwater"


class Pin(msgspec.Struct, frozen=True, kw_only=True):
    """A requirement tied to one index: ``[tool.uv.sources] name = { index = "..." }`` (uv only)
    or ``packages[].index`` of a pylock.toml (every installer of the lock)."""

    #: An index name (uv ``[[tool.uv.index]] name``) or an index URL (pylock).
    index: str
    #: Where the pin is written, e.g. ``pyproject.toml [tool.uv.sources] torchtriton``.
    origin: str
    #: The clients that honour it.
    clients: tuple[Client, ...] = (Client.UV,)


class Requirement(msgspec.Struct, frozen=True, kw_only=True):
    """One requirement as written in one file.

    ``project`` is None only for a direct reference whose name is unknown (a bare path or URL).
    ``direct`` says why the requirement does not come from an index (``-e``, a URL, a path, a
    uv ``git``/``path``/``url`` source); such requirements are reported, not looked up.
    ``hashes`` are ``algorithm:hexdigest`` strings (pip's ``--hash``, pylock file hashes).
    """

    name: str
    project: NormalizedName | None
    origin: str
    specifier: str = ""
    marker: str | None = None
    hashes: tuple[str, ...] = ()
    direct: str | None = None
    constraint: bool = False
    pins: tuple[Pin, ...] = ()


class IndexDirective(msgspec.Struct, frozen=True, kw_only=True):
    """An index option found inside a requirements or project file, applied in file order the
    way the client applies it (a requirements file's ``--index-url`` replaces every index named
    before it, as pip does)."""

    action: Literal["index-url", "extra-index-url", "no-index", "find-links", "index"]
    #: A URL, or a directory for ``find-links``; empty for ``no-index``.
    value: str
    origin: str
    #: uv ``[[tool.uv.index]]``: its name, and its ``default`` / ``explicit`` flags.
    name: str | None = None
    default: bool = False
    explicit: bool = False


class RequirementSet(msgspec.Struct, frozen=True, kw_only=True):
    """Everything the input files say: requirements in file order, and their index directives."""

    requirements: tuple[Requirement, ...] = ()
    directives: tuple[IndexDirective, ...] = ()
    #: A pyproject.toml with a ``[tool.uv]`` table was read (``--from auto`` then follows uv).
    uv_project: bool = False

    def __add__(self, other: RequirementSet) -> RequirementSet:
        return RequirementSet(
            requirements=self.requirements + other.requirements,
            directives=self.directives + other.directives,
            uv_project=self.uv_project or other.uv_project,
        )


class IndexSpec(msgspec.Struct, frozen=True, kw_only=True):
    """One index the check looks names up in, and where it came from.

    ``name`` is short and unique (a uv index name, ``pypi``, or ``index-N``); ``url`` is the
    Simple API base URL ending in ``/`` (or a directory path for a ``local`` find-links source).
    ``public`` marks the public index (``--public``); ``used`` is False for the public index when
    the client is not configured to use it (it is then asked only whether a name is claimed
    there). ``explicit`` is uv's ``explicit = true``: the index serves only names pinned to it.
    """

    name: str
    url: str
    origin: str
    local: bool = False
    public: bool = False
    used: bool = True
    explicit: bool = False

    @property
    def display_url(self) -> str:
        """The URL with any password masked (``https://user:***@host/simple/``)."""
        return mask_credentials(self.url)


def mask_credentials(url: str) -> str:
    """``url`` with the secret of its user-info part replaced by ``***`` (the password, or the
    whole user-info when it is a lone token)."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    authority, slash, path = rest.partition("/")
    userinfo, at, host = authority.rpartition("@")
    if not at:
        return url
    user, colon, _ = userinfo.partition(":")
    masked = f"{user}:***" if colon else "***"
    return f"{scheme}://{masked}@{host}{slash}{path}"
