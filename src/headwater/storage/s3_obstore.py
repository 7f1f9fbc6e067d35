"""The S3 storage's request client: obstore (Rust's ``object_store`` behind a small Python API).

Every request of :class:`~headwater.storage.s3.S3Storage` but a multipart upload goes through an
``obstore`` ``S3Store`` made here from the location's :class:`~headwater.storage.location.S3Options`
(docs/dependencies.md has the measurements: about a fifth of aiobotocore's CPU per request).

Configuration, option by option:

==========================  ======================================================================
option                      how the store gets it
==========================  ======================================================================
``endpoint``                ``endpoint``; plain ``http://`` is allowed only when the endpoint says so
``region``                  ``region``, else ``AWS_REGION`` / ``AWS_DEFAULT_REGION``, else the
                            profile's (through botocore, when a profile is in play), else us-east-1
``addressing_style``        :func:`~headwater.storage.location.addressing` decides (``auto``:
                            path-style for an IP address or ``localhost`` endpoint or a bucket
                            with a dot); virtual-hosted requests go to the endpoint with the
                            bucket in its host (:func:`~headwater.storage.location.request_endpoint`)
credentials                 the TOML's keys (``allow_plaintext_secrets``), else the standard
                            ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``/``AWS_SESSION_TOKEN``
                            when no profile is named; else botocore's whole chain (profiles,
                            ``credentials_file``, SSO, assume-role, the instance's role) as a
                            credential provider, refreshed before temporary keys expire
``connect_timeout``         ``connect_timeout``
``read_timeout``            ``read_timeout`` (each read of an answer: a stalled stream fails, a
                            long one does not)
``max_attempts``            ``max_retries = max_attempts - 1`` (backoff with jitter)
``max_connections``         idle connections kept per host; callers bound requests in flight
==========================  ======================================================================

Errors: :func:`storage_error` turns obstore's exceptions into :class:`StorageError` (or
:class:`NotFound`) naming the endpoint, the bucket and the key, never a secret (obstore's messages
carry the request's URL and the server's XML answer, never its signature).
"""

from __future__ import annotations

import contextlib
import os
import re
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

import obstore.exceptions
from obstore.store import S3Store

from headwater.storage.base import NotFound, StorageError
from headwater.storage.location import S3Location, S3Options, addressing, request_endpoint

if TYPE_CHECKING:
    from obstore.store import S3Credential

__all__ = ["error_code", "make_store", "storage_error", "transport_failure"]

#: S3 error codes that mean "these credentials may not do this".
DENIED: Final = frozenset(
    {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken",
     "InvalidToken", "AllAccessDisabled"}
)  # fmt: skip
#: The overall limit of one request (reads are limited by ``read_timeout`` each); obstore's
#: default of 30 s would cut a long download that is making progress.
_REQUEST_LIMIT: Final = timedelta(hours=6)
#: How long credentials from botocore's chain that say they expire are used before asking again.
_REFRESH: Final = timedelta(minutes=5)
_CODE = re.compile(r"<Code>([A-Za-z0-9.]{1,64})</Code>")
_STATUS = re.compile(r"status code: (\d{3})")
_PROVIDER = re.compile(r"credential provider: StorageError: ([^\n]{1,300})")


class _BotocoreChain:
    """An obstore credential provider backed by botocore's credential chain (profiles,
    ``credentials_file``, SSO, assume-role, container and instance roles). Imported on first
    call: only installations that name a profile, or give no keys in the environment, pay for it."""

    def __init__(self, options: S3Options) -> None:
        self._options = options
        self._session: Any = None

    def session(self) -> Any:
        if self._session is None:
            import botocore.session

            session = botocore.session.Session(profile=self._options.profile)
            if self._options.credentials_file:
                session.set_config_variable("credentials_file", self._options.credentials_file)
            self._session = session
        return self._session

    def __call__(self) -> S3Credential:
        import botocore.exceptions

        try:
            credentials = self.session().get_credentials()
            frozen = credentials.get_frozen_credentials() if credentials is not None else None
        except botocore.exceptions.BotoCoreError as exc:
            raise StorageError(f"cannot read the S3 credentials: {exc}") from exc
        if frozen is None or not frozen.access_key:
            raise StorageError(
                "no usable S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
                "AWS_PROFILE, or credentials_file"
            )
        refreshing = hasattr(credentials, "refresh_needed")  # temporary keys (SSO, a role, ...)
        return {
            "access_key_id": frozen.access_key,
            "secret_access_key": frozen.secret_key,
            "token": frozen.token,
            "expires_at": datetime.now(UTC) + _REFRESH if refreshing else None,
        }


