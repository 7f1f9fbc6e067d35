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
* **write_many() writes concurrently** (up to ``max_connections`` requests in flight): S3 has no
  batch PUT, and one request after the other would make a mirror's pages wait on the store's
  latency. Callers that need an order make two calls (base.py says so).
* **Content types.** ``content_type(key)`` chooses each object's ``Content-Type`` so a static
  website endpoint or CDN can serve a bucket as is (:func:`tree_content_type` by default).
* **The sha256** of each object written by one PUT is stored in its metadata
  (``x-amz-meta-sha256``); :meth:`S3Storage.digest` trusts it only with ``trust_stored_sha256``.

Two clients (docs/dependencies.md has the measurements): every request but a multipart upload
goes through obstore (:mod:`headwater.storage.s3_obstore`: about 0.3 ms of CPU per request, no
per-loop state); multipart uploads go through aiobotocore (:mod:`headwater.storage.s3_multipart`,
imported only when a write outgrows one part), because obstore cannot abort one. Errors become
:class:`~headwater.storage.base.StorageError` naming the endpoint, the bucket and the key, never a
secret.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Final, TypeVar
from urllib.parse import quote

import obstore
import obstore.exceptions

from headwater.storage.base import NotFound, Stat, StorageError, check_key
from headwater.storage.layout import tree_content_type
from headwater.storage.location import S3Location
from headwater.storage.s3_lease import lease
from headwater.storage.s3_obstore import error_code, make_store, storage_error

if TYPE_CHECKING:
    from obstore.store import S3Store

    from headwater.storage.s3_multipart import BotoClient, MultipartUpload

__all__ = ["S3Storage", "tree_content_type"]  # tree_content_type: storage.layout's, re-exported

SHA256_META: Final = "sha256"
_T = TypeVar("_T")


def _read_whole(store: S3Store, object_key: str) -> bytes:
    return bytes(obstore.get(store, object_key).bytes())


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
        self.upload: MultipartUpload | None = None
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
                if self.upload is None:
                    from headwater.storage.s3_multipart import MultipartUpload

                    self.upload = MultipartUpload(self._storage, self._key, self._object_key)
                await self.upload.send_part(part)

    def abort(self) -> None:
        self.aborted = True
        self._chunks, self._buffered = [], 0

    async def publish(self) -> None:
        rest = b"".join(self._chunks)
        self._chunks, self._buffered = [], 0
        if self.upload is None:
            await self._storage._put(self._key, self._object_key, rest, self._sha.hexdigest())
            return
        await self.upload.complete(rest)


