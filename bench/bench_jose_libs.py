"""JOSE library choice for trusted publishing (docs/dependencies.md, "PyJWT"): the time to check
one RS256 (and ES256) OIDC token's signature and decode it, per library.

The contenders are installed in a venv of their own (they are not all dependencies)::

    python -m venv /tmp/jose && /tmp/jose/bin/pip install 'pyjwt[crypto]' joserfc jwcrypto
    /tmp/jose/bin/python bench/bench_jose_libs.py [--tokens 2000] [--repeat 5]

Each row is the best of ``--repeat`` timings of ``--tokens`` verifications of one 2048-bit RS256
token shaped like GitHub's (the key object parsed once, as a JWKS cache would keep it). "JWS
layer" rows check the signature only; the others also decode the claims (joserfc and jwcrypto do
not check claims in that call; PyJWT's ``decode`` checks exp/iat/aud too).
"""

from __future__ import annotations

import argparse
import json
import time
import timeit
from collections.abc import Callable


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tokens", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    import jwt
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from jwt.api_jws import PyJWS

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = int(time.time())
    claims = {
        "iss": "https://token.actions.githubusercontent.com", "aud": "headwater", "iat": now,
        "nbf": now, "exp": now + 300, "jti": "0f3c", "repository": "acme/tools",
        "job_workflow_ref": "acme/tools/.github/workflows/release.yml@refs/tags/v1.0",
    }  # fmt: skip
    token = jwt.encode(claims, key, algorithm="RS256", headers={"kid": "k1"})
    public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    public["kid"] = "k1"
    cases: list[tuple[str, Callable[[], object]]] = []
    pyjwk = jwt.PyJWK(public, "RS256").key
    cases.append(("PyJWT decode (claims checked)", lambda: jwt.decode(
        token, pyjwk, algorithms=["RS256"], audience="headwater",
        issuer="https://token.actions.githubusercontent.com")))  # fmt: skip
    jws = PyJWS()
    cases.append(
        ("PyJWT JWS layer", lambda: jws.decode_complete(token, pyjwk, algorithms=["RS256"]))
    )
    try:
        from joserfc import jws as rjws
        from joserfc import jwt as rjwt
        from joserfc.jwk import RSAKey

        rkey = RSAKey.import_key(public)
        cases.append(("joserfc decode", lambda: rjwt.decode(token, rkey, algorithms=["RS256"])))
        cases.append(
            (
                "joserfc JWS layer",
                lambda: rjws.deserialize_compact(token, rkey, algorithms=["RS256"]),
            )
        )
    except ImportError:
        print("joserfc: not installed, skipped")
    try:
        from jwcrypto import jwk as cjwk
        from jwcrypto import jwt as cjwt

        ckey = cjwk.JWK(**public)
        cases.append(("jwcrypto JWT", lambda: cjwt.JWT(jwt=token, key=ckey, algs=["RS256"]).claims))
    except ImportError:
        print("jwcrypto: not installed, skipped")
    eckey = ec.generate_private_key(ec.SECP256R1())
    ectoken = jwt.encode(claims, eckey, algorithm="ES256")
    cases.append(
        (
            "PyJWT JWS layer, ES256",
            lambda: jws.decode_complete(ectoken, eckey.public_key(), algorithms=["ES256"]),
        )
    )
    for name, call in cases:
        call()
        best = min(timeit.repeat(call, number=args.tokens, repeat=args.repeat)) / args.tokens
        print(f"{name:32} {best * 1e6:7.1f} us per token")


if __name__ == "__main__":
    main()
