"""Verifying an OIDC token (a JWT): two pure steps around the one fetch of the issuer's keys.

1. :func:`inspect` reads the token without trusting it: its size, its three parts, a header whose
   ``alg`` is on :data:`ALGORITHMS` and an ``iss``. Nothing is fetched for a token that fails
   here, and the caller fetches keys only for an issuer some publisher names (an unknown issuer
   never makes the server connect anywhere).
2. :func:`verify` checks the signature with the issuer's key (PyJWT), then every claim the
   exchange depends on, and returns the claims or a :class:`Refused`.

What is checked, and why:

============= =============================================================================
check         rule
============= =============================================================================
size          at most :data:`MAX_TOKEN_BYTES` (GitHub's tokens are about 1-2 KiB)
``alg``       one of :data:`ALGORITHMS` (RSA and ECDSA). Never ``none``; never ``HS*``: a
              symmetric algorithm would let anyone holding the issuer's *public* key (everyone)
              sign tokens. The key's own ``alg``/``kty`` must agree with the header's.
``kid``       names a key of the issuer; without ``kid``, every key of a matching type is
              tried (at most :data:`MAX_KEYS`)
signature     by the key, through PyJWT's JWS layer
``iss``       exactly the issuer whose keys verified it
``aud``       exactly this server's audience (a string, or a list holding only it: PyPI
              refuses tokens meant for several audiences too)
``exp``       required; in the future (minus :data:`LEEWAY` seconds of clock skew)
``iat``       required; not in the future (plus leeway)
``nbf``       if present, not in the future (plus leeway)
``jti``       required (a non-empty string): the replay check needs it
============= =============================================================================

Every refusal is a :class:`Refused` with PyPI's error ``code`` (``invalid-token``) and a
``description`` that names the check, never the token's bytes.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec
from jwt import PyJWK
from jwt.api_jws import PyJWS
from jwt.exceptions import InvalidSignatureError, PyJWTError

__all__ = [
    "ALGORITHMS",
    "LEEWAY",
    "MAX_KEYS",
    "MAX_TOKEN_BYTES",
    "Key",
    "Refused",
    "Unverified",
    "inspect",
    "parse_jwks",
    "verify",
]

#: Asymmetric algorithms only (see the module docstring); GitHub and GitLab sign with RS256.
ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384"})
_KEY_TYPE = {"RS": "RSA", "PS": "RSA", "ES": "EC"}
MAX_TOKEN_BYTES = 16 * 1024
#: Seconds of clock skew allowed on exp, iat and nbf (PyPI allows 30).
LEEWAY = 30
#: Keys tried for a token without ``kid``.
MAX_KEYS = 10

_JWS = PyJWS(algorithms=sorted(ALGORITHMS))
_DECODE = msgspec.json.Decoder(dict[str, Any])


class Refused(msgspec.Struct, frozen=True):
    """The token is not accepted: PyPI's error ``code`` and one line saying why."""

    code: str
    description: str


class Unverified(msgspec.Struct, frozen=True, kw_only=True):
    """What a token says about itself, before anything is verified."""

    issuer: str
    alg: str
    kid: str | None
    claims: dict[str, Any]


def _invalid(description: str) -> Refused:
    return Refused("invalid-token", description)


def _part(segment: str, what: str) -> dict[str, Any] | Refused:
    try:
        raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
        value = _DECODE.decode(raw)
    except (binascii.Error, ValueError, msgspec.DecodeError):
        return _invalid(f"the token's {what} is not base64url-encoded JSON")
    return value


def inspect(token: object) -> Unverified | Refused:
    """Read ``token`` without trusting it (see the module docstring)."""
    if not isinstance(token, str) or not token:
        return Refused("invalid-payload", "the token must be a non-empty string")
    if len(token) > MAX_TOKEN_BYTES:
        return _invalid(f"the token is longer than {MAX_TOKEN_BYTES} bytes")
    if not token.isascii():
        return _invalid("the token is not a JWT (it has non-ASCII characters)")
    parts = token.split(".")
    if len(parts) != 3 or not all(parts[:2]):
        return _invalid("the token is not a JWT (three base64url parts separated by dots)")
    header = _part(parts[0], "header")
    if isinstance(header, Refused):
        return header
    claims = _part(parts[1], "payload")
    if isinstance(claims, Refused):
        return claims
    alg = header.get("alg")
    if alg not in ALGORITHMS:
        shown = repr(alg)[:40]
        return _invalid(
            f"the token's algorithm {shown} is not accepted: use one of {', '.join(sorted(ALGORITHMS))}"
        )
    kid = header.get("kid")
    if kid is not None and (not isinstance(kid, str) or not kid or len(kid) > 200):
        return _invalid("the token's kid is not a short string")
    if "crit" in header:
        # RFC 7515 4.1.11: extensions a verifier does not understand must fail verification.
        return _invalid("the token has critical header extensions (crit), which are not supported")
    issuer = claims.get("iss")
    if not isinstance(issuer, str) or not issuer or len(issuer) > 500:
        return _invalid("the token has no issuer (iss)")
    return Unverified(issuer=issuer.rstrip("/"), alg=str(alg), kid=kid, claims=claims)


