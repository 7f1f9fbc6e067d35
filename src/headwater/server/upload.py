"""``POST /<index>/legacy/``: uploads as twine sends them (standards.md section 4.3).

The order: credentials (before a byte of the body is read), the body streamed to a spool file
with its digests, the form, the distribution itself, then the permission and state checks and the
writes of :mod:`headwater.repository.uploads`. Every refusal is a status with a one-line reason
in a ``text/plain`` body. ASGI has no way to set the HTTP reason phrase, so twine prints the
standard phrase ("400 Bad Request") and shows our reason with ``--verbose``; ``--skip-existing``
reads "File already exists" from the body, which twine checks as well as the phrase (U10).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Mapping
from pathlib import Path

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from headwater.config.settings import HostedSettings
from headwater.db import Database, DatabaseUnavailable
from headwater.db.identities import GitHubIdentity, GitLabIdentity, Identity
from headwater.policy.publishers import PublisherIdentity
from headwater.provenance import (
    ProvenanceInvalid,
    TrustRoot,
    TrustRootError,
    VerifiedProvenance,
    provenance_for_upload,
)
from headwater.repository.artifacts import metadata_for_pep658
from headwater.repository.hosted import HostedSource
from headwater.repository.uploads import Accepted, Candidate, UploadRefused, accept_upload
from headwater.server.auth import Authenticator
from headwater.server.authz import Denied, Target, decide
from headwater.server.intake import ATTESTATIONS_REFUSED, UploadForm, inspect_upload, validate_form
from headwater.server.metrics import Metrics
from headwater.server.upload_body import UploadRejected, receive_upload
from headwater.simple.names import NormalizedName
from headwater.storage.base import StorageError
from headwater.storage.filesystem import private_directory

log = logging.getLogger("headwater.upload")

__all__ = ["UploadEndpoint"]

#: Form fields (core metadata as text) are small; PyPI caps descriptions at a few MiB.
MAX_FIELDS_SIZE = 16 << 20


def _refuse(status: int, reason: str, *, challenge: str | None = None) -> Response:
    headers = {"www-authenticate": f'Basic realm="{challenge}"'} if challenge else None
    return PlainTextResponse(reason.rstrip() + "\n", status_code=status, headers=headers)


class UploadEndpoint:
    """The upload route for every hosted index."""

    def __init__(
        self,
        db: Database,
        hosted: Mapping[str, HostedSource],
        settings: Mapping[str, HostedSettings],
        auth: Authenticator,
        metrics: Metrics,
        spool_dir: Path,
        *,
        default: str | None,
        trust: TrustRoot | None = None,
    ) -> None:
        self.db = db
        self.hosted = hosted
        self.settings = settings
        self.auth = auth
        self.metrics = metrics
        self.spool_dir = spool_dir
        self.default = default
        self.trust = trust or TrustRoot()

    async def handle(self, request: Request) -> Response:
        index = request.path_params.get("index", self.default)
        source = self.hosted.get(index) if index else None
        if source is None or index is None:
            return _refuse(404, f"{request.url.path} is not the upload URL of a hosted index")
        try:
            response = await self._upload(request, index, source)
        except (DatabaseUnavailable, StorageError) as exc:
            # The file is visible only once its row is committed, so it is not in the index; the
            # spool file went with the request. A 5xx, which twine retries.
            what = "database" if isinstance(exc, DatabaseUnavailable) else "storage"
            if what == "storage":
                log.warning("upload to %r: storage failed: %s", index, exc)
            response = _refuse(
                503,
                f"Index {index!r} cannot reach its {what}; the file was not added. Try again later "
                "(the operator sees why at /health/ready)",
            )
        result = "created" if response.status_code == 200 else "refused"
        if response.status_code == 200 and bytes(response.body).startswith(b"OK (already"):
            result = "identical"
        self.metrics.upload(index, result)
        return response

    async def _upload(self, request: Request, index: str, source: HostedSource) -> Response:
        # U8: Basic auth, "__token__" and the token, as twine sends it (or Bearer). authz.decide
        # answers twice: for the index before a byte of the body is read, then for the project
        # the file names, with its owners.
        credentials = await self.auth.credentials(request.scope)
        decision = decide(credentials, Target(index=index), "upload")
        if isinstance(decision, Denied):
            return _refuse(decision.status, decision.message, challenge=decision.challenge)
        token = credentials.token
        assert token is not None  # decide allows uploads to valid tokens only
        private_directory(self.spool_dir)  # uploads in progress are the server user's alone
        settings = self.settings[index]
        try:
            upload = await receive_upload(
                request.stream(),
                request.headers.get("content-type", ""),
                self.spool_dir,
                max_file_size=settings.max_upload_size,
                max_fields_size=MAX_FIELDS_SIZE,
            )
        except UploadRejected as exc:
            return _refuse(exc.status, exc.reason)
        with upload:
            try:
                form = validate_form(upload)
                dist = await inspect_upload(form)
            except UploadRejected as exc:
                return _refuse(exc.status, exc.reason)
            owners = await asyncio.to_thread(self.db.ownership, index, dist.name)
            publisher: int | None = None
            if token.minted:
                # Trusted publishing: which of the token's publishers may publish this now.
                publisher = await asyncio.to_thread(
                    self.db.publisher_grant, token.id, index, dist.name
                )
            target = Target(
                index=index,
                project=dist.name,
                exists=owners is not None,
                owner=owners is not None and token.user in owners,
                publisher=publisher is not None,
            )
            decision = decide(credentials, target, "upload")
            if isinstance(decision, Denied):
                return _refuse(decision.status, decision.message)
            # Attestations are verified before a single-use token is used up by this upload.
            try:
                provenance = await self._provenance(form, settings, index, dist.name, upload.sha256)
            except UploadRejected as exc:
                return _refuse(exc.status, exc.reason)
            # PEP 807 single-use-token: the first upload it is allowed for uses it up.
            if (
                token.minted
                and await asyncio.to_thread(self.db.is_single_use, token.id)
                and not await asyncio.to_thread(self.db.use_single_use, token.id)
            ):
                return _refuse(
                    403,
                    "Invalid or non-existent authentication information. This single-use "
                    "token was used already: mint a new one.",
                )
            metadata = metadata_for_pep658(dist)
            candidate = Candidate(
                index=index,
                project=dist.name,
                display_name=dist.display_name,
                version=dist.version,
                filename=dist.filename,
                path=upload.path,
                size=upload.size,
                sha256=upload.sha256,
                blake2_256=upload.blake2_256,
                requires_python=dist.requires_python,
                metadata=metadata,
                metadata_sha256=hashlib.sha256(metadata).hexdigest() if metadata else None,
                provenance=provenance.document if provenance else None,
                publishers=tuple(p.spec() for p in provenance.publishers) if provenance else (),
                user=token.user,
                admin=decision.admin,
                publisher=publisher,
            )
            try:
                accepted = await accept_upload(self.db, source.storage, candidate)
            except UploadRefused as exc:
                return _refuse(exc.status, str(exc))
        source.changed()
        if token.minted and accepted is Accepted.CREATED:
            await asyncio.to_thread(
                self.db.record_publish, token.id, index, dist.name, dist.filename, publisher
            )
        if accepted is Accepted.IDENTICAL:
            return PlainTextResponse(f"OK (already uploaded: {dist.filename})\n")
        return PlainTextResponse(f"OK: {dist.filename} is in {index}/{dist.name}\n")

    async def _provenance(
        self,
        form: UploadForm,
        settings: HostedSettings,
        index: str,
        project: NormalizedName,
        sha256: str,
    ) -> VerifiedProvenance | None:
        """PEP 740: verify the upload's attestations (signature, certificate chain, transparency
        log inclusion against the trust root; the statement's subject is this file; the signer
        is one of the project's trusted publishers when it has any), or refuse the upload with
        PyPI's 400 text. None when the upload has none and the project does not require them.

        Raises:
            UploadRejected: 400 "Invalid attestations supplied during upload: ...", or 503 when
                the trust root cannot be read (the operator's to fix; nothing is stored).
        """
        if form.attestations is None:
            if settings.requires_provenance(project):
                raise UploadRejected(
                    400,
                    f"{ATTESTATIONS_REFUSED}project {project!r} requires PEP 740 attestations "
                    "on every upload and this one has none; publish from the project's trusted "
                    "publisher with attestations (twine upload --attestations; "
                    "pypa/gh-action-pypi-publish does by default)",
                )
            return None
        # The project's trusted publishers (headwater.db.publishers: CLI, API, config) and the
        # index's own trusted_publishers setting: a signer must be one of them when any exist.
        trusted = await asyncio.to_thread(self.db.publishers_for, index, project)
        expected = [
            *settings.publishers_of(project),
            *(i for i in map(_as_publisher_identity, (p.identity for p in trusted)) if i),
        ]
        try:
            return await asyncio.to_thread(
                provenance_for_upload,
                form.attestations,
                form.filename,
                sha256,
                self.trust,
                expected,
            )
        except ProvenanceInvalid as exc:
            raise UploadRejected(
                400, f"{ATTESTATIONS_REFUSED}{exc}; the file was not added"
            ) from exc
        except TrustRootError as exc:
            raise UploadRejected(503, f"{exc}; the file was not added") from exc


def _as_publisher_identity(identity: Identity) -> PublisherIdentity | None:
    """A trusted publisher's identity as the identity an attestation's certificate proves
    (headwater.policy.publishers); None for a generic OIDC publisher without a ``sub`` or
    ``email`` claim, which a certificate cannot be compared with."""
    if isinstance(identity, GitHubIdentity):
        return PublisherIdentity(
            kind="github",
            issuer=identity.issuer,
            repository=identity.repository,
            workflow=identity.workflow,
            environment=identity.environment,
        )
    if isinstance(identity, GitLabIdentity):
        return PublisherIdentity(
            kind="gitlab",
            issuer=identity.issuer,
            repository=identity.project_path,
            workflow=identity.workflow,
            environment=identity.environment,
        )
    subject = identity.claims.get("email") or identity.claims.get("sub")
    if subject is None:
        return None
    return PublisherIdentity(kind="other", issuer=identity.issuer, subject=subject)
