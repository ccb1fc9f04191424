"""A small OAuth 2.0 authorization server on loopback: the local identity provider of development, the
services' tests and the ``api_load`` benchmark (a deployment points STRESS_AUTH_* at the bank's IdP).

It issues RS256 access tokens by the client-credentials grant (``POST /oauth/token``, client id and
secret by HTTP Basic or in the form, RFC 6749 section 4.4) and serves its signing keys as a JWKS
(``GET /.well-known/jwks.json``). Each client is granted at most the scopes it was registered with.
``mint`` signs tokens with arbitrary claims (expired, other audience) to test what the services refuse.

Run it standalone: ``python -m pipelines.services.local_issuer [PORT]`` prints its URLs and a client's
credentials.
"""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

AUDIENCE = "loanstress-api"
TOKEN_SECONDS = 300


class OAuthIssuer:
    """An authorization server on ``127.0.0.1`` and a random port, in a thread of its own."""

    def __init__(self, clients: dict[str, tuple[str, set[str]]], port: int = 0) -> None:
        self.clients = clients  # client id -> (secret, scopes it may be granted)
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = uuid.uuid4().hex[:16]
        self.jwks_fetches = 0
        self.server = ThreadingHTTPServer(("127.0.0.1", port), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.issuer = self.url
        self.jwks_url = f"{self.url}/.well-known/jwks.json"
        self.token_url = f"{self.url}/oauth/token"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> OAuthIssuer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def jwks(self) -> dict[str, Any]:
        public = jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key(), as_dict=True)
        return {"keys": [{**public, "kid": self.kid, "use": "sig", "alg": "RS256"}]}

    def mint(self, subject: str, scopes: set[str], **overrides: Any) -> str:
        """A signed access token; ``overrides`` replace or add claims (``exp``, ``aud``, ``iss``...)."""
        now = int(time.time())
        kid = overrides.pop("kid", self.kid)
        claims = {"iss": self.issuer, "aud": AUDIENCE, "sub": subject, "iat": now, "exp": now + TOKEN_SECONDS,
                  "scope": " ".join(sorted(scopes)), "jti": uuid.uuid4().hex, **overrides}
        return jwt.encode(claims, self.key, algorithm="RS256", headers={"kid": kid})

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

            def _reply(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Cache-Control", "no-store")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                if self.path != "/.well-known/jwks.json":
                    self._reply(404, {"error": "not_found"})
                    return
                issuer.jwks_fetches += 1
                self._reply(200, issuer.jwks())

            def do_POST(self) -> None:
                if self.path != "/oauth/token":
                    self._reply(404, {"error": "not_found"})
                    return
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(int(self.headers.get("Content-Length", 0)))
                                                     .decode()).items()}
                client_id, secret = form.get("client_id"), form.get("client_secret")
                basic = self.headers.get("Authorization", "")
                if basic.startswith("Basic "):
                    client_id, _, secret = base64.b64decode(basic[6:]).decode().partition(":")
                if form.get("grant_type") != "client_credentials":
                    self._reply(400, {"error": "unsupported_grant_type"})
                    return
                registered = issuer.clients.get(client_id or "")
                if registered is None or registered[0] != secret:
                    self._reply(401, {"error": "invalid_client"})
                    return
                asked = set(form.get("scope", "").split()) or registered[1]
                if not asked <= registered[1]:
                    self._reply(400, {"error": "invalid_scope"})
                    return
                self._reply(200, {"access_token": issuer.mint(client_id, asked), "token_type": "Bearer",
                                  "expires_in": TOKEN_SECONDS, "scope": " ".join(sorted(asked))})

        return Handler


ALL_SCOPES = {"loans:read", "loans:write", "simulations:run", "compliance:read"}

if __name__ == "__main__":
    import sys

    with OAuthIssuer({"demo-client": ("demo-secret", ALL_SCOPES)}, int(sys.argv[1]) if sys.argv[1:] else 0) as running:
        print(f"issuer        {running.issuer}\ntoken URL     {running.token_url}\nJWKS URL      {running.jwks_url}\n"
              f"audience      {AUDIENCE}\nclient        demo-client / demo-secret\nscopes        "
              f"{' '.join(sorted(ALL_SCOPES))}", flush=True)
        running.thread.join()
