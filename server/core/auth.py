"""Who may call, decided once for both doors. A door only extracts the credential strings
(the `authorization` and `x-api-key` header or metadata, and the caller's address) and asks
the Guard to admit the call with the scope it needs:

    authenticate (bearer JWT or API key) -> check the scope -> charge the rate limit

in that order, so a refused credential never spends anyone's quota. Every call that is not
a health check, the docs or open metrics goes through `Guard.admit`; anything not listed
below as open or `predict` needs `admin` (so a new administrative endpoint or rpc is
closed until someone opens it).

For a handler that needs a scope, e.g. the admin reload:
    REST  `@router.post(..., dependencies=[Depends(require_scope(ADMIN))])`
    gRPC  `require_scope(ADMIN)()` first thing in the method
which checks the principal that the door admitted for this call."""
from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from prometheus_client import CollectorRegistry, Counter

from server.core.ratelimit import RateLimiter
from server.errors import PermissionDenied, RateLimited, Unauthenticated

if TYPE_CHECKING:
    from server.settings import Settings

log = logging.getLogger(__name__)

PREDICT = "predict"  # predictions, streams, model info
ADMIN = "admin"  # administration: reload, rollback (and closed /metrics)
SCOPES = frozenset({PREDICT, ADMIN})

AUTHORIZATION = "authorization"  # header / metadata names a door reads
API_KEY = "x-api-key"
MAX_CREDENTIAL_CHARS = 8192  # longer is refused before parsing
MAX_SUBJECT_CHARS = 256

# Which scope each operation needs: None = open. Anything not named needs ADMIN.
OPEN_PATHS = frozenset({"/health/live", "/health/ready", "/openapi.json", "/docs",
                        "/docs/oauth2-redirect", "/redoc", "/"})  # "/": the demo page
# The documentation's own scripts and styles (server/rest/app.py DOCS_ASSETS), served from
# the installed package: open, as the pages that load them are.
OPEN_PREFIXES = ("/docs/assets/",)
PREDICT_PATHS = frozenset({"/v1/predict", "/v1/predict/batch", "/v1/model", "/v1/stream"})
METRICS_PATH = "/metrics"
OPEN_GRPC_SERVICES = ("grpc.health.", "grpc.reflection.")  # prefixes of full service names
PREDICT_RPCS = frozenset(f"/bet.v1.Inference/{name}" for name in
                         ("Predict", "PredictBatch", "PredictStream", "GetModelInfo")) | frozenset(
    f"/inference.GRPCInferenceService/{name}" for name in ("ModelInfer", "ModelStreamInfer"))
# The Open Inference Protocol: health and metadata are open (as the native health is), and
# so is the rest of its service; inference needs PREDICT.
OIP_PATH = "/v2"
OIP_GRPC_SERVICE = "inference.GRPCInferenceService/"


def is_oip_path(path: str) -> bool:
    """A REST path of the Open Inference Protocol."""
    return path == OIP_PATH or path.startswith(OIP_PATH + "/")


def rest_scope(path: str, *, metrics_open: bool = True) -> str | None:
    if path in OPEN_PATHS or path.startswith(OPEN_PREFIXES) or (path == METRICS_PATH and metrics_open):
        return None
    if is_oip_path(path):
        return PREDICT if path.endswith("/infer") else None
    return PREDICT if path in PREDICT_PATHS else ADMIN


def grpc_scope(full_method: str) -> str | None:
    """`full_method` as gRPC names it: "/package.Service/Method"."""
    if full_method in PREDICT_RPCS:
        return PREDICT
    if full_method.lstrip("/").startswith((*OPEN_GRPC_SERVICES, OIP_GRPC_SERVICE)):
        return None
    return ADMIN


@dataclass(frozen=True)
class Credentials:
    """What a door read from the call; it judges nothing."""

    authorization: str | None = None
    api_key: str | None = None
    client: str = ""  # the caller's address (no port): names anonymous callers


@dataclass(frozen=True)
class Principal:
    id: str  # "jwt:<sub>", "key:<id>", or "addr:<address>" without authentication
    scopes: frozenset[str]


class JwtVerifier:
    """Bearer JWTs: HS256 with the shared secret and/or RS256 or ES256 with the public key;
    each algorithm is tried only with its own key, and no other algorithm is accepted."""

    def __init__(
        self, *, secret: str | None, public_key_file: Path | None, issuer: str | None,
        audience: str | None, leeway_s: float,
    ) -> None:
        self._keys: dict[str, Any] = {}
        if secret:
            self._keys["HS256"] = secret
        if public_key_file is not None:
            key = _read_public_key(public_key_file)
            self._keys[_public_key_algorithm(key)] = key
        self._issuer = issuer
        self._audience = audience
        self._leeway_s = leeway_s
        self._required = ["exp", "sub"] + ["iss"] * bool(issuer) + ["aud"] * bool(audience)

    @property
    def algorithms(self) -> list[str]:
        return sorted(self._keys)

    def verify(self, token: str) -> Principal:
        try:
            algorithm = jwt.get_unverified_header(token).get("alg")
        except jwt.PyJWTError:
            raise Unauthenticated("the bearer token is not a JWT") from None
        if not isinstance(algorithm, str) or algorithm not in self._keys:
            raise Unauthenticated(f"the token's algorithm is not accepted (accepted: {', '.join(self.algorithms)})")
        key = self._keys[algorithm]
        try:
            claims = jwt.decode(
                token, key, algorithms=[algorithm], issuer=self._issuer, audience=self._audience,
                leeway=self._leeway_s, options={"require": self._required},
            )
        except jwt.PyJWTError as exc:
            raise Unauthenticated(_jwt_refusal(exc)) from None
        subject = claims["sub"]
        if not isinstance(subject, str) or not 0 < len(subject) <= MAX_SUBJECT_CHARS:
            raise Unauthenticated("the token's subject is not a string of 1 to 256 characters")
        return Principal(f"jwt:{subject}", _token_scopes(claims))


