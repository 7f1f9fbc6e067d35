"""Verifying many provenance documents: in a worker thread, or on every usable core.

A mirror's first sync of an index whose files carry PEP 740 provenance verifies one document per
file (a few milliseconds of CPU each: signatures, certificate chain, inclusion proof). The
verification is pure Python and C calls that hold the GIL for most of the time, so threads do not
add cores; a process pool does. :class:`DocumentVerifier` picks, once, by this table:

===========  =====================  ==============  ========================================
usable CPUs  documents expected     idle CPUs       where documents are verified
===========  =====================  ==============  ========================================
1            any                    any             one worker thread (no pool to start)
more than 1  fewer than the floor   any             one worker thread (an incremental run)
more than 1  the floor or more      less than 1     one worker thread (no core to gain)
more than 1  the floor or more      1 or more       a pool, one process per usable CPU
===========  =====================  ==============  ========================================

(:func:`use_pool`; the floor is :data:`POOL_FLOOR`; idle CPUs are the usable ones less the
one-minute load average). On a machine whose cores are all busy a pool only adds its start-up
and the pickling of every document (measured: docs/provenance.md), so it is not started. Each pool process loads the trust root once
(its initializer) and keeps its own :class:`~headwater.provenance.verify.VerifyCache`. What goes
in is the document, the file's name and its sha256; what comes out is the publisher identities
the document proved, or the refusal's message (raised here as
:class:`~headwater.provenance.verify.ProvenanceInvalid`, so the caller's rule is the same either
way: a document that does not verify keeps its file out of the page). A pool process that dies
(killed, out of memory) is :class:`VerifierPoolBroken` for every document in flight and after,
never a hang.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

from headwater.errors import HeadwaterError
from headwater.policy.publishers import PublisherIdentity
from headwater.provenance.trust import TrustRoot
from headwater.provenance.verify import ProvenanceInvalid, VerifyCache, verify_provenance_document

__all__ = [
    "POOL_FLOOR",
    "DocumentVerifier",
    "VerifierPoolBroken",
    "idle_cpus",
    "usable_cpus",
    "use_pool",
]

#: Fewest documents a run expects before a process pool is worth its start-up (each process
#: imports the verification libraries and loads the trust root: a few hundred ms of CPU).
POOL_FLOOR = 200


class VerifierPoolBroken(HeadwaterError):
    """A provenance verification process died; nothing it was verifying was believed."""


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def idle_cpus(cpus: int) -> float:
    """Usable CPUs less the one-minute load average (how many cores a pool could gain)."""
    try:
        return cpus - os.getloadavg()[0]
    except OSError:  # pragma: no cover - no load average: assume the CPUs are free
        return float(cpus)


def use_pool(cpus: int, expected: int, idle: float) -> bool:
    """Whether to verify in a process pool (the module's table)."""
    return cpus > 1 and expected >= POOL_FLOOR and idle >= 1


# -- the pool process's side -------------------------------------------------------------------

_worker: tuple[TrustRoot, VerifyCache] | None = None


def _start_worker(path: str) -> None:
    global _worker
    trust = TrustRoot(path)
    trust.verifier  # noqa: B018 - load the trust root once, before the first document
    _worker = (trust, VerifyCache())


def _verify_in_worker(
    raw: bytes, filename: str, sha256: str
) -> tuple[bool, tuple[PublisherIdentity, ...] | str]:
    assert _worker is not None
    trust, cache = _worker
    try:
        verified = verify_provenance_document(raw, filename, sha256, trust, cache=cache)
    except ProvenanceInvalid as exc:
        return False, str(exc)  # the message crosses, not the exception object
    return True, verified.publishers


# -- the caller's side -------------------------------------------------------------------------


class DocumentVerifier:
    """Verify provenance documents against one trust root, in a thread or a process pool.

    ``processes`` > 1 makes a pool of that many processes on first use; otherwise documents are
    verified in a worker thread. :meth:`close` stops the pool (the caller's ``finally``).
    """

    def __init__(self, trusted_root: str | Path | None, *, processes: int = 1) -> None:
        self.trust = TrustRoot(trusted_root)
        self.cache = VerifyCache()
        self.processes = processes
        self._pool: ProcessPoolExecutor | None = None

    @property
    def pooled(self) -> bool:
        return self.processes > 1

    async def verify(self, raw: bytes, filename: str, sha256: str) -> tuple[PublisherIdentity, ...]:
        """The publisher identities ``raw`` proves for the file.

        Raises:
            ProvenanceInvalid: the document does not verify (the check that failed).
            VerifierPoolBroken: a pool process died.
            TrustRootError: the trust root cannot be loaded.
        """
        if not self.pooled:
            verified = await asyncio.to_thread(
                verify_provenance_document, raw, filename, sha256, self.trust, cache=self.cache
            )
            return verified.publishers
        if self._pool is None:
            self.trust.verifier  # noqa: B018 - a bad trust root is its own error, here, once
            self._pool = ProcessPoolExecutor(
                max_workers=self.processes,
                # spawn: the parent runs an event loop and storage threads; a fork would copy
                # their locks mid-use.
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_start_worker,
                initargs=(str(self.trust.path),),
            )
        loop = asyncio.get_running_loop()
        try:
            ok, answer = await loop.run_in_executor(
                self._pool, _verify_in_worker, raw, filename, sha256
            )
        except BrokenProcessPool as exc:
            raise VerifierPoolBroken(
                f"a provenance verification process stopped ({exc or 'it died'}), so "
                f"{filename}'s provenance was not verified and its page is not updated; run "
                "the sync again (if it repeats, look for the out-of-memory killer in the "
                "system log)"
            ) from None
        if not ok:
            assert isinstance(answer, str)
            raise ProvenanceInvalid(answer)
        assert isinstance(answer, tuple)
        return answer

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
