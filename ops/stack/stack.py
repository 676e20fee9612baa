"""The stack as a whole: start, stop and report on all services of one state folder."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from ops.stack.errors import StackConfigError, StackError
from ops.stack.kafka_service import KafkaService
from ops.stack.postgres_service import PostgresService
from ops.stack.prometheus_service import PrometheusService
from ops.stack.redis_service import RedisService
from ops.stack.service import Service
from ops.stack.settings import StackSettings

SERVICE_NAMES = ("redis", "postgres", "kafka", "prometheus")


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    pid: int | None
    port: int
    healthy: bool

    @property
    def state(self) -> str:
        if self.pid is None:
            return "stopped"
        return "running" if self.healthy else "unhealthy"


class Stack:
    """All services of one state folder; every method is safe to repeat.

    Prometheus is optional: part of `up` and `status` once turned on (`with_prometheus`, saved),
    always stopped by `down`, and startable by name.
    """

    def __init__(self, settings: StackSettings) -> None:
        self.settings = settings
        self.all_services: dict[str, Service] = {
            "redis": RedisService(settings),
            "postgres": PostgresService(settings),
            "kafka": KafkaService(settings),
            "prometheus": PrometheusService(settings),
        }

    @property
    def services(self) -> dict[str, Service]:
        """The services `up` starts and `status` reports: the core three, and Prometheus when on."""
        on = {"redis", "postgres", "kafka"} | ({"prometheus"} if self.settings.with_prometheus else set())
        return {name: svc for name, svc in self.all_services.items() if name in on}

    def service(self, name: str) -> Service:
        try:
            return self.all_services[name]
        except KeyError as e:
            raise StackConfigError(f"unknown service {name!r}; choose one of {', '.join(SERVICE_NAMES)}") from e

    def up(self) -> float:
        """Start every service in parallel and wait until all answer; return the seconds it took."""
        began = time.monotonic()
        for svc in self.services.values():  # fail before anything starts, not half-way
            svc.preflight()
        self.settings.save()
        with ThreadPoolExecutor(max_workers=len(self.services)) as pool:
            futures = [pool.submit(s.start) for s in self.services.values()]
            errors = [f.exception() for f in futures]
        failed = [e for e in errors if e is not None]
        if failed:
            first = failed[0]
            if isinstance(first, StackError):
                raise first
            raise StackError(f"{type(first).__name__}: {first}") from first
        return time.monotonic() - began

    def down(self) -> None:
        """Stop every service gracefully; nothing of the stack keeps running afterwards."""
        with ThreadPoolExecutor(max_workers=len(self.all_services)) as pool:
            list(pool.map(lambda s: s.stop(), self.all_services.values()))

    def status(self) -> list[ServiceStatus]:
        result = []
        for name, svc in self.services.items():
            pid = svc.pid()
            result.append(ServiceStatus(name, pid, svc.port, healthy=pid is not None and svc.probe()))
        return result
