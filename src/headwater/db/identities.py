"""The identities a trusted publisher describes: which CI job may publish a project.

An identity names an OIDC issuer and the claims a token from it must carry. Three kinds:

============ ================================================ ====================================
kind         issuer                                           what must match
============ ================================================ ====================================
``github``   ``https://token.actions.githubusercontent.com``  ``repository`` (owner/name), the
             (GitHub Enterprise Server: its own)              ``workflow`` file; optionally
                                                              ``environment``, ``ref`` and the
                                                              stable numeric ``repository_id`` /
                                                              ``repository_owner_id``
``gitlab``   ``https://gitlab.com`` or a self-managed         ``project_path`` (group/project);
             GitLab's URL                                     optionally the CI config file
                                                              (``workflow``), ``environment``,
                                                              ``ref``, ``project_id``
``oidc``     any OIDC issuer, by URL                          every claim listed, exactly
============ ================================================ ====================================

Why the numeric ids: a GitHub repository or account name can be deleted and registered again by
someone else ("resurrection"); its numeric id cannot. PyPI records them for the same reason.

These are plain data (no I/O): :mod:`headwater.server.oidc.claims` decides whether a token's
claims match one, and :mod:`headwater.db.publishers` stores them. :func:`check_identity` refuses
an identity that could match more than intended (an empty claim set, an ``http`` issuer that is
not loopback).
"""

from __future__ import annotations

import ipaddress
import re
from typing import Literal, TypeAlias
from urllib.parse import urlsplit

import msgspec

from headwater.db.errors import InvalidArgument

__all__ = [
    "GITHUB_ISSUER",
    "GITLAB_ISSUER",
    "GitHubIdentity",
    "GitLabIdentity",
    "Identity",
    "OidcIdentity",
    "PublisherKind",
    "check_identity",
    "check_issuer",
    "decode_identity",
    "encode_identity",
]

GITHUB_ISSUER = "https://token.actions.githubusercontent.com"
GITLAB_ISSUER = "https://gitlab.com"
PublisherKind = Literal["github", "gitlab", "oidc"]

_MAX_ISSUER = 500
_MAX_VALUE = 255
_GITHUB_REPOSITORY = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})/[A-Za-z0-9._-]{1,100}\Z")
_GITLAB_PATH = re.compile(r"^[A-Za-z0-9._-]+(?:/[A-Za-z0-9._-]+)+\Z")
_WORKFLOW = re.compile(r"^[A-Za-z0-9._-]+\.ya?ml\Z")
_GITLAB_CONFIG = re.compile(r"^[A-Za-z0-9._-]+(?:/[A-Za-z0-9._-]+)*\.ya?ml\Z")
_DIGITS = re.compile(r"^[0-9]{1,30}\Z")
_CLAIM_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:-]{0,99}\Z")
#: Claims an ``oidc`` identity may not use as its only constraints: every token of the issuer
#: carries them with values that say nothing about who is asking.
_NOT_IDENTIFYING = frozenset({"iss", "aud", "exp", "nbf", "iat", "jti"})


class GitHubIdentity(
    msgspec.Struct, frozen=True, kw_only=True, tag="github", forbid_unknown_fields=True
):
    """A GitHub Actions workflow. ``repository`` is ``owner/name``; ``workflow`` the file name
    under ``.github/workflows/`` (``release.yml``)."""

    repository: str
    workflow: str
    environment: str | None = None
    ref: str | None = None
    repository_id: str | None = None
    repository_owner_id: str | None = None
    issuer: str = GITHUB_ISSUER

    @property
    def kind(self) -> PublisherKind:
        return "github"

    def describe(self) -> str:
        extra = f", environment {self.environment}" if self.environment else ""
        return f"GitHub {self.repository}, workflow {self.workflow}{extra}"


class GitLabIdentity(
    msgspec.Struct, frozen=True, kw_only=True, tag="gitlab", forbid_unknown_fields=True
):
    """A GitLab CI pipeline. ``project_path`` is ``group[/subgroup]/project``; ``workflow`` the CI
    configuration file (``.gitlab-ci.yml``), checked against ``ci_config_ref_uri``."""

    project_path: str
    workflow: str | None = None
    environment: str | None = None
    ref: str | None = None
    project_id: str | None = None
    issuer: str = GITLAB_ISSUER

    @property
    def kind(self) -> PublisherKind:
        return "gitlab"

    def describe(self) -> str:
        extra = f", environment {self.environment}" if self.environment else ""
        workflow = f", CI file {self.workflow}" if self.workflow else ""
        return f"GitLab {self.project_path}{workflow}{extra}"