def make_store(location: S3Location) -> S3Store:
    """The obstore client of ``location`` (no I/O; the first request connects)."""
    opts = location.options
    config: dict[str, Any] = {
        # Virtual-hosted: the endpoint then carries the bucket in its host (request_endpoint).
        "virtual_hosted_style_request": addressing(opts, location.bucket) == "virtual",
        # One DELETE per key works on every S3 server; the bulk API is not everywhere.
        "disable_bulk_delete": True,
    }
    endpoint = request_endpoint(opts, location.bucket)
    if endpoint is not None:
        config["endpoint"] = endpoint
    chain: _BotocoreChain | None = None
    env = os.environ
    if opts.access_key_id:
        config["access_key_id"] = opts.access_key_id
        config["secret_access_key"] = opts.secret_access_key
        if opts.session_token:
            config["session_token"] = opts.session_token
    elif (
        not opts.profile
        and not opts.credentials_file
        and not env.get("AWS_PROFILE")
        and env.get("AWS_ACCESS_KEY_ID")
        and env.get("AWS_SECRET_ACCESS_KEY")
    ):
        config["access_key_id"] = env["AWS_ACCESS_KEY_ID"]
        config["secret_access_key"] = env["AWS_SECRET_ACCESS_KEY"]
        if env.get("AWS_SESSION_TOKEN"):
            config["session_token"] = env["AWS_SESSION_TOKEN"]
    else:
        chain = _BotocoreChain(opts)
    region = opts.region or env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")
    if region is None and chain is not None:
        # The profile's region; a profile that does not exist is reported by the first request.
        with contextlib.suppress(Exception):
            region = chain.session().get_config_variable("region")
    config["region"] = region or "us-east-1"
    client: dict[str, Any] = {
        "allow_http": (opts.endpoint or "").startswith("http://"),
        "connect_timeout": timedelta(seconds=opts.connect_timeout),
        "read_timeout": timedelta(seconds=opts.read_timeout),
        "timeout": _REQUEST_LIMIT,
        "pool_max_idle_per_host": str(opts.max_connections),
    }
    retry: dict[str, Any] = {
        "max_retries": opts.max_attempts - 1,
        "retry_timeout": timedelta(seconds=opts.read_timeout * opts.max_attempts),
        "backoff": {
            "init_backoff": timedelta(milliseconds=100),
            "max_backoff": timedelta(seconds=15),
            "base": 2.0,
        },
    }
    return S3Store(
        location.bucket,
        config=config,  # type: ignore[arg-type]
        client_options=client,  # type: ignore[arg-type]
        retry_config=retry,  # type: ignore[arg-type]
        credential_provider=chain,
    )


def error_code(exc: BaseException) -> str | None:
    """The S3 error code (``NoSuchBucket``, ``InvalidRange``, ...) an obstore error carries, or
    its HTTP status when the answer had no body (a HEAD), or None (no answer at all)."""
    text = str(exc)
    code = _CODE.search(text)
    if code is not None:
        return code.group(1)
    status = _STATUS.search(text)
    return status.group(1) if status is not None else None


#: How a request failed before any answer, read from obstore's error (its debug dump names the
#: transport error's kind); the first row that matches decides.
_TRANSPORT: Final = (
    ("resolve", re.compile(r"dns error|failed to lookup address")),
    ("connect-timeout", re.compile(r"HttpError \{\s*kind: Timeout\b[\s\S]*tcp connect error")),
    ("timeout", re.compile(r"HttpError \{\s*kind: Timeout\b")),
    ("connect", re.compile(r"HttpError \{\s*kind: Connect\b|tcp connect error")),
    ("connect", re.compile(r"error sending request|connection closed before message completed")),
)


