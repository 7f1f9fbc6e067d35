"""Verifying OIDC tokens: the truth table of headwater.server.oidc.tokens, and garbage."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from hypothesis import given, settings
from hypothesis import strategies as st

from headwater.server.oidc.tokens import (
    ALGORITHMS,
    MAX_TOKEN_BYTES,
    Refused,
    Unverified,
    inspect,
    parse_jwks,
    verify,
)

ISSUER = "https://issuer.example"
AUD = "headwater-test"
NOW = 1_800_000_000.0
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
OTHER_RSA = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())


def _jwk(key: Any, kid: str, **extra: Any) -> dict[str, Any]:
    if isinstance(key, rsa.RSAPrivateKey):
        data = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    else:
        data = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
    return {**data, "kid": kid, **extra}


KEYS = parse_jwks(
    json.dumps(
        {"keys": [_jwk(RSA_KEY, "rsa", alg="RS256"), _jwk(EC_KEY, "ec", alg="ES256")]}
    ).encode()
)


def _claims(**overrides: Any) -> dict[str, Any]:
    claims = {
        "iss": ISSUER,
        "aud": AUD,
        "iat": int(NOW) - 10,
        "nbf": int(NOW) - 10,
        "exp": int(NOW) + 300,
        "jti": "j-1",
        "sub": "repo:acme/tools:environment:pypi",
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def _sign(
    claims: dict[str, Any], key: Any = RSA_KEY, alg: str = "RS256", kid: str | None = "rsa"
) -> str:
    headers = {} if kid is None else {"kid": kid}
    return jwt.encode(claims, key, algorithm=alg, headers=headers)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unsigned(header: dict[str, Any], claims: dict[str, Any], signature: bytes = b"") -> str:
    return ".".join(
        [_b64(json.dumps(header).encode()), _b64(json.dumps(claims).encode()), _b64(signature)]
    )


def _check(token: str, **kw: Any) -> dict[str, Any] | Refused:
    unverified = inspect(token)
    if isinstance(unverified, Refused):
        return unverified
    return verify(
        token, unverified, kw.pop("keys", KEYS), audience=AUD, now=kw.pop("now", NOW), **kw
    )


def _hs256_with_the_public_key() -> str:
    # The classic confusion: HS256 keyed with the issuer's public key, which everyone has.
    pem = RSA_KEY.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = {"alg": "HS256", "kid": "rsa", "typ": "JWT"}
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(_claims()).encode())}"
    import hashlib
    import hmac

    mac = hmac.new(pem, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(mac)}"


def _tampered() -> str:
    header, _payload, signature = _sign(_claims()).split(".")
    forged = _b64(json.dumps(_claims(sub="repo:evil/evil")).encode())
    return ".".join([header, forged, signature])


#: (case, token, the words the refusal must contain; None: accepted)
TABLE: list[tuple[str, Any, str | None]] = [
    ("valid RS256", lambda: _sign(_claims()), None),
    ("valid ES256", lambda: _sign(_claims(), EC_KEY, "ES256", "ec"), None),
    ("audience as a one-item list", lambda: _sign(_claims(aud=[AUD])), None),
    ("no kid: the keys of the type are tried", lambda: _sign(_claims(), kid=None), None),
    (
        "clock skew within leeway",
        lambda: _sign(_claims(iat=int(NOW) + 20, exp=int(NOW) - 20)),
        None,
    ),
    ("alg none", lambda: _unsigned({"alg": "none", "kid": "rsa"}, _claims()), "algorithm"),
    ("alg None spelled otherwise", lambda: _unsigned({"alg": "None"}, _claims()), "algorithm"),
    ("no alg", lambda: _unsigned({"kid": "rsa"}, _claims(), b"x"), "algorithm"),
    ("HS256 keyed with the public key", _hs256_with_the_public_key, "algorithm"),
    ("signed by another key", lambda: _sign(_claims(), OTHER_RSA), "signature"),
    ("payload changed after signing", _tampered, "signature"),
    ("unknown kid", lambda: _sign(_claims(), kid="nope"), "no key 'nope'"),
    (
        "ES256 header on an RSA kid",
        lambda: _sign(_claims(), EC_KEY, "ES256", "rsa"),
        "does not fit",
    ),
    ("RS384 on a key declared RS256", lambda: _sign(_claims(), alg="RS384"), "does not fit"),
    ("wrong audience", lambda: _sign(_claims(aud="pypi")), "audience"),
    ("several audiences", lambda: _sign(_claims(aud=[AUD, "pypi"])), "audience"),
    ("no audience", lambda: _sign(_claims(aud=None)), "audience"),
    ("expired", lambda: _sign(_claims(exp=int(NOW) - 31)), "expired"),
    ("no exp", lambda: _sign(_claims(exp=None)), "no expiry"),
    ("exp not a number", lambda: _sign(_claims(exp="soon")), "no expiry"),
    ("no iat", lambda: _sign(_claims(iat=None)), "issue time"),
    ("iat in the future", lambda: _sign(_claims(iat=int(NOW) + 60)), "future"),
    ("nbf in the future", lambda: _sign(_claims(nbf=int(NOW) + 60)), "not valid yet"),
    ("no jti", lambda: _sign(_claims(jti=None)), "jti"),
    ("empty jti", lambda: _sign(_claims(jti="")), "jti"),
    ("no iss", lambda: _sign(_claims(iss=None)), "no issuer"),
    (
        "crit header",
        lambda: _sign(_claims()).replace(
            _sign(_claims()).split(".")[0],
            _b64(json.dumps({"alg": "RS256", "kid": "rsa", "crit": ["x"]}).encode()),
        ),
        "crit",
    ),
    ("two parts", lambda: "abc.def", "not a JWT"),
    ("garbage", lambda: "not a token at all", "not a JWT"),
    ("header not JSON", lambda: "bm90IGpzb24.e30.sig", "header"),
    ("oversized", lambda: _sign(_claims(pad="x" * MAX_TOKEN_BYTES)), "longer than"),
    ("non-ASCII", lambda: _sign(_claims()) + "é", "non-ASCII"),
    ("not a string", lambda: 12, "non-empty string"),
    ("empty", lambda: "", "non-empty string"),
]


@pytest.mark.parametrize(("case", "make", "refusal"), TABLE, ids=[row[0] for row in TABLE])
def test_verification_truth_table(case: str, make: Any, refusal: str | None) -> None:
    result = _check(make())
    if refusal is None:
        assert isinstance(result, dict), (case, result)
        assert result["jti"] == "j-1"
    else:
        assert isinstance(result, Refused), (case, result)
        assert refusal in result.description, (case, result.description)


def test_the_allow_list_has_no_symmetric_or_none_algorithm() -> None:
    assert not {a for a in ALGORITHMS if a.startswith("HS") or a.lower() == "none"}


def test_inspect_reads_issuer_kid_and_alg_without_verifying() -> None:
    unverified = inspect(_sign(_claims(iss=ISSUER + "/"), OTHER_RSA))
    assert isinstance(unverified, Unverified)
    assert (unverified.issuer, unverified.kid, unverified.alg) == (ISSUER, "rsa", "RS256")


def test_jwks_parsing_keeps_public_asymmetric_signing_keys_only() -> None:
    private = _jwk(RSA_KEY, "leaked")
    numbers = RSA_KEY.private_numbers()
    private["d"] = _b64(numbers.d.to_bytes(256, "big"))  # a JWKS that leaks the private part
    document = {
        "keys": [
            {"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"},
            _jwk(RSA_KEY, "enc", use="enc"),
            _jwk(RSA_KEY, "hs", alg="HS256"),
            {"kty": "RSA", "kid": "broken", "n": "x"},
            "not an object",
            private,
            _jwk(EC_KEY, None),  # type: ignore[arg-type]
        ]
    }
    keys = parse_jwks(json.dumps(document).encode())
    assert sorted(keys) == ["#6", "leaked"]
    assert isinstance(keys["leaked"].key, rsa.RSAPublicKey)
    for bad in (b"[]", b"{}", b"not json", b'{"keys": 3}'):
        with pytest.raises(ValueError, match="JWKS"):
            parse_jwks(bad)


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.text(max_size=300), st.binary(max_size=300).map(lambda b: _b64(b) + "." + _b64(b) + ".x")
    )
)
def test_garbage_never_raises_and_is_refused(token: str) -> None:
    result = _check(token)
    assert isinstance(result, Refused)


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["iss", "aud", "exp", "iat", "nbf", "jti", "sub"]),
        st.one_of(
            st.none(),
            st.integers(),
            st.text(max_size=20),
            st.floats(allow_nan=True),
            st.lists(st.text(max_size=5), max_size=3),
        ),
    )
)
def test_any_claims_are_decided_without_raising(overrides: dict[str, Any]) -> None:
    claims = {**_claims(), **overrides}
    try:
        token = _sign({k: v for k, v in claims.items() if v is not None})
    except (TypeError, ValueError):
        return  # PyJWT refuses to encode it: nothing to verify
    result = _check(token)
    if isinstance(result, dict):
        # Accepted only when every rule holds.
        assert result["aud"] in (AUD, [AUD])
        assert isinstance(result["jti"], str) and result["jti"]
        assert float(result["exp"]) > NOW - 30 and float(result["iat"]) <= NOW + 30


def test_verification_is_fast_enough_for_the_mint_benchmark() -> None:
    token = _sign(_claims())
    started = time.perf_counter()
    for _ in range(200):
        assert isinstance(_check(token), dict)
    per_token = (time.perf_counter() - started) / 200
    assert per_token < 0.002, per_token  # 500 mints/s leaves 2 ms each for everything
