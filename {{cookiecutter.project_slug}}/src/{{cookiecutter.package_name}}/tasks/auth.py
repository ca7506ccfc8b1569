"""Who may run a task: Cloud Tasks, presenting an OIDC token for our invoker.

Cloud Tasks attaches a Google-issued OIDC token for the service account named
in the task (https://cloud.google.com/tasks/docs/creating-http-target-tasks#token).
The push endpoint runs a task only for a token that was issued by Google, is
meant for this service (audience), has not expired, and names our invoker
account with a verified email. How it knows Google issued the token depends
on how the service is deployed:

- **Private** (`BEHIND_CLOUD_RUN_IAM=true`, the default deployment): Cloud
  Run's front end has already verified the token and the caller's
  `roles/run.invoker`, and hands the container the token with its signature
  replaced by `SIGNATURE_REMOVED_BY_GOOGLE`
  (https://cloud.google.com/run/docs/troubleshooting#signature-removed).
  Such a token is accepted on the strength of that check, claims checked as
  above. Not when the request also carries `X-Serverless-Authorization`:
  then that header is the one the front end checked
  (https://cloud.google.com/run/docs/authenticating/service-to-service), and
  `Authorization` reached the container as the caller wrote it.
  A fully signed token is still accepted here, verified in full: a caller
  authenticated by `X-Serverless-Authorization` keeps `Authorization` intact.
- **Public** (`allUsers` may invoke): nothing has checked the token, so only
  a full signature verification with google-auth against Google's published
  keys will do; a token without its signature is refused.
"""

import asyncio
import json
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeGuard

from google.auth.exceptions import GoogleAuthError

GOOGLE_ISSUERS = frozenset({"https://accounts.google.com", "accounts.google.com"})
SIGNATURE_REMOVED = "SIGNATURE_REMOVED_BY_GOOGLE"
_CLOCK_SKEW_SECONDS = 10
# Google's ID tokens are valid for an hour
# (https://cloud.google.com/docs/authentication/token-types#id-lifetime).
_MAX_LIFETIME_SECONDS = 3600
_DEFAULT_MAX_AGE = 300.0
_MIN_REFRESH_INTERVAL = 30.0  # a token naming an unknown key cannot force a fetch per request
# Google's ID tokens are about 1 KB; anything much longer is not one.
_MAX_TOKEN_LENGTH = 8192
# What decoding a hostile token can raise, in google-auth or the JSON it parses.
_DECODE_ERRORS = (
    ValueError,
    TypeError,
    KeyError,
    OverflowError,
    RecursionError,
    UnicodeError,
    GoogleAuthError,
)


