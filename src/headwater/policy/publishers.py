"""Who published a file: the identity a PEP 740 attestation proves, and matching it.

A *publisher identity* is what the Sigstore signing certificate of an attestation says about the
CI job that signed it (Fulcio's certificate extensions, OIDs ``1.3.6.1.4.1.57264.1.*``): the OIDC
issuer, and for a CI platform the repository and the workflow file. It is the same shape as a
trusted publisher's configuration (PyPI's GitHub publisher: repository, workflow, environment), so
one struct serves both the attestation check on upload and the publisher-continuity guard.

Vocabulary:

==============  =============================================================================
kind            ``github``, ``gitlab``, ``google``, or ``other`` (any issuer: a person's email
                identity, another CI)
issuer          the OIDC issuer URL in the certificate (``https://token.actions.githubusercontent.com``)
repository      ``owner/repo`` (GitHub), ``group/sub/project`` (GitLab); None for google/other
workflow        the workflow file: ``release.yml`` (GitHub), ``.gitlab-ci.yml`` (GitLab)
environment     the CI environment (GitHub/GitLab deployment environment). Not in the
                certificate: it comes from the publisher object of a provenance document or a
                trusted publisher's configuration, and is only compared when both sides name one
subject         the certificate's identity for google/other (an email address or URI)
==============  =============================================================================

A *spec* is how an operator writes an expected identity in the config or on the command line:
``github:OWNER/REPO``, ``github:OWNER/REPO:WORKFLOW``, ``github:OWNER/REPO:WORKFLOW@ENVIRONMENT``,
``gitlab:GROUP/PROJECT:.gitlab-ci.yml``, ``google:EMAIL``, ``other:ISSUER_URL|SUBJECT``.

Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Literal
from urllib.parse import urlsplit

import msgspec

__all__ = [
    "GITHUB_ISSUER",
    "GITLAB_ISSUER",
    "GOOGLE_ISSUER",
    "InvalidPublisher",
    "PublisherIdentity",
    "describe_all",
    "identity_from_certificate",
    "identity_from_pep740",
    "matches",
    "matches_any",
    "parse_publisher_spec",
]

Kind = Literal["github", "gitlab", "google", "other"]

GITHUB_ISSUER = "https://token.actions.githubusercontent.com"
GITLAB_ISSUER = "https://gitlab.com"
GOOGLE_ISSUER = "https://accounts.google.com"

# Fulcio's certificate extensions (sigstore/fulcio docs/oid-info.md), decoded to text by the caller.
OID_ISSUER = "1.3.6.1.4.1.57264.1.8"
OID_BUILD_CONFIG_URI = "1.3.6.1.4.1.57264.1.18"
OID_SOURCE_REPOSITORY_URI = "1.3.6.1.4.1.57264.1.12"

_LABEL = {"github": "GitHub", "gitlab": "GitLab", "google": "Google", "other": "issuer"}
#: PEP 740 publisher ``kind`` (as PyPI writes it) -> ours.
_PEP740_KIND: dict[str, Kind] = {"github": "github", "gitlab": "gitlab", "google": "google"}


class InvalidPublisher(ValueError):
    """A publisher spec or publisher object cannot be read; the message names it and the form."""


class PublisherIdentity(msgspec.Struct, frozen=True, kw_only=True):
    """One publisher identity (see the module's vocabulary)."""

    kind: Kind
    issuer: str
    repository: str | None = None
    workflow: str | None = None
    environment: str | None = None
    subject: str | None = None

    def describe(self) -> str:
        """One line a person can read, e.g. ``GitHub trailofbits/pypi-attestations, workflow
        release.yml``; used in refusals, logs and reports (no double quotes, no newlines)."""
        if self.kind in ("github", "gitlab"):
            text = f"{_LABEL[self.kind]} {self.repository}"
            if self.workflow:
                text += f", workflow {self.workflow}"
            if self.environment:
                text += f", environment {self.environment}"
        elif self.kind == "google":
            text = f"Google {self.subject}"
        else:
            text = f"{self.subject} (issuer {self.issuer})"
        return " ".join(text.replace('"', "'").split())

    def spec(self) -> str:
        """The spec that names exactly this identity (what an operator pastes into the config)."""
        if self.kind in ("github", "gitlab"):
            text = f"{self.kind}:{self.repository}"
            if self.workflow:
                text += f":{self.workflow}"
            if self.environment:
                text += f"@{self.environment}"
            return text
        if self.kind == "google":
            return f"google:{self.subject}"
        return f"other:{self.issuer}|{self.subject}"

    def to_pep740(self) -> dict[str, Any]:
        """The PEP 740 ``publisher`` object of a provenance document's attestation bundle."""
        if self.kind == "github":
            return {
                "kind": "GitHub",
                "repository": self.repository,
                "workflow": self.workflow,
                "environment": self.environment,
            }
        if self.kind == "gitlab":
            return {
                "kind": "GitLab",
                "repository": self.repository,
                "workflow_filepath": self.workflow,
                "environment": self.environment,
            }
        if self.kind == "google":
            return {"kind": "Google", "email": self.subject}
        return {"kind": "other", "issuer": self.issuer, "subject": self.subject}


def _path_of(url: str, host_prefix: str) -> str | None:
    if not url.startswith(host_prefix):
        return None
    return url[len(host_prefix) :].strip("/") or None


def identity_from_certificate(
    claims: Mapping[str, str], san: str | None = None
) -> PublisherIdentity:
    """The identity a Fulcio certificate proves, from its extensions (``claims``: dotted OID ->
    text) and its subject alternative name (``san``: the email or URI it was issued to).

    GitHub: the repository from the source repository URI, the workflow file from the build
    config URI (``https://github.com/O/R/.github/workflows/release.yml@refs/tags/v1``). GitLab:
    the same from ``https://gitlab.com/G/P//.gitlab-ci.yml@refs/heads/main``. Anything else is
    ``google`` (accounts.google.com) or ``other``, identified by its SAN.
    """
    issuer = claims.get(OID_ISSUER, "")
    repo_uri = claims.get(OID_SOURCE_REPOSITORY_URI, "")
    config_uri = claims.get(OID_BUILD_CONFIG_URI, "")
    if issuer == GITHUB_ISSUER:
        repository = _path_of(repo_uri, "https://github.com/")
        workflow = None
        _, sep, tail = config_uri.partition("/.github/workflows/")
        if sep:
            workflow = tail.split("@", 1)[0] or None
        return PublisherIdentity(
            kind="github", issuer=issuer, repository=repository, workflow=workflow
        )
    if issuer == GITLAB_ISSUER:
        repository = _path_of(repo_uri, "https://gitlab.com/")
        workflow = None
        _, sep, tail = config_uri.partition("//")
        if sep:
            # https://gitlab.com/G/P//path/to/.gitlab-ci.yml@ref: the part after the second "//".
            _, sep2, path = tail.partition("//")
            if sep2:
                workflow = path.split("@", 1)[0] or None
        return PublisherIdentity(
            kind="gitlab", issuer=issuer, repository=repository, workflow=workflow
        )
    if issuer == GOOGLE_ISSUER:
        return PublisherIdentity(kind="google", issuer=issuer, subject=san)
    return PublisherIdentity(kind="other", issuer=issuer, subject=san)


def identity_from_pep740(publisher: Mapping[str, Any]) -> PublisherIdentity:
    """The identity a provenance document's ``publisher`` object names (PyPI's kinds ``GitHub``,
    ``GitLab``, ``Google``; anything else is ``other``).

    Raises:
        InvalidPublisher: it is not an object with a string ``kind``.
    """
    if not isinstance(publisher, Mapping) or not isinstance(publisher.get("kind"), str):
        raise InvalidPublisher("a provenance publisher must be an object with a string 'kind'")

    def text(key: str) -> str | None:
        value = publisher.get(key)
        return value if isinstance(value, str) and value else None

    kind = _PEP740_KIND.get(str(publisher["kind"]).lower(), "other")
    if kind == "github":
        return PublisherIdentity(
            kind="github",
            issuer=GITHUB_ISSUER,
            repository=text("repository"),
            workflow=text("workflow"),
            environment=text("environment"),
        )
    if kind == "gitlab":
        return PublisherIdentity(
            kind="gitlab",
            issuer=GITLAB_ISSUER,
            repository=text("repository"),
            workflow=text("workflow_filepath") or text("workflow"),
            environment=text("environment"),
        )
    if kind == "google":
        return PublisherIdentity(kind="google", issuer=GOOGLE_ISSUER, subject=text("email"))
    return PublisherIdentity(
        kind="other", issuer=text("issuer") or "", subject=text("subject") or text("email")
    )


def parse_publisher_spec(spec: str) -> PublisherIdentity:
    """An identity from its spec (see the module docstring).

    Raises:
        InvalidPublisher: naming the spec and the accepted forms.
    """
    forms = (
        "use github:OWNER/REPO[:WORKFLOW][@ENVIRONMENT], gitlab:GROUP/PROJECT[:WORKFLOW]"
        "[@ENVIRONMENT], google:EMAIL or other:ISSUER_URL|SUBJECT"
    )
    kind, sep, rest = spec.strip().partition(":")
    kind = kind.lower()
    if not sep or not rest:
        raise InvalidPublisher(f"publisher {spec[:200]!r} has no kind: {forms}")
    if kind in ("github", "gitlab"):
        rest, _, environment = rest.partition("@")
        repository, _, workflow = rest.partition(":")
        parts = repository.split("/")
        if len(parts) < 2 or not all(parts) or (kind == "github" and len(parts) != 2):
            raise InvalidPublisher(
                f"publisher {spec[:200]!r}: the repository must be OWNER/REPO"
                + (" (GROUP/.../PROJECT for GitLab)" if kind == "gitlab" else "")
                + f"; {forms}"
            )
        return PublisherIdentity(
            kind=kind,  # type: ignore[arg-type]
            issuer=GITHUB_ISSUER if kind == "github" else GITLAB_ISSUER,
            repository=repository,
            workflow=workflow or None,
            environment=environment or None,
        )
    if kind == "google":
        return PublisherIdentity(kind="google", issuer=GOOGLE_ISSUER, subject=rest)
    if kind == "other":
        issuer, sep, subject = rest.partition("|")
        if not sep or not subject or urlsplit(issuer).scheme not in ("https", "http"):
            raise InvalidPublisher(f"publisher {spec[:200]!r}: {forms}")
        return PublisherIdentity(kind="other", issuer=issuer, subject=subject)
    raise InvalidPublisher(f"publisher {spec[:200]!r}: unknown kind {kind!r}; {forms}")


def _same(a: str | None, b: str | None, *, fold: bool) -> bool:
    if a is None or b is None:
        return a is b
    return a.lower() == b.lower() if fold else a == b


def matches(actual: PublisherIdentity, expected: PublisherIdentity) -> bool:
    """Whether ``actual`` (what a certificate proved) is the publisher ``expected`` names.

    Kind and issuer must be equal; the repository too (case-insensitively on GitHub and GitLab,
    whose names are case-insensitive). ``expected``'s workflow, when it names one, must be
    ``actual``'s; its environment likewise, but only when ``actual`` knows one (certificates do
    not carry it). ``subject`` (google/other) must be equal.
    """
    if actual.kind != expected.kind or actual.issuer.rstrip("/") != expected.issuer.rstrip("/"):
        return False
    if actual.kind in ("github", "gitlab"):
        if not _same(actual.repository, expected.repository, fold=True):
            return False
        if expected.workflow is not None and actual.workflow != expected.workflow:
            return False
        return (
            expected.environment is None
            or actual.environment is None
            or actual.environment == expected.environment
        )
    return _same(actual.subject, expected.subject, fold=actual.kind == "google")


def matches_any(actual: PublisherIdentity, expected: Iterable[PublisherIdentity]) -> bool:
    """Whether ``actual`` matches one of ``expected``."""
    return any(matches(actual, e) for e in expected)


def describe_all(identities: Iterable[PublisherIdentity]) -> str:
    """``a; b`` (each :meth:`PublisherIdentity.describe`), or ``no publisher``."""
    texts = sorted({i.describe() for i in identities})
    return "; ".join(texts) if texts else "no publisher"
