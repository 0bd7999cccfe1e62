"""Who may call what: the JWTs Envoy verifies at the front door, their keys and claims.

Envoy's ``jwt_authn`` filter verifies every token against a local JWKS (the public half of
an ES256 key pair), its RBAC filter allows each route only to tokens carrying that route's
scope, and it forwards the verified payload to the gateways in `PAYLOAD_HEADER`. A gateway
then checks the one rule Envoy cannot see, because it lives in the request's body: a caller
reads recommendations, and posts feedback, only for the users its token names
(`Claims.may_act_for`).

A token's claims::

    {"iss": ISSUER, "aud": AUDIENCE, "sub": "<client id>", "scope": "recommend feedback",
     "users": ["user-00042", ...] or ["*"], "iat": ..., "exp": ...}

`aiqleads serve` creates the key pair and a development token under ``<run_dir>/secrets/``
(`ensure_dev_credentials`); in Kubernetes the JWKS comes from the Secret ``aiqleads-auth``
and tokens are issued with ``python kustomize/generate.py token`` (docs/security.md).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import json
import os
import pathlib
import stat
import time
from collections.abc import Iterable
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from aiqleads.errors import ConfigError

ISSUER = "aiqleads"
AUDIENCE = "aiqleads-recommendations"
ALGORITHM = "ES256"
SCOPE_RECOMMEND = "recommend"
SCOPE_FEEDBACK = "feedback"
SCOPE_ADMIN = "admin"  # the raw model APIs (TF Serving Predict over REST and gRPC)
SCOPES = (SCOPE_RECOMMEND, SCOPE_FEEDBACK, SCOPE_ADMIN)
SCOPE_CLAIM = "scope"  # space-delimited, as OAuth 2.0 writes it
USERS_CLAIM = "users"
ALL_USERS = "*"
# Headers Envoy sets from a verified token (overwriting whatever a client sent under them).
PAYLOAD_HEADER = "x-aiqleads-jwt-payload"  # base64url JSON of the verified payload
CLIENT_HEADER = "x-aiqleads-client"  # the token's subject: the per-client rate limit's key
AUTHORIZATION_HEADER = "authorization"
TOKEN_ENV = "AIQLEADS_TOKEN"
# Files under <run_dir>/secrets/ (the signing key and the token 0600; the JWKS is public).
SECRETS_DIR = "secrets"
SIGNING_KEY_FILE = "jwt-signing-key.pem"
JWKS_FILE = "jwks.json"
DEV_TOKEN_FILE = "dev.token"
DEV_CLIENT = "dev"
_PRIVATE = 0o600


@dataclasses.dataclass(frozen=True)
class Claims:
    """What a verified token allows."""

    subject: str
    scopes: frozenset[str]
    users: frozenset[str]

    def may_act_for(self, user_id: str) -> bool:
        return ALL_USERS in self.users or user_id in self.users


def claims_from_payload(payload: dict[str, Any]) -> Claims:
    """Claims of a decoded payload; ValueError when a claim has the wrong shape."""
    subject = payload.get("sub")
    scope = payload.get(SCOPE_CLAIM, "")
    users = payload.get(USERS_CLAIM, [])
    if not isinstance(subject, str) or not subject:
        raise ValueError("the token has no subject (sub)")
    if isinstance(scope, str):
        scopes = scope.split()
    elif isinstance(scope, list) and all(isinstance(s, str) for s in scope):
        scopes = scope
    else:
        raise ValueError("the token's scope is neither a string nor a list of strings")
    if not isinstance(users, list) or not all(isinstance(u, str) for u in users):
        raise ValueError("the token's users claim is not a list of user ids")
    return Claims(subject, frozenset(scopes), frozenset(users))


def claims_from_header(value: str) -> Claims:
    """Claims of `PAYLOAD_HEADER` (base64url JSON, unpadded); ValueError when malformed."""
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
        payload = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError) as e:
        raise ValueError(f"the forwarded token payload is not base64url JSON: {e}") from e
    if not isinstance(payload, dict):
        raise ValueError("the forwarded token payload is not a JSON object")
    return claims_from_payload(payload)


def _write_private(path: pathlib.Path, data: bytes) -> None:
    """Write ``data`` to ``path`` with mode 0600 from the start (temp file, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, _PRIVATE)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    os.replace(tmp, path)


def create_signing_key(path: pathlib.Path) -> pathlib.Path:
    """A new ES256 private key (PEM, mode 0600) at ``path`` unless one exists; the path.

    Kept across restarts, so tokens issued earlier stay valid until they expire."""
    path = pathlib.Path(path)
    if not path.exists():
        key = ec.generate_private_key(ec.SECP256R1())
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        _write_private(path, pem)
    return path


