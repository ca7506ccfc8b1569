"""Who may run a task: Cloud Tasks, presenting an OIDC token for our invoker.

Cloud Tasks signs each push with a Google-issued OIDC token for the service
account named in the task (https://cloud.google.com/tasks/docs/creating-http-target-tasks#token).
The push endpoint accepts a request only if that token verifies with
google-auth against Google's published keys, was issued by Google, is meant
for this service (audience), has not expired, and names our invoker account.
When the service is private, Cloud Run checks the token too; this check makes
the endpoint safe even on a public service.
"""

import asyncio
import json
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from google.auth.exceptions import GoogleAuthError

GOOGLE_ISSUERS = frozenset({"https://accounts.google.com", "accounts.google.com"})
_DEFAULT_MAX_AGE = 300.0
_MIN_REFRESH_INTERVAL = 30.0  # a token naming an unknown key cannot force a fetch per request


class InvalidToken(Exception):
    """No token, or not one that Google issued for this service (401)."""


class ForbiddenToken(Exception):
    """A genuine token, but for a caller other than our invoker (403)."""


class CertificatesUnavailable(Exception):
    """Google's signing certificates could not be fetched: nothing can be verified."""


@dataclass(frozen=True, slots=True)
class Certificates:
    keys: Mapping[str, str]
    max_age: float


CertFetcher = Callable[[str], Certificates]


def fetch_certificates(url: str) -> Certificates:
    """GET the PEM certificates (`{key id: certificate}`) with google-auth's transport,
    honouring their Cache-Control max-age. Blocking: call it in a thread."""
    from google.auth.transport.requests import Request

    try:
        response = Request()(url=url, method="GET", timeout=5)
    except GoogleAuthError as error:
        raise CertificatesUnavailable(f"fetching {url} failed: {error}") from error
    if response.status != 200:
        raise CertificatesUnavailable(f"fetching {url} returned {response.status}")
    keys = json.loads(response.data)
    match = re.search(r"max-age=(\d+)", response.headers.get("cache-control", ""))
    return Certificates(keys=keys, max_age=float(match.group(1)) if match else _DEFAULT_MAX_AGE)


class CertificateCache:
    """Google's signing certificates, fetched once and kept until they expire."""

    def __init__(self, url: str, fetch: CertFetcher = fetch_certificates) -> None:
        self.url = url
        self._fetch = fetch
        self._keys: Mapping[str, str] = {}
        self._expires = 0.0
        self._fetched = 0.0
        self._lock = asyncio.Lock()

    async def keys(self, *, refresh: bool = False) -> Mapping[str, str]:
        async with self._lock:
            now = time.monotonic()
            stale = now >= self._expires
            may_refresh = refresh and now - self._fetched >= _MIN_REFRESH_INTERVAL
            if stale or may_refresh:
                certificates = await asyncio.to_thread(self._fetch, self.url)
                self._keys = certificates.keys
                self._fetched = time.monotonic()
                self._expires = self._fetched + certificates.max_age
            return self._keys


class OidcVerifier:
    def __init__(self, *, audience: str, invoker_email: str, certificates: CertificateCache):
        self.audience = audience
        self.invoker_email = invoker_email
        self.certificates = certificates

    async def verify(self, authorization: str | None) -> Mapping[str, Any]:
        """The token's claims, or `InvalidToken` / `ForbiddenToken`."""
        from google.auth import jwt  # cryptography: loaded on the first push, not at startup

        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise InvalidToken("missing bearer token")
        try:
            header: Mapping[str, Any] = jwt.decode_header(token)  # type: ignore[no-untyped-call]
        except (ValueError, GoogleAuthError) as error:
            raise InvalidToken(f"malformed token: {error}") from None
        keys = await self.certificates.keys()
        if header.get("kid") not in keys:  # Google may have rotated its keys
            keys = await self.certificates.keys(refresh=True)
        try:
            claims: Mapping[str, Any] = jwt.decode(  # type: ignore[no-untyped-call]
                token, certs=keys, audience=self.audience, clock_skew_in_seconds=10
            )
        except (ValueError, GoogleAuthError) as error:
            raise InvalidToken(str(error)) from None
        if claims.get("iss") not in GOOGLE_ISSUERS:
            raise InvalidToken(f"issuer {claims.get('iss')!r} is not Google")
        if claims.get("email") != self.invoker_email or claims.get("email_verified") is not True:
            raise ForbiddenToken(f"token for {claims.get('email')!r}, not the invoker account")
        return claims
