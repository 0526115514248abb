"""What an app reports about itself: its metrics (always), its traces (when on), and on AWS the
chosen metrics as CloudWatch EMF lines."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from opentelemetry.trace import Tracer, TracerProvider

from duochat_common.emf import EmfReporter, reporter
from duochat_common.metrics import Metrics
from duochat_common.process_metrics import monitoring, process_registry
from duochat_common.settings import ServiceSettings
from duochat_common.tracing import provider_for, tracer_of


@dataclass
class Telemetry:
    """One app's registry and tracer. ``tracer`` is None when tracing is off, and every hook
    that would make a span checks that first."""

    service: str
    metrics: Metrics = field(default_factory=Metrics)
    tracer_provider: TracerProvider | None = None
    cloudwatch: EmfReporter | None = None

    @property
    def tracer(self) -> Tracer | None:
        return tracer_of(self.tracer_provider, self.service)

    def export_to_cloudwatch(self, *names: str) -> None:
        """Send these metric families to CloudWatch too (when the reporter is on)."""
        if self.cloudwatch is not None:
            self.cloudwatch.export(*names)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """While the app runs: the loop-lag probe, and the CloudWatch reporter if on."""
        async with monitoring():
            task = None
            if self.cloudwatch is not None:
                task = asyncio.get_running_loop().create_task(self.cloudwatch.run())
            try:
                yield
            finally:
                if task is not None:
                    task.cancel()

    @classmethod
    def of(
        cls,
        service: str,
        settings: ServiceSettings,
        *,
        tracer_provider: TracerProvider | None = None,
    ) -> Telemetry:
        """A fresh registry; the given provider (a test's), else OTLP export if configured."""
        metrics = Metrics()
        return cls(
            service,
            metrics,
            tracer_provider or provider_for(service, settings),
            reporter(settings, service, metrics, [process_registry()]),
        )
