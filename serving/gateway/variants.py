"""A/B variants: deterministic user assignment and the model version serving each variant.

Users are split by a hash of their id, so a user stays in one arm across replicas and
restarts. The arms are the model config's version labels `stable` and `canary`; a label that
does not exist falls back to the latest version, reported as variant "stable".

The canary's share of users is the gateway's `canary_fraction` flag, or, when the gateway is
given the deployment's `canary.json` (`serving.deployment`), the fraction in that file,
re-read with every version refresh: `aiqleads models canary --fraction F` reaches every
replica within one refresh, as a label change does.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import pathlib
from dataclasses import dataclass

from serving.deployment import read_canary_fraction
from serving.errors import ServingError, unavailable
from serving.gateway.metrics import GatewayMetrics
from serving.gateway.model_client import ModelClient

STABLE = "stable"
CANARY = "canary"
VARIANTS = (STABLE, CANARY)
log = logging.getLogger(__name__)


def assign_variant(user_id: str, canary_fraction: float) -> str:
    """`canary` for the users whose hash bucket falls below `canary_fraction`, else `stable`."""
    if canary_fraction <= 0.0:
        return STABLE
    digest = hashlib.sha256(user_id.encode()).digest()
    bucket = int.from_bytes(digest[:8], "big") / 2**64  # uniform in [0, 1)
    return CANARY if bucket < canary_fraction else STABLE


@dataclass(frozen=True)
class VersionView:
    """What the model servers serve: the latest version and the labelled ones."""

    latest: int | None = None
    labels: tuple[tuple[str, int], ...] = ()
    canary_fraction: float | None = None  # from the deployment's file; None: the flag's

    def fraction(self, default: float) -> float:
        """The canary's share of users: the deployment file's, else ``default``."""
        return default if self.canary_fraction is None else self.canary_fraction

    def resolve(self, variant: str) -> tuple[str, int]:
        """The `(variant, version)` that answers a user assigned to `variant`."""
        labels = dict(self.labels)
        if variant in labels:
            return variant, labels[variant]
        if STABLE in labels:
            return STABLE, labels[STABLE]
        if self.latest is None:
            raise unavailable(
                "no model version is available yet: wait for the model servers to load "
                "a model, or check --model-server and --model-name"
            )
        return STABLE, self.latest


class VersionTracker:
    """Keeps a `VersionView` fresh by polling the model servers in the background.

    When a poll fails, the last view is kept, so cached answers keep flowing while the model
    servers restart. A version change changes every cache key, so nothing stale is served.
    """

    def __init__(
        self,
        client: ModelClient,
        metrics: GatewayMetrics,
        interval: float,
        canary_fraction_file: pathlib.Path | None = None,
    ) -> None:
        self._client, self._metrics, self._interval = client, metrics, interval
        self._fraction_file = canary_fraction_file
        self.view = VersionView()
        self._task: asyncio.Task[None] | None = None

    async def refresh(self) -> VersionView:
        latest = await self._client.latest_version()
        labels = []
        for label in VARIANTS:
            version = await self._client.label_version(label)
            if version is not None:
                labels.append((label, version))
        fraction = self.view.canary_fraction
        if self._fraction_file is not None:
            # An absent or unreadable file keeps the fraction last read (or the flag's).
            read = read_canary_fraction(self._fraction_file)
            fraction = fraction if read is None else read
        view = VersionView(latest, tuple(labels), fraction)
        if view != self.view:
            log.info(
                "model versions now: latest=%s labels=%s canary fraction=%s",
                latest,
                dict(labels),
                fraction,
            )
        self.view = view
        for variant in VARIANTS:
            try:
                self._metrics.model_version.labels(variant).set(view.resolve(variant)[1])
            except ServingError:  # no version for the variant yet
                self._metrics.model_version.labels(variant).set(0)
        return view

    async def _loop(self) -> None:
        while True:
            try:
                await self.refresh()
            except Exception as e:  # keep the last view; the next poll retries
                log.warning("model version refresh failed: %s", e)
            await asyncio.sleep(self._interval)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
