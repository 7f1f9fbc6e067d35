"""The Sigstore trust root attestations are verified against: a file, never a network fetch.

Sigstore clients normally refresh their trust root over TUF at run time; headwater runs where
there is no network (and a verification must not depend on one), so it reads a
``trusted_root.json`` (media type ``application/vnd.dev.sigstore.trustedroot+json;version=0.1``):
the copy of Sigstore's public-good root shipped inside headwater (:data:`DEFAULT_TRUSTED_ROOT`),
or the file the operator names (``[serve] trusted_root`` / ``[mirror.NAME] trusted_root`` /
``headwater verify --trusted-root``). docs/provenance.md says how to update it.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from sigstore.errors import Error as SigstoreError
from sigstore.models import TrustedRoot
from sigstore.verify import Verifier

from headwater.errors import HeadwaterError

__all__ = ["DEFAULT_TRUSTED_ROOT", "TrustRoot", "TrustRootError"]

#: Sigstore's public-good trusted root (Fulcio CAs, Rekor and CT log keys, timestamp
#: authorities), as its TUF repository published it; shipped as package data.
DEFAULT_TRUSTED_ROOT = Path(__file__).with_name("trusted_root.json")


class TrustRootError(HeadwaterError):
    """The trust root file cannot be read or is not a Sigstore trusted root."""


#: Seconds a trust root's log keyrings are reused before they are built again from the file's
#: keys (a key whose validity starts later is left out when a keyring is built; rebuilding
#: lets it in once it starts, in a long-running server too).
KEYRING_SECONDS = 600.0


class _KeyringsOnce(TrustedRoot):
    """A trusted root that builds its transparency and CT log keyrings once per
    :data:`KEYRING_SECONDS`, not once per verified attestation (sigstore builds them, parsing
    every key, for each call; about 5 % of a verification). The keys, and every check made with
    them, are the same; a key not yet valid when a keyring is built stays out of it until the
    next build, which is the stricter answer."""

    def __init__(self, inner: Any) -> None:
        super().__init__(inner)
        self._keyrings: dict[tuple[str, Any], tuple[float, Any]] = {}
        self._keyrings_lock = threading.Lock()

    def _keyring(self, kind: str, purpose: Any, build: Any) -> Any:
        now = time.monotonic()
        with self._keyrings_lock:
            found = self._keyrings.get((kind, purpose))
            if found is not None and now - found[0] < KEYRING_SECONDS:
                return found[1]
        keyring = build(purpose)
        with self._keyrings_lock:
            self._keyrings[(kind, purpose)] = (now, keyring)
        return keyring

    def rekor_keyring(self, purpose: Any) -> Any:
        return self._keyring("rekor", purpose, super().rekor_keyring)

    def ct_keyring(self, purpose: Any) -> Any:
        return self._keyring("ct", purpose, super().ct_keyring)


class TrustRoot:
    """A trusted root file and the verifier made from it (made once, on first use).

    Raises (on first use): :class:`TrustRootError` naming the file and the fix.
    """

    def __init__(self, path: Path | str | None = None) -> None:
        self.path = Path(path) if path is not None else DEFAULT_TRUSTED_ROOT
        self._verifier: Verifier | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"TrustRoot({str(self.path)!r})"

    @property
    def verifier(self) -> Verifier:
        if self._verifier is None:
            with self._lock:
                if self._verifier is None:
                    self._verifier = self._load()
        return self._verifier

    def _load(self) -> Verifier:
        try:
            return Verifier(trusted_root=_KeyringsOnce.from_file(str(self.path)))
        except OSError as exc:
            raise TrustRootError(
                f"cannot read the Sigstore trust root {str(self.path)!r} ({exc.strerror}); "
                "nothing was verified against it. Point trusted_root at a readable "
                "trusted_root.json (docs/provenance.md)"
            ) from exc
        except (SigstoreError, ValueError, KeyError) as exc:
            raise TrustRootError(
                f"{str(self.path)!r} is not a Sigstore trusted root ({exc}); nothing was "
                "verified against it. Use a trusted_root.json from Sigstore's TUF repository "
                "(docs/provenance.md)"
            ) from exc
