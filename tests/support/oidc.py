"""An OpenID provider of a test's own on loopback: a client-credentials token endpoint and a JWKS.

`OidcProvider(clients={id: secret}, audience=...)` serves, from a thread (stdlib http.server):
- `POST /token` (RFC 6749 §4.4): form `grant_type=client_credentials` and an optional `scope`;
  the client authenticates with HTTP Basic or with `client_id`/`client_secret` in the form
  (§2.3.1). It answers `{"access_token", "token_type": "Bearer", "expires_in"}` with an RS256 JWT
  (`sub` the client id, `iss`, `aud`, `iat`, `exp`, `scope`, header `kid`), or 401
  `invalid_client` for an unknown client or a wrong secret, 400 `unsupported_grant_type`.
- `GET /jwks`: the public key as a JSON Web Key Set, as a broker's validator fetches it.

librdkafka (`sasl.oauthbearer.method=oidc`) sends Basic `client_id:client_secret` as given, not
form-encoded first as §2.3.1 asks (Kafka's Java client does the same unless
`sasl.oauthbearer.header.urlencode=true`), so Basic credentials are taken as they come: split at
the first `:`. Plain HTTP is for loopback tests only: a real provider is HTTPS.
"""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Collection, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa


class OidcProvider:
    """Issues tokens to `clients` (id → secret) for `audience`; `audiences` overrides it per client, and
    the tokens of the `forged` clients are signed with a key the JWKS does not publish (same `kid`).

    `requests` counts what was asked (`token`, `token refused`, `jwks`), e.g. to show a broker
    fetched the keys. Close it with `close()`.
    """

    def __init__(
        self,
        clients: Mapping[str, str],
        *,
        audience: str,
        audiences: Mapping[str, str] | None = None,
        forged: Collection[str] = (),
        token_ttl_s: int = 300,
    ) -> None:
        self.clients = dict(clients)
        self.audience = audience
        self.audiences = dict(audiences or {})
        self.forged = frozenset(forged)
        self.token_ttl_s = token_ttl_s
        self.kid = uuid.uuid4().hex[:12]
        self.requests: Counter[str] = Counter()
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self._forger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.issuer = f"http://127.0.0.1:{self._server.server_address[1]}"
        self.token_url = f"{self.issuer}/token"
        self.jwks_url = f"{self.issuer}/jwks"
        threading.Thread(target=self._server.serve_forever, name="oidc-provider", daemon=True).start()

    def issue(self, client_id: str, scope: str = "") -> str:
        """A signed access token for `client_id` (no secret asked: the caller is the test)."""
        now = int(time.time())
        claims = {
            "sub": client_id,
            "iss": self.issuer,
            "aud": self.audiences.get(client_id, self.audience),
            "iat": now,
            "exp": now + self.token_ttl_s,
            "scope": scope,
        }
        key = self._forger if client_id in self.forged else self._key
        return jwt.encode(claims, key, algorithm="RS256", headers={"kid": self.kid})

    def jwks(self) -> dict[str, Any]:
        key = jwt.algorithms.RSAAlgorithm.to_jwk(self._key.public_key(), as_dict=True)
        key.pop("key_ops", None)  # RFC 7517 §4.3: not with "use"
        return {"keys": [{**key, "kid": self.kid, "use": "sig", "alg": "RS256"}]}

    def authenticate(self, authorization: str | None, form: Mapping[str, str]) -> str | None:
        """The client id if the request's credentials (Basic, else the form's) are a known client's."""
        if authorization and authorization.startswith("Basic "):
            try:
                client_id, _, secret = base64.b64decode(authorization[6:], validate=True).decode().partition(":")
            except ValueError:
                return None
        else:
            client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
        return client_id if client_id and self.clients.get(client_id) == secret else None

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _handler(provider: OidcProvider) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path != "/jwks":
                self._answer(404, {"error": "not_found"})
                return
            provider.requests["jwks"] += 1
            self._answer(200, provider.jwks())

        def do_POST(self) -> None:
            if self.path != "/token":
                self._answer(404, {"error": "not_found"})
                return
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
            form = {k: v[0] for k, v in parse_qs(body).items()}
            client_id = provider.authenticate(self.headers.get("Authorization"), form)
            if client_id is None:
                provider.requests["token refused"] += 1
                self._answer(401, {"error": "invalid_client"}, {"WWW-Authenticate": 'Basic realm="oidc"'})
            elif form.get("grant_type") != "client_credentials":
                self._answer(400, {"error": "unsupported_grant_type"})
            else:
                provider.requests["token"] += 1
                token = provider.issue(client_id, form.get("scope", ""))
                self._answer(200, {"access_token": token, "token_type": "Bearer", "expires_in": provider.token_ttl_s})

        def _answer(self, status: int, doc: Mapping[str, Any], headers: Mapping[str, str] | None = None) -> None:
            body = json.dumps(doc).encode()
            self.send_response(status)
            for name, value in {"Content-Type": "application/json", **(headers or {})}.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: Any) -> None:
            pass

    return Handler