class InvalidToken(Exception):
    """No token, or not one that Google issued for this service (401).

    The message says what is wrong in a few words; it never repeats the token.
    """


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
    try:
        keys = json.loads(response.data)
    except (ValueError, RecursionError):
        keys = None
    if not isinstance(keys, dict) or not all(
        isinstance(key, str) and isinstance(pem, str) for key, pem in keys.items()
    ):
        raise CertificatesUnavailable(f"{url} did not answer with key IDs and certificates")
    match = re.search(r"max-age=(\d{1,9})", response.headers.get("cache-control", ""))
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
    def __init__(
        self,
        *,
        audience: str,
        invoker_email: str,
        certificates: CertificateCache,
        behind_cloud_run_iam: bool = False,
    ) -> None:
        self.audience = audience
        self.invoker_email = invoker_email
        self.certificates = certificates
        self.behind_cloud_run_iam = behind_cloud_run_iam

    async def verify(
        self, authorization: str | None, *, serverless_authorization: str | None = None
    ) -> Mapping[str, Any]:
        """The token's claims, or `InvalidToken` / `ForbiddenToken`.

        `serverless_authorization` is the request's `X-Serverless-Authorization`.
        """
        scheme, _, token = (authorization or "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise InvalidToken("missing bearer token")
        if len(token) > _MAX_TOKEN_LENGTH:
            raise InvalidToken(f"token of {len(token)} characters, too long to be Google's")
        if token.endswith(f".{SIGNATURE_REMOVED}"):
            claims = self._checked_by_cloud_run(token, serverless_authorization)
        else:
            claims = await self._verified(token)
        issuer = claims.get("iss")
        if not isinstance(issuer, str) or issuer not in GOOGLE_ISSUERS:
            raise InvalidToken("issuer is not Google")
        expiry, issued = claims.get("exp"), claims.get("iat")
        if not (_is_time(expiry) and _is_time(issued)):
            raise InvalidToken("token without expiry or issue time")
        if expiry - issued > _MAX_LIFETIME_SECONDS + _CLOCK_SKEW_SECONDS:
            raise InvalidToken("token valid for longer than Google's ID tokens are")
        if claims.get("email") != self.invoker_email or claims.get("email_verified") is not True:
            raise ForbiddenToken("token for another account than the invoker, or unverified")
        return claims

    async def _verified(self, token: str) -> Mapping[str, Any]:
        """Claims of a token whose signature verifies against Google's keys."""
        from google.auth import jwt  # cryptography: loaded on the first push, not at startup

        try:
            header: Any = jwt.decode_header(token)  # type: ignore[no-untyped-call]
        except _DECODE_ERRORS as error:
            raise InvalidToken(f"malformed token ({type(error).__name__})") from None
        key_id = header.get("kid") if isinstance(header, dict) else None
        if not isinstance(key_id, str):
            raise InvalidToken("malformed token (no key ID)")
        keys = await self.certificates.keys()
        if key_id not in keys:  # Google may have rotated its keys
            keys = await self.certificates.keys(refresh=True)
        try:
            claims: Mapping[str, Any] = jwt.decode(  # type: ignore[no-untyped-call]
                token,
                certs=keys,
                audience=self.audience,
                clock_skew_in_seconds=_CLOCK_SKEW_SECONDS,
            )
        except _DECODE_ERRORS as error:
            raise InvalidToken(_reason(error)) from None
        if not isinstance(claims, dict):
            raise InvalidToken("malformed token (claims are not an object)")
        return claims

    def _checked_by_cloud_run(
        self, token: str, serverless_authorization: str | None
    ) -> Mapping[str, Any]:
        """Claims of a token whose signature Cloud Run removed after checking it."""
        from google.auth import jwt

        if not self.behind_cloud_run_iam:
            raise InvalidToken(
                "token without a signature, and this service does not run behind "
                "Cloud Run IAM (BEHIND_CLOUD_RUN_IAM is off)"
            )
        if serverless_authorization is not None:
            raise InvalidToken(
                "token without a signature next to X-Serverless-Authorization, "
                "which is the one Cloud Run checked"
            )
        try:
            claims: Any = jwt.decode(token, verify=False)  # type: ignore[no-untyped-call]
        except _DECODE_ERRORS as error:
            raise InvalidToken(f"malformed token ({type(error).__name__})") from None
        if not isinstance(claims, dict):
            raise InvalidToken("malformed token (claims are not an object)")
        now = time.time()
        audiences = claims.get("aud")
        if self.audience not in (audiences if isinstance(audiences, list) else [audiences]):
            raise InvalidToken("token for another audience")
        expiry, issued = claims.get("exp"), claims.get("iat")
        if not _is_time(expiry) or expiry < now - _CLOCK_SKEW_SECONDS:
            raise InvalidToken("token expired, or no expiry")
        if not _is_time(issued) or issued > now + _CLOCK_SKEW_SECONDS:
            raise InvalidToken("token issued in the future, or no issue time")
        return claims


def _is_time(value: object) -> TypeGuard[float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _reason(error: BaseException) -> str:
    """google-auth's reason a token failed, without the token or its claims."""
    text = str(error)
    for reason in ("expired", "audience", "signature", "Token used too early", "segments"):
        if reason.lower() in text.lower():
            return f"token refused: {reason}"
    return f"token refused ({type(error).__name__})"
