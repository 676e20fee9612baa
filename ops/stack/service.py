"""The shape every local service shares: prepare, launch, probe, stop, kill."""

from __future__ import annotations

import abc
import shutil
from pathlib import Path

from ops.stack import process
from ops.stack.errors import MissingDependency, PortTaken
from ops.stack.ports import port_in_use
from ops.stack.settings import PORT_ENV, PORT_OPTION, StackSettings


class Service(abc.ABC):
    """One service of the stack, living in `<state_dir>/<name>/`.

    `start()` is idempotent: a running, healthy service is left alone. `stop()` is graceful
    (the service flushes its data), `kill()` is SIGKILL of the whole process tree.
    """

    name: str
    port_setting: str
    start_timeout_s: float = 60.0
    stop_timeout_s: float = 30.0

    def __init__(self, settings: StackSettings) -> None:
        self.settings = settings

    @property
    def port(self) -> int:
        return int(getattr(self.settings, self.port_setting))

    @property
    def home(self) -> Path:
        return self.settings.state_dir / self.name

    @property
    def log_path(self) -> Path:
        return self.home / f"{self.name}.log"

    @property
    def pid_path(self) -> Path:
        return self.home / f"{self.name}.pid"

    def ports(self) -> list[tuple[str, int, str]]:
        """(who, port, how to choose another) for each port the service listens on, checked before launch."""
        return [self.port_hint(self.port_setting, self.port)]

    def port_hint(self, setting: str, port: int) -> tuple[str, int, str]:
        return self.name, port, f"choose another with {PORT_OPTION[setting]} or {PORT_ENV[setting]}"

    def pid(self) -> int | None:
        return process.read_pid(self.pid_path)

    @abc.abstractmethod
    def check_installed(self) -> None:
        """Raise MissingDependency naming the package to install."""

    @abc.abstractmethod
    def prepare(self) -> None:
        """Write config and initialise storage; idempotent and quick when already done."""

    @abc.abstractmethod
    def launch(self) -> None:
        """Start the server process (it is known not to be running)."""

    @abc.abstractmethod
    def probe(self) -> bool:
        """One quick health check: True when the service answers real requests."""

    def after_ready(self) -> None:  # noqa: B027 - optional hook, most services need nothing
        """Idempotent set-up that needs the running service (databases, topics)."""

    def preflight(self) -> None:
        """Check that a stopped service can start: installed (jars fetched if missing), ports free."""
        if self.pid() is not None:
            return
        self.check_installed()
        for who, port, hint in self.ports():
            if port_in_use(port):
                raise PortTaken(f"{who}: port {port} is already in use by another program; {hint}")

    def start(self) -> None:
        """Bring the service up and ready, or raise a StackError."""
        if self.pid() is None:
            self.preflight()
            self.home.mkdir(parents=True, exist_ok=True)
            self.prepare()
            self.launch()
        process.wait_ready(self.name, self.probe, pid=self.pid, log_path=self.log_path, timeout_s=self.start_timeout_s)
        self.after_ready()

    def stop(self, timeout_s: float | None = None) -> None:
        """SIGTERM, then SIGKILL after `timeout_s` (default: the service's own `stop_timeout_s`)."""
        pid = self.pid()
        if pid is not None:
            process.terminate_tree(pid, timeout_s=self.stop_timeout_s if timeout_s is None else timeout_s)

    def kill(self) -> None:
        pid = self.pid()
        if pid is not None:
            process.kill_tree(pid)


def require_binary(binary: str, package: str) -> str:
    """Absolute path of `binary` on PATH, or MissingDependency naming the Debian package."""
    path = shutil.which(binary)
    if path is None:
        raise MissingDependency(
            f"{binary} not found: install it with `sudo apt-get install -y {package}` (or run `make bootstrap`)"
        )
    return path
