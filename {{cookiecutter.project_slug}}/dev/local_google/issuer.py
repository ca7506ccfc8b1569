"""A local stand-in for Google's OpenID Connect issuer: it signs ID tokens.

Google signs the ID tokens that its services attach to the requests they push
to a service, and that callers of a private Cloud Run service send, with keys
whose certificates it publishes at https://www.googleapis.com/oauth2/v1/certs
(key ID to PEM certificate, with a Cache-Control max-age). This issuer signs
with a key generated at start and serves its certificate in the same shape at
`certs_url`, where a service that verifies tokens can fetch it. The claims are
those of a Google-issued ID token for a service account
(https://cloud.google.com/docs/authentication/token-types#id-contents).
"""

import base64
import json
import time
import uuid
from collections.abc import Collection, Mapping
from datetime import UTC, datetime
from http.server import ThreadingHTTPServer
from typing import Any, Self

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from google.auth import crypt, jwt

from .lifecycle import LocalServer, QuietHandler, serve_in_background

ISSUER = "https://accounts.google.com"


class LocalIssuer(LocalServer):
    """Signs Google-style ID tokens with a local RSA key; serves its certificate."""

    def __init__(self) -> None:
        self.key_id = uuid.uuid4().hex
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "local-google-issuer")])
        now = datetime.now(UTC)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now)
            .not_valid_after(datetime(now.year + 1, 1, 1, tzinfo=UTC))
            .sign(key, hashes.SHA256())
        )
        self.certificate_pem = certificate.public_bytes(serialization.Encoding.PEM).decode()
        private_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        self._signer = crypt.RSASigner.from_string(  # type: ignore[no-untyped-call]
            private_pem, self.key_id
        )
        self.certs_requests = 0
        self._server: ThreadingHTTPServer | None = None

    @property
    def certificates(self) -> dict[str, str]:
        return {self.key_id: self.certificate_pem}

    def token(self, email: str, audience: str, **overrides: Any) -> str:
        """An ID token for the service account `email`; `overrides` replace claims."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": ISSUER,
            "aud": audience,
            "azp": "1234567890",
            "sub": "1234567890",
            "email": email,
            "email_verified": True,
            "iat": now,
            "exp": now + 3600,
        }
        claims.update(overrides)
        token: bytes = jwt.encode(self._signer, claims)  # type: ignore[no-untyped-call]
        return token.decode()

    def signed(self, header: Mapping[str, Any], claims: Any) -> str:
        """A token of exactly `header` and `claims`, signed with this issuer's key
        (for tests of what a verifier does with strange but signed tokens)."""
        segments = [
            base64.urlsafe_b64encode(json.dumps(part).encode()).rstrip(b"=")
            for part in (header, claims)
        ]
        signature = self._signer.sign(b".".join(segments))
        return b".".join([*segments, base64.urlsafe_b64encode(signature).rstrip(b"=")]).decode()

    def verify(self, token: str, audiences: Collection[str]) -> Mapping[str, Any]:
        """The claims of a token this issuer signed for one of `audiences`;
        ValueError otherwise (bad signature, expired, another audience)."""
        claims: Mapping[str, Any] = jwt.decode(  # type: ignore[no-untyped-call]
            token, certs=self.certificates, audience=list(audiences)
        )
        if claims.get("iss") != ISSUER:
            raise ValueError(f"issuer {claims.get('iss')!r}")
        return claims

    @property
    def certs_url(self) -> str:
        if self._server is None:
            raise RuntimeError("the issuer is not serving: start() it")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/certs"

    def start(self) -> Self:
        issuer = self

        class CertsHandler(QuietHandler):
            def do_GET(self) -> None:
                issuer.certs_requests += 1
                body = json.dumps(issuer.certificates).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Cache-Control", "public, max-age=3600")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), CertsHandler)
        serve_in_background(self._server)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
