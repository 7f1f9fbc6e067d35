"""Does a verified OIDC token describe a trusted publisher? One pure decision per identity kind.

:func:`mismatches` compares the claims of a token (already verified: signature, issuer, audience,
times; see :mod:`headwater.server.oidc.tokens`) with one
:data:`~headwater.db.identities.Identity` and returns what does not match, in words a person can
act on (empty: it matches). :func:`matching` picks, among publishers, those a token matches.

Vocabulary (what each identity field is compared with):

============================ ======================================= ==========================
identity field               token claim                             comparison
============================ ======================================= ==========================
github ``repository``        ``repository`` (owner/name)             case-insensitive (GitHub
                                                                     names are)
github ``workflow``          ``job_workflow_ref``:                   repository part
                             ``owner/name/.github/workflows/FILE@REF``  case-insensitive, FILE
                                                                     exact
github ``environment``       ``environment``                         case-insensitive (GitHub
                                                                     environments are); absent
                                                                     from the identity: any
github ``ref``               ``ref`` (``refs/tags/v1``)              exact
github ``repository_id``,    same names (strings of digits)          exact
``repository_owner_id``
gitlab ``project_path``      ``project_path``                        case-insensitive
gitlab ``workflow``          ``ci_config_ref_uri``:                  HOST is the issuer's host,
                             ``HOST/PATH//FILE@REF``                 PATH the project path, FILE
                                                                     exact
gitlab ``environment``       ``environment``                         exact
gitlab ``ref``               ``ref`` with ``ref_type``               ``refs/heads/X`` is branch
                                                                     X, ``refs/tags/X`` tag X,
                                                                     else ``ref`` exact
gitlab ``project_id``        ``project_id``                          exact
oidc ``claims``              each named claim                        exact (numbers compared as
                                                                     their decimal text)
============================ ======================================= ==========================

Why: a missing claim never matches (a token without ``environment`` does not satisfy a publisher
that names one); an optional identity field left out matches anything, as on PyPI, so operators
narrow a publisher by adding fields. Case rules follow the issuer's own (GitHub treats
repository and environment names case-insensitively, so ``Acme/Tools`` is ``acme/tools``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypeVar
from urllib.parse import urlsplit

from headwater.db.identities import GitHubIdentity, GitLabIdentity, Identity, OidcIdentity

__all__ = ["matching", "mismatches"]

_P = TypeVar("_P")


def _text(value: Any) -> str | None:
    """A claim as text: strings as they are, integers as decimal; anything else is no match."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return str(value)
    return None


def _wrong(name: str, got: str | None, want: str) -> str:
    shown = "no such claim" if got is None else repr(got[:200])
    return f"{name}: the token has {shown}, the publisher wants {want!r}"


def _exact(claims: Mapping[str, Any], name: str, want: str | None, out: list[str]) -> None:
    if want is None:
        return
    got = _text(claims.get(name))
    if got != want:
        out.append(_wrong(name, got, want))


def _folded(claims: Mapping[str, Any], name: str, want: str | None, out: list[str]) -> None:
    if want is None:
        return
    got = _text(claims.get(name))
    if got is None or got.casefold() != want.casefold():
        out.append(_wrong(name, got, want))


def _github(identity: GitHubIdentity, claims: Mapping[str, Any]) -> list[str]:
    out: list[str] = []
    _folded(claims, "repository", identity.repository, out)
    workflow_ref = _text(claims.get("job_workflow_ref"))
    want = f"{identity.repository}/.github/workflows/{identity.workflow}"
    path = None if workflow_ref is None else workflow_ref.partition("@")[0]
    if path is None or "@" not in (workflow_ref or ""):
        out.append(_wrong("job_workflow_ref", workflow_ref, want + "@REF"))
    else:
        repo_part, sep, file_part = path.rpartition("/.github/workflows/")
        if (
            not sep
            or repo_part.casefold() != identity.repository.casefold()
            or file_part != identity.workflow
        ):
            out.append(_wrong("job_workflow_ref", workflow_ref, want + "@REF"))
    _folded(claims, "environment", identity.environment, out)
    _exact(claims, "ref", identity.ref, out)
    _exact(claims, "repository_id", identity.repository_id, out)
    _exact(claims, "repository_owner_id", identity.repository_owner_id, out)
    return out


def _gitlab(identity: GitLabIdentity, claims: Mapping[str, Any]) -> list[str]:
    out: list[str] = []
    _folded(claims, "project_path", identity.project_path, out)
    if identity.workflow is not None:
        uri = _text(claims.get("ci_config_ref_uri"))
        host = urlsplit(identity.issuer).netloc
        want = f"{host}/{identity.project_path}//{identity.workflow}"
        left, sep, right = (uri or "").partition("//")
        file_part, at, _ref = right.rpartition("@")
        if (
            uri is None
            or not sep
            or not at
            or left.casefold() != f"{host}/{identity.project_path}".casefold()
            or file_part != identity.workflow
        ):
            out.append(_wrong("ci_config_ref_uri", uri, want + "@REF"))
    _exact(claims, "environment", identity.environment, out)
    if identity.ref is not None:
        ref = _text(claims.get("ref"))
        kind = _text(claims.get("ref_type"))
        for prefix, want_kind in (("refs/heads/", "branch"), ("refs/tags/", "tag")):
            if identity.ref.startswith(prefix):
                if (kind, ref) != (want_kind, identity.ref.removeprefix(prefix)):
                    got = None if ref is None else f"{kind} {ref}"
                    out.append(_wrong("ref", got, identity.ref))
                break
        else:
            _exact(claims, "ref", identity.ref, out)
    _exact(claims, "project_id", identity.project_id, out)
    return out


def mismatches(identity: Identity, claims: Mapping[str, Any]) -> list[str]:
    """What in ``claims`` does not match ``identity``: one line per claim (empty: a match).

    The issuer is compared by the caller (the token was verified against this issuer's keys)."""
    if isinstance(identity, GitHubIdentity):
        return _github(identity, claims)
    if isinstance(identity, GitLabIdentity):
        return _gitlab(identity, claims)
    assert isinstance(identity, OidcIdentity)
    out: list[str] = []
    for name, want in sorted(identity.claims.items()):
        _exact(claims, name, want, out)
    return out


def matching(
    publishers: Iterable[_P], identity_of: Any, claims: Mapping[str, Any]
) -> tuple[list[_P], list[tuple[_P, Sequence[str]]]]:
    """(the publishers whose identity ``claims`` match, the others with why not).

    ``identity_of(publisher)`` gives a publisher's identity (so this works on any record)."""
    matched: list[_P] = []
    missed: list[tuple[_P, Sequence[str]]] = []
    for publisher in publishers:
        why = mismatches(identity_of(publisher), claims)
        if why:
            missed.append((publisher, why))
        else:
            matched.append(publisher)
    return matched, missed
