"""One gateway replica: wires the transports and the data plane from a `GatewayConfig`, starts
and stops them."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import grpc as grpc_lib
from aiohttp import web

from aiqleads.events import attribution
from serving.gateway.cache import CachingLoader, LocalCache, RedisCache
from serving.gateway.config import GatewayConfig
from serving.gateway.dataplane import DataPlane
from serving.gateway.event_log import EventLogWriter
from serving.gateway.metrics import GatewayMetrics
from serving.gateway.model_client import ModelClient
from serving.gateway.online_features import OnlineFeatureReader
from serving.gateway.passthrough import PredictPassThrough
from serving.gateway.protocol import grpc, rest
from serving.gateway.variants import VersionTracker

GRPC_MAX_MESSAGE_BYTES = 4 * 1024 * 1024  # pass-through PredictRequests may be larger than JSON
log = logging.getLogger(__name__)


class Gateway:
    """The wired gateway; `start()` binds the ports (0 picks free ones), `stop()` drains."""

    def __init__(self, config: GatewayConfig, model: ModelClient | None = None) -> None:
        self.config = config
        self.metrics = GatewayMetrics()
        self.model = model or ModelClient(
            config.grpc_target,
            config.model_name,
            self.metrics,
            timeout_seconds=config.model_timeout_ms / 1000,
            retries=config.model_retries,
        )
        self.cache = RedisCache(
            config.redis_url,
            config.cache_ttl_seconds,
            self.metrics,
            timeout_seconds=config.redis_timeout_ms / 1000,
        )
        local = (
            LocalCache(config.local_cache_entries, config.local_cache_ttl_seconds)
            if config.local_cache_entries
            else None
        )
        self.loader = CachingLoader(
            self.cache, self.metrics, lock_ttl_ms=config.lock_ttl_ms, local=local
        )
        self.tracker = VersionTracker(
            self.model,
            self.metrics,
            config.version_refresh_seconds,
            canary_fraction_file=config.canary_fraction_file,
        )
        self.events = None
        key = None
        if config.event_store_url is not None:
            # Every replica signs and verifies request ids with the same key.
            key = attribution.load_key(config.attribution_key_file)
            self.events = EventLogWriter(
                config.event_store_url,
                self.metrics,
                queue_size=config.impression_queue,
                batch=config.impression_batch,
                dedup_seconds=config.feedback_dedup_seconds,
                timeout_seconds=config.event_store_timeout_ms / 1000,
            )
        self.features = None
        if config.online_store_url is not None:
            self.features = OnlineFeatureReader(
                config.online_store_url,
                self.metrics,
                config.redis_timeout_ms / 1000,
                mirror_entries=config.online_mirror_entries,
            )
        self.dataplane = DataPlane(
            self.model,
            self.tracker,
            self.loader,
            self.metrics,
            canary_fraction=config.canary_fraction,
            events=self.events,
            attribution_key=key,
            features=self.features,
        )
        self.passthrough = PredictPassThrough(self.model, self.dataplane, self.loader)
        self.rest_port = config.rest_port
        self.grpc_port = config.grpc_port
        self._runner: web.AppRunner | None = None
        self._grpc: grpc_lib.aio.Server | None = None
        self.draining = asyncio.Event()  # set by `drain()`: /healthz answers 503

    async def start(self) -> None:
        app = rest.create_app(
            self.dataplane,
            self.passthrough,
            self.cache,
            self.metrics,
            self.config.max_body_bytes,
            require_claims=self.config.require_claims,
            draining=self.draining,
        )
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.config.host, self.config.rest_port, backlog=1024)
        await site.start()
        self.rest_port = self._runner.addresses[0][1]
        self._grpc = grpc.create_server(
            self.dataplane,
            self.passthrough,
            self.metrics,
            GRPC_MAX_MESSAGE_BYTES,
            self.config.require_claims,
        )
        self.grpc_port = self._grpc.add_insecure_port(f"{self.config.host}:{self.config.grpc_port}")
        await self._grpc.start()
        await self.cache.ping()
        self.tracker.start()
        if self.events is not None:
            self.events.start()
        if self.features is not None:
            self.features.start()

    async def drain(self) -> None:
        """Fail readiness and keep serving for ``drain_seconds``, so that Envoy's health
        checks take this replica out of rotation before `stop()` closes its ports."""
        self.draining.set()
        if self.config.drain_seconds > 0:
            log.info("draining: /healthz answers 503 for %.1f s", self.config.drain_seconds)
            await asyncio.sleep(self.config.drain_seconds)

    async def stop(self) -> None:
        """Stop taking requests, let those in flight finish (bounded), then close clients."""
        grace = self.config.stop_grace_seconds
        if self._grpc is not None:
            await self._grpc.stop(grace)
        if self._runner is not None:
            await asyncio.wait_for(self._runner.cleanup(), timeout=grace + 1)
        await self.tracker.stop()
        await self.model.close()
        # Answers already sent and still on their way to Redis (each store is bounded by the
        # Redis socket timeout; a hung Redis only costs those entries a recomputation).
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self.loader.drain(), timeout=grace + 1)
        await self.cache.close()
        if self.features is not None:
            await self.features.close()
        if self.events is not None:
            await self.events.close(grace)
