"""The real attestations of tests/data/provenance and tampered copies of them."""

from __future__ import annotations

import base64
import copy
import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

DATA = Path(__file__).parent.parent / "data" / "provenance"
GITHUB_SDIST = DATA / "pypi_attestations-0.0.19.tar.gz"
GITLAB_SDIST = DATA / "gitlab_oidc_project-0.0.3.tar.gz"
STAGING_WHEEL = DATA / "rfc8785-0.1.2-py3-none-any.whl"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def attestation(dist: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(
        dist.with_name(dist.name + ".publish.attestation").read_text()
    )
    return loaded


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _statement(att: dict[str, Any]) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(base64.b64decode(att["envelope"]["statement"]))
    return loaded


def _set_statement(att: dict[str, Any], statement: dict[str, Any]) -> None:
    att["envelope"]["statement"] = _b64(json.dumps(statement).encode())


def _other_digest(att: dict[str, Any]) -> None:
    statement = _statement(att)
    statement["subject"][0]["digest"]["sha256"] = "0" * 64
    _set_statement(att, statement)


def _flip_signature(att: dict[str, Any]) -> None:
    sig = bytearray(base64.b64decode(att["envelope"]["signature"]))
    sig[-1] ^= 1
    att["envelope"]["signature"] = _b64(bytes(sig))


def _other_certificate(att: dict[str, Any]) -> None:
    # Another real Fulcio certificate (the GitLab attestation's): a valid chain, but not the
    # key that signed this envelope nor the one the log entry records.
    att["verification_material"]["certificate"] = attestation(GITLAB_SDIST)[
        "verification_material"
    ]["certificate"]


def _entry(att: dict[str, Any]) -> dict[str, Any]:
    entry: dict[str, Any] = att["verification_material"]["transparency_entries"][0]
    return entry


def _truncate_proof(att: dict[str, Any]) -> None:
    _entry(att)["inclusionProof"]["hashes"] = _entry(att)["inclusionProof"]["hashes"][:-1]


def _other_root_hash(att: dict[str, Any]) -> None:
    proof = _entry(att)["inclusionProof"]
    proof["rootHash"] = _b64(hashlib.sha256(b"another tree").digest())


def _other_log_index(att: dict[str, Any]) -> None:
    proof = _entry(att)["inclusionProof"]
    proof["logIndex"] = str(int(proof["logIndex"]) + 1)


def _truncate_body(att: dict[str, Any]) -> None:
    body = _entry(att)["canonicalizedBody"]
    _entry(att)["canonicalizedBody"] = body[: len(body) // 2]


def _log_time_outside_certificate(att: dict[str, Any]) -> None:
    # The certificate lived 10 minutes; an entry integrated a day later is outside its validity.
    entry = _entry(att)
    entry["integratedTime"] = str(int(entry["integratedTime"]) + 86_400)


def _no_entries(att: dict[str, Any]) -> None:
    att["verification_material"]["transparency_entries"] = []


def _version_2(att: dict[str, Any]) -> None:
    att["version"] = 2


#: name -> how the copy is tampered with. Every one must be refused.
TAMPERINGS: dict[str, Callable[[dict[str, Any]], None]] = {
    "statement digest changed": _other_digest,
    "signature changed": _flip_signature,
    "certificate swapped": _other_certificate,
    "inclusion proof truncated": _truncate_proof,
    "inclusion proof root hash changed": _other_root_hash,
    "inclusion proof log index changed": _other_log_index,
    "log entry body truncated": _truncate_body,
    "log time outside the certificate's validity": _log_time_outside_certificate,
    "no transparency log entry": _no_entries,
    "attestation version 2": _version_2,
}


def tampered(dist: Path, how: str) -> dict[str, Any]:
    att = copy.deepcopy(attestation(dist))
    TAMPERINGS[how](att)
    return att