class Key(msgspec.Struct, frozen=True):
    """One public key of an issuer: its type (``RSA``, ``EC``), the algorithm it is declared
    for (None: any of its type), and the key object PyJWT verifies with."""

    kty: str
    alg: str | None
    key: Any


#: JWK members that only private or symmetric keys have: never read from a JWKS.
_PRIVATE = ("d", "p", "q", "dp", "dq", "qi", "oth", "k")


def parse_jwks(raw: bytes) -> dict[str, Key]:
    """The usable public keys of a JWKS document (RFC 7517), by ``kid`` (keys without one get
    ``#N``). Symmetric (``oct``) keys and keys PyJWT cannot read are left out; private members
    are dropped before parsing, so a JWKS that leaks a private key still yields a public one.

    Raises:
        ValueError: the document is not a JSON object with a ``keys`` list.
    """
    try:
        document = _DECODE.decode(raw)
    except msgspec.DecodeError as exc:
        raise ValueError(f"the JWKS is not JSON: {exc}") from None
    entries = document.get("keys")
    if not isinstance(entries, list):
        raise ValueError("the JWKS has no keys list")
    keys: dict[str, Key] = {}
    for number, entry in enumerate(entries[:100]):
        if not isinstance(entry, dict) or entry.get("kty") not in ("RSA", "EC"):
            continue
        if entry.get("use") not in (None, "sig"):
            continue
        public = {k: v for k, v in entry.items() if k not in _PRIVATE}
        declared = public.get("alg")
        if declared is not None and declared not in ALGORITHMS:
            continue
        try:
            jwk = PyJWK(public, algorithm=declared)
        except (PyJWTError, ValueError, TypeError, KeyError):
            continue
        kid = public.get("kid")
        name = kid if isinstance(kid, str) and kid else f"#{number}"
        keys[name] = Key(kty=str(public["kty"]), alg=declared, key=jwk.key)
    return keys


def _candidates(unverified: Unverified, keys: Mapping[str, Key]) -> Sequence[Key] | Refused:
    wanted_type = _KEY_TYPE[unverified.alg[:2]]

    def fits(key: Key) -> bool:
        return key.kty == wanted_type and key.alg in (None, unverified.alg)

    if unverified.kid is not None:
        key = keys.get(unverified.kid)
        if key is None:
            return _invalid(
                f"the issuer {unverified.issuer} has no key {unverified.kid[:80]!r} (its keys "
                "were fetched again and it is not among them)"
            )
        if not fits(key):
            return _invalid(
                f"the token's algorithm {unverified.alg} does not fit key "
                f"{unverified.kid[:80]!r} of {unverified.issuer}"
            )
        return [key]
    found = [key for key in keys.values() if fits(key)][:MAX_KEYS]
    if not found:
        return _invalid(f"the issuer {unverified.issuer} has no key for {unverified.alg}")
    return found


def _number(claims: Mapping[str, Any], name: str) -> float | None:
    value = claims.get(name)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def verify(
    token: str,
    unverified: Unverified,
    keys: Mapping[str, Key],
    *,
    audience: str,
    now: float,
    leeway: float = LEEWAY,
) -> dict[str, Any] | Refused:
    """The claims of ``token`` (read by :func:`inspect` as ``unverified``) if it is signed by
    one of the issuer's ``keys`` (by ``kid``) and valid for ``audience`` at ``now``."""
    candidates = _candidates(unverified, keys)
    if isinstance(candidates, Refused):
        return candidates
    verified = False
    for key in candidates:
        try:
            _JWS.decode_complete(token, key.key, algorithms=[unverified.alg])
        except InvalidSignatureError:
            continue
        except (PyJWTError, ValueError, TypeError):
            return _invalid("the token's signature cannot be checked (malformed JWS)")
        verified = True
        break
    if not verified:
        return _invalid(
            f"the token's signature does not verify with the keys of {unverified.issuer}"
        )
    claims = unverified.claims
    aud = claims.get("aud")
    if not (aud == audience or (isinstance(aud, list) and aud == [audience])):
        shown = repr(aud)[:100]
        return _invalid(
            f"the token's audience {shown} is not this index's {audience!r}: ask the CI "
            "provider for a token with this audience (uv and the PyPI action read it from "
            "/_/oidc/audience)"
        )
    exp = _number(claims, "exp")
    if exp is None:
        return _invalid("the token has no expiry (exp)")
    if exp <= now - leeway:
        return _invalid("the token has expired: ask the CI provider for a new one")
    iat = _number(claims, "iat")
    if iat is None:
        return _invalid("the token has no issue time (iat)")
    if iat > now + leeway:
        return _invalid("the token's issue time (iat) is in the future: check the clocks")
    if "nbf" in claims:
        nbf = _number(claims, "nbf")
        if nbf is None or nbf > now + leeway:
            return _invalid("the token is not valid yet (nbf)")
    jti = claims.get("jti")
    if not isinstance(jti, str) or not jti or len(jti) > 500:
        return _invalid("the token has no token id (jti), which the replay check needs")
    return claims
