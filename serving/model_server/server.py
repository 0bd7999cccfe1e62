"""The model server process: flags and config in, models loaded, gRPC and REST served.

Start-up loads every configured model before the listeners open (as TF Serving does), then
serves until `stop()`: listeners stop accepting, in-flight requests finish, models unload.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time

import grpc
from aiohttp import web
from tensorflow_serving.config import model_server_config_pb2

from aiqleads.errors import AiqleadsError, ConfigError
from serving.errors import invalid
from serving.model_server import config as config_lib
from serving.model_server.batching import Batcher
from serving.model_server.dataplane import DataPlane
from serving.model_server.flags import ServerFlags
from serving.model_server.manager import ModelManager, Poller
from serving.model_server.metrics import ServerMetrics
from serving.model_server.protocol.grpc import build_server
from serving.model_server.protocol.rest import RestApi
from serving.model_server.servable import SessionThreads
from serving.model_server.warmup import WarmupOptions

log = logging.getLogger("aiqleads.model_server")
_GRACE_SECONDS = 10.0


class ModelServer:
    """The running server; `start()` then `wait()`; `stop()` from any thread."""

    def __init__(self, flags: ServerFlags) -> None:
        self.flags = flags
        self.metrics = ServerMetrics()
        self.metrics_path = config_lib.load_monitoring_path(flags.monitoring_config_file)
        warmup = WarmupOptions(
            flags.enable_model_warmup,
            max(1, flags.num_request_iterations_for_warmup),
            flags.enable_signature_method_name_check,
        )
        intra, inter = flags.session_threads()
        self.manager = ModelManager(
            flags.allow_version_labels_for_unavailable_models, warmup, SessionThreads(intra, inter)
        )
        self.manager.on_change = self._on_model_change
        self.manager.on_warmup = self.metrics.observe_warmup
        self.batcher: Batcher | None = None
        if flags.enable_batching:
            options = config_lib.load_batching_parameters(flags.batching_parameters_file)
            self.batcher = Batcher(options, self.metrics.batch_size.observe)
        self.dataplane = DataPlane(
            self.manager, self.batcher, flags.enable_signature_method_name_check
        )
        self._config_text: str | None = None
        self._reload_lock = threading.Lock()
        self._stopped = threading.Event()
        self._pollers: list[Poller] = []
        self._grpc: grpc.Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._rest: RestApi | None = None

    def _on_model_change(self, name: str, version: int, state: int) -> None:
        versions = self.manager.models().get(name, [])
        self.metrics.model_versions.labels(name).set(len(versions))

    # ---- configuration -------------------------------------------------------------------
    def initial_config(self) -> model_server_config_pb2.ModelServerConfig:
        f = self.flags
        if f.model_config_file:
            self._config_text = _read(f.model_config_file)
            return config_lib.load_model_server_config(f.model_config_file)
        return config_lib.single_model_config(f.model_name, f.model_base_path)

    def reload(self, server_config: model_server_config_pb2.ModelServerConfig) -> None:
        """Apply a new ModelServerConfig (HandleReloadConfigRequest or the polled file)."""
        try:
            config_lib.validate_model_server_config(server_config)
        except AiqleadsError as e:
            raise invalid(str(e)) from e
        for model in server_config.model_config_list.config:
            model.base_path = os.path.abspath(model.base_path)
        with self._reload_lock:
            self.manager.apply_config(server_config)
        log.info("model config reloaded: %s", self.manager.models())

    def _poll_config_file(self) -> None:
        text = _read(self.flags.model_config_file)
        if text == self._config_text:
            return
        try:
            new = config_lib.load_model_server_config(self.flags.model_config_file)
            self.reload(new)
        except AiqleadsError as e:
            log.error("model config file not applied (keeping the current one): %s", e)
        self._config_text = text

    # ---- lifecycle -----------------------------------------------------------------------
    def start(self) -> None:
        f = self.flags
        started = time.monotonic()
        self.manager.apply_config(self.initial_config())
        log.info("models loaded in %.1fs: %s", time.monotonic() - started, self.manager.models())
        addresses = []
        if f.port:
            addresses.append(f"{_host(f.host)}:{f.port}")
        if f.grpc_socket_path:
            addresses.append(f"unix:{f.grpc_socket_path}")
        if addresses:
            self._grpc, _ = build_server(
                self.dataplane, self.metrics, self.reload, addresses, f.grpc_channel_arguments
            )
            self._grpc.start()
            log.info("Running gRPC ModelServer at %s ...", ", ".join(addresses))
        if f.rest_api_port:
            self._rest = RestApi(
                self.dataplane, self.metrics, f.rest_api_timeout_in_ms, self.metrics_path
            )
        self._pollers.append(
            Poller(f.file_system_poll_wait_seconds, self.manager.poll, "fs-poll").start()
        )
        if f.model_config_file:
            self._pollers.append(
                Poller(
                    f.model_config_file_poll_wait_seconds, self._poll_config_file, "config-poll"
                ).start()
            )

    async def serve_rest(self) -> None:
        """Run the REST listener (if any) until `stop()`."""
        self._loop = asyncio.get_running_loop()
        if self._rest is not None:
            self._runner = web.AppRunner(self._rest.app(), access_log=None)
            await self._runner.setup()
            site = web.TCPSite(self._runner, self.flags.host, self.flags.rest_api_port)
            await site.start()
            log.info(
                "Exporting HTTP/REST API at:%s:%d ...", self.flags.host, self.flags.rest_api_port
            )
        while not self._stopped.is_set():
            await asyncio.sleep(0.2)
        if self._runner is not None:
            await self._runner.cleanup()  # stops accepting, lets in-flight handlers finish

    def stop(self) -> None:
        self._stopped.set()

    def shutdown(self) -> None:
        """After `serve_rest` returned: drain gRPC, stop pollers, unload models."""
        if self._grpc is not None:
            self._grpc.stop(_GRACE_SECONDS).wait()
        for poller in self._pollers:
            poller.stop()
        if self._rest is not None:
            self._rest.close()
        if self.batcher is not None:
            self.batcher.close()
        self.manager.shutdown()


def _host(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def _read(path: str) -> str:
    try:
        with open(path) as fh:
            return fh.read()
    except OSError as e:
        raise ConfigError(f"cannot read model config {path}: {e.strerror}") from e
