"""Verifying provenance documents in a process pool (provenance/pool.py): the same answer as in a
thread for every document, the table that picks the pool, and a dead pool process as a clear
error rather than a hang."""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from headwater.config import ConfigError, parse_config
from headwater.provenance import ProvenanceInvalid, TrustRootError
from headwater.provenance.pool import (
    POOL_FLOOR,
    DocumentVerifier,
    VerifierPoolBroken,
    idle_cpus,
    usable_cpus,
    use_pool,
)
from tests.provenance.assets import GITHUB_SDIST, GITLAB_SDIST, TAMPERINGS, sha256, tampered

GOOD = GITHUB_SDIST.with_name(GITHUB_SDIST.name + ".provenance").read_bytes()
PUBLISHER = {
    "kind": "GitHub",
    "repository": "trailofbits/pypi-attestations",
    "workflow": "release.yml",
}


def _document(attestation: dict[str, Any]) -> bytes:
    bundle = {"publisher": PUBLISHER, "attestations": [attestation]}
    return json.dumps({"version": 1, "attestation_bundles": [bundle]}).encode()


#: (name, document, filename, sha256): every kind of answer a document can get.
CASES: list[tuple[str, bytes, str, str]] = [
    ("PyPI's document", GOOD, GITHUB_SDIST.name, sha256(GITHUB_SDIST)),
    ("another file's digest", GOOD, GITHUB_SDIST.name, sha256(GITLAB_SDIST)),
    ("another file's name", GOOD, GITLAB_SDIST.name, sha256(GITHUB_SDIST)),
    ("not JSON", b"{", GITHUB_SDIST.name, sha256(GITHUB_SDIST)),
    ("no bundles", b'{"version": 1}', GITHUB_SDIST.name, sha256(GITHUB_SDIST)),
    *(
        (how, _document(tampered(GITHUB_SDIST, how)), GITHUB_SDIST.name, sha256(GITHUB_SDIST))
        for how in sorted(TAMPERINGS)
    ),
]


async def _answers(verifier: DocumentVerifier) -> list[tuple[str, Any]]:
    async def one(raw: bytes, filename: str, digest: str) -> tuple[str, Any]:
        try:
            return "verified", [p.spec() for p in await verifier.verify(raw, filename, digest)]
        except ProvenanceInvalid as exc:
            return "refused", str(exc)

    return list(await asyncio.gather(*(one(raw, f, d) for _, raw, f, d in CASES)))


@pytest.fixture
def pool() -> Iterator[DocumentVerifier]:
    verifier = DocumentVerifier(None, processes=2)
    try:
        yield verifier
    finally:
        verifier.close()


def test_the_pool_gives_every_document_the_answer_a_thread_gives(pool: DocumentVerifier) -> None:
    thread = DocumentVerifier(None, processes=1)
    assert not thread.pooled and pool.pooled
    in_thread = asyncio.run(_answers(thread))
    in_pool = asyncio.run(_answers(pool))
    assert in_pool == in_thread
    # The matrix holds both answers: one document verifies, every other one is refused.
    assert in_pool[0] == ("verified", ["github:trailofbits/pypi-attestations:release.yml"])
    assert [kind for kind, _ in in_pool[1:]] == ["refused"] * (len(CASES) - 1)


@pytest.mark.parametrize(
    ("cpus", "expected", "idle", "pooled"),
    [
        (1, 0, 1.0, False),
        (1, 100_000, 1.0, False),  # one core: a pool only adds start-up and pickling
        (2, POOL_FLOOR - 1, 2.0, False),  # an incremental run: no pool start-up
        (2, POOL_FLOOR, 2.0, True),
        (2, POOL_FLOOR, 1.0, True),
        (2, POOL_FLOOR, 0.9, False),  # every core busy: no core to gain
        (2, 100_000, -6.0, False),
        (8, 700_000, 3.5, True),
    ],
)
def test_a_pool_is_used_for_a_large_run_with_an_idle_cpu(
    cpus: int, expected: int, idle: float, pooled: bool
) -> None:
    assert use_pool(cpus, expected, idle) is pooled