def _jwt_refusal(exc: jwt.PyJWTError) -> str:
    """A reason the caller may read (never the key or the token)."""
    reasons: list[tuple[type[jwt.PyJWTError], str]] = [
        (jwt.ExpiredSignatureError, "the token has expired"),
        (jwt.ImmatureSignatureError, "the token is not valid yet"),
        (jwt.InvalidIssuerError, "the token's issuer is not accepted"),
        (jwt.InvalidAudienceError, "the token's audience is not accepted"),
        (jwt.InvalidSignatureError, "the token's signature does not verify"),
    ]
    if isinstance(exc, jwt.MissingRequiredClaimError):
        return f"the token has no {exc.claim!r} claim"
    return next((text for cls, text in reasons if isinstance(exc, cls)), "the token is not valid")


def _token_scopes(claims: Mapping[str, Any]) -> frozenset[str]:
    """`scope`: a space-separated string (RFC 8693), or `scopes`: a list of strings."""
    raw = claims.get("scope", claims.get("scopes", ""))
    names = raw.split() if isinstance(raw, str) else raw if isinstance(raw, list) else []
    return frozenset(n for n in names if isinstance(n, str)) & SCOPES


def _read_public_key(path: Path) -> Any:
    try:
        return serialization.load_pem_public_key(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot read the JWT public key {path}: {exc}") from None


def _public_key_algorithm(key: Any) -> str:
    if isinstance(key, rsa.RSAPublicKey):
        return "RS256"
    if isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1):
        return "ES256"
    raise ValueError("the JWT public key must be RSA (RS256) or EC P-256 (ES256)")


