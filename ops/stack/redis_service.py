"""Redis from Debian's redis-server, with append-only-file persistence so a restart keeps data."""

from __future__ import annotations

import redis

from ops.stack import process
from ops.stack.service import Service, require_binary


class RedisService(Service):
    name = "redis"
    port_setting = "redis_port"
    start_timeout_s = 30.0

    @property
    def conf_path(self) -> str:
        return str(self.home / "redis.conf")

    def check_installed(self) -> None:
        require_binary("redis-server", "redis-server")

    def prepare(self) -> None:
        # appendfsync defaults to "always": a SIGKILLed Redis must not forget a stock decrement
        # it already answered for, or the gate could sell that unit twice after the restart.
        (self.home / "redis.conf").write_text(
            "\n".join(
                [
                    "bind 127.0.0.1",
                    f"port {self.port}",
                    "protected-mode yes",
                    "daemonize no",
                    f"dir {self.home}",
                    "appendonly yes",
                    "appenddirname appendonly",
                    f"appendfsync {self.settings.redis_appendfsync}",
                    'save ""',
                    "maxclients 10000",
                    "tcp-backlog 4096",
                    "",
                ]
            )
        )

    def launch(self) -> None:
        process.spawn(
            [require_binary("redis-server", "redis-server"), self.conf_path],
            log_path=self.log_path,
            pid_path=self.pid_path,
            cwd=self.home,
        )

    def probe(self) -> bool:
        client = redis.Redis(port=self.port, host="127.0.0.1", socket_timeout=1, socket_connect_timeout=1)
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()
