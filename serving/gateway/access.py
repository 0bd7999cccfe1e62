"""The per-user rule of the front door: a caller acts only for the users its token allows.

Envoy verifies the token (signature, issuer, audience, expiry) and its scope for the route,
then forwards the verified payload in `serving.auth.PAYLOAD_HEADER`; the user a request is
about is in its body, which Envoy does not read, so the gateway checks that part here, for
REST and gRPC alike. The header is trusted because only Envoy reaches the gateways (loopback
locally, a NetworkPolicy in Kubernetes) and Envoy overwrites any copy a client sends.
"""

from __future__ import annotations

import functools

from serving import auth
from serving.errors import Code, ServingError

# The payload of one token comes with every request it makes: decode each one once.
_claims = functools.lru_cache(maxsize=4096)(auth.claims_from_header)


def authorize(payload_header: str | None, user_id: str) -> auth.Claims:
    """The claims of the forwarded token if they allow ``user_id``; else UNAUTHENTICATED (no
    verified token) or PERMISSION_DENIED (another user's)."""
    if not payload_header:
        raise ServingError(
            Code.UNAUTHENTICATED,
            "no verified token: call through Envoy with 'Authorization: Bearer <token>'",
        )
    try:
        claims = _claims(payload_header)
    except ValueError as e:
        raise ServingError(Code.UNAUTHENTICATED, f"the verified token is unusable: {e}") from e
    if not claims.may_act_for(user_id):
        raise ServingError(
            Code.PERMISSION_DENIED,
            f"client {claims.subject!r} may not act for user {user_id!r}: its token lists the "
            "users it may read and post feedback for; ask for a token that includes this one",
        )
    return claims
