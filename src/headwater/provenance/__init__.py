"""PEP 740 attestations and provenance documents: verified offline against a Sigstore trust root.

One module does the cryptography, through the maintained libraries (``sigstore`` verifies the
signature, the certificate chain to Fulcio's roots, the transparency log entry and its inclusion
proof; ``pypi-attestations`` reads the PEP 740 objects): :mod:`headwater.provenance.verify`.
Uploads, mirrors, proxies and ``headwater verify`` all call it, so a file is believed attested by
the same rule wherever it came from. The trust root is a file (:mod:`headwater.provenance.trust`):
the one shipped with headwater, or the operator's; nothing is fetched at run time.
"""

from __future__ import annotations

from headwater.provenance.trust import DEFAULT_TRUSTED_ROOT, TrustRoot, TrustRootError
from headwater.provenance.verify import (
    INTEGRITY_MEDIA_TYPE,
    MAX_ATTESTATIONS,
    ProvenanceInvalid,
    VerifiedProvenance,
    VerifyCache,
    provenance_for_upload,
    publishers_of_document,
    verify_provenance_document,
)

__all__ = [
    "DEFAULT_TRUSTED_ROOT",
    "INTEGRITY_MEDIA_TYPE",
    "MAX_ATTESTATIONS",
    "ProvenanceInvalid",
    "TrustRoot",
    "TrustRootError",
    "VerifiedProvenance",
    "VerifyCache",
    "provenance_for_upload",
    "publishers_of_document",
    "verify_provenance_document",
]
