"""An OIDC issuer of the tests' own: real keys, a discovery document and a JWKS on loopback, and
a GitHub Actions token endpoint, so clients (uv, twine) and headwater do the real exchange.

::

    with Issuer() as issuer:          # http://127.0.0.1:<port>, serving in a thread
        token = issuer.github_token(audience="headwater", repository="acme/tools")
        issuer.rotate()               # a new key (new kid); the old one leaves the JWKS
        issuer.down = True            # every request answers 503

``issuer.actions_env(audience=None)`` is the environment uv and twine read in a GitHub Actions
job (``GITHUB_ACTIONS``, ``ACTIONS_ID_TOKEN_REQUEST_URL``/``_TOKEN``); the endpoint answers
with :meth:`Issuer.github_token` for the audience the client asks, with the claims in
``issuer.job`` (change them to play another repository, workflow or environment).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa

__all__ = ["Issuer"]

_REQUEST_TOKEN = "actions-request-token"


class Issuer:
    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = "key-1"
        self.extra_keys: list[dict[str, Any]] = []
        self.down = False
        self.requests: list[str] = []
        #: The claims of the "job" the Actions endpoint issues tokens for.
        self.job: dict[str, Any] = {
            "repository": "acme/tools",
            "repository_owner": "acme",
            "repository_id": "1001",
            "repository_owner_id": "2002",
            "workflow_file": "release.yml",
            "ref": "refs/tags/v1.0",
            "environment": "pypi",
        }
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    # -- life cycle ---------------------------------------------------------------------------

    def __enter__(self) -> Issuer:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._server.shutdown()
        self._server.server_close()

    # -- keys ---------------------------------------------------------------------------------

    def jwks(self) -> dict[str, Any]:
        public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        public.update(kid=self.kid, use="sig", alg="RS256")
        return {"keys": [public, *self.extra_keys]}

    def rotate(self) -> None:
        """A new signing key with a new kid; the old key leaves the JWKS."""
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = f"key-{uuid.uuid4().hex[:8]}"

    # -- tokens -------------------------------------------------------------------------------

    def token(
        self,
        claims: dict[str, Any],
        *,
        key: Any = None,
        alg: str = "RS256",
        headers: dict[str, Any] | None = None,
    ) -> str:
        """A JWT with ``claims`` signed by ``key`` (default: the issuer's) with ``alg``."""
        header = {"kid": self.kid, **(headers or {})}
        return jwt.encode(
            claims, key if key is not None else self.key, algorithm=alg, headers=header
        )

    def claims(self, audience: str, **overrides: Any) -> dict[str, Any]:
        """GitHub Actions-shaped claims for the current ``job``; ``None`` values are removed."""
        now = int(time.time())
        job = self.job
        claims: dict[str, Any] = {
            "jti": str(uuid.uuid4()),
            "sub": f"repo:{job['repository']}:environment:{job['environment']}",
            "aud": audience,
            "ref": job["ref"],
            "ref_type": "tag",
            "sha": "0" * 40,
            "repository": job["repository"],
            "repository_owner": job["repository_owner"],
            "repository_owner_id": job["repository_owner_id"],
            "repository_id": job["repository_id"],
            "workflow": "Release",
            "event_name": "push",
            "job_workflow_ref": (
                f"{job['repository']}/.github/workflows/{job['workflow_file']}@{job['ref']}"
            ),
            "environment": job["environment"],
            "iss": self.url,
            "nbf": now - 5,
            "iat": now - 5,
            "exp": now + 300,
        }
        claims.update(overrides)
        return {k: v for k, v in claims.items() if v is not None}

    def github_token(self, audience: str, **overrides: Any) -> str:
        return self.token(self.claims(audience, **overrides))

    def actions_env(self) -> dict[str, str]:
        """What a GitHub Actions job with ``id-token: write`` has in its environment."""
        return {
            "GITHUB_ACTIONS": "true",
            "ACTIONS_ID_TOKEN_REQUEST_URL": f"{self.url}/actions-token?api-version=2.0",
            "ACTIONS_ID_TOKEN_REQUEST_TOKEN": _REQUEST_TOKEN,
        }

    # -- the HTTP side ------------------------------------------------------------------------

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _send(self, status: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                issuer.requests.append(self.path)
                if issuer.down:
                    self._send(503, {"error": "down"})
                    return
                parts = urlsplit(self.path)
                if parts.path == "/.well-known/openid-configuration":
                    self._send(
                        200,
                        {"issuer": issuer.url, "jwks_uri": f"{issuer.url}/.well-known/jwks"},
                    )
                elif parts.path == "/.well-known/jwks":
                    self._send(200, issuer.jwks())
                elif parts.path == "/actions-token":
                    if self.headers.get("Authorization", "").lower() != f"bearer {_REQUEST_TOKEN}":
                        self._send(401, {"message": "bad request token"})
                        return
                    audience = parse_qs(parts.query).get("audience", [""])[0]
                    self._send(200, {"value": issuer.github_token(audience)})
                else:
                    self._send(404, {"error": "no such path"})

        return Handler


def ec_key() -> Any:
    return ec.generate_private_key(ec.SECP256R1())
