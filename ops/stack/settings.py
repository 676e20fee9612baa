"""Stack settings: state folder and ports, from options, the environment and the saved stack file.

Precedence, highest first: explicit option, `FLASHGATE_*` environment variable, the ports saved
in `<state_dir>/stack.json` by the first `up`, then the defaults (or free ports when asked).
The saved file is what lets `status`, `env` and `down` find a stack started with other ports.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ops.stack.errors import StackConfigError
from ops.stack.ports import free_port

DEFAULT_STATE_DIR = ".stack"
STACK_FILE = "stack.json"

# Off the well-known ports so a system Redis/PostgreSQL/Kafka on this host never collides.
DEFAULT_PORTS: Mapping[str, int] = {
    "redis_port": 16379,
    "postgres_port": 15432,
    "kafka_port": 19092,
    "kafka_controller_port": 19093,
    "prometheus_port": 19090,
}
PORT_ENV: Mapping[str, str] = {
    "redis_port": "FLASHGATE_REDIS_PORT",
    "postgres_port": "FLASHGATE_POSTGRES_PORT",
    "kafka_port": "FLASHGATE_KAFKA_PORT",
    "kafka_controller_port": "FLASHGATE_KAFKA_CONTROLLER_PORT",
    "prometheus_port": "FLASHGATE_PROMETHEUS_PORT",
}
PORT_OPTION: Mapping[str, str] = {
    "redis_port": "--redis-port",
    "postgres_port": "--postgres-port",
    "kafka_port": "--kafka-port",
    "kafka_controller_port": "--kafka-controller-port",
    "prometheus_port": "--prometheus-port",
}
# What the optional Prometheus scrapes and how (`stack up --with-prometheus`): ports of processes
# the stack does not run (gate, worker, monitor), the scrape/evaluation interval, and, for tests
# and demos only, one `for:` duration replacing every alert's own (0 keeps the rules' values).
PROMETHEUS_DEFAULTS: Mapping[str, int] = {
    "gate_port": 8000,
    "worker_metrics_port": 9101,
    "monitor_port": 9102,
    "prometheus_interval_s": 15,
    "prometheus_alert_for_s": 0,
}


@dataclass(frozen=True)
class StackSettings:
    """Where the stack lives and which loopback ports its services use."""

    state_dir: Path
    redis_port: int
    postgres_port: int
    kafka_port: int
    kafka_controller_port: int
    prometheus_port: int = DEFAULT_PORTS["prometheus_port"]
    with_prometheus: bool = False
    gate_port: int = PROMETHEUS_DEFAULTS["gate_port"]
    worker_metrics_port: int = PROMETHEUS_DEFAULTS["worker_metrics_port"]
    monitor_port: int = PROMETHEUS_DEFAULTS["monitor_port"]
    prometheus_interval_s: int = PROMETHEUS_DEFAULTS["prometheus_interval_s"]
    prometheus_alert_for_s: int = PROMETHEUS_DEFAULTS["prometheus_alert_for_s"]
    orders_partitions: int = 6
    redis_appendfsync: str = "always"
    kafka_heap_mb: int = 512

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis_port}/0"

    @property
    def database_url(self) -> str:
        return f"postgresql://flashgate@127.0.0.1:{self.postgres_port}/flashgate"

    @property
    def kafka_bootstrap(self) -> str:
        return f"127.0.0.1:{self.kafka_port}"

    def connection_env(self) -> dict[str, str]:
        """The variables every flashgate process reads to find the services."""
        return {
            "REDIS_URL": self.redis_url,
            "DATABASE_URL": self.database_url,
            "KAFKA_BOOTSTRAP": self.kafka_bootstrap,
        }

    def save(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        body = {k: v for k, v in dataclasses.asdict(self).items() if k != "state_dir"}
        (self.state_dir / STACK_FILE).write_text(json.dumps(body, indent=2) + "\n")


def resolve(
    state_dir: str | None,
    ports: Mapping[str, int | None],
    *,
    free_ports: bool = False,
    env: Mapping[str, str] | None = None,
    prometheus: Mapping[str, int | None] | None = None,
    with_prometheus: bool = False,
) -> StackSettings:
    """Build settings by precedence; `free_ports` picks unused ports for anything not given.

    `prometheus`: PROMETHEUS_DEFAULTS keys given as options (None: saved, else default);
    `with_prometheus` turns the optional Prometheus on (it stays on in the saved settings).
    """
    env = os.environ if env is None else env
    root = Path(state_dir or env.get("FLASHGATE_STACK_DIR") or DEFAULT_STATE_DIR).resolve()
    saved = _load_saved(root)
    chosen: dict[str, int] = {}
    for name, default in DEFAULT_PORTS.items():
        value = ports.get(name) or _env_port(env, name) or _saved_port(saved, name)
        if value is None:
            value = free_port(exclude=set(chosen.values())) if free_ports else default
        chosen[name] = _check_port(name, value)
    if len(set(chosen.values())) != len(chosen):
        raise StackConfigError(f"two services were given the same port: {chosen}")
    return StackSettings(
        state_dir=root,
        redis_port=chosen["redis_port"],
        postgres_port=chosen["postgres_port"],
        kafka_port=chosen["kafka_port"],
        kafka_controller_port=chosen["kafka_controller_port"],
        prometheus_port=chosen["prometheus_port"],
        with_prometheus=with_prometheus or saved.get("with_prometheus") is True,
        **_prometheus_settings(prometheus or {}, saved),
        orders_partitions=int(str(saved.get("orders_partitions", StackSettings.orders_partitions))),
        redis_appendfsync=str(saved.get("redis_appendfsync", StackSettings.redis_appendfsync)),
        kafka_heap_mb=int(str(saved.get("kafka_heap_mb", StackSettings.kafka_heap_mb))),
    )


def _prometheus_settings(given: Mapping[str, int | None], saved: Mapping[str, object]) -> dict[str, int]:
    chosen = {}
    for name, default in PROMETHEUS_DEFAULTS.items():
        value = given.get(name)
        if value is None:
            value = _saved_port(saved, name)
        chosen[name] = default if value is None else value
    for name in ("gate_port", "worker_metrics_port", "monitor_port"):
        if not 1 <= chosen[name] <= 65535:
            raise StackConfigError(f"--{name.replace('_', '-')} {chosen[name]} is outside 1-65535")
    if chosen["prometheus_interval_s"] < 1 or chosen["prometheus_alert_for_s"] < 0:
        raise StackConfigError("--prometheus-interval-s must be >= 1 and --prometheus-alert-for-s >= 0")
    return chosen


def _env_port(env: Mapping[str, str], name: str) -> int | None:
    raw = env.get(PORT_ENV[name])
    if raw is None or raw == "":
        return None
    if not raw.isdigit():
        raise StackConfigError(f"{PORT_ENV[name]}={raw!r} is not a port number")
    return int(raw)


def _saved_port(saved: Mapping[str, object], name: str) -> int | None:
    value = saved.get(name)
    return value if isinstance(value, int) else None


def _check_port(name: str, port: int) -> int:
    if not 1 <= port <= 65535:
        raise StackConfigError(f"{PORT_OPTION[name]} {port} is outside 1-65535")
    return port


def _load_saved(root: Path) -> dict[str, object]:
    path = root / STACK_FILE
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise StackConfigError(f"{path} is unreadable ({e}); delete it or the state folder") from e
    if not isinstance(data, dict):
        raise StackConfigError(f"{path} is not a JSON object; delete it or the state folder")
    return data