def transport_failure(text: str) -> str | None:
    """``resolve``, ``connect-timeout``, ``connect``, ``timeout`` or None (an answer came, or the
    failure is of another kind), for the text of an obstore error: the first row of
    ``_TRANSPORT`` that matches. obstore's debug dump names the transport error's kind
    (``HttpError { kind: Timeout``); the retry settings it also prints (``retry_timeout: 60s``)
    are no timeout and match nothing."""
    for kind, pattern in _TRANSPORT:
        if pattern.search(text):
            return kind
    return None


def _first_line(exc: BaseException) -> str:
    """obstore's message without its debug dump: the request and what the server said."""
    text = str(exc).split("\nDebug source:", 1)[0]
    return " ".join(text.split())[:300]


def storage_error(
    exc: BaseException, *, doing: str, key: str, location: S3Location, endpoint: str
) -> StorageError:
    """The :class:`StorageError` to raise for obstore's ``exc`` while trying to ``doing`` ``key``."""
    if isinstance(exc, StorageError):  # raised by the credential provider
        return exc
    where = f"bucket {location.bucket!r} at {endpoint}"
    text = str(exc)
    if "External AWS credential provider" in text:  # botocore's chain found nothing usable
        reason = _PROVIDER.search(text)
        return StorageError(
            f"cannot sign the request to {doing} {key!r} in {where}: "
            f"{reason.group(1) if reason else 'the AWS credential chain failed'}. Nothing was "
            "changed."
        )
    code = error_code(exc)
    if code == "NoSuchBucket":
        return StorageError(
            f"the {where} does not exist (while trying to {doing} {key!r}). Create the bucket, "
            "or fix the bucket name in the storage URL."
        )
    if isinstance(exc, FileNotFoundError | obstore.exceptions.NotFoundError) or code in (
        "NoSuchKey",
        "404",
    ):
        return NotFound(f"{key} not found in {location.url()}")
    if (
        isinstance(
            exc, obstore.exceptions.PermissionDeniedError | obstore.exceptions.UnauthenticatedError
        )
        or code in DENIED
        or code in ("401", "403")
    ):
        return StorageError(
            f"access denied to {where} (trying to {doing} {key!r}: {code or 'denied'}). Check "
            "the credentials and the bucket policy; nothing was changed."
        )
    failure = transport_failure(text) if code is None else None
    if failure == "timeout":
        return StorageError(
            f"the S3 endpoint {endpoint} did not answer in time ({location.options.read_timeout:g}"
            f" s) to {doing} {key!r} in bucket {location.bucket!r}. Nothing partial was "
            "published; try again."
        )
    if failure == "connect-timeout":
        return StorageError(
            f"the S3 endpoint {endpoint} did not accept a connection within "
            f"{location.options.connect_timeout:g} s to {doing} {key!r} in bucket "
            f"{location.bucket!r}. Nothing was changed; check that the endpoint is up and "
            "reachable from this machine."
        )
    if failure == "resolve":
        return StorageError(
            f"the host of the S3 endpoint {endpoint} cannot be resolved (to {doing} {key!r} in "
            f"bucket {location.bucket!r}). Nothing was changed; check the endpoint's host name"
            + (
                " (virtual-hosted addressing puts the bucket in it: set addressing_style = "
                '"path" if the server does not serve BUCKET.HOST names)'
                if addressing(location.options, location.bucket) == "virtual"
                else ""
            )
            + "."
        )
    if failure == "connect":
        return StorageError(
            f"cannot reach the S3 endpoint {endpoint} to {doing} {key!r} in bucket "
            f"{location.bucket!r} (the connection was refused or cut). Nothing was changed; "
            "check that the endpoint is up and reachable."
        )
    if code is not None:
        return StorageError(
            f"S3 refused to {doing} {key!r} in {where}: {code} ({_first_line(exc)})"
        )
    return StorageError(
        f"S3 request failed to {doing} {key!r} in {where}: {type(exc).__name__}: "
        f"{_first_line(exc)}. Nothing partial was published."
    )
