"""Bearer JWTs at the service boundary: who the caller is, and the one scope every answer is limited to.

A token's claims name the Arco scope: ``tenant`` and ``workspace`` (scope ids), ``exp`` and ``iat``, and
optionally ``sub``. Tokens are verified with PyJWT:

* **HS256** with a shared secret (``ARCO_API_JWT_SECRET``); ``arco token issue`` makes development tokens with it;
* **RS256 / ES256** with public keys from a JWKS: a file or an ``https://`` URL (``ARCO_API_JWKS``), picked by the
  token's ``kid``.

Only these algorithms are accepted (never ``none``), ``exp`` is required, and a token whose scope ids are
malformed is refused like a bad signature. Token text is never logged.
"""

from __future__ import annotations

import datetime
import json
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import jwt
from jwt import PyJWKClient, PyJWKSet

from arco.core.errors import ArcoError, ConfigError, InvalidInputError
from arco.core.scope import Scope

__all__ = ["ALGORITHMS", "AuthConfig", "AuthError", "Principal", "TokenVerifier", "issue_token"]

#: The algorithms a token may be signed with.
ALGORITHMS: Final = ("HS256", "RS256", "ES256")
#: Shortest HS256 secret accepted (bytes): RFC 7518 asks for a key at least as long as the hash.
MIN_SECRET_BYTES: Final = 32
#: Longest lifetime of a development token.
MAX_TTL: Final = datetime.timedelta(days=30)
#: Verified tokens remembered (by their text), and for how long at most.
MAX_VERIFIED: Final = 4096
VERIFIED_TTL_S: Final = 300.0


class AuthError(ArcoError):
    """A request's bearer token is missing, malformed, expired or not signed by a trusted key."""

    code = "invalid_token"


@dataclass(frozen=True, slots=True)
class AuthConfig:
    """How tokens are verified.

    Attributes:
        secret: The HS256 secret (at least 32 bytes), if HS256 tokens are accepted.
        jwks: A JWKS file path or ``http(s)://`` URL, if RS256/ES256 tokens are accepted.
        audience: The ``aud`` a token must carry, if any.
        issuer: The ``iss`` a token must carry, if any.
        leeway_s: Clock skew allowed on ``exp``/``iat``/``nbf``.
    """

    secret: str | None = field(default=None, repr=False)
    jwks: str | None = None
    audience: str | None = None
    issuer: str | None = None
    leeway_s: float = 30.0

    def __post_init__(self) -> None:
        if self.secret is None and self.jwks is None:
            raise ConfigError(
                "the read API needs a way to verify tokens: set ARCO_API_JWT_SECRET (HS256, at least 32 bytes; "
                "e.g. `openssl rand -hex 32`) or ARCO_API_JWKS (a JWKS file or URL for RS256/ES256)"
            )
        if self.secret is not None and len(self.secret.encode()) < MIN_SECRET_BYTES:
            raise ConfigError(
                f"ARCO_API_JWT_SECRET is {len(self.secret.encode())} bytes; HS256 needs at least "
                f"{MIN_SECRET_BYTES} (make one with `openssl rand -hex 32`)"
            )


@dataclass(frozen=True, slots=True)
class Principal:
    """The verified caller.

    Attributes:
        scope: The only tenant and workspace the caller may read.
        subject: The token's ``sub``, if any (for access logs).
        expires_at: When the token expires.
    """

    scope: Scope
    subject: str | None
    expires_at: datetime.datetime


