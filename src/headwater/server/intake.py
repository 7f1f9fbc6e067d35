"""Receiving a legacy upload (``twine upload``) safely: the multipart body, then the form.

Three steps, each usable on its own:

1. :func:`~headwater.server.upload_body.receive_upload` streams the ``multipart/form-data`` body
   to a spool file, hashing it on the way (:mod:`headwater.server.upload_body`).
2. :func:`validate_form` applies the protocol checks of PyPI's legacy upload API (standards.md
   U2-U7, U9, U11) and checks every digest the client sent against the ones computed.
3. :func:`inspect_upload` reads the distribution itself (:mod:`headwater.repository.artifacts`, in a
   thread) and checks that the file, the form and the core metadata name the same thing.

This module is steps 2 and 3. Every refusal is an
:class:`~headwater.server.upload_body.UploadRejected` carrying the HTTP status and a one-line
reason phrase: twine shows the reason phrase to the user, and relies on a few of them (U9, U10).
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from packaging.version import InvalidVersion, Version

from headwater.repository.artifacts import (
    Distribution,
    InvalidDistribution,
    Limits,
    inspect_distribution,
)
from headwater.server.upload_body import Upload, UploadRejected
from headwater.simple.filenames import InvalidFilename, check_safe_filename
from headwater.simple.names import is_valid_name, normalize_name

if TYPE_CHECKING:
    pass

__all__ = [
    "ATTESTATIONS_REFUSED",
    "MAX_ATTESTATIONS",
    "UploadForm",
    "inspect_upload",
    "validate_form",
]

# Fields that carry the protocol rather than core metadata; a second value is refused.
_SINGLE = (
    ":action",
    "protocol_version",
    "filetype",
    "pyversion",
    "metadata_version",
    "name",
    "version",
    "md5_digest",
    "sha256_digest",
    "blake2_256_digest",
    "comment",
    "attestations",
)
_PROTOCOL = frozenset((*_SINGLE, "gpg_signature"))
_HEX64 = re.compile(r"[0-9a-fA-F]{64}\Z")
_MD5_B64 = re.compile(r"[A-Za-z0-9_-]{22}\Z")
_MD5_HEX = re.compile(r"[0-9A-Fa-f]{32}\Z")
_DEFAULT_LIMITS = Limits()


@dataclass(frozen=True, slots=True)
class UploadForm:
    """An upload whose form passed the legacy-API protocol checks and whose digests match."""

    upload: Upload
    filename: str
    filetype: Literal["sdist", "bdist_wheel"]
    #: ``source`` for an sdist; the Python tag the client sent for a wheel.
    pyversion: str
    metadata_version: str
    #: The project name and version as the client sent them (checked for syntax only).
    name: str
    version: str
    comment: str | None = None
    #: The digests the client sent (all matched the file).
    sha256_digest: str | None = None
    blake2_256_digest: str | None = None
    md5_digest: str | None = None
    #: The other (core metadata) fields, e.g. ``summary``, ``requires_dist`` (U6).
    metadata: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    #: PEP 740: the ``attestations`` field as sent (a JSON array), verified by the caller once
    #: the file's name and digest are known (:func:`headwater.provenance.provenance_for_upload`).
    attestations: str | None = None


# --- step 2: the form ---------------------------------------------------------------------------


def validate_form(upload: Upload) -> UploadForm:
    """Check the form of a received upload against the legacy upload protocol.

    ``:action`` must be ``file_upload`` and ``protocol_version`` 1 (U2); ``filetype`` ``sdist`` or
    ``bdist_wheel`` with a ``.tar.gz``/``.zip`` or ``.whl`` filename that is safe as one path
    component (U5, U11); ``pyversion`` ``source`` for an sdist (the default) and present for a
    wheel (U5); ``metadata_version``, ``name`` and ``version`` present, the name valid and the
    version PEP 440 (U6); at least one digest, each well-formed and equal to the digest of the
    received bytes (U4); ``attestations``, when sent, is kept as it is for the caller to verify
    (U7, PEP 740). The file itself is not read: see :func:`inspect_upload`.

    Raises:
        UploadRejected: 410 for the retired actions ``submit``, ``submit_pkg_info`` and
            ``doc_upload``; 400 for everything else, with PyPI-like wording where twine users
            know it (e.g. "The digest supplied does not match a digest calculated from the
            uploaded file.").
    """
    fields = upload.fields
    for name, values in fields.items():
        if name in _SINGLE and len(values) > 1:
            raise UploadRejected(400, f"Invalid upload: field {name!r} is given more than once")
        if any("\x00" in value for value in values):
            raise UploadRejected(400, f"Invalid upload: field {name!r} contains a null byte")

    def get(name: str) -> str | None:
        values = fields.get(name)
        return values[0].strip() if values else None

    _check_action(get(":action"), get("protocol_version"))
    filename = _check_filename(upload.filename)
    filetype = get("filetype")
    if filetype not in ("sdist", "bdist_wheel"):
        raise UploadRejected(
            400, f"Invalid value for filetype: {filetype!r}. Error: Use 'sdist' or 'bdist_wheel'."
        )
    suffixes = (".tar.gz", ".zip") if filetype == "sdist" else (".whl",)
    if not filename.endswith(suffixes):
        raise UploadRejected(
            400,
            f"Invalid file extension for {filetype} {filename!r}: use {' or '.join(suffixes)} "
            "(PEP 527, PEP 625)",
        )
    pyversion = get("pyversion")
    if filetype == "sdist":
        if pyversion and pyversion != "source":
            raise UploadRejected(
                400,
                "Invalid value for pyversion. Error: Use 'source' as Python version for an sdist.",
            )
        pyversion = "source"
    elif not pyversion:
        raise UploadRejected(
            400,
            "Invalid value for pyversion. Error: Python version is required for binary "
            "distribution uploads.",
        )
    required = {key: get(key) for key in ("metadata_version", "name", "version")}
    for key, value in required.items():
        if not value:
            raise UploadRejected(400, f"Invalid value for {key}. Error: This field is required.")
    name, version = required["name"] or "", required["version"] or ""
    if not is_valid_name(name):
        raise UploadRejected(
            400,
            f"Invalid value for name: {name[:100]!r}. Error: Start and end with a letter or "
            "numeral containing only ASCII numeric and '.', '_' and '-'.",
        )
    try:
        Version(version)
    except InvalidVersion:
        raise UploadRejected(
            400, f"Invalid value for version: {version[:100]!r}. Error: Use a PEP 440 version."
        ) from None
    digests = _check_digests(upload, get)
    attestations = _check_attestations(fields)
    return UploadForm(
        upload=upload,
        filename=filename,
        filetype="sdist" if filetype == "sdist" else "bdist_wheel",
        pyversion=pyversion,
        metadata_version=required["metadata_version"] or "",
        name=name,
        version=version,
        comment=get("comment"),
        sha256_digest=digests[0],
        blake2_256_digest=digests[1],
        md5_digest=digests[2],
        metadata={k: v for k, v in fields.items() if k not in _PROTOCOL},
        attestations=attestations,
    )


def _check_action(action: str | None, protocol_version: str | None) -> None:
    if action in ("submit", "submit_pkg_info"):
        raise UploadRejected(
            410,
            "Project pre-registration is no longer required or supported, upload your files "
            "instead.",
        )
    if action == "doc_upload":
        raise UploadRejected(
            410,
            "Uploading documentation is no longer supported; host documentation elsewhere "
            "(for example on Read the Docs).",
        )
    if action != "file_upload":
        raise UploadRejected(
            400, f"Invalid or missing ':action' {action!r}: only 'file_upload' is supported."
        )
    # PyPI treats a missing protocol_version as 1.
    if protocol_version not in (None, "1"):
        raise UploadRejected(400, "Unknown protocol version.")


def _check_filename(filename: str) -> str:
    try:
        return check_safe_filename(filename)
    except InvalidFilename as exc:
        raise UploadRejected(400, f"Invalid distribution filename: {exc}") from exc


def _check_digests(
    upload: Upload, get: Callable[[str], str | None]
) -> tuple[str | None, str | None, str | None]:
    sha256, blake2, md5 = get("sha256_digest"), get("blake2_256_digest"), get("md5_digest")
    if not (sha256 or blake2 or md5):
        raise UploadRejected(400, "Include at least one message digest.")
    for value, label in ((sha256, "SHA256"), (blake2, "BLAKE2")):
        if value and not _HEX64.match(value):
            raise UploadRejected(
                400, f"Invalid {label} digest {value[:80]!r}: use 64 hexadecimal characters."
            )
    # U4 says md5 is urlsafe base64 without padding, but twine (up to 6.x at least) sends the
    # 32-character hex digest, and PyPI accepts it: take either form.
    if md5 and not (_MD5_B64.match(md5) or _MD5_HEX.match(md5)):
        raise UploadRejected(
            400,
            f"Invalid md5_digest {md5[:80]!r}: use 32 hexadecimal characters or urlsafe base64 "
            "without padding.",
        )
    md5_given: str | None
    if md5 and _MD5_HEX.match(md5):
        md5_given, md5_computed = md5.lower(), upload.md5
    else:
        md5_given = md5
        md5_computed = base64.urlsafe_b64encode(bytes.fromhex(upload.md5)).rstrip(b"=").decode()
    # Hex digests compare case-insensitively; base64 is case-sensitive.
    pairs = (
        (sha256 and sha256.lower(), upload.sha256),
        (blake2 and blake2.lower(), upload.blake2_256),
        (md5_given, md5_computed),
    )
    for given, computed in pairs:
        if given and not hmac.compare_digest(given, computed):
            raise UploadRejected(
                400,
                "The digest supplied does not match a digest calculated from the uploaded file.",
            )
    return sha256, blake2, md5


#: PyPI's prefix for every attestation refusal: warehouse forklift/legacy.py wraps the
#: AttestationUploadError of warehouse/attestations/services.py as 400 "Invalid attestations
#: supplied during upload: ..."; twine and uv show it.
ATTESTATIONS_REFUSED = "Invalid attestations supplied during upload: "


#: Most attestations one upload may carry (each is verified; PyPI's clients send one per file).
MAX_ATTESTATIONS = 16


def _check_attestations(fields: Mapping[str, tuple[str, ...]]) -> str | None:
    # PEP 740: "a JSON array of attestation objects"; an index that accepts the field MUST
    # verify each one and reject the upload if any fails. The shape is checked here; the
    # signatures once the file's name and digest are known (server/upload.py).
    values = fields.get("attestations")
    if values is None:
        return None
    try:
        parsed = json.loads(values[0])
    except ValueError:
        raise UploadRejected(
            400, ATTESTATIONS_REFUSED + "the attestations field is not JSON"
        ) from None
    if not isinstance(parsed, list) or not parsed or not all(isinstance(a, dict) for a in parsed):
        raise UploadRejected(
            400,
            ATTESTATIONS_REFUSED + "the attestations field must be a non-empty JSON array of "
            "attestation objects",
        )
    if len(parsed) > MAX_ATTESTATIONS:
        raise UploadRejected(
            400, ATTESTATIONS_REFUSED + f"more than {MAX_ATTESTATIONS} attestations for one file"
        )
    return values[0]


# --- step 3: the file against the form ---------------------------------------------------------


async def inspect_upload(form: UploadForm, *, limits: Limits = _DEFAULT_LIMITS) -> Distribution:
    """Read the uploaded file in a worker thread and check it agrees with the form.

    The distribution's own filename checks and metadata checks are
    :func:`headwater.repository.artifacts.inspect_distribution`'s; here the form's ``name``,
    ``version`` and ``filetype`` must also be the distribution's (a client sending one project's
    name with another's file is refused, whatever the permission check later decides).

    Raises:
        UploadRejected: 400, with the artifact's own message when the file is refused.
    """
    try:
        dist = await asyncio.to_thread(
            inspect_distribution, form.upload.path, form.filename, limits=limits
        )
    except InvalidDistribution as exc:
        raise UploadRejected(400, f"Invalid distribution file. {exc}") from exc
    if normalize_name(form.name) != dist.name:
        raise UploadRejected(
            400,
            f"The name in the upload form ({form.name!r}) is not the project in the file "
            f"({dist.display_name!r}); upload with a client that reads it from the file",
        )
    if Version(form.version) != Version(dist.version):
        raise UploadRejected(
            400,
            f"The version in the upload form ({form.version!r}) is not the version in the file "
            f"({dist.version!r})",
        )
    if form.filetype != dist.filetype:
        raise UploadRejected(
            400,
            f"The filetype in the upload form ({form.filetype!r}) does not match {dist.filename!r}",
        )
    return dist