class S3Storage:
    """A :class:`~headwater.storage.base.Storage` in an S3 bucket under a key prefix.

    ``content_type`` maps a key to the ``Content-Type`` its object is stored with.
    """

    #: Keys per batch handed on by a listing (S3 answers ListObjectsV2 in pages of at most 1,000
    #: keys, which obstore follows by their continuation tokens).
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
        self._store: S3Store | None = None
        self._threads: ThreadPoolExecutor | None = None
        self._boto_client: BotoClient | None = None
        self._bucket_seen = False

    def __repr__(self) -> str:
        return f"S3Storage({self.location.url()!r}, endpoint={self.endpoint!r})"

    @property
    def endpoint(self) -> str:
        """The endpoint requests go to (for messages): the configured one, or AWS's."""
        return self.options.endpoint or "AWS S3"

    def _where(self) -> str:
        return f"bucket {self.location.bucket!r} at {self.endpoint}"

    # --- the clients --------------------------------------------------------------------------

    def _obstore(self) -> S3Store:
        if self._store is None:
            try:
                self._store = make_store(self.location)
            except (obstore.exceptions.BaseError, ValueError) as exc:
                raise StorageError(
                    f"cannot set up the S3 client for {self._where()}: {exc}. Nothing was read "
                    "or written; check the endpoint, region, profile and credentials settings."
                ) from exc
        return self._store

    async def _call(self, fn: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
        """Run one of obstore's blocking calls on this storage's threads (it releases the GIL
        while the request runs).

        Not obstore's ``*_async`` functions: they finish their work on obstore's own runtime
        threads, which then touch the interpreter; one still doing so when the process exits
        aborts it (SIGABRT after the command completed: 5 to 9 exits in 25 here). Threads of an
        executor are joined before the interpreter shuts down.
        """
        if self._threads is None:
            self._threads = ThreadPoolExecutor(
                self.options.max_connections, thread_name_prefix="headwater-s3"
            )
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._threads, functools.partial(fn, *args, **kwargs))

    def _boto(self) -> BotoClient:
        if self._boto_client is None:
            from headwater.storage.s3_multipart import BotoClient

            self._boto_client = BotoClient(self)
        return self._boto_client

    async def aclose(self) -> None:
        """Let this storage's request threads end and close the multipart client of the running
        event loop, if one was opened (a later call starts them again)."""
        threads, self._threads = self._threads, None
        if threads is not None:
            threads.shutdown(wait=False)  # idle unless a cancelled request is still finishing
        if self._boto_client is not None:
            await self._boto_client.aclose()

    @contextlib.contextmanager
    def _errors(self, doing: str, key: str) -> Iterator[None]:
        """Convert obstore's exceptions into StorageError (NotFound for a missing key)."""
        try:
            yield
        except (obstore.exceptions.BaseError, OSError) as exc:
            raise storage_error(
                exc, doing=doing, key=key, location=self.location, endpoint=self.endpoint
            ) from exc

    # --- the Storage protocol -----------------------------------------------------------------

    def _object_key(self, key: str) -> str:
        return self.location.prefix + check_key(key)

    async def read_bytes(self, key: str) -> bytes:
        object_key = self._object_key(key)
        with self._errors("read", key):
            return await self._call(_read_whole, self._obstore(), object_key)

    async def open_read(
        self, key: str, *, start: int = 0, end: int | None = None, chunk_size: int = 1 << 16
    ) -> AsyncIterator[bytes]:
        object_key = self._object_key(key)
        if end is not None and end <= start:
            if await self.stat(key) is None:
                raise NotFound(f"{key} not found in {self.location.url()}")
            return
        options: dict[str, Any] = {}
        if end is not None:
            options["range"] = (start, end)  # end excluded, as here
        elif start > 0:
            options["range"] = {"offset": start}
        try:
            with self._errors("read", key):
                answer = await self._call(obstore.get, self._obstore(), object_key, options=options)
        except StorageError as exc:
            if exc.__cause__ is not None and error_code(exc.__cause__) == "InvalidRange":
                return  # start at or past the end: nothing to read, as on a file system
            raise
        # obstore hands the body on in the pieces the network gave, joined up to chunk_size.
        stream = answer.stream(min_chunk_size=chunk_size)
        while True:
            with self._errors("read", key):
                chunk = await self._call(next, stream, None)
            if chunk is None:
                return
            yield bytes(chunk)

    async def stat(self, key: str) -> Stat | None:
        object_key = self._object_key(key)
        try:
            with self._errors("look up", key):
                head = await self._call(obstore.head, self._obstore(), object_key)
        except NotFound:
            # A HEAD answer has no body, so a missing bucket looks like a missing key: ask once.
            await self._check_bucket(key)
            return None
        return Stat(size=head["size"], mtime=head["last_modified"].timestamp())

    async def _check_bucket(self, key: str) -> None:
        if self._bucket_seen:
            return
        with self._errors("look up", key):
            # A listing of the key alone: a missing bucket answers NoSuchBucket, an empty one
            # an empty list.
            listing = obstore.list(self._obstore(), self._object_key(key), chunk_size=1)
            await self._call(next, listing, None)
        self._bucket_seen = True

    async def digest(self, key: str) -> tuple[str, int]:
        if self.options.trust_stored_sha256:
            with self._errors("look up", key):
                head = await self._call(
                    obstore.get, self._obstore(), self._object_key(key), options={"head": True}
                )
            stored = head.attributes.get(SHA256_META)
            if isinstance(stored, str) and len(stored) == 64:
                return stored, head.meta["size"]
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
            if writer.upload is not None and writer.upload.started:
                await asyncio.shield(writer.upload.discard())

    async def _put(self, key: str, object_key: str, data: bytes, sha256: str | None = None) -> None:
        with self._errors("write", key):
            await self._call(
                obstore.put,
                self._obstore(),
                object_key,
                data,
                attributes={
                    "Content-Type": self.content_type(key),
                    SHA256_META: sha256 or hashlib.sha256(data).hexdigest(),
                },
                use_multipart=False,
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
        latest = dict(items)  # a key given twice: the later data wins, as if written in order
        if len(latest) == 1:
            [(key, data)] = latest.items()
            await self.write_bytes(key, data)
            return
        # Concurrently (S3 has no batch PUT); each write is atomic on its own.
        room = asyncio.Semaphore(self.options.max_connections)

        async def one(key: str, data: bytes) -> None:
            async with room:
                await self.write_bytes(key, data)

        done = await asyncio.gather(
            *(one(key, data) for key, data in latest.items()), return_exceptions=True
        )
        for outcome in done:
            if isinstance(outcome, BaseException):
                raise outcome

    async def delete(self, key: str) -> bool:
        if await self.stat(key) is None:  # S3's DELETE answers 204 whether or not it existed
            return False
        with self._errors("delete", key):
            await self._call(obstore.delete, self._obstore(), self._object_key(key))
        return True

    async def delete_many(self, keys: Sequence[str]) -> list[bool]:
        for key in keys:  # every key checked before any is removed, like the file system
            check_key(key)
        # In order, one request pair per key: whether each existed is part of the answer, and
        # DeleteObjects does not say (S3 answers "deleted" for a key that was never there).
        return [await self.delete(key) for key in keys]

    async def iter_keys(self, prefix: str = "") -> AsyncIterator[str]:
        async for key, _ in self._list(prefix):
            yield key

    async def iter_stats(self, prefix: str = "") -> AsyncIterator[tuple[str, Stat]]:
        # ListObjectsV2 answers each key's size and date with it: no HEAD per object.
        async for key, entry in self._list(prefix):
            yield key, Stat(size=entry["size"], mtime=entry["last_modified"].timestamp())

    async def _list(self, prefix: str) -> AsyncIterator[tuple[str, Any]]:
        """Each object under the directory ``prefix``: its key and obstore's listing entry."""
        directory = prefix.strip("/")
        if directory:
            check_key(directory)
            directory += "/"
        full = self.location.prefix + directory
        start = len(self.location.prefix)
        listing = obstore.list(self._obstore(), full or None, chunk_size=self.list_page_size)
        while True:
            with self._errors("list", prefix or "/"):
                batch = await self._call(next, listing, None)
            if batch is None:
                return
            for entry in batch:
                object_key = entry["path"]
                if object_key.startswith(self.location.prefix):
                    yield object_key[start:], entry

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
        """A URL that lets its holder GET ``key`` for ``expires`` seconds without credentials
        (SigV4, signed locally with the storage's credentials).

        It is a capability: hand it out only after the request was authorized.
        """
        with self._errors("sign a URL for", key):
            return await self._call(
                obstore.sign,
                self._obstore(),
                "GET",
                self._object_key(key),
                timedelta(seconds=expires),
            )