class OidcIdentity(
    msgspec.Struct, frozen=True, kw_only=True, tag="oidc", forbid_unknown_fields=True
):
    """Any OIDC issuer: a token must carry every claim in ``claims`` with exactly that value."""

    issuer: str
    claims: dict[str, str]

    @property
    def kind(self) -> PublisherKind:
        return "oidc"

    def describe(self) -> str:
        shown = ", ".join(f"{k}={v}" for k, v in sorted(self.claims.items()))
        return f"{self.issuer} with {shown}"


Identity: TypeAlias = GitHubIdentity | GitLabIdentity | OidcIdentity

_ENCODER = msgspec.json.Encoder()
_DECODER = msgspec.json.Decoder(Identity)


def encode_identity(identity: Identity) -> bytes:
    return _ENCODER.encode(identity)


def decode_identity(raw: bytes | str | dict[str, object]) -> Identity:
    """An identity from its JSON (or the JSON's dict, as the database returns it)."""
    if isinstance(raw, dict):
        converted: Identity = msgspec.convert(raw, Identity)
        return converted
    return _DECODER.decode(raw)


def _bad(what: str, value: object, fix: str) -> InvalidArgument:
    shown = repr(value) if len(repr(value)) <= 80 else repr(value)[:77] + "..."
    return InvalidArgument(f"invalid {what} {shown}: {fix}")


def check_issuer(issuer: str) -> str:
    """``issuer`` without a trailing slash, if it is an ``https`` URL (``http`` only on loopback,
    as PEP 807 allows) with no query, fragment or credentials."""
    if not isinstance(issuer, str) or not issuer or len(issuer) > _MAX_ISSUER:
        raise _bad("issuer", issuer, "give the issuer's URL, e.g. " + GITHUB_ISSUER)
    try:
        parts = urlsplit(issuer)
        host = parts.hostname or ""
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError as exc:
        raise _bad("issuer", issuer, f"it is not a URL ({exc})") from None
    if parts.query or parts.fragment or parts.username or parts.password or not host:
        raise _bad("issuer", issuer, "an issuer URL has a host and no query, fragment or user")
    if not issuer.isprintable() or any(c.isspace() for c in issuer):
        raise _bad("issuer", issuer, "an issuer URL has no spaces or control characters")
    if parts.scheme == "http":
        if not _loopback(host):
            raise _bad(
                "issuer",
                issuer,
                "the issuer's keys must come over https (http is allowed only on loopback, for "
                "tests)",
            )
    elif parts.scheme != "https":
        raise _bad("issuer", issuer, "use an https:// URL")
    return issuer.rstrip("/")


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_value(what: str, value: str | None, pattern: re.Pattern[str] | None = None) -> None:
    if value is None:
        return
    if (
        not isinstance(value, str)
        or not value
        or len(value) > _MAX_VALUE
        or not value.isprintable()
        or (pattern is not None and pattern.match(value) is None)
    ):
        raise _bad(what, value, f"see docs/trusted-publishing.md for the form of {what}")


def check_identity(identity: Identity) -> Identity:
    """``identity`` with its issuer normalized, if every field has a valid form.

    Raises:
        InvalidArgument: naming the field and its expected form.
    """
    issuer = check_issuer(identity.issuer)
    if isinstance(identity, GitHubIdentity):
        _check_value("GitHub repository (owner/name)", identity.repository, _GITHUB_REPOSITORY)
        _check_value("workflow file name (release.yml)", identity.workflow, _WORKFLOW)
        _check_value("environment", identity.environment)
        _check_value("ref (refs/tags/v1.0)", identity.ref)
        _check_value("repository_id (digits)", identity.repository_id, _DIGITS)
        _check_value("repository_owner_id (digits)", identity.repository_owner_id, _DIGITS)
    elif isinstance(identity, GitLabIdentity):
        _check_value("GitLab project path (group/project)", identity.project_path, _GITLAB_PATH)
        _check_value("CI configuration file (.gitlab-ci.yml)", identity.workflow, _GITLAB_CONFIG)
        _check_value("environment", identity.environment)
        _check_value("ref (refs/tags/v1.0)", identity.ref)
        _check_value("project_id (digits)", identity.project_id, _DIGITS)
    else:
        if not identity.claims or set(identity.claims) <= _NOT_IDENTIFYING:
            raise _bad(
                "claims",
                identity.claims,
                "an oidc publisher needs at least one claim that says who the job is (e.g. sub, "
                "or the issuer's repository claim); iss/aud/exp/nbf/iat/jti are checked anyway",
            )
        if len(identity.claims) > 20:
            raise _bad("claims", identity.claims, "at most 20 claims")
        for name, value in identity.claims.items():
            _check_value("claim name", name, _CLAIM_NAME)
            _check_value(f"value of claim {name}", value)
    return msgspec.structs.replace(identity, issuer=issuer)