def _private_key(path: pathlib.Path) -> ec.EllipticCurvePrivateKey:
    path = pathlib.Path(path)
    try:
        if path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise ConfigError(f"signing key {path} is readable by others: chmod 600 it")
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except OSError as e:
        raise ConfigError(f"cannot read the signing key {path}: {e.strerror}") from e
    except ValueError as e:
        raise ConfigError(f"{path} is not a PEM private key: {e}") from e
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ConfigError(f"{path} is not an EC (ES256) private key")
    return key


def key_id(key: ec.EllipticCurvePrivateKey) -> str:
    """A stable id of the key pair (the JWKS ``kid`` and the tokens' header)."""
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(der).hexdigest()[:16]


def jwks(signing_key: pathlib.Path) -> dict[str, Any]:
    """The public JWKS Envoy verifies tokens with."""
    key = _private_key(signing_key)
    jwk = json.loads(ECAlgorithm.to_jwk(key.public_key()))
    jwk.update(kid=key_id(key), alg=ALGORITHM, use="sig")
    return {"keys": [jwk]}


def write_jwks(path: pathlib.Path, signing_key: pathlib.Path) -> pathlib.Path:
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(jwks(signing_key), indent=2) + "\n")
    os.replace(tmp, path)
    return path


def issue_token(
    signing_key: pathlib.Path,
    subject: str,
    scopes: Iterable[str],
    users: Iterable[str],
    lifetime_seconds: float,
    now: float | None = None,
) -> str:
    """A signed token for ``subject`` with ``scopes`` acting for ``users`` (``*``: all)."""
    scopes, users = list(scopes), list(users)
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown:
        raise ConfigError(f"unknown scope(s) {', '.join(unknown)}: use {', '.join(SCOPES)}")
    if not subject:
        raise ConfigError("a token needs a subject (the client's id)")
    key = _private_key(signing_key)
    issued = int(time.time() if now is None else now)
    payload = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": subject,
        SCOPE_CLAIM: " ".join(scopes),
        USERS_CLAIM: users,
        "iat": issued,
        "exp": issued + int(lifetime_seconds),
    }
    return jwt.encode(payload, key, algorithm=ALGORITHM, headers={"kid": key_id(key)})


def write_token(path: pathlib.Path, token: str) -> pathlib.Path:
    _write_private(pathlib.Path(path), (token + "\n").encode())
    return pathlib.Path(path)


def read_token(path: pathlib.Path) -> str:
    """A token from a file (mode 0600), or a ConfigError that says where tokens come from."""
    path = pathlib.Path(path)
    try:
        mode = path.stat().st_mode
        text = path.read_text().strip()
    except FileNotFoundError as e:
        raise ConfigError(
            f"no token at {path}: start the stack with `aiqleads serve` (it writes one there), "
            f"or pass --token / set {TOKEN_ENV}"
        ) from e
    except OSError as e:
        raise ConfigError(f"cannot read the token {path}: {e.strerror}") from e
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(f"token file {path} is readable by others: chmod 600 it")
    if not text:
        raise ConfigError(f"token file {path} is empty")
    return text


def bearer(token: str) -> dict[str, str]:
    """The request header that carries ``token``."""
    return {AUTHORIZATION_HEADER: f"Bearer {token}"}


@dataclasses.dataclass(frozen=True)
class DevCredentials:
    """What `aiqleads serve` creates: the key pair, the JWKS Envoy reads and a token."""

    signing_key: pathlib.Path
    jwks: pathlib.Path
    token_file: pathlib.Path
    token: str


def secrets_dir(run_dir: pathlib.Path) -> pathlib.Path:
    return pathlib.Path(run_dir) / SECRETS_DIR


def dev_token_path(run_dir: pathlib.Path) -> pathlib.Path:
    return secrets_dir(run_dir) / DEV_TOKEN_FILE


def ensure_dev_credentials(run_dir: pathlib.Path, lifetime_seconds: float) -> DevCredentials:
    """The run dir's key pair (kept), its JWKS, and a fresh development token with every
    scope for every user, written to ``<run_dir>/secrets/dev.token`` (0600)."""
    directory = secrets_dir(run_dir)
    key = create_signing_key(directory / SIGNING_KEY_FILE)
    keys = write_jwks(directory / JWKS_FILE, key)
    token = issue_token(key, DEV_CLIENT, SCOPES, [ALL_USERS], lifetime_seconds)
    return DevCredentials(key, keys, write_token(directory / DEV_TOKEN_FILE, token), token)
