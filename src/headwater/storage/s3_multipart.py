"""Streamed writes of big objects into S3: multipart uploads through aiobotocore.

Imported only when a write outgrows one part (``part_size``, 8 MiB by default): everything else
the S3 storage does goes through obstore (:mod:`headwater.storage.s3_obstore`), which has no
explicit AbortMultipartUpload. A write that fails, is aborted or is cancelled must abort its
upload, so its parts never become visible and are not left to pay for; aiobotocore does that.

One aiobotocore client per event loop, created on first use; :meth:`BotoClient.aclose` closes it.
Errors become :class:`~headwater.storage.base.StorageError` naming the endpoint, the bucket and the
key, never a secret.
"""

from __future__ import annotations

import asyncio
import contextlib
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Any, Final, NoReturn

import aiohttp
import botocore.exceptions
from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession

from headwater.storage.base import NotFound, StorageError
from headwater.storage.location import addressing
from headwater.storage.s3_obstore import DENIED

if TYPE_CHECKING:
    from collections.abc import Iterator

    from types_aiobotocore_s3.client import S3Client

    from headwater.storage.s3 import S3Storage

__all__ = ["BotoClient", "MultipartUpload"]

# Error codes S3 servers send for "no such object" (HEAD has no body, so botocore says "404").
_MISSING: Final = frozenset({"NoSuchKey", "404", "NotFound"})