def test_usable_and_idle_cpus_follow_the_affinity_and_the_load() -> None:
    cpus = usable_cpus()
    assert cpus == len(os.sched_getaffinity(0))
    assert idle_cpus(cpus) == pytest.approx(cpus - os.getloadavg()[0], abs=1.0)


def test_a_dead_pool_process_is_a_clear_error_not_a_hang(pool: DocumentVerifier) -> None:
    async def scenario() -> None:
        assert await pool.verify(GOOD, GITHUB_SDIST.name, sha256(GITHUB_SDIST))
        workers = multiprocessing.active_children()
        assert workers
        # Documents in flight when a process is killed, and documents after: each is refused
        # with the pool's error (or verified, if it finished first), never left waiting.
        flight = [
            asyncio.ensure_future(pool.verify(GOOD, GITHUB_SDIST.name, sha256(GITHUB_SDIST)))
            for _ in range(40)
        ]
        await asyncio.sleep(0)
        for process in workers:
            assert process.pid is not None
            os.kill(process.pid, signal.SIGKILL)
        outcomes = await asyncio.wait_for(asyncio.gather(*flight, return_exceptions=True), 60)
        assert all(isinstance(o, (tuple, VerifierPoolBroken)) for o in outcomes), outcomes
        with pytest.raises(VerifierPoolBroken) as caught:
            await asyncio.wait_for(pool.verify(GOOD, GITHUB_SDIST.name, sha256(GITHUB_SDIST)), 60)
        message = str(caught.value)
        assert GITHUB_SDIST.name in message and "run the sync again" in message, message

    asyncio.run(scenario())


def test_a_bad_trust_root_is_refused_before_a_pool_starts(tmp_path: Path) -> None:
    bad = tmp_path / "trusted_root.json"
    bad.write_text("{}")
    verifier = DocumentVerifier(bad, processes=2)
    try:
        with pytest.raises(TrustRootError, match="is not a Sigstore trusted root"):
            asyncio.run(verifier.verify(GOOD, GITHUB_SDIST.name, sha256(GITHUB_SDIST)))
        assert verifier._pool is None
    finally:
        verifier.close()


@pytest.mark.parametrize(
    ("line", "processes"),
    [("", None), ("verify_processes = 1\n", 1), ("verify_processes = 4\n", 4)],
)
def test_a_mirror_names_its_verify_processes(line: str, processes: int | None) -> None:
    config = parse_config(
        f'[mirror.m]\nupstream = "https://pypi.org/simple/"\ntarget = "t"\n{line}'
    )
    assert config.mirror["m"].verify_processes == processes


@pytest.mark.parametrize("value", ["0", "-1", "257"])
def test_a_verify_processes_out_of_range_is_refused_naming_it(value: str) -> None:
    with pytest.raises(ConfigError, match="verify_processes must be between 1 and 256"):
        parse_config(
            f'[mirror.m]\nupstream = "https://pypi.org/simple/"\ntarget = "t"\n'
            f"verify_processes = {value}\n"
        )


def test_the_log_keyrings_are_built_once_per_period(monkeypatch: pytest.MonkeyPatch) -> None:
    from sigstore._internal.trust import KeyringPurpose

    from headwater.provenance import TrustRoot, trust

    root = TrustRoot().verifier._trusted_root
    for build in (root.rekor_keyring, root.ct_keyring):
        first = build(KeyringPurpose.VERIFY)
        assert build(KeyringPurpose.VERIFY) is first  # reused: sigstore would build a new one
        monkeypatch.setattr(trust, "KEYRING_SECONDS", 0.0)
        assert build(KeyringPurpose.VERIFY) is not first  # rebuilt once the period is over
        monkeypatch.setattr(trust, "KEYRING_SECONDS", 600.0)
    # The checks made with them are unchanged: PyPI's document verifies, a tampered one does not.
    verifier = DocumentVerifier(None)
    assert asyncio.run(verifier.verify(GOOD, GITHUB_SDIST.name, sha256(GITHUB_SDIST)))
    with pytest.raises(ProvenanceInvalid):
        asyncio.run(verifier.verify(CASES[6][1], GITHUB_SDIST.name, sha256(GITHUB_SDIST)))
