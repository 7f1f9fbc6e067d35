"""Storage in an S3-compatible bucket (AWS S3, SeaweedFS, MinIO, Ceph RGW, R2, ...).

Keys live under the location's prefix. How the Storage contract holds without rename:

* **Atomic writes.** One PUT is atomic per object: readers see the old object or the new one.
  A streamed write buffers up to ``part_size`` bytes; if the stream ends there it is one PUT,
  otherwise a multipart upload whose parts are invisible until CompleteMultipartUpload. A write that
  fails, is aborted or is cancelled calls AbortMultipartUpload, so nothing becomes visible and no
  parts are left to pay for (a process killed outright cannot: the bucket's lifecycle rule
  "abort incomplete multipart uploads after N days" cleans those; docs/configuration.md).
* **Bounded memory.** A write holds one part in memory while the previous one uploads, so about
  three parts at the moment a part is joined (3 x 8 MiB by default) whatever the object's size;
  reads stream.
* **sync() is a no-op barrier.** S3 answers a PUT or CompleteMultipartUpload only once the object
  is durably stored, and reads after writes are strongly consistent (AWS since December 2020;
  SeaweedFS, MinIO and Ceph likewise), so whatever was written before ``sync()`` already survives.
* **Content types.** ``content_type(key)`` chooses each object's ``Content-Type`` so a static
  website endpoint or CDN can serve a bucket as is (:func:`tree_content_type` by default).
* **The sha256** of each object written by one PUT is stored in its metadata
  (``x-amz-meta-sha256``); :meth:`S3Storage.digest` trusts it only with ``trust_stored_sha256``.

The client is aiobotocore (docs/dependencies.md has the measurements). One client per event loop,
created on first use; :meth:`S3Storage.aclose` closes it (the lifespan that made the storage calls
it). Errors become :class:`~headwater.storage.base.StorageError` naming the endpoint, the bucket
and the key, never a secret.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from typing import TYPE_CHECKING, Any, Final, NoReturn
from urllib.parse import quote

import aiohttp
import botocore.exceptions
from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession

from headwater.storage.base import NotFound, Stat, StorageError, check_key
from headwater.storage.location import S3Location
from headwater.storage.s3_lease import lease

if TYPE_CHECKING:
    from types_aiobotocore_s3.client import S3Client

__all__ = ["S3Storage", "tree_content_type"]

SHA256_META: Final = "sha256"
# Error codes S3 servers send for "no such object" (HEAD has no body, so botocore says "404").
_MISSING = frozenset({"NoSuchKey", "404", "NotFound"})
_DENIED = frozenset(
    {"AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken",
     "InvalidToken", "AllAccessDisabled"}
)  # fmt: skip


def tree_content_type(key: str) -> str:
    """The ``Content-Type`` of a static tree's object, chosen by its name as a web server would.

    Pages by their file name (``index.v1_json`` is the PEP 691 JSON page, ``index.html`` and
    ``index.v1_html`` HTML), PEP 658 metadata as text (it is an email-header file), state and
    distribution files as bytes.
    """
    name = key.rsplit("/", 1)[-1]
    if name == "index.v1_json":
        return "application/vnd.pypi.simple.v1+json"
    if name == "index.v1_html":
        return "application/vnd.pypi.simple.v1+html"
    if name.endswith(".html"):
        return "text/html; charset=utf-8"
    if name.endswith(".json"):
        return "application/json"
    if name.endswith(".metadata") or name == "last-modified":
        return "text/plain; charset=utf-8"
    return "application/octet-stream"


class _S3Writer:
    """One streamed write: a single PUT if it ends within one part, else a multipart upload."""

    def __init__(self, storage: S3Storage, key: str, object_key: str) -> None:
        self._storage = storage
        self._key = key
        self._object_key = object_key
        self._chunks: list[bytes] = []
        self._buffered = 0
        self._sha = hashlib.sha256()
        self._size = 0
        self._upload_id: str | None = None
        self._parts: list[dict[str, Any]] = []
        self._pending: asyncio.Task[dict[str, Any]] | None = None
        self.aborted = False

    async def write(self, chunk: bytes) -> None:
        if self.aborted:
            return
        chunk = bytes(chunk)  # the caller may reuse its buffer
        self._sha.update(chunk)
        self._size += len(chunk)
        part_size = self._storage.options.part_size
        while chunk:
            room = part_size - self._buffered
            self._chunks.append(chunk[:room])
            self._buffered += min(room, len(chunk))
            chunk = chunk[room:]
            if self._buffered >= part_size:
                # One join per part (a list of chunks, not a growing bytearray: no slack kept).
                part = b"".join(self._chunks)
                self._chunks, self._buffered = [], 0
                await self._send_part(part)

    def abort(self) -> None:
        self.aborted = True
        self._chunks, self._buffered = [], 0

    async def _send_part(self, data: bytes) -> None:
        client = await self._storage._client()
        if self._upload_id is None:
            with self._storage._errors("start a multipart upload of", self._key):
                started = await client.create_multipart_upload(
                    Bucket=self._storage.location.bucket,
                    Key=self._object_key,
                    ContentType=self._storage.content_type(self._key),
                )
            self._upload_id = started["UploadId"]
        # One part uploads while the next is buffered: at most two parts in memory.
        if self._pending is not None:
            self._parts.append(await self._pending)
        number = len(self._parts) + 1
        self._pending = asyncio.ensure_future(self._upload_part(client, number, data))

    async def _upload_part(self, client: S3Client, number: int, data: bytes) -> dict[str, Any]:
        assert self._upload_id is not None
        with self._storage._errors(f"upload part {number} of", self._key):
            done = await client.upload_part(
                Bucket=self._storage.location.bucket,
                Key=self._object_key,
                UploadId=self._upload_id,
                PartNumber=number,
                Body=data,
            )
        return {"ETag": done["ETag"], "PartNumber": number}

    async def publish(self) -> None:
        rest = b"".join(self._chunks)
        self._chunks, self._buffered = [], 0
        if self._upload_id is None:
            await self._storage._put(self._key, self._object_key, rest, self._sha.hexdigest())
            return
        if rest or self._pending is None:  # the last part may be smaller than 5 MiB
            await self._send_part(rest)
        assert self._pending is not None
        self._parts.append(await self._pending)
        self._pending = None
        client = await self._storage._client()
        with self._storage._errors("complete the multipart upload of", self._key):
            await client.complete_multipart_upload(
                Bucket=self._storage.location.bucket,
                Key=self._object_key,
                UploadId=self._upload_id,
                MultipartUpload={"Parts": self._parts},  # type: ignore[typeddict-item]
            )
        self._upload_id = None

    async def discard(self) -> None:
        """Abort the multipart upload, if one was started: its parts never become visible."""
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.cancel()
            with contextlib.suppress(BaseException):
                await pending
        upload_id, self._upload_id = self._upload_id, None
        if upload_id is None:
            return
        client = await self._storage._client()
        # Best effort: the upload is invisible whatever happens; the lifecycle rule is the backstop.
        with contextlib.suppress(Exception):
            await client.abort_multipart_upload(
                Bucket=self._storage.location.bucket, Key=self._object_key, UploadId=upload_id
            )


class S3Storage:
    """A :class:`~headwater.storage.base.Storage` in an S3 bucket under a key prefix.

    ``content_type`` maps a key to the ``Content-Type`` its object is stored with.
    """

    #: Keys per ListObjectsV2 page (S3's maximum is 1000).
    list_page_size = 1000

    def __init__(
        self,
        location: S3Location,
        *,
        content_type: Callable[[str], str] = tree_content_type,
    ) -> None:
        self.location = location
        self.options = location.options
        self.content_type = content_type
        self.redirects_files = self.options.redirects()
        self._session: AioSession | None = None
        self._stack: AsyncExitStack | None = None
        self._s3: S3Client | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock: asyncio.Lock | None = None
        self._bucket_seen = False

    def __repr__(self) -> str:
        return f"S3Storage({self.location.url()!r}, endpoint={self.endpoint!r})"

    @property
    def endpoint(self) -> str:
        """The endpoint requests go to (for messages): the configured one, or AWS's."""
        return self.options.endpoint or "AWS S3"

    def _where(self) -> str:
        return f"bucket {self.location.bucket!r} at {self.endpoint}"

    # --- the client ---------------------------------------------------------------------------

    async def _client(self) -> S3Client:
        loop = asyncio.get_running_loop()
        if self._s3 is not None and self._loop is loop:
            return self._s3
        if self._lock is None or self._loop is not loop:
            # A new event loop (a new asyncio.run): the old client belongs to a closed loop.
            self._lock, self._loop, self._s3, self._stack = asyncio.Lock(), loop, None, None
        async with self._lock:
            if self._s3 is None:
                self._s3 = await self._open_client()
            return self._s3

    async def _open_client(self) -> S3Client:
        opts = self.options
        session = AioSession(profile=opts.profile) if opts.profile else AioSession()
        if opts.credentials_file:
            session.set_config_variable("credentials_file", opts.credentials_file)
        config = AioConfig(
            connect_timeout=opts.connect_timeout,
            read_timeout=opts.read_timeout,
            retries={"max_attempts": opts.max_attempts, "mode": "standard"},
            max_pool_connections=opts.max_connections,
            s3={"addressing_style": opts.addressing_style},
            # SigV4 everywhere, presigned URLs included (botocore would presign some with the
            # deprecated SigV2, which newer servers and AWS regions refuse).
            signature_version="s3v4",
            # Checksums only when the operation requires them: SeaweedFS and other S3 servers
            # do not all speak the newer trailing-checksum protocol botocore defaults to.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        kwargs: dict[str, Any] = {"config": config}
        if opts.endpoint:
            kwargs["endpoint_url"] = opts.endpoint
        region = opts.region or session.get_config_variable("region") or "us-east-1"
        kwargs["region_name"] = region
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
                f"cannot set up the S3 client for {self._where()}: {exc}. Nothing was read or "
                "written; check the endpoint, region, profile and credentials settings."
            ) from exc
        self._session, self._stack = session, stack
        return client

    async def aclose(self) -> None:
        """Close the client of the running event loop (a later call opens a new one)."""
        stack, self._stack, self._s3 = self._stack, None, None
        if stack is not None and self._loop is asyncio.get_running_loop():
            await stack.aclose()

    # --- errors -------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _errors(self, doing: str, key: str) -> Any:
        """Convert the client's exceptions into StorageError (NotFound for a missing key)."""
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
                f"cannot reach the S3 endpoint {self.endpoint} to {doing} {key!r} in bucket "
                f"{self.location.bucket!r}: {type(exc).__name__}. Nothing was changed; check that "
                "the endpoint is up and reachable."
            ) from exc
        except botocore.exceptions.ReadTimeoutError as exc:
            raise StorageError(
                f"the S3 endpoint {self.endpoint} did not answer in time "
                f"({self.options.read_timeout:.0f} s) to {doing} {key!r} in bucket "
                f"{self.location.bucket!r}. Nothing partial was published; try again."
            ) from exc
        except (
            botocore.exceptions.NoCredentialsError,
            botocore.exceptions.PartialCredentialsError,
        ) as exc:
            raise StorageError(
                f"no usable S3 credentials to {doing} {key!r} in {self._where()}: set "
                "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or credentials_file."
            ) from exc
        except (botocore.exceptions.BotoCoreError, aiohttp.ClientError, OSError) as exc:
            raise StorageError(
                f"S3 request failed to {doing} {key!r} in {self._where()}: "
                f"{type(exc).__name__}: {exc}. Nothing partial was published."
            ) from exc

    def _client_error(self, exc: botocore.exceptions.ClientError, doing: str, key: str) -> NoReturn:
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code in _MISSING:
            raise NotFound(f"{key} not found in {self.location.url()}") from exc
        if code == "NoSuchBucket":
            raise StorageError(
                f"the {self._where()} does not exist (while trying to {doing} {key!r}). Create "
                "the bucket, or fix the bucket name in the storage URL."
            ) from exc
        if code in _DENIED:
            raise StorageError(
                f"access denied to {self._where()} (trying to {doing} {key!r}: {code}). Check "
                "the credentials and the bucket policy; nothing was changed."
            ) from exc
        raise StorageError(
            f"S3 refused to {doing} {key!r} in {self._where()}: {code or status} "
            f"{str(error.get('Message', ''))[:200]}"
        ) from exc

    # --- the Storage protocol -----------------------------------------------------------------

    def _object_key(self, key: str) -> str:
        return self.location.prefix + check_key(key)

    async def read_bytes(self, key: str) -> bytes:
        object_key = self._object_key(key)
        client = await self._client()
        with self._errors("read", key):
            answer = await client.get_object(Bucket=self.location.bucket, Key=object_key)
            async with answer["Body"] as body:
                data: bytes = await body.read()
                return data

    async def open_read(
        self, key: str, *, start: int = 0, end: int | None = None, chunk_size: int = 1 << 16
    ) -> AsyncIterator[bytes]:
        object_key = self._object_key(key)
        client = await self._client()
        if end is not None and end <= start:
            if await self.stat(key) is None:
                raise NotFound(f"{key} not found in {self.location.url()}")
            return
        extra: dict[str, Any] = {}
        if start > 0 or end is not None:
            # RFC 9110 byte ranges are inclusive at both ends.
            extra["Range"] = f"bytes={start}-{'' if end is None else end - 1}"
        try:
            with self._errors("read", key):
                answer = await client.get_object(
                    Bucket=self.location.bucket, Key=object_key, **extra
                )
        except StorageError as exc:
            cause = exc.__cause__
            if (
                isinstance(cause, botocore.exceptions.ClientError)
                and cause.response.get("Error", {}).get("Code") == "InvalidRange"
            ):
                return  # start at or past the end: nothing to read, as on a file system
            raise
        body = answer["Body"]
        try:
            while True:
                with self._errors("read", key):
                    chunk = await body.read(chunk_size)
                if not chunk:
                    return
                yield chunk
        finally:
            body.close()

    async def stat(self, key: str) -> Stat | None:
        object_key = self._object_key(key)
        client = await self._client()
        try:
            with self._errors("look up", key):
                head = await client.head_object(Bucket=self.location.bucket, Key=object_key)
        except NotFound:
            # A HEAD answer has no body, so a missing bucket looks like a missing key: ask once.
            await self._check_bucket(key)
            return None
        return Stat(size=head["ContentLength"], mtime=head["LastModified"].timestamp())

    async def _check_bucket(self, key: str) -> None:
        if self._bucket_seen:
            return
        client = await self._client()
        try:
            with self._errors("look up", key):
                await client.head_bucket(Bucket=self.location.bucket)
        except NotFound as exc:
            raise StorageError(
                f"the {self._where()} does not exist (while trying to look up {key!r}). Create "
                "the bucket, or fix the bucket name in the storage URL."
            ) from exc
        self._bucket_seen = True

    async def digest(self, key: str) -> tuple[str, int]:
        if self.options.trust_stored_sha256:
            client = await self._client()
            with self._errors("look up", key):
                head = await client.head_object(
                    Bucket=self.location.bucket, Key=self._object_key(key)
                )
            stored = head.get("Metadata", {}).get(SHA256_META)
            if stored is not None and len(stored) == 64:
                return stored, head["ContentLength"]
        sha = hashlib.sha256()
        size = 0
        async for chunk in self.open_read(key, chunk_size=1 << 20):
            sha.update(chunk)
            size += len(chunk)
        return sha.hexdigest(), size

    @asynccontextmanager
    async def writer(self, key: str) -> AsyncIterator[_S3Writer]:
        writer = _S3Writer(self, key, self._object_key(key))
        try:
            yield writer
            if not writer.aborted:
                await writer.publish()
        finally:
            # An exception, an abort or a cancellation: abort the multipart upload. Shielded, so
            # a cancellation arriving now cannot leave the parts behind.
            if writer._upload_id is not None or writer._pending is not None:
                await asyncio.shield(writer.discard())

    async def _put(self, key: str, object_key: str, data: bytes, sha256: str | None = None) -> None:
        client = await self._client()
        with self._errors("write", key):
            await client.put_object(
                Bucket=self.location.bucket,
                Key=object_key,
                Body=data,
                ContentType=self.content_type(key),
                Metadata={SHA256_META: sha256 or hashlib.sha256(data).hexdigest()},
            )

    async def write_bytes(self, key: str, data: bytes) -> None:
        data = bytes(data)
        if len(data) > self.options.part_size:
            async with self.writer(key) as writer:
                await writer.write(data)
            return
        await self._put(key, self._object_key(key), data)

    async def write_many(self, items: Sequence[tuple[str, bytes]]) -> None:
        for key, _ in items:  # every key checked before any is written, like the file system
            check_key(key)
        for key, data in items:  # in order: pages after the files they point at
            await self.write_bytes(key, data)

    async def delete(self, key: str) -> bool:
        if await self.stat(key) is None:  # S3's DELETE answers 204 whether or not it existed
            return False
        client = await self._client()
        with self._errors("delete", key):
            await client.delete_object(Bucket=self.location.bucket, Key=self._object_key(key))
        return True

    async def iter_keys(self, prefix: str = "") -> AsyncIterator[str]:
        directory = prefix.strip("/")
        if directory:
            check_key(directory)
            directory += "/"
        client = await self._client()
        full = self.location.prefix + directory
        token: str | None = None
        while True:
            extra: dict[str, Any] = {"ContinuationToken": token} if token else {}
            with self._errors("list", prefix or "/"):
                page = await client.list_objects_v2(
                    Bucket=self.location.bucket, Prefix=full, MaxKeys=self.list_page_size, **extra
                )
            for entry in page.get("Contents", []):
                object_key = entry["Key"]
                if object_key.startswith(self.location.prefix):
                    yield object_key[len(self.location.prefix) :]
            if not page.get("IsTruncated"):
                return
            token = page.get("NextContinuationToken")
            if not token:
                return

    async def sync(self) -> None:
        # A completed PUT is already durable on S3 (see the module docstring): nothing to flush.
        return None

    @asynccontextmanager
    async def exclusive(
        self, name: str = "state/.lock", *, ttl: float = 60.0
    ) -> AsyncIterator[None]:
        """Hold an exclusive lease on this prefix (what ``FileStorage.exclusive`` is for a tree).

        The lease is an object created with ``If-None-Match: *`` (S3's create-only PUT), renewed
        every ``ttl / 3`` seconds with ``If-Match`` on its ETag, and deleted at the end. A holder
        that died leaves it behind: it is taken over (again with ``If-Match``, so two takers
        cannot both win) once it has not been renewed for ``ttl`` seconds, or at once when it
        names a process on this host that no longer exists.

        Raises:
            StorageError: another live process holds the lease (nothing was changed).
        """
        async with lease(self, name, ttl=ttl):
            yield

    async def file_url(self, key: str) -> tuple[str, int] | None:
        """Where to redirect a request for ``key`` (``files`` / ``files_base_url``) and for how
        many seconds the redirect may be cached (0: not at all), or None to stream it.

        Called only after the request was authorized: a presigned URL is a capability, so its
        redirect is never cached (``Cache-Control: no-store``) and it expires after
        ``presign_expires`` seconds.
        """
        if self.options.files_base_url is not None:
            return f"{self.options.files_base_url.rstrip('/')}/{quote(check_key(key))}", 3600
        if self.options.files == "redirect-presigned":
            return await self.presigned_url(key, expires=self.options.presign_expires), 0
        return None

    async def presigned_url(self, key: str, *, expires: int) -> str:
        """A URL that lets its holder GET ``key`` for ``expires`` seconds without credentials.

        It is a capability: hand it out only after the request was authorized.
        """
        client = await self._client()
        with self._errors("sign a URL for", key):
            return await client.generate_presigned_url(
                "get_object",
                Params={"Bucket": self.location.bucket, "Key": self._object_key(key)},
                ExpiresIn=expires,
            )