class ApiKeys:
    """Static API keys, stored as the sha256 of each key. The file holds one JSON object a
    line, `{"id": "ci", "sha256": "<64 hex digits>", "scopes": ["predict"]}`; blank lines
    and lines starting with # are skipped. It is read again whenever it changes (mtime, size
    or inode), so deleting a line revokes that key without a restart. A file that cannot be
    read or parsed after a change refuses every key until it is fixed."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._stamp = self._stat()
        self._keys = parse_api_keys(path.read_text(encoding="utf-8"))  # at start, errors raise

    def lookup(self, key: str) -> Principal:
        self._refresh()
        # Looked up by the digest of what was sent: the caller controls no byte of the key
        # compared, so the lookup's timing tells nothing about the stored keys.
        digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()
        principal = self._keys.get(digest)
        if principal is None:
            raise Unauthenticated("the API key is not valid")
        return principal

    def _stat(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self._path)
        except OSError:
            return None
        return st.st_mtime_ns, st.st_size, st.st_ino

    def _refresh(self) -> None:
        stamp = self._stat()
        if stamp == self._stamp:
            return
        self._stamp = stamp
        try:
            self._keys = parse_api_keys(self._path.read_text(encoding="utf-8"))
            log.info("API keys file re-read", extra={"fields": {"keys": len(self._keys)}})
        except (OSError, ValueError) as exc:
            self._keys = {}
            log.error("API keys file unreadable; refusing every key until it is fixed",
                      extra={"fields": {"error": str(exc)}})


def parse_api_keys(text: str) -> dict[str, Principal]:
    """sha256 hex digest -> Principal("key:<id>", scopes)."""
    keys: dict[str, Principal] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            entry = json.loads(line)
            key_id, digest, scopes = entry["id"], entry["sha256"].lower(), entry.get("scopes", [PREDICT])
            valid = (isinstance(key_id, str) and key_id and len(digest) == 64
                     and all(c in "0123456789abcdef" for c in digest)
                     and isinstance(scopes, list) and set(scopes) <= SCOPES)
        except (ValueError, KeyError, TypeError, AttributeError):
            valid = False
        if not valid:
            raise ValueError(f"API keys file, line {number}: expected "
                             '{"id": "...", "sha256": "<64 hex>", "scopes": ["predict", "admin"]}')
        keys[digest] = Principal(f"key:{key_id}", frozenset(scopes))
    return keys


class Authenticator:
    """Turns credentials into a Principal or raises Unauthenticated. With nothing
    configured it is off, and every caller is its address, with every scope (such a server
    binds loopback only, unless --insecure)."""

    def __init__(self, jwt_verifier: JwtVerifier | None = None, api_keys: ApiKeys | None = None) -> None:
        self._jwt = jwt_verifier
        self._keys = api_keys

    @property
    def enabled(self) -> bool:
        return self._jwt is not None or self._keys is not None

    def authenticate(self, credentials: Credentials) -> Principal:
        if not self.enabled:
            return Principal(f"addr:{credentials.client}", SCOPES)
        authorization, api_key = credentials.authorization, credentials.api_key
        if max(len(authorization or ""), len(api_key or "")) > MAX_CREDENTIAL_CHARS:
            raise Unauthenticated("the credential is too long")
        if authorization is not None:
            scheme, _, token = authorization.strip().partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise Unauthenticated("the Authorization header must be 'Bearer <token>'")
            if self._jwt is None:
                raise Unauthenticated("bearer tokens are not accepted here; send an x-api-key")
            return self._jwt.verify(token.strip())
        if api_key is not None:
            if self._keys is None:
                raise Unauthenticated("API keys are not accepted here; send a bearer token")
            return self._keys.lookup(api_key)
        raise Unauthenticated("credentials required: 'Authorization: Bearer <token>' or 'x-api-key'")


def require(principal: Principal, scope: str) -> None:
    if scope not in principal.scopes:
        raise PermissionDenied(f"this call needs the {scope!r} scope")


@dataclass(frozen=True)
class Admission:
    guard: Guard
    principal: Principal


# The admitted caller of the current call (each call runs in its own task / context).
current: ContextVar[Admission | None] = ContextVar("bet_admission", default=None)


class Guard:
    """The one gate of both doors: authentication, scope, then the rate limit."""

    def __init__(
        self, authenticator: Authenticator, limiter: RateLimiter | None, registry: CollectorRegistry,
        *, metrics_open: bool = True,
    ) -> None:
        self.authenticator = authenticator
        self.limiter = limiter
        self.metrics_open = metrics_open  # false: /metrics needs the admin scope
        self._limited = Counter("bet_rate_limited", "Requests refused by the rate limit.",
                                registry=registry) if limiter is not None else None

    @classmethod
    def from_settings(cls, settings: Settings, registry: CollectorRegistry) -> Guard:
        """Raises ValueError for a key file that cannot be read."""
        s = settings
        verifier = None
        if s.auth_jwt_secret is not None or s.auth_jwt_public_key_file is not None:
            verifier = JwtVerifier(
                secret=s.auth_jwt_secret.get_secret_value() if s.auth_jwt_secret else None,
                public_key_file=s.auth_jwt_public_key_file, issuer=s.auth_jwt_issuer,
                audience=s.auth_jwt_audience, leeway_s=s.auth_jwt_leeway_s,
            )
        try:
            keys = ApiKeys(s.auth_api_keys_file) if s.auth_api_keys_file is not None else None
        except OSError as exc:
            raise ValueError(f"cannot read the API keys file: {exc}") from None
        limiter = None
        if s.rate_limit_per_second is not None:
            assert s.rate_limit_burst is not None  # Settings fills it in whenever a rate is set
            limiter = RateLimiter(s.rate_limit_per_second, s.rate_limit_burst)
        return cls(Authenticator(verifier, keys), limiter, registry, metrics_open=s.metrics_open)

    @classmethod
    def open(cls, registry: CollectorRegistry) -> Guard:
        """No authentication, no rate limit."""
        return cls(Authenticator(), None, registry)

    def admit(self, credentials: Credentials, scope: str, *, charge: bool = True) -> Principal:
        """Admits one call needing `scope` (a stream is admitted with charge=False, and
        each of its messages charged with `charge_current`)."""
        principal = self.authenticator.authenticate(credentials)
        require(principal, scope)
        if charge:
            self.charge(principal)
        current.set(Admission(self, principal))
        return principal

    def charge(self, principal: Principal) -> None:
        if self.limiter is None:
            return
        wait = self.limiter.take(principal.id)
        if wait > 0:
            assert self._limited is not None
            self._limited.inc()
            retry = max(1, math.ceil(wait))
            raise RateLimited(f"rate limit exceeded; retry after {retry} s", retry_after_s=retry)


def charge_current() -> None:
    """Charges one request to the caller admitted for this call (one message of a stream);
    nothing when no door admitted one."""
    admission = current.get()
    if admission is not None:
        admission.guard.charge(admission.principal)


def require_scope(scope: str) -> Callable[[], Principal]:
    """A check that the caller admitted for this call holds `scope`; usable as a FastAPI
    dependency (`Depends(require_scope(ADMIN))`) or called (`require_scope(ADMIN)()`).
    Raises Unauthenticated when no door admitted a caller (fails closed)."""

    def check() -> Principal:
        admission = current.get()
        if admission is None:
            raise Unauthenticated("this call was not authenticated")
        require(admission.principal, scope)
        return admission.principal

    check.__name__ = f"require_scope_{scope}"
    return check