class BotoClient:
    """The aiobotocore client of one S3 storage, one per event loop."""

    def __init__(self, storage: S3Storage) -> None:
        self._storage = storage
        self._stack: AsyncExitStack | None = None
        self._s3: S3Client | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock: asyncio.Lock | None = None

    async def client(self) -> S3Client:
        loop = asyncio.get_running_loop()
        if self._s3 is not None and self._loop is loop:
            return self._s3
        if self._lock is None or self._loop is not loop:
            # A new event loop (a new asyncio.run): the old client belongs to a closed loop.
            self._lock, self._loop, self._s3, self._stack = asyncio.Lock(), loop, None, None
        async with self._lock:
            if self._s3 is None:
                self._s3 = await self._open()
            return self._s3

    async def _open(self) -> S3Client:
        opts = self._storage.options
        session = AioSession(profile=opts.profile) if opts.profile else AioSession()
        if opts.credentials_file:
            session.set_config_variable("credentials_file", opts.credentials_file)
        config = AioConfig(
            connect_timeout=opts.connect_timeout,
            read_timeout=opts.read_timeout,
            retries={"max_attempts": opts.max_attempts, "mode": "standard"},
            max_pool_connections=opts.max_connections,
            # The same decision as every other request (botocore's own "auto" differs).
            s3={"addressing_style": addressing(opts, self._storage.location.bucket)},
            signature_version="s3v4",
            # Checksums only when the operation requires them: SeaweedFS and other S3 servers
            # do not all speak the newer trailing-checksum protocol botocore defaults to.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        kwargs: dict[str, Any] = {"config": config}
        if opts.endpoint:
            kwargs["endpoint_url"] = opts.endpoint
        kwargs["region_name"] = opts.region or session.get_config_variable("region") or "us-east-1"
        if opts.access_key_id:
            kwargs["aws_access_key_id"] = opts.access_key_id
            kwargs["aws_secret_access_key"] = opts.secret_access_key
            if opts.session_token:
                kwargs["aws_session_token"] = opts.session_token
        stack = AsyncExitStack()
        try:
            client: S3Client = await stack.enter_async_context(
                session.create_client("s3", **kwargs)
            )
        except botocore.exceptions.BotoCoreError as exc:
            await stack.aclose()
            raise StorageError(
                f"cannot set up the S3 client for {self._storage._where()}: {exc}. Nothing was "
                "read or written; check the endpoint, region, profile and credentials settings."
            ) from exc
        self._stack = stack
        return client

    async def aclose(self) -> None:
        """Close the client of the running event loop (a later call opens a new one)."""
        stack, self._stack, self._s3 = self._stack, None, None
        if stack is not None and self._loop is asyncio.get_running_loop():
            await stack.aclose()

    @contextlib.contextmanager
    def errors(self, doing: str, key: str) -> Iterator[None]:
        """Convert the client's exceptions into StorageError (NotFound for a missing key)."""
        storage = self._storage
        try:
            yield
        except botocore.exceptions.ClientError as exc:
            self._client_error(exc, doing, key)
        except (
            botocore.exceptions.EndpointConnectionError,
            botocore.exceptions.ConnectTimeoutError,
            botocore.exceptions.ConnectionClosedError,
        ) as exc:
            raise StorageError(
                f"cannot reach the S3 endpoint {storage.endpoint} to {doing} {key!r} in bucket "
                f"{storage.location.bucket!r}: {type(exc).__name__}. Nothing was changed; check "
                "that the endpoint is up and reachable."
            ) from exc
        except botocore.exceptions.ReadTimeoutError as exc:
            raise StorageError(
                f"the S3 endpoint {storage.endpoint} did not answer in time "
                f"({storage.options.read_timeout:.0f} s) to {doing} {key!r} in bucket "
                f"{storage.location.bucket!r}. Nothing partial was published; try again."
            ) from exc
        except (
            botocore.exceptions.NoCredentialsError,
            botocore.exceptions.PartialCredentialsError,
        ) as exc:
            raise StorageError(
                f"no usable S3 credentials to {doing} {key!r} in {storage._where()}: set "
                "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or credentials_file."
            ) from exc
        except (botocore.exceptions.BotoCoreError, aiohttp.ClientError, OSError) as exc:
            raise StorageError(
                f"S3 request failed to {doing} {key!r} in {storage._where()}: "
                f"{type(exc).__name__}: {exc}. Nothing partial was published."
            ) from exc

    def _client_error(self, exc: botocore.exceptions.ClientError, doing: str, key: str) -> NoReturn:
        storage = self._storage
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code in _MISSING:
            raise NotFound(f"{key} not found in {storage.location.url()}") from exc
        if code == "NoSuchBucket":
            raise StorageError(
                f"the {storage._where()} does not exist (while trying to {doing} {key!r}). Create "
                "the bucket, or fix the bucket name in the storage URL."
            ) from exc
        if code in DENIED or code == "403":
            raise StorageError(
                f"access denied to {storage._where()} (trying to {doing} {key!r}: {code}). Check "
                "the credentials and the bucket policy; nothing was changed."
            ) from exc
        raise StorageError(
            f"S3 refused to {doing} {key!r} in {storage._where()}: {code or status} "
            f"{str(error.get('Message', ''))[:200]}"
        ) from exc


class MultipartUpload:
    """The multipart upload of one streamed write that outgrew its first part: each part uploads
    while the next is buffered (at most two parts in memory), completed or aborted at the end."""

    def __init__(self, storage: S3Storage, key: str, object_key: str) -> None:
        self._storage = storage
        self._boto = storage._boto()
        self._key = key
        self._object_key = object_key
        self._upload_id: str | None = None
        self._parts: list[dict[str, Any]] = []
        self._pending: asyncio.Task[dict[str, Any]] | None = None

    @property
    def started(self) -> bool:
        """Whether anything may need aborting."""
        return self._upload_id is not None or self._pending is not None

    async def send_part(self, data: bytes) -> None:
        client = await self._boto.client()
        bucket = self._storage.location.bucket
        if self._upload_id is None:
            with self._boto.errors("start a multipart upload of", self._key):
                started = await client.create_multipart_upload(
                    Bucket=bucket,
                    Key=self._object_key,
                    ContentType=self._storage.content_type(self._key),
                )
            self._upload_id = started["UploadId"]
        if self._pending is not None:
            self._parts.append(await self._pending)
        number = len(self._parts) + 1
        self._pending = asyncio.ensure_future(self._upload_part(client, number, data))

    async def _upload_part(self, client: S3Client, number: int, data: bytes) -> dict[str, Any]:
        assert self._upload_id is not None
        with self._boto.errors(f"upload part {number} of", self._key):
            done = await client.upload_part(
                Bucket=self._storage.location.bucket,
                Key=self._object_key,
                UploadId=self._upload_id,
                PartNumber=number,
                Body=data,
            )
        return {"ETag": done["ETag"], "PartNumber": number}

    async def complete(self, rest: bytes) -> None:
        """Send the last part (it may be smaller than 5 MiB) and complete the upload."""
        if rest or self._pending is None:
            await self.send_part(rest)
        assert self._pending is not None
        self._parts.append(await self._pending)
        self._pending = None
        client = await self._boto.client()
        with self._boto.errors("complete the multipart upload of", self._key):
            await client.complete_multipart_upload(
                Bucket=self._storage.location.bucket,
                Key=self._object_key,
                UploadId=self._upload_id,  # type: ignore[arg-type]
                MultipartUpload={"Parts": self._parts},  # type: ignore[typeddict-item]
            )
        self._upload_id = None

    async def discard(self) -> None:
        """Abort the upload, if one was started: its parts never become visible."""
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.cancel()
            with contextlib.suppress(BaseException):
                await pending
        upload_id, self._upload_id = self._upload_id, None
        if upload_id is None:
            return
        client = await self._boto.client()
        # Best effort: the upload is invisible whatever happens; the lifecycle rule is the backstop.
        with contextlib.suppress(Exception):
            await client.abort_multipart_upload(
                Bucket=self._storage.location.bucket, Key=self._object_key, UploadId=upload_id
            )
