"""Request ids that carry their own attribution: model version, variant, time, signed.

A recommendation's ``request_id`` names the model version and the A/B variant that answered,
and when, with an HMAC over those fields and the user's id. Any gateway holding the shared
key attributes a feedback to its answer from the id alone: after restarts, across replicas,
and even when the impression record was sampled away under overload. An id that was not
issued by a gateway, or that was issued to another user, fails verification.

Format (at most 64 characters of ``[A-Za-z0-9.]``, the contracts' bound on ``request_id``)::

    r<version>.<variant code>.<issued at, ms since the epoch, base 36>.<nonce>.<mac>
"""

from __future__ import annotations

import hashlib
import hmac
import os
import pathlib
import secrets
import stat
from dataclasses import dataclass

from aiqleads.errors import ConfigError

STABLE = "stable"
CANARY = "canary"
VARIANTS = (STABLE, CANARY)
_CODE_OF = {STABLE: "s", CANARY: "c"}
_VARIANT_OF = {code: name for name, code in _CODE_OF.items()}
_MAC_HEX = 16  # 64 bits: forging one id takes ~2^63 tries against a live gateway
_NONCE_HEX = 8
KEY_BYTES = 32
KEY_ENV = "AIQLEADS_ATTRIBUTION_KEY"
"""Environment variable that may carry the key (hex) instead of a key file."""


class UnknownRequestError(ValueError):
    """The request id was not issued by this service, or not to this user."""


@dataclass(frozen=True)
class Attribution:
    """What a verified request id says about the answer it names."""

    request_id: str
    model_version: int
    variant: str
    issued_at: float  # seconds since the epoch


def _b36(value: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        value, rest = divmod(value, 36)
        out = digits[rest] + out
        if not value:
            return out


def _mac(key: bytes, body: str, user_id: str) -> str:
    digest = hmac.new(key, f"{body}|{user_id}".encode(), hashlib.sha256).hexdigest()
    return digest[:_MAC_HEX]


def issue(key: bytes, model_version: int, variant: str, user_id: str, now: float) -> str:
    """A signed request id for the answer ``model_version`` gave ``user_id`` as ``variant``."""
    if variant not in _CODE_OF:
        raise ValueError(f"variant {variant!r} is not one of {', '.join(VARIANTS)}")
    body = f"r{int(model_version)}.{_CODE_OF[variant]}.{_b36(int(now * 1000))}."
    body += secrets.token_hex(_NONCE_HEX // 2)
    return f"{body}.{_mac(key, body, user_id)}"


def verify(key: bytes, request_id: str, user_id: str) -> Attribution:
    """The attribution of ``request_id`` if it was issued to ``user_id``; else raises."""
    body, _, mac = request_id.rpartition(".")
    parts = body.split(".")
    if len(parts) != 4 or len(mac) != _MAC_HEX or not parts[0].startswith("r"):
        raise UnknownRequestError(f"request_id {request_id!r} was not issued by this service")
    if not hmac.compare_digest(mac, _mac(key, body, user_id)):
        raise UnknownRequestError(
            f"request_id {request_id!r} was not issued by this service to user {user_id!r}"
        )
    version, code, issued, _nonce = parts
    return Attribution(
        request_id=request_id,
        model_version=int(version[1:]),
        variant=_VARIANT_OF[code],
        issued_at=int(issued, 36) / 1000.0,
    )


def create_key_file(path: pathlib.Path) -> pathlib.Path:
    """Write a new random key to ``path`` (mode 0600) unless one exists; return the path.

    The key outlives restarts of the stack on purpose: feedback for answers given before a
    restart must still verify.
    """
    path = pathlib.Path(path)
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(secrets.token_hex(KEY_BYTES) + "\n")
    return path


def load_key(path: pathlib.Path | None = None, environ: dict[str, str] | None = None) -> bytes:
    """The shared key from a file (``path``) or the ``AIQLEADS_ATTRIBUTION_KEY`` variable."""
    environ = dict(os.environ) if environ is None else environ
    if path is None:
        text = environ.get(KEY_ENV, "")
        source = f"environment variable {KEY_ENV}"
        if not text:
            raise ConfigError(
                f"no attribution key: pass a key file or set {KEY_ENV} "
                f"(64 hex characters; `aiqleads serve` creates one)"
            )
    else:
        path = pathlib.Path(path)
        source = str(path)
        try:
            mode = path.stat().st_mode
            text = path.read_text()
        except OSError as e:
            raise ConfigError(f"cannot read the attribution key {path}: {e.strerror}") from e
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise ConfigError(f"attribution key {path} is readable by others: chmod 600 it")
    try:
        key = bytes.fromhex(text.strip())
    except ValueError as e:
        raise ConfigError(f"attribution key from {source} is not hex") from e
    if len(key) < 16:
        raise ConfigError(f"attribution key from {source} is too short: use 32 random bytes")
    return key


def new_key() -> bytes:
    """A random key (for a process that shares no key with other replicas)."""
    return secrets.token_bytes(KEY_BYTES)
