"""The exclusive lease of an S3 prefix: what a file lock is for a tree in a directory.

A mirror run or a repair holds it while it writes, so two processes never sync the same prefix at
once. S3 has no locks; conditional writes make one: create the lease object with
``If-None-Match: *`` (only one creator wins), renew it with ``If-Match`` on its ETag, delete it at
the end. A holder that died leaves it behind, to be taken over (again with ``If-Match``, so two
takers cannot both win) once it has not been renewed for ``ttl`` seconds, or at once when it names
a process on this host that no longer exists.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import obstore
import obstore.exceptions

from headwater.storage.base import StorageError

if TYPE_CHECKING:
    from headwater.storage.s3 import S3Storage

__all__ = ["lease"]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@asynccontextmanager
async def lease(storage: S3Storage, name: str, *, ttl: float) -> AsyncIterator[None]:
    """Hold the lease object ``name`` of ``storage`` while the body runs.

    Raises:
        StorageError: another live process holds it (nothing was changed).
    """
    key = storage._object_key(name)
    store = storage._obstore()
    host = socket.gethostname()

    def body() -> bytes:
        held = {"host": host, "pid": os.getpid(), "expires": time.time() + ttl}
        return json.dumps(held).encode()

    async def put(mode: Any) -> str | None:
        """The new ETag, or None when the condition failed (someone else holds the lease)."""
        try:
            with storage._errors("take the lock", name):
                done = await storage._call(
                    obstore.put, store, key, body(), mode=mode,
                    attributes={"Content-Type": "application/json"}, use_multipart=False,
                )  # fmt: skip
        except StorageError as exc:
            refused = (obstore.exceptions.AlreadyExistsError, obstore.exceptions.PreconditionError)
            if isinstance(exc.__cause__, refused):
                return None
            raise
        return done["e_tag"]

    etag = await put("create")  # If-None-Match: *
    if etag is None:
        with storage._errors("read the lock", name):
            found = await storage._call(obstore.get, store, key)
            raw = bytes(await storage._call(found.bytes))
        try:
            holder = json.loads(raw)
            expires = float(holder["expires"])
            dead_here = holder.get("host") == host and not _pid_alive(int(holder["pid"]))
        except (ValueError, KeyError, TypeError):
            holder, expires, dead_here = {}, 0.0, True  # unreadable: a torn or foreign lock
        if expires > time.time() and not dead_here:
            raise StorageError(
                f"another headwater process (pid {holder.get('pid')} on "
                f"{str(holder.get('host'))[:80]}) is working on {storage.location.url()}; wait "
                f"for it to finish (nothing was changed). If it died, its lock "
                f"({storage.location.url()}/{name}) expires within {ttl:.0f} s."
            )
        etag = await put({"e_tag": found.meta["e_tag"]})  # If-Match
        if etag is None:
            raise StorageError(
                f"another headwater process took the lock on {storage.location.url()} at the "
                "same moment; wait for it to finish (nothing was changed)"
            )

    async def renew() -> None:
        nonlocal etag
        while True:
            await asyncio.sleep(ttl / 3)
            assert etag is not None
            renewed = await put({"e_tag": etag})
            if renewed is None:
                return  # taken over: this process stalled past the ttl
            etag = renewed

    renewing = asyncio.create_task(renew())
    try:
        yield
    finally:
        renewing.cancel()
        with contextlib.suppress(BaseException):
            await renewing
        with contextlib.suppress(StorageError), storage._errors("release the lock", name):
            head = await storage._call(obstore.head, store, key)
            if head["e_tag"] == etag:
                await storage._call(obstore.delete, store, key)
