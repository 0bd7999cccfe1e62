"""Online user features read from Redis hashes (optional, `--online-features`).

The feature writer stores each user's usual search area as the hash
`aiqleads:features:user:<user_id>` with the fields `latitude` and `longitude`. When a
request comes without coordinates, the gateway fills them from this hash, so the model
ranks leads near where the user usually looks. Reads go through the cache's circuit
breaker: with Redis down, requests simply go on without the feature.
"""

from __future__ import annotations

import math

from serving.gateway.cache import RedisCache

USER_KEY_PREFIX = "aiqleads:features:user:"
LATITUDE, LONGITUDE = "latitude", "longitude"


def user_key(user_id: str) -> str:
    return f"{USER_KEY_PREFIX}{user_id}"


class OnlineFeatures:
    """Reads per-user features; invalid or missing values read as absent."""

    def __init__(self, cache: RedisCache) -> None:
        self._cache = cache

    async def user_location(self, user_id: str) -> tuple[float, float] | None:
        values = await self._cache.hmget(user_key(user_id), (LATITUDE, LONGITUDE))
        if not values or None in values:
            return None
        try:
            # Every value is set (checked above); the filter says so to the type checker.
            latitude, longitude = (float(v) for v in values if v is not None)
        except ValueError:
            return None
        if not (math.isfinite(latitude) and math.isfinite(longitude)):
            return None
        if abs(latitude) > 90 or abs(longitude) > 180:
            return None
        return latitude, longitude
