"""One gateway replica: wires the transports and the data plane from a `GatewayConfig`, starts
and stops them."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiohttp import web

from serving.gateway.cache import CachingLoader, LocalCache, RedisCache
from serving.gateway.config import GatewayConfig
from serving.gateway.dataplane import DataPlane
from serving.gateway.features import OnlineFeatures
from serving.gateway.feedback_log import JsonlLog, NullLog
from serving.gateway.metrics import GatewayMetrics
from serving.gateway.model_client import ModelClient
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
        self.tracker = VersionTracker(self.model, self.metrics, config.version_refresh_seconds)
        if config.log_dir is not None:
            self.request_log = JsonlLog(
                config.log_dir, "requests", self.metrics, config.log_max_bytes, config.log_backups
            )
            self.feedback_log = JsonlLog(
                config.log_dir, "feedback", self.metrics, config.log_max_bytes, config.log_backups
            )
        else:
            self.request_log = self.feedback_log = NullLog()
        self.dataplane = DataPlane(
            self.model,
            self.tracker,
            self.loader,
            self.metrics,
            canary_fraction=config.canary_fraction,
            request_log=self.request_log,
            feedback_log=self.feedback_log,
            features=OnlineFeatures(self.cache) if config.online_features else None,
        )
        self.passthrough = PredictPassThrough(self.model, self.dataplane, self.loader)
        self.rest_port = config.rest_port
        self.grpc_port = config.grpc_port
        self._runner: web.AppRunner | None = None
        self._grpc = None

    async def start(self) -> None:
        app = rest.create_app(
            self.dataplane, self.passthrough, self.cache, self.metrics, self.config.max_body_bytes
        )
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.config.host, self.config.rest_port, backlog=1024)
        await site.start()
        self.rest_port = self._runner.addresses[0][1]
        self._grpc = grpc.create_server(
            self.dataplane, self.passthrough, self.metrics, GRPC_MAX_MESSAGE_BYTES
        )
        self.grpc_port = self._grpc.add_insecure_port(f"{self.config.host}:{self.config.grpc_port}")
        await self._grpc.start()
        await self.cache.ping()
        self.tracker.start()

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
        self.request_log.close()
        self.feedback_log.close()