class TokenVerifier:
    """Verifies bearer tokens against an :class:`AuthConfig` (keys are loaded once; a JWKS URL is cached)."""

    def __init__(self, config: AuthConfig) -> None:
        self._config = config
        # Tokens verified lately, by their exact text: a client sends the same token with every request, and
        # verifying it again costs more CPU than the rest of a small read. An entry lasts until the token
        # expires, at most VERIFIED_TTL (a key removed from a JWKS stops verifying within that time).
        self._verified: OrderedDict[str, tuple[Principal, float]] = OrderedDict()
        self._verified_lock = threading.Lock()
        self._key_set: PyJWKSet | None = None
        self._key_client: PyJWKClient | None = None
        if config.jwks is not None:
            if config.jwks.startswith(("https://", "http://")):
                self._key_client = PyJWKClient(config.jwks, cache_keys=True, lifespan=300, timeout=10)
            else:
                path = Path(config.jwks).expanduser()
                try:
                    self._key_set = PyJWKSet.from_dict(json.loads(path.read_text()))
                except (OSError, ValueError, jwt.PyJWTError) as exc:
                    raise ConfigError(
                        f"ARCO_API_JWKS {config.jwks!r} is not a readable JWKS file ({exc}); give a JSON file "
                        'with {"keys": [...]} or an https:// URL'
                    ) from None

    def _key(self, token: str, algorithm: str) -> Any:
        if algorithm == "HS256":
            if self._config.secret is None:
                raise AuthError("HS256 tokens are not accepted by this server (no ARCO_API_JWT_SECRET)")
            return self._config.secret
        kid = jwt.get_unverified_header(token).get("kid")
        if self._key_client is not None:
            try:
                return self._key_client.get_signing_key_from_jwt(token).key
            except jwt.PyJWKClientError as exc:
                raise AuthError(f"no key of the JWKS verifies this token: {exc}") from None
        if self._key_set is None:
            raise AuthError(f"{algorithm} tokens are not accepted by this server (no ARCO_API_JWKS)")
        for key in self._key_set.keys:
            if kid is None or key.key_id == kid:
                return key.key
        raise AuthError("the token's key id (kid) is not in the server's JWKS")

    def verify(self, token: str) -> Principal:
        """Verify a bearer token and return the caller.

        Raises:
            AuthError: if the token is malformed, expired, signed by an unknown key or with another algorithm,
                or its claims do not name a valid scope.
        """
        now = time.time()
        with self._verified_lock:
            cached = self._verified.get(token)
            if cached is not None and cached[1] > now:
                self._verified.move_to_end(token)
                return cached[0]
        principal = self._verify(token)
        until = min(principal.expires_at.timestamp() + self._config.leeway_s, now + VERIFIED_TTL_S)
        with self._verified_lock:
            self._verified[token] = (principal, until)
            while len(self._verified) > MAX_VERIFIED:
                self._verified.popitem(last=False)
        return principal

    def _verify(self, token: str) -> Principal:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise AuthError("the bearer token is not a JWT") from None
        algorithm = header.get("alg")
        if algorithm not in ALGORITHMS:
            raise AuthError(f"tokens must be signed with one of {', '.join(ALGORITHMS)}")
        key = self._key(token, str(algorithm))
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[str(algorithm)],
                audience=self._config.audience,
                issuer=self._config.issuer,
                leeway=self._config.leeway_s,
                options={"require": ["exp", "iat", "tenant", "workspace"]},
            )
        except jwt.ExpiredSignatureError:
            raise AuthError("the bearer token has expired; get a new one (`arco token issue`)") from None
        except jwt.MissingRequiredClaimError as exc:
            raise AuthError(f"the bearer token has no {exc.claim!r} claim") from None
        except jwt.PyJWTError:
            raise AuthError("the bearer token's signature or claims are invalid") from None
        try:
            scope = Scope(claims["tenant"], claims["workspace"])
        except (ArcoError, TypeError):
            raise AuthError("the bearer token's tenant or workspace claim is not a valid scope id") from None
        sub = claims.get("sub")
        return Principal(
            scope=scope,
            subject=sub if isinstance(sub, str) else None,
            expires_at=datetime.datetime.fromtimestamp(int(claims["exp"]), datetime.UTC),
        )


def issue_token(
    secret: str,
    scope: Scope,
    *,
    ttl: datetime.timedelta,
    subject: str | None = None,
    now: datetime.datetime | None = None,
) -> str:
    """A development token (HS256) for ``scope``, valid for ``ttl``.

    Raises:
        InvalidInputError: if ``ttl`` is not from 1 second to 30 days.
        ConfigError: if the secret is shorter than 32 bytes.
    """
    AuthConfig(secret=secret)  # the same checks as the server's
    if not datetime.timedelta(seconds=1) <= ttl <= MAX_TTL:
        raise InvalidInputError(f"a token's lifetime must be 1 second to 30 days; {ttl} was asked for")
    issued = now or datetime.datetime.now(datetime.UTC)
    claims: dict[str, Any] = {
        "tenant": scope.tenant,
        "workspace": scope.workspace,
        "iat": int(issued.timestamp()),
        "exp": int((issued + ttl).timestamp()),
    }
    if subject:
        claims["sub"] = subject
    return jwt.encode(claims, secret, algorithm="HS256")
